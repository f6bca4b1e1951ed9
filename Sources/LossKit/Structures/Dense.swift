import CLossKit

/// Dense rows (DESIGN.md §4.2): n examples of k classes, scores row-major, one gold class per
/// row (or `ignore_label`), costs per `cost_layout`. Each row is a `FlatCandidates`.
/// `hess` (lk_dense_hessian_*) receives the diagonal of the Hessian (Hessian.swift); the checks
/// are those of lk_dense_*, whether or not it is given.
enum Dense {
    static func compute<T: Real>(
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
        if let angular = options.angular, !T(rounding: angular.largestLogit).isFinite {
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
        let angular = options.angular.map { AngularRow<T>($0) }
        let scratchRow = (recipe.hasTwoLogSumExps && (grad != nil || hess != nil)) || angular != nil
            || (recipe == .risk && hess != nil) ? k : 0
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
                if let angular {
                    let value = angularLoss(angular, scores + i * k, count: k, gold: Int(gold[i]),
                                            logits: row!, gradient: grad.map { $0 + i * k }, recipe: recipe,
                                            coefficient: coefficient)
                    if let hess {
                        angularHessian(angular, scores + i * k, count: k, gold: Int(gold[i]), logits: row!,
                                       hessian: hess + i * k, coefficient: coefficient)
                    }
                    return value
                }
                let example = FlatCandidates(
                    scores: scores + i * k, count: k, goldIndex: Int(gold[i]),
                    costs: costs(i), costScale: options.costScale,
                    gradient: grad.map { $0 + i * k },
                    scratch: row,
                    validated: screened[chunk] ? nil : surveys[i])
                let value = recipe.loss(onEnumerable: example, gradientTimes: coefficient)
                if let hess {
                    recipe.hessian(on: example.writing(into: hess + i * k, scratch: row), times: coefficient)
                }
                return value
            })
    }

    /// CosFace / ArcFace on one validated row of cosines: the log loss over its logits (written
    /// to `logits`), its gradient chained back to the cosines.
    private static func angularLoss<T: Real>(
        _ angular: AngularRow<T>, _ cosines: UnsafePointer<T>, count: Int, gold: Int,
        logits: UnsafeMutablePointer<T>, gradient: UnsafeMutablePointer<T>?, recipe: Recipe,
        coefficient: Double
    ) -> Double {
        let goldSlope = angular.scale * angular.logits(cosines, count: count, gold: gold, into: logits)
        let (maximum, _, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(logits), count: count,
                                                                   SurveyMaximum.self)
        let example = FlatCandidates(
            scores: UnsafePointer(logits), count: count, goldIndex: gold, costs: nil, costScale: 0,
            gradient: gradient, scratch: nil,
            validated: RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: -1, unmasked: unmasked))
        let value = recipe.loss(onEnumerable: example, gradientTimes: coefficient)
        if let gradient {
            angular.chain(gradient, cosines: cosines, count: count, gold: gold, goldSlope: goldSlope)
        }
        return value
    }

    /// The diagonal of CosFace's / ArcFace's Hessian w.r.t. the cosines on one validated row:
    /// with z the logits and p = softmax(z), d^2 L / dcos_j^2 = s^2 p_j (1 - p_j) off the gold
    /// (0 outside the clamp), and at the gold (chain rule through z[g](cos_g))
    /// p_g (1 - p_g) (dz[g]/dcos_g)^2 + (p_g - 1) d^2 z[g] / dcos_g^2.
    private static func angularHessian<T: Real>(
        _ angular: AngularRow<T>, _ cosines: UnsafePointer<T>, count: Int, gold: Int,
        logits: UnsafeMutablePointer<T>, hessian: UnsafeMutablePointer<T>, coefficient: Double
    ) {
        let slope = angular.logits(cosines, count: count, gold: gold, into: logits)
        let (maximum, _, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(logits), count: count,
                                                                   SurveyMaximum.self)
        let example = FlatCandidates(
            scores: UnsafePointer(logits), count: count, goldIndex: gold, costs: nil, costScale: 0,
            gradient: hessian, scratch: nil,
            validated: RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: -1, unmasked: unmasked))
        if example.containsNaN { return example.poisonGradient() }
        let q = example.exps(0, into: hessian)
        // The gold first (its exp is overwritten below): p_g - 1 = -((1 - e_g) + rest) / den,
        // formed without cancelling; the slope is 0 outside the clamp, as is the curvature. In
        // units of s, s (s a - b), so that a huge s overflows to +-inf, never to inf - inf or
        // inf * 0 (b is finite: the curvature is at most sin m / sinFloor^3).
        let s = angular.scale
        let e = hessian[gold].wide
        let pull = ((1 - e) + q.rest) / q.denominator
        let a = q.variance(e) * slope * slope
        let b = pull == 0 ? 0 : pull * angular.goldCurvature(cosines[gold].wide)
        let atGold = s * (s * a - b)
        for j in 0..<count {
            let c = cosines[j]
            hessian[j] = c > 1 || c < -1 ? 0 : T(rounding: coefficient * (s * (s * q.variance(hessian[j].wide))))
        }
        hessian[gold] = T(rounding: coefficient * atGold)
    }
}
