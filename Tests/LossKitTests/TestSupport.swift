// Test support: a seeded RNG, the option builder, a Swift wrapper around lk_dense_f64/_f32
// that poisons its outputs, and the finite-difference helper.
//
// The tests call the library only through its C entry points (import CLossKit), exactly as a
// C or Python caller would. Expected values never come from the library: they come from closed
// forms (ReferenceTableTests), from the independent reference model in LossRegistry.swift, or
// from finite differences of the library's own loss (GradientTests).
import CLossKit
import Glibc
import Testing

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and the same sequence on every platform,
/// so every random test is reproducible from its seed.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A seed derived from a test's name (FNV-1a), so each test draws its own stream and
    /// adding a test does not change the inputs of the others.
    init(_ parts: String...) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in parts.joined(separator: "|").utf8 {
            h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        state = h
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Uniform in [a, b).
    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u1 = 1 - uniform()  // (0, 1]: log(u1) is finite
        let u2 = uniform()
        return sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2)
    }
    /// Uniform in 0..<n.
    mutating func index(below n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ p: Double) -> Bool { uniform() < p }
    mutating func sign() -> Double { chance(0.5) ? 1 : -1 }
}

// MARK: - Options

/// The option fields a test sets on top of `lk_options_init`'s defaults; nil keeps the default.
/// (A plain Sendable value, so that it can parameterise Swift Testing cases.)
struct Setup: Sendable {
    var loss: Int32
    var reduction: Int32? = nil
    var layout: Int32? = nil
    var costScale: Double? = nil
    var labelSmoothing: Double? = nil
    var squareK: Double? = nil
    var squareM: Double? = nil
    var hope: Int32? = nil
    var fear: Int32? = nil
    var hopeScale: Double? = nil
    var fearScale: Double? = nil
    var ignoreLabel: Int32? = nil
    var threads: Int32? = nil

    /// `lk_options_init(loss)` and then the fields set here.
    var options: lk_options {
        var o = lk_options()
        let status = lk_options_init(&o, loss)
        precondition(status == LK_OK, "lk_options_init(\(loss)) failed")
        if let reduction { o.reduction = reduction }
        if let layout { o.cost_layout = layout }
        if let costScale { o.cost_scale = costScale }
        if let labelSmoothing { o.label_smoothing = labelSmoothing }
        if let squareK { o.square_k = squareK }
        if let squareM { o.square_m = squareM }
        if let hope { o.hope = hope }
        if let fear { o.fear = fear }
        if let hopeScale { o.hope_scale = hopeScale }
        if let fearScale { o.fear_scale = fearScale }
        if let ignoreLabel { o.ignore_label = ignoreLabel }
        if let threads { o.threads = threads }
        return o
    }

    func with(_ change: (inout Setup) -> Void) -> Setup {
        var copy = self
        change(&copy)
        return copy
    }
}

let allReductions: [Int32] = [LK_REDUCE_NONE, LK_REDUCE_SUM, LK_REDUCE_MEAN]
let allLayouts: [Int32] = [LK_COST_ZERO_ONE, LK_COST_PER_EXAMPLE, LK_COST_CLASS_MATRIX]

func reductionName(_ r: Int32) -> String {
    switch r {
    case LK_REDUCE_NONE: return "NONE"
    case LK_REDUCE_SUM: return "SUM"
    case LK_REDUCE_MEAN: return "MEAN"
    default: return "reduction \(r)"
    }
}

func layoutName(_ l: Int32) -> String {
    switch l {
    case LK_COST_ZERO_ONE: return "ZERO_ONE"
    case LK_COST_PER_EXAMPLE: return "PER_EXAMPLE"
    case LK_COST_CLASS_MATRIX: return "CLASS_MATRIX"
    default: return "layout \(l)"
    }
}

// MARK: - Calling the C API

/// The two storage types of the C API, with their entry point.
protocol DenseScalar: BinaryFloatingPoint, Sendable {
    static func lkDense(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Self>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Self>?,
        _ weight: UnsafePointer<Self>?, _ loss: UnsafeMutablePointer<Self>?,
        _ grad: UnsafeMutablePointer<Self>?) -> lk_status
    /// lk_dense_hessian_f32 / _f64.
    static func lkDenseHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Self>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Self>?,
        _ weight: UnsafePointer<Self>?, _ loss: UnsafeMutablePointer<Self>?,
        _ grad: UnsafeMutablePointer<Self>?, _ hess: UnsafeMutablePointer<Self>?) -> lk_status
}

