// Named properties of DESIGN.md §2–§3 and include/losskit.h, run over the registry so that every
// loss gets every property. Inputs are random (seeded) and include +-50 / +-1e4 offsets and
// masked classes. "Same values" means bit-identical; "close" allows a few ulps of the quantity's
// natural scale where the two sides legitimately round differently.
import CLossKit
import Dispatch
import Glibc
@testable import LossKit
import Testing

extension DenseBatch {
    /// The batch with extra rows inserted at the given final positions (ascending), each with its
    /// scores, gold, weight (if the batch is weighted) and per-example cost row (if it has one).
    func inserting(_ extra: [(at: Int, scores: [Double], gold: Int32, weight: Double)],
                   layout: Int32, costFill: Double = .nan) -> DenseBatch {
        var rows = (0..<n).map { (row($0), gold[$0], weight?[$0] ?? 1,
                                  layout == LK_COST_PER_EXAMPLE ? Array(cost![$0 * k..<($0 + 1) * k]) : []) }
        for e in extra {
            rows.insert((e.scores, e.gold, e.weight,
                         layout == LK_COST_PER_EXAMPLE ? [Double](repeating: costFill, count: k) : []), at: e.at)
        }
        var b = self
        b.n = rows.count
        b.scores = rows.flatMap { $0.0 }
        b.gold = rows.map { $0.1 }
        if weight != nil { b.weight = rows.map { $0.2 } }
        if layout == LK_COST_PER_EXAMPLE { b.cost = rows.flatMap { $0.3 } }
        return b
    }
}

/// A random batch of n rows of k classes for property tests.
func propertyBatch(_ c: LossCase, _ layout: Int32, seed: String, n: Int = 6, k: Int = 5,
                   weighted: Bool = true, change: (inout BatchRecipe) -> Void = { _ in }) -> DenseBatch {
    var rng = SplitMix64(seed, c.name, layoutName(layout))
    var recipe = BatchRecipe(n: n, k: k, layout: layout, weighted: weighted)
    change(&recipe)
    return drawBatch(for: c, recipe, costScale: costScale(for: layout), &rng)
}

func propertySetup(_ c: LossCase, _ layout: Int32, _ reduction: Int32) -> Setup {
    c.setup.with {
        $0.reduction = reduction
        $0.layout = layout
        $0.costScale = costScale(for: layout)
    }
}

/// Rows of `out` other than `skip`, mapped to the rows of a batch without the inserted ones.
func expectSameRows(_ with: DenseOutput<Double>, _ without: DenseOutput<Double>, k: Int, kept: [Int],
                    reduction: Int32, _ context: String) {
    for (dropped, i) in kept.enumerated() {
        if reduction == LK_REDUCE_NONE {
            #expect(isClose(with.loss[i], without.loss[dropped], 4 * eps64 * abs(without.loss[dropped])),
                    "\(context): loss[\(i)] \(with.loss[i]) vs \(without.loss[dropped])")
        }
        for j in 0..<k {
            let a = with.grad[i * k + j], b = without.grad[dropped * k + j]
            #expect(isClose(a, b, 4 * eps64 * abs(b)), "\(context): grad[\(i), \(j)] \(a) vs \(b)")
        }
    }
    if reduction != LK_REDUCE_NONE {
        #expect(isClose(with.loss[0], without.loss[0], 4 * eps64 * abs(without.loss[0])),
                "\(context): loss \(with.loss[0]) vs \(without.loss[0])")
    }
}

