import CLossKit

/// The checked arguments and working memory of one chain call, which the loss, Viterbi and the
/// marginals set up alike: the shape, the model, chunks of sequences balanced by work, the
/// threads, each worker's scratch (ChainScratch) and each sequence's NaN flag. `free()` returns
/// its memory.
struct ChainCall<T: StorageFloat> {
    let n: Int, tMax: Int, tags: Int
    /// The longest length read (the scratch tables are sized by it, not by t_max).
    let longest: Int
    let emissions: UnsafePointer<T>
    let lengths: UnsafePointer<Int32>
    let model: ChainModel
    /// Whether a transition, start or end score is NaN: every sequence is then NaN.
    let modelHasNaN: Bool
    let chunks: Chunks
    let threads: Int
    /// Whether sequence i reads a NaN (its results are then NaN), set by `checkSequence`.
    let nanFlags: Scratch<Bool>
    private let modelStorage: Scratch<Double>
    private let chunkStarts: Scratch<Int>
    private let sizes: (doubles: Int, ints: Int, bools: Int)
    private let doubles: Scratch<Double>, ints: Scratch<Int32>, bools: Scratch<Bool>

    /// The shape of a chain call: its dimensions, the longest length read, and the buffers every
    /// call with sequences reads.
    struct Shape {
        let n: Int, tMax: Int, tags: Int, longest: Int
        let emissions: UnsafePointer<T>, transitions: UnsafePointer<T>, lengths: UnsafePointer<Int32>
    }

    /// The pointers every chain entry point needs when n != 0, then `other` (gold, path or
    /// marginals).
    static func checkPointers(emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?,
                              lengths: UnsafePointer<Int32>?, other: UnsafeRawPointer?, _ name: StaticString)
        throws(Failure)
    {
        try Validation.require(emissions, "emissions")
        try Validation.require(transitions, "transitions")
        try Validation.require(lengths, "lengths")
        try Validation.require(other, name)
    }

    /// The sizes of every chain entry point (n, t_max, tags, each read length):
    /// `readsLength(i)` says whether sequence i is read (zero-weight sequences are not).
    /// Every buffer a chain call may read or write must have a byte size that exists — lengths
    /// and weight/loss/score/log_z (n), gold and path (n * t_max), emissions, cost and their
    /// gradients or marginals (n * t_max * tags), transitions and their gradient (tags^2),
    /// start and end (tags) — checked before anything is read, n = 0 included (an empty batch
    /// still zeroes the tags^2 transition gradients). nil: an empty batch.
    static func checkShape(n n64: Int64, tMax t64: Int64, tags l64: Int64, emissions: UnsafePointer<T>?,
                           transitions: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
                           readsLength: (Int) -> Bool) throws(Failure) -> Shape? {
        let n = try Validation.dimension(n64, "n"), tMax = try Validation.dimension(t64, "t_max"),
            tags = try Validation.dimension(l64, "tags")
        // T is at least as wide as the int32 lengths, gold and path: its stride bounds them all.
        _ = try elementCount(n, 1, of: T.self, "lengths and weight, loss, score, log_z (n)")
        let positions = try elementCount(n, tMax, of: T.self, "gold, path (n * t_max)")
        _ = try elementCount(positions, tags, of: T.self,
                             "emissions, cost, d_emissions, marginals (n * t_max * tags)")
        _ = try elementCount(tags, tags, of: Double.self, "transitions, d_transitions (tags * tags)")
        guard n > 0, let emissions, let transitions, let lengths else { return nil }
        guard tags >= 1 else { throw .size("tags = 0, but a chain needs at least one tag when n > 0") }
        var longest = 0
        for i in 0..<n where readsLength(i) {
            guard lengths[i] >= 0, Int(lengths[i]) <= tMax else {
                throw .size("lengths[\(i)] = \(lengths[i]) is outside [0, t_max = \(tMax)]")
            }
            longest = Swift.max(longest, Int(lengths[i]))
        }
        return Shape(n: n, tMax: tMax, tags: tags, longest: longest, emissions: emissions,
                     transitions: transitions, lengths: lengths)
    }

    /// The model (read whenever n > 0), the chunks, the threads and the working memory of a call
    /// whose shape `checkShape` accepted. `readLength(i)` is sequence i's length if it is read,
    /// 0 otherwise (an unread length is not validated): chunks and threads follow the work read.
    static func prepare(shape: Shape, start: UnsafePointer<T>?, end: UnsafePointer<T>?, readLength: (Int) -> Int,
                        requestedThreads: Int) throws(Failure) -> ChainCall {
        let (n, tags, emissions, transitions, lengths) =
            (shape.n, shape.tags, shape.emissions, shape.transitions, shape.lengths)
        let (model, modelHasNaN, modelStorage) = try ChainModel.read(tags: tags, transitions: transitions,
                                                                     start: start, end: end)
        var chunkStarts: Scratch<Int>?, doubles: Scratch<Double>?, ints: Scratch<Int32>?, bools: Scratch<Bool>?
        var complete = false
        defer {
            if !complete { modelStorage.free(); chunkStarts?.free(); doubles?.free(); ints?.free(); bools?.free() }
        }
        let (starts, chunkCount) = try chunks(length: readLength, n: n, tags: tags)
        chunkStarts = starts
        var work = 0
        for i in 0..<n { work = saturatingAdd(work, saturatingProduct(readLength(i), tags * tags)) }
        let threads = Parallel.threads(requested: requestedThreads, elements: work, chunks: chunkCount)
        let sizes = try ChainScratch.sizes(positions: Swift.max(shape.longest, 1), tags: tags, threads: threads)
        doubles = try Scratch<Double>(threads * sizes.doubles, "the chain tables")
        ints = try Scratch<Int32>(threads * sizes.ints, "the chain back-pointers")
        bools = try Scratch<Bool>(threads * sizes.bools, "the chain reachability")
        let nanFlags = try Scratch<Bool>(n, "the NaN flags")
        complete = true
        return ChainCall(n: n, tMax: shape.tMax, tags: tags, longest: shape.longest, emissions: emissions,
                         lengths: lengths, model: model, modelHasNaN: modelHasNaN,
                         chunks: Chunks(starts: starts.base, count: chunkCount, examples: n), threads: threads,
                         nanFlags: nanFlags, modelStorage: modelStorage, chunkStarts: starts, sizes: sizes,
                         doubles: doubles!, ints: ints!, bools: bools!)
    }

