import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// Linear chains (DESIGN.md §4.4): n sequences of up to t_max positions over `tags` tags,
/// emissions n x t_max x tags, shared transitions [from][to], start and end scores; each
/// sequence is a `ChainExample`, whose candidates are all its tag paths.
enum Chains {
    /// Pointers, then sizes (n, t_max, tags, each read length), for every chain entry point.
    /// `readsLength(i)` says whether sequence i is read (zero-weight sequences are not).
    /// Every buffer a chain call may read or write must have a byte size that exists — lengths
    /// and weight/loss/score/log_z (n), gold and path (n * t_max), emissions, cost and their
    /// gradients or marginals (n * t_max * tags), transitions and their gradient (tags^2),
    /// start and end (tags) — checked before anything is read, n = 0 included (an empty batch
    /// still zeroes the tags^2 transition gradients). Returns the longest length read too
    /// (the working tables are sized by it, not by t_max).
    static func checkShape<T: Real>(
        n n64: Int64, tMax t64: Int64, tags l64: Int64, emissions: UnsafePointer<T>?,
        transitions: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        required: [(Bool, String)], readsLength: (Int) -> Bool
    ) throws(Failure) -> (n: Int, tMax: Int, tags: Int, longest: Int)? {
        if n64 != 0 {
            guard emissions != nil else { throw .null("emissions is NULL (required when n != 0)") }
            guard transitions != nil else { throw .null("transitions is NULL (required when n != 0)") }
            guard lengths != nil else { throw .null("lengths is NULL (required when n != 0)") }
            for (present, name) in required where !present { throw .null("\(name) is NULL (required when n != 0)") }
        }
        guard n64 >= 0 else { throw .size("n = \(n64) is negative") }
        guard t64 >= 0 else { throw .size("t_max = \(t64) is negative") }
        guard l64 >= 0 else { throw .size("tags = \(l64) is negative") }
        guard let n = Int(exactly: n64), let tMax = Int(exactly: t64), let tags = Int(exactly: l64) else {
            throw .size("n, t_max, tags do not fit this platform's address space")
        }
        // T is at least as wide as the int32 lengths, gold and path: its stride bounds them all.
        _ = try elementCount(n, 1, of: T.self, "lengths and weight, loss, score, log_z (n)")
        let positions = try elementCount(n, tMax, of: T.self, "gold, path (n * t_max)")
        _ = try elementCount(positions, tags, of: T.self, "emissions, cost, d_emissions, marginals (n * t_max * tags)")
        _ = try elementCount(tags, tags, of: Double.self, "transitions, d_transitions (tags * tags)")
        guard n > 0, let lengths else { return nil }
        guard tags >= 1 else { throw .size("tags = 0, but a chain needs at least one tag when n > 0") }
        var longest = 0
        for i in 0..<n where readsLength(i) {
            guard lengths[i] >= 0, Int(lengths[i]) <= tMax else {
                throw .size("lengths[\(i)] = \(lengths[i]) is outside [0, t_max = \(tMax)]")
            }
            longest = Swift.max(longest, Int(lengths[i]))
        }
        return (n, tMax, tags, longest)
    }

