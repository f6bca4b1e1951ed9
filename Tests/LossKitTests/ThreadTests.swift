// Threads: batches large enough that the library really splits them across threads
// (Parallel.elementsPerThread = 2^17 values of work per thread), checked for bit-identical
// outputs at every thread count, and for validation in parallel reporting the same first error
// a sequential scan would. Each test asks the library how many threads its passes ran on
// (Parallel.takeWidestSplit), so that a batch too small to split fails instead of passing.
import CLossKit
import Glibc
@testable import LossKit
import Testing

@Suite("Threads")
struct ThreadTests {
    /// 800 x 500 = 400,000 values: three threads' worth, in 25 chunks of 32 rows.
    static let n = 800, k = 500

    /// The threads a call with opt->threads = `requested` must run on for this batch.
    static func expectedSplit(_ requested: Int32) -> Int {
        Swift.min(requested == 0 ? Parallel.available(requested: 0) : Int(requested), (n * k) >> 17)
    }

    @Test("a batch that is split across threads gives the same bits at 1, 2, 3 and 0 (default) threads",
          arguments: [LossCase.log, .softmaxMargin, .hinge, .risk, .softRamp, .squared, .squentropy])
    func sameBitsWhenSplit(_ c: LossCase) throws {
        for layout in [LK_COST_ZERO_ONE, LK_COST_PER_EXAMPLE] {
            let b = propertyBatch(c, layout, seed: "split", n: Self.n, k: Self.k)
            for reduction in [LK_REDUCE_NONE, LK_REDUCE_MEAN] {
                let setup = propertySetup(c, layout, reduction)
                _ = Parallel.takeWidestSplit()
                let one = run(setup.with { $0.threads = 1 }, b)
                try #require(one.status == LK_OK, "\(one.message)")
                #expect(Parallel.takeWidestSplit() == 1)
                for threads: Int32 in [2, 3, 0] {
                    let many = run(setup.with { $0.threads = threads }, b)
                    let split = Parallel.takeWidestSplit()
                    #expect(split == Self.expectedSplit(threads), "threads=\(threads) ran on \(split) threads")
                    #expect(sameValues(many.loss, one.loss) && sameValues(many.grad, one.grad),
                            "\(c.name) \(layoutName(layout)) \(reductionName(reduction)) threads=\(threads)")
                }
            }
        }
    }

    @Test("validation split across threads reports the lowest failing example, outputs untouched")
    func firstErrorAcrossChunks() throws {
        let b = propertyBatch(.log, LK_COST_ZERO_ONE, seed: "errors", n: Self.n, k: Self.k)
        // +inf in a late row and a NaN weight in an earlier row of another chunk: the weight
        // (the lower example) is reported, as a sequential scan would.
        var bad = b
        bad.scores[(Self.n - 3) * Self.k + 7] = .infinity
        bad.weight![Self.n / 3] = .nan
        for threads: Int32 in [1, 2, 3] {
            let setup = propertySetup(.log, LK_COST_ZERO_ONE, LK_REDUCE_NONE).with { $0.threads = threads }
            _ = Parallel.takeWidestSplit()
            let out = run(setup, bad)
            #expect(Parallel.takeWidestSplit() == Self.expectedSplit(threads), "threads=\(threads)")
            #expect(out.status == LK_ERR_DOMAIN)
            #expect(out.message.contains("weight[\(Self.n / 3)]"), "threads=\(threads): \(out.message)")
            #expect(out.loss.allSatisfy { $0 == poisonValue } && out.grad.allSatisfy { $0 == poisonValue })
        }
        var late = b
        late.scores[(Self.n - 3) * Self.k + 7] = .infinity
        for threads: Int32 in [1, 2, 3] {
            _ = Parallel.takeWidestSplit()
            let out = run(propertySetup(.log, LK_COST_ZERO_ONE, LK_REDUCE_SUM).with { $0.threads = threads }, late)
            #expect(Parallel.takeWidestSplit() == Self.expectedSplit(threads), "threads=\(threads)")
            #expect(out.status == LK_ERR_DOMAIN)
            #expect(out.message.contains("scores[\(Self.n - 3), 7]"), "threads=\(threads): \(out.message)")
        }
    }
}
