/// The diagonal of each loss's Hessian with respect to the scores (lk_dense_hessian_*,
/// lk_lists_hessian_*), a recipe per loss over the same primitives as the gradient
/// (Catalogue.swift). The one idea: an lse term's Hessian is diag(q) - q q^T with q its softmax,
/// whose diagonal is q (1 - q); a max, gold or oracle term is piecewise linear in the scores,
/// so its Hessian is 0 almost everywhere (and taken as 0 everywhere).
///
///     fearMinusHope(F, H)   [F = lse] qF (1 - qF)  -  [H = lse] qH (1 - qH)
///                           LOG, SOFTMAX_MARGIN: q (1 - q); SOFT_RAMP: q+ (1 - q+) - q- (1 - q-)
///                           PERCEPTRON, HINGE, RAMP, INFINITE_RAMP: 0
///     smoothedLog(eps)      p (1 - p)                 (the smoothing term is linear)
///     risk                  p (c - R) (1 - 2 p)       d/ds_j of p_j (c_j - R), dR/ds_j = p_j (c_j - R)
///     squared(kappa, M)     2 kappa / K at the gold, 2 / K elsewhere
///     squentropy            p (1 - p), plus 2 / (K - 1) off the gold
///     angular(M)            w.r.t. the cosines, through the logits (AngularMargin.hessian)
///
/// Each q comes from the structure's own log-sum-exp (FlatCandidates.logSumExp): its exps e
/// around the term's argmax and the sum 1 + rest of them, so q (1 - q) = e (den - e) / den^2
/// with den - e formed as (1 - e) + rest, never as 1 - q (which loses every digit when q is near
/// 1, the confident example that matters most to a second-order method).
extension Recipe {
    /// SETS `x.gradient` (the Hessian's row, required) to `coefficient` times the diagonal of
    /// the loss's Hessian. `x.scratch` must hold `x.count` values when the recipe asks for it
    /// (`needsScratchRow`). A NaN score makes the whole row NaN.
    func hessian<T: StorageFloat>(on x: FlatCandidates<T>, times coefficient: Double) {
        guard let out = x.gradient else { return }
        if x.containsNaN { x.poisonGradient(); return }
        switch self {
        case .fearMinusHope(let fear, let hope):
            switch (fear, hope) {
            case (.logSumExp(let a), .logSumExp(let b)):
                guard let scratch = x.scratch else { return x.poisonGradient() }  // cannot happen
                let f = x.exps(a, into: out), h = x.exps(b, into: scratch)
                for j in 0..<x.count {
                    let v = f.variance(out[j].asDouble) - h.variance(scratch[j].asDouble)
                    out[j] = T(rounding: coefficient * v)
                }
            case (.logSumExp(let a), _):
                x.writeVariance(a, times: coefficient)
            case (_, .logSumExp(let b)):
                x.writeVariance(b, times: -coefficient)
            default:
                // A max, gold or oracle term on each side: piecewise linear.
                x.zeroGradient()
            }
        case .smoothedLog:
            x.writeVariance(0, times: coefficient)
        case .risk:
            guard let scratch = x.scratch else { return x.poisonGradient() }  // cannot happen
            // p (c - R) with all the care of the gradient (costs centred on the argmax's), at
            // coefficient 1 so that a large weight overflows only where the result does; then
            // times coefficient (1 - 2 p).
            _ = x.expectedCost(gradientTimes: 1)
            let p = x.exps(0, into: scratch)
            for j in 0..<x.count {
                let share = scratch[j].asDouble / p.denominator
                out[j] = T(rounding: out[j].asDouble * (coefficient * (1 - 2 * share)))
            }
        case .squared(let kappa, _):
            let k = Double(x.unmaskedCount)
            let others = coefficient / k * 2
            let product = coefficient * kappa
            let atGold = (product.isFinite ? product / k : coefficient * (kappa / k)) * 2
            for j in 0..<x.count {
                out[j] = x.isMasked(j) ? 0 : T(rounding: j == x.goldIndex ? atGold : others)
            }
        case .angular(let margin):
            margin.hessian(on: x, times: coefficient)
        case .squentropy:
            x.writeVariance(0, times: coefficient)
            let k = x.unmaskedCount
            guard k > 1 else { return }  // no other candidate: the square term is 0
            let square = coefficient / Double(k - 1) * 2
            for j in 0..<x.count where j != x.goldIndex && !x.isMasked(j) {
                out[j] = T(rounding: out[j].asDouble + square)
            }
        }
    }
}

/// A softmax q = e / den as a log-sum-exp left it: the exps e (stored elsewhere) and `rest`,
/// the sum of the exps but the one of its centre (exactly 1), so den = 1 + rest.
struct SoftmaxSpread {
    let rest: Double
    var denominator: Double { 1 + rest }

    /// q (1 - q) for the candidate of exp `e`: (e / den) (((1 - e) + rest) / den), each factor
    /// at most about 1, so nothing overflows and den - e keeps its digits when e is the centre's.
    @inline(__always) func variance(_ e: Double) -> Double {
        let den = denominator
        return (e / den) * (((1 - e) + rest) / den)
    }
}

extension FlatCandidates {
    /// The same example with its gradient buffer swapped for `gradient` (the Hessian's row) and
    /// its scratch for `scratch`.
    func writing(into gradient: UnsafeMutablePointer<T>, scratch: UnsafeMutablePointer<T>?) -> FlatCandidates {
        FlatCandidates(scores: scores, count: count, goldIndex: goldIndex, costs: costs, costScale: costScale,
                       gradient: gradient, scratch: scratch, validated: validated)
    }

    /// The exps of lse(s + a c) into `store` (0 at masked candidates), with their spread.
    func exps(_ a: Double, into store: UnsafeMutablePointer<T>) -> SoftmaxSpread {
        var plainArgmax = -1
        let (_, _, _, marginals) = logSumExp(a, store: store, plainArgmax: &plainArgmax)
        return SoftmaxSpread(rest: marginals.rest)
    }

    /// SETS the gradient buffer to `coefficient` q (1 - q), q = softmax(s + a c), in place of
    /// the exps.
    func writeVariance(_ a: Double, times coefficient: Double) {
        guard let out = gradient else { return }
        let q = exps(a, into: out)
        for j in 0..<count { out[j] = T(rounding: coefficient * q.variance(out[j].asDouble)) }
    }
}
