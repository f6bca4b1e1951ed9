#if canImport(Glibc)
import Glibc
#endif

/// One example whose candidates sit side by side in flat buffers: a dense row of k classes
/// (or one candidate list). Provides the primitives of `LossStructure` with the vector
/// kernels of RowKernels.swift.
///
/// Preconditions (established by the structure's validation before any computing pass): at
/// least one candidate is unmasked, `goldIndex` is in `0..<count`, no score is +inf, and every
/// cost read (unmasked candidates only) is finite. `costs == nil` means 0/1 cost against
/// `goldIndex`.
struct FlatCandidates<T: StorageFloat> {
    let scores: UnsafePointer<T>
    let count: Int
    /// The gold (or whatever stands in for it): the gold term, the 0/1 costs and the tie rule.
    let goldIndex: Int
    let costs: UnsafePointer<T>?
    let costScale: Double
    /// Where the gradient goes (`count` entries), or nil when it is not wanted.
    let gradient: UnsafeMutablePointer<T>?
    /// Room for the exps of a second log-sum-exp term (count values) when there is one and a
    /// gradient is wanted; the first term keeps its exps in the gradient itself.
    let scratch: UnsafeMutablePointer<T>?
    /// What validation's scan of the scores learnt (max, argmax, unmasked count), or nil when
    /// validation screened the example's whole chunk at once (FlatValidation.screen): then no
    /// score is NaN or infinite, and what a loss needs of the scores is found when it asks.
    let validated: RowSurvey<T>?

    /// The survey validation kept, or the scan it stands for.
    @inline(__always) var survey: RowSurvey<T> {
        if let validated, validated.argmax >= 0 { return validated }
        let (maximum, argmax, unmasked, _) = RowKernel.survey(scores, count: count, SurveyAll.self)
        return RowSurvey(maximum: maximum, argmax: argmax, unmasked: unmasked)
    }

    @inline(__always) func isMasked(_ j: Int) -> Bool { scores[j] == -T.infinity }

    /// cost(gold, j) before `cost_scale`.
    @inline(__always) func unscaledCost(_ j: Int) -> Double {
        if let costs { return costs[j].asDouble }
        return j == goldIndex ? 0 : 1
    }

    // v = s + a c, seen three ways (plain; 0/1 cost; per-candidate cost) so that each kernel
    // specialises without a branch inside. With 0/1 costs the max and its argmax follow from the
    // plain ones validation kept, except when the gold is the plain max and the cost raises the
    // others (then its second max is needed: one pass).

    /// (max_j v[j], its argmax by the tie rule) when it follows from the plain max; else nil.
    @inline(__always) func maximumFromPlain(_ a: Double) -> (value: T, index: Int)? {
        if a != 0, costs != nil { return nil }
        if let validated, validated.argmax >= 0 { return fromPlain(a, validated.maximum, validated.argmax) }
        let (maximum, argmax, _, _) = RowKernel.survey(scores, count: count, SurveyArgmax.self)
        return fromPlain(a, maximum, argmax)
    }

    /// maximumFromPlain given the plain max m and its argmax (-1 when not known: then so is the
    /// index returned, but never the value). 0/1 costs only.
    @inline(__always) func fromPlain(_ a: Double, _ m: T, _ index: Int) -> (value: T, index: Int)? {
        let g = goldIndex, sg = scores[g]
        if a == 0 { return sg == m ? (m, g) : (m, index) }
        let w = T(rounding: a * costScale)
        if w >= 0 {
            // Every candidate but the gold rises by w: the plain argmax stays ahead unless it
            // is the gold.
            return sg < m ? (m + w, index) : nil
        }
        // Every candidate but the gold drops by |w|.
        if sg == m { return (sg, g) }
        let other = m + w
        return other > sg ? (other, index) : (sg, g)  // a tie goes to the gold
    }

