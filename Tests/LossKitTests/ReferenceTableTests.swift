// Reference values in closed form for every loss: each row says where its number comes from.
// Costs: 0/1 unless a row gives per-example costs or uses the class matrix C below; c = alpha *
// cost, alpha = cost_scale (1 unless given). Ties: a tied max goes to the gold, else to the
// lowest index; the oracle is the lowest unscaled cost, then the highest score, then the lowest
// index. Every row is checked in float64 (to 1e-14) and float32 (to a few float32 ulps).
import CLossKit
import Glibc
import Testing

private let ln2 = log(2.0), ln3 = log(3.0), ln5 = log(5.0), e = exp(1.0)
private let inf = Double.infinity

/// The class matrix of the CLASS_MATRIX rows (row = gold class):
///     C = [[0, 1, 3],
///          [1, 0, 1],
///          [4, 2, 0]]
private let classMatrix: [Double] = [0, 1, 3, 1, 0, 1, 4, 2, 0]

struct ReferenceRow: Sendable, CustomTestStringConvertible {
    let derivation: String
    let setup: Setup
    let batch: DenseBatch
    let loss: [Double]
    let grad: [Double]?
    /// Near-zero rows are checked relative to the value itself (the digits must survive);
    /// others relative to max(1, |value|).
    let nearZero: Bool

    var testDescription: String { derivation }

    /// One example, reduction NONE.
    init(_ derivation: String, _ setup: Setup, _ scores: [Double], gold: Int32, cost: [Double]? = nil,
         loss: Double, grad: [Double]? = nil, nearZero: Bool = false) {
        self.derivation = derivation
        self.setup = setup.with { $0.reduction = $0.reduction ?? LK_REDUCE_NONE }
        self.batch = DenseBatch(n: 1, k: scores.count, scores: scores, gold: [gold], cost: cost, weight: nil)
        self.loss = [loss]
        self.grad = grad
        self.nearZero = nearZero
    }

    init(_ derivation: String, _ setup: Setup, batch: DenseBatch, loss: [Double], grad: [Double]) {
        self.derivation = derivation
        self.setup = setup
        self.batch = batch
        self.loss = loss
        self.grad = grad
        self.nearZero = false
    }
}

private func setup(_ loss: Int32, _ change: (inout Setup) -> Void = { _ in }) -> Setup {
    Setup(loss: loss).with(change)
}
private func perExample(_ s: inout Setup) { s.layout = LK_COST_PER_EXAMPLE }
private func matrix(_ s: inout Setup) { s.layout = LK_COST_CLASS_MATRIX }

/// HOPE_FEAR on s = [1, 0, 0.5], gold 0, per-example costs c = [0.5, 0, 1], h = 0.5, f = 2:
///     fear MAX  max(s + 2c) = max([2, 0, 2.5]) = 2.5 at 2          grad e_2
///     fear LSE  log(e^2 + 1 + e^2.5)                                grad [e^2, 1, e^2.5] / Z
///     hope GOLD s_0 = 1                                             grad e_0
///     hope ORACLE lowest cost is class 1: s_1 = 0                   grad e_1
///     hope MAX  max(s - 0.5c) = max([0.75, 0, 0]) = 0.75 at 0       grad e_0
///     hope LSE  log(e^0.75 + 1 + 1)                                 grad [e^0.75, 1, 1] / Z
private func hopeFearRows() -> [ReferenceRow] {
    let zf = exp(2.0) + 1 + exp(2.5)
    let fears: [(Int32, String, Double, [Double])] = [
        (LK_TERM_MAX, "MAX 2.5", 2.5, [0, 0, 1]),
        (LK_TERM_LSE, "LSE log(e^2 + 1 + e^2.5)", log(zf), [exp(2.0) / zf, 1 / zf, exp(2.5) / zf]),
    ]
    let zh = exp(0.75) + 2
    let hopes: [(Int32, String, Double, [Double])] = [
        (LK_TERM_GOLD, "GOLD 1", 1, [1, 0, 0]),
        (LK_TERM_ORACLE, "ORACLE s_1 = 0", 0, [0, 1, 0]),
        (LK_TERM_MAX, "MAX 0.75", 0.75, [1, 0, 0]),
        (LK_TERM_LSE, "LSE log(e^0.75 + 2)", log(zh), [exp(0.75) / zh, 1 / zh, 1 / zh]),
    ]
    var rows: [ReferenceRow] = []
    for (hope, hopeText, hopeValue, hopeGrad) in hopes {
        for (fear, fearText, fearValue, fearGrad) in fears {
            rows.append(ReferenceRow(
                "HOPE_FEAR s=[1,0,0.5] c=[0.5,0,1] g=0 h=0.5 f=2: fear \(fearText) - hope \(hopeText)",
                setup(LK_LOSS_HOPE_FEAR) {
                    perExample(&$0)
                    $0.hope = hope
                    $0.fear = fear
                    $0.hopeScale = 0.5
                    $0.fearScale = 2
                },
                [1, 0, 0.5], gold: 0, cost: [0.5, 0, 1], loss: fearValue - hopeValue,
                grad: zip(fearGrad, hopeGrad).map { $0 - $1 }))
        }
    }
    return rows
}

