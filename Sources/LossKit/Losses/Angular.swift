#if canImport(Glibc)
import Glibc
#endif

/// CosFace and ArcFace (DESIGN.md §2), the recipe `.angular` of the catalogue: on one row of
/// cosines, the log loss over the logits
///
///     z[j] = s clamp(cos_j)            j != g
///     z[g] = s (cos_g - m)             CosFace [WWZJ18]
///     z[g] = s cos(theta_g + m)        ArcFace [DGXZ19], when cos_g > cos(pi - m)
///          = s (cos_g - m sin m)       otherwise (the fallback that keeps z[g] decreasing)
///
/// computed by writing z into the example's scratch row, running the log loss on it (a
/// `FlatCandidates` like any dense row), and chaining the gradient w.r.t. z back to the cosines:
/// s on the clamp's [-1, 1], 0 outside, and s dz[g]/(s dcos_g) at the gold. No arccos: with
/// sin theta = sqrt(1 - cos^2), cos(theta + m) = cos theta cos m - sin theta sin m. Dense rows
/// only (the preset says so).
struct AngularMargin: Equatable {
    enum Kind { case cosFace, arcFace }
    let kind: Kind
    /// s > 0 and m in [0, pi].
    let scale: Double
    let margin: Double
    private let cosMargin: Double
    private let sinMargin: Double
    /// ArcFace: cos(pi - m) = -cos m as an unevaluated sum thresholdHi + thresholdLo
    /// (double-double, about 2^-104 relative); at or below it the fallback applies
    /// (`isAboveThreshold`).
    private let thresholdHi: Double
    private let thresholdLo: Double

    /// Run once per call (the threshold's double-double cosine is not free).
    init(kind: Kind, scale: Double, margin: Double) {
        self.kind = kind
        self.scale = scale
        self.margin = margin
        cosMargin = cos(margin)
        sinMargin = sin(margin)
        let cosine = CosineDD.of(margin)
        thresholdHi = -cosine.hi
        thresholdLo = -cosine.lo
    }

    /// The largest |logit|, s (1 + m): it must be finite in the input type.
    var largestLogit: Double { scale * (1 + margin) }

    /// sin theta's floor in the gradient: its value at the largest cosine below 1, sqrt(2u).
    private static func sinFloor<T: StorageFloat>(_: T.Type) -> Double { (2 * (T.ulpOfOne / 2).asDouble).squareRoot() }

    /// Writes the logits of the row `cosines` (gold `gold`, validated: no +inf, gold unmasked)
    /// into `logits` and returns dz[g]/dcos_g / s (0 where the clamp is flat): the caller
    /// multiplies by s (the Hessian squares it first, so that a huge s cannot overflow it).
    func logits<T: StorageFloat>(
        _ cosines: UnsafePointer<T>, count: Int, gold: Int, into logits: UnsafeMutablePointer<T>
    ) -> Double {
        let s = T(rounding: scale)
        for j in 0..<count {
            let c = cosines[j]
            // -inf stays a mask; NaN fails both comparisons and stays NaN.
            logits[j] = c > 1 ? s : (c < -1 ? (c == -T.infinity ? c : -s) : s * c)
        }
        let raw = cosines[gold].asDouble
        let c = Swift.min(Swift.max(raw, -1), 1)  // NaN: max/min keep the number, so test raw below
        let inRange = raw >= -1 && raw <= 1
        let value: Double
        var slope: Double
        switch kind {
        case .cosFace:
            value = c - margin
            slope = 1
        case .arcFace:
            if isAboveThreshold(c) {
                let sinTheta = ((1 - c) * (1 + c)).squareRoot()
                value = c * cosMargin - sinTheta * sinMargin
                // d cos(theta + m) / d cos theta = cos m + cos theta sin m / sin theta; sin m = 0
                // (m = 0) has no singularity to guard.
                slope = sinMargin == 0 ? cosMargin
                    : cosMargin + c * sinMargin / Swift.max(sinTheta, Self.sinFloor(T.self))
            } else {
                value = c - margin * sinMargin
                slope = 1
            }
        }
        if !inRange { slope = 0 }
        logits[gold] = raw.isNaN ? T.nan : T(rounding: scale * value)
        return slope
    }

