// Test support for candidate lists (include/losskit.h "Candidate lists", DESIGN.md §4.3): a
// Swift wrapper around lk_lists_f64/_f32 in the style of callDense (outputs poisoned first, one
// guard element past each output that must never be written, lk_last_error() read right after
// the call), a batch of lists as the caller hands it over, and a cheap generator of random
// batches that is valid for every loss (so one batch serves the whole registry).
import CLossKit
import Glibc
import Testing

// MARK: - Calling the C API

/// The two storage types of lk_lists, with their entry point.
protocol ListsScalar: DenseScalar {
    static func lkLists(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Self>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Self>?,
        _ weight: UnsafePointer<Self>?, _ loss: UnsafeMutablePointer<Self>?,
        _ grad: UnsafeMutablePointer<Self>?) -> lk_status
    /// lk_lists_hessian_f32 / _f64.
    static func lkListsHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Self>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Self>?,
        _ weight: UnsafePointer<Self>?, _ loss: UnsafeMutablePointer<Self>?,
        _ grad: UnsafeMutablePointer<Self>?, _ hess: UnsafeMutablePointer<Self>?) -> lk_status
}

extension Double: ListsScalar {
    static func lkLists(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
        _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
        _ grad: UnsafeMutablePointer<Double>?
    ) -> lk_status {
        lk_lists_f64(opt, n, offsets, scores, gold, cost, weight, loss, grad)
    }
    static func lkListsHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
        _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
        _ grad: UnsafeMutablePointer<Double>?, _ hess: UnsafeMutablePointer<Double>?
    ) -> lk_status {
        lk_lists_hessian_f64(opt, n, offsets, scores, gold, cost, weight, loss, grad, hess)
    }
}

extension Float: ListsScalar {
    static func lkLists(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
        _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
        _ grad: UnsafeMutablePointer<Float>?
    ) -> lk_status {
        lk_lists_f32(opt, n, offsets, scores, gold, cost, weight, loss, grad)
    }
    static func lkListsHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
        _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
        _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
        _ grad: UnsafeMutablePointer<Float>?, _ hess: UnsafeMutablePointer<Float>?
    ) -> lk_status {
        lk_lists_hessian_f32(opt, n, offsets, scores, gold, cost, weight, loss, grad, hess)
    }
}

/// What one lk_lists call returned: the status, the outputs (poisoned, then possibly written;
/// without their guard elements), whether the guard element past each output is still
/// poisoned, and `lk_last_error()` read right after the call on the same thread.
struct ListsOutput<T: ListsScalar> {
    var status: lk_status
    var loss: [T]
    var grad: [T]
    var guardsIntact: Bool
    var message: String
    /// The Hessian's buffer (callLists with `hessCount`, guard included), else empty.
    var hess: [T] = []

    /// Every output element (guards included) still holds `poisonValue`.
    var untouched: Bool {
        guardsIntact && loss.allSatisfy { $0 == T(poisonValue) } && grad.allSatisfy { $0 == T(poisonValue) }
            && hess.allSatisfy { $0 == T(poisonValue) }
    }
}

