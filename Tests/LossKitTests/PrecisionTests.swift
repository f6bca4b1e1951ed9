// float32 against float64: the same inputs (rounded to float once, then fed to both entry
// points) must give a loss and gradient that agree within a few float32 ulps of the magnitude
// of the inputs (DESIGN.md §2 "Accuracy": a difference of two terms near 1e4 cannot be more
// accurate than that). Magnitude of example i: the largest |score| and |alpha * cost| it reads,
// and |loss_i| itself (the square losses grow like s^2).
import CLossKit
import Glibc
import Testing

@Suite("float32 vs float64")
struct PrecisionTests {
    @Test("float32 agrees with float64 within 4 float32 ulps of the input magnitude",
          arguments: LossCase.all, allLayouts)
    func float32MatchesFloat64(_ c: LossCase, _ layout: Int32) throws {
        let alpha = costScale(for: layout)
        for reduction in allReductions {
            var rng = SplitMix64("f32", c.name, layoutName(layout), reductionName(reduction))
            var recipe = BatchRecipe(n: 12, k: 7, layout: layout, weighted: true)
            recipe.ignoredRows = [5]
            recipe.zeroWeightRows = [9]
            // Away from kinks, so that both widths pick the same argmax even if a float32
            // implementation rounds s + c differently (the loss is continuous there anyway).
            if c.model.hasKinks { recipe.minimumKinkGap = { _ in 1e-2 } }
            let b = drawBatch(for: c, recipe, costScale: alpha, &rng).roundedToFloat()
            let setup = c.setup.with {
                $0.reduction = reduction
                $0.layout = layout
                $0.costScale = alpha
            }
            let out64 = run(setup, b)
            let out32 = run32(setup, b)
            try #require(out64.status == LK_OK && out32.status == LK_OK, "\(out64.message) \(out32.message)")
            let ref = reference(c, b, layout: layout, costScale: alpha, reduction: reduction)
            let context = "\(c.name) \(layoutName(layout)) \(reductionName(reduction))"

            // ref.scale[idx] = sum of c_i (|loss_i| + |inputs_i|) over what is written there.
            for idx in out64.loss.indices {
                let tolerance = 4 * eps32 * ref.scale[idx]
                #expect(isClose(Double(out32.loss[idx]), out64.loss[idx], tolerance),
                        "\(context): loss[\(idx)] f32 \(out32.loss[idx]) vs f64 \(out64.loss[idx]) (tol \(tolerance))")
            }
            for i in 0..<b.n {
                let inputs = magnitude(b.row(i)) + alpha * magnitude(b.costRow(i, layout: layout))
                for j in 0..<b.k {
                    let at = i * b.k + j
                    let tolerance = 4 * eps32 * ref.coefficient[i] * inputs + 4 * eps32 * abs(out64.grad[at])
                    #expect(isClose(Double(out32.grad[at]), out64.grad[at], tolerance),
                            """
                            \(context): grad[\(i), \(j)] f32 \(out32.grad[at]) vs f64 \(out64.grad[at]) \
                            (tol \(tolerance))
                            """)
                }
            }
        }
    }
}
