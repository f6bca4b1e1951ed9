// The registry of loss configurations (as scikit-learn's test_loss.py keeps one): every row
// gets the whole battery — reference values on random inputs, finite-difference gradients in
// every cost layout x reduction x weighting, float32 vs float64, and the named properties. A new
// loss gets all of it by adding one row to `LossCase.all` (and, if it is a new kind of formula,
// a case to `Model`).
//
// `Model` is an independent, deliberately plain implementation of each formula of
// include/losskit.h / DESIGN.md §2, written from the formulas (not from the library's code): the
// expected value of a random input is what this model computes.
import CLossKit
import Glibc
import Testing

enum FearKind: Sendable { case max, lse }
enum HopeKind: Sendable { case gold, oracle, max, lse }

/// One loss formula, per example, with its parameters.
enum Model: Sendable {
    /// F(s + f c) - H(s - h c)  (h applies to MAX and LSE hope only)
    case fearHope(fear: FearKind, f: Double, hope: HopeKind, h: Double)
    /// sum_j p_j c_j,  p = softmax(s)
    case risk
    /// lse(s) - (1 - eps) s_g - (eps / K) sum_j s_j
    case smoothedLog(epsilon: Double)
    /// (1/K) [kappa (s_g - M)^2 + sum_{j != g} s_j^2]
    case squared(kappa: Double, target: Double)
    /// lse(s) - s_g + (1/(K-1)) sum_{j != g} s_j^2
    case squentropy

    /// Whether the formula reads costs (include/losskit.h, "Costs").
    var readsCosts: Bool {
        switch self {
        case .fearHope(_, let f, let hope, let h):
            return f != 0 || hope == .oracle || ((hope == .max || hope == .lse) && h != 0)
        case .risk: return true
        case .smoothedLog, .squared, .squentropy: return false
        }
    }

    /// Whether the formula uses s[gold] (a masked gold is then an error).
    var usesGoldScore: Bool {
        switch self {
        case .fearHope(_, _, let hope, _): return hope == .gold
        case .risk: return false
        case .smoothedLog, .squared, .squentropy: return true
        }
    }

    /// Whether the formula has max / oracle terms, i.e. kinks where finite differences lie.
    var hasKinks: Bool {
        switch self {
        case .fearHope(let fear, _, let hope, _): return fear == .max || hope == .max || hope == .oracle
        default: return false
        }
    }

    enum Sign: Sendable {
        /// >= 0 for every input
        case always
        /// >= 0 when every cost is >= 0 and the gold's cost is 0
        case withNonNegativeCosts
        /// no sign guarantee
        case none
    }

    /// Where the theory says the loss is >= 0.
    var sign: Sign {
        switch self {
        case .fearHope(let fear, let f, let hope, _):
            // F(s) >= s_g for a gold hope and f = 0 (log loss, perceptron).
            if hope == .gold && f == 0 { return .always }
            // max(s + f c) - lse(s - h c) can be negative: lse exceeds max by up to log K.
            if fear == .max && hope == .lse { return .none }
            // With c >= 0: F(s + f c) >= F(s) >= max(s) >= H(s - h c) for MAX / GOLD / ORACLE
            // hope (F(s + f c) >= s_o + f c_o >= s_o for the oracle), and lse(s + f c) >= lse(s)
            // >= lse(s - h c) for LSE / LSE.
            return .withNonNegativeCosts
        case .risk: return .withNonNegativeCosts
        case .smoothedLog, .squared, .squentropy: return .always
        }
    }
}

/// One row of the registry: how to ask the library for the loss, and its reference model.
struct LossCase: Sendable, CustomTestStringConvertible {
    let name: String
    let setup: Setup
    let model: Model

    var testDescription: String { name }

