import CLossKit

/// Linear chains (DESIGN.md §4.4): n sequences of up to t_max positions over `tags` tags,
/// emissions n x t_max x tags, shared transitions [from][to], start and end scores; each
/// sequence is a `ChainExample`, whose candidates are all its tag paths. The entry points: the
/// loss (`compute`, here) and decoding (`viterbi`, `marginals`: ChainDecoding.swift), set up
/// alike by ChainCall.
enum Chains {
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, gold: UnsafePointer<Int32>?,
        cost: UnsafePointer<T>?, weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dEmissions: UnsafeMutablePointer<T>?, dTransitions: UnsafeMutablePointer<T>?,
        dStart: UnsafeMutablePointer<T>?, dEnd: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .chains, computingIn: Double.self)
        let recipe = options.recipe
        let arguments = LossCall(options: options, n: n, tMax: tMax, tags: tags, emissions: emissions,
                                 transitions: transitions, start: start, end: end, lengths: lengths, gold: gold,
                                 cost: cost, weight: weight, loss: loss, dTransitions: dTransitions, dStart: dStart,
                                 dEnd: dEnd)
        guard let checked = try arguments.validate() else { return }
        let (call, gold, costSums, counted, batch) =
            (checked.call, checked.gold, checked.costSums, checked.counted, arguments.batch)
        defer { checked.free() }
        let (n, tMax, tags, model) = (call.n, call.tMax, call.tags, call.model)
        let lengths = call.lengths
        let readLength = { (i: Int) in batch.hasZeroWeight(i) ? 0 : Int(lengths[i]) }
        let unscale = gradientUnscale(n: n, batch: batch, counted: counted, length: readLength,
                                      costSum: { recipe == .risk && !call.nanFlags[$0] ? costSums[$0] : 0 })

        // The computing pass: each chunk sums its sequences' shared gradients separately, in the
        // model's padded layout (rows of `stride`).
        let S = model.stride
        let shared = tags * S + 2 * S
        let wantShared = dTransitions != nil || dStart != nil || dEnd != nil
        let chunkCount = call.chunks.count
        let accumulators = try Scratch<Double>(wantShared ? chunkCount * shared : 0, "the shared gradients")
        defer { accumulators.free() }
        if wantShared { accumulators.base.update(repeating: 0, count: chunkCount * shared) }
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunkCount), "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: counted, chunks: call.chunks, threads: call.threads, partials: partials,
            isIgnored: { _ in false },
            skip: { i in dEmissions?.advanced(by: i * tMax * tags).update(repeating: 0, count: tMax * tags) },
            evaluate: { i, coefficient, worker, chunk in
                let length = call.length(i)
                let rows = dEmissions.map { $0 + i * tMax * tags }
                rows?.advanced(by: length * tags).update(repeating: 0, count: (tMax - length) * tags)
                let s = call.scratch(worker)
                guard length > 0 else { return 0 }
                let chunkAccumulator = wantShared ? accumulators.base + chunk * shared : nil
                let example = ChainExample(
                    model: model, emissions: call.emissions(of: i), costs: cost.map { $0 + i * tMax * tags },
                    goldPath: gold + i * tMax, length: length, costScale: options.costScale,
                    isNaN: call.nanFlags[i], unscale: unscale.factors,
                    gradient: ChainGradient(emissions: rows == nil ? nil : s.gradient, output: rows,
                                            transitions: dTransitions == nil ? nil : chunkAccumulator,
                                            start: dStart == nil ? nil : chunkAccumulator.map { $0 + tags * S },
                                            end: dEnd == nil ? nil : chunkAccumulator.map { $0 + tags * S + S }),
                    scratch: s)
                let value = recipe.loss(on: example, gradientTimes: coefficient * unscale.scale)
                example.flushGradient()
                return value
            })

        // The shared gradients: the chunks' sums, in chunk order.
        if wantShared {
            func reduce(_ output: UnsafeMutablePointer<T>?, _ j: Int, from offset: Int) {
                guard let output else { return }
                var total = 0.0
                for chunk in 0..<chunkCount { total += accumulators[chunk * shared + offset] }
                output[j] = T(rounding: total * unscale.factors.0 * unscale.factors.1)
            }
            for from in 0..<tags { for to in 0..<tags { reduce(dTransitions, from * tags + to, from: from * S + to) } }
            for y in 0..<tags {
                reduce(dStart, y, from: tags * S + y)
                reduce(dEnd, y, from: tags * S + S + y)
            }
        }
    }

    /// The power of two (<= 1) the gradients are computed in units of, and the two factors that
    /// undo it when they are stored. The gradients of a sequence with coefficient c (its weight,
    /// over the summed weight under MEAN) add up, over its positions and the batch, terms of
    /// magnitude at most 2 c (T + 1) (marginals and one-hots; times the largest cost sum for
    /// risk); in double their partial sums — a positive part and a negative one that cancel —
    /// would overflow to inf - inf = NaN with weights near DBL_MAX. In these units they cannot;
    /// an output whose true value exceeds the largest finite number is stored as +-inf.
    /// Scale 1 (bits unchanged) unless the weights come within about 2^-5 (T + 1) of DBL_MAX.
    static func gradientUnscale<T: StorageFloat>(n: Int, batch: Batch<T>, counted: Double, length: (Int) -> Int,
                                         costSum: (Int) -> Double)
        -> (scale: Double, factors: (Double, Double))
    {
        var top = Int.min
        for i in 0..<n {
            let w = batch.weight(i)
            guard w > 0 else { continue }
            let c = batch.reduction == .mean ? w / counted : w
            guard c > 0 else { continue }
            let k = Swift.max(1, 2 * costSum(i))
            top = Swift.max(top, Int(c.exponent) + Int(Double(2 * (length(i) + 1)).exponent) + Int(k.exponent) + 3)
        }
        guard top > Int.min else { return (1, (1, 1)) }
        let s = Swift.min(2000, Swift.max(0, top + Int(Double(n).exponent) + 1 - 1019))
        guard s > 0 else { return (1, (1, 1)) }
        let first = Swift.min(s, 1000)
        let power = { (k: Int) in Double(sign: .plus, exponent: k, significand: 1) }
        return (power(-s), (power(first), power(s - first)))
    }
}