extension Double: DenseScalar {
    static func lkDense(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
        _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
        _ grad: UnsafeMutablePointer<Double>?
    ) -> lk_status {
        lk_dense_f64(opt, n, k, scores, gold, cost, weight, loss, grad)
    }
    static func lkDenseHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
        _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
        _ grad: UnsafeMutablePointer<Double>?, _ hess: UnsafeMutablePointer<Double>?
    ) -> lk_status {
        lk_dense_hessian_f64(opt, n, k, scores, gold, cost, weight, loss, grad, hess)
    }
}

extension Float: DenseScalar {
    static func lkDense(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
        _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
        _ grad: UnsafeMutablePointer<Float>?
    ) -> lk_status {
        lk_dense_f32(opt, n, k, scores, gold, cost, weight, loss, grad)
    }
    static func lkDenseHessian(
        _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
        _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
        _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
        _ grad: UnsafeMutablePointer<Float>?, _ hess: UnsafeMutablePointer<Float>?
    ) -> lk_status {
        lk_dense_hessian_f32(opt, n, k, scores, gold, cost, weight, loss, grad, hess)
    }
}

/// What one call returned: the status, the (poisoned, then possibly written) output buffers,
/// and `lk_last_error()` read right after the call on the same thread.
struct DenseOutput<T: DenseScalar> {
    var status: lk_status
    var loss: [T]
    var grad: [T]
    var message: String
    /// The Hessian's buffer (callDense with `hessCount`), else empty.
    var hess: [T] = []
}

/// The value written into every output before a call, so that "untouched" can be checked.
let poisonValue = 12345.0