    static let log = LossCase(name: "LOG", setup: Setup(loss: LK_LOSS_LOG),
                              model: .fearHope(fear: .lse, f: 0, hope: .gold, h: 0))
    static let logSmoothed = LossCase(
        name: "LOG eps=0.25", setup: Setup(loss: LK_LOSS_LOG, labelSmoothing: 0.25),
        model: .smoothedLog(epsilon: 0.25))
    static let perceptron = LossCase(name: "PERCEPTRON", setup: Setup(loss: LK_LOSS_PERCEPTRON),
                                     model: .fearHope(fear: .max, f: 0, hope: .gold, h: 0))
    static let hinge = LossCase(name: "HINGE", setup: Setup(loss: LK_LOSS_HINGE),
                                model: .fearHope(fear: .max, f: 1, hope: .gold, h: 0))
    static let softmaxMargin = LossCase(
        name: "SOFTMAX_MARGIN", setup: Setup(loss: LK_LOSS_SOFTMAX_MARGIN),
        model: .fearHope(fear: .lse, f: 1, hope: .gold, h: 0))
    static let risk = LossCase(name: "RISK", setup: Setup(loss: LK_LOSS_RISK), model: .risk)
    static let ramp = LossCase(name: "RAMP", setup: Setup(loss: LK_LOSS_RAMP),
                               model: .fearHope(fear: .max, f: 1, hope: .max, h: 1))
    static let softRamp = LossCase(name: "SOFT_RAMP", setup: Setup(loss: LK_LOSS_SOFT_RAMP),
                                   model: .fearHope(fear: .lse, f: 1, hope: .lse, h: 1))
    static let infiniteRamp = LossCase(
        name: "INFINITE_RAMP", setup: Setup(loss: LK_LOSS_INFINITE_RAMP),
        model: .fearHope(fear: .max, f: 1, hope: .oracle, h: 0))
    static let squared = LossCase(name: "SQUARED", setup: Setup(loss: LK_LOSS_SQUARED),
                                  model: .squared(kappa: 1, target: 1))
    static let squaredTuned = LossCase(
        name: "SQUARED k=2.5 M=4", setup: Setup(loss: LK_LOSS_SQUARED, squareK: 2.5, squareM: 4),
        model: .squared(kappa: 2.5, target: 4))
    static let squentropy = LossCase(name: "SQUENTROPY", setup: Setup(loss: LK_LOSS_SQUENTROPY),
                                     model: .squentropy)

    /// HOPE_FEAR with each hope term and each fear term, at scales h = 0.5, f = 1.5 (neither
    /// 0 nor 1, so that a scale applied to the wrong term, or not at all, shows).
    static func hopeFear(_ hope: HopeKind, _ fear: FearKind, h: Double = 0.5, f: Double = 1.5) -> LossCase {
        let hopeTerm: Int32
        switch hope {
        case .gold: hopeTerm = LK_TERM_GOLD
        case .oracle: hopeTerm = LK_TERM_ORACLE
        case .max: hopeTerm = LK_TERM_MAX
        case .lse: hopeTerm = LK_TERM_LSE
        }
        let fearTerm = fear == .max ? LK_TERM_MAX : LK_TERM_LSE
        return LossCase(
            name: "HOPE_FEAR(\(hope) h=\(h), \(fear) f=\(f))",
            setup: Setup(loss: LK_LOSS_HOPE_FEAR, hope: hopeTerm, fear: fearTerm,
                         hopeScale: h, fearScale: f),
            model: .fearHope(fear: fear, f: f, hope: hope, h: h))
    }

    static let all: [LossCase] = [
        log, logSmoothed, perceptron, hinge, softmaxMargin, risk, ramp, softRamp, infiniteRamp,
        squared, squaredTuned, squentropy,
    ] + [HopeKind.gold, .oracle, .max, .lse].flatMap { hope in
        [FearKind.max, .lse].map { fear in hopeFear(hope, fear) }
    }
}

// MARK: - The reference model

/// One example's loss, its gradient with respect to the scores, and how far the input is from
/// a kink of the loss (the smallest gap between a max/oracle winner and its runner-up).
struct ExampleValue {
    var loss: Double
    var grad: [Double]
    var kinkGap: Double
}

