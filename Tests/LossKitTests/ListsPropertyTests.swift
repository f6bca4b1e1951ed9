// Named properties of candidate lists (include/losskit.h "Candidate lists", DESIGN.md §2–§4.3),
// run over the registry (every loss but label smoothing, which lists do not offer). Inputs are
// random (seeded) with +-50 / +-1e4 offsets, masked candidates, lists of different lengths and
// golds of -1.
//
// "Same bits" is claimed where both sides run the same arithmetic in the same order: a list and
// a dense row are the same flat-candidate example to the library (each loss is written once
// over the primitives), gold -1 only substitutes the oracle's index for the gold, and skipped
// lists add nothing to the running sums. Where the batch is cut into chunks differently (dense
// rows by rows, lists by candidates), only the per-example values are the same bits and a
// reduced total may differ in its last bits (a different grouping of the same double sum).
import CLossKit
import Glibc
@testable import LossKit
import Testing

/// The expected output of lk_lists under REDUCE_NONE from the reference model of
/// LossRegistry.swift, list by list: each list's loss (times its weight) and gradient, with the
/// oracle computed here (`oracleIndex`) for a gold of -1 and 0/1 costs against the gold when the
/// batch has no costs.
func expectMatchesModel(_ c: LossCase, _ b: ListBatch, costScale alpha: Double, _ out: ListsOutput<Double>,
                        _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    for i in 0..<b.n {
        let w = b.weight?[i] ?? 1
        let range = b.range(i)
        if w == 0 {
            #expect(out.loss[i] == 0 && range.allSatisfy { out.grad[$0] == 0 }, "\(context): zero-weight list \(i)",
                    sourceLocation: sourceLocation)
            continue
        }
        let s = b.scores(i)
        let g = b.gold[i] == -1 ? oracleIndex(scores: s, costs: b.costs(i)!)! : Int(b.gold[i])
        let costs = b.costs(i) ?? s.indices.map { $0 == g ? 0 : 1 }
        let e = c.model.evaluate(scores: s, gold: g, cost: costs, costScale: alpha)
        // As GradientTests: rounding at the scale of the inputs (scores and scaled costs), a few
        // dozen eps per term of a sum over sqrt(k)-ish many candidates.
        let inputs = magnitude(s)
            + alpha * magnitude(costs.enumerated().filter { s[$0.offset] != -.infinity }.map { $0.element })
        let root = Double(s.count).squareRoot()
        #expect(isClose(out.loss[i], w * e.loss, 64 * root * eps64 * w * (abs(e.loss) + inputs)),
                "\(context): list \(i) (length \(s.count), gold \(b.gold[i])) loss \(out.loss[i]) vs \(w * e.loss)",
                sourceLocation: sourceLocation)
        for (j, at) in range.enumerated() {
            #expect(isClose(out.grad[at], w * e.grad[j], 64 * eps64 * w * (inputs + abs(e.grad[j]))),
                    "\(context): list \(i) grad[\(j)] \(out.grad[at]) vs \(w * e.grad[j])",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Both outputs bit for bit (NaN equal to NaN).
func sameOutputs<T: ListsScalar>(_ a: ListsOutput<T>, _ b: DenseOutput<T>) -> Bool {
    sameValues(a.loss, b.loss) && sameValues(a.grad, b.grad)
}

func sameOutputs<T: ListsScalar>(_ a: ListsOutput<T>, _ b: ListsOutput<T>) -> Bool {
    sameValues(a.loss, b.loss) && sameValues(a.grad, b.grad)
}

@Suite("Lists properties")
struct ListsPropertyTests {
    /// A list of k candidates is a dense row of k classes: the same per-example kernels run on
    /// the same values, and a batch this small (60 candidates) is one chunk for both, so even
    /// the reduced totals are summed in the same order: same bits, float64 and float32. The
    /// lists' costs are the dense per-example cost rows; a NULL cost is ZERO_ONE.
    @Test("lists that all have k candidates equal lk_dense (PER_EXAMPLE / ZERO_ONE), same bits",
          arguments: listCases, [true, false])
    func equalLengthListsAreDense(_ c: LossCase, _ withCosts: Bool) throws {
        var rng = SplitMix64("lists = dense", c.name, "\(withCosts)")
        var b = drawLists(ListRecipe(lengths: 6...6, n: 10, maskProbability: 0.25, maskGold: !c.model.usesGoldScore,
                                     withCosts: withCosts), &rng)
        b.weight![3] = 0
        let dense = b.dense(k: 6)
        let layout = withCosts ? LK_COST_PER_EXAMPLE : LK_COST_ZERO_ONE
        for reduction in allReductions {
            let setup = listSetup(c, reduction)
            let context = "\(c.name) \(layoutName(layout)) \(reductionName(reduction))"
            let l = runLists(setup, b), d = run(setup.with { $0.layout = layout }, dense)
            try #require(l.status == LK_OK && d.status == LK_OK, "\(context): \(l.message) | \(d.message)")
            #expect(sameOutputs(l, d), "\(context) f64: lists \(l.loss) vs dense \(d.loss)")
            #expect(l.guardsIntact, "\(context): written past an output")
            let l32 = runLists32(setup, b), d32 = run32(setup.with { $0.layout = layout }, dense)
            try #require(l32.status == LK_OK && d32.status == LK_OK, "\(context): \(l32.message) | \(d32.message)")
            #expect(sameOutputs(l32, d32), "\(context) f32: lists \(l32.loss) vs dense \(d32.loss)")
        }
    }

    /// 5000 lists of 7 (35,000 candidates) are cut into chunks differently: dense rows in
    /// chunks of floor(2^14 / 7) = 2340 rows, lists at the first list reaching 2^14 candidates
    /// (2341 lists). Per-list values and gradients are still the same bits; the SUM total is the
    /// same double sum grouped differently, so it may differ by a few ulps of sum |w_i loss_i|.
    @Test("many chunks: per-list values and gradients equal lk_dense bit for bit, the total within a few ulps",
          arguments: [LossCase.softRamp])
    func equalLengthListsAreDenseAcrossChunks(_ c: LossCase) throws {
        var rng = SplitMix64("lists = dense, chunks", c.name)
        let b = drawLists(ListRecipe(lengths: 7...7, n: 5000, maskProbability: 0.1, maskGold: true), &rng)
        let dense = b.dense(k: 7)
        let setup = listSetup(c, LK_REDUCE_NONE)
        let l = runLists(setup, b), d = run(setup.with { $0.layout = LK_COST_PER_EXAMPLE }, dense)
        try #require(l.status == LK_OK && d.status == LK_OK, "\(l.message) | \(d.message)")
        #expect(sameOutputs(l, d), "NONE: per-list values or gradients differ")
        let sum = runLists(listSetup(c, LK_REDUCE_SUM), b)
        let denseSum = run(listSetup(c, LK_REDUCE_SUM).with { $0.layout = LK_COST_PER_EXAMPLE }, dense)
        try #require(sum.status == LK_OK && denseSum.status == LK_OK)
        let size = l.loss.map(abs).reduce(0, +)
        #expect(isClose(sum.loss[0], denseSum.loss[0], 4 * eps64 * size),
                "SUM \(sum.loss[0]) vs dense \(denseSum.loss[0])")
        #expect(sameValues(sum.grad, denseSum.grad), "SUM: gradients differ")
    }

    /// A gold of -1 makes the library find the oracle and use it as the gold everywhere; passing
    /// that index explicitly must then be the very same computation (same bits). The oracle is
    /// computed here, independently: lowest unscaled cost, then highest score, then lowest
    /// index, masked candidates never. Costs and scores come from small sets of values so that
    /// both tie-breaks are exercised; cost_scale 0 checks that the *unscaled* cost decides.
    @Test("gold -1 equals passing the oracle's index explicitly (same bits)", arguments: listCases)
    func oracleStandsInForGold(_ c: LossCase) throws {
        var rng = SplitMix64("oracle", c.name)
        let b = drawLists(ListRecipe(lengths: 1...9, n: 40, maskProbability: 0.25, oracleProbability: 0.6,
                                     ties: true), &rng)
        var ties = 0
        for width in ["f64", "f32"] {
            // float32 sees the inputs rounded: its oracle is computed on the rounded values.
            let seen = width == "f64" ? b : ListBatch(specs: b.specs.map { spec in
                var r = spec
                r.scores = spec.scores.map { Double(Float($0)) }
                r.cost = spec.cost?.map { Double(Float($0)) }
                return r
            }, withCosts: true, weighted: true)
            var explicit = seen
            for i in 0..<seen.n where seen.gold[i] == -1 {
                let s = seen.scores(i), cost = seen.costs(i)!
                let o = try #require(oracleIndex(scores: s, costs: cost))
                explicit.gold[i] = Int32(o)
                let live = s.indices.filter { s[$0] != -.infinity }
                if live.filter({ cost[$0] == cost[o] }).count > 1 { ties += 1 }
            }
            for alpha in [0.75, 0] {
                for reduction in [LK_REDUCE_NONE, LK_REDUCE_MEAN] {
                    let setup = listSetup(c, reduction, costScale: alpha)
                    let context = "\(c.name) \(width) cost_scale \(alpha) \(reductionName(reduction))"
                    if width == "f64" {
                        let a = runLists(setup, seen), e = runLists(setup, explicit)
                        try #require(a.status == LK_OK && e.status == LK_OK, "\(context): \(a.message) | \(e.message)")
                        #expect(sameOutputs(a, e), "\(context): gold -1 \(a.loss) vs explicit oracle \(e.loss)")
                    } else {
                        let a = runLists32(setup, seen), e = runLists32(setup, explicit)
                        try #require(a.status == LK_OK && e.status == LK_OK, "\(context): \(a.message) | \(e.message)")
                        #expect(sameOutputs(a, e), "\(context): gold -1 \(a.loss) vs explicit oracle \(e.loss)")
                    }
                }
            }
        }
        #expect(ties > 4, "the batch should have lists whose lowest cost is tied (\(ties))")
    }

    /// LOG with gold -1: loss = lse(s) - s[o] and gradient p - e_o, so the oracle is the one
    /// candidate with a negative gradient. Each row of the table says which rule picks it.
    @Test("""
          the oracle's rules in closed form: lowest unscaled cost, then highest score, then lowest index; \
          never masked
          """)
    func oracleTable() throws {
        let table: [(rule: String, scores: [Double], costs: [Double], alpha: Double, oracle: Int)] = [
            ("lowest cost", [3, 1, 2], [1, 0, 0.5], 1, 1),
            ("cost tie: highest score", [5, 1, 2, 2], [1, 0, 0, 0], 1, 2),
            ("cost and score tie: lowest index", [0, 2, 2, 2], [0, 1, 1, 1], 1, 0),
            ("cost and score tie after a masked lowest cost", [-.infinity, 3, 3], [0, 1, 1], 1, 1),
            ("negative costs", [0, 0, 0], [2, -1, -1], 1, 1),
            ("unscaled cost decides at cost_scale 0", [9, 0, 1], [3, 1, 2], 0, 1),
            ("unscaled cost decides at cost_scale 1e-3", [9, 0, 1], [3, 1, 2], 1e-3, 1),
            ("a single candidate", [4], [7], 1, 0),
            ("the masked candidates are last", [1, 0.5, -.infinity, -.infinity], [2, 2, -5, -5], 1, 0),
        ]
        for row in table {
            let b = ListBatch(specs: [ListSpec(scores: row.scores, gold: -1, cost: row.costs)],
                              withCosts: true, weighted: false)
            let out = runLists(Setup(loss: LK_LOSS_LOG, reduction: LK_REDUCE_NONE, costScale: row.alpha), b)
            try #require(out.status == LK_OK, "\(row.rule): \(out.message)")
            let live = row.scores.filter { $0 != -.infinity }
            let m = live.max()!
            let z = live.map { exp($0 - m) }.reduce(0, +)
            let expected = m + log(z) - row.scores[row.oracle]
            #expect(isClose(out.loss[0], expected, 16 * eps64 * (abs(expected) + magnitude(row.scores))),
                    "\(row.rule): loss \(out.loss[0]) vs lse - s[\(row.oracle)] = \(expected)")
            for (j, s) in row.scores.enumerated() {
                let p = s == -.infinity ? 0 : exp(s - m) / z
                let g = p - (j == row.oracle ? 1 : 0)
                #expect(isClose(out.grad[j], g, 16 * eps64), "\(row.rule): grad[\(j)] \(out.grad[j]) vs \(g)")
            }
            #expect(oracleIndex(scores: row.scores, costs: row.costs) == row.oracle,
                    "\(row.rule): the test's own oracle")
        }
    }

    /// Lists of 1 to 9 candidates against the reference model (LossRegistry.swift), list by list:
    /// checks that each list is its own example (its own K, max, log-sum-exp, oracle), whatever
    /// the lengths around it.
    @Test("each list of a batch of varying lengths equals the reference model", arguments: listCases, [true, false])
    func listsMatchModel(_ c: LossCase, _ withCosts: Bool) throws {
        var rng = SplitMix64("lists model", c.name, "\(withCosts)")
        var b = drawLists(ListRecipe(lengths: 1...9, n: 18, maskProbability: 0.25, maskGold: !c.model.usesGoldScore,
                                     oracleProbability: withCosts ? 0.3 : 0, withCosts: withCosts), &rng)
        b.weight![5] = 0
        let out = runLists(listSetup(c, LK_REDUCE_NONE), b)
        try #require(out.status == LK_OK, "\(out.message)")
        expectMatchesModel(c, b, costScale: 0.75, out, "\(c.name) costs \(withCosts)")
        // The optional outputs: either alone is the same bits as with the other.
        let lossOnly = runLists(listSetup(c, LK_REDUCE_NONE), b, wantGrad: false)
        let gradOnly = runLists(listSetup(c, LK_REDUCE_NONE), b, wantLoss: false)
        #expect(lossOnly.status == LK_OK && sameValues(lossOnly.loss, out.loss), "loss without grad")
        #expect(gradOnly.status == LK_OK && sameValues(gradOnly.grad, out.grad), "grad without loss")
        #expect(lossOnly.guardsIntact && gradOnly.guardsIntact)
    }

    /// Zero-weight lists — empty ones, ones with an out-of-range gold, a gold of -1, NaN and +inf
    /// scores, non-finite costs — are skipped: loss exactly 0 (not NaN), gradient exactly 0, and
    /// the other outputs are the same bits as without them (they add nothing to the running sum,
    /// and 0 to the mean's summed weight).
    @Test("zero-weight lists, empty or garbage, contribute exactly 0 and get a zero gradient",
          arguments: listCases, [true, false])
    func zeroWeightListsAddNothing(_ c: LossCase, _ withCosts: Bool) throws {
        var rng = SplitMix64("zero weight", c.name, "\(withCosts)")
        let b = drawLists(ListRecipe(lengths: 1...6, n: 8, oracleProbability: withCosts ? 0.3 : 0,
                                     withCosts: withCosts), &rng)
        let garbage: [(at: Int, spec: ListSpec)] = [
            (0, ListSpec(scores: [.nan, .infinity, 1], gold: 99, cost: [.nan, .infinity, 0], weight: 0)),
            (2, ListSpec(scores: [], gold: 7, weight: 0)),
            (3, ListSpec(scores: [], gold: -1, weight: 0)),
            (6, ListSpec(scores: [-.infinity, -.infinity], gold: -1, cost: [.nan, -.infinity], weight: 0)),
            (11, ListSpec(scores: [2, -.infinity], gold: Int32.min, cost: [.nan, .nan], weight: -0.0)),
            (12, ListSpec(scores: [], gold: 0, weight: 0)),
        ]
        var specs = b.specs
        for g in garbage { specs.insert(g.spec, at: g.at) }
        let extended = ListBatch(specs: specs, withCosts: withCosts, weighted: true)
        let skipped = Set(garbage.map { $0.at })
        let kept = (0..<extended.n).filter { !skipped.contains($0) }
        for reduction in allReductions {
            let setup = listSetup(c, reduction)
            let context = "\(c.name) costs \(withCosts) \(reductionName(reduction))"
            let with = runLists(setup, extended), without = runLists(setup, b)
            try #require(with.status == LK_OK, "\(context): \(with.message)")
            try #require(without.status == LK_OK, "\(context): \(without.message)")
            for i in skipped.sorted() {
                if reduction == LK_REDUCE_NONE {
                    #expect(with.loss[i] == 0, "\(context): zero-weight loss[\(i)] = \(with.loss[i])")
                }
                #expect(extended.range(i).allSatisfy { with.grad[$0] == 0 },
                        "\(context): zero-weight list \(i) has a gradient")
            }
            if reduction == LK_REDUCE_NONE {
                #expect(sameValues(kept.map { with.loss[$0] }, without.loss),
                        "\(context): losses of the other lists changed")
            } else {
                #expect(sameValues(with.loss, without.loss), "\(context): total \(with.loss) vs \(without.loss)")
            }
            #expect(sameValues(kept.flatMap { extended.range($0).map { with.grad[$0] } }, without.grad),
                    "\(context): gradients of the other lists changed")
            // float32: the same property.
            let with32 = runLists32(setup, extended), without32 = runLists32(setup, b)
            try #require(with32.status == LK_OK && without32.status == LK_OK, "\(context) f32: \(with32.message)")
            #expect(sameValues(kept.flatMap { extended.range($0).map { with32.grad[$0] } }, without32.grad),
                    "\(context) f32: gradients of the other lists changed")
            #expect(reduction == LK_REDUCE_NONE ? sameValues(kept.map { with32.loss[$0] }, without32.loss)
                        : sameValues(with32.loss, without32.loss), "\(context) f32: losses changed")
        }
        // A batch of nothing but zero-weight lists: SUM and MEAN are 0 (never NaN), gradient 0.
        let nothing = ListBatch(specs: garbage.map { $0.spec }, withCosts: withCosts, weighted: true)
        for reduction in allReductions {
            let out = runLists(listSetup(c, reduction), nothing)
            try #require(out.status == LK_OK, "\(out.message)")
            #expect(out.loss.allSatisfy { $0 == 0 } && out.grad.allSatisfy { $0 == 0 },
                    "\(c.name) \(reductionName(reduction)) all zero weight: \(out.loss)")
        }
    }

    /// include/losskit.h "Scores": a NaN score makes that example's loss and whole gradient row
    /// NaN, never dropped — also when its gold is -1 (the oracle's comparisons must not skip
    /// it silently) — and leaves the other lists alone.
    @Test("a NaN score makes its list's loss and gradient NaN, the other lists unaffected", arguments: listCases)
    func nanPropagates(_ c: LossCase) throws {
        var rng = SplitMix64("lists nan", c.name)
        let b = drawLists(ListRecipe(lengths: 2...7, n: 8, maskGold: !c.model.usesGoldScore,
                                     oracleProbability: 0.5), &rng)
        for goldOfTwo: Int32 in [b.gold[2], -1] {
            var clean = b
            clean.gold[2] = goldOfTwo
            var poisoned = clean
            poisoned.scores[b.range(2).lowerBound + rng.index(below: b.length(2))] = .nan
            for reduction in allReductions {
                let setup = listSetup(c, reduction)
                let context = "\(c.name) gold[2] = \(goldOfTwo) \(reductionName(reduction))"
                let a = runLists(setup, clean), p = runLists(setup, poisoned)
                try #require(a.status == LK_OK && p.status == LK_OK, "\(context): \(p.message)")
                if reduction == LK_REDUCE_NONE {
                    #expect(p.loss[2].isNaN, "\(context): loss[2] = \(p.loss[2])")
                    #expect((0..<b.n).filter { $0 != 2 }.allSatisfy { p.loss[$0] == a.loss[$0] },
                            "\(context): other losses changed")
                } else {
                    #expect(p.loss[0].isNaN, "\(context): total \(p.loss[0])")
                }
                for at in 0..<b.total {
                    if b.range(2).contains(at) {
                        #expect(p.grad[at].isNaN, "\(context): grad[\(at)] = \(p.grad[at])")
                    } else {
                        #expect(p.grad[at] == a.grad[at], "\(context): grad[\(at)] changed")
                    }
                }
            }
        }
    }

    @Test("NULL weight equals all ones (same bits)", arguments: listCases)
    func nullWeightIsOnes(_ c: LossCase) throws {
        var rng = SplitMix64("lists ones", c.name)
        var b = drawLists(ListRecipe(lengths: 1...9, n: 14, maskGold: !c.model.usesGoldScore,
                                     oracleProbability: 0.3), &rng)
        b.weight = nil
        var ones = b
        ones.weight = [Double](repeating: 1, count: b.n)
        for reduction in allReductions {
            let setup = listSetup(c, reduction)
            let a = runLists(setup, b), o = runLists(setup, ones)
            try #require(a.status == LK_OK && o.status == LK_OK, "\(a.message) | \(o.message)")
            #expect(sameOutputs(a, o), "\(reductionName(reduction)) f64: \(a.loss) vs \(o.loss)")
            let a32 = runLists32(setup, b), o32 = runLists32(setup, ones)
            try #require(a32.status == LK_OK && o32.status == LK_OK)
            #expect(sameOutputs(a32, o32), "\(reductionName(reduction)) f32: \(a32.loss) vs \(o32.loss)")
        }
    }

    /// More than 3 * 2^17 candidates (Parallel.elementsPerThread = 2^17 per thread), so that
    /// threads = 2 and 3 really split the batch, in lists of 1 to 200 candidates: the library
    /// cuts chunks by candidates, and the outputs must be the same bits at 1, 2, 3 and the
    /// default number of threads. LOG (one log-sum-exp) and INFINITE_RAMP (costs, a max and the
    /// oracle, a tenth of the golds -1), under MEAN: the gradient shows every list, the total
    /// shows the order of the partial sums. (Two losses only: the debug build takes ~1 s per
    /// call at this size.)
    @Test("a batch of > 2^18 candidates in lists of 1..200 gives the same bits at threads 1, 2, 3 and 0",
          arguments: [LossCase.log, .infiniteRamp])
    func sameBitsAtAnyThreadCount(_ c: LossCase) throws {
        var rng = SplitMix64("lists threads")
        let b = drawLists(ListRecipe(lengths: 1...200, n: 4000, maskProbability: 0.1, oracleProbability: 0.1), &rng)
        try #require(b.total >= 3 << 17, "\(b.total) candidates")
        _ = Parallel.takeWidestSplit()
        let one = runLists(listSetup(c, LK_REDUCE_MEAN, threads: 1), b)
        try #require(one.status == LK_OK, "\(one.message)")
        #expect(Parallel.takeWidestSplit() == 1)
        #expect(one.loss[0].isFinite && one.grad.allSatisfy { $0.isFinite })
        for threads: Int32 in [2, 3, 0] {
            let many = runLists(listSetup(c, LK_REDUCE_MEAN, threads: threads), b)
            // The library's own count of the threads its passes ran on: the batch really split.
            let split = Parallel.takeWidestSplit()
            let expected = Swift.min(threads == 0 ? Parallel.available(requested: 0) : Int(threads), b.total >> 17)
            #expect(split == expected, "threads=\(threads) ran on \(split) threads, not \(expected)")
            #expect(many.status == LK_OK && sameOutputs(many, one),
                    "\(c.name) threads=\(threads): \(many.loss) vs \(one.loss)")
        }
    }
}
