/// The loss catalogue (DESIGN.md §2), each loss a recipe over the primitives a structure
/// provides. Written once; every structure that provides the primitives runs every loss.
///
///     fearMinusHope(F, H)   F(s + f c) - H(s - h c)
///                           LOG            = (lse 0,  gold)     lse(s) - s[g]
///                           PERCEPTRON     = (max 0,  gold)     max(s) - s[g]
///                           HINGE          = (max 1,  gold)     max(s + c) - s[g]      [CS01]
///                           SOFTMAX_MARGIN = (lse 1,  gold)     lse(s + c) - s[g]      [GS10]
///                           RAMP           = (max 1,  max -1)   max(s + c) - max(s - c)
///                           SOFT_RAMP      = (lse 1,  lse -1)   lse(s + c) - lse(s - c) [GS12]
///                           INFINITE_RAMP  = (max 1,  oracle)   max(s + c) - s[o]
///     smoothedLog(eps)      lse(s) - (1 - eps) s[g] - (eps/K) sum_y s[y]             [SZVWW16]
///                           grad  p - (1 - eps) e_g - eps/K
///     risk                  R = sum_y p[y] c[y]                grad p (c - R)         [SMTH06]
///     squared(kappa, M)     (1/K) [kappa (s[g] - M)^2 + sum_{y != g} s[y]^2]          [HB20]
///     squentropy            lse(s) - s[g] + 1/(K-1) sum_{y != g} s[y]^2  (0 if K = 1) [HBW23]
///
/// K counts the unmasked candidates. References as in include/losskit.h.
enum Recipe: Equatable {
    case fearMinusHope(fear: Term, hope: Term)
    case smoothedLog(epsilon: Double)
    case risk
    case squared(kappa: Double, target: Double)
    case squentropy

    /// Whether the loss reads costs (DESIGN.md §2: "Costs are read only by the losses that use
    /// them").
    var readsCosts: Bool {
        switch self {
        case .fearMinusHope(let fear, let hope): return fear.readsCosts || hope.readsCosts
        case .risk: return true
        case .smoothedLog, .squared, .squentropy: return false
        }
    }

    /// The largest factor a cost is multiplied by besides cost_scale (1 for risk, |f| or |h|
    /// for the terms): cost_scale * this * |cost| must be finite for every cost read.
    var costFactor: Double {
        switch self {
        case .fearMinusHope(let fear, let hope): return Swift.max(1, fear.costFactor, hope.costFactor)
        case .risk, .smoothedLog, .squared, .squentropy: return 1
        }
    }

    /// Whether the loss uses the gold score (a masked gold is then LK_ERR_DOMAIN).
    var usesGoldScore: Bool {
        switch self {
        case .fearMinusHope(_, let hope): return hope == .gold
        case .risk: return false
        case .smoothedLog, .squared, .squentropy: return true
        }
    }

    /// Whether the loss needs a structure whose candidates can be enumerated.
    var needsEnumeration: Bool {
        switch self {
        case .fearMinusHope, .risk: return false
        case .smoothedLog, .squared, .squentropy: return true
        }
    }

    /// The loss of one example on any structure; adds `coefficient` times its gradient to the
    /// example's gradient (which it first zeroes). A NaN score makes the loss and the whole
    /// gradient NaN. Recipes that need enumeration are rejected with LK_ERR_UNSUPPORTED for
    /// other structures when the options are parsed (`Options.parse`); here they would yield
    /// NaN rather than trap.
    func loss<S: LossStructure>(on x: S, gradientTimes coefficient: Double) -> Double {
        guard Self.prepare(x) else { return .nan }
        return structuredLoss(x, coefficient)
    }

    /// The loss of one example on a structure with enumerable candidates (every recipe).
    func loss<S: EnumerableStructure>(onEnumerable x: S, gradientTimes coefficient: Double) -> Double {
        guard Self.prepare(x) else { return .nan }
        switch self {
        case .fearMinusHope, .risk:
            return structuredLoss(x, coefficient)
        case .smoothedLog(let epsilon):
            // lse(s) - s[g] + eps (s[g] - mean(s)): the log loss, plus the pull towards the
            // uniform target; its gradient is eps (e_g - 1/K) on top of p - e_g.
            let log = Self.fearMinusHope(x, .logSumExp(0), .gold, coefficient)
            let k = Double(x.unmaskedCount)
            let goldScore = x.gold()
            x.addOneHot(goldScore.arg, times: coefficient * epsilon)
            x.addToUnmasked(-coefficient * epsilon / k)
            return log + epsilon * (goldScore.score - x.sumOfScores() / k)
        case .squared(let kappa, let target):
            let k = Double(x.unmaskedCount)
            let (goldScore, goldArg) = x.gold()
            let miss = goldScore - target
            x.addOneHot(goldArg, times: coefficient * 2 * kappa * miss / k)
            x.addScoresExceptGold(times: coefficient * 2 / k)
            return (kappa * miss * miss + x.sumOfSquaresExceptGold()) / k
        case .squentropy:
            let log = Self.fearMinusHope(x, .logSumExp(0), .gold, coefficient)
            let others = Double(x.unmaskedCount - 1)
            guard others > 0 else { return log }  // no other candidate: the square term is 0
            x.addScoresExceptGold(times: coefficient * 2 / others)
            return log + x.sumOfSquaresExceptGold() / others
        }
    }

    /// The recipes every structure runs.
    private func structuredLoss<S: LossStructure>(_ x: S, _ coefficient: Double) -> Double {
        switch self {
        case .fearMinusHope(let fear, let hope):
            return Self.fearMinusHope(x, fear, hope, coefficient)
        case .risk:
            return x.expectedCost(gradientTimes: coefficient)
        case .smoothedLog, .squared, .squentropy:
            return .nan
        }
    }

    /// NaN check and zeroed gradient before the terms add to it; false when the example is NaN.
    private static func prepare<S: LossStructure>(_ x: S) -> Bool {
        if x.containsNaN {
            x.poisonGradient()
            return false
        }
        x.zeroGradient()
        return true
    }

    /// F - H, with the large parts of the two terms subtracted first.
    private static func fearMinusHope<S: LossStructure>(
        _ x: S, _ fear: Term, _ hope: Term, _ coefficient: Double
    ) -> Double {
        let f = x.evaluate(fear)
        let h = x.evaluate(hope)
        if case .marginals(let marginals) = f.gradient, case .oneHot(let arg) = h.gradient {
            // lse - score: p - e_arg, formed so that a near-zero loss keeps its gradient's digits.
            x.addMarginals(marginals, minusOneHot: arg, times: coefficient)
        } else {
            x.addGradient(f.gradient, times: coefficient)
            x.addGradient(h.gradient, times: -coefficient)
        }
        return (f.shift - h.shift) + (f.rest - h.rest)
    }
}
