#if canImport(Glibc)
import Glibc
#endif

/// One example whose candidates sit side by side in flat buffers: a dense row of k classes
/// (and, later, one candidate list). Provides the primitives of `LossStructure` by plain loops
/// over the candidates.
///
/// Preconditions (established by the structure's validation before any computing pass): at
/// least one candidate is unmasked, `goldIndex` is in `0..<count`, no score is +inf, and every
/// cost read (unmasked candidates only) is finite. `costs == nil` means 0/1 cost against
/// `goldIndex`.
struct FlatCandidates<T: Real> {
    let scores: UnsafePointer<T>
    let count: Int
    /// The gold (or whatever stands in for it): the gold term, the 0/1 costs and the tie rule.
    let goldIndex: Int
    let costs: UnsafePointer<T>?
    let costScale: Double
    /// Where the gradient goes (`count` entries), or nil when it is not wanted.
    let gradient: UnsafeMutablePointer<T>?

    @inline(__always) func isMasked(_ j: Int) -> Bool { scores[j] == -T.infinity }

    /// cost(gold, j) before `cost_scale`.
    @inline(__always) func unscaledCost(_ j: Int) -> Double {
        if let costs { return costs[j].wide }
        return j == goldIndex ? 0 : 1
    }

    /// s[j] + a c[j]; the cost is not read when a = 0 (LOG and PERCEPTRON read no costs).
    @inline(__always) func augmented(_ j: Int, _ a: Double) -> Double {
        let s = scores[j].wide
        return a == 0 ? s : s + a * (costScale * unscaledCost(j))
    }

    @inline(__always) func add(_ j: Int, _ value: Double) {
        guard let gradient else { return }
        gradient[j] = T(rounding: gradient[j].wide + value)
    }
}

/// The state a log-sum-exp keeps for its marginals exp(v[j] - shift) / (1 + rest), where
/// `shift` is the max, reached at `argmax`, and `rest` the sum of the other exps.
struct FlatMarginals {
    let costWeight: Double
    let shift: Double
    let argmax: Int
    let rest: Double
    var denominator: Double { 1 + rest }
}

extension FlatCandidates: EnumerableStructure {
    func gold() -> (score: Double, arg: Int) { (scores[goldIndex].wide, goldIndex) }

    func oracle() -> (score: Double, arg: Int) {
        var best = -1
        var bestCost = Double.infinity
        var bestScore = -Double.infinity
        for j in 0..<count where !isMasked(j) {
            let c = unscaledCost(j)
            let s = scores[j].wide
            if best < 0 || c < bestCost || (c == bestCost && s > bestScore) {
                best = j
                bestCost = c
                bestScore = s
            }
        }
        return (bestScore, best)
    }

    func maximum(costWeight a: Double) -> (value: Double, arg: Int) {
        var best = -1
        var bestValue = -Double.infinity
        for j in 0..<count where !isMasked(j) {
            let v = augmented(j, a)
            // Ties go to the gold, else stay with the first (DESIGN.md §2 "Ties").
            if best < 0 || v > bestValue || (v == bestValue && j == goldIndex) {
                best = j
                bestValue = v
            }
        }
        return (bestValue, best)
    }

    func logSumExp(costWeight a: Double) -> (shift: Double, rest: Double, marginals: FlatMarginals) {
        let (m, arg) = maximum(costWeight: a)
        // Sum without the argmax's own exp(0) = 1, so that lse = m + log1p(rest) keeps the
        // digits of a loss near zero (log(1 + tiny) would round the tiny part away).
        var rest = 0.0
        for j in 0..<count where j != arg && !isMasked(j) {
            rest += exp(augmented(j, a) - m)
        }
        return (m, log1p(rest), FlatMarginals(costWeight: a, shift: m, argmax: arg, rest: rest))
    }

    func expectedCost(gradientTimes coefficient: Double) -> Double {
        let (_, _, p) = logSumExp(costWeight: 0)
        @inline(__always) func probability(_ j: Int) -> Double { exp(scores[j].wide - p.shift) / p.denominator }
        var risk = 0.0
        for j in 0..<count where !isMasked(j) {
            risk += probability(j) * (costScale * unscaledCost(j))
        }
        if gradient != nil {
            for j in 0..<count where !isMasked(j) {
                add(j, coefficient * probability(j) * (costScale * unscaledCost(j) - risk))
            }
        }
        return risk
    }

    func addOneHot(_ arg: Int, times coefficient: Double) {
        guard arg >= 0 else { return }
        add(arg, coefficient)
    }

    func addMarginals(_ m: FlatMarginals, times coefficient: Double) {
        guard gradient != nil else { return }
        let scale = coefficient / m.denominator
        for j in 0..<count where !isMasked(j) {
            add(j, scale * exp(augmented(j, m.costWeight) - m.shift))
        }
    }

    func addMarginals(_ m: FlatMarginals, minusOneHot arg: Int, times coefficient: Double) {
        guard gradient != nil else { return }
        let scale = coefficient / m.denominator
        for j in 0..<count where !isMasked(j) {
            if j == arg {
                // p[arg] - 1: at the argmax p = 1/(1 + rest), so p - 1 = -rest/(1 + rest) exactly;
                // elsewhere p <= 1/2 and the subtraction loses nothing.
                add(j, j == m.argmax ? -scale * m.rest : coefficient * (exp(augmented(j, m.costWeight) - m.shift) / m.denominator - 1))
            } else {
                add(j, scale * exp(augmented(j, m.costWeight) - m.shift))
            }
        }
    }

    var containsNaN: Bool {
        for j in 0..<count where scores[j].isNaN { return true }
        return false
    }

    func zeroGradient() {
        gradient?.update(repeating: 0, count: count)
    }

    func poisonGradient() {
        gradient?.update(repeating: .nan, count: count)
    }

    var unmaskedCount: Int {
        var k = 0
        for j in 0..<count where !isMasked(j) { k += 1 }
        return k
    }

    func sumOfScores() -> Double {
        var sum = 0.0
        for j in 0..<count where !isMasked(j) { sum += scores[j].wide }
        return sum
    }

    func sumOfSquaresExceptGold() -> Double {
        var sum = 0.0
        for j in 0..<count where j != goldIndex && !isMasked(j) {
            let s = scores[j].wide
            sum += s * s
        }
        return sum
    }

    func addScoresExceptGold(times coefficient: Double) {
        for j in 0..<count where j != goldIndex && !isMasked(j) {
            add(j, coefficient * scores[j].wide)
        }
    }

    func addToUnmasked(_ coefficient: Double) {
        for j in 0..<count where !isMasked(j) { add(j, coefficient) }
    }
}