extension Chains {
    /// The arguments of an lk_chain call and what each phase of the checks (CallChecks) checks
    /// of them. Zero-weight sequences are not read beyond their weight.
    struct LossCall<T: StorageFloat>: CallChecks {
        let options: Options
        let n: Int64, tMax: Int64, tags: Int64
        let emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?
        let end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, gold: UnsafePointer<Int32>?
        let cost: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?
        let dTransitions: UnsafeMutablePointer<T>?, dStart: UnsafeMutablePointer<T>?, dEnd: UnsafeMutablePointer<T>?
        /// The weights (read by the sizes phase already: an unread length is not validated).
        let batch: Batch<T>

        init(options: Options, n: Int64, tMax: Int64, tags: Int64, emissions: UnsafePointer<T>?,
             transitions: UnsafePointer<T>?, start: UnsafePointer<T>?, end: UnsafePointer<T>?,
             lengths: UnsafePointer<Int32>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?,
             weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, dTransitions: UnsafeMutablePointer<T>?,
             dStart: UnsafeMutablePointer<T>?, dEnd: UnsafeMutablePointer<T>?) {
            (self.options, self.n, self.tMax, self.tags) = (options, n, tMax, tags)
            (self.emissions, self.transitions, self.start, self.end) = (emissions, transitions, start, end)
            (self.lengths, self.gold, self.cost, self.loss) = (lengths, gold, cost, loss)
            (self.dTransitions, self.dStart, self.dEnd) = (dTransitions, dStart, dEnd)
            batch = Batch(count: Int(Swift.max(0, Swift.min(n, Int64(Int.max / 16)))), weights: weight,
                          reduction: options.reduction)
        }

        var examples: Int64 { n }

        func checkPointers() throws(Failure) {
            try ChainCall.checkPointers(emissions: emissions, transitions: transitions, lengths: lengths,
                                        other: gold, "gold")
        }

        /// The chain's shape and the gold paths (given whenever there are sequences: the pointers
        /// phase).
        struct Shape {
            let chain: ChainCall<T>.Shape
            let gold: UnsafePointer<Int32>
        }

        func checkSizes() throws(Failure) -> Shape? {
            guard let chain = try ChainCall<T>.checkShape(
                n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions, lengths: lengths,
                readsLength: { !batch.hasZeroWeight($0) }),
                let gold
            else { return nil }
            return Shape(chain: chain, gold: gold)
        }

        /// An empty batch: nothing is read, and the gradient of the 0 written is 0.
        func writeEmptyBatch() {
            Batch<T>.writeEmpty(loss, options.reduction)
            let l = Int(tags), (squared, overflow) = l.multipliedReportingOverflow(by: l)
            if !overflow {
                dTransitions?.update(repeating: 0, count: squared)
                dStart?.update(repeating: 0, count: l)
                dEnd?.update(repeating: 0, count: l)
            }
        }