    /// The model in double, each row padded to whole vectors with -inf (ChainModel); start and
    /// end zeros when NULL. +inf is LK_ERR_DOMAIN; NaN makes every sequence NaN.
    static func model<T: Real>(tags: Int, transitions: UnsafePointer<T>, start: UnsafePointer<T>?,
                               end: UnsafePointer<T>?) throws(Failure) -> (ChainModel, Bool, Scratch<Double>) {
        let S = ChainModel.stride(tags: tags)
        let storage = try Scratch<Double>(3 * tags * S + 3 * S + tags, "the model in double")
        storage.base.update(repeating: -.infinity, count: tags * S + 2 * S)
        var hasNaN = false
        var top = -Double.infinity, bottom = Double.infinity
        var largest = (transition: 0.0, start: 0.0, end: 0.0)
        for from in 0..<tags {
            for to in 0..<tags {
                let v = transitions[from * tags + to]
                if v == T.infinity {
                    storage.free()
                    throw .domain("transitions[\(from), \(to)] = inf: +inf is not a valid score (-inf forbids a transition)")
                }
                hasNaN = hasNaN || v.isNaN
                storage[from * S + to] = v.wide
                if v.isFinite {
                    top = Swift.max(top, v.wide); bottom = Swift.min(bottom, v.wide)
                    largest.transition = Swift.max(largest.transition, v.wide.magnitude)
                }
            }
        }
        for (offset, buffer, name) in [(tags * S, start, "start"), (tags * S + S, end, "end")] {
            for y in 0..<tags {
                let v = buffer.map { $0[y].wide } ?? 0
                if v == .infinity {
                    storage.free()
                    throw .domain("\(name)[\(y)] = inf: +inf is not a valid score (-inf forbids the tag)")
                }
                hasNaN = hasNaN || v.isNaN
                storage[offset + y] = v
                if v.isFinite {
                    if offset == tags * S { largest.start = Swift.max(largest.start, v.magnitude) }
                    else { largest.end = Swift.max(largest.end, v.magnitude) }
                }
            }
        }
        // Whether the scaled programs may ignore the emissions' spreads (ChainModel.toleratesSpreads).
        var endTop = -Double.infinity, endBottom = Double.infinity, cutsPaths = false
        for y in 0..<tags {
            let v = storage[tags * S + S + y]
            if v.isFinite { endTop = Swift.max(endTop, v); endBottom = Swift.min(endBottom, v) }
            cutsPaths = cutsPaths || v == -.infinity
        }
        for from in 0..<tags { for to in 0..<tags { cutsPaths = cutsPaths || storage[from * S + to] == -.infinity } }
        let toleratesSpreads = !cutsPaths && !hasNaN && (top > -.infinity ? top - bottom : 0) <= ScaledChain.tolerated
            && (endTop > -.infinity ? endTop - endBottom : 0) <= ScaledChain.tolerated
        // exp(transitions - max) for the scaled programs (ScaledChain).
        let shift = top > -.infinity ? top : 0
        let expTransitions = storage.base + tags * S + 2 * S
        let transposed = expTransitions + tags * S, ones = transposed + tags * S
        for j in 0..<(tags * S) { expTransitions[j] = storage[j] > -.infinity ? Glibc.exp(storage[j] - shift) : 0 }
        transposed.update(repeating: 0, count: tags * S)
        for from in 0..<tags { for to in 0..<tags { transposed[to * S + from] = expTransitions[from * S + to] } }
        ones.update(repeating: 1, count: S)
        // The allowed predecessors of each tag as bit masks (64 tags at most), stored as doubles' bits.
        let masks = UnsafeMutableRawPointer(ones + S).bindMemory(to: UInt64.self, capacity: tags)
        if tags <= 64 {
            for to in 0..<tags {
                var mask: UInt64 = 0
                for from in 0..<tags where storage[from * S + to] != -.infinity { mask |= 1 << UInt64(from) }
                masks[to] = mask
            }
        }
        let model = ChainModel(tags: tags, stride: S, transitions: storage.base, start: storage.base + tags * S,
                               end: storage.base + tags * S + S, expTransitions: expTransitions,
                               expTransitionsTransposed: transposed, transitionMax: shift,
                               transitionRange: top > -.infinity ? top - bottom : 0, ones: ones,
                               allowedPredecessors: tags <= 64 ? UnsafePointer(masks) : nil,
                               forbidsNothing: !(0..<(tags * S + 2 * S)).contains { j in j % S < tags && storage[j] == -.infinity },
                               largestTransition: largest.transition, largestStart: largest.start,
                               largestEnd: largest.end, toleratesSpreads: toleratesSpreads)
        return (model, hasNaN, storage)
    }

