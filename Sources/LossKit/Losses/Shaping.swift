#if canImport(Glibc)
import Glibc
#endif

/// What dense rows may do around any loss of the catalogue (lk_options `softcap`, `z_loss`):
/// soft-capping replaces each score s by s' = c tanh(s / c) before the loss (Gemma 2), z-loss
/// adds lambda lse(s')^2 to it (PaLM). Neither changes how the loss itself is computed: the
/// loss runs on the capped row as on any row, the cap's derivative multiplies its gradient, and
/// the z-loss adds its term and its gradient (times that derivative) after it.
struct Shaping {
    var zLoss: Double = 0
    /// c > 0, or 0 when scores are not capped.
    var softcap: Double = 0

    var isActive: Bool { zLoss != 0 || softcap != 0 }

    /// Rows of scratch per thread: the capped scores and their slopes (softcap), the exps of
    /// lse(s') (z-loss with a gradient).
    func scratchRows(gradient: Bool) -> Int { (softcap != 0 ? 2 : 0) + (zLoss != 0 && gradient ? 1 : 0) }

    /// Rows of double scratch per thread for `finish`'s reruns (with a gradient): the capped
    /// scores and costs in double, the rerun's gradient and the loss's own scratch row, and the
    /// entries pending.
    static let rerunRows = 5

    /// s' = c tanh(s / c) into `capped` and ds'/ds = 1 - tanh^2(s / c) into `slopes`, with one
    /// exponential each: tanh|x| = -e / (2 + e) with e = expm1(-2|x|) where |x| < 1/2, else
    /// (1 - q) / (1 + q) with q = exp(-2|x|), and the slope 4 q / (1 + q)^2 (1 - tanh^2 where
    /// tanh is small): no cancellation near tanh = 1, where 1 - tanh^2 would keep only the
    /// rounding of tanh. -inf (a masked class) stays -inf with slope 0; NaN stays NaN.
    func cap<T: StorageFloat>(_ scores: UnsafePointer<T>, count: Int, into capped: UnsafeMutablePointer<T>,
                              slopes: UnsafeMutablePointer<T>) {
        for j in 0..<count {
            let s = scores[j].asDouble
            if s == -.infinity {
                capped[j] = -T.infinity
                slopes[j] = 0
                continue
            }
            let (value, slope) = Self.capped(s, softcap)
            capped[j] = T(rounding: value)
            slopes[j] = T(rounding: slope)
        }
    }

    /// (c tanh(s / c), 1 - tanh^2(s / c)) of one finite or NaN score, as `cap` forms them.
    @inline(__always) static func capped(_ s: Double, _ c: Double) -> (value: Double, slope: Double) {
        let x = s / c, a = x.magnitude
        let t: Double, slope: Double
        if a < 0.5 {
            let e = expm1(-2 * a)
            t = -e / (2 + e)
            slope = (1 - t) * (1 + t)
        } else {
            let q = exp(-2 * a)  // 0 once 2a passes about 745: t = 1, slope 0
            t = (1 - q) / (1 + q)
            slope = 4 * q / ((1 + q) * (1 + q))
        }
        return (c * (x < 0 ? -t : t), s.isNaN ? .nan : slope)
    }

    /// lambda lse(s')^2, returned to be added to the example's loss, with lse(s') and, when
    /// `exps` is given, the exps of lse(s') stored there and their denominator (for `finish`).
    func zLossTerm<T: StorageFloat>(of x: FlatCandidates<T>, exps: UnsafeMutablePointer<T>?)
        -> (value: Double, lse: Double, denominator: Double)
    {
        var argmax = -1
        let (score, _, logarithm, marginals) = x.logSumExp(0, store: exps, plainArgmax: &argmax)
        let lse = score + logarithm
        return ((zLoss * lse) * lse, lse, marginals.denominator)
    }