let referenceRows: [ReferenceRow] = [
    // LOG: lse(s) - s_g, grad softmax(s) - e_g
    ReferenceRow("LOG [0, ln 3] g=1: ln 4 - ln 3 = ln(4/3); grad [1/4, 3/4] - e_1",
                 setup(LK_LOSS_LOG), [0, ln3], gold: 1, loss: log(4.0 / 3), grad: [0.25, -0.25]),
    ReferenceRow("LOG [0, 0, 0] g=0: ln 3; grad [1/3 - 1, 1/3, 1/3]",
                 setup(LK_LOSS_LOG), [0, 0, 0], gold: 0, loss: ln3, grad: [1.0 / 3 - 1, 1.0 / 3, 1.0 / 3]),
    ReferenceRow("LOG masked [0, -inf, ln 3] g=2: the mask adds nothing, ln(4/3); grad [1/4, 0, -1/4]",
                 setup(LK_LOSS_LOG), [0, -inf, ln3], gold: 2, loss: log(4.0 / 3), grad: [0.25, 0, -0.25]),
    ReferenceRow("LOG near zero [0, 40] g=1: log1p(e^-40) ~ 4.248e-18; grad [q, -q], q = e^-40/(1+e^-40)",
                 setup(LK_LOSS_LOG), [0, 40], gold: 1, loss: log1p(exp(-40.0)),
                 grad: [exp(-40.0) / (1 + exp(-40.0)), -exp(-40.0) / (1 + exp(-40.0))], nearZero: true),
    ReferenceRow("LOG near zero [0, 40, 1] g=1: log1p(e^-40 + e^-39)",
                 setup(LK_LOSS_LOG), [0, 40, 1], gold: 1, loss: log1p(exp(-40.0) + exp(-39.0)), nearZero: true),
    ReferenceRow("LOG cost_scale 5, class-matrix layout, NULL cost: costs are not read, still ln(4/3)",
                 setup(LK_LOSS_LOG) { matrix(&$0); $0.costScale = 5 }, [0, ln3], gold: 1,
                 loss: log(4.0 / 3), grad: [0.25, -0.25]),

    // LOG with label smoothing eps: lse - (1-eps) s_g - (eps/K) sum s, grad p - ((1-eps) e_g + eps/K)
    ReferenceRow("LOG eps=0.1 [0, ln 3] g=1 K=2: ln 4 - 0.9 ln 3 - 0.05 ln 3; grad [1/4 - 0.05, 3/4 - 0.95]",
                 setup(LK_LOSS_LOG) { $0.labelSmoothing = 0.1 }, [0, ln3], gold: 1,
                 loss: log(4.0) - 0.95 * ln3, grad: [0.2, -0.2]),
    ReferenceRow("LOG eps=0.3 [ln 2, -inf, 0, ln 5] g=0 K=3: ln 8 - 0.7 ln 2 - 0.1 (ln 2 + ln 5); " +
                 "grad [2/8-0.8, 0, 1/8-0.1, 5/8-0.1]",
                 setup(LK_LOSS_LOG) { $0.labelSmoothing = 0.3 }, [ln2, -inf, 0, ln5], gold: 0,
                 loss: 2.2 * ln2 - 0.1 * ln5, grad: [0.25 - 0.8, 0, 0.125 - 0.1, 0.625 - 0.1]),
    ReferenceRow("LOG eps=0.5 [-inf, 3] g=1 K=1: 3 - 0.5*3 - 0.5*3 = 0; grad 0",
                 setup(LK_LOSS_LOG) { $0.labelSmoothing = 0.5 }, [-inf, 3], gold: 1, loss: 0, grad: [0, 0]),

    // PERCEPTRON: max(s) - s_g, grad e_argmax - e_g
    ReferenceRow("PERCEPTRON [1, 3, 2] g=0: 3 - 1 = 2; grad e_1 - e_0",
                 setup(LK_LOSS_PERCEPTRON), [1, 3, 2], gold: 0, loss: 2, grad: [-1, 1, 0]),
    ReferenceRow("PERCEPTRON tie [2, 2, 1] g=1: the gold wins the tied max: 0; grad 0",
                 setup(LK_LOSS_PERCEPTRON), [2, 2, 1], gold: 1, loss: 0, grad: [0, 0, 0]),
    ReferenceRow("PERCEPTRON tie [3, 3, 1] g=2: tied max to the lowest index 0: 3 - 1 = 2; grad e_0 - e_2",
                 setup(LK_LOSS_PERCEPTRON), [3, 3, 1], gold: 2, loss: 2, grad: [1, 0, -1]),
    ReferenceRow("PERCEPTRON masked [-inf, 1, 0.5] g=2: 1 - 0.5; grad e_1 - e_2",
                 setup(LK_LOSS_PERCEPTRON), [-inf, 1, 0.5], gold: 2, loss: 0.5, grad: [0, 1, -1]),

    // HINGE: max(s + c) - s_g, grad e_argmax(s+c) - e_g
    ReferenceRow("HINGE [1, 1.5, 0] g=0: s + c = [1, 2.5, 1], 2.5 - 1 = 1.5; grad e_1 - e_0",
                 setup(LK_LOSS_HINGE), [1, 1.5, 0], gold: 0, loss: 1.5, grad: [-1, 1, 0]),
    ReferenceRow("HINGE [3, 1, 0] g=0: s + c = [3, 2, 1], margin met: 0; grad 0",
                 setup(LK_LOSS_HINGE), [3, 1, 0], gold: 0, loss: 0, grad: [0, 0, 0]),
    ReferenceRow("HINGE tie [2, 1, 0] g=0: s + c = [2, 2, 1], the gold wins the tie: 0; grad 0",
                 setup(LK_LOSS_HINGE), [2, 1, 0], gold: 0, loss: 0, grad: [0, 0, 0]),
    ReferenceRow("HINGE tie [0, 1, 1] g=0: s + c = [0, 2, 2], lowest index 1: 2 - 0; grad e_1 - e_0",
                 setup(LK_LOSS_HINGE), [0, 1, 1], gold: 0, loss: 2, grad: [-1, 1, 0]),
    ReferenceRow("HINGE cost_scale 2 [1, 1.5, 0] g=0: s + 2c = [1, 3.5, 2], 3.5 - 1 = 2.5",
                 setup(LK_LOSS_HINGE) { $0.costScale = 2 }, [1, 1.5, 0], gold: 0, loss: 2.5, grad: [-1, 1, 0]),
    ReferenceRow("HINGE per-example c=[2, 0, 0.5], s=0, g=1: max(c) = 2 at 0, 2 - 0; grad e_0 - e_1",
                 setup(LK_LOSS_HINGE, perExample), [0, 0, 0], gold: 1, cost: [2, 0, 0.5], loss: 2, grad: [1, -1, 0]),
    ReferenceRow("HINGE class matrix, s=0, g=2: c = C[2] = [4, 2, 0], 4 - 0; grad e_0 - e_2",
                 setup(LK_LOSS_HINGE, matrix), [0, 0, 0], gold: 2, cost: classMatrix, loss: 4, grad: [1, 0, -1]),
    ReferenceRow("HINGE masked [-inf, 0, 0.25] g=2: s + c = [-, 1, 0.25], 1 - 0.25 = 0.75; grad e_1 - e_2",
                 setup(LK_LOSS_HINGE), [-inf, 0, 0.25], gold: 2, loss: 0.75, grad: [0, 1, -1]),

    // SOFTMAX_MARGIN: lse(s + c) - s_g, grad softmax(s + c) - e_g
    ReferenceRow("SOFTMAX_MARGIN [0, ln 3] g=0: s + c = [0, ln 3 + 1], ln(1 + 3e); grad [1/(1+3e) - 1, 3e/(1+3e)]",
                 setup(LK_LOSS_SOFTMAX_MARGIN), [0, ln3], gold: 0, loss: log(1 + 3 * e),
                 grad: [1 / (1 + 3 * e) - 1, 3 * e / (1 + 3 * e)]),
    ReferenceRow("SOFTMAX_MARGIN per-example c=[0, 2 ln 2, 2 ln 4], alpha=0.5, s=0, g=0: ln(1 + 2 + 4) = ln 7; " +
                 "grad [1/7 - 1, 2/7, 4/7]",
                 setup(LK_LOSS_SOFTMAX_MARGIN) { perExample(&$0); $0.costScale = 0.5 }, [0, 0, 0], gold: 0,
                 cost: [0, 2 * ln2, 4 * ln2], loss: log(7.0), grad: [1.0 / 7 - 1, 2.0 / 7, 4.0 / 7]),
    ReferenceRow("SOFTMAX_MARGIN class matrix, alpha=ln 2, s=0, g=0: c = ln2 [0, 1, 3], ln(1 + 2 + 8) = ln 11; " +
                 "grad [1/11 - 1, 2/11, 8/11]",
                 setup(LK_LOSS_SOFTMAX_MARGIN) { matrix(&$0); $0.costScale = ln2 }, [0, 0, 0], gold: 0,
                 cost: classMatrix, loss: log(11.0), grad: [1.0 / 11 - 1, 2.0 / 11, 8.0 / 11]),
    ReferenceRow("SOFTMAX_MARGIN near zero [0, 60] g=1: s + c = [1, 60], log1p(e^-59)",
                 setup(LK_LOSS_SOFTMAX_MARGIN), [0, 60], gold: 1, loss: log1p(exp(-59.0)),
                 grad: [exp(-59.0) / (1 + exp(-59.0)), -exp(-59.0) / (1 + exp(-59.0))], nearZero: true),

    // RISK: R = sum p_j c_j, grad p_j (c_j - R)
    ReferenceRow("RISK [0, ln 3] g=0: p = [1/4, 3/4], R = 3/4; grad [1/4 (0 - 3/4), 3/4 (1 - 3/4)]",
                 setup(LK_LOSS_RISK), [0, ln3], gold: 0, loss: 0.75, grad: [-3.0 / 16, 3.0 / 16]),
    ReferenceRow("RISK per-example c=[1, 2, 4], s=[0, ln 2, ln 5]: p = [1, 2, 5]/8, R = 25/8; grad [-17, -18, 35]/64",
                 setup(LK_LOSS_RISK, perExample), [0, ln2, ln5], gold: 0, cost: [1, 2, 4],
                 loss: 25.0 / 8, grad: [-17.0 / 64, -18.0 / 64, 35.0 / 64]),
    ReferenceRow("RISK same, cost_scale 2: R = 25/4; grad [-17, -18, 35]/32",
                 setup(LK_LOSS_RISK) { perExample(&$0); $0.costScale = 2 }, [0, ln2, ln5], gold: 0,
                 cost: [1, 2, 4], loss: 25.0 / 4, grad: [-17.0 / 32, -18.0 / 32, 35.0 / 32]),
    ReferenceRow("RISK masked gold [-inf, 0, ln 3] g=0: p = [0, 1/4, 3/4], R = 1; grad p (1 - 1) = 0",
                 setup(LK_LOSS_RISK), [-inf, 0, ln3], gold: 0, loss: 1, grad: [0, 0, 0]),
    ReferenceRow("RISK class matrix g=1: c = C[1] = [1, 0, 1], s=[0, ln 2, ln 5]: R = 6/8; grad [1, -6, 5]/32",
                 setup(LK_LOSS_RISK, matrix), [0, ln2, ln5], gold: 1, cost: classMatrix,
                 loss: 0.75, grad: [1.0 / 32, -6.0 / 32, 5.0 / 32]),

    // RAMP: max(s + c) - max(s - c)
    ReferenceRow("RAMP [1, 0.5, 0] g=0: max([1, 1.5, 1]) = 1.5 at 1, max([1, -0.5, -1]) = 1 at 0: 0.5; grad e_1 - e_0",
                 setup(LK_LOSS_RAMP), [1, 0.5, 0], gold: 0, loss: 0.5, grad: [-1, 1, 0]),
    ReferenceRow("RAMP hope tie [3, 2, 0] g=1: s - c = [2, 2, -1], the gold 1 wins; max(s + c) = 4 at 0: 4 - 2; " +
                 "grad e_0 - e_1",
                 setup(LK_LOSS_RAMP), [3, 2, 0], gold: 1, loss: 2, grad: [1, -1, 0]),
    ReferenceRow("RAMP per-example c=[0, 1, 3], alpha=0.5, s=[0, 1, 2] g=0: " +
                 "max([0, 1.5, 3.5]) = 3.5 at 2, max([0, 0.5, 0.5]) tied, lowest index 1: 3; grad e_2 - e_1",
                 setup(LK_LOSS_RAMP) { perExample(&$0); $0.costScale = 0.5 }, [0, 1, 2], gold: 0,
                 cost: [0, 1, 3], loss: 3, grad: [0, -1, 1]),
    ReferenceRow("RAMP masked gold, per-example c=[7, 0.2, 1], s=[-inf, 0, 0.5] g=0: " +
                 "max([-, 0.2, 1.5]) = 1.5 at 2, max([-, -0.2, -0.5]) = -0.2 at 1: 1.7; grad e_2 - e_1",
                 setup(LK_LOSS_RAMP, perExample), [-inf, 0, 0.5], gold: 0, cost: [7, 0.2, 1],
                 loss: 1.7, grad: [0, -1, 1]),

    // SOFT_RAMP: lse(s + c) - lse(s - c)
    ReferenceRow("SOFT_RAMP [0, 0] g=0: ln(1 + e) - ln(1 + 1/e) = ln e = 1; grad [(1-e)/(1+e), (e-1)/(1+e)]",
                 setup(LK_LOSS_SOFT_RAMP), [0, 0], gold: 0, loss: 1, grad: [(1 - e) / (1 + e), (e - 1) / (1 + e)]),
    ReferenceRow("SOFT_RAMP masked, per-example c=[0, 9, ln 2], s=[0, -inf, 0]: ln(1 + 2) - ln(1 + 1/2) = ln 2; " +
                 "grad [1/3 - 2/3, 0, 2/3 - 1/3]",
                 setup(LK_LOSS_SOFT_RAMP, perExample), [0, -inf, 0], gold: 0, cost: [0, 9, ln2],
                 loss: ln2, grad: [-1.0 / 3, 0, 1.0 / 3]),
    ReferenceRow("SOFT_RAMP class matrix g=1, s=0: c = [1, 0, 1], ln(2e + 1) - ln(2/e + 1); " +
                 "grad [e, 1, e]/(2e+1) - [1, e, 1]/(2+e)",
                 setup(LK_LOSS_SOFT_RAMP, matrix), [0, 0, 0], gold: 1, cost: classMatrix,
                 loss: log(2 * e + 1) - log(2 / e + 1),
                 grad: [e / (2 * e + 1) - 1 / (2 + e), 1 / (2 * e + 1) - e / (2 + e), e / (2 * e + 1) - 1 / (2 + e)]),

    // INFINITE_RAMP: max(s + c) - s_oracle
    ReferenceRow("INFINITE_RAMP 0/1 [1, 1.5, 0] g=0: oracle = gold, = HINGE = 1.5; grad e_1 - e_0",
                 setup(LK_LOSS_INFINITE_RAMP), [1, 1.5, 0], gold: 0, loss: 1.5, grad: [-1, 1, 0]),
    ReferenceRow("INFINITE_RAMP per-example c=[0.5, 0.25, 1], s=[0, 1, 2] g=0: " +
                 "oracle 1 (lowest cost), max([0.5, 1.25, 3]) = 3: 3 - 1; grad e_2 - e_1",
                 setup(LK_LOSS_INFINITE_RAMP, perExample), [0, 1, 2], gold: 0, cost: [0.5, 0.25, 1],
                 loss: 2, grad: [0, -1, 1]),
    ReferenceRow("INFINITE_RAMP oracle cost tie -> highest score: c=[1, 0, 0, 0.5], s=[0, 1, 3, 2.75]: " +
                 "oracle 2, max(s + c) = 3.25 at 3: 0.25; grad e_3 - e_2",
                 setup(LK_LOSS_INFINITE_RAMP, perExample), [0, 1, 3, 2.75], gold: 0, cost: [1, 0, 0, 0.5],
                 loss: 0.25, grad: [0, 0, -1, 1]),
    ReferenceRow("INFINITE_RAMP oracle cost and score tie -> lowest index: c=[1, 0, 0, 2], s=[0, 2, 2, 1]: " +
                 "oracle 1, max(s + c) = 3 at 3: 1; grad e_3 - e_1",
                 setup(LK_LOSS_INFINITE_RAMP, perExample), [0, 2, 2, 1], gold: 0, cost: [1, 0, 0, 2],
                 loss: 1, grad: [0, -1, 0, 1]),
    ReferenceRow("INFINITE_RAMP cost_scale 0: the oracle still uses the unscaled cost c=[0.5, 0.25, 1], s=[0, 1, 2]: " +
                 "oracle 1, max(s) = 2: 1; grad e_2 - e_1",
                 setup(LK_LOSS_INFINITE_RAMP) { perExample(&$0); $0.costScale = 0 }, [0, 1, 2], gold: 0,
                 cost: [0.5, 0.25, 1], loss: 1, grad: [0, -1, 1]),
    ReferenceRow("INFINITE_RAMP masked gold, 0/1, s=[-inf, 1, 2] g=0: " +
                 "cost-1 tie -> highest score, oracle 2; max([-, 2, 3]) = 3 at 2: 1; grad 0",
                 setup(LK_LOSS_INFINITE_RAMP), [-inf, 1, 2], gold: 0, loss: 1, grad: [0, 0, 0]),
    ReferenceRow("INFINITE_RAMP class matrix, masked gold g=2: c = [4, 2, 0], s=[1, 3, -inf]: " +
                 "oracle 1; s + c = [5, 5, -] tied, lowest index 0: 5 - 3; grad e_0 - e_1",
                 setup(LK_LOSS_INFINITE_RAMP, matrix), [1, 3, -inf], gold: 2, cost: classMatrix,
                 loss: 2, grad: [1, -1, 0]),

    // SQUARED: (1/K) [kappa (s_g - M)^2 + sum_{j != g} s_j^2]
    ReferenceRow("SQUARED default kappa=1 M=1, [1, 2, 3] g=0: (0 + 4 + 9)/3; grad (2/3) [0, 2, 3]",
                 setup(LK_LOSS_SQUARED), [1, 2, 3], gold: 0, loss: 13.0 / 3, grad: [0, 4.0 / 3, 2]),
    ReferenceRow("SQUARED kappa=2 M=3, [1, 2, -inf, 0.5] g=1 K=3: (2 (2-3)^2 + 1 + 0.25)/3 = 13/12; " +
                 "grad [2/3, -4/3, 0, 1/3]",
                 setup(LK_LOSS_SQUARED) { $0.squareK = 2; $0.squareM = 3 }, [1, 2, -inf, 0.5], gold: 1,
                 loss: 13.0 / 12, grad: [2.0 / 3, -4.0 / 3, 0, 1.0 / 3]),
    ReferenceRow("SQUARED kappa=4 M=0.5, [2, 1] g=1 K=2: (4 * 0.25 + 4)/2 = 2.5; grad [2, (2/2) 4 (0.5)]",
                 setup(LK_LOSS_SQUARED) { $0.squareK = 4; $0.squareM = 0.5 }, [2, 1], gold: 1,
                 loss: 2.5, grad: [2, 2]),

    // SQUENTROPY: lse(s) - s_g + (1/(K-1)) sum_{j != g} s_j^2
    ReferenceRow("SQUENTROPY [0, ln 3] g=1: ln(4/3) + 0^2/1; grad [1/4, -1/4]",
                 setup(LK_LOSS_SQUENTROPY), [0, ln3], gold: 1, loss: log(4.0 / 3), grad: [0.25, -0.25]),
    ReferenceRow("SQUENTROPY [1, 0, 2] g=1: ln(e + 1 + e^2) + (1 + 4)/2; grad p - e_1 + [1, 0, 2]",
                 setup(LK_LOSS_SQUENTROPY), [1, 0, 2], gold: 1, loss: log(e + 1 + e * e) + 2.5,
                 grad: [e / (e + 1 + e * e) + 1, 1 / (e + 1 + e * e) - 1, e * e / (e + 1 + e * e) + 2]),
    ReferenceRow("SQUENTROPY masked [1, -inf, 0, 2] g=2 K=3: ln(e + 1 + e^2) + (1 + 4)/2 (K - 1 = 2 counts no mask)",
                 setup(LK_LOSS_SQUENTROPY), [1, -inf, 0, 2], gold: 2, loss: log(e + 1 + e * e) + 2.5,
                 grad: [e / (e + 1 + e * e) + 1, 0, 1 / (e + 1 + e * e) - 1, e * e / (e + 1 + e * e) + 2]),
    ReferenceRow("SQUENTROPY K=1 [-inf, 2] g=1: 2 - 2 and no square term: 0",
                 setup(LK_LOSS_SQUENTROPY), [-inf, 2], gold: 1, loss: 0, grad: [0, 0]),

    // HOPE_FEAR
    ReferenceRow("HOPE_FEAR defaults (GOLD, LSE f=1) = SOFTMAX_MARGIN: [0, ln 3] g=0: ln(1 + 3e)",
                 setup(LK_LOSS_HOPE_FEAR), [0, ln3], gold: 0, loss: log(1 + 3 * e),
                 grad: [1 / (1 + 3 * e) - 1, 3 * e / (1 + 3 * e)]),
    ReferenceRow("HOPE_FEAR (MAX h=0.5, MAX f=2) cost_scale 2, s=[1,0,0.5], c=[0.5,0,1]: " +
                 "alpha c = [1,0,2], max([3,0,4.5]) - max([0.5,0,-0.5]) = 4; grad e_2 - e_0",
                 setup(LK_LOSS_HOPE_FEAR) {
                     perExample(&$0)
                     $0.hope = LK_TERM_MAX
                     $0.fear = LK_TERM_MAX
                     $0.hopeScale = 0.5
                     $0.fearScale = 2
                     $0.costScale = 2
                 }, [1, 0, 0.5], gold: 0, cost: [0.5, 0, 1], loss: 4, grad: [-1, 0, 1]),
] + hopeFearRows() + [
    // A batch: weights, an ignored row and every reduction.
    ReferenceRow(
        "LOG batch NONE, rows [0, ln 3] g=1, [0, 0] g=0, ignored [5, 5]; weights [2, 0.5, 7]: [2 ln(4/3), 0.5 ln 2, 0]",
        setup(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_NONE },
        batch: logBatch, loss: [2 * log(4.0 / 3), 0.5 * ln2, 0], grad: [0.5, -0.5, -0.25, 0.25, 0, 0]),
    ReferenceRow(
        "LOG batch SUM: 2 ln(4/3) + 0.5 ln 2 (the ignored row's weight 7 counts nowhere)",
        setup(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_SUM },
        batch: logBatch, loss: [2 * log(4.0 / 3) + 0.5 * ln2], grad: [0.5, -0.5, -0.25, 0.25, 0, 0]),
    ReferenceRow(
        "LOG batch MEAN: (2 ln(4/3) + 0.5 ln 2) / 2.5; grad / 2.5",
        setup(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_MEAN },
        batch: logBatch, loss: [(2 * log(4.0 / 3) + 0.5 * ln2) / 2.5],
        grad: [0.5 / 2.5, -0.5 / 2.5, -0.25 / 2.5, 0.25 / 2.5, 0, 0]),
    ReferenceRow(
        "LOG batch MEAN with ignore_label = 0 (a valid class): row [0, 0] g=0 is ignored: 2 ln(4/3) / 2",
        setup(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_MEAN; $0.ignoreLabel = 0 },
        batch: DenseBatch(n: 2, k: 2, scores: [0, ln3, 0, 0], gold: [1, 0], cost: nil, weight: [2, 0.5]),
        loss: [log(4.0 / 3)], grad: [0.25, -0.25, 0, 0]),
]