@Suite("Properties")
struct PropertyTests {
    @Test("weight multiplies each example's loss and gradient", arguments: LossCase.all, allLayouts)
    func weightMultiplies(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "weight", weighted: false)
        var weighted = b
        var rng = SplitMix64("weights", c.name)
        weighted.weight = (0..<b.n).map { _ in rng.uniform(0.25, 3) }
        let w = weighted.weight!
        for reduction in [LK_REDUCE_NONE, LK_REDUCE_SUM] {
            let setup = propertySetup(c, layout, reduction)
            let plain = run(setup, b), scaled = run(setup, weighted)
            try #require(plain.status == LK_OK && scaled.status == LK_OK, "\(plain.message) \(scaled.message)")
            if reduction == LK_REDUCE_NONE {
                for i in 0..<b.n {
                    // w * loss_i is rounded once by both sides.
                    #expect(isClose(scaled.loss[i], w[i] * plain.loss[i], 2 * eps64 * abs(w[i] * plain.loss[i])),
                            "loss[\(i)] \(scaled.loss[i]) vs w * \(plain.loss[i])")
                }
            } else {
                let unweighted = run(propertySetup(c, layout, LK_REDUCE_NONE), b).loss
                let expected = (0..<b.n).map { w[$0] * unweighted[$0] }
                let total = expected.reduce(0, +)
                let size = expected.map(abs).reduce(0, +)
                #expect(isClose(scaled.loss[0], total, 8 * eps64 * size), "sum \(scaled.loss[0]) vs \(total)")
            }
            for i in 0..<b.n {
                for j in 0..<b.k {
                    let at = i * b.k + j
                    // The gradient is a sum of up to three terms of magnitude <= max(1, |g|); the
                    // weight multiplies each before or after the sum.
                    #expect(isClose(scaled.grad[at], w[i] * plain.grad[at],
                                    8 * eps64 * w[i] * (abs(plain.grad[at]) + 2)),
                            "grad[\(i), \(j)] \(scaled.grad[at]) vs w * \(plain.grad[at])")
                }
            }
        }
    }

    @Test("NULL weight equals all ones (same bits)", arguments: LossCase.all, allLayouts)
    func nullWeightIsOnes(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "ones", weighted: false)
        var ones = b
        ones.weight = [Double](repeating: 1, count: b.n)
        for reduction in allReductions {
            let setup = propertySetup(c, layout, reduction)
            let a = run(setup, b), o = run(setup, ones)
            try #require(a.status == LK_OK && o.status == LK_OK)
            #expect(sameValues(a.loss, o.loss), "\(reductionName(reduction)): \(a.loss) vs \(o.loss)")
            #expect(sameValues(a.grad, o.grad), "\(reductionName(reduction)): gradients differ")
        }
    }

    @Test("ignored rows add nothing: equal to dropping them; their gold and scores are not read",
          arguments: LossCase.all, allLayouts)
    func ignoredRowsAddNothing(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "ignored")
        let k = b.k
        // gold = ignore_label = 12345 (outside [0, k): not validated); NaN and +inf scores and NaN
        // costs (not read); valid weights (which must not enter the mean).
        let bad1: [Double] = [.nan, .infinity, 1, -.infinity, 2]
        let bad2 = [Double](repeating: -.infinity, count: k)
        let bad3: [Double] = [.infinity, .nan, .nan, 0, 0]
        let extended = b.inserting([(0, bad1, 12345, 1.5), (3, bad2, 12345, 2), (8, bad3, 12345, 0.5)], layout: layout)
        let kept = [1, 2, 4, 5, 6, 7]
        for reduction in allReductions {
            let setup = propertySetup(c, layout, reduction).with { $0.ignoreLabel = 12345 }
            let with = run(setup, extended), without = run(setup, b)
            try #require(with.status == LK_OK, "\(with.message)")
            try #require(without.status == LK_OK, "\(without.message)")
            let context = reductionName(reduction)
            for i in [0, 3, 8] {
                if reduction == LK_REDUCE_NONE {
                    #expect(with.loss[i] == 0, "\(context): ignored loss[\(i)] = \(with.loss[i])")
                }
                #expect((0..<k).allSatisfy { with.grad[i * k + $0] == 0 },
                        "\(context): ignored row \(i) has a gradient")
            }
            expectSameRows(with, without, k: k, kept: kept, reduction: reduction, context)
        }
    }

    @Test("zero-weight rows: gold not validated, contribute exactly 0 even with NaN scores",
          arguments: LossCase.all, allLayouts)
    func zeroWeightRows(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "zero-weight")
        let k = b.k
        let nan = [Double](repeating: .nan, count: k)
        let masked = [Double](repeating: -.infinity, count: k)
        let mixed: [Double] = [.infinity, .nan, 0, -.infinity, 1]
        // Golds 999 and -7 are out of range (not validated); -7 != ignore_label, so these rows are
        // skipped for their weight alone.
        let extended = b.inserting([(1, nan, 999, 0), (4, masked, -7, 0), (7, mixed, 2, 0)], layout: layout)
        let kept = [0, 2, 3, 5, 6, 8]
        for reduction in allReductions {
            let setup = propertySetup(c, layout, reduction)
            let with = run(setup, extended), without = run(setup, b)
            try #require(with.status == LK_OK, "\(with.message)")
            try #require(without.status == LK_OK, "\(without.message)")
            let context = reductionName(reduction)
            for i in [1, 4, 7] {
                if reduction == LK_REDUCE_NONE {
                    #expect(with.loss[i] == 0, "\(context): zero-weight loss[\(i)] = \(with.loss[i])")
                }
                #expect((0..<k).allSatisfy { with.grad[i * k + $0] == 0 },
                        "\(context): zero-weight row \(i) has a gradient")
            }
            // A zero weight adds 0 to the mean's denominator too.
            expectSameRows(with, without, k: k, kept: kept, reduction: reduction, context)
        }
    }

    @Test("mean over zero weight is 0 with zero gradient (all weights 0, or every row ignored)",
          arguments: LossCase.all)
    func meanOverZeroWeight(_ c: LossCase) throws {
        for layout in allLayouts {
            var b = propertyBatch(c, layout, seed: "zero-mean")
            b.weight = [Double](repeating: 0, count: b.n)
            b.scores[3] = .nan  // not read: weight 0
            var ignored = propertyBatch(c, layout, seed: "all-ignored")
            ignored.gold = [Int32](repeating: -100, count: ignored.n)
            for batch in [b, ignored] {
                for reduction in allReductions {
                    let out = run(propertySetup(c, layout, reduction), batch)
                    try #require(out.status == LK_OK, "\(out.message)")
                    #expect(out.loss.allSatisfy { $0 == 0 },
                            "\(layoutName(layout)) \(reductionName(reduction)): loss \(out.loss)")
                    #expect(out.grad.allSatisfy { $0 == 0 },
                            "\(layoutName(layout)) \(reductionName(reduction)): non-zero gradient")
                }
            }
        }
    }

    @Test("mean = sum / summed weight of the rows not ignored", arguments: LossCase.all, allLayouts)
    func meanIsSumOverWeight(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "mean", n: 8) {
            $0.ignoredRows = [1, 4]
            $0.zeroWeightRows = [6]
        }
        let total = run(propertySetup(c, layout, LK_REDUCE_SUM), b)
        let mean = run(propertySetup(c, layout, LK_REDUCE_MEAN), b)
        try #require(total.status == LK_OK && mean.status == LK_OK, "\(total.message) \(mean.message)")
        let w = (0..<b.n).filter { b.gold[$0] != -100 }.map { b.weight![$0] }.reduce(0, +)
        #expect(isClose(mean.loss[0], total.loss[0] / w, 2 * eps64 * abs(total.loss[0] / w)),
                "mean \(mean.loss[0]) vs sum / W = \(total.loss[0] / w)")
        for at in 0..<b.n * b.k {
            let i = at / b.k
            let bound = 16 * eps64 * (abs(total.grad[at]) + 2 * (b.weight![i])) / w
            #expect(isClose(mean.grad[at], total.grad[at] / w, bound),
                    "grad[\(at)] \(mean.grad[at]) vs \(total.grad[at] / w)")
        }
    }

    @Test("n = 0: SUM and MEAN write 0, NONE writes nothing; nothing is read", arguments: LossCase.all)
    func emptyBatch(_ c: LossCase) {
        for layout in allLayouts {
            for reduction in allReductions {
                let o = propertySetup(c, layout, reduction).options
                for k in [Int64(0), 5] {
                    let out: DenseOutput<Double> = callDense(o, n: 0, k: k, scores: nil, gold: nil,
                                                             lossCount: 1, gradCount: 1)
                    #expect(out.status == LK_OK, "\(out.message)")
                    #expect(out.loss[0] == (reduction == LK_REDUCE_NONE ? poisonValue : 0),
                            "\(layoutName(layout)) \(reductionName(reduction)) k=\(k): loss \(out.loss[0])")
                    #expect(out.grad[0] == poisonValue, "the gradient of no rows must not be written")
                    let out32: DenseOutput<Float> = callDense(o, n: 0, k: k, scores: nil, gold: nil,
                                                              lossCount: 1, gradCount: nil)
                    #expect(out32.status == LK_OK)
                    #expect(out32.loss[0] == (reduction == LK_REDUCE_NONE ? Float(poisonValue) : 0))
                }
            }
        }
    }

    @Test("optional outputs: loss NULL or grad NULL leave the other output the same",
          arguments: LossCase.all, allLayouts)
    func optionalOutputs(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "optional")
        for reduction in allReductions {
            let setup = propertySetup(c, layout, reduction)
            let both = run(setup, b)
            let gradOnly = run(setup, b, wantLoss: false)
            let lossOnly = run(setup, b, wantGrad: false)
            let neither = run(setup, b, wantLoss: false, wantGrad: false)
            try #require(both.status == LK_OK && gradOnly.status == LK_OK && lossOnly.status == LK_OK)
            #expect(neither.status == LK_OK)
            #expect(sameValues(both.grad, gradOnly.grad),
                    "\(reductionName(reduction)): gradient changes when loss is NULL")
            #expect(sameValues(both.loss, lossOnly.loss), "\(reductionName(reduction)): loss changes when grad is NULL")
        }
    }

    @Test("NONE: each example's weighted loss, and its weighted gradient (= that example alone)",
          arguments: LossCase.all, allLayouts)
    func noneIsPerExample(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "none")
        let none = run(propertySetup(c, layout, LK_REDUCE_NONE), b)
        let sum = run(propertySetup(c, layout, LK_REDUCE_SUM), b)
        try #require(none.status == LK_OK && sum.status == LK_OK)
        let size = none.loss.map(abs).reduce(0, +)
        #expect(isClose(none.loss.reduce(0, +), sum.loss[0], 8 * eps64 * size), "sum of NONE vs SUM")
        for at in 0..<b.n * b.k {
            #expect(isClose(none.grad[at], sum.grad[at], 4 * eps64 * abs(sum.grad[at])),
                    "NONE vs SUM gradient at \(at)")
        }
        for i in 0..<b.n {
            // Example i alone, with its weight, under SUM.
            var alone = DenseBatch(n: 1, k: b.k, scores: b.row(i), gold: [b.gold[i]], cost: nil, weight: [b.weight![i]])
            switch layout {
            case LK_COST_PER_EXAMPLE: alone.cost = Array(b.cost![i * b.k..<(i + 1) * b.k])
            case LK_COST_CLASS_MATRIX: alone.cost = b.cost
            default: break
            }
            let one = run(propertySetup(c, layout, LK_REDUCE_SUM), alone)
            try #require(one.status == LK_OK)
            #expect(isClose(none.loss[i], one.loss[0], 4 * eps64 * abs(one.loss[0])), "loss[\(i)]")
            for j in 0..<b.k {
                #expect(isClose(none.grad[i * b.k + j], one.grad[j], 4 * eps64 * abs(one.grad[j])), "grad[\(i), \(j)]")
            }
        }
    }

    @Test("loss >= 0 where the theory says so (costs >= 0, gold cost 0)", arguments: LossCase.all, allLayouts)
    func nonNegative(_ c: LossCase, _ layout: Int32) throws {
        guard c.model.sign != .none else { return }
        for negativeCosts in [false, true] where !negativeCosts || c.model.sign == .always {
            let b = propertyBatch(c, layout, seed: "sign \(negativeCosts)", n: 30, weighted: false) {
                $0.costRange = negativeCosts ? -2...3 : 0...3
                $0.zeroGoldCost = !negativeCosts
            }
            let out = run(propertySetup(c, layout, LK_REDUCE_NONE), b)
            try #require(out.status == LK_OK)
            for i in 0..<b.n {
                #expect(out.loss[i] >= 0, "loss[\(i)] = \(out.loss[i]) < 0 (negative costs: \(negativeCosts))")
            }
        }
    }

    @Test("softmax-margin >= log loss and >= hinge when costs >= 0", arguments: allLayouts)
    func softmaxMarginBounds(_ layout: Int32) throws {
        let b = propertyBatch(.softmaxMargin, layout, seed: "bounds", n: 30, weighted: false) { $0.costRange = 0...3 }
        let sm = run(propertySetup(.softmaxMargin, layout, LK_REDUCE_NONE), b)
        let log = run(propertySetup(.log, layout, LK_REDUCE_NONE), b)
        let hinge = run(propertySetup(.hinge, layout, LK_REDUCE_NONE), b)
        try #require(sm.status == LK_OK && log.status == LK_OK && hinge.status == LK_OK)
        for i in 0..<b.n {
            // Mathematically lse(s + c) >= lse(s) and lse(v) >= max(v); allow the rounding of
            // values computed at the scale of the scores.
            let slack = 4 * eps64 * (magnitude(b.row(i)) + abs(sm.loss[i]))
            #expect(sm.loss[i] >= log.loss[i] - slack, "row \(i): softmax-margin \(sm.loss[i]) < log \(log.loss[i])")
            #expect(sm.loss[i] >= hinge.loss[i] - slack,
                    "row \(i): softmax-margin \(sm.loss[i]) < hinge \(hinge.loss[i])")
        }
    }

    /// (named loss, HOPE_FEAR hope, hope_scale, fear, fear_scale). For GOLD and ORACLE hope the
    /// hope_scale is set to 7: it must be ignored.
    static let presets: [(LossCase, Int32, Double, Int32, Double)] = [
        (.log, LK_TERM_GOLD, 7, LK_TERM_LSE, 0),
        (.perceptron, LK_TERM_GOLD, 7, LK_TERM_MAX, 0),
        (.hinge, LK_TERM_GOLD, 7, LK_TERM_MAX, 1),
        (.softmaxMargin, LK_TERM_GOLD, 7, LK_TERM_LSE, 1),
        (.ramp, LK_TERM_MAX, 1, LK_TERM_MAX, 1),
        (.softRamp, LK_TERM_LSE, 1, LK_TERM_LSE, 1),
        (.infiniteRamp, LK_TERM_ORACLE, 7, LK_TERM_MAX, 1),
    ]

    @Test("HOPE_FEAR presets equal the named losses", arguments: 0..<7, allLayouts)
    func presetsEqualHopeFear(_ index: Int, _ layout: Int32) throws {
        let (named, hope, h, fear, f) = Self.presets[index]
        let b = propertyBatch(named, layout, seed: "preset", n: 8)
        for reduction in [LK_REDUCE_NONE, LK_REDUCE_MEAN] {
            let a = run(propertySetup(named, layout, reduction), b)
            let general = Setup(loss: LK_LOSS_HOPE_FEAR, reduction: reduction, layout: layout,
                                costScale: costScale(for: layout), hope: hope, fear: fear,
                                hopeScale: h, fearScale: f)
            let g = run(general, b)
            try #require(a.status == LK_OK && g.status == LK_OK, "\(a.message) \(g.message)")
            let ref = reference(named, b, layout: layout, costScale: costScale(for: layout), reduction: reduction)
            for idx in a.loss.indices {
                #expect(isClose(g.loss[idx], a.loss[idx], 4 * eps64 * ref.scale[idx]),
                        "\(named.name) \(reductionName(reduction)): HOPE_FEAR \(g.loss[idx]) vs \(a.loss[idx])")
            }
            for at in a.grad.indices {
                #expect(isClose(g.grad[at], a.grad[at], 4 * eps64 * abs(a.grad[at])),
                        "\(named.name) \(reductionName(reduction)): grad[\(at)] \(g.grad[at]) vs \(a.grad[at])")
            }
        }
    }

    @Test("NaN in a score: that example's loss and whole gradient row are NaN, others unaffected",
          arguments: LossCase.all, allLayouts)
    func nanPropagates(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "nan")
        var rng = SplitMix64("nan position", c.name, layoutName(layout))
        var poisoned = b
        poisoned.scores[2 * b.k + rng.index(below: b.k)] = .nan
        for reduction in allReductions {
            let setup = propertySetup(c, layout, reduction)
            let clean = run(setup, b), out = run(setup, poisoned)
            try #require(clean.status == LK_OK && out.status == LK_OK, "\(out.message)")
            let context = reductionName(reduction)
            if reduction == LK_REDUCE_NONE {
                #expect(out.loss[2].isNaN, "\(context): loss[2] = \(out.loss[2])")
                for i in 0..<b.n where i != 2 {
                    #expect(out.loss[i] == clean.loss[i], "\(context): loss[\(i)] changed")
                }
            } else {
                #expect(out.loss[0].isNaN, "\(context): total \(out.loss[0]) should be NaN")
            }
            for at in 0..<b.n * b.k {
                if at / b.k == 2 {
                    #expect(out.grad[at].isNaN, "\(context): grad[2, \(at % b.k)] = \(out.grad[at])")
                } else {
                    #expect(out.grad[at] == clean.grad[at], "\(context): grad[\(at / b.k), \(at % b.k)] changed")
                }
            }
        }
    }

    @Test("masked classes get gradient exactly 0", arguments: LossCase.all, allLayouts)
    func maskedGetZero(_ c: LossCase, _ layout: Int32) throws {
        let b = propertyBatch(c, layout, seed: "masked", n: 10, k: 6) { $0.maskProbability = 0.5 }
        for reduction in allReductions {
            let out = run(propertySetup(c, layout, reduction), b)
            try #require(out.status == LK_OK)
            let masked = (0..<b.n * b.k).filter { b.scores[$0] == -.infinity }
            #expect(!masked.isEmpty)
            #expect(masked.allSatisfy { out.grad[$0] == 0 },
                    "\(reductionName(reduction)): masked classes with gradient")
        }
    }

    /// Written straight from the formula, K = number of unmasked classes:
    ///     loss = lse(s) - (1 - eps) s_g - (eps / K) sum_j s_j,   grad = p - ((1 - eps) e_g + eps / K)
    @Test("label smoothing: lse - (1-eps) s_g - (eps/K) sum s, K = unmasked classes",
          arguments: [0.0, 0.05, 0.3, 0.9])
    func labelSmoothingFormula(_ epsilon: Double) throws {
        var rng = SplitMix64("smoothing \(epsilon)")
        let (n, k) = (12, 6)
        var b = DenseBatch(n: n, k: k, scores: [], gold: [], cost: nil, weight: nil)
        for i in 0..<n {
            let g = rng.index(below: k)
            b.gold.append(Int32(g))
            for j in 0..<k {
                b.scores.append(j != g && rng.chance(0.3) ? -.infinity : drawScore(profile: i, &rng))
            }
        }
        let out = run(Setup(loss: LK_LOSS_LOG, reduction: LK_REDUCE_NONE, labelSmoothing: epsilon), b)
        try #require(out.status == LK_OK, "\(out.message)")
        for i in 0..<n {
            let s = b.row(i), g = Int(b.gold[i])
            let live = s.filter { $0 != -.infinity }
            let kk = Double(live.count)
            let m = live.max()!
            let z = live.map { exp($0 - m) }.reduce(0, +)
            let lse = m + log(z)
            let expected = lse - (1 - epsilon) * s[g] - epsilon / kk * live.reduce(0, +)
            let scale = magnitude(s)
            #expect(isClose(out.loss[i], expected, 64 * eps64 * scale), "row \(i): \(out.loss[i]) vs \(expected)")
            for j in 0..<k {
                let expectedGrad = s[j] == -.infinity
                    ? 0
                    : exp(s[j] - m) / z - (j == g ? 1 - epsilon : 0) - epsilon / kk
                #expect(isClose(out.grad[i * k + j], expectedGrad, 64 * eps64 * scale),
                        "row \(i) grad[\(j)]: \(out.grad[i * k + j]) vs \(expectedGrad)")
            }
        }
    }

    /// 24,576 rows of 16 classes: 3 * 2^17 values, three threads' worth (Parallel.elementsPerThread
    /// = 2^17 values per thread) in 24 chunks (Chunks.target = 2^14 values), so threads = 2 and 3
    /// really split the batch, and 0 (every core) as far as this machine has cores: the test asks
    /// the library how many threads its passes ran on. The cost layout matters only to the losses
    /// that read costs; SUM adds the same partial sums as MEAN.
    @Test("same bits at threads = 0, 1, 2, 3 on a batch that splits 3 ways", arguments: LossCase.all)
    func threadsDoNotChangeBits(_ c: LossCase) throws {
        let n = 24_576, k = 16
        for layout in c.model.readsCosts ? allLayouts : [LK_COST_ZERO_ONE] {
            let b = propertyBatch(c, layout, seed: "threads", n: n, k: k)
            for reduction in [LK_REDUCE_NONE, LK_REDUCE_MEAN] {
                let setup = propertySetup(c, layout, reduction)
                _ = Parallel.takeWidestSplit()
                let base = run(setup.with { $0.threads = 1 }, b)
                try #require(base.status == LK_OK, "\(base.message)")
                #expect(Parallel.takeWidestSplit() == 1)
                for threads: Int32 in [0, 2, 3] {
                    let out = run(setup.with { $0.threads = threads }, b)
                    let split = Parallel.takeWidestSplit()
                    let expected = threads == 0 ? Swift.min(Parallel.available(requested: 0), 3) : Int(threads)
                    #expect(split == expected, "threads=\(threads) ran on \(split) threads, not \(expected)")
                    #expect(sameValues(out.loss, base.loss) && sameValues(out.grad, base.grad),
                            "\(layoutName(layout)) \(reductionName(reduction)) threads=\(threads)")
                }
            }
        }
    }

    @Test("ZERO_ONE ignores the cost pointer (a NaN buffer changes nothing)", arguments: LossCase.all)
    func zeroOneIgnoresCost(_ c: LossCase) throws {
        let b = propertyBatch(c, LK_COST_ZERO_ONE, seed: "zero-one")
        var garbage = b
        garbage.cost = [Double](repeating: .nan, count: b.n * b.k)
        let setup = propertySetup(c, LK_COST_ZERO_ONE, LK_REDUCE_NONE)
        let a = run(setup, b), g = run(setup, garbage)
        try #require(a.status == LK_OK && g.status == LK_OK, "\(g.message)")
        #expect(sameValues(a.loss, g.loss) && sameValues(a.grad, g.grad))
    }

    @Test("losses that read no costs ignore the cost layout and buffer",
          arguments: LossCase.all.filter { !$0.model.readsCosts } + [.hopeFear(.gold, .lse, h: 3, f: 0)])
    func costsNotRead(_ c: LossCase) throws {
        let b = propertyBatch(c, LK_COST_ZERO_ONE, seed: "no costs")
        let base = run(propertySetup(c, LK_COST_ZERO_ONE, LK_REDUCE_NONE), b)
        try #require(base.status == LK_OK)
        for layout in [LK_COST_PER_EXAMPLE, LK_COST_CLASS_MATRIX, 99] {
            for cost in [nil, [Double](repeating: .nan, count: b.n * b.k)] {
                var other = b
                other.cost = cost
                let out = run(propertySetup(c, layout, LK_REDUCE_NONE).with { $0.costScale = 3 }, other)
                #expect(out.status == LK_OK,
                        "\(layoutName(layout)) cost \(cost == nil ? "NULL" : "NaN"): \(out.message)")
                #expect(sameValues(out.loss, base.loss) && sameValues(out.grad, base.grad), "\(layoutName(layout))")
            }
        }
    }

    @Test("cost_scale alpha with costs c equals cost_scale 1 with costs alpha c",
          arguments: LossCase.all.filter { $0.model.readsCosts }, [LK_COST_PER_EXAMPLE, LK_COST_CLASS_MATRIX])
    func costScaleScalesCosts(_ c: LossCase, _ layout: Int32) throws {
        let alpha = 2.5
        let b = propertyBatch(c, layout, seed: "alpha")
        var scaledCosts = b
        scaledCosts.cost = b.cost!.map { alpha * $0 }
        let a = run(propertySetup(c, layout, LK_REDUCE_NONE).with { $0.costScale = alpha }, b)
        let s = run(propertySetup(c, layout, LK_REDUCE_NONE).with { $0.costScale = 1 }, scaledCosts)
        try #require(a.status == LK_OK && s.status == LK_OK)
        let ref = reference(c, b, layout: layout, costScale: alpha, reduction: LK_REDUCE_NONE)
        for i in 0..<b.n {
            #expect(isClose(a.loss[i], s.loss[i], 8 * eps64 * ref.scale[i]), "loss[\(i)] \(a.loss[i]) vs \(s.loss[i])")
        }
        for at in a.grad.indices {
            let i = at / b.k
            let inputs = magnitude(b.row(i)) + alpha * magnitude(b.costRow(i, layout: layout))
            #expect(isClose(a.grad[at], s.grad[at], 64 * eps64 * (b.weight![i]) * inputs), "grad[\(at)]")
        }
    }
}