    /// a b c (times 2 if asked) with the factors' exponents applied once at the end: no
    /// intermediate overflow or underflow where the product itself has none; 0 if a factor is 0.
    @inline(__always) static func product(_ a: Double, _ b: Double, _ c: Double, times2: Bool) -> Double {
        guard a != 0, b != 0, c != 0 else { return 0 }
        guard a.isFinite, b.isFinite, c.isFinite else { return a * b * c * (times2 ? 2 : 1) }
        let ea = Int(a.exponent), eb = Int(b.exponent), ec = Int(c.exponent)
        let m = scalbn(a, -ea) * scalbn(b, -eb) * scalbn(c, -ec)
        return scalbn(m, ea + eb + ec + (times2 ? 1 : 0))
    }

    /// The z-loss's part of one gradient entry, 2 lambda lse p_j times coefficient c, in one
    /// scaling (`product`): 0 at a masked class (p_j = 0) however large lambda, lse and c.
    @inline(__always) func zEntry<T: StorageFloat>(_ z: ZTerms<T>, _ j: Int, _ c: Double) -> Double {
        Self.product(zLoss * (z.exps[j].asDouble / z.denominator), z.lse, c, times2: true)
    }

    /// The z-loss's lse(s'), the exps of its softmax and their denominator (`zLossTerm`).
    struct ZTerms<T: StorageFloat> {
        let exps: UnsafePointer<T>
        let denominator: Double
        let lse: Double
    }

    /// The loss's gradient (c dL/ds', as the loss wrote it) made the shaped loss's: each entry
    /// (c dL/ds' + the z-loss's 2 lambda lse p_j c) times the cap's slope, rounded once.
    /// - A slope that is not normal in T (a score far past the cap: 4 e^(-2|s/c|) leaves float's
    ///   normal range near |s/c| = 44, double's near 354) is formed again from the raw score
    ///   (`times`), so that a large gradient times a tiny slope keeps its digits.
    /// - An entry whose terms overflow (the square loss's 2 kappa (s' - M) / K beyond the type,
    ///   a z-loss term beyond it, or both with opposite signs: inf - inf) may still have a finite
    ///   true value. It is 0 (of the sum's sign) when the slope times the largest gradient any
    ///   loss can have, c 2^2053 (`gradientBound`), rounds to 0 in T. Else `rerun(c', row)`
    ///   recomputes the loss's gradient in double with coefficient c' = 2^-scale (exact) into a
    ///   scratch row, and the entry is (that + the z term at c') times c, the slope and
    ///   2^scale, in scaled units. First at the largest scale where c' / (2 count) keeps double's
    ///   precision in its normal range (the losses round c' / K, or / a softmax denominator
    ///   <= K: linear in c' down to there); entries still beyond double there have a gradient
    ///   per unit coefficient beyond 2^1992 / K, which only the square loss's gold has (formed in
    ///   one scaling, `product`: exact at any c') or the z term (formed here): then at 2^-1074,
    ///   where every term is finite. So no inf * 0 or inf - inf: an entry is infinite only where
    ///   its true value overflows T.
    func finish<T: StorageFloat>(_ gradient: UnsafeMutablePointer<T>, count: Int, coefficient: Double,
                                 slopes: UnsafePointer<T>?, scores: UnsafePointer<T>, z: ZTerms<T>?,
                                 rescaled: UnsafeMutablePointer<Double>, pending: UnsafeMutablePointer<Double>,
                                 rerun: (_ coefficient: Double, _ into: UnsafeMutablePointer<Double>) -> Void) {
        var overflowed = false
        let zeroBelow = Double(T.leastNonzeroMagnitude.exponent) - 1 - Self.gradientBound
            - Double(coefficient.exponent + 1)
        for j in 0..<count {
            let g = gradient[j].asDouble, zj = z.map { zEntry($0, j, coefficient) } ?? 0
            let sum = g + zj, slope = slopes?[j].asDouble ?? 1
            pending[j] = 0
            if sum.isFinite || g.isNaN || zj.isNaN || slope.isNaN {
                gradient[j] = T(rounding: scaled(sum, slope: slope, raw: scores[j], scale: 0, as: T.self))
            } else if slopes != nil, log2Slope(scores[j].asDouble) < zeroBelow {
                gradient[j] = T(signOf: T(rounding: g.isInfinite ? g : zj), magnitudeOf: 0)
            } else {
                pending[j] = 1  // resolved below
                overflowed = true
            }
        }
        guard overflowed else { return }
        // c' = 2^-scale, c' / (2 count) >= 2^(-1022 + 53).
        let safe = -Int(Double.leastNormalMagnitude.exponent) - Double.significandBitCount - 1
            - Int(Double(count).exponent) - 2
        let e = Int(coefficient.exponent) + 1, fraction = scalbn(coefficient, -e)  // c = fraction 2^e
        for scale in [safe, -Int(Double.leastNonzeroMagnitude.exponent)] {
            let unit = scalbn(1.0, -scale)
            rerun(unit, rescaled)
            var left = false
            for j in 0..<count where pending[j] != 0 {
                let sum = rescaled[j] + (z.map { zEntry($0, j, unit) } ?? 0)
                if sum.isFinite || scale > safe {
                    gradient[j] = T(rounding: scaled(sum * fraction, slope: slopes?[j].asDouble ?? 1, raw: scores[j],
                                                     scale: scale + e, as: T.self))
                    pending[j] = 0
                } else {
                    left = true
                }
            }
            if !left { return }
        }
    }

