#if canImport(Glibc)
import Glibc
#endif

/// The dynamic programs of a linear chain (DESIGN.md §4.4), in double, O(T L^2) each, on the
/// score of a tag path y of length T
///
///     s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_{T-1}]
///
/// with e the (possibly cost-augmented) emissions: forward and backward log-sum-exp (log Z and
/// the marginals), Viterbi with back-pointers, the lexicographic Viterbi of the oracle (lowest
/// cost, then highest score) and the first-order expectation semiring of the risk
/// (Li & Eisner 2009). -inf forbids a tag or a transition; the programs never form NaN from it.
///
/// Layout: every row over tags — the transitions' [from][to] rows, start, end, and the T x L
/// tables — is padded to `stride`, a whole number of vectors, with -inf (a tag that does not
/// exist), so that the inner loops over "to" tags run on whole vectors only (TagVectors).
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
    /// Chains.checkPathBound).
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
}

/// The forward-backward of a chain in scaled probability space (Rabiner's scaling), which
/// replaces the L^2 exps per position of the log-space programs by L^2 multiply-adds with
/// exp(transitions) and L exps: alpha-hat[t] = (alpha-hat[t-1] E) * psi[t] / norm[t], with
/// psi[t] = exp(e[t] - max e[t]), norm[t] a power of two that brings the row's max back to
/// [1, 2) whenever it leaves [2^-8, 2^8] (else 1), and the norms kept in log. It is exact as long as the
/// largest term of every sum is a normal double: each program checks, at each step, that the
/// spreads of the values it multiplies (the table's smallest non-zero entry against its max,
/// the transitions', the emissions') leave that margin, and gives up (nil) otherwise — the
/// caller then runs the log-space programs, which are exact for any input (-inf constraints
/// and scores a thousand apart included).
///
/// Those spread checks are needed only where a path can be cut off: when no transition and no
/// end is -inf (`ChainModel.toleratesSpreads`), every tag at t reaches every tag at t + 1, so
/// the backward weights of the tags at one position lie within a factor exp(range of the
/// transitions) of each other (exp(range of the end) at the last), and a forward entry that
/// the emissions push below the smallest normal (or to 0) carries at most 2^-1014 e^tolerated
/// ~ e^-380 of the mass of its row's largest one: it is negligible, not lost. Each row's max
/// also stays a normal number (>= its predecessor's max times e^(-2 tolerated)). So then the
/// scaled programs run whatever the emissions' spread — a single emission of 1e16 or scores a
/// thousand apart — keeping their relative accuracy, where the log-space programs would lose
/// every digit of the scores' differences to the absolute rounding of sums near 1e16.
enum ScaledChain {
    /// The largest spread of the finite transitions and of the end that `toleratesSpreads` allows.
    static let tolerated = 320.0

    /// How far below 0 (in log) the largest term of a sum may fall below its row's max: with
    /// that max at least 2^-8, the term is at least 2^-8 e^-690 ~ 2^-1003.5, a normal double
    /// (>= 2^-1022) with 2^18 to spare.
    static let margin = 690.0

    /// max and min over the entries of a padded row that are not `ignored` (the padding holds
    /// `ignored` too); (-inf, +inf) if there are none. Vector passes: this runs at every position.
    @inline(__always) static func extremes(_ row: UnsafePointer<Double>, count: Int, ignoring ignored: Double)
        -> (max: Double, min: Double)
    {
        typealias V = Double.Vector
        var top = V(repeating: -.infinity), bottom = V(repeating: .infinity)
        let skip = V(repeating: ignored), infinity = V(repeating: .infinity)
        var i = 0
        while i < count {
            let x = loadVector(row, i)
            let kept = Double.equalMask(x, skip)
            top = Double.maximum(top, Double.select(kept, V(repeating: -.infinity), x))
            let candidate = Double.select(kept, infinity, x)
            bottom = Double.select(Double.signMask(candidate - bottom), candidate, bottom)
            i += Double.laneCount
        }
        var b = Double.infinity
        for lane in 0..<Double.laneCount { b = Swift.min(b, bottom[lane]) }
        return (Double.maxOfLanes(top), b)
    }

    /// Whether the positive entries of a padded row (zeros ignored) lie within a factor `limit`
    /// of each other.
    @inline(__always) static func within(_ row: UnsafePointer<Double>, count: Int, _ limit: Double) -> Bool {
        let (top, bottom) = extremes(row, count: count, ignoring: 0)
        return top <= 0 || top <= limit * bottom
    }

