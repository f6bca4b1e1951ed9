import CLossKit

/// Candidate lists (DESIGN.md §4.3): n examples, example i owning the candidates
/// offsets[i] ..< offsets[i + 1] of the flat `scores` (and `cost`), with its gold an index inside
/// its own list, or -1 when the reference is not among the candidates: then the oracle (lowest
/// cost, then highest score, then lowest index) stands in for the gold. Each list is a
/// `FlatCandidates`, exactly as a dense row is. `hess` (lk_lists_hessian_*) receives the diagonal
/// of the Hessian (Hessian.swift); the checks are those of lk_lists_*, whether or not it is given.
enum Lists {
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, offsets: UnsafePointer<Int64>?,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?,
        hess: UnsafeMutablePointer<T>? = nil
    ) throws(Failure) {
        let call = Call(options: try Options.parse(opt, for: .lists, computingIn: T.self), n: n, offsets: offsets,
                        scores: scores, gold: gold, cost: cost, weight: weight, loss: loss)
        guard let checked = try call.validate() else { return }
        defer { checked.free() }
        let lists = checked.lists
        try lists.run(checked.values, options: call.options, longest: checked.longest,
                      gold: { checked.golds[$0] }, costs: { i in cost.map { $0 + lists.layout.start(i) } },
                      loss: loss, grad: GradientSink(grad), hess: hess)
    }

    /// The arguments of an lk_lists call and what each phase of the checks (CallChecks) checks of
    /// them. A NULL cost means 0/1 cost against the gold; a gold of -1 then has no oracle, which
    /// the label phase reports.
    struct Call<T: StorageFloat>: CallChecks {
        let options: Options
        let n: Int64
        let offsets: UnsafePointer<Int64>?
        let scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?
        let weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?

        var examples: Int64 { n }

        func checkPointers() throws(Failure) {
            try Validation.require(offsets, "offsets")
            try Validation.require(scores, "scores")
            try Validation.require(gold, "gold")
        }

        struct Shape {
            let batch: Batch<T>
            let layout: ListLayout
            let scores: UnsafePointer<T>, gold: UnsafePointer<Int32>
            let longest: Int
        }

        /// n, then the offsets: 0 first, non-decreasing, a total the buffers can hold. Every
        /// per-example buffer must have a byte size that exists before any is read: the offsets'
        /// (n + 1) * 8 bounds gold's n * 4 and weight's and loss's n * sizeof(T).
        func checkSizes() throws(Failure) -> Shape? {
            let n = try Validation.dimension(self.n, "n")
            guard n < Int.max else { throw .size("n = \(n) does not fit this platform's address space") }
            _ = try elementCount(n + 1, 1, of: Int64.self, "n + 1 (the offsets)")
            guard n > 0, let offsets, let scores, let gold else { return nil }
            guard offsets[0] == 0 else { throw .size("offsets[0] = \(offsets[0]), but it must be 0") }
            var longest = 0
            for i in 0..<n {
                let (start, end) = (offsets[i], offsets[i + 1])
                guard end >= start else {
                    throw .size("offsets[\(i + 1)] = \(end) is smaller than offsets[\(i)] = \(start) (offsets must "
                                + "not decrease)")
                }
                longest = Swift.max(longest, Int(end - start))
            }
            guard let total = Int(exactly: offsets[n]) else {
                throw .size("offsets[\(n)] = \(offsets[n]) is too large")
            }
            _ = try elementCount(total, 1, of: T.self, "offsets[n] (candidates)")
            return Shape(batch: Batch(count: n, weights: weight, reduction: options.reduction),
                         layout: ListLayout(offsets: offsets), scores: scores, gold: gold, longest: longest)
        }

        func writeEmptyBatch() { Batch<T>.writeEmpty(loss, options.reduction) }

        /// Gold indices, for the examples of non-zero weight; -1 asks for the oracle, which needs
        /// costs.
        func checkLabels(_ shape: Shape) throws(Failure) {
            let (gold, layout) = (shape.gold, shape.layout)
            for i in 0..<shape.batch.count where !shape.batch.hasZeroWeight(i) {
                let g = gold[i]
                if g == -1 {
                    guard cost != nil else {
                        throw .null("cost is NULL, but gold[\(i)] = -1 asks for the oracle (the candidate of lowest "
                                    + "cost), which needs costs")
                    }
                } else if g < 0 || Int(g) >= layout.count(i) {
                    throw .label("gold[\(i)] = \(g) is outside [0, \(layout.count(i))) (example \(i)'s list, "
                                 + "offsets[\(i)] = \(layout.start(i))) and is not -1")
                }
            }
        }

        /// What the values phase leaves: the checked lists, the gold or oracle of each, the
        /// longest list.
        struct Checked {
            let lists: FlatBatch<T, ListLayout>
            let values: FlatBatch<T, ListLayout>.Checked
            let golds: Scratch<Int>
            let longest: Int
            private let chunkStarts: Scratch<Int>

            init(lists: FlatBatch<T, ListLayout>, values: FlatBatch<T, ListLayout>.Checked, golds: Scratch<Int>,
                 longest: Int, chunkStarts: Scratch<Int>) {
                (self.lists, self.values, self.golds, self.longest, self.chunkStarts) =
                    (lists, values, golds, longest, chunkStarts)
            }

            func free() { values.free(); golds.free(); chunkStarts.free() }
        }

        /// Weights, then each read list: not empty, its scores and costs (FlatValidation), and the
        /// oracle that stands in for a gold of -1. Chunk by chunk: a screen of the chunk's
        /// candidates all at once, which nearly always proves every value check passes (then only
        /// weights, empty lists and oracles are looked at list by list, and the computing pass
        /// finds each list's max itself); else the full check of each list, whose survey the
        /// computing pass then reuses. A loss that reads no costs but has an oracle to find in a
        /// chunk reads the costs of the oracle's lists only, which the per-list check does.
        func checkValues(_ shape: Shape) throws(Failure) -> Checked {
            let (batch, layout, scores, gold) = (shape.batch, shape.layout, shape.scores, shape.gold)
            let recipe = options.recipe
            let (chunkStarts, chunkCount) = try balancedChunks(layout.offsets, n: batch.count)
            var complete = false
            defer { if !complete { chunkStarts.free() } }
            let chunks = Chunks(starts: chunkStarts.base, count: chunkCount, examples: batch.count)
            let lists = FlatBatch(layout: layout, scores: Source(scores), batch: batch, gold: gold, ignoreLabel: nil,
                                  chunks: chunks,
                                  threads: Parallel.threads(requested: options.threads,
                                                            elements: layout.start(batch.count),
                                                            chunks: chunks.count))
            let golds = try Scratch<Int>(batch.count, "the gold or oracle of each list")
            defer { if !complete { golds.free() } }
            let checks = FlatValidation.Checks<T>(options)
            let values = try lists.checkValues(
                screenedCosts: recipe.readsCosts ? cost : nil, costBound: checks.costBound, longest: shape.longest,
                mayScreen: { examples in
                    recipe.readsCosts || !examples.contains { gold[$0] == -1 && !batch.hasZeroWeight($0) }
                }
            ) { (i: Int, scores: UnsafePointer<T>, screened: Bool) throws(Failure) in
                let (start, length) = (layout.start(i), layout.count(i))
                guard length > 0 else {
                    throw .domain("example \(i) has an empty list (offsets[\(i)] = offsets[\(i + 1)] = \(start)) "
                                  + "and weight \(batch.weight(i)) != 0")
                }
                let oracle = gold[i] == -1
                let costs = (recipe.readsCosts || oracle) ? cost.map { $0 + start } : nil
                var survey: RowSurvey<T>? = nil
                if !screened {
                    survey = try FlatValidation.check(
                        scores, count: length, gold: oracle ? nil : Int(gold[i]), costs: costs, checks,
                        names: RowNames(example: i, layout: .list(offset: start)))
                }
                if oracle, let costs {
                    golds[i] = FlatCandidates<T>.lowestCost(scores, costs, count: length)
                } else {
                    golds[i] = Int(gold[i])
                }
                return survey
            }
            complete = true
            return Checked(lists: lists, values: values, golds: golds, longest: shape.longest,
                           chunkStarts: chunkStarts)
        }
    }

    /// The starts of chunks of about Chunks.target candidates (at least one list each), and
    /// their count: the threads share the work by candidates, not by lists (which run from 1 to
    /// thousands of candidates). The cuts depend on the offsets only.
    static func balancedChunks(_ offsets: UnsafePointer<Int64>, n: Int) throws(Failure) -> (Scratch<Int>, Int) {
        let starts = try Scratch<Int>(n + 1, "the chunk boundaries")
        var count = 0
        starts[0] = 0
        var next = Chunks.target
        for i in 1..<n where Int(offsets[i]) >= next {
            count += 1
            starts[count] = i
            next = Int(offsets[i]) + Chunks.target
        }
        count += 1
        starts[count] = n
        return (starts, count)
    }
}