    /// d^2 z[g] / dcos_g^2 / s for the gold's cosine `raw` (the Hessian's chain rule): 0 for
    /// CosFace, for ArcFace's fallback and outside the clamp's [-1, 1]; above ArcFace's threshold,
    /// sin m / sin^3 theta (the derivative of the slope cos m + cos theta sin m / sin theta), with
    /// sin theta floored as in the gradient, so that it is large but finite at cos_g = 1.
    func goldCurvature<T: StorageFloat>(_ raw: Double, _: T.Type) -> Double {
        guard kind == .arcFace, raw >= -1, raw <= 1, sinMargin != 0, isAboveThreshold(raw) else { return 0 }
        let sinTheta = Swift.max(((1 - raw) * (1 + raw)).squareRoot(), Self.sinFloor(T.self))
        return sinMargin / (sinTheta * sinTheta * sinTheta)
    }

    /// Whether c > -cos m exactly, i.e. theta + m < pi. cos(pi - m) rounded to double is off by
    /// an ulp or more (pi - m is itself rounded), which puts cosines next to the threshold on the
    /// wrong side, where the loss jumps (the fallback is not continuous there). A double c
    /// different from hi is at least half an ulp of hi away from it, farther than |lo|: its
    /// side is that of hi; c == hi is above exactly when lo < 0.
    private func isAboveThreshold(_ c: Double) -> Bool {
        c != thresholdHi ? c > thresholdHi : thresholdLo < 0
    }

    /// Turns the gradient w.r.t. the logits into the gradient w.r.t. the cosines, in place.
    func chain<T: StorageFloat>(_ gradient: UnsafeMutablePointer<T>, cosines: UnsafePointer<T>, count: Int, gold: Int,
                        goldSlope: Double) {
        let s = T(rounding: scale)
        let goldGradient = gradient[gold].asDouble
        for j in 0..<count {
            let c = cosines[j]
            gradient[j] *= (c > 1 || c < -1) ? 0 : s  // a masked class has gradient 0 already
        }
        gradient[gold] = T(rounding: goldGradient * goldSlope)
    }
}

extension AngularMargin {
    /// The logits of the row of cosines `x`, written to its scratch, as an example of their own
    /// whose gradient goes to `gradient`, and dz[g]/dcos_g / s (`logits`).
    private func logitRow<T: StorageFloat>(_ x: FlatCandidates<T>, logits: UnsafeMutablePointer<T>,
                                   gradient: UnsafeMutablePointer<T>?) -> (example: FlatCandidates<T>, slope: Double) {
        let slope = self.logits(x.scores, count: x.count, gold: x.goldIndex, into: logits)
        let (maximum, _, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(logits), count: x.count,
                                                                   SurveyMaximum.self)
        let example = FlatCandidates(
            scores: UnsafePointer(logits), count: x.count, goldIndex: x.goldIndex, costs: nil, costScale: 0,
            gradient: gradient, scratch: nil,
            validated: RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: -1, unmasked: unmasked))
        return (example, slope)
    }

    /// The loss of one validated row of cosines `x`: the log loss over its logits (written to
    /// the row's scratch), its gradient chained back to the cosines; SETS x's gradient to
    /// `coefficient` times it.
    func loss<T: StorageFloat>(on x: FlatCandidates<T>, gradientTimes coefficient: Double) -> Double {
        guard let logits = x.scratch else { x.poisonGradient(); return .nan }  // cannot happen
        let (example, slope) = logitRow(x, logits: logits, gradient: x.gradient)
        let value = Recipe.log.loss(onFlat: example, gradientTimes: coefficient)
        if let gradient = x.gradient {
            chain(gradient, cosines: x.scores, count: x.count, gold: x.goldIndex, goldSlope: scale * slope)
        }
        return value
    }

    /// The diagonal of CosFace's / ArcFace's Hessian w.r.t. the cosines on one validated row:
    /// with z the logits and p = softmax(z), d^2 L / dcos_j^2 = s^2 p_j (1 - p_j) off the gold
    /// (0 outside the clamp), and at the gold (chain rule through z[g](cos_g))
    /// p_g (1 - p_g) (dz[g]/dcos_g)^2 + (p_g - 1) d^2 z[g] / dcos_g^2: SETS x's gradient row (the
    /// Hessian's) to `coefficient` times it; the logits go to x's scratch.
    func hessian<T: StorageFloat>(on x: FlatCandidates<T>, times coefficient: Double) {
        guard let hessian = x.gradient, let logits = x.scratch else { return x.poisonGradient() }  // cannot happen
        let cosines = x.scores, count = x.count, gold = x.goldIndex
        let (example, slope) = logitRow(x, logits: logits, gradient: hessian)
        if example.containsNaN { return example.poisonGradient() }
        let q = example.exps(0, into: hessian)
        // The gold first (its exp is overwritten below): p_g - 1 = -((1 - e_g) + rest) / den,
        // formed without cancelling; the slope is 0 outside the clamp, as is the curvature. In
        // units of s, s (s a - b), so that a huge s overflows to +-inf, never to inf - inf or
        // inf * 0 (b is finite: the curvature is at most sin m / sinFloor^3).
        let s = scale
        let e = hessian[gold].asDouble
        let pull = ((1 - e) + q.rest) / q.denominator
        let a = q.variance(e) * slope * slope
        let b = pull == 0 ? 0 : pull * goldCurvature(cosines[gold].asDouble, T.self)
        let atGold = s * (s * a - b)
        for j in 0..<count {
            let c = cosines[j]
            hessian[j] = c > 1 || c < -1 ? 0 : T(rounding: coefficient * (s * (s * q.variance(hessian[j].asDouble))))
        }
        hessian[gold] = T(rounding: coefficient * atGold)
    }
}