    @inline(__always) func maximum(_ a: Double) -> T {
        if validated == nil {
            // A screened example: one pass for the value alone.
            let w = T(rounding: a * costScale)
            if a == 0 { return RowKernel.maximum(PlainRow(scores: scores, count: count)) }
            if let costs {
                return RowKernel.maximum(UnmaskedCostRow(scores: scores, costs: costs, count: count, weight: w))
            }
            return RowKernel.maximum(ZeroOneRow(scores: scores, count: count, weight: w, gold: goldIndex))
        }
        if costs == nil || a == 0, let validated, let plain = fromPlain(a, validated.maximum, validated.argmax) {
            return plain.value
        }
        let w = T(rounding: a * costScale)
        if costs != nil, let survey = validated, let fear = survey.fearMaximum, w == survey.fearWeight { return fear }
        if let costs { return RowKernel.maximum(CostRow(scores: scores, costs: costs, count: count, weight: w)) }
        return RowKernel.maximum(ZeroOneRow(scores: scores, count: count, weight: w, gold: goldIndex))
    }

    @inline(__always) func maximumWithIndex(_ a: Double) -> (value: T, index: Int) {
        if let validated = maximumFromPlain(a) { return validated }
        let w = T(rounding: a * costScale)
        if let costs {
            return RowKernel.maximumWithIndex(CostRow(scores: scores, costs: costs, count: count, weight: w),
                                              gold: goldIndex)
        }
        return RowKernel.maximumWithIndex(ZeroOneRow(scores: scores, count: count, weight: w, gold: goldIndex),
                                          gold: goldIndex)
    }

    /// exp(v[k] - v[j]) into `store` (or nowhere) around the candidate j reaching the max of v;
    /// returns sum_k exp(v[k] - v[j]) - 1, exactly enough for a near-zero loss (RowKernel.rest).
    /// With costs (a != 0) the exponents are formed centred, (s[k] - s[j]) + w (c[k] - c[j]), not
    /// as s[k] + w c[k] rounded to T minus the max: near-equal scores then subtract exactly, and
    /// a loss far below |s| keeps its digits (the rounding of s + w c to T costs ulps of |s|).
    @inline(__always) func expSum(_ a: Double, center j: Int, shift: T, store: UnsafeMutablePointer<T>?) -> Double {
        if a == 0 { return expSum(PlainRow(scores: scores, count: count), shift: shift, store: store) }
        let w = T(rounding: a * costScale)
        if let costs {
            guard costDifferencesMayOverflow(w) else {
                return expSum(CenteredCostRow<T, Unguarded>(scores: scores, costs: costs, count: count, weight: w,
                                                            center: j), shift: 0, store: store)
            }
            return expSum(CenteredCostRow<T, Guarded>(scores: scores, costs: costs, count: count, weight: w, center: j),
                          shift: 0, store: store)
        }
        let g = goldIndex
        let row = CenteredZeroOneRow(scores: scores, count: count, weight: w, gold: g, center: scores[j],
                                     offset: j == g ? 0 : w)
        guard j != g, scores[g] <= scores[j] else { return expSum(row, shift: 0, store: store) }
        // The gold is below the argmax j: a pass without the per-vector gold patch (cheaper)
        // gives it s[g] - s[j] <= 0, whose exp (at most 1) is then swapped for the right one,
        // exp(s[g] - s[j] - w); with the argmax's exact 1 in the sum, nothing cancels.
        let shifted = CenteredShiftedRow(scores: scores, count: count, center: scores[j])
        var total = store.map { RowKernel.expSum(shifted, shift: 0, into: BufferSink(base: $0)) }
            ?? RowKernel.expSum(shifted, shift: 0, into: Discard<T>())
        let wrong = Self.kernelExp(shifted.value(g)), right = Self.kernelExp(row.value(g))
        total += right.asDouble - wrong.asDouble
        store?[g] = right
        return RowKernel.rest(total: total, row: row, shift: 0)
    }

    /// Whether a difference of two costs c[k] - c[j] may overflow T (CenteredCostRow): only where
    /// some |c| reaches half the largest finite value. Validation's survey knows the largest |c|;
    /// a screened row passed only if |w| max |c| is below half an ulp of the largest value, which
    /// keeps max |c| below half of it wherever |w| >= ulp(1).
    @inline(__always) func costDifferencesMayOverflow(_ w: T) -> Bool {
        if let validated { return validated.largestCost >= (T.greatestFiniteMagnitude / 2).asDouble }
        return w.magnitude < T.ulpOfOne
    }

    /// The kernels' exp of one value (so that a correction matches what a pass added).
    @inline(__always) static func kernelExp(_ x: T) -> T { T.expNonPositive(T.Vector(repeating: x))[0] }