    /// max and (max - min) of the finite entries of a padded row (-inf entries and the -inf
    /// padding ignored).
    @inline(__always) static func finiteRange(_ row: UnsafePointer<Double>, count: Int) -> (max: Double, range: Double) {
        let (top, bottom) = extremes(row, count: count, ignoring: -.infinity)
        return top > -.infinity ? (top, top - bottom) : (-.infinity, 0)
    }

    /// The margin left by the transitions, shared out between a table's spread and the
    /// emissions' (a sufficient condition, checked without a log: each gets half).
    @inline(__always) static func halves(_ model: ChainModel) -> (log: Double, factor: Double) {
        let half = (margin - model.transitionRange) / 2
        return (half, exp(half))
    }

    /// out[y] = exp(row[y] - shift) over the stride (0 for -inf and the padding).
    @inline(__always) static func exps(_ row: UnsafePointer<Double>, minus shift: Double, into out: UnsafeMutablePointer<Double>,
                                       count: Int) {
        var i = 0
        while i < count {
            storeVector(Double.expNonPositive(clipAtZero(loadVector(row, i) - Double.Vector(repeating: shift))), out, i)
            i += Double.laneCount
        }
    }

    /// Forward: alpha (T x stride) gets alpha-hat, psi the exps of the emissions, norms the
    /// per-step divisors. Returns log Z (-inf: no allowed path), or nil when the spreads
    /// leave no margin.
    static func forward(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        alpha: UnsafeMutablePointer<Double>, psi: UnsafeMutablePointer<Double>,
                        norms: UnsafeMutablePointer<Double>, shifts: UnsafeMutablePointer<Double>? = nil) -> Double? {
        let L = model.tags, S = model.stride
        guard model.transitionRange < margin else { return nil }
        let (half, factor) = halves(model)
        // t = 0: alpha-hat = exp(start + e[0] - max).
        let first = psi  // scratch for start + e[0]
        for y in 0..<S { first[y] = model.start[y] + e[y] }
        let (m0, r0) = finiteRange(first, count: S)
        guard m0 > -.infinity else { return -.infinity }
        let tolerant = model.toleratesSpreads
        guard tolerant || r0 < 2 * half else { return nil }
        exps(first, minus: m0, into: alpha, count: S)
        var logScale = m0
        // log Z = (the shifts: m0, transitionMax + me per step, the end's me) + small, the small
        // part kept apart in `shifts` (length + 2 entries: each row's max, the end's, small) so
        // that log Z - s(path) can be formed row by row (ChainExample.logZMinusPath).
        var small = 0.0
        shifts?[0] = m0
        norms[0] = 1
        // Whether the previous row's spread leaves the margin (`within`), kept from the pass
        // that wrote it.
        var spreadIsWithin = within(alpha, count: S, factor)
        for t in 1..<Swift.max(length, 1) {
            let row = e + t * S, p = psi + t * S, here = alpha + t * S, previous = alpha + (t - 1) * S
            let (me, re) = finiteRange(row, count: S)
            guard me > -.infinity else { return -.infinity }
            guard tolerant || (re < half && spreadIsWithin) else { return nil }
            exps(row, minus: me, into: p, count: S)
            // here = (previous . E) * psi, rescaled when its max drifts (multiplyAndRescale).
            TagVectors.combineRows(previous, rows: L, model.expTransitions, into: here, count: S)
            let (norm, spread) = TagVectors.multiplyAndRescale(here, by: p, count: S, limit: factor)
            guard norm > 0 else { return -.infinity }
            norms[t] = norm
            spreadIsWithin = spread
            logScale += model.transitionMax + me
            if norm != 1 { logScale += log(norm); small += log(norm) }
            shifts?[t] = me
        }
        let last = alpha + (length - 1) * S
        let (me, re) = finiteRange(model.end, count: S)
        guard me > -.infinity else { return -.infinity }
        guard re < half, tolerant || spreadIsWithin else { return nil }
        var total = 0.0
        for y in 0..<L where last[y] > 0 && model.end[y] > -.infinity { total += last[y] * exp(model.end[y] - me) }
        guard total > 0 else { return -.infinity }
        shifts?[length] = me
        shifts?[length + 1] = small + log(total)
        return logScale + me + log(total)
    }

