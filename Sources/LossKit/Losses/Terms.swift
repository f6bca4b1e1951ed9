/// A fear or hope term of "fear minus hope" (DESIGN.md §1).
///
///     gold            s[gold]
///     oracle          s[oracle]          oracle = lowest unscaled cost, then highest score
///     max(a)          max_y  s[y] + a c[y]
///     logSumExp(a)    log sum_y exp(s[y] + a c[y])
///
/// `a` is the signed cost weight: +f for a fear term, -h for a hope term. Its gradient with
/// respect to s is a one-hot at the gold / oracle / argmax, or the marginals softmax(s + a c).
enum Term: Equatable {
    case gold
    case oracle
    case max(Double)
    case logSumExp(Double)

    /// |a|, the factor this term multiplies a cost by (0 for gold and oracle).
    var costFactor: Double {
        switch self {
        case .gold, .oracle: return 0
        case .max(let a), .logSumExp(let a): return abs(a)
        }
    }

    /// Whether evaluating this term reads the costs (the oracle always does).
    var readsCosts: Bool {
        switch self {
        case .gold: return false
        case .oracle: return true
        case .max(let a), .logSumExp(let a): return a != 0
        }
    }
}

/// A term's value, split as `shift + rest` so that the difference of two terms near zero is
/// formed from the large parts first (`shift` is a score or a max; `rest` is 0 or a log1p),
/// and what its gradient needs.
struct TermValue<S: LossStructure> {
    var shift: Double
    var rest: Double
    var gradient: TermGradient<S>
}

/// The gradient of a term with respect to the scores, in the structure's own form.
enum TermGradient<S: LossStructure> {
    case oneHot(S.Argmax)
    case marginals(S.Marginals)
}

extension LossStructure {
    /// Evaluates `term` on this example.
    func evaluate(_ term: Term) -> TermValue<Self> {
        switch term {
        case .gold:
            let (score, arg) = gold()
            return TermValue(shift: score, rest: 0, gradient: .oneHot(arg))
        case .oracle:
            let (score, arg) = oracle()
            return TermValue(shift: score, rest: 0, gradient: .oneHot(arg))
        case .max(let a):
            let (value, arg) = maximum(costWeight: a)
            return TermValue(shift: value, rest: 0, gradient: .oneHot(arg))
        case .logSumExp(let a):
            let (shift, rest, marginals) = logSumExp(costWeight: a)
            return TermValue(shift: shift, rest: rest, gradient: .marginals(marginals))
        }
    }

    /// Adds `coefficient` times the term's gradient to the example's gradient.
    func addGradient(_ gradient: TermGradient<Self>, times coefficient: Double) {
        switch gradient {
        case .oneHot(let arg): addOneHot(arg, times: coefficient)
        case .marginals(let marginals): addMarginals(marginals, times: coefficient)
        }
    }
}
