import CLossKit

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
///     angular(M)            COSFACE, ARCFACE: the log loss over logits made from cosines
///                           (Angular.swift)                          [WWZJ18] [DGXZ19]
///
/// K counts the unmasked candidates. References as in include/losskit.h.
enum Recipe: Equatable {
    case fearMinusHope(fear: Term, hope: Term)
    case smoothedLog(epsilon: Double)
    case risk
    case squared(kappa: Double, target: Double)
    case squentropy
    case angular(AngularMargin)

    /// The log loss, lse(s) - s[g].
    static let log = Recipe.fearMinusHope(fear: .logSumExp(0), hope: .gold)

    /// Whether the loss reads costs (DESIGN.md §2: "Costs are read only by the losses that use
    /// them").
    var readsCosts: Bool {
        switch self {
        case .fearMinusHope(let fear, let hope): return fear.readsCosts || hope.readsCosts
        case .risk: return true
        case .smoothedLog, .squared, .squentropy, .angular: return false
        }
    }

    /// The largest factor a cost is multiplied by besides cost_scale (1 for risk, |f| or |h|
    /// for the terms): cost_scale * this * |cost| must be finite for every cost read.
    var costFactor: Double {
        switch self {
        case .fearMinusHope(let fear, let hope): return Swift.max(1, fear.costFactor, hope.costFactor)
        case .risk, .smoothedLog, .squared, .squentropy, .angular: return 1
        }
    }

    /// Whether the loss uses the gold score (a masked gold is then LK_ERR_DOMAIN).
    var usesGoldScore: Bool {
        switch self {
        case .fearMinusHope(_, let hope): return hope == .gold
        case .risk: return false
        case .smoothedLog, .squared, .squentropy, .angular: return true
        }
    }

    /// Whether the loss needs the argmax of the plain scores from validation's scan (its max
    /// and oracle terms follow from it with 0/1 costs).
    var needsArgmax: Bool {
        switch self {
        case .fearMinusHope(let fear, let hope):
            return [fear, hope].contains { if case .logSumExp = $0 { return false } else { return $0 != .gold } }
        case .risk, .smoothedLog, .squared, .squentropy, .angular: return false
        }
    }

    /// Whether the loss needs K, the number of unmasked candidates.
    var needsUnmaskedCount: Bool {
        switch self {
        case .smoothedLog, .squared, .squentropy: return true
        case .fearMinusHope, .risk, .angular: return false
        }
    }

    /// The signed cost weight of the fear term (0 without one), whose cost-augmented max the
    /// validation scan finds when it reads costs.
    var fearWeight: Double {
        if case .fearMinusHope(.logSumExp(let a), _) = self { return a }
        if case .fearMinusHope(.max(let a), _) = self { return a }
        return 0
    }

    /// Whether the loss needs a structure whose candidates can be enumerated (flat candidates).
    var needsEnumeration: Bool {
        switch self {
        case .fearMinusHope, .risk: return false
        case .smoothedLog, .squared, .squentropy, .angular: return true
        }
    }

    /// Whether the loss writes a row of scratch per example beside the gradient (a second
    /// log-sum-exp's exps, when a gradient or a Hessian is written; the angular logits).
    func needsScratchRow(gradient: Bool, hessian: Bool) -> Bool {
        switch self {
        case .fearMinusHope(.logSumExp, .logSumExp): return gradient || hessian
        case .risk: return hessian  // its softmax beside p (c - R)
        case .angular: return true
        case .fearMinusHope, .smoothedLog, .squared, .squentropy: return false
        }
    }

    /// The loss of one example on any structure; SETS the example's gradient to `coefficient`
    /// times the loss's gradient. A NaN score makes the loss and the whole gradient NaN.
    /// Recipes that need enumeration are rejected with LK_ERR_UNSUPPORTED for other structures
    /// when the options are parsed (`Options.parse`); here they would yield NaN, not trap.
    func loss<S: LossStructure>(on x: S, gradientTimes coefficient: Double) -> Double {
        if x.containsNaN { x.poisonGradient(); return .nan }
        switch self {
        case .fearMinusHope(let fear, let hope):
            return x.fearMinusHope(fear: fear, hope: hope, coefficient: coefficient)
        case .risk:
            return x.expectedCost(gradientTimes: coefficient)
        case .smoothedLog, .squared, .squentropy, .angular:
            x.poisonGradient()
            return .nan
        }
    }