private let logBatch = DenseBatch(n: 3, k: 2, scores: [0, ln3, 0, 0, 5, 5], gold: [1, 0, -100],
                                  cost: nil, weight: [2, 0.5, 7])

@Suite("Reference table")
struct ReferenceTableTests {
    @Test("closed form, float64", arguments: referenceRows)
    func float64(_ row: ReferenceRow) throws {
        let out = run(row.setup, row.batch)
        try #require(out.status == LK_OK, "\(out.message)")
        for (i, expected) in row.loss.enumerated() {
            let tolerance = row.nearZero ? 1e-14 * abs(expected) : 1e-14 * max(1, abs(expected))
            #expect(isClose(out.loss[i], expected, tolerance), "loss[\(i)] = \(out.loss[i]), expected \(expected)")
        }
        if let grad = row.grad {
            for (j, expected) in grad.enumerated() {
                // Near zero every component keeps its digits, the gold's p_g - 1 = -rest/(1 + rest)
                // included (it must not be formed by subtracting 1 from a number ~1).
                let tolerance = row.nearZero ? 1e-14 * abs(expected) : 1e-14 * max(1, abs(expected))
                #expect(isClose(out.grad[j], expected, tolerance), "grad[\(j)] = \(out.grad[j]), expected \(expected)")
            }
        }
    }