    /// Backward: beta (T x stride) gets beta-hat (rows rescaled as in `forward`, the divisors
    /// kept in norms[t]), with the psi of `forward`. Returns false when the spreads leave no margin (checked at each step, as
    /// in `forward`: the backward product can spread where the forward one did not).
    static func backward(_ model: ChainModel, length: Int, psi: UnsafePointer<Double>,
                         beta: UnsafeMutablePointer<Double>, norms: UnsafeMutablePointer<Double>,
                         work u: UnsafeMutablePointer<Double>) -> Bool {
        let L = model.tags, S = model.stride
        let (half, factor) = halves(model)
        let last = beta + (length - 1) * S
        let (me, re) = finiteRange(model.end, count: S)
        guard re < 2 * half, me > -.infinity else { return false }
        exps(model.end, minus: me, into: last, count: S)
        var spreadIsWithin = within(last, count: S, factor)  // of the row t + 1, as in `forward`
        var t = length - 2
        while t >= 0 {
            let next = beta + (t + 1) * S, here = beta + t * S, p = psi + (t + 1) * S
            // psi[t+1]'s spread (the emissions') was checked by the forward pass against `half`.
            guard model.toleratesSpreads || spreadIsWithin else { return false }
            // here = E (psi * next) = (psi * next) . E^T, rescaled when its max drifts.
            for y in 0..<S { u[y] = p[y] * next[y] }
            TagVectors.combineRows(UnsafePointer(u), rows: L, model.expTransitionsTransposed, into: here, count: S)
            let (norm, spread) = TagVectors.multiplyAndRescale(here, by: model.ones, count: S, limit: factor)
            guard norm > 0 else { return false }
            norms[t] = norm
            spreadIsWithin = spread
            t -= 1
        }
        return true
    }
}

enum ChainDP {
    /// log(1 + exp(x)) without overflow for large x.
    @inline(__always) static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// log Z as one position of the log-space tables sees it, in three parts: shift = max_y
    /// alpha[y], top = max_y (alpha[y] - shift) + beta[y], rest = log sum_y exp(x[y] - top) with
    /// x[y] = (alpha[y] - shift) + beta[y]. A marginal is exp((x - top) - rest); an edge's takes
    /// ((alpha[t-1] - shift) - top) - rest. Marginals so normalised sum to 1 at every position,
    /// and no sum holds the scores' magnitude (alpha + beta near 1e300, or the global log Z,
    /// would round away differences of 1e16 — marginals of 1 at every tag).
    static func positionLogZ(_ alpha: UnsafePointer<Double>, _ beta: UnsafePointer<Double>, count: Int)
        -> (shift: Double, top: Double, rest: Double)
    {
        var shift = -Double.infinity
        for y in 0..<count { shift = Swift.max(shift, alpha[y]) }
        guard shift > -.infinity, shift.isFinite else { return (0, 0, shift) }
        var top = -Double.infinity
        for y in 0..<count { top = Swift.max(top, (alpha[y] - shift) + beta[y]) }
        guard top > -.infinity, top.isFinite else { return (shift, 0, top) }
        var sum = 0.0
        for y in 0..<count { sum += exp(((alpha[y] - shift) + beta[y]) - top) }
        return (shift, top, log(sum))
    }

    /// exp((((alpha - shift) + beta) - top) - rest): a marginal under positionLogZ.
    @inline(__always) static func marginal(_ alpha: Double, _ beta: Double,
                                           _ z: (shift: Double, top: Double, rest: Double)) -> Double {
        exp((((alpha - z.shift) + beta) - z.top) - z.rest)
    }

    /// out[t] = e[t] - max e[t] (finite maxima; a row with none is copied), returning the sum of
    /// the maxima: log Z and the path scores move by that sum, the marginals not at all. The
    /// log-space programs run on the shifted rows so that their sums hold the scores' spreads,
    /// not their magnitudes (near 1e16, or 1e300, sums of absolute scores round away every
    /// difference between paths).
    static func shiftRows(_ e: UnsafePointer<Double>, length: Int, stride S: Int,
                          into out: UnsafeMutablePointer<Double>) -> Double {
        var offset = 0.0
        for t in 0..<length {
            let (top, _) = ScaledChain.finiteRange(e + t * S, count: S)
            let shift = top > -.infinity ? top : 0
            for y in 0..<S { out[t * S + y] = e[t * S + y] - shift }
            offset += shift
        }
        return offset
    }