/// cos m for m in [0, pi] in double-double arithmetic (hi + lo, |lo| <= ulp(hi) / 2, about 2^-104
/// relative), for decisions that must be exact against a float input: Taylor series on an
/// argument reduced by pi/2 or pi held in three doubles, so that m near pi/2 (cos m near 0) keeps
/// its relative accuracy. Run once per call.
enum CosineDD {
    private typealias DD = (hi: Double, lo: Double)

    /// pi/2 = halfPi.0 + halfPi.1 + halfPi.2 (to about 2^-160).
    private static let halfPi = (0x1.921fb54442d18p+0, 0x1.1a62633145c07p-54, -0x1.f1976b7ed8fbcp-110)

    static func of(_ m: Double) -> (hi: Double, lo: Double) {
        if m <= 0.78 {
            return cosine((m, 0))
        } else if m <= 2.35 {
            // cos m = sin(pi/2 - m); halfPi.0 - m is exact (Sterbenz: m in [pi/4, 3 pi/4]).
            return sine(reduced(halfPi.0 - m, halfPi.1, halfPi.2))
        } else {
            // cos m = -cos(pi - m); 2 halfPi.0 - m is exact (m in [3 pi/4, pi]).
            let c = cosine(reduced(2 * halfPi.0 - m, 2 * halfPi.1, 2 * halfPi.2))
            return (-c.hi, -c.lo)
        }
    }

    private static func reduced(_ a: Double, _ b: Double, _ c: Double) -> DD {
        let s = twoSum(a, b)
        return quickTwoSum(s.hi, s.lo + c)
    }

    /// cos x = sum (-1)^i x^(2i) / (2i)!, |x| <= 0.79: 14 terms reach 2^-110.
    private static func cosine(_ x: DD) -> DD {
        let x2 = multiply(x, x)
        var term: DD = (1, 0), sum: DD = (1, 0)
        for i in 1...14 {
            term = divide(multiply(term, x2), Double((2 * i - 1) * (2 * i)))
            sum = add(sum, i % 2 == 1 ? (-term.hi, -term.lo) : term)
        }
        return sum
    }

    /// sin x = sum (-1)^i x^(2i+1) / (2i+1)!, |x| <= 0.79.
    private static func sine(_ x: DD) -> DD {
        let x2 = multiply(x, x)
        var term = x, sum = x
        for i in 1...14 {
            term = divide(multiply(term, x2), Double((2 * i) * (2 * i + 1)))
            sum = add(sum, i % 2 == 1 ? (-term.hi, -term.lo) : term)
        }
        return sum
    }

    private static func twoSum(_ a: Double, _ b: Double) -> DD {
        let s = a + b, bb = s - a
        return (s, (a - (s - bb)) + (b - bb))
    }

    private static func quickTwoSum(_ a: Double, _ b: Double) -> DD {
        let s = a + b
        return (s, b - (s - a))
    }

    private static func add(_ x: DD, _ y: DD) -> DD {
        let s = twoSum(x.hi, y.hi), t = twoSum(x.lo, y.lo)
        let u = quickTwoSum(s.hi, s.lo + t.hi)
        return quickTwoSum(u.hi, u.lo + t.lo)
    }

    private static func multiply(_ x: DD, _ y: DD) -> DD {
        let p = x.hi * y.hi
        let e = (-p).addingProduct(x.hi, y.hi)  // exact: the fused a * b - p
        return quickTwoSum(p, e + (x.hi * y.lo + x.lo * y.hi))
    }

    private static func divide(_ x: DD, _ n: Double) -> DD {
        let q = x.hi / n
        let r = x.hi.addingProduct(-q, n)  // exact: the fused x.hi - q n
        return quickTwoSum(q, (r + x.lo) / n)
    }
}