    @inline(__always) private func expSum<R: ScoreRow>(_ row: R, shift: T, store: UnsafeMutablePointer<T>?) -> Double
        where R.Scalar == T
    {
        let total = store.map { RowKernel.expSum(row, shift: shift, into: BufferSink(base: $0)) }
            ?? RowKernel.expSum(row, shift: shift, into: Discard<T>())
        return RowKernel.rest(total: total, row: row, shift: shift)
    }

    /// log sum_j exp(v[j]) = score + cost + logarithm, its exps stored into `store` if given. The
    /// exps are taken around the candidate j of the max of v (exactCenter), centred on it
    /// (expSum); the value is split as (s[j], a alpha c[j], log1p(...)) in double: rounding s + a c
    /// to T before fear - hope would cost ulps of |s| however small the loss, and a cost that
    /// cancels the score (s[j] = -a alpha c[j] = 5e307) would take the logarithm with it.
    func logSumExp(_ a: Double, store: UnsafeMutablePointer<T>?, plainArgmax: inout Int)
        -> (score: Double, cost: Double, logarithm: Double, marginals: FlatMarginals<T>)
    {
        let m = maximum(a)
        let j = a == 0 ? 0 : exactCenter(index(of: m, a, plainArgmax: &plainArgmax), a, max: m)
        let rest = expSum(a, center: j, shift: m, store: store)
        // log1p only where it matters (a near-zero loss); log(1 + rest) is exact enough beyond
        // and twice as fast (it is per example: a sizeable share of short lists).
        let logarithm = rest < 1.0 / 16 ? log1p(rest) : log(1 + rest)
        var marginals = FlatMarginals(costWeight: a, shift: m, rest: rest, exps: store)
        if a == 0 { return (m.asDouble, 0, logarithm, marginals) }  // v = s: m is exact
        marginals.center = j
        let (score, cost) = exactAugmented(j, a)
        return (score, cost, logarithm, marginals)
    }

    /// v[j] = s[j] + a alpha c[j] in double, split as (s[j], a alpha c[j]) so that the difference
    /// of two terms subtracts the scores first (exact when they are the same candidate's).
    @inline(__always) func exactAugmented(_ j: Int, _ a: Double) -> (score: Double, cost: Double) {
        (scores[j].asDouble, a == 0 ? 0 : a * costScale * unscaledCost(j))
    }

    /// The candidate the exps are centred on, from j, the first whose v the kernels round to the
    /// max m: j is the exact argmax of v up to that rounding, which leaves another candidate's
    /// centred exponent at most about ulp(m). From 8 units on (|v| from 2^26 in float, 2^55 in
    /// double: a cost_scale of 1e15 in float32 over scores tens apart), rounding ties
    /// candidates whose exact v differ by more than the clamp at 32 lets through; the centre then
    /// moves to the exact argmax, found by the centred differences themselves (a scalar pass,
    /// only there).
    @inline(__always) func exactCenter(_ j: Int, _ a: Double, max m: T) -> Int {
        m.magnitude >= 8 / T.ulpOfOne ? exactArgmax(from: j, a) : j  // ulp(m) >= 8
    }

    @inline(never) func exactArgmax(from j: Int, _ a: Double) -> Int {
        let w = T(rounding: a * costScale)
        var best = j
        for k in 0..<count where k != best && !isMasked(k) {
            let x: T
            if let costs {
                x = CenteredCostRow<T, Guarded>(scores: scores, costs: costs, count: count, weight: w,
                                                 center: best).value(k)
            } else {
                x = CenteredZeroOneRow(scores: scores, count: count, weight: w, gold: goldIndex, center: scores[best],
                                       offset: best == goldIndex ? 0 : w).value(k)
            }
            if x > 0 { best = k }
        }
        return best
    }

    /// The first candidate whose v[j] (as the kernels compute it) is `m`: with 0/1 costs it
    /// follows from the plain max (the gold, or the plain argmax: validation's when it kept it,
    /// else a scan that stops at it, kept in `plainArgmax` for the other term), else a scan of v
    /// that stops at it.
    @inline(__always) func index(of m: T, _ a: Double, plainArgmax: inout Int) -> Int {
        let w = T(rounding: a * costScale)
        var found = -1
        if let costs {
            found = RowKernel.firstIndex(of: m, in: CostRow(scores: scores, costs: costs, count: count, weight: w))
        } else if let validated, let plain = fromPlain(a, validated.maximum, validated.argmax), plain.value == m {
            if plain.index < 0, plainArgmax < 0 {
                plainArgmax = RowKernel.firstIndex(of: validated.maximum, in: PlainRow(scores: scores, count: count))
            }
            found = plain.index >= 0 ? plain.index : plainArgmax
        } else {
            let row = ZeroOneRow(scores: scores, count: count, weight: w, gold: goldIndex)
            found = RowKernel.firstIndex(of: m, in: row)
        }
        // m is one of the row's values as the same kernels compute them: found. Defensively:
        return found >= 0 ? found : maximumWithIndex(a).index
    }
}