/// Calls lk_lists with raw arguments. Output buffers of `lossCount` and `gradCount` elements
/// (plus one guard element each) are filled with `poisonValue` first; a count of nil passes
/// NULL for that output. An empty (non-nil) input array passes a valid pointer to one poisoned
/// element — nothing may read it — so that "NULL" and "no elements" stay distinct. Pass
/// `opt: nil` for a NULL opt. Synchronous on purpose: `lk_last_error()` is per thread.
func callLists<T: ListsScalar>(
    _ opt: lk_options?, n: Int64, offsets: [Int64]?,
    scores: [T]?, gold: [Int32]?, cost: [T]? = nil, weight: [T]? = nil,
    lossCount: Int?, gradCount: Int?, hessCount: Int? = nil
) -> ListsOutput<T> {
    var loss = [T](repeating: T(poisonValue), count: (lossCount ?? 0) + 1)
    var grad = [T](repeating: T(poisonValue), count: (gradCount ?? 0) + 1)
    var hess = [T](repeating: T(poisonValue), count: hessCount.map { $0 + 1 } ?? 0)
    let status: lk_status = withOptionalPointer(opt) { o in
        withPossiblyEmptyBuffer(offsets, filler: Int64.max) { off in
            withPossiblyEmptyBuffer(scores, filler: T.infinity) { s in
                withPossiblyEmptyBuffer(gold, filler: Int32.min) { g in
                    withPossiblyEmptyBuffer(cost, filler: T.nan) { c in
                        withPossiblyEmptyBuffer(weight, filler: T.nan) { w in
                            loss.withUnsafeMutableBufferPointer { l in
                                grad.withUnsafeMutableBufferPointer { d in
                                    hess.withUnsafeMutableBufferPointer { h in
                                        // With a Hessian buffer: lk_lists_hessian_*, same inputs.
                                        hessCount == nil
                                            ? T.lkLists(o, n, off, s, g, c, w,
                                                        lossCount == nil ? nil : l.baseAddress,
                                                        gradCount == nil ? nil : d.baseAddress)
                                            : T.lkListsHessian(o, n, off, s, g, c, w,
                                                               lossCount == nil ? nil : l.baseAddress,
                                                               gradCount == nil ? nil : d.baseAddress, h.baseAddress)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let message = String(cString: lk_last_error())
    let guardsIntact = loss.last! == T(poisonValue) && grad.last! == T(poisonValue)
        && (hess.last.map { $0 == T(poisonValue) } ?? true)
    loss.removeLast()
    grad.removeLast()
    if !hess.isEmpty { hess.removeLast() }
    return ListsOutput(status: status, loss: loss, grad: grad, guardsIntact: guardsIntact, message: message, hess: hess)
}

/// nil -> NULL; an empty array -> a pointer to one `filler` element (which must not be read);
/// otherwise the array's storage.
func withPossiblyEmptyBuffer<T, R>(_ array: [T]?, filler: T, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    let storage = array.isEmpty ? [filler] : array
    return storage.withUnsafeBufferPointer { body($0.baseAddress) }
}

// MARK: - Batches of candidate lists

/// A batch of n candidate lists in the CSR layout of lk_lists (in Double; the float32 tests
/// round it).
struct ListBatch: Sendable {
    var offsets: [Int64]  // n + 1
    var scores: [Double]  // offsets[n]
    var gold: [Int32]  // n
    var cost: [Double]?  // offsets[n] or nil
    var weight: [Double]?  // n or nil

    var n: Int { gold.count }
    var total: Int { Int(offsets.last!) }
    func range(_ i: Int) -> Range<Int> { Int(offsets[i])..<Int(offsets[i + 1]) }
    func length(_ i: Int) -> Int { range(i).count }
    func scores(_ i: Int) -> [Double] { Array(scores[range(i)]) }
    func costs(_ i: Int) -> [Double]? { cost.map { Array($0[range(i)]) } }

    /// Lists of the given lengths with all-zero scores, gold 0 (or -1 for an empty list),
    /// costs if asked for, no weights.
    init(lengths: [Int], withCosts: Bool) {
        var offsets: [Int64] = [0]
        for l in lengths { offsets.append(offsets.last! + Int64(l)) }
        self.offsets = offsets
        let total = Int(offsets.last!)
        scores = [Double](repeating: 0, count: total)
        gold = lengths.map { $0 == 0 ? -1 : 0 }
        cost = withCosts ? [Double](repeating: 0, count: total) : nil
        weight = nil
    }
}

/// One list as a caller would describe it: its candidates' scores (and costs), gold, weight.
struct ListSpec {
    var scores: [Double]
    var gold: Int32
    var cost: [Double]? = nil
    var weight: Double = 1
}

extension ListBatch {
    /// The batch of these lists (costs when `withCosts`, a list without them getting NaN
    /// costs; weights when `weighted`).
    init(specs: [ListSpec], withCosts: Bool, weighted: Bool) {
        self.init(lengths: specs.map { $0.scores.count }, withCosts: withCosts)
        scores = specs.flatMap { $0.scores }
        gold = specs.map { $0.gold }
        if withCosts { cost = specs.flatMap { $0.cost ?? [Double](repeating: .nan, count: $0.scores.count) } }
        weight = weighted ? specs.map { $0.weight } : nil
    }

    /// Each list as a spec.
    var specs: [ListSpec] {
        (0..<n).map { ListSpec(scores: scores($0), gold: gold[$0], cost: costs($0), weight: weight?[$0] ?? 1) }
    }

    /// The same lists, as a dense batch of rows of k = their common length.
    func dense(k: Int) -> DenseBatch {
        precondition((0..<n).allSatisfy { length($0) == k })
        return DenseBatch(n: n, k: k, scores: scores, gold: gold, cost: cost, weight: weight)
    }
}

/// The options of a registry case for lists: its loss and parameters, with `reduction`, the
/// cost scale `alpha` and `threads` on top.
func listSetup(_ c: LossCase, _ reduction: Int32, costScale alpha: Double = 0.75, threads: Int32? = nil) -> Setup {
    c.setup.with {
        $0.reduction = reduction
        $0.costScale = alpha
        $0.threads = threads
    }
}

/// Runs `b` through lk_lists_f64 with `setup`; both outputs requested unless told.
func runLists(_ setup: Setup, _ b: ListBatch, wantLoss: Bool = true, wantGrad: Bool = true) -> ListsOutput<Double> {
    let o = setup.options
    let lossCount = o.reduction == LK_REDUCE_NONE ? b.n : 1
    return callLists(o, n: Int64(b.n), offsets: b.offsets, scores: b.scores, gold: b.gold, cost: b.cost,
                     weight: b.weight, lossCount: wantLoss ? lossCount : nil, gradCount: wantGrad ? b.total : nil)
}

/// The same through lk_lists_f32, on the inputs rounded to Float.
func runLists32(_ setup: Setup, _ b: ListBatch) -> ListsOutput<Float> {
    let o = setup.options
    let lossCount = o.reduction == LK_REDUCE_NONE ? b.n : 1
    return callLists(o, n: Int64(b.n), offsets: b.offsets, scores: b.scores.map { Float($0) }, gold: b.gold,
                     cost: b.cost?.map { Float($0) }, weight: b.weight?.map { Float($0) },
                     lossCount: lossCount, gradCount: b.total)
}

/// The loss cases of the registry that lists offer: all but label smoothing (LK_ERR_UNSUPPORTED).
let listCases: [LossCase] = LossCase.all.filter { ($0.setup.labelSmoothing ?? 0) == 0 }

// MARK: - The oracle, computed independently

/// The oracle of one list (include/losskit.h): among the unmasked candidates, the lowest
/// unscaled cost, then the highest score, then the lowest index. nil when every candidate is
/// masked. Written as a sort key, not as the library's running comparison.
func oracleIndex(scores s: [Double], costs c: [Double]) -> Int? {
    let live = s.indices.filter { s[$0] != -.infinity }
    return live.min { a, b in
        if c[a] != c[b] { return c[a] < c[b] }
        if s[a] != s[b] { return s[a] > s[b] }
        return a < b
    }
}

// MARK: - Random batches

/// How to draw a random batch of lists.
struct ListRecipe {
    var lengths: ClosedRange<Int> = 1...8
    var n = 12
    var weighted = true
    /// Probability that a candidate other than the gold is masked (never a whole list).
    var maskProbability = 0.2
    /// Also mask the gold now and then (only for losses that do not use the gold score).
    var maskGold = false
    /// Probability that a list's gold is -1 (the oracle); needs costs.
    var oracleProbability = 0.0
    var withCosts = true
    /// Scores and costs drawn from small sets of values, so that ties are common.
    var ties = false
    /// Score magnitudes cycle through `drawScore`'s profiles (else unit scale only).
    var largeMagnitudes = true
}

/// A random batch valid for every loss of `listCases` (no masked gold unless asked, no list
/// fully masked, no +inf): scores per `drawScore`, costs in [-0.5, 3) (or ties), weights in
/// [0.25, 3).
func drawLists(_ r: ListRecipe, _ rng: inout SplitMix64) -> ListBatch {
    let lengths = (0..<r.n).map { _ in r.lengths.lowerBound + rng.index(below: r.lengths.count) }
    var b = ListBatch(lengths: lengths, withCosts: r.withCosts)
    let costValues: [Double] = [0, 0.5, 1, 2, -0.5]
    let tiedScores: [Double] = [-1, 0, 0.5, 2]
    for i in 0..<r.n {
        let k = lengths[i]
        let g = rng.index(below: k)
        b.gold[i] = r.withCosts && rng.chance(r.oracleProbability) ? -1 : Int32(g)
        let goldIsFixed = b.gold[i] >= 0 && !r.maskGold
        var masked = (0..<k).map { j in !(j == g && goldIsFixed) && rng.chance(r.maskProbability) }
        if masked.allSatisfy({ $0 }) { masked[rng.index(below: k)] = false }
        let profile = r.largeMagnitudes ? i : 0
        for (j, at) in b.range(i).enumerated() {
            let s = r.ties && rng.chance(0.5)
                ? tiedScores[rng.index(below: tiedScores.count)] + Double(profile % 6 == 3 ? 1e4 : 0)
                : drawScore(profile: profile, &rng)
            b.scores[at] = masked[j] ? -.infinity : s
            if r.withCosts {
                b.cost![at] = r.ties ? costValues[rng.index(below: costValues.count)] : rng.uniform(-0.5, 3)
            }
        }
    }
    if r.weighted { b.weight = (0..<r.n).map { _ in rng.uniform(0.25, 3) } }
    return b
}
