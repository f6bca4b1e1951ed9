// Gradients by fourth-order central differences in float64, for every loss of the registry x
// cost layout x reduction x with/without weights, on random inputs that include +-50 and +-1e4
// offsets, masked classes, an ignored row and (weighted) a zero-weight row. The loss written is
// also checked against the reference model, and the gradient against the model's closed-form
// gradient (a second, tighter witness; the finite differences are the independent one).
//
// Steps and tolerances:
//  - step h per row from `finiteDifferenceStep` (2^-9 for |s| < 1e3, 2^-7 for |s| ~ 1e4): about
//    (eps |s|)^(1/5), the step that balances the h^4/30 |f^(5)| truncation error against the
//    (18/12) delta/h rounding error of a loss computed with absolute error delta ~ eps |s|.
//  - tolerance  1e-7 * max(c_i, |g|)  +  1.5 * delta / h,  delta = 64 sqrt(k) eps * B,
//    where c_i is the row's gradient coefficient (weight, / summed weight under MEAN) and B
//    bounds the magnitude of what is summed into the written loss (sum of c_i (|loss_i| + |s_i|
//    + alpha |c_i|)). For unit-scale softmax terms the truncation error is ~1e-11 and the
//    rounding error ~1e-12..1e-8, so 1e-7 relative leaves a wide margin, while a wrong gradient
//    (a missing weight, 1/K, cost scale or sign; the wrong argmax) is off by >= 1e-2.
//  - Piecewise-linear losses (max / oracle terms): rows are redrawn until every max and oracle
//    winner leads its runner-up by more than 16 h, so no step of +-2h crosses a kink; on a linear
//    piece the difference quotient is exact up to rounding, so the test still fails for a wrong
//    argmax or tie rule.
import CLossKit
import Glibc
import Testing

/// The cost scale used with each layout: 1 for 0/1 costs, and != 1 for the others so that a
/// dropped or doubly applied alpha shows.
func costScale(for layout: Int32) -> Double {
    switch layout {
    case LK_COST_PER_EXAMPLE: return 0.75
    case LK_COST_CLASS_MATRIX: return 2
    default: return 1
    }
}

/// Nominal magnitude of the scores of row i (see `drawScore`).
func profileScale(_ i: Int) -> Double { [5, 55, 105, 1e4, 1e4, 1e4][i % 6] }

@Suite("Gradients")
struct GradientTests {
    @Test("gradient = 4th-order finite differences of the loss, and loss = reference",
          arguments: LossCase.all, allLayouts)
    func finiteDifferences(_ c: LossCase, _ layout: Int32) throws {
        let alpha = costScale(for: layout)
        for reduction in allReductions {
            for weighted in [false, true] {
                var rng = SplitMix64("fd", c.name, layoutName(layout), reductionName(reduction), "\(weighted)")
                var recipe = BatchRecipe(n: 8, k: 5, layout: layout, weighted: weighted)
                recipe.ignoredRows = [6]
                if weighted { recipe.zeroWeightRows = [7] }
                if c.model.hasKinks {
                    recipe.minimumKinkGap = { 16 * finiteDifferenceStep(scale: profileScale($0)) }
                }
                let b = drawBatch(for: c, recipe, costScale: alpha, &rng)
                let setup = c.setup.with {
                    $0.reduction = reduction
                    $0.layout = layout
                    $0.costScale = alpha
                }
                let context = "\(c.name) \(layoutName(layout)) \(reductionName(reduction)) weighted=\(weighted)"
                try checkAgainstReferenceAndDifferences(c, b, setup, layout: layout, alpha: alpha,
                                                        reduction: reduction, where: context)
            }
        }
    }

    func checkAgainstReferenceAndDifferences(
        _ c: LossCase, _ b: DenseBatch, _ setup: Setup, layout: Int32, alpha: Double,
        reduction: Int32, where context: String
    ) throws {
        let ref = reference(c, b, layout: layout, costScale: alpha, reduction: reduction)
        let out = run(setup, b)
        try #require(out.status == LK_OK, "\(context): \(out.message)")
        let root = Double(b.k).squareRoot()

        for (idx, expected) in ref.loss.enumerated() {
            #expect(isClose(out.loss[idx], expected, 64 * root * eps64 * ref.scale[idx]),
                    "\(context): loss[\(idx)] = \(out.loss[idx]), reference \(expected)")
        }