/// What validation's read of a row learnt, for the computing pass to reuse: the max of the scores
/// (NaN if a score is NaN), the lowest index reaching it (-1 when the loss did not ask for it:
/// RowKernel.survey then skips it), how many scores are not -inf, and —
/// when costs were read — the max of s + w c for the fear term's weight w.
struct RowSurvey<T: StorageFloat> {
    var maximum: T
    var argmax: Int
    var unmasked: Int
    var fearWeight: T = 0
    var fearMaximum: T? = nil
    /// The largest |c| read (1 under 0/1 costs).
    var largestCost: Double = 1
}

/// What a log-sum-exp keeps for its marginals p[j] = exp(v[j] - shift) / (1 + rest): `rest`
/// is the sum of the exps but the argmax's, and `exps` the exps themselves when they were kept.
struct FlatMarginals<T: StorageFloat> {
    let costWeight: Double
    let shift: T
    let rest: Double
    let exps: UnsafeMutablePointer<T>?
    /// The candidate whose exp is exactly 1 (the one the exps are centred on), or -1 when not
    /// known (a term without costs).
    var center: Int = -1
    var denominator: Double { 1 + rest }
}

extension FlatCandidates: LossStructure {

    func expectedCost(gradientTimes coefficient: Double) -> Double {
        // p = softmax(s): the exps go to the gradient (when wanted), which the gradient pass then
        // turns into p (c - R) in place.
        guard let costs else { return zeroOneExpectedCost(shift: maximum(0), gradientTimes: coefficient) }
        // R = alpha (c[a] + sum_j p[j] (c[j] - c[a])) around the argmax a: its own term is 0, so
        // a dominant argmax leaves R - alpha c[a] (and each alpha c[j] - R) with all its digits.
        let m = maximum(0)
        // The argmax: validation's when it kept it, else a scan of the scores that stops at it
        // (cheaper than tracking it through validation's whole scan).
        let found = validated.map { $0.argmax } ?? -1
        let a = found >= 0 ? found : RowKernel.firstIndex(of: m, in: PlainRow(scores: scores, count: count))
        let reference = costs[Swift.max(a, 0)]  // m is a score: found
        let (total, dot) = gradient.map {
            RowKernel.expSumAndDot(scores, costs: costs, reference: reference, count: count, shift: m,
                                   into: BufferSink(base: $0))
        } ?? RowKernel.expSumAndDot(scores, costs: costs, reference: reference, count: count, shift: m,
                                    into: Discard<T>())
        let denominator = 1 + RowKernel.rest(total: total, row: PlainRow(scores: scores, count: count), shift: m)
        let excess = costScale * (dot / denominator)
        var risk = costScale * reference.asDouble + excess, quarterExcess = excess / 4
        if !excess.isFinite, total.isFinite {
            // Costs of both signs near the type's largest value: the differences c - c[a] (up to
            // twice it) or their sum overflowed, though R (within the scaled costs) is finite.
            // Again, in double and in units of 2^-shift that no sum of `count` terms can exceed.
            let shift = 2 + (Int.bitWidth - count.leadingZeroBitCount)
            let unitReference = scalbn(reference.asDouble, -shift)
            var unitDot = 0.0
            for j in 0..<count where scores[j] != -T.infinity {
                unitDot += exp(scores[j].asDouble - m.asDouble) * (scalbn(costs[j].asDouble, -shift) - unitReference)
            }
            let unitExcess = costScale * (unitDot / denominator)
            quarterExcess = scalbn(unitExcess, shift - 2)
            risk = scalbn(costScale * unitReference + unitExcess, shift)
        }
        if let gradient {
            RowKernel.riskGradient(UnsafePointer(gradient), costs: costs, count: count, reference: reference,
                                   factor: T(rounding: coefficient / denominator), alpha: T(rounding: costScale),
                                   quarterExcess: T(rounding: quarterExcess),
                                   into: gradient)
        }
        return risk
    }

