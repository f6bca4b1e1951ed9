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
