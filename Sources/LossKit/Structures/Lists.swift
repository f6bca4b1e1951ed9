import CLossKit

/// Candidate lists (DESIGN.md §4.3): n examples, example i owning the candidates
/// offsets[i] ..< offsets[i + 1] of the flat `scores` (and `cost`), with its gold an index inside
/// its own list, or -1 when the reference is not among the candidates: then the oracle (lowest
/// cost, then highest score, then lowest index) stands in for the gold. Each list is a
/// `FlatCandidates`, exactly as a dense row is. `hess` (lk_lists_hessian_*) receives the diagonal
/// of the Hessian (Hessian.swift); the checks are those of lk_lists_*, whether or not it is given.
enum Lists {
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, offsets: UnsafePointer<Int64>?,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?,
        hess: UnsafeMutablePointer<T>? = nil
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .lists, computingIn: T.self)
        let recipe = options.recipe

        // Pointers (nothing is read when n = 0). A NULL cost means 0/1 cost against the gold;
        // a gold of -1 then has no oracle, which the label phase reports.
        if n64 != 0 {
            guard offsets != nil else { throw .null("offsets is NULL (required when n != 0)") }
            guard scores != nil else { throw .null("scores is NULL (required when n != 0)") }
            guard gold != nil else { throw .null("gold is NULL (required when n != 0)") }
        }

        // Sizes: n, then the offsets (0 first, non-decreasing, a total the buffers can hold).
        guard n64 >= 0 else { throw .size("n = \(n64) is negative") }
        guard let n = Int(exactly: n64), n < Int.max else {
            throw .size("n = \(n64) does not fit this platform's address space")
        }
        // Every per-example buffer must have a byte size that exists before any is read: the
        // offsets' (n + 1) * 8 bounds gold's n * 4 and weight's and loss's n * sizeof(T).
        _ = try elementCount(n + 1, 1, of: Int64.self, "n + 1 (the offsets)")
        let batch = Batch<T>(count: n, weights: weight, reduction: options.reduction)
        guard n > 0, let offsets, let scores, let gold else {
            batch.writeEmpty(loss)
            return
        }
        guard offsets[0] == 0 else { throw .size("offsets[0] = \(offsets[0]), but it must be 0") }
        var longest = 0
        for i in 0..<n {
            let (start, end) = (offsets[i], offsets[i + 1])
            guard end >= start else {
                throw .size("offsets[\(i + 1)] = \(end) is smaller than offsets[\(i)] = \(start) (offsets must not "
                            + "decrease)")
            }
            longest = Swift.max(longest, Int(end - start))
        }
        guard let total = Int(exactly: offsets[n]) else { throw .size("offsets[\(n)] = \(offsets[n]) is too large") }
        _ = try elementCount(total, 1, of: T.self, "offsets[n] (candidates)")
        let start = { (i: Int) in Int(offsets[i]) }
        let length = { (i: Int) in Int(offsets[i + 1] - offsets[i]) }

        // Gold indices, for the examples of non-zero weight.
        for i in 0..<n where !batch.hasZeroWeight(i) {
            let g = gold[i]
            if g == -1 {
                guard cost != nil else {
                    throw .null("cost is NULL, but gold[\(i)] = -1 asks for the oracle (the candidate of lowest "
                                + "cost), which needs costs")
                }
            } else if g < 0 || Int(g) >= length(i) {
                throw .label("gold[\(i)] = \(g) is outside [0, \(length(i))) (example \(i)'s list, offsets[\(i)] = "
                             + "\(offsets[i])) and is not -1")
            }
        }

        // Values: weights, then each read list's scores and costs. The oracle stands in for a
        // gold of -1 from here on (`golds`).
        let (chunkStarts, chunkCount) = try balancedChunks(offsets, n: n)
        defer { chunkStarts.free() }
        let chunks = Chunks(starts: chunkStarts.base, count: chunkCount, examples: n)
        let threads = Parallel.threads(requested: options.threads, elements: total, chunks: chunks.count)
        let surveys = try Scratch<RowSurvey<T>>(n, "the list surveys")
        defer { surveys.free() }
        let golds = try Scratch<Int>(n, "the gold or oracle of each list")
        defer { golds.free() }
        let checks = FlatValidation.Checks<T>(options)
        // Chunk by chunk: a screen of the chunk's candidates all at once, which nearly always
        // proves every value check passes (then only weights, empty lists and oracles are looked
        // at list by list, and the computing pass finds each list's max itself); else the full
        // check of each list, whose survey the computing pass then reuses.
        let screened = try Scratch<Bool>(chunks.count, "the screened chunks")
        defer { screened.free() }
        try batch.validateChunks(chunks, threads: threads) { (chunk: Int, _: Int) throws(Failure) in
            let lists = chunks.range(chunk)
            let candidates = start(lists.upperBound) - start(lists.lowerBound)
            // Runs of consecutive lists of non-zero weight are screened (zero-weight lists are
            // not read); a loss that reads no costs but has an oracle to find here reads the
            // costs of the oracle's lists only, which the per-list check does.
            screened[chunk] = candidates < FlatValidation.screenedLength * lists.count
                && (recipe.readsCosts || !lists.contains { gold[$0] == -1 && !batch.hasZeroWeight($0) })
                && FlatValidation.screenRuns(lists, isRead: { !batch.hasZeroWeight($0) }) { run in
                    FlatValidation.screen(scores + start(run.lowerBound),
                                          costs: recipe.readsCosts ? cost.map { $0 + start(run.lowerBound) } : nil,
                                          count: start(run.upperBound) - start(run.lowerBound),
                                          costBound: checks.costBound)
                }
            for i in lists {
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) { continue }
                guard length(i) > 0 else {
                    throw .domain("example \(i) has an empty list (offsets[\(i)] = offsets[\(i + 1)] = \(offsets[i])) "
                                  + "and weight \(batch.weight(i)) != 0")
                }
                let oracle = gold[i] == -1
                let costs = (recipe.readsCosts || oracle) ? cost.map { $0 + start(i) } : nil
                if !screened[chunk] {
                    surveys[i] = try FlatValidation.check(
                        scores + start(i), count: length(i), gold: oracle ? nil : Int(gold[i]), costs: costs,
                        checks, names: RowNames(example: i, layout: .list(offset: start(i))))
                }
                if oracle, let costs {
                    golds[i] = FlatCandidates<T>.lowestCost(scores + start(i), costs, count: length(i))
                } else {
                    golds[i] = Int(gold[i])
                }
            }
        }

        let counted = try batch.denominator(isIgnored: { _ in false })

        // The computing pass, with a row of scratch per thread for a second log-sum-exp term
        // (and for risk's Hessian, its softmax beside p (c - R)).
        let scratchRow = recipe.needsScratchRow(gradient: grad != nil, hessian: hess != nil) ? longest : 0
        let scratch = try Scratch<T>(threads * scratchRow, "the exps of a second log-sum-exp term")
        defer { scratch.free() }
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunks.count), "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: counted, chunks: chunks, threads: threads, partials: partials,
            isIgnored: { _ in false },
            skip: { i in
                grad?.advanced(by: start(i)).update(repeating: 0, count: length(i))
                hess?.advanced(by: start(i)).update(repeating: 0, count: length(i))
            },
            evaluate: { i, coefficient, worker, chunk in
                let row = scratchRow > 0 ? scratch.base + worker * scratchRow : nil
                let example = FlatCandidates(
                    scores: scores + start(i), count: length(i), goldIndex: golds[i],
                    costs: cost.map { $0 + start(i) }, costScale: options.costScale,
                    gradient: grad.map { $0 + start(i) },
                    scratch: row,
                    validated: screened[chunk] ? nil : surveys[i])
                let value = recipe.loss(onFlat: example, gradientTimes: coefficient)
                if let hess {
                    recipe.hessian(on: example.writing(into: hess + start(i), scratch: row), times: coefficient)
                }
                return value
            })
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