    /// The same rows through lk_dense_f32. The inputs are rounded to float, which moves the
    /// value by up to (sum of |dloss/ds_j|) * ulp(s_j): 8 float32 ulps of max(1, |value|,
    /// |inputs|) covers it; near-zero rows have exactly representable inputs and keep their
    /// digits to 4 float32 ulps of the value itself.
    @Test("closed form, float32", arguments: referenceRows)
    func float32(_ row: ReferenceRow) throws {
        let out = run32(row.setup, row.batch)
        try #require(out.status == LK_OK, "\(out.message)")
        let inputs = max(magnitude(row.batch.scores), (row.setup.costScale ?? 1) * magnitude(row.batch.cost ?? []))
        func tolerance(_ x: Double, gold: Bool = false) -> Double {
            row.nearZero ? 4 * eps32 * abs(x) : 8 * eps32 * max(1, abs(x), inputs)
        }
        for (i, expected) in row.loss.enumerated() {
            #expect(isClose(Double(out.loss[i]), expected, tolerance(expected)),
                    "loss[\(i)] = \(out.loss[i]), expected \(expected)")
        }
        if let grad = row.grad {
            for (j, expected) in grad.enumerated() {
                #expect(isClose(Double(out.grad[j]), expected, tolerance(expected, gold: j == Int(row.batch.gold[0]))),
                        "grad[\(j)] = \(out.grad[j]), expected \(expected)")
            }
        }
    }
}