@Suite("Reentrancy")
struct ReentrancyTests {
    /// DESIGN.md §3: no global mutable state; lk_last_error() is per thread. 8 threads x 20
    /// rounds alternate a valid call (checked bit for bit against a sequential run, and for an
    /// empty message) with a failing one whose message must name that thread's own bad index.
    @Test("concurrent calls give the same bits, and each thread sees its own lk_last_error")
    func concurrentCalls() {
        let c = LossCase.softmaxMargin
        let b = propertyBatch(c, LK_COST_PER_EXAMPLE, seed: "concurrent", n: 50, k: 20)
        let setup = propertySetup(c, LK_COST_PER_EXAMPLE, LK_REDUCE_NONE)
        let expected = run(setup, b)
        let threads = 8
        // Each thread writes only its own slot.
        nonisolated(unsafe) let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: threads)
        ok.initialize(repeating: false)
        defer { ok.deallocate() }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var good = true
            for round in 0..<20 {
                if (t + round) % 2 == 0 {
                    let out = run(setup, b)
                    good = good && out.status == LK_OK && out.message == ""
                        && sameValues(out.loss, expected.loss) && sameValues(out.grad, expected.grad)
                } else {
                    var broken = b
                    broken.gold[t] = 999
                    let out = run(setup, broken)
                    good = good && out.status == LK_ERR_LABEL && out.message.contains("gold[\(t)]")
                }
            }
            ok[t] = good
        }
        #expect(expected.status == LK_OK)
        #expect(ok.allSatisfy { $0 }, "threads that saw a wrong result or message: \((0..<threads).filter { !ok[$0] })")
    }
}