        /// Gold tags, at the positions of each sequence of non-zero weight.
        func checkLabels(_ shape: Shape) throws(Failure) {
            let (gold, chain) = (shape.gold, shape.chain)
            for i in 0..<chain.n where !batch.hasZeroWeight(i) {
                for t in 0..<Int(chain.lengths[i]) {
                    let g = gold[i * chain.tMax + t]
                    guard g >= 0, Int(g) < chain.tags else {
                        throw .label("gold[\(i), \(t)] = \(g) is outside [0, \(chain.tags)) "
                            + "(sequence \(i), length \(chain.lengths[i]))")
                    }
                }
            }
        }

        /// What the values phase leaves: the call's set-up, each read sequence's largest cost sum
        /// (risk), the mean's denominator.
        struct Checked {
            let call: ChainCall<T>
            let gold: UnsafePointer<Int32>
            let costSums: Scratch<Double>
            let counted: Double

            func free() { call.free(); costSums.free() }
        }

        /// The model (read whenever n > 0), then each read sequence: its weight, emissions and
        /// costs (ChainCall.checkSequence), and — where paths may be forbidden and the loss uses
        /// the gold score — that the gold path is allowed; then the mean's denominator.
        func checkValues(_ shape: Shape) throws(Failure) -> Checked {
            let recipe = options.recipe
            let (chain, gold) = (shape.chain, shape.gold)
            let (n, tMax, tags, lengths) = (chain.n, chain.tMax, chain.tags, chain.lengths)
            let call = try ChainCall.prepare(shape: chain, start: start, end: end,
                                             readLength: { batch.hasZeroWeight($0) ? 0 : Int(lengths[$0]) },
                                             requestedThreads: options.threads)
            var complete = false
            defer { if !complete { call.free() } }
            let model = call.model
            // Each read sequence's largest cost sum, T cost_scale max|c| (what its risk gradient
            // scales by).
            let costSums = try Scratch<Double>(recipe == .risk ? n : 0, "the cost sums")
            defer { if !complete { costSums.free() } }
            let readsCosts = recipe.readsCosts
            let costBound = readsCosts ? options.costScale * recipe.costFactor : 0
            // The largest cost read (1 for Hamming costs), each one checked: finite, and finite
            // when scaled and added to its emission.
            let largestCost = { (i: Int, e: UnsafePointer<T>, length: Int) throws(Failure) -> Double in
                guard readsCosts else { return 0 }
                guard let cost else { return 1 }
                let c = cost + i * tMax * tags
                var largest = 0.0
                for j in 0..<(length * tags) where e[j] != -T.infinity {
                    largest = Swift.max(largest, c[j].asDouble.magnitude)
                    guard c[j].isFinite else {
                        throw .domain("cost[\(i), \(j / tags), \(j % tags)] = \(describe(c[j])) is not finite")
                    }
                    guard !(e[j].asDouble.magnitude + costBound * c[j].asDouble.magnitude).isInfinite else {
                        throw .domain("cost[\(i), \(j / tags), \(j % tags)] = \(describe(c[j])) overflows when "
                            + "scaled (\(costBound)) and added to its emission")
                    }
                }
                return largest
            }
            try batch.validate(call.chunks, threads: call.threads) { (i: Int, worker: Int) throws(Failure) in
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) { return }
                let check = try call.checkSequence(i, worker: worker, costBound: costBound) {
                    (e: UnsafePointer<T>, length: Int) throws(Failure) in try largestCost(i, e, length)
                }
                guard case .valid(let largest, let mayForbid) = check else {
                    if recipe == .risk { costSums[i] = 0 }
                    return
                }
                if recipe == .risk { costSums[i] = Double(call.length(i)) * costBound * largest }
                // Where paths may be forbidden, the gold's must not be if the loss uses its score.
                if mayForbid, recipe.usesGoldScore,
                   let t = ChainPaths.forbiddenStep(model, emissions: call.emissions(of: i), length: call.length(i),
                                                    path: gold + i * tMax) {
                    throw .domain("the gold path of sequence \(i) is forbidden at position \(t) (a -inf score or "
                        + "transition), but this loss uses the gold score")
                }
            }
            let counted = try batch.denominator(isIgnored: { _ in false })
            complete = true
            return Checked(call: call, gold: gold, costSums: costSums, counted: counted)
        }
    }
}