    /// v times the cap's slope at raw score s (`slope` as stored in T; 1 without a cap) times
    /// 2^scale, in double.
    @inline(__always) func scaled<T: StorageFloat>(_ v: Double, slope: Double, raw: T, scale: Int,
                                                   as: T.Type) -> Double {
        if softcap == 0 || slope.isNaN || v == 0 || v.isNaN {
            return scale == 0 ? v * slope : scalbn(v * slope, scale)
        }
        if scale == 0, slope >= T.leastNormalMagnitude.asDouble { return v * slope }
        return times(v, slopeOf: raw.asDouble, scale: scale)
    }

    /// log2 of a bound on |d loss / d s'| per unit coefficient, z-loss included, over every loss
    /// of the catalogue with finite options: the square loss's 2 kappa (|s'| + |M|) / K <= 4
    /// DBL_MAX^2, the z-loss's 2 lambda |lse| p <= 2 DBL_MAX^2 (lse of capped scores); the others
    /// stay within a few DBL_MAX (costs scaled and added to a score are checked finite).
    static let gradientBound = 2053.0

    /// log2 of the cap's slope at raw score s (not NaN): below DBL_MIN, 2 - 2a log2(e).
    func log2Slope(_ s: Double) -> Double {
        let slope = Self.capped(s, softcap).slope
        return slope > 0 ? log2(slope) : 2 - 2 * (s / softcap).magnitude * 1.4426950408889634
    }

    /// g ds'/ds 2^scale at raw score s, rounded once in double: the slope's exponent apart from
    /// its fraction, and below DBL_MIN the slope as 4 e^(-2a) / (1 + e^(-2a))^2 = 2^(2 - x) /
    /// (1 + q)^2 with x = 2a log2(e) (a = |s / c|; the rounding of x is of the order of the
    /// slope's own conditioning in s, 2a ulps).
    func times(_ g: Double, slopeOf s: Double, scale: Int) -> Double {
        let slope = Self.capped(s, softcap).slope
        if slope.isNaN { return .nan }
        if slope >= Double.leastNormalMagnitude {
            let e = Int(slope.exponent) + 1
            return scalbn(g * scalbn(slope, -e), scale + e)
        }
        let x = 2 * (s / softcap).magnitude * 1.4426950408889634
        // g < 2^1024 and scale < 2100 (a coefficient below 2^1024): with x beyond 8192 the
        // product is far below 2^-1074.
        guard x < 8192 else { return g * 0 }
        let whole = x.rounded(.down), q = exp(-2 * (s / softcap).magnitude)
        return scalbn(g * exp2(whole - x) / ((1 + q) * (1 + q)), scale + 2 - Int(whole))
    }
}
