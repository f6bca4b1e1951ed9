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

    /// Rows of scratch per thread: the capped scores and their slopes (softcap), a rerun's
    /// gradient (softcap with a gradient: `chain`), the exps of lse(s') (z-loss with a gradient).
    func scratchRows(gradient: Bool) -> Int {
        (softcap != 0 ? (gradient ? 3 : 2) : 0) + (zLoss != 0 && gradient ? 1 : 0)
    }

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

    /// lambda lse(s')^2, returned to be added to the example's loss; the gradient (when wanted)
    /// gets coefficient 2 lambda lse(s') softmax(s') added, times the cap's slope when there is
    /// one, each entry the product of lambda p_j slope_j, lse and 2 coefficient with one scaling
    /// at the end (`product`): a masked class (p_j = 0) or a saturated score (slope 0) adds
    /// exactly 0 however large lambda, lse and the weight, and an entry overflows only where its
    /// true value does (2 lse alone may exceed DBL_MAX, and inf * 0 was NaN).
    func addZLoss<T: StorageFloat>(to x: FlatCandidates<T>, exps: UnsafeMutablePointer<T>?,
                                   slopes: UnsafePointer<T>?, coefficient: Double) -> (value: Double, lse: Double) {
        var argmax = -1
        let (score, _, logarithm, marginals) = x.logSumExp(0, store: x.gradient != nil ? exps : nil,
                                                           plainArgmax: &argmax)
        let lse = score + logarithm
        if let gradient = x.gradient, let exps {
            let denominator = marginals.denominator
            for j in 0..<x.count {
                let p = exps[j].asDouble / denominator * (slopes?[j].asDouble ?? 1)
                gradient[j] = T(rounding: gradient[j].asDouble + Self.product(zLoss * p, lse, coefficient, times2: true))
            }
        }
        return ((zLoss * lse) * lse, lse)
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

    /// gradient[j] *= slope_j: the cap's derivative chained into the loss's gradient, each entry
    /// the product rounded once. A slope that is not normal in T (a score far past the cap:
    /// 4 e^(-2|s/c|) leaves float's normal range at |s/c| near 44, double's near 354) is formed
    /// again from the raw score (`times`), so that a large gradient times a tiny slope keeps its
    /// digits. An entry whose gradient overflowed in T while its slope is below 1 may still have
    /// a finite true product (the square loss's 2 kappa (s' - M) / K beyond DBL_MAX, times a
    /// slope of 1e-330): `rerun(c, row)` recomputes the loss's gradient with coefficient c =
    /// coefficient 2^-scale into a scratch row, scale growing by steps that keep a rerun's
    /// entry normal in T, for as long as c stays exact; each entry takes its product
    /// from the first rerun where it is finite (the product does not depend on the scale). No
    /// inf * 0: an entry that no scale brings back stays infinite.
    func chain<T: StorageFloat>(_ gradient: UnsafeMutablePointer<T>, slopes: UnsafePointer<T>,
                                scores: UnsafePointer<T>, count: Int, coefficient: Double,
                                rescaled: UnsafeMutablePointer<T>,
                                rerun: (_ coefficient: Double, _ into: UnsafeMutablePointer<T>) -> Void) {
        var overflowed = false
        for j in 0..<count {
            let g = gradient[j].asDouble, slope = slopes[j].asDouble
            if g.isInfinite, slope < 1 {
                overflowed = true  // left infinite: resolved below
            } else if slope >= T.leastNormalMagnitude.asDouble || g == 0 || slope.isNaN {
                gradient[j] = T(rounding: g * slope)
            } else {
                gradient[j] = T(rounding: times(g, slopeOf: scores[j].asDouble, scale: 0))
            }
        }
        guard overflowed else { return }
        let step = Int(T.greatestFiniteMagnitude.exponent - T.leastNormalMagnitude.exponent) - 2 * T.significandBitCount
        // c exact: 2^-scale takes none of its bits (1 itself goes down to 2^-1074).
        let largest = Int(coefficient.exponent) - coefficient.significandWidth
            - Int(Double.leastNonzeroMagnitude.exponent)
        var scale = 0
        var left = true
        while left, scale < largest {
            scale = min(scale + step, largest)
            rerun(scalbn(coefficient, -scale), rescaled)
            left = false
            // An entry resolved to +-inf (its true product overflows) is resolved again to the
            // same: harmless.
            for j in 0..<count where gradient[j].isInfinite && slopes[j].asDouble < 1 {
                let g = rescaled[j].asDouble
                if g.isInfinite {
                    left = true
                } else {
                    gradient[j] = T(rounding: times(g, slopeOf: scores[j].asDouble, scale: scale))
                }
            }
        }
    }

    /// g ds'/ds 2^scale at raw score s, rounded once in double: the slope's exponent apart from
    /// its fraction, and below DBL_MIN the slope as 4 e^(-2a) / (1 + e^(-2a))^2 = 2^(2 - x) /
    /// (1 + q)^2 with x = 2a log2(e) (a = |s / c|; the rounding of x is of the order of the
    /// slope's own conditioning in s, 2a ulps).
    func times(_ g: Double, slopeOf s: Double, scale: Int) -> Double {
        let slope = Self.capped(s, softcap).slope
        if slope >= Double.leastNormalMagnitude || slope.isNaN {
            let e = Int(slope.exponent) + 1
            return scalbn(g * scalbn(slope, -e), scale + e)
        }
        let x = 2 * (s / softcap).magnitude * 1.4426950408889634
        // g < 2^1024 and scale < 2100 (a coefficient below 2^1024 down to 2^-1074): with
        // x beyond 8192 the product is far below 2^-1074.
        guard x < 8192 else { return g * 0 }
        let whole = x.rounded(.down), q = exp(-2 * (s / softcap).magnitude)
        return scalbn(g * exp2(whole - x) / ((1 + q) * (1 + q)), scale + 2 - Int(whole))
    }
}