@Suite("Library basics")
struct BasicsTests {
    @Test("lk_options_init: size 112 and every documented default")
    func optionsDefaults() {
        // The whole struct (0.3.0 appended z_loss and softcap); the function lk_options_init, all
        // Swift sees of the header's macro, writes the first published layout.
        #expect(MemoryLayout<lk_options>.size == 128)
        for loss in LK_LOSS_LOG...LK_LOSS_HOPE_FEAR {
            var o = lk_options()
            #expect(lk_options_init(&o, loss) == LK_OK)
            #expect(o.size == 112)
            #expect(o.loss == loss)
            #expect(o.reduction == LK_REDUCE_MEAN)
            #expect(o.ignore_label == -100)
            #expect(o.cost_layout == LK_COST_ZERO_ONE)
            #expect(o.threads == 0)
            #expect(o.cost_scale == 1)
            #expect(o.label_smoothing == 0)
            #expect(o.square_k == 1)
            #expect(o.square_m == 1)
            #expect(o.hope == LK_TERM_GOLD)
            #expect(o.fear == LK_TERM_LSE)
            #expect(o.hope_scale == 0)
            #expect(o.fear_scale == 1)
            #expect(String(cString: lk_last_error()) == "")
            var whole = lk_options()
            whole.z_loss = 9
            whole.softcap = 9
            #expect(lk_options_init_size(&whole, loss, MemoryLayout<lk_options>.size) == LK_OK)
            #expect(whole.size == 128 && whole.z_loss == 0 && whole.softcap == 0)
        }
    }