/// Calls the library with raw arguments. Output buffers of `lossCount` and `gradCount`
/// elements are filled with `poisonValue` first; a count of nil passes NULL for that output.
/// Pass `opt: nil` for a NULL opt. Synchronous on purpose: `lk_last_error()` is per thread.
func callDense<T: DenseScalar>(
    _ opt: lk_options?, n: Int64, k: Int64,
    scores: [T]?, gold: [Int32]?, cost: [T]? = nil, weight: [T]? = nil,
    lossCount: Int?, gradCount: Int?, hessCount: Int? = nil
) -> DenseOutput<T> {
    var loss = [T](repeating: T(poisonValue), count: lossCount ?? 0)
    var grad = [T](repeating: T(poisonValue), count: gradCount ?? 0)
    var hess = [T](repeating: T(poisonValue), count: hessCount ?? 0)
    let status: lk_status = withOptionalPointer(opt) { o in
        withOptionalBuffer(scores) { s in
            withOptionalBuffer(gold) { g in
                withOptionalBuffer(cost) { c in
                    withOptionalBuffer(weight) { w in
                        loss.withUnsafeMutableBufferPointer { l in
                            grad.withUnsafeMutableBufferPointer { d in
                                hess.withUnsafeMutableBufferPointer { h in
                                    // With a Hessian buffer: lk_dense_hessian_*, same inputs.
                                    hessCount == nil
                                        ? T.lkDense(o, n, k, s, g, c, w,
                                                    lossCount == nil ? nil : l.baseAddress,
                                                    gradCount == nil ? nil : d.baseAddress)
                                        : T.lkDenseHessian(o, n, k, s, g, c, w,
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
    let message = String(cString: lk_last_error())
    return DenseOutput(status: status, loss: loss, grad: grad, message: message, hess: hess)
}

func withOptionalPointer<R>(_ value: lk_options?, _ body: (UnsafePointer<lk_options>?) -> R) -> R {
    guard var value else { return body(nil) }
    return withUnsafePointer(to: &value) { body($0) }
}

func withOptionalBuffer<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    precondition(!array.isEmpty, "pass nil, not an empty array, for a NULL pointer")
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

// MARK: - Batches of dense rows

/// A batch of n dense rows of k classes, as the caller hands it to lk_dense (in Double; the
/// float32 tests round it).
struct DenseBatch: Sendable {
    var n: Int
    var k: Int
    var scores: [Double]  // n*k
    var gold: [Int32]  // n
    var cost: [Double]?  // per layout: nil, n*k or k*k
    var weight: [Double]?  // n or nil

    func row(_ i: Int) -> [Double] { Array(scores[i * k..<(i + 1) * k]) }

    /// Example i's unscaled cost of each class under `layout` (0/1 against its gold).
    /// Zeros for a row whose gold is not a class (ignored or skipped rows: nothing is read).
    func costRow(_ i: Int, layout: Int32) -> [Double] {
        let g = Int(gold[i])
        guard g >= 0 && g < k else { return [Double](repeating: 0, count: k) }
        switch layout {
        case LK_COST_PER_EXAMPLE: return Array(cost![i * k..<(i + 1) * k])
        case LK_COST_CLASS_MATRIX: return Array(cost![g * k..<(g + 1) * k])
        default: return (0..<k).map { $0 == g ? 0 : 1 }
        }
    }

    func rounded() -> (scores: [Float], cost: [Float]?, weight: [Float]?) {
        (scores.map { Float($0) }, cost?.map { Float($0) }, weight?.map { Float($0) })
    }

    /// The same batch after rounding every input to Float (so f32 and f64 see equal inputs).
    func roundedToFloat() -> DenseBatch {
        var b = self
        b.scores = scores.map { Double(Float($0)) }
        b.cost = cost?.map { Double(Float($0)) }
        b.weight = weight?.map { Double(Float($0)) }
        return b
    }
}

/// Runs `batch` through lk_dense_f64 with `setup`; both outputs requested unless told.
func run(_ setup: Setup, _ b: DenseBatch, wantLoss: Bool = true, wantGrad: Bool = true,
         scores: [Double]? = nil) -> DenseOutput<Double> {
    let o = setup.options
    let lossCount = o.reduction == LK_REDUCE_NONE ? b.n : 1
    return callDense(o, n: Int64(b.n), k: Int64(b.k), scores: scores ?? b.scores, gold: b.gold,
                     cost: b.cost, weight: b.weight,
                     lossCount: wantLoss ? lossCount : nil, gradCount: wantGrad ? b.n * b.k : nil)
}

/// The same through lk_dense_f32, on the inputs rounded to Float.
func run32(_ setup: Setup, _ b: DenseBatch) -> DenseOutput<Float> {
    let o = setup.options
    let lossCount = o.reduction == LK_REDUCE_NONE ? b.n : 1
    let r = b.rounded()
    return callDense(o, n: Int64(b.n), k: Int64(b.k), scores: r.scores, gold: b.gold,
                     cost: r.cost, weight: r.weight, lossCount: lossCount, gradCount: b.n * b.k)
}

// MARK: - Finite differences

/// f'(0) by the fourth-order central difference
///     (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / (12 h),
/// whose truncation error is (h^4 / 30) |f^(5)| and whose rounding error is about
/// (18 / 12) * delta / h for values f computed with absolute error delta.
func fourthOrderDerivative(step h: Double, _ f: (Double) -> Double) -> Double {
    (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)
}

/// The step for a coordinate of magnitude `scale`: roughly (eps * scale)^(1/5), which balances
/// the h^4 truncation error against the eps * scale / h rounding error of the loss (shift-
/// invariant losses evaluated at scores ~ scale lose eps * scale absolute). Powers of two, so
/// that x +- h and x +- 2h are exact for |x| < 2^14 and the step actually taken is h:
///     scale < 1e3 (the +-50 rows):  2^-9 ~ 2.0e-3   ((2.2e-16 * 100)^(1/5) ~ 2.3e-3)
///     scale ~ 1e4:                  2^-7 ~ 7.8e-3   ((2.2e-16 * 2e4)^(1/5) ~ 5.4e-3)
/// With |f^(5)| = O(1) (softmax terms of unit-scale scores) the truncation error is then
/// below 1e-10, and the rounding error below 1e-8 even at 1e4.
func finiteDifferenceStep(scale: Double) -> Double {
    scale < 1000 ? 0x1p-9 : 0x1p-7
}

// MARK: - Comparisons

/// |a - b| <= tolerance, with NaN equal only to NaN.
func isClose(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
    if a == b { return true }
    return abs(a - b) <= tolerance
}

/// Bitwise equality of two arrays (NaN == NaN, and +0 != -0 is *not* required: == on values).
func sameValues<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
}

/// The largest |x| over the finite entries (masked -inf and NaN left out), at least 1.
func magnitude(_ xs: [Double]) -> Double {
    xs.reduce(1.0) { $1.isFinite ? max($0, abs($1)) : $0 }
}

let eps64 = Double.ulpOfOne  // 2^-52
let eps32 = Double(Float.ulpOfOne)  // 2^-23
