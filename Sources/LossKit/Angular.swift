#if canImport(Glibc)
import Glibc
#endif

/// CosFace and ArcFace on one dense row of cosines (DESIGN.md §2): the log loss over the logits
///
///     z[j] = s clamp(cos_j)            j != g
///     z[g] = s (cos_g - m)             CosFace [WWZJ18]
///     z[g] = s cos(theta_g + m)        ArcFace [DGXZ19], when cos_g > cos(pi - m)
///          = s (cos_g - m sin m)       otherwise (the fallback that keeps z[g] decreasing)
///
/// computed by writing z into a row of scratch, running the log loss recipe on it (a
/// `FlatCandidates` like any dense row), and chaining the gradient w.r.t. z back to the cosines:
/// s on the clamp's [-1, 1], 0 outside, and s dz[g]/(s dcos_g) at the gold. No arccos: with
/// sin theta = sqrt(1 - cos^2), cos(theta + m) = cos theta cos m - sin theta sin m.
struct AngularRow<T: Real> {
    let scale: Double
    private let kind: AngularMargin.Kind
    private let margin: Double
    private let cosMargin: Double
    private let sinMargin: Double
    /// ArcFace: cos(pi - m); at or below it the fallback applies.
    private let threshold: Double
    /// sin theta's floor in the gradient: its value at the largest cosine below 1, sqrt(2u).
    private let sinFloor: Double

    init(_ angular: AngularMargin) {
        scale = angular.scale
        kind = angular.kind
        margin = angular.margin
        cosMargin = cos(angular.margin)
        sinMargin = sin(angular.margin)
        threshold = cos(Double.pi - angular.margin)
        sinFloor = (2 * (T.ulpOfOne / 2).wide).squareRoot()
    }

    /// Writes the logits of the row `cosines` (gold `gold`, validated: no +inf, gold unmasked)
    /// into `logits` and returns dz[g]/dcos_g (0 where the clamp is flat).
    func logits(_ cosines: UnsafePointer<T>, count: Int, gold: Int, into logits: UnsafeMutablePointer<T>) -> Double {
        let s = T(rounding: scale)
        for j in 0..<count {
            let c = cosines[j]
            // -inf stays a mask; NaN fails both comparisons and stays NaN.
            logits[j] = c > 1 ? s : (c < -1 ? (c == -T.infinity ? c : -s) : s * c)
        }
        let raw = cosines[gold].wide
        let c = Swift.min(Swift.max(raw, -1), 1)  // NaN: max/min keep the number, so test raw below
        let inRange = raw >= -1 && raw <= 1
        let value: Double
        var slope: Double
        switch kind {
        case .cosFace:
            value = c - margin
            slope = 1
        case .arcFace:
            if c > threshold {
                let sinTheta = ((1 - c) * (1 + c)).squareRoot()
                value = c * cosMargin - sinTheta * sinMargin
                // d cos(theta + m) / d cos theta = cos m + cos theta sin m / sin theta; sin m = 0
                // (m = 0) has no singularity to guard.
                slope = sinMargin == 0 ? cosMargin : cosMargin + c * sinMargin / Swift.max(sinTheta, sinFloor)
            } else {
                value = c - margin * sinMargin
                slope = 1
            }
        }
        if !inRange { slope = 0 }
        logits[gold] = raw.isNaN ? T.nan : T(rounding: scale * value)
        return scale * slope
    }

    /// Turns the gradient w.r.t. the logits into the gradient w.r.t. the cosines, in place.
    func chain(_ gradient: UnsafeMutablePointer<T>, cosines: UnsafePointer<T>, count: Int, gold: Int, goldSlope: Double) {
        let s = T(rounding: scale)
        let goldGradient = gradient[gold].wide
        for j in 0..<count {
            let c = cosines[j]
            gradient[j] *= (c > 1 || c < -1) ? 0 : s  // a masked class has gradient 0 already
        }
        gradient[gold] = T(rounding: goldGradient * goldSlope)
    }
}
