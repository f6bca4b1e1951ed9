import CLossKit

/// Dense rows (DESIGN.md §4.2): n examples of k classes, scores row-major, one gold class per
/// row (or `ignore_label`), costs per `cost_layout`. Each row is a `FlatCandidates`.
/// `hess` (lk_dense_hessian_*) receives the diagonal of the Hessian (Hessian.swift); the checks
/// are those of lk_dense_*, whether or not it is given. lk_dense_bf16 is lk_dense_f32 on its
/// scores widened row by row, its gradient narrowed row by row (Source, GradientSink).
enum Dense {
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, k: Int64,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?,
        hess: UnsafeMutablePointer<T>? = nil
    ) throws(Failure) {
        try compute(opt, n: n, k: k, scores: scores.map { Source($0) }, gold: gold, cost: cost, weight: weight,
                    loss: loss, grad: GradientSink(grad), hess: hess)
    }

    static func compute(
        _ opt: UnsafePointer<lk_options>?, n: Int64, k: Int64,
        bfloat16 scores: UnsafePointer<UInt16>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<Float>?,
        weight: UnsafePointer<Float>?, loss: UnsafeMutablePointer<Float>?, grad: UnsafeMutablePointer<UInt16>?,
        gradFloat: UnsafeMutablePointer<Float>?
    ) throws(Failure) {
        try compute(opt, n: n, k: k, scores: scores.map { Source(bfloat16: $0) }, gold: gold, cost: cost,
                    weight: weight, loss: loss, grad: GradientSink(gradFloat, bfloat16: grad), hess: nil)
    }

    private static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, k: Int64,
        scores: Source<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad: GradientSink<T>,
        hess: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .dense, computingIn: T.self)
        if hess != nil, options.shaping.isActive {
            throw .unsupported("opt->z_loss and opt->softcap are not supported with a Hessian (lk_dense_hessian_*)")
        }
        let call = Call(options: options, n: n, k: k,
                        scores: scores, gold: gold, cost: cost, weight: weight, loss: loss)
        guard let (rows, checked) = try call.validate() else { return }
        defer { checked.free() }
        try rows.run(checked, options: call.options, longest: rows.layout.k, gold: { Int(rows.gold[$0]) },
                     costs: { call.costs(of: $0, rows.gold, k: rows.layout.k) },
                     loss: loss, grad: grad, hess: hess)
    }

    /// The arguments of an lk_dense call and what each phase of the checks (CallChecks) checks of
    /// them.
    struct Call<T: StorageFloat>: CallChecks {
        let options: Options
        let n: Int64, k: Int64
        let scores: Source<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?
        let weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?

        var examples: Int64 { n }
        /// .zeroOne for the losses that read no costs.
        var layout: CostLayout { options.costLayout }

        func checkPointers() throws(Failure) {
            try Validation.require(scores?.address, "scores")
            try Validation.require(gold, "gold")
            if layout != .zeroOne, cost == nil {
                throw .null("cost is NULL, but this loss reads costs and opt->cost_layout is "
                            + "\(layout == .perExample ? "LK_COST_PER_EXAMPLE" : "LK_COST_CLASS_MATRIX")")
            }
        }

        /// n, k and the byte sizes: n * k * sizeof(T) (scores, grad, hess; with k >= 1 and
        /// sizeof(T) >= 4 it bounds gold's n * 4 and weight's and loss's n * sizeof(T)), and the
        /// class matrix's k * k.
        func checkSizes() throws(Failure) -> FlatBatch<T, RowLayout>? {
            let n = try Validation.dimension(self.n, "n"), k = try Validation.dimension(self.k, "k")
            guard n > 0, let scores, let gold else { return nil }
            guard k >= 1 else { throw .size("k = 0, but a row needs at least one class when n > 0") }
            let elements = try elementCount(n, k, of: T.self, "n * k")
            if layout == .classMatrix { _ = try elementCount(k, k, of: T.self, "k * k (cost class matrix)") }
            let chunks = Chunks(examples: n, valuesPerExample: k)
            return FlatBatch(layout: RowLayout(k: k), scores: scores,
                             batch: Batch(count: n, weights: weight, reduction: options.reduction),
                             gold: gold, ignoreLabel: options.ignoreLabel, chunks: chunks,
                             threads: Parallel.threads(requested: options.threads, elements: elements,
                                                       chunks: chunks.count))
        }

        func writeEmptyBatch() { Batch<T>.writeEmpty(loss, options.reduction) }

        /// The gold labels of the examples that are neither ignored nor of zero weight.
        func checkLabels(_ rows: FlatBatch<T, RowLayout>) throws(Failure) {
            try Validation.checkClasses(rows.gold, k: rows.layout.k, ignoreLabel: options.ignoreLabel, rows.batch)
        }

        /// Weights, then each read row's scores and costs (FlatValidation). The scan of the scores
        /// also keeps each row's max, which the log-sum-exp terms without costs reuse. Rows with a
        /// class matrix are checked row by row; others are screened a chunk at once, with their
        /// cost rows under LK_COST_PER_EXAMPLE.
        func checkValues(_ rows: FlatBatch<T, RowLayout>) throws(Failure)
            -> (FlatBatch<T, RowLayout>, FlatBatch<T, RowLayout>.Checked)
        {
            let checks = FlatValidation.Checks<T>(options)
            let gold = rows.gold, k = rows.layout.k
            let checked = try rows.checkValues(
                screenedCosts: layout == .perExample ? cost : nil, costBound: checks.costBound, longest: k,
                mayScreen: { _ in layout != .classMatrix }
            ) { (i: Int, scores: UnsafePointer<T>, screened: Bool) throws(Failure) in
                guard !screened else { return nil }
                return try FlatValidation.check(
                    scores, count: k, gold: Int(gold[i]), costs: costs(of: i, gold, k: k), checks,
                    names: RowNames(example: i, layout: .dense(scoreRow: i, costRow: costRow(of: i, gold))))
            }
            return (rows, checked)
        }

        /// The row of costs example i reads: its own (LK_COST_PER_EXAMPLE) or its gold's row of the
        /// class matrix; nil under 0/1 costs.
        func costs(of i: Int, _ gold: UnsafePointer<Int32>, k: Int) -> UnsafePointer<T>? {
            layout == .zeroOne ? nil : cost.map { $0 + costRow(of: i, gold) * k }
        }

        private func costRow(of i: Int, _ gold: UnsafePointer<Int32>) -> Int {
            layout == .classMatrix ? Int(gold[i]) : i
        }
    }
}