extension Model {
    /// The loss of one example: scores `s` (-inf = masked), gold `g`, unscaled costs `c`
    /// (read only for unmasked classes), cost scale `alpha`.
    func evaluate(scores s: [Double], gold g: Int, cost c: [Double], costScale alpha: Double) -> ExampleValue {
        let k = s.count
        if s.contains(where: { $0.isNaN }) {
            return ExampleValue(loss: .nan, grad: [Double](repeating: .nan, count: k), kinkGap: .infinity)
        }
        let live = (0..<k).filter { s[$0] != -Double.infinity }
        var gap = Double.infinity

        /// s + w * alpha * c on the live classes (the cost is not touched when w = 0).
        func augmented(_ w: Double) -> [Double] {
            (0..<k).map { j in w == 0 || s[j] == -Double.infinity ? s[j] : s[j] + w * alpha * c[j] }
        }
        /// max with the tie rule: the gold wins a tie, else the lowest index.
        func maxTerm(_ v: [Double]) -> (value: Double, arg: Int) {
            var arg = -1
            for j in live {
                if arg < 0 || v[j] > v[arg] || (v[j] == v[arg] && j == g) { arg = j }
            }
            let runnerUp = live.filter { $0 != arg }.map { v[$0] }.max() ?? -Double.infinity
            gap = min(gap, v[arg] - runnerUp)
            return (v[arg], arg)
        }
        /// log sum exp, as (shift, rest) = (max, log1p(sum of the others' exp(v - max))) so that
        /// differences of two terms near zero keep their digits; and softmax(v).
        func lseTerm(_ v: [Double]) -> (shift: Double, rest: Double, p: [Double]) {
            let m = live.map { v[$0] }.max()!
            let top = live.first { v[$0] == m }!
            var others = 0.0
            for j in live where j != top { others += exp(v[j] - m) }
            var p = [Double](repeating: 0, count: k)
            for j in live { p[j] = exp(v[j] - m) / (1 + others) }
            return (m, log1p(others), p)
        }
        func oneHot(_ j: Int) -> [Double] {
            var e = [Double](repeating: 0, count: k)
            e[j] = 1
            return e
        }

        switch self {
        case .fearHope(let fear, let f, let hope, let h):
            let fearShift: Double, fearRest: Double, fearGrad: [Double]
            switch fear {
            case .max:
                let (value, arg) = maxTerm(augmented(f))
                (fearShift, fearRest, fearGrad) = (value, 0, oneHot(arg))
            case .lse:
                let t = lseTerm(augmented(f))
                (fearShift, fearRest, fearGrad) = (t.shift, t.rest, t.p)
            }
            let hopeShift: Double, hopeRest: Double, hopeGrad: [Double]
            switch hope {
            case .gold:
                (hopeShift, hopeRest, hopeGrad) = (s[g], 0, oneHot(g))
            case .oracle:
                // Lowest unscaled cost, then highest score, then lowest index.
                var o = -1
                for j in live where o < 0 || c[j] < c[o] || (c[j] == c[o] && s[j] > s[o]) { o = j }
                for j in live where j != o && c[j] == c[o] { gap = min(gap, s[o] - s[j]) }
                (hopeShift, hopeRest, hopeGrad) = (s[o], 0, oneHot(o))
            case .max:
                let (value, arg) = maxTerm(augmented(-h))
                (hopeShift, hopeRest, hopeGrad) = (value, 0, oneHot(arg))
            case .lse:
                let t = lseTerm(augmented(-h))
                (hopeShift, hopeRest, hopeGrad) = (t.shift, t.rest, t.p)
            }
            let loss = (fearShift - hopeShift) + (fearRest - hopeRest)
            return ExampleValue(loss: loss, grad: zip(fearGrad, hopeGrad).map { $0 - $1 }, kinkGap: gap)

        case .risk:
            let p = lseTerm(s).p
            var r = 0.0
            for j in live { r += p[j] * alpha * c[j] }
            var grad = [Double](repeating: 0, count: k)
            for j in live { grad[j] = p[j] * (alpha * c[j] - r) }
            return ExampleValue(loss: r, grad: grad, kinkGap: gap)

        case .smoothedLog(let epsilon):
            let t = lseTerm(s)
            let kk = Double(live.count)
            let mean = live.map { s[$0] }.reduce(0, +) / kk
            // lse - (1-eps) s_g - eps mean = (lse - s_g) + eps (s_g - mean)
            let loss = (t.shift - s[g]) + t.rest + epsilon * (s[g] - mean)
            var grad = t.p
            grad[g] -= 1 - epsilon
            for j in live { grad[j] -= epsilon / kk }
            return ExampleValue(loss: loss, grad: grad, kinkGap: gap)

        case .squared(let kappa, let target):
            let kk = Double(live.count)
            var sum = kappa * (s[g] - target) * (s[g] - target)
            var grad = [Double](repeating: 0, count: k)
            grad[g] = 2 * kappa * (s[g] - target) / kk
            for j in live where j != g {
                sum += s[j] * s[j]
                grad[j] = 2 * s[j] / kk
            }
            return ExampleValue(loss: sum / kk, grad: grad, kinkGap: gap)

        case .squentropy:
            let t = lseTerm(s)
            var grad = t.p
            grad[g] -= 1
            var loss = (t.shift - s[g]) + t.rest
            let others = Double(live.count - 1)
            if others > 0 {
                var squares = 0.0
                for j in live where j != g {
                    squares += s[j] * s[j]
                    grad[j] += 2 * s[j] / others
                }
                loss += squares / others
            }
            return ExampleValue(loss: loss, grad: grad, kinkGap: gap)
        }
    }
}