    /// The risk under 0/1 costs, where every candidate but the gold costs 1: R = alpha S / (1 +
    /// rest) with S the sum of the others' exps. When the gold is the argmax (its exp exactly 1)
    /// S is the rest itself, which RowKernel.rest sums without the 1 when it is small; else S =
    /// total - e[g] loses nothing (the argmax's 1 is among the others). Never total - e[g] with a
    /// dominant gold: that cancels, and could leave R above alpha with gradient entries of the
    /// wrong sign.
    private func zeroOneExpectedCost(shift m: T, gradientTimes coefficient: Double) -> Double {
        let g = goldIndex
        let row = PlainRow(scores: scores, count: count)
        let total = gradient.map { RowKernel.expSum(row, shift: m, into: BufferSink(base: $0)) }
            ?? RowKernel.expSum(row, shift: m, into: Discard<T>())
        let rest = RowKernel.rest(total: total, row: row, shift: m)
        let atGold = Self.kernelExp(scores[g] - m).asDouble
        let denominator = 1 + rest
        let others = atGold == 1 ? rest : denominator - atGold
        let goldShare = atGold / denominator
        let risk = costScale * (others / denominator)
        if let gradient {
            // p[j] (alpha - R) = e[j] alpha p[g] / denominator off the gold (alpha - R itself would
            // cancel when R is near alpha); p[g] (0 - R) at the gold.
            let factor = T(rounding: coefficient * costScale * goldShare / denominator)
            if factor.isFinite {
                RowKernel.scale(UnsafePointer(gradient), by: factor, into: gradient, count: count)
            } else {
                // The weight times alpha overflows (T or double: inf, or inf * 0 = NaN under a
                // gold share of 0) where e[j] times the factor may not: the factor is applied as
                // its two parts, each finite (alpha p[g] / (1 + rest) <= alpha; the weight).
                RowKernel.scale(UnsafePointer(gradient), by: T(rounding: costScale * goldShare / denominator),
                                into: gradient, count: count)
                RowKernel.scale(UnsafePointer(gradient), by: T(rounding: coefficient), into: gradient, count: count)
            }
            gradient[g] = T(rounding: -coefficient * goldShare * risk)
        }
        return risk
    }

    /// F - H fused: a log-sum-exp keeps its exps in the gradient itself (a second one in
    /// scratch), and one pass turns them into the gradient.
    func fearMinusHope(fear: Term, hope: Term, coefficient: Double) -> Double {
        let fearKeepsExps: Bool
        if case .logSumExp = fear { fearKeepsExps = true } else { fearKeepsExps = false }
        var plainArgmax = -1  // found once for both terms when they need it
        let f = term(fear, store: gradient, plainArgmax: &plainArgmax)
        let h = term(hope, store: fearKeepsExps ? scratch : gradient, plainArgmax: &plainArgmax)
        if let gradient { writeGradient(gradient, f, h, coefficient) }
        let value = ((f.score - h.score) + (f.cost - h.cost)) + (f.logarithm - h.logarithm)
        if value.isFinite { return value }
        // A difference of two scores, or of two scaled costs, of opposite signs near the largest
        // value overflowed (or made inf - inf) where F - H need not: the same sums on halved
        // parts (exact at these magnitudes), doubled, are infinite only when F - H is.
        let half = ((f.score / 2 - h.score / 2) + (f.cost / 2 - h.cost / 2)) + (f.logarithm - h.logarithm) / 2
        return 2 * half
    }

    /// w (F - H) for a weight w < 1 where F - H itself is beyond the double range (scores and
    /// costs near +-DBL_MAX of opposite signs) but w (F - H) need not be: the halved parts of
    /// `fearMinusHope`'s fallback, times w, doubled. The gradient is not written.
    func weightedFearMinusHope(fear: Term, hope: Term, weight: Double) -> Double {
        var plainArgmax = -1
        let f = term(fear, store: nil, plainArgmax: &plainArgmax)
        let h = term(hope, store: nil, plainArgmax: &plainArgmax)
        let half = ((f.score / 2 - h.score / 2) + (f.cost / 2 - h.cost / 2)) + (f.logarithm - h.logarithm) / 2
        return 2 * (weight * half)
    }