    /// The emissions of sequence i (positions < length): +inf is LK_ERR_DOMAIN; returns whether
    /// one is NaN, whether one is -inf (a forbidden tag), and the largest finite magnitude (for
    /// the overflow bound, `checkPathBound`). One vector pass when they are all finite, a
    /// scalar one otherwise.
    static func checkEmissions<T: Real>(_ e: UnsafePointer<T>, sequence i: Int, length: Int, tags: Int) throws(Failure)
        -> (hasNaN: Bool, forbids: Bool, largest: Double)
    {
        let count = length * tags, w = T.laneCount
        let magnitudeMask = T.Bits(repeating: T.Bits.Scalar.max)  // the sign bit cleared
        let infinityBits = T.bits(T.Vector(repeating: .infinity))
        let shift = T.Bits(repeating: T.Bits.Scalar(T.Bits.Scalar.bitWidth - 1))
        var bad = T.Bits(repeating: 0)
        var top = T.Vector(repeating: 0)
        var j = 0
        while j + w <= count {
            let magnitude = T.bits(loadVector(e, j)) & magnitudeMask
            bad |= ~((magnitude &- infinityBits) &>> shift)  // all ones where infinite or NaN
            top = T.maximum(top, T.vector(magnitude))
            j += w
        }
        var largest = T.maxOfLanes(top).wide, finite = horizontalIntegerSum(bad) == 0
        for k in j..<count {
            finite = finite && e[k].isFinite
            largest = Swift.max(largest, e[k].wide.magnitude)
        }
        if finite { return (false, false, largest) }
        var hasNaN = false, forbids = false
        largest = 0
        for k in 0..<count {
            if e[k] == T.infinity {
                throw .domain("emissions[\(i), \(k / tags), \(k % tags)] = inf: +inf is not a valid score (-inf forbids the tag)")
            }
            hasNaN = hasNaN || e[k].isNaN
            forbids = forbids || e[k] == -T.infinity
            if e[k].isFinite { largest = Swift.max(largest, e[k].wide.magnitude) }
        }
        return (hasNaN, forbids, largest)
    }

    /// The overflow bound: every partial sum the programs form along a path of sequence i — its
    /// score, its cost-augmented score, log Z (which exceeds the best path by at most
    /// T log tags), the expected cost, a fear minus a hope — is at most
    ///
    ///     B = T (max|e| + max|trans| + costBound max|c|) + max|start| + max|end|
    ///
    /// (finite entries; costBound = cost_scale times the largest term scale, 0 when no cost is
    /// read; max|c| = 1 for Hamming costs). B must stay below DBL_MAX / 8, else the sequence is
    /// LK_ERR_DOMAIN: a finite input whose path sums overflow double has no finite loss (two
    /// emissions of -1e308 on the only allowed path would make every path's score -inf).
    static func checkPathBound(_ model: ChainModel, sequence i: Int, length: Int, largestEmission: Double,
                               costBound: Double, largestCost: Double) throws(Failure) {
        let perPosition = largestEmission + model.largestTransition + costBound * largestCost
        let bound = Double(length) * perPosition + model.largestStart + model.largestEnd
        guard bound <= Double.greatestFiniteMagnitude / 8 else {
            throw .domain("sequence \(i): its path scores can overflow double (length \(length) x (max |emission| "
                + "\(largestEmission) + max |transition| \(model.largestTransition) + scaled max |cost| "
                + "\(costBound * largestCost)) + max |start| + max |end| = \(bound) exceeds DBL_MAX / 8)")
        }
    }

