/// What a structure (dense rows, candidate lists, linear chains) provides to the losses for one
/// example: the primitives of DESIGN.md §1 over the cost-augmented scores v = s + a c, and
/// sinks for their gradients. Losses are recipes over these (Catalogue.swift) and never see how a
/// structure stores its candidates.
///
/// Rules every conformance follows (DESIGN.md §2): masked candidates (score -inf) never win a
/// max, add nothing to a sum and are never the oracle; a max over tied values picks the gold
/// if it is among them, else the first candidate; the oracle is the candidate of lowest
/// unscaled cost, then highest score, then first.
protocol LossStructure {
    /// How the structure names one candidate (an index into a row; a path on a chain).
    associatedtype Argmax
    /// What a log-sum-exp keeps to produce its marginals afterwards.
    associatedtype Marginals

    /// The gold candidate's score s[gold].
    func gold() -> (score: Double, arg: Argmax)
    /// The oracle's score s[oracle].
    func oracle() -> (score: Double, arg: Argmax)
    /// max_y s[y] + a c[y], with the argmax.
    func maximum(costWeight a: Double) -> (value: Double, arg: Argmax)
    /// log sum_y exp(s[y] + a c[y]) = shift + rest, with rest = log1p(...) >= 0.
    func logSumExp(costWeight a: Double) -> (shift: Double, rest: Double, marginals: Marginals)
    /// The expected cost R = sum_y p[y] c[y] under p = softmax(s); SETS the gradient to
    /// `coefficient * p[y] (c[y] - R)`.
    func expectedCost(gradientTimes coefficient: Double) -> Double
    /// F - H, the "fear minus hope" of DESIGN.md §1; SETS the gradient to `coefficient` times
    /// dF - dH. A default below evaluates the two terms with the primitives; a structure may
    /// fuse them (flat rows keep each log-sum-exp's exps for the gradient pass).
    func fearMinusHope(fear: Term, hope: Term, coefficient: Double) -> Double

    /// Adds `coefficient` to the gradient of the candidate `arg`.
    func addOneHot(_ arg: Argmax, times coefficient: Double)
    /// Adds `coefficient` times the marginals of a log-sum-exp to the gradient.
    func addMarginals(_ marginals: Marginals, times coefficient: Double)
    /// Adds `coefficient` times (marginals - one-hot at `arg`), the gradient of lse - score.
    /// A structure may do better than the two separate adds (the default below): when the
    /// loss is near zero, the marginal at `arg` is within an ulp of 1 and p - 1 must be formed
    /// without subtracting 1.
    func addMarginals(_ marginals: Marginals, minusOneHot arg: Argmax, times coefficient: Double)

    /// Whether any score that is read is NaN: the example's loss and gradient are then NaN.
    var containsNaN: Bool { get }
    /// Sets the example's gradient to 0.
    func zeroGradient()
    /// Sets the example's whole gradient to NaN.
    func poisonGradient()
}

extension LossStructure {
    func addMarginals(_ marginals: Marginals, minusOneHot arg: Argmax, times coefficient: Double) {
        addMarginals(marginals, times: coefficient)
        addOneHot(arg, times: -coefficient)
    }

    func fearMinusHope(fear: Term, hope: Term, coefficient: Double) -> Double {
        zeroGradient()
        let f = evaluate(fear)
        let h = evaluate(hope)
        if case .marginals(let marginals) = f.gradient, case .oneHot(let arg) = h.gradient {
            // lse - score: p - e_arg, formed so that a near-zero loss keeps its gradient's digits.
            addMarginals(marginals, minusOneHot: arg, times: coefficient)
        } else {
            addGradient(f.gradient, times: coefficient)
            addGradient(h.gradient, times: -coefficient)
        }
        // The large parts of the two terms are subtracted first.
        return (f.shift - h.shift) + (f.rest - h.rest)
    }
}

/// A structure whose candidates can be summed over one by one, which the square losses and
/// label smoothing need (dense rows and candidate lists; not linear chains).
protocol EnumerableStructure: LossStructure {
    /// K, the number of unmasked candidates.
    var unmaskedCount: Int { get }
    /// One pass over the candidates: SETS (or, with `adding`, adds to) the gradient
    /// `2 half s[y] + constant` on the unmasked candidates — only the constant on the gold when
    /// `exceptGold`, 0 (or nothing) on masked ones — and returns the sum and the sum of squares
    /// of s[y] over the unmasked candidates, without the gold when `exceptGold`. The factor comes
    /// halved because 2 half can overflow where 2 half s[y] does not (a small s[y]).
    func scores(twice half: Double, plus constant: Double, exceptGold: Bool, adding: Bool)
        -> (sum: Double, sumOfSquares: Double)
    /// SETS the gold's gradient to `value`.
    func setGoldGradient(_ value: Double)
    /// The gold's gradient as it stands (0 when no gradient is wanted).
    func goldGradient() -> Double
}