/// What lk_dense should write for a batch, from the reference model and DESIGN.md §3.
struct BatchReference {
    var loss: [Double]  // n under NONE, else 1
    var grad: [Double]  // n*k
    /// Each example's unweighted value (nil when ignored or of zero weight).
    var examples: [ExampleValue?]
    /// The factor of each example's gradient: weight, divided by the summed weight under MEAN.
    var coefficient: [Double]
    /// An upper bound on the magnitude of the rounding error in `loss` as the library computes
    /// it (per written value), in units of eps: the sum of coefficient * (|loss_i| + |inputs_i|).
    var scale: [Double]
}

func reference(_ c: LossCase, _ b: DenseBatch, layout: Int32, costScale: Double,
               reduction: Int32, ignoreLabel: Int32 = -100) -> BatchReference {
    var examples = [ExampleValue?](repeating: nil, count: b.n)
    var weightSum = 0.0
    for i in 0..<b.n where b.gold[i] != ignoreLabel {
        let w = b.weight?[i] ?? 1
        weightSum += w
        if w == 0 { continue }
        examples[i] = c.model.evaluate(scores: b.row(i), gold: Int(b.gold[i]),
                                       cost: b.costRow(i, layout: layout), costScale: costScale)
    }
    var coefficient = [Double](repeating: 0, count: b.n)
    var grad = [Double](repeating: 0, count: b.n * b.k)
    var perExample = [Double](repeating: 0, count: b.n)
    var perScale = [Double](repeating: 0, count: b.n)
    var total = 0.0, totalScale = 0.0
    for i in 0..<b.n {
        guard let e = examples[i] else { continue }
        let w = b.weight?[i] ?? 1
        coefficient[i] = reduction == LK_REDUCE_MEAN ? w / weightSum : w
        for j in 0..<b.k { grad[i * b.k + j] = coefficient[i] * e.grad[j] }
        perExample[i] = w * e.loss
        total += w * e.loss
        let inputs = magnitude(b.row(i)) + costScale * magnitude(b.costRow(i, layout: layout))
        perScale[i] = w * (abs(e.loss) + inputs)
        totalScale += coefficient[i] * (abs(e.loss) + inputs)
    }
    let loss: [Double]
    let scale: [Double]
    switch reduction {
    case LK_REDUCE_NONE: (loss, scale) = (perExample, perScale)
    case LK_REDUCE_SUM: (loss, scale) = ([total], [totalScale])
    default: (loss, scale) = ([weightSum > 0 ? total / weightSum : 0], [totalScale])
    }
    return BatchReference(loss: loss, grad: grad, examples: examples, coefficient: coefficient,
                          scale: scale)
}

// MARK: - Random inputs