    /// Chunk boundaries balanced by work (positions x tags^2), and at most as many chunks as
    /// keep the per-chunk accumulators of the shared parameters small; input-determined.
    /// `length(i)` is sequence i's length if it is read (0 otherwise: an unread length is not
    /// validated). Work is counted in saturating arithmetic (a huge batch cannot trap here).
    static func chunks(length: (Int) -> Int, n: Int, tags: Int) throws(Failure) -> (Scratch<Int>, Int) {
        let perPosition = Swift.max(1, tags * tags)
        var total = 0
        for i in 0..<n { total = saturatingAdd(total, saturatingProduct(Swift.max(1, length(i)), perPosition)) }
        let maxChunks = Swift.max(1, Swift.min(64, (1 << 24) / (tags * tags + 2 * tags)))
        let target = Swift.max(Chunks.target, (total + maxChunks - 1) / maxChunks)
        let starts = try Scratch<Int>(n + 1, "the chunk boundaries")
        var count = 0, done = 0, next = target
        starts[0] = 0
        for i in 0..<n {
            if done >= next, i > 0 {
                count += 1
                starts[count] = i
                next = saturatingAdd(done, target)
            }
            done = saturatingAdd(done, saturatingProduct(Swift.max(1, length(i)), perPosition))
        }
        count += 1
        starts[count] = n
        return (starts, count)
    }

    // MARK: The loss

