#if canImport(Glibc)
import Glibc
#endif

/// The forward-backward of a chain in scaled probability space (Rabiner's scaling), which
/// replaces the L^2 exps per position of the log-space programs by L^2 multiply-adds with
/// exp(transitions) and L exps: alpha-hat[t] = (alpha-hat[t-1] E) * psi[t] / norm[t], with
/// psi[t] = exp(e[t] - max e[t]), norm[t] a power of two that brings the row's max back to
/// [1, 2) whenever it leaves [2^-8, 2^8] (else 1), and the norms kept in log. It is exact as long
/// as the largest term of every sum is a normal double: each program checks, at each step, that
/// the spreads of the values it multiplies (the table's smallest non-zero entry against its max,
/// the transitions', the emissions') leave that margin, and gives up (nil) otherwise — then
/// ChainTables.compute runs the log-space programs (LogSpaceChain), which are exact for any
/// input (-inf constraints and scores a thousand apart included).
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
    @inline(__always) static func finiteRange(_ row: UnsafePointer<Double>, count: Int)
        -> (max: Double, range: Double)
    {
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
    @inline(__always) static func exps(_ row: UnsafePointer<Double>, minus shift: Double,
                                       into out: UnsafeMutablePointer<Double>, count: Int) {
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
                        norms: UnsafeMutablePointer<Double>, shifts: UnsafeMutablePointer<Double>) -> Double? {
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
        shifts[0] = m0
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
            shifts[t] = me
        }
        let last = alpha + (length - 1) * S
        let (me, re) = finiteRange(model.end, count: S)
        guard me > -.infinity else { return -.infinity }
        guard re < half, tolerant || spreadIsWithin else { return nil }
        var total = 0.0
        for y in 0..<L where last[y] > 0 && model.end[y] > -.infinity { total += last[y] * exp(model.end[y] - me) }
        guard total > 0 else { return -.infinity }
        shifts[length] = me
        shifts[length + 1] = small + log(total)
        return logScale + me + log(total)
    }

    /// Backward: beta (T x stride) gets beta-hat (rows rescaled as in `forward`, the divisors
    /// kept in norms[t]), with the psi of `forward`. Returns false when the spreads leave no
    /// margin (checked at each step, as in `forward`: the backward product can spread where the
    /// forward one did not).
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
