#if canImport(Glibc)
import Glibc
#endif

/// The shared parameters of a linear chain (DESIGN.md §4.4) in double, which every program of a
/// chain reads. A tag path y of length T scores
///
///     s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_{T-1}]
///
/// with e the (possibly cost-augmented) emissions. -inf forbids a tag or a transition; the
/// programs never form NaN from it.
///
/// Layout: every row over tags — the transitions' [from][to] rows, start, end, and the T x L
/// tables of the programs — is padded to `stride`, a whole number of vectors, with -inf (a tag
/// that does not exist), so that the inner loops over "to" tags run on whole vectors only
/// (TagVectors).
struct ChainModel {
    let tags: Int
    /// Row length of every table: tags rounded up to whole vectors.
    let stride: Int
    /// tags rows of `stride`, [from][to]; -inf in the padding.
    let transitions: UnsafePointer<Double>
    /// `stride` each, -inf in the padding.
    let start: UnsafePointer<Double>
    let end: UnsafePointer<Double>
    /// exp(transitions - transitionMax), 0 where forbidden and in the padding: the scaled
    /// programs multiply by it instead of taking L^2 exps per position; and its transpose
    /// ([to][from], rows of `stride`), for the backward pass.
    let expTransitions: UnsafePointer<Double>
    let expTransitionsTransposed: UnsafePointer<Double>
    /// The largest finite transition, and the spread of the finite ones (max - min).
    let transitionMax: Double
    let transitionRange: Double
    /// `stride` ones (a neutral row).
    let ones: UnsafePointer<Double>
    /// For up to 64 tags: the bit mask of the tags that may precede each tag (a finite or NaN
    /// transition into it).
    let allowedPredecessors: UnsafePointer<UInt64>?
    /// Whether no transition, start or end score is -inf: then every path over emissions
    /// without -inf is allowed, which validation need not check position by position.
    let forbidsNothing: Bool
    /// The largest finite magnitudes of the transitions, start and end (for the overflow bound,
    /// ChainCall.checkPathBound).
    let largestTransition: Double
    let largestStart: Double
    let largestEnd: Double
    /// Whether the scaled programs may ignore the spreads of the emissions and of their own
    /// tables (ScaledChain): no transition and no end score is -inf, and the finite spreads of
    /// the transitions and of the end stay within `ScaledChain.tolerated`.
    let toleratesSpreads: Bool

    static func stride(tags: Int) -> Int {
        (tags + Double.laneCount - 1) / Double.laneCount * Double.laneCount
    }

    /// The model read from the caller's arrays, each row padded to whole vectors with -inf;
    /// start and end zeros when NULL. +inf is LK_ERR_DOMAIN; NaN makes every sequence NaN
    /// (`hasNaN`). The model's memory is `storage`, freed by the caller.
    static func read<T: StorageFloat>(tags: Int, transitions: UnsafePointer<T>, start: UnsafePointer<T>?,
                              end: UnsafePointer<T>?) throws(Failure)
        -> (model: ChainModel, hasNaN: Bool, storage: Scratch<Double>)
    {
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
                    throw .domain("transitions[\(from), \(to)] = inf: +inf is not a valid score "
                        + "(-inf forbids a transition)")
                }
                hasNaN = hasNaN || v.isNaN
                storage[from * S + to] = v.asDouble
                if v.isFinite {
                    top = Swift.max(top, v.asDouble); bottom = Swift.min(bottom, v.asDouble)
                    largest.transition = Swift.max(largest.transition, v.asDouble.magnitude)
                }
            }
        }
        for (offset, buffer, name) in [(tags * S, start, "start"), (tags * S + S, end, "end")] {
            for y in 0..<tags {
                let v = buffer.map { $0[y].asDouble } ?? 0
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
        // Whether the scaled programs may ignore the emissions' spreads (toleratesSpreads).
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
        let forbidsNothing = !(0..<(tags * S + 2 * S)).contains { j in j % S < tags && storage[j] == -.infinity }
        let model = ChainModel(tags: tags, stride: S, transitions: storage.base, start: storage.base + tags * S,
                               end: storage.base + tags * S + S, expTransitions: expTransitions,
                               expTransitionsTransposed: transposed, transitionMax: shift,
                               transitionRange: top > -.infinity ? top - bottom : 0, ones: ones,
                               allowedPredecessors: tags <= 64 ? UnsafePointer(masks) : nil,
                               forbidsNothing: forbidsNothing,
                               largestTransition: largest.transition, largestStart: largest.start,
                               largestEnd: largest.end, toleratesSpreads: toleratesSpreads)
        return (model, hasNaN, storage)
    }
}
