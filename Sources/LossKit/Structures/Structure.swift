/// What a structure (dense rows, candidate lists, linear chains) provides to the losses for one
/// example: exactly what the recipes of Catalogue.swift call. The terms of fear minus hope
/// (DESIGN.md §1) are over the cost-augmented scores v = s + a c; the losses never see how a
/// structure stores its candidates.
///
/// Rules every conformance follows (DESIGN.md §2): masked candidates (score -inf) never win a
/// max, add nothing to a sum and are never the oracle; a max over tied values picks the gold
/// if it is among them, else the first candidate; the oracle is the candidate of lowest
/// unscaled cost, then highest score, then first.
protocol LossStructure {
    /// F - H, the "fear minus hope" of DESIGN.md §1, with F and H any of the terms of Terms.swift;
    /// SETS the gradient to `coefficient` times dF - dH. Each structure fuses the two terms into
    /// its own passes: flat candidates keep a log-sum-exp's exps in the gradient and turn them
    /// into it in one pass (FlatCandidates.fearMinusHope); chains run one forward-backward per
    /// log-sum-exp term and add the path one-hots (the chain's conformance).
    func fearMinusHope(fear: Term, hope: Term, coefficient: Double) -> Double
    /// The expected cost R = sum_y p[y] c[y] under p = softmax(s); SETS the gradient to
    /// `coefficient * p[y] (c[y] - R)`.
    func expectedCost(gradientTimes coefficient: Double) -> Double

    /// Whether any score that is read is NaN: the example's loss and gradient are then NaN.
    var containsNaN: Bool { get }
    /// Sets the example's gradient to 0.
    func zeroGradient()
    /// Sets the example's whole gradient to NaN.
    func poisonGradient()
}