    func free() {
        modelStorage.free(); chunkStarts.free(); doubles.free(); ints.free(); bools.free(); nanFlags.free()
    }

    /// Worker `worker`'s scratch.
    func scratch(_ worker: Int) -> ChainScratch {
        ChainScratch(doubles: doubles.base + worker * sizes.doubles, ints: ints.base + worker * sizes.ints,
                     bools: bools.base + worker * sizes.bools, positions: Swift.max(longest, 1), tags: tags)
    }

    func length(_ i: Int) -> Int { Int(lengths[i]) }

    /// Sequence i's emissions (rows of tags).
    func emissions(of i: Int) -> UnsafePointer<T> { emissions + i * tMax * tags }

    /// Sequence i's emissions in double, rows padded to the model's stride with -inf, into
    /// scratch.augmented.
    func emissionsInDouble(_ i: Int, _ s: ChainScratch) -> UnsafeMutablePointer<Double> {
        let e = emissions(of: i), S = model.stride
        for t in 0..<length(i) {
            for y in 0..<S { s.augmented[t * S + y] = y < tags ? e[t * tags + y].asDouble : -.infinity }
        }
        return s.augmented
    }

    /// What `checkSequence` found.
    enum SequenceCheck {
        /// Nothing more to check: the sequence is empty, or reads a NaN (its results are NaN
        /// whatever its magnitudes).
        case done
        /// Its values are valid; `mayForbid`: some path may be forbidden (one is allowed).
        case valid(largestCost: Double, mayForbid: Bool)
    }

    /// The checks of sequence i every chain call makes, in this order: its emissions (+inf is
    /// LK_ERR_DOMAIN; a NaN sets its flag); then, if it is not empty, `largestCost` (the loss
    /// checks its costs there and returns their largest magnitude read; 0 when none is read),
    /// the overflow bound (`checkPathBound`, unless it reads a NaN) and that some path is
    /// allowed.
    func checkSequence(_ i: Int, worker: Int, costBound: Double,
                       largestCost: (_ emissions: UnsafePointer<T>, _ length: Int) throws(Failure) -> Double)
        throws(Failure) -> SequenceCheck
    {
        let e = emissions(of: i), length = length(i)
        let (hasNaN, forbids, largestEmission) = try Self.checkEmissions(e, sequence: i, length: length, tags: tags)
        nanFlags[i] = hasNaN || modelHasNaN
        guard length > 0 else { return .done }
        let largest = try largestCost(e, length)
        guard !nanFlags[i] else { return .done }
        try Self.checkPathBound(model, sequence: i, length: length, largestEmission: largestEmission,
                                costBound: costBound, largestCost: largest)
        // Without NaN and without any -inf, every path is allowed.
        guard forbids || !model.forbidsNothing else { return .valid(largestCost: largest, mayForbid: false) }
        let s = scratch(worker)
        guard ChainPaths.hasPath(model, emissions: e, length: length, reach: s.reach.0, next: s.reach.1) else {
            throw .domain("sequence \(i) has no allowed path (every path meets a -inf score or transition)")
        }
        return .valid(largestCost: largest, mayForbid: true)
    }

    /// The emissions of sequence i (positions < length): +inf is LK_ERR_DOMAIN; returns whether
    /// one is NaN, whether one is -inf (a forbidden tag), and the largest finite magnitude (for
    /// the overflow bound, `checkPathBound`). One vector pass when they are all finite, a
    /// scalar one otherwise.
    static func checkEmissions(_ e: UnsafePointer<T>, sequence i: Int, length: Int, tags: Int) throws(Failure)
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
        var largest = T.maxOfLanes(top).asDouble, finite = horizontalIntegerSum(bad) == 0
        for k in j..<count {
            finite = finite && e[k].isFinite
            largest = Swift.max(largest, e[k].asDouble.magnitude)
        }
        if finite { return (false, false, largest) }
        var hasNaN = false, forbids = false
        largest = 0
        for k in 0..<count {
            if e[k] == T.infinity {
                throw .domain("emissions[\(i), \(k / tags), \(k % tags)] = inf: +inf is not a valid score "
                    + "(-inf forbids the tag)")
            }
            hasNaN = hasNaN || e[k].isNaN
            forbids = forbids || e[k] == -T.infinity
            if e[k].isFinite { largest = Swift.max(largest, e[k].asDouble.magnitude) }
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
}