        for i in 0..<b.n {
            let which = reduction == LK_REDUCE_NONE ? i : 0
            guard let example = ref.examples[i] else {
                // Ignored or zero-weight: exactly zero, no NaN.
                let row = Array(out.grad[i * b.k..<(i + 1) * b.k])
                #expect(row.allSatisfy { $0 == 0 }, "\(context): skipped row \(i) has gradient \(row)")
                continue
            }
            let coefficient = ref.coefficient[i]
            let inputs = magnitude(b.row(i)) + alpha * magnitude(b.costRow(i, layout: layout))
            let h = finiteDifferenceStep(scale: rowScale(b, i))
            for j in 0..<b.k {
                let at = i * b.k + j
                let got = out.grad[at]
                if b.scores[at] == -Double.infinity {
                    #expect(got == 0, "\(context): masked class (\(i), \(j)) has gradient \(got)")
                    continue
                }
                // Closed-form gradient of the reference model.
                let closed = coefficient * example.grad[j]
                #expect(isClose(got, closed, 64 * eps64 * coefficient * (inputs + abs(example.grad[j]))),
                        "\(context): grad[\(i), \(j)] = \(got), reference \(closed)")
                // Finite differences of what the library writes to loss.
                var s = b.scores
                let x = s[at]
                let fd = fourthOrderDerivative(step: h) { t in
                    s[at] = x + t
                    return run(setup, b, wantGrad: false, scores: s).loss[which]
                }
                let delta = 64 * root * eps64 * ref.scale[which]
                let tolerance = 1e-7 * max(coefficient, abs(fd)) + 1.5 * delta / h
                #expect(isClose(got, fd, tolerance),
                        "\(context): grad[\(i), \(j)] = \(got), finite difference \(fd) (h = \(h), tol \(tolerance))")
            }
        }
    }

    /// A row of k = 32000 classes (vocabulary-sized), 0/1 and per-example costs: directional
    /// derivatives along random directions d (max |d_j| = 1) instead of every coordinate.
    /// f(t) = loss(s + t d); f'(0) = sum_j grad_j d_j. Same step and tolerance reasoning as
    /// above, with sqrt(k) in the rounding bound for the sums over 32000 classes.
    @Test("wide row (k = 32000): directional derivatives",
          arguments: LossCase.all, [LK_COST_ZERO_ONE, LK_COST_PER_EXAMPLE])
    func wideRow(_ c: LossCase, _ layout: Int32) throws {
        let alpha = costScale(for: layout)
        var rng = SplitMix64("wide", c.name, layoutName(layout))
        // Row 0: N(0, 1.5); row 1: 50 + N(0, 1.5) (profiles 0 and 1); 10% of the classes masked.
        var recipe = BatchRecipe(n: 2, k: 32000, layout: layout, weighted: true, maskProbability: 0.1)
        let h = finiteDifferenceStep(scale: 55)
        if c.model.hasKinks { recipe.minimumKinkGap = { _ in 16 * h } }
        let b = drawBatch(for: c, recipe, costScale: alpha, &rng)
        let setup = c.setup.with {
            $0.reduction = LK_REDUCE_SUM
            $0.layout = layout
            $0.costScale = alpha
        }
        let ref = reference(c, b, layout: layout, costScale: alpha, reduction: LK_REDUCE_SUM)
        let out = run(setup, b)
        try #require(out.status == LK_OK, "\(out.message)")
        let root = Double(b.k).squareRoot()
        let delta = 64 * root * eps64 * ref.scale[0]
        #expect(isClose(out.loss[0], ref.loss[0], delta), "loss \(out.loss[0]), reference \(ref.loss[0])")

        var worst = 0.0
        let rowInputs = (0..<b.n).map { magnitude(b.row($0)) + alpha * magnitude(b.costRow($0, layout: layout)) }
        for at in 0..<b.n * b.k where b.scores[at] != -Double.infinity {
            let i = at / b.k
            let inputs = rowInputs[i]
            let scaled = abs(out.grad[at] - ref.grad[at]) / (64 * eps64 * ref.coefficient[i] * (inputs + 1))
            worst = max(worst, scaled)
        }
        #expect(worst <= 1, "gradient differs from the reference by \(worst) x its tolerance")
        let masked = (0..<b.n * b.k).filter { b.scores[$0] == -Double.infinity }
        #expect(masked.allSatisfy { out.grad[$0] == 0 }, "masked classes must get gradient 0")

        for direction in 0..<2 {
            var d = (0..<b.n * b.k).map { _ in rng.normal() }
            let top = d.map(abs).max()!
            d = d.map { $0 / top }
            var analytic = 0.0, size = 0.0
            for at in 0..<d.count where b.scores[at] != -Double.infinity {
                analytic += out.grad[at] * d[at]
                size += abs(out.grad[at] * d[at])
            }
            let fd = fourthOrderDerivative(step: h) { t in
                run(setup, b, wantGrad: false, scores: zip(b.scores, d).map { $0 + t * $1 }).loss[0]
            }
            let tolerance = 1e-7 * max(1, size) + 1.5 * delta / h
            #expect(isClose(analytic, fd, tolerance),
                    "direction \(direction): grad . d = \(analytic), finite difference \(fd) (tol \(tolerance))")
        }
    }
}