    /// weight times the loss of one example whose own loss is beyond the double range, formed
    /// apart (fear minus hope: FlatCandidates.weightedFearMinusHope); nil for the other recipes.
    func weightedLoss<T: StorageFloat>(onFlat x: FlatCandidates<T>, weight: Double) -> Double? {
        guard case .fearMinusHope(let fear, let hope) = self, !x.containsNaN else { return nil }
        return x.weightedFearMinusHope(fear: fear, hope: hope, weight: weight)
    }

    /// The loss of one example whose candidates sit in flat buffers (dense rows, candidate
    /// lists), where every recipe is defined.
    func loss<T: StorageFloat>(onFlat x: FlatCandidates<T>, gradientTimes coefficient: Double) -> Double {
        switch self {
        case .fearMinusHope, .risk:
            return loss(on: x, gradientTimes: coefficient)
        case .angular(let margin):
            return margin.loss(on: x, gradientTimes: coefficient)  // NaN cosines make NaN logits
        case .smoothedLog, .squared, .squentropy:
            if x.containsNaN { x.poisonGradient(); return .nan }
        }
        switch self {
        case .smoothedLog(let epsilon):
            // lse(s) - s[g] + eps (s[g] - mean(s)): the log loss, plus the pull towards the
            // uniform target; its gradient is eps (e_g - 1/K) on top of p - e_g.
            let log = x.fearMinusHope(fear: .logSumExp(0), hope: .gold, coefficient: coefficient)
            let k = Double(x.unmaskedCount)
            let atGold = x.goldGradient()
            let (sum, _) = x.scores(twice: 0, plus: -coefficient * epsilon / k, exceptGold: false, adding: true)
            let goldScore = x.goldScore
            // The gold's entry in one rounding, (p[g] - 1) + eps (1 - 1/K): exactly 0 when K = 1,
            // where adding eps to a rounded -eps/K would leave round(eps) - eps.
            x.setGoldGradient(atGold + coefficient * epsilon * ((k - 1) / k))
            let value = log + epsilon * (goldScore - sum / k)
            guard !value.isFinite else { return value }
            // The sum of the scores (or what is formed from it) beyond the double range, where
            // the mean and the loss need not be: the mean summed in parts s[y] / K, the loss in eighths.
            let mean = x.meanOfUnmaskedScores(k)
            // lse - s[g] itself may be beyond double where the loss is not (DBL_MAX against a
            // gold of -1e300, which the smoothing term pulls back; found by fuzzing): in eighths too.
            let logEighth = log.isFinite ? log / 8 : x.weightedFearMinusHope(fear: .logSumExp(0), hope: .gold, weight: 0.125)
            let eighths = logEighth + epsilon * (goldScore / 8 - mean / 8)
            return eighths.isFinite ? 8 * eighths : value
        case .squared(let kappa, let target):
            let k = Double(x.unmaskedCount)
            // 2 c s / K and 2 c kappa miss / K with the exact doubling last: the same bits as
            // the plain order, and no intermediate 2 c or 2 c kappa miss overflows alone.
            let (_, others) = x.scores(twice: coefficient / k, plus: 0, exceptGold: true, adding: false)
            let miss = x.goldScore - target
            // c kappa miss in one scaling (Shaping.product: the plain order's bits where nothing
            // overflows, and 0 for a zero miss, where c kappa alone can overflow: inf * 0 gave
            // NaN). Past DBL_MAX, c kappa miss can still give a finite 2 c kappa miss / K when K > 2.
            let product = Shaping.product(coefficient, kappa, miss, times2: false)
            x.setGoldGradient((product.isFinite ? product / k : Shaping.product(coefficient, kappa, miss / k, times2: false)) * 2)
            return (kappa * miss * miss + others) / k
        case .squentropy:
            let log = x.fearMinusHope(fear: .logSumExp(0), hope: .gold, coefficient: coefficient)
            let k = x.unmaskedCount
            guard k > 1 else { return log }  // no other candidate: the square term is 0
            let (_, others) = x.scores(twice: coefficient / Double(k - 1), plus: 0, exceptGold: true, adding: true)
            return log + others / Double(k - 1)
        case .fearMinusHope, .risk, .angular:
            return .nan  // handled above
        }
    }
}