    @Test("lk_options_init: NULL and unknown losses fail and leave *opt untouched")
    func optionsInitErrors() {
        #expect(lk_options_init(nil, LK_LOSS_LOG) == LK_ERR_NULL)
        #expect(!String(cString: lk_last_error()).isEmpty)
        for loss: Int32 in [0, -1, 14, 99] {
            var o = lk_options()
            o.size = 7
            o.loss = 4242
            #expect(lk_options_init(&o, loss) == LK_ERR_OPTION, "loss \(loss)")
            #expect(o.size == 7 && o.loss == 4242, "loss \(loss): *opt was written")
            #expect(!String(cString: lk_last_error()).isEmpty)
        }
    }

    @Test("status names and version")
    func namesAndVersion() {
        let names: [(lk_status, String)] = [
            (LK_OK, "LK_OK"), (LK_ERR_NULL, "LK_ERR_NULL"), (LK_ERR_SIZE, "LK_ERR_SIZE"),
            (LK_ERR_LABEL, "LK_ERR_LABEL"), (LK_ERR_OPTION, "LK_ERR_OPTION"), (LK_ERR_DOMAIN, "LK_ERR_DOMAIN"),
            (LK_ERR_UNSUPPORTED, "LK_ERR_UNSUPPORTED"), (LK_ERR_ALLOC, "LK_ERR_ALLOC"), (99, "LK_ERR_UNKNOWN"),
            (-1, "LK_ERR_UNKNOWN"),
        ]
        for (status, name) in names { #expect(String(cString: lk_status_name(status)) == name) }
        #expect(lk_version_number() == LK_VERSION_MAJOR * 10000 + LK_VERSION_MINOR * 100 + LK_VERSION_PATCH)
        #expect(String(cString: lk_version()) == "\(LK_VERSION_MAJOR).\(LK_VERSION_MINOR).\(LK_VERSION_PATCH)")
    }
}