    /// log(exp(a) + exp(b)) for a running log-sum (-inf allowed on either side).
    @inline(__always) static func logAdd(_ a: Double, _ b: Double) -> Double {
        if a == -.infinity { return b }
        if b == -.infinity { return a }
        return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b))
    }

    /// alpha[t][y] = log sum over prefixes ending in y at t; returns log Z (-inf: no path).
    static func forward(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        alpha: UnsafeMutablePointer<Double>, work: UnsafeMutablePointer<Double>) -> Double {
        let L = model.tags, S = model.stride
        for y in 0..<S { alpha[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            step(model, previous: alpha + (t - 1) * S, emissions: e + t * S, into: alpha + t * S, work: work)
        }
        var logZ = -Double.infinity
        let last = alpha + (length - 1) * S
        var m = -Double.infinity
        for y in 0..<L { m = Swift.max(m, last[y] + model.end[y]) }
        guard m > -.infinity else { return m.isNaN ? .nan : -.infinity }
        var sum = 0.0
        for y in 0..<L { sum += exp(last[y] + model.end[y] - m) }
        logZ = m + log(sum)
        return logZ
    }

    /// next[y] = log sum_{y'} exp(previous[y'] + trans[y'][y]) + e[y]: the forward step, a max
    /// pass then an exp pass over contiguous rows of the transitions (vectorisable in y).
    @inline(__always) static func step(_ model: ChainModel, previous: UnsafePointer<Double>,
                                       emissions e: UnsafePointer<Double>,
                                       into next: UnsafeMutablePointer<Double>, work m: UnsafeMutablePointer<Double>) {
        let L = model.tags, S = model.stride
        for y in 0..<S { m[y] = -.infinity; next[y] = 0 }
        for from in 0..<L where previous[from] > -.infinity {
            TagVectors.maxInto(m, previous[from], model.transitions + from * S, count: S)
        }
        for from in 0..<L where previous[from] > -.infinity {
            TagVectors.addExp(next, previous[from], model.transitions + from * S, UnsafePointer(m), count: S)
        }
        for y in 0..<S {
            next[y] = m[y] > -.infinity ? m[y] + log(next[y]) + e[y] : -.infinity
        }
    }

    /// beta[t][y] = log sum over suffixes after y at t (end included).
    static func backward(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                         beta: UnsafeMutablePointer<Double>, work u: UnsafeMutablePointer<Double>) {
        let L = model.tags, S = model.stride
        let last = beta + (length - 1) * S
        for y in 0..<S { last[y] = model.end[y] }
        var t = length - 2
        while t >= 0 {
            // beta[t][y] = log sum_to exp(trans[y][to] + e[t+1][to] + beta[t+1][to]).
            TagVectors.add(e + (t + 1) * S, beta + (t + 1) * S, into: u, count: S)
            for y in 0..<L {
                beta[t * S + y] = TagVectors.logSumExp(model.transitions + y * S, u, count: S)
            }
            for y in L..<S { beta[t * S + y] = -.infinity }
            t -= 1
        }
    }

    /// Viterbi: the best path's score and the path (written to `path`), ties among predecessors
    /// and final tags going to the lowest tag. Returns -inf when no path is allowed.
    static func viterbi(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        delta: UnsafeMutablePointer<Double>, pointers: UnsafeMutablePointer<Int32>,
                        path: UnsafeMutablePointer<Int32>) -> Double {
        let L = model.tags, S = model.stride
        for y in 0..<S { delta[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let previous = delta + (t - 1) * S, here = delta + t * S, back = pointers + t * S
            TagVectors.maxPlus(previous, rows: L, model.transitions, into: here, argmax: back, count: S)
            for y in 0..<S { here[y] += e[t * S + y] }
        }
        let last = delta + (length - 1) * S
        var best = -Double.infinity, tag = 0
        for y in 0..<L {
            let v = last[y] + model.end[y]
            if v > best { best = v; tag = y }
        }
        path[length - 1] = Int32(tag)
        var t = length - 1
        while t > 0 {
            path[t - 1] = pointers[t * S + Int(path[t])]
            t -= 1
        }
        return best
    }

    /// s(path) summed in the order Viterbi sums (((start + e0) + trans) + e1) ... + end, so that a
    /// path Viterbi finds optimal compares equal to its value bit for bit.
    /// The emissions are rows of `rowStride` (the model's stride for a scratch table, the tag
    /// count for the caller's own emissions: widened exactly, the same bits either way).
    static func pathScore<E: Real>(_ model: ChainModel, emissions e: UnsafePointer<E>, rowStride: Int, length: Int,
                                   path: UnsafePointer<Int32>) -> Double {
        let S = model.stride
        var y = Int(path[0])
        var score = model.start[y] + e[y].wide
        for t in 1..<Swift.max(length, 1) {
            let next = Int(path[t])
            score = (score + model.transitions[y * S + next]) + e[t * rowStride + next].wide
            y = next
        }
        return score + model.end[y]
    }

    /// The oracle path: lowest total unscaled cost among the allowed paths, then highest
    /// score, ties to the lowest tags. `cost` is the T x L unscaled cost; `score` the plain
    /// emissions. Returns false if no path is allowed.
    static func oracle(_ model: ChainModel, emissions e: UnsafePointer<Double>, cost: UnsafePointer<Double>,
                       length: Int, totalCost: UnsafeMutablePointer<Double>, score: UnsafeMutablePointer<Double>,
                       pointers: UnsafeMutablePointer<Int32>, path: UnsafeMutablePointer<Int32>) -> Bool {
        let L = model.tags, S = model.stride
        @inline(__always) func better(_ c: Double, _ s: Double, than bc: Double, _ bs: Double) -> Bool {
            // Allowed (score > -inf) first, then lower cost, then higher score.
            if bs == -.infinity { return s > -.infinity }
            if s == -.infinity { return false }
            return c < bc || (c == bc && s > bs)
        }
        for y in 0..<L { totalCost[y] = cost[y]; score[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let pc = totalCost + (t - 1) * S, ps = score + (t - 1) * S
            let hc = totalCost + t * S, hs = score + t * S, back = pointers + t * S
            for y in 0..<L {
                var bc = Double.infinity, bs = -Double.infinity, arg = 0
                for from in 0..<L {
                    let s = ps[from] + model.transitions[from * S + y]
                    if better(pc[from], s, than: bc, bs) { bc = pc[from]; bs = s; arg = from }
                }
                hc[y] = bc + cost[t * S + y]
                hs[y] = bs + e[t * S + y]
                back[y] = Int32(arg)
            }
        }
        let lc = totalCost + (length - 1) * S, ls = score + (length - 1) * S
        var bc = Double.infinity, bs = -Double.infinity, tag = -1
        for y in 0..<L where better(lc[y], ls[y] + model.end[y], than: bc, bs) {
            bc = lc[y]; bs = ls[y] + model.end[y]; tag = y
        }
        guard tag >= 0 else { return false }
        path[length - 1] = Int32(tag)
        var t = length - 1
        while t > 0 {
            path[t - 1] = pointers[t * S + Int(path[t])]
            t -= 1
        }
        return true
    }

    /// Whether some path is allowed (a reachability pass; NaN counts as allowed), on the
    /// caller's emissions (rows of `tags`, unpadded). Up to 64 tags, sets of tags are bit masks
    /// (O(T L) with the allowed predecessors of each tag precomputed); beyond, Bool rows.
    static func hasPath<T: Real>(_ model: ChainModel, emissions e: UnsafePointer<T>, length: Int,
                                 reach: UnsafeMutablePointer<Bool>, next: UnsafeMutablePointer<Bool>) -> Bool {
        let L = model.tags, S = model.stride
        if L <= 64, let predecessors = model.allowedPredecessors {
            var set: UInt64 = 0
            for y in 0..<L where model.start[y] != -.infinity && e[y] != -.infinity { set |= 1 << UInt64(y) }
            for t in 1..<Swift.max(length, 1) {
                var following: UInt64 = 0
                for y in 0..<L where e[t * L + y] != -.infinity && set & predecessors[y] != 0 { following |= 1 << UInt64(y) }
                set = following
                if set == 0 { return false }
            }
            for y in 0..<L where set & (1 << UInt64(y)) != 0 && model.end[y] != -.infinity { return true }
            return false
        }
        for y in 0..<L { reach[y] = model.start[y] != -.infinity && e[y] != -.infinity }
        for t in 1..<Swift.max(length, 1) {
            for y in 0..<L {
                var ok = false
                if e[t * L + y] != -.infinity {
                    for from in 0..<L where reach[from] && model.transitions[from * S + y] != -.infinity { ok = true; break }
                }
                next[y] = ok
            }
            for y in 0..<L { reach[y] = next[y] }
        }
        for y in 0..<L where reach[y] && model.end[y] != -.infinity { return true }
        return false
    }
}
