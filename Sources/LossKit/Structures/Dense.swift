import CLossKit

/// Dense rows (DESIGN.md §4.2): n examples of k classes, scores row-major, one gold class per
/// row (or `ignore_label`), costs per `cost_layout`. Each row is a `FlatCandidates`.
/// `hess` (lk_dense_hessian_*) receives the diagonal of the Hessian (Hessian.swift); the checks
/// are those of lk_dense_*, whether or not it is given.
enum Dense {
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, k k64: Int64,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?,
        hess: UnsafeMutablePointer<T>? = nil
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .dense, computingIn: T.self)
        let recipe = options.recipe
        let layout = options.costLayout  // .zeroOne for the losses that read no costs

        // Pointers (nothing is read when n = 0).
        if n64 != 0 {
            guard scores != nil else { throw .null("scores is NULL (required when n != 0)") }
            guard gold != nil else { throw .null("gold is NULL (required when n != 0)") }
            if layout != .zeroOne, cost == nil {
                throw .null("cost is NULL, but this loss reads costs and opt->cost_layout is "
                            + "\(layout == .perExample ? "LK_COST_PER_EXAMPLE" : "LK_COST_CLASS_MATRIX")")
            }
        }

        // Sizes.
        guard n64 >= 0 else { throw .size("n = \(n64) is negative") }
        guard k64 >= 0 else { throw .size("k = \(k64) is negative") }
        guard let n = Int(exactly: n64), let k = Int(exactly: k64) else {
            throw .size("n = \(n64), k = \(k64) do not fit this platform's address space")
        }
        let batch = Batch<T>(count: n, weights: weight, reduction: options.reduction)
        guard n > 0, let scores, let gold else {
            batch.writeEmpty(loss)
            return
        }
        guard k >= 1 else { throw .size("k = 0, but a row needs at least one class when n > 0") }
        if case .angular(let angular) = recipe, !T(rounding: angular.largestLogit).isFinite {
            throw .option("opt->angular_scale = \(angular.scale) times 1 + angular_margin (\(angular.margin)) "
                          + "overflows \(T.self)")
        }
        // Byte sizes before anything is read: n * k * sizeof(T) (scores, grad; with k >= 1 and
        // sizeof(T) >= 4 it bounds gold's n * 4 and weight's and loss's n * sizeof(T)).
        let elements = try elementCount(n, k, of: T.self, "n * k")
        if layout == .classMatrix { _ = try elementCount(k, k, of: T.self, "k * k (cost class matrix)") }

        // Gold labels, for the examples that are neither ignored nor of zero weight.
        let ignore = options.ignoreLabel
        for i in 0..<n where gold[i] != ignore && !batch.hasZeroWeight(i) {
            let g = gold[i]
            guard g >= 0, Int(g) < k else {
                throw .label("gold[\(i)] = \(g) is outside [0, \(k)) and is not ignore_label (\(ignore))")
            }
        }

        // Values: weights, then each read row's scores and costs. The scan of the scores also
        // keeps each row's max, which the log-sum-exp terms without costs reuse.
        let costRow = { (i: Int) -> Int in layout == .classMatrix ? Int(gold[i]) : i }
        let costs = { (i: Int) -> UnsafePointer<T>? in
            layout == .zeroOne ? nil : cost.map { $0 + costRow(i) * k }
        }
        let checks = FlatValidation.Checks<T>(options)
        let chunks = Chunks(examples: n, valuesPerExample: k)
        let threads = Parallel.threads(requested: options.threads, elements: elements, chunks: chunks.count)
        let surveys = try Scratch<RowSurvey<T>>(n, "the row surveys")
        defer { surveys.free() }
        // Chunk by chunk, as for candidate lists: a screen of the chunk's rows at once (with
        // their cost rows for LK_COST_PER_EXAMPLE), and the full check of each row only where
        // the screen objects. Long rows, and rows with a class matrix, are checked row by row.
        let screened = try Scratch<Bool>(chunks.count, "the screened chunks")
        defer { screened.free() }
        try batch.validateChunks(chunks, threads: threads) { (chunk: Int, _: Int) throws(Failure) in
            let rows = chunks.range(chunk)
            // Runs of consecutive rows that are read (neither ignored nor of zero weight).
            screened[chunk] = layout != .classMatrix && k < FlatValidation.screenedLength
                && FlatValidation.screenRuns(rows, isRead: { gold[$0] != ignore && !batch.hasZeroWeight($0) }) { run in
                    FlatValidation.screen(scores + run.lowerBound * k,
                                          costs: layout == .perExample ? cost.map { $0 + run.lowerBound * k } : nil,
                                          count: run.count * k, costBound: checks.costBound)
                }
            for i in rows where gold[i] != ignore {
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) || screened[chunk] { continue }
                surveys[i] = try FlatValidation.check(
                    scores + i * k, count: k, gold: Int(gold[i]), costs: costs(i), checks,
                    names: RowNames(example: i, layout: .dense(scoreRow: i, costRow: costRow(i))))
            }
        }

        let isIgnored = { (i: Int) in gold[i] == ignore }
        let counted = try batch.denominator(isIgnored: isIgnored)

        // The computing pass. A first log-sum-exp keeps its exps in the gradient row; a second
        // one needs a row of scratch per thread, as do the logits of the angular losses and
        // risk's Hessian (its softmax beside p (c - R)).
        let scratchRow = recipe.needsScratchRow(gradient: grad != nil, hessian: hess != nil) ? k : 0
        let scratch = try Scratch<T>(threads * scratchRow, "the exps of a second log-sum-exp term")
        defer { scratch.free() }
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunks.count), "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: counted, chunks: chunks, threads: threads, partials: partials,
            isIgnored: isIgnored,
            skip: { i in
                grad?.advanced(by: i * k).update(repeating: 0, count: k)
                hess?.advanced(by: i * k).update(repeating: 0, count: k)
            },
            evaluate: { i, coefficient, worker, chunk in
                let row = scratchRow > 0 ? scratch.base + worker * scratchRow : nil
                let example = FlatCandidates(
                    scores: scores + i * k, count: k, goldIndex: Int(gold[i]),
                    costs: costs(i), costScale: options.costScale,
                    gradient: grad.map { $0 + i * k },
                    scratch: row,
                    validated: screened[chunk] ? nil : surveys[i])
                let value = recipe.loss(onFlat: example, gradientTimes: coefficient)
                if let hess {
                    recipe.hessian(on: example.writing(into: hess + i * k, scratch: row), times: coefficient)
                }
                return value
            })
    }
}