/// How to draw a random batch for a loss.
struct BatchRecipe {
    var n = 6
    var k = 5
    var layout: Int32 = LK_COST_ZERO_ONE
    var weighted = false
    /// Probability that a class (other than a gold the loss needs) is masked.
    var maskProbability = 0.2
    /// Per-example / class-matrix costs are uniform in this range...
    var costRange: ClosedRange<Double> = -0.5...3
    /// ...except the gold's own cost, which is 0 when this is set (the premise of the ">= 0"
    /// properties).
    var zeroGoldCost = false
    /// Score magnitudes: cycle through the profiles below (true), or unit-scale only (false).
    var largeMagnitudes = true
    /// When > 0, rows are redrawn until no max / oracle term is within this distance of a tie.
    var minimumKinkGap: (Int) -> Double = { _ in 0 }
    /// Indices of rows given the ignore label (gold = ignoreLabel), and of zero-weight rows.
    var ignoredRows: Set<Int> = []
    var zeroWeightRows: Set<Int> = []
    var ignoreLabel: Int32 = -100
}

/// The score profile of row i, cycling through small scores, +-50 offsets and +-1e4 offsets:
///     0: N(0, 1.5)                 1: 50 + N(0, 1.5)
///     2: -50 + N(0, 1.5), each class +-50 more at random   (spread of 100 within the row)
///     3: 1e4 + N(0, 1.5)           4: -1e4 + N(0, 1.5), each class +-50 more at random
///     5: each class +-1e4 + N(0, 1.5)                       (spread of 2e4 within the row)
func drawScore(profile: Int, _ rng: inout SplitMix64) -> Double {
    let noise = 1.5 * rng.normal()
    switch profile % 6 {
    case 0: return noise
    case 1: return 50 + noise
    case 2: return -50 + 50 * rng.sign() + noise
    case 3: return 1e4 + noise
    case 4: return -1e4 + 50 * rng.sign() + noise
    default: return 1e4 * rng.sign() + noise
    }
}

func drawBatch(for c: LossCase, _ r: BatchRecipe, costScale: Double, _ rng: inout SplitMix64) -> DenseBatch {
    let (n, k) = (r.n, r.k)
    var gold = (0..<n).map { _ in Int32(rng.index(below: k)) }
    for i in r.ignoredRows { gold[i] = r.ignoreLabel }
    var cost: [Double]? = nil
    switch r.layout {
    case LK_COST_PER_EXAMPLE:
        var v = (0..<n * k).map { _ in rng.uniform(r.costRange.lowerBound, r.costRange.upperBound) }
        if r.zeroGoldCost { for i in 0..<n where gold[i] >= 0 && gold[i] < k { v[i * k + Int(gold[i])] = 0 } }
        cost = v
    case LK_COST_CLASS_MATRIX:
        var v = (0..<k * k).map { _ in rng.uniform(r.costRange.lowerBound, r.costRange.upperBound) }
        if r.zeroGoldCost { for g in 0..<k { v[g * k + g] = 0 } }
        cost = v
    default: break
    }
    var weight: [Double]? = nil
    if r.weighted {
        var w = (0..<n).map { _ in rng.uniform(0.25, 3) }
        for i in r.zeroWeightRows { w[i] = 0 }
        weight = w
    }
    var b = DenseBatch(n: n, k: k, scores: [Double](repeating: 0, count: n * k), gold: gold,
                       cost: cost, weight: weight)
    for i in 0..<n {
        let profile = r.largeMagnitudes ? i : 0
        // Which classes are masked: never the gold of a loss that uses s[gold]; never all.
        let g = Int(gold[i])
        var masked = (0..<k).map { j in !(j == g && c.model.usesGoldScore) && rng.chance(r.maskProbability) }
        if masked.allSatisfy({ $0 }) { masked[(0..<k).first { $0 != g } ?? 0] = false }
        let counted = b.gold[i] != r.ignoreLabel && (b.weight?[i] ?? 1) != 0
        for attempt in 0..<1000 {
            for j in 0..<k { b.scores[i * k + j] = masked[j] ? -Double.infinity : drawScore(profile: profile, &rng) }
            guard counted else { break }
            let gap = c.model.evaluate(scores: b.row(i), gold: g, cost: b.costRow(i, layout: r.layout),
                                       costScale: costScale).kinkGap
            if gap > r.minimumKinkGap(i) { break }
            precondition(attempt < 999, "could not draw row \(i) away from a kink")
        }
    }
    return b
}

/// The magnitude of row i's inputs: its largest finite score.
func rowScale(_ b: DenseBatch, _ i: Int) -> Double { magnitude(b.row(i)) }
