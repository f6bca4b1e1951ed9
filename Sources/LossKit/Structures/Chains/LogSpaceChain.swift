#if canImport(Glibc)
import Glibc
#endif

/// The forward-backward of a chain in log space, in double, O(T L^2): alpha[t][y], the log-sum
/// over the prefixes that end in y at t, and beta[t][y], over the suffixes after it (end
/// included). Exact for any input — -inf constraints, scores a thousand apart — at the price of
/// L^2 exps per position; ChainTables.compute runs it where the scaled programs (ScaledChain)
/// cannot keep their margin, on rows shifted by their max (`shiftRows`).
enum LogSpaceChain {
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
}