    /// A term's value, split as `score + cost + logarithm` so that the difference of two terms
    /// near zero is formed from the large parts first (a candidate's score, then its scaled cost;
    /// the log1p of a log-sum-exp last), and what its gradient needs: a one-hot at a candidate,
    /// or the marginals.
    private struct TermValue {
        enum Gradient {
            case oneHot(Int)
            case marginals(FlatMarginals<T>)
        }
        var score: Double
        var cost: Double = 0
        var logarithm: Double = 0
        var gradient: Gradient
    }

    private func term(_ t: Term, store: UnsafeMutablePointer<T>?, plainArgmax: inout Int) -> TermValue {
        switch t {
        case .logSumExp(let a):
            let (score, cost, logarithm, marginals) = logSumExp(a, store: store, plainArgmax: &plainArgmax)
            return TermValue(score: score, cost: cost, logarithm: logarithm, gradient: .marginals(marginals))
        case .max(let a):
            // The value from the exact v[j] of the argmax (logSumExp above says why).
            let index = maximumWithIndex(a).index
            let (score, cost) = exactAugmented(index, a)
            return TermValue(score: score, cost: cost, gradient: .oneHot(index))
        case .gold:
            return TermValue(score: goldScore, gradient: .oneHot(goldIndex))
        case .oracle:
            let j = oracle()
            return TermValue(score: scores[j].asDouble, gradient: .oneHot(j))
        }
    }

    /// The oracle: the gold under 0/1 costs (if it is masked, every other candidate costs 1 and
    /// the highest score wins: the plain argmax, which cannot be the masked gold); else the
    /// candidate of lowest cost (`lowestCost`).
    private func oracle() -> Int {
        guard let costs else { return scores[goldIndex] == -.infinity ? survey.argmax : goldIndex }
        return Self.lowestCost(scores, costs, count: count)
    }

    /// The unmasked candidate of lowest cost, then highest score, then lowest index (DESIGN.md §2
    /// "Ties"): the oracle of a row, and the stand-in gold of a candidate list whose gold is -1.
    /// At least one candidate is unmasked and its costs are finite (validation).
    static func lowestCost(_ scores: UnsafePointer<T>, _ costs: UnsafePointer<T>, count: Int) -> Int {
        var best = -1
        for j in 0..<count where scores[j] != -T.infinity {
            if best < 0 || costs[j] < costs[best] || (costs[j] == costs[best] && scores[j] > scores[best]) {
                best = j
            }
        }
        return Swift.max(best, 0)
    }

    /// gradient = c (dF - dH), each term a one-hot or its exps (kept in the gradient, or in
    /// scratch for a second one) over 1 + rest. Where a one-hot meets the other term's argmax
    /// (its exp is exactly 1), p - 1 = -rest / (1 + rest) is written directly: the subtraction
    /// would lose every digit of a near-zero loss. It is read before the exps are scaled in place.
    private func writeGradient(_ gradient: UnsafeMutablePointer<T>, _ f: TermValue, _ h: TermValue,
                               _ c: Double) {
        func minusOne(_ m: FlatMarginals<T>, at j: Int) -> Double {
            let e = m.exps?[j] ?? 0
            return e == 1 ? -m.rest / m.denominator : e.asDouble / m.denominator - 1
        }
        switch (f.gradient, h.gradient) {
        case (.marginals(let fm), .marginals(let hm)):
            guard let hopeExps = hm.exps else { return poisonGradient() }  // no scratch: cannot happen
            // Where both terms are centred on the same candidate (both exps exactly 1), its entry
            // 1/(1 + rf) - 1/(1 + rh) is formed as (rh - rf) / ((1 + rf)(1 + rh)): the difference
            // of two probabilities near 1 would keep only their rounding (read before the pass).
            let j = fm.center
            let shared = j >= 0 && j == hm.center && gradient[j] == 1 && hopeExps[j] == 1
            RowKernel.combine(UnsafePointer(gradient), T(rounding: c / fm.denominator),
                              UnsafePointer(hopeExps), T(rounding: -c / hm.denominator), into: gradient, count: count)
            if shared { gradient[j] = T(rounding: c * ((hm.rest - fm.rest) / (fm.denominator * hm.denominator))) }
        case (.marginals(let fm), .oneHot(let t)):
            let atT = c * minusOne(fm, at: t)
            RowKernel.scale(UnsafePointer(gradient), by: T(rounding: c / fm.denominator), into: gradient, count: count)
            gradient[t] = T(rounding: atT)
        case (.oneHot(let a), .marginals(let hm)):
            let atA = -c * minusOne(hm, at: a)
            RowKernel.scale(UnsafePointer(gradient), by: T(rounding: -c / hm.denominator), into: gradient, count: count)
            gradient[a] = T(rounding: atA)
        case (.oneHot(let a), .oneHot(let t)):
            // e_a - e_t: exactly 0 when they are the same candidate (c - c, not round(c) - c).
            gradient.update(repeating: 0, count: count)
            if a != t {
                gradient[a] = T(rounding: c)
                gradient[t] = T(rounding: -c)
            }
        }
    }