    static func compute<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, tMax t64: Int64, tags l64: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, gold: UnsafePointer<Int32>?,
        cost: UnsafePointer<T>?, weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dEmissions: UnsafeMutablePointer<T>?, dTransitions: UnsafeMutablePointer<T>?,
        dStart: UnsafeMutablePointer<T>?, dEnd: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .chains, computingIn: Double.self)
        let recipe = options.recipe
        let batch = LossKit.Batch<T>(count: Int(Swift.max(0, Swift.min(n64, Int64(Int.max / 16)))), weights: weight,
                                     reduction: options.reduction)
        guard let (n, tMax, tags, longest) = try checkShape(
            n: n64, tMax: t64, tags: l64, emissions: emissions, transitions: transitions, lengths: lengths,
            required: [(gold != nil, "gold")], readsLength: { !batch.hasZeroWeight($0) }),
            let emissions, let transitions, let lengths, let gold
        else {
            batch.writeEmpty(loss)
            // An empty batch: nothing is read, and the gradient of the 0 written is 0.
            let l = Int(l64), (squared, overflow) = l.multipliedReportingOverflow(by: l)
            if !overflow {
                dTransitions?.update(repeating: 0, count: squared)
                dStart?.update(repeating: 0, count: l)
                dEnd?.update(repeating: 0, count: l)
            }
            return
        }
        let length = { (i: Int) in Int(lengths[i]) }
        let readLength = { (i: Int) in batch.hasZeroWeight(i) ? 0 : Int(lengths[i]) }

        // Gold tags, at the positions of each sequence of non-zero weight.
        for i in 0..<n where !batch.hasZeroWeight(i) {
            for t in 0..<length(i) {
                let g = gold[i * tMax + t]
                guard g >= 0, Int(g) < tags else {
                    throw .label("gold[\(i), \(t)] = \(g) is outside [0, \(tags)) (sequence \(i), length \(length(i)))")
                }
            }
        }

        // Values: the model (read whenever n > 0), then each read sequence.
        let (model, modelHasNaN, modelStorage) = try Chains.model(tags: tags, transitions: transitions, start: start, end: end)
        defer { modelStorage.free() }
        let (chunkStarts, chunkCount) = try chunks(length: readLength, n: n, tags: tags)
        defer { chunkStarts.free() }
        let chunked = Chunks(starts: chunkStarts.base, count: chunkCount, examples: n)
        var work = 0
        for i in 0..<n { work = saturatingAdd(work, saturatingProduct(readLength(i), tags * tags)) }
        let threads = Parallel.threads(requested: options.threads, elements: work, chunks: chunkCount)
        let sizes = try ChainScratch.sizes(positions: Swift.max(longest, 1), tags: tags, threads: threads)
        let doubles = try Scratch<Double>(threads * sizes.doubles, "the chain tables")
        defer { doubles.free() }
        let ints = try Scratch<Int32>(threads * sizes.ints, "the chain back-pointers")
        defer { ints.free() }
        let bools = try Scratch<Bool>(threads * sizes.bools, "the chain reachability")
        defer { bools.free() }
        let nanFlags = try Scratch<Bool>(n, "the NaN flags")
        defer { nanFlags.free() }
        // Each read sequence's largest cost sum, T cost_scale max|c| (what its risk gradient scales by).
        let costSums = try Scratch<Double>(recipe == .risk ? n : 0, "the cost sums")
        defer { costSums.free() }
        let scratch = { (worker: Int) in
            ChainScratch(doubles: doubles.base + worker * sizes.doubles, ints: ints.base + worker * sizes.ints,
                         bools: bools.base + worker * sizes.bools, positions: Swift.max(longest, 1), tags: tags)
        }
        let readsCosts = recipe.readsCosts
        let costBound = readsCosts ? options.costScale * recipe.costFactor : 0
        try batch.validate(chunked, threads: threads) { (i: Int, worker: Int) throws(Failure) in
            try batch.checkWeight(i)
            if batch.hasZeroWeight(i) { return }
            let e = emissions + i * tMax * tags, T_ = length(i)
            let (hasNaN, forbids, largestEmission) = try checkEmissions(e, sequence: i, length: T_, tags: tags)
            nanFlags[i] = hasNaN || modelHasNaN
            guard T_ > 0 else { return }
            var largestCost = readsCosts ? 1.0 : 0  // Hamming
            if readsCosts, let cost {
                let c = cost + i * tMax * tags
                largestCost = 0
                for j in 0..<(T_ * tags) where e[j] != -T.infinity {
                    largestCost = Swift.max(largestCost, c[j].wide.magnitude)
                    guard c[j].isFinite else {
                        throw .domain("cost[\(i), \(j / tags), \(j % tags)] = \(describe(c[j])) is not finite")
                    }
                    guard !(e[j].wide.magnitude + costBound * c[j].wide.magnitude).isInfinite else {
                        throw .domain("cost[\(i), \(j / tags), \(j % tags)] = \(describe(c[j])) overflows when scaled (\(costBound)) and added to its emission")
                    }
                }
            }
            // A NaN sequence has a NaN loss whatever its magnitudes; the others must not overflow.
            guard !nanFlags[i] else { return }
            try checkPathBound(model, sequence: i, length: T_, largestEmission: largestEmission, costBound: costBound,
                               largestCost: largestCost)
            if recipe == .risk { costSums[i] = Double(T_) * costBound * largestCost }
            // Without NaN and without any -inf, every path is allowed, the gold's too.
            guard forbids || !model.forbidsNothing else { return }
            let s = scratch(worker)
            guard ChainDP.hasPath(model, emissions: e, length: T_, reach: s.reach.0, next: s.reach.1) else {
                throw .domain("sequence \(i) has no allowed path (every path meets a -inf score or transition)")
            }
            if recipe.usesGoldScore {
                let g = gold + i * tMax
                if let t = forbiddenStep(model, emissions: e, length: T_, path: g) {
                    throw .domain("the gold path of sequence \(i) is forbidden at position \(t) (a -inf score or transition), but this loss uses the gold score")
                }
            }
        }
        let counted = try batch.denominator(isIgnored: { _ in false })
        let unscale = gradientUnscale(n: n, batch: batch, counted: counted, length: readLength,
                                      costSum: { recipe == .risk && !nanFlags[$0] ? costSums[$0] : 0 })

        // The computing pass: each chunk sums its sequences' shared gradients separately, in the
        // model's padded layout (rows of `stride`).
        let S = model.stride
        let shared = tags * S + 2 * S
        let wantShared = dTransitions != nil || dStart != nil || dEnd != nil
        let accumulators = try Scratch<Double>(wantShared ? chunkCount * shared : 0, "the shared gradients")
        defer { accumulators.free() }
        if wantShared { accumulators.base.update(repeating: 0, count: chunkCount * shared) }
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunkCount), "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: counted, chunks: chunked, threads: threads, partials: partials,
            isIgnored: { _ in false },
            skip: { i in dEmissions?.advanced(by: i * tMax * tags).update(repeating: 0, count: tMax * tags) },
            evaluate: { i, coefficient, worker, chunk in
                let T_ = length(i)
                let rows = dEmissions.map { $0 + i * tMax * tags }
                rows?.advanced(by: T_ * tags).update(repeating: 0, count: (tMax - T_) * tags)
                let s = scratch(worker)
                guard T_ > 0 else { return 0 }
                let chunkAccumulator = wantShared ? accumulators.base + chunk * shared : nil
                let example = ChainExample(
                    model: model, emissions: emissions + i * tMax * tags, costs: cost.map { $0 + i * tMax * tags },
                    goldPath: gold + i * tMax, length: T_, costScale: options.costScale, isNaN: nanFlags[i],
                    unscale: unscale.factors,
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
    static func gradientUnscale<T: Real>(n: Int, batch: Batch<T>, counted: Double, length: (Int) -> Int,
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

    /// The first position at which a path's score becomes -inf (start, emission, transition or
    /// end), or nil if it is allowed.
    static func forbiddenStep<T: Real>(_ model: ChainModel, emissions e: UnsafePointer<T>, length: Int,
                                       path: UnsafePointer<Int32>) -> Int? {
        let L = model.tags
        for t in 0..<length {
            let y = Int(path[t])
            if e[t * L + y] == -T.infinity { return t }
            if t == 0, model.start[y] == -.infinity { return 0 }
            if t > 0, model.transitions[Int(path[t - 1]) * model.stride + y] == -.infinity { return t }
            if t == length - 1, model.end[y] == -.infinity { return t }
        }
        return nil
    }

    // MARK: Decoding

    /// Validation shared by Viterbi and the marginals: options, shape, model, each sequence's
    /// emissions and that it has an allowed path. Returns nil for an empty batch.
    static func checkDecoding<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, tMax t64: Int64, tags l64: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, output: (Bool, String)
    ) throws(Failure) -> Decoding<T>? {
        let requested = try Options.decoding(opt)
        guard let (n, tMax, tags, longest) = try checkShape(
            n: n64, tMax: t64, tags: l64, emissions: emissions, transitions: transitions, lengths: lengths,
            required: [output], readsLength: { _ in true }),
            let emissions, let transitions, let lengths
        else { return nil }
        let (model, modelHasNaN, storage) = try Chains.model(tags: tags, transitions: transitions, start: start, end: end)
        var ok = false
        defer { if !ok { storage.free() } }
        let (chunkStarts, chunkCount) = try chunks(length: { Int(lengths[$0]) }, n: n, tags: tags)
        var ok2 = false
        defer { if !ok2 { chunkStarts.free() } }
        var work = 0
        for i in 0..<n { work = saturatingAdd(work, saturatingProduct(Int(lengths[i]), tags * tags)) }
        let threads = Parallel.threads(requested: requested, elements: work, chunks: chunkCount)
        let sizes = try ChainScratch.sizes(positions: Swift.max(longest, 1), tags: tags, threads: threads)
        let decoding = try Decoding(n: n, tMax: tMax, tags: tags, longest: longest, emissions: emissions,
                                    lengths: lengths, model: model,
                                    storage: storage, chunkStarts: chunkStarts, chunkCount: chunkCount,
                                    threads: threads, sizes: sizes)
        ok = true
        ok2 = true
        var failed = true
        defer { if failed { decoding.free() } }
        try LossKit.Batch<T>(count: n, weights: nil, reduction: .none).validate(decoding.chunks, threads: threads) {
            (i: Int, worker: Int) throws(Failure) in
            let e = emissions + i * tMax * tags, length = Int(lengths[i])
            let (hasNaN, forbids, largestEmission) = try checkEmissions(e, sequence: i, length: length, tags: tags)
            decoding.nanFlags[i] = hasNaN || modelHasNaN
            guard length > 0, !decoding.nanFlags[i] else { return }
            try checkPathBound(model, sequence: i, length: length, largestEmission: largestEmission, costBound: 0,
                               largestCost: 0)
            guard forbids || !model.forbidsNothing else { return }
            let s = decoding.scratch(worker)
            guard ChainDP.hasPath(model, emissions: e, length: length, reach: s.reach.0, next: s.reach.1) else {
                throw .domain("sequence \(i) has no allowed path (every path meets a -inf score or transition)")
            }
        }
        failed = false
        return decoding
    }

    /// The checked arguments and working memory of a decoding call.
    struct Decoding<T: Real> {
        let n: Int, tMax: Int, tags: Int, longest: Int
        let emissions: UnsafePointer<T>
        let lengths: UnsafePointer<Int32>
        let model: ChainModel
        let storage: Scratch<Double>
        let chunkStarts: Scratch<Int>
        let chunks: Chunks
        let threads: Int
        let sizes: (doubles: Int, ints: Int, bools: Int)
        let doubles: Scratch<Double>, ints: Scratch<Int32>, bools: Scratch<Bool>, nanFlags: Scratch<Bool>

        init(n: Int, tMax: Int, tags: Int, longest: Int, emissions: UnsafePointer<T>, lengths: UnsafePointer<Int32>,
             model: ChainModel, storage: Scratch<Double>, chunkStarts: Scratch<Int>, chunkCount: Int, threads: Int,
             sizes: (doubles: Int, ints: Int, bools: Int)) throws(Failure) {
            (self.n, self.tMax, self.tags, self.emissions, self.lengths, self.model) = (n, tMax, tags, emissions, lengths, model)
            self.longest = longest
            (self.storage, self.chunkStarts, self.threads, self.sizes) = (storage, chunkStarts, threads, sizes)
            chunks = Chunks(starts: chunkStarts.base, count: chunkCount, examples: n)
            doubles = try Scratch<Double>(threads * sizes.doubles, "the chain tables")
            ints = try Scratch<Int32>(threads * sizes.ints, "the chain back-pointers")
            bools = try Scratch<Bool>(threads * sizes.bools, "the chain reachability")
            nanFlags = try Scratch<Bool>(n, "the NaN flags")
        }

        func scratch(_ worker: Int) -> ChainScratch {
            ChainScratch(doubles: doubles.base + worker * sizes.doubles, ints: ints.base + worker * sizes.ints,
                         bools: bools.base + worker * sizes.bools, positions: Swift.max(longest, 1), tags: tags)
        }

        /// sequence i's emissions in double, rows padded to the model's stride with -inf, into
        /// scratch.augmented.
        func emissionsInDouble(_ i: Int, _ s: ChainScratch) -> UnsafePointer<Double> {
            let e = emissions + i * tMax * tags, S = model.stride
            for t in 0..<Int(lengths[i]) {
                for y in 0..<S { s.augmented[t * S + y] = y < tags ? e[t * tags + y].wide : -.infinity }
            }
            return UnsafePointer(s.augmented)
        }

        func free() {
            storage.free(); chunkStarts.free(); doubles.free(); ints.free(); bools.free(); nanFlags.free()
        }
    }

    static func viterbi<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        path: UnsafeMutablePointer<Int32>?, score: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        guard let d = try checkDecoding(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                                        start: start, end: end, lengths: lengths, output: (path != nil, "path")),
              let path
        else { return }
        defer { d.free() }
        Parallel.forEach(chunks: d.chunks.count, threads: d.threads) { chunk, worker in
            let s = d.scratch(worker)
            for i in d.chunks.range(chunk) {
                let length = Int(d.lengths[i]), out = path + i * d.tMax
                out.update(repeating: -1, count: d.tMax)
                guard length > 0 else { score?[i] = 0; continue }
                guard !d.nanFlags[i] else { score?[i] = .nan; continue }
                // On rows shifted by their max (every path moves by the same sum, the argmax does
                // not), so that the comparisons keep the rows' differences (1e300 + 0.5 loses the
                // 0.5); the score is then the path's own sum of the inputs.
                let rows = d.emissionsInDouble(i, s)
                _ = ChainDP.shiftRows(rows, length: length, stride: d.model.stride, into: s.augmented)
                _ = ChainDP.viterbi(d.model, emissions: rows, length: length, delta: s.delta, pointers: s.pointers,
                                    path: out)
                let best = ChainDP.pathScore(d.model, emissions: d.emissions + i * d.tMax * d.tags, rowStride: d.tags,
                                             length: length, path: UnsafePointer(out))
                score?[i] = T(rounding: best)
            }
        }
    }

    static func marginals<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        marginals: UnsafeMutablePointer<T>?, logZ: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        guard let d = try checkDecoding(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                                        start: start, end: end, lengths: lengths, output: (marginals != nil, "marginals")),
              let marginals
        else { return }
        defer { d.free() }
        let L = d.tags
        Parallel.forEach(chunks: d.chunks.count, threads: d.threads) { chunk, worker in
            let s = d.scratch(worker)
            for i in d.chunks.range(chunk) {
                let length = Int(d.lengths[i]), out = marginals + i * d.tMax * L
                out.update(repeating: 0, count: d.tMax * L)
                guard length > 0 else { logZ?[i] = 0; continue }
                guard !d.nanFlags[i] else {
                    out.update(repeating: .nan, count: length * L)
                    logZ?[i] = .nan
                    continue
                }
                let e = d.emissionsInDouble(i, s)
                let S = d.model.stride
                // The scaled programs when the spreads allow, else log space (ScaledChain).
                if let z = ScaledChain.forward(d.model, emissions: e, length: length, alpha: s.alpha, psi: s.psi,
                                               norms: s.norms),
                   ScaledChain.backward(d.model, length: length, psi: UnsafePointer(s.psi), beta: s.beta,
                                        norms: s.backNorms, work: s.work) {
                    for t in 0..<length {
                        var total = 0.0
                        for y in 0..<L { total += s.alpha[t * S + y] * s.beta[t * S + y] }
                        for y in 0..<L { out[t * L + y] = T(rounding: s.alpha[t * S + y] * s.beta[t * S + y] / total) }
                    }
                    logZ?[i] = T(rounding: z)
                    continue
                }
                // Log space on rows shifted by their max (ChainDP.shiftRows).
                let offset = ChainDP.shiftRows(e, length: length, stride: S, into: s.psi)
                let z = ChainDP.forward(d.model, emissions: s.psi, length: length, alpha: s.alpha, work: s.work)
                ChainDP.backward(d.model, emissions: s.psi, length: length, beta: s.beta, work: s.work)
                for t in 0..<length {
                    // Each position normalised by its own log Z (ChainDP.positionLogZ).
                    let zt = ChainDP.positionLogZ(s.alpha + t * S, s.beta + t * S, count: L)
                    for y in 0..<L {
                        out[t * L + y] = T(rounding: ChainDP.marginal(s.alpha[t * S + y], s.beta[t * S + y], zt))
                    }
                }
                logZ?[i] = T(rounding: offset + z)
            }
        }
    }
}

/// a + b for counts >= 0, Int.max when it overflows (work estimates need no more).
@inline(__always) func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

/// a * b for counts >= 0, Int.max when it overflows.
@inline(__always) func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : product
}
