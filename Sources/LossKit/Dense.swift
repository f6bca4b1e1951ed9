import CLossKit

/// Dense rows (DESIGN.md §4.2): n examples of k classes, scores row-major, one gold class per
/// row (or `ignore_label`), costs per `cost_layout`. Each row is a `FlatCandidates`.
enum Dense {
    static func compute<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, k k64: Int64,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .dense)
        let recipe = options.recipe
        let layout = options.costLayout  // .zeroOne for the losses that read no costs

        // Pointers (nothing is read when n = 0).
        if n64 != 0 {
            guard scores != nil else { throw .null("scores is NULL (required when n != 0)") }
            guard gold != nil else { throw .null("gold is NULL (required when n != 0)") }
            if layout != .zeroOne, cost == nil {
                throw .null("cost is NULL, but this loss reads costs and opt->cost_layout is \(layout == .perExample ? "LK_COST_PER_EXAMPLE" : "LK_COST_CLASS_MATRIX")")
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
        let costBound = recipe.readsCosts ? options.costScale * recipe.costFactor : 0
        let chunkSize = Batch<T>.chunkSize(elementsPerExample: k)
        let chunks = (n + chunkSize - 1) / chunkSize
        let threads = Parallel.threads(requested: options.threads, elements: elements, chunks: chunks)
        let surveys = try Scratch<RowSurvey<T>>(n, "the row surveys")
        defer { surveys.free() }
        try batch.validate(chunkSize: chunkSize, threads: threads) { (i: Int) throws(Failure) in
            guard gold[i] != ignore else { return }
            try batch.checkWeight(i)
            if batch.hasZeroWeight(i) { return }
            surveys[i] = try checkRow(
                scores + i * k, count: k, gold: Int(gold[i]), costs: costs(i),
                costBound: costBound, usesGold: recipe.usesGoldScore,
                needsArgmax: recipe.needsArgmax, needsUnmaskedCount: recipe.needsUnmaskedCount,
                names: RowNames(example: i, scoreRow: i, costRow: costRow(i)))
        }

        let isIgnored = { (i: Int) in gold[i] == ignore }
        let counted = try batch.denominator(isIgnored: isIgnored)

        // The computing pass. A first log-sum-exp keeps its exps in the gradient row; a second
        // one needs a row of scratch per thread.
        let scratchRow = recipe.hasTwoLogSumExps && grad != nil ? k : 0
        let scratch = try Scratch<T>(threads * scratchRow, "the exps of a second log-sum-exp term")
        defer { scratch.free() }
        let partials = try Scratch<Double>(chunks, "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: counted, chunkSize: chunkSize, threads: threads, partials: partials,
            isIgnored: isIgnored,
            skip: { i in grad?.advanced(by: i * k).update(repeating: 0, count: k) },
            evaluate: { i, coefficient, worker in
                let example = FlatCandidates(
                    scores: scores + i * k, count: k, goldIndex: Int(gold[i]),
                    costs: costs(i), costScale: options.costScale,
                    gradient: grad.map { $0 + i * k },
                    scratch: scratchRow > 0 ? scratch.base + worker * scratchRow : nil,
                    survey: surveys[i])
                return recipe.loss(onEnumerable: example, gradientTimes: coefficient)
            })
    }

    /// The value checks of one row of flat candidates (shared with candidate lists): no +inf
    /// score, at least one unmasked candidate, an unmasked gold when the loss uses the gold
    /// score, and finite costs for the unmasked candidates when costs are read, which stay
    /// finite when multiplied by `costBound` (cost_scale times the largest term scale; 0 when
    /// no cost is read) and added to the score. Returns what the scan learnt of the scores.
    static func checkRow<T: Real>(
        _ scores: UnsafePointer<T>, count: Int, gold: Int, costs: UnsafePointer<T>?,
        costBound: Double, usesGold: Bool, needsArgmax: Bool, needsUnmaskedCount: Bool, names: RowNames
    ) throws(Failure) -> RowSurvey<T> {
        let (maximum, index, unmasked, hasNaN) = switch (needsArgmax, needsUnmaskedCount) {
        case (false, false): RowKernel.survey(scores, count: count, SurveyMaximum.self)
        case (true, false): RowKernel.survey(scores, count: count, SurveyArgmax.self)
        case (false, true): RowKernel.survey(scores, count: count, SurveyUnmasked.self)
        case (true, true): RowKernel.survey(scores, count: count, SurveyAll.self)
        }
        if maximum == T.infinity || hasNaN {
            // The slow path names the first +inf (a NaN row may hide one from the max).
            for j in 0..<count where scores[j] == T.infinity {
                throw .domain("\(names.score(j)) = inf: +inf is not a valid score (-inf masks a candidate)")
            }
        }
        if maximum == -T.infinity, !hasNaN {
            throw .domain("example \(names.example) has every candidate masked (-inf scores)")
        }
        if usesGold, scores[gold] == -T.infinity {
            throw .domain("\(names.score(gold)) = -inf masks the gold of example \(names.example), but this loss uses the gold score")
        }
        if costBound > 0 {
            // A score plus its scaled cost must stay finite. Checked per candidate only when the
            // largest score and the largest scaled cost together could overflow.
            var largestCost = 1.0  // 0/1 costs
            if let costs {
                let (largest, nonFinite) = RowKernel.costSurvey(costs, scores: scores, count: count)
                largestCost = largest.wide
                if nonFinite {
                    for j in 0..<count where scores[j] != -T.infinity && !costs[j].isFinite {
                        throw .domain("\(names.cost(j)) = \(describe(costs[j])) is not finite (read for example \(names.example))")
                    }
                }
            }
            if (T.greatestFiniteMagnitude.wide + costBound * largestCost).isInfinite {
                for j in 0..<count where scores[j] != -T.infinity {
                    let s = scores[j].wide.magnitude
                    let c = costs.map { $0[j].wide.magnitude } ?? 1
                    guard !(s + costBound * c).isInfinite else {  // NaN scores pass
                        if let costs {
                            throw .domain("\(names.cost(j)) = \(describe(costs[j])) overflows when scaled by cost_scale and the term scales (\(costBound)) and added to the score")
                        }
                        throw .domain("\(names.score(j)) = \(describe(scores[j])) overflows when the scaled 0/1 cost (\(costBound)) is added")
                    }
                }
            }
        }
        return RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: index, unmasked: unmasked)
    }
}

/// How messages name an entry of a dense row: `scores[row, j]`, `cost[row, j]`. Built only
/// when a check fails.
struct RowNames {
    let example: Int
    let scoreRow: Int
    let costRow: Int
    func score(_ j: Int) -> String { "scores[\(scoreRow), \(j)]" }
    func cost(_ j: Int) -> String { "cost[\(costRow), \(j)]" }
}