    /// Validation's scan records a NaN score as a NaN max.
    var containsNaN: Bool { validated?.maximum.isNaN ?? false }

    func zeroGradient() { gradient?.update(repeating: 0, count: count) }

    func poisonGradient() { gradient?.update(repeating: .nan, count: count) }

}

// What the recipes that sum over the candidates one by one need (label smoothing, the square
// losses: Recipe.loss(onFlat:)), beyond the LossStructure primitives.
extension FlatCandidates {
    /// The gold's score s[gold].
    var goldScore: Double { scores[goldIndex].asDouble }

    /// K, the number of unmasked candidates (a screened example has no masked candidate).
    var unmaskedCount: Int { validated?.unmasked ?? count }

    /// One pass over the candidates: SETS (or, with `adding`, adds to) the gradient
    /// `2 half s[y] + constant` on the unmasked candidates — only the constant on the gold when
    /// `exceptGold`, 0 (or nothing) on masked ones — and returns the sum and the sum of squares
    /// of s[y] over the unmasked candidates, without the gold when `exceptGold`. The factor comes
    /// halved because 2 half can overflow where 2 half s[y] does not (a small s[y]).

    func scores(twice half: Double, plus constant: Double, exceptGold: Bool, adding: Bool)
        -> (sum: Double, sumOfSquares: Double)
    {
        let excluding = exceptGold ? goldIndex : -1
        guard let gradient else {
            return RowKernel.scores(scores, times: 0, plus: 0, excluding: excluding, adding: false,
                                    into: Discard<T>(), count: count)
        }
        let factor = T(rounding: 2 * half), halved = T(rounding: half)
        let sink = BufferSink(base: gradient)
        guard !factor.isFinite, halved.isFinite else {
            return RowKernel.scores(scores, times: factor, plus: T(rounding: constant),
                                    excluding: excluding, adding: adding, into: sink, count: count)
        }
        // 2 half overflows T: half s[y] added twice, so that a small s[y] (and the gold's 0)
        // gets its finite term rather than inf * s[y] or inf * 0 = NaN. A second pass, only here.
        let sums = RowKernel.scores(scores, times: halved, plus: T(rounding: constant),
                                    excluding: excluding, adding: adding, into: sink, count: count)
        _ = RowKernel.scores(scores, times: halved, plus: 0, excluding: excluding, adding: true,
                             into: sink, count: count)
        return sums
    }

    /// The mean of the unmasked scores summed as parts s[y] / K, for a sum of the scores that
    /// overflows; a scalar pass, taken only then. Kept within the lowest and highest score, where
    /// the mean is: the parts' roundings alone took K scores of DBL_MAX past DBL_MAX (+inf, and a
    /// loss of -inf where it is log K; found by fuzzing).
    func meanOfUnmaskedScores(_ k: Double) -> Double {
        var mean = 0.0, lowest = Double.infinity, highest = -Double.infinity
        for y in 0..<count where scores[y] != -.infinity {
            let v = scores[y].asDouble
            mean += v / k
            lowest = Swift.min(lowest, v)
            highest = Swift.max(highest, v)
        }
        return Swift.min(Swift.max(mean, lowest), highest)
    }

    /// SETS the gold's gradient to `value`.
    func setGoldGradient(_ value: Double) {
        gradient?[goldIndex] = T(rounding: value)
    }

    /// The gold's gradient as it stands (0 when no gradient is wanted).
    func goldGradient() -> Double { gradient?[goldIndex].asDouble ?? 0 }
}