extension Recipe {
    /// The recipe of the preset loss `o.loss` (an LK_LOSS_* value) under its options (CosFace and
    /// ArcFace on dense rows only). Only the options the loss uses are validated. Adding a preset
    /// loss: its LK_LOSS_* value in the header and its case here.
    static func preset(_ o: lk_options, for structure: StructureKind) throws(Failure) -> Recipe {
        let recipe: Recipe
        switch o.loss {
        case LK_LOSS_LOG:
            let epsilon = o.label_smoothing
            guard epsilon >= 0, epsilon < 1 else {
                throw .option("opt->label_smoothing = \(epsilon) is outside [0, 1)")
            }
            recipe = epsilon == 0 ? .fearMinusHope(fear: .logSumExp(0), hope: .gold) : .smoothedLog(epsilon: epsilon)
        case LK_LOSS_PERCEPTRON: recipe = .fearMinusHope(fear: .max(0), hope: .gold)
        case LK_LOSS_HINGE: recipe = .fearMinusHope(fear: .max(1), hope: .gold)
        case LK_LOSS_SOFTMAX_MARGIN: recipe = .fearMinusHope(fear: .logSumExp(1), hope: .gold)
        case LK_LOSS_RISK: recipe = .risk
        case LK_LOSS_RAMP: recipe = .fearMinusHope(fear: .max(1), hope: .max(-1))
        case LK_LOSS_SOFT_RAMP: recipe = .fearMinusHope(fear: .logSumExp(1), hope: .logSumExp(-1))
        case LK_LOSS_INFINITE_RAMP: recipe = .fearMinusHope(fear: .max(1), hope: .oracle)
        case LK_LOSS_SQUARED:
            let kappa = o.square_k
            guard kappa > 0, kappa.isFinite else {
                throw .option("opt->square_k = \(kappa) must be finite and > 0")
            }
            guard o.square_m.isFinite else { throw .option("opt->square_m = \(o.square_m) is not finite") }
            recipe = .squared(kappa: kappa, target: o.square_m)
        case LK_LOSS_SQUENTROPY: recipe = .squentropy
        case LK_LOSS_HOPE_FEAR:
            let f = try Options.nonNegative(o.fear_scale, "fear_scale")
            let h = try Options.nonNegative(o.hope_scale, "hope_scale")
            let fear: Term
            switch o.fear {
            case LK_TERM_MAX: fear = .max(f)
            case LK_TERM_LSE: fear = .logSumExp(f)
            default: throw .option("opt->fear = \(o.fear) is not LK_TERM_MAX or LK_TERM_LSE")
            }
            let hope: Term
            switch o.hope {
            case LK_TERM_GOLD: hope = .gold
            case LK_TERM_ORACLE: hope = .oracle
            case LK_TERM_MAX: hope = .max(-h)
            case LK_TERM_LSE: hope = .logSumExp(-h)
            default: throw .option("opt->hope = \(o.hope) is not an LK_TERM_* value")
            }
            recipe = .fearMinusHope(fear: fear, hope: hope)
        case LK_LOSS_COSFACE, LK_LOSS_ARCFACE:
            guard structure == .dense else {
                throw .unsupported("opt->loss = \(o.loss) (\(o.loss == LK_LOSS_COSFACE ? "COSFACE" : "ARCFACE")) "
                                   + "takes cosine scores of dense rows, not \(structure.name)")
            }
            let scale = o.angular_scale
            guard scale > 0, scale.isFinite else {
                throw .option("opt->angular_scale = \(scale) must be finite and > 0")
            }
            let margin = o.angular_margin
            guard margin >= 0, margin <= Double.pi else {
                throw .option("opt->angular_margin = \(margin) is outside [0, pi]")
            }
            let angular = AngularMargin(kind: o.loss == LK_LOSS_COSFACE ? .cosFace : .arcFace,
                                    scale: scale, margin: margin)
            guard angular.largestLogit.isFinite else {
                throw .option("opt->angular_scale = \(scale) times 1 + angular_margin overflows")
            }
            recipe = .angular(angular)
        default:
            throw .option("opt->loss = \(o.loss) is not an LK_LOSS_* value")
        }
        return recipe
    }
}
