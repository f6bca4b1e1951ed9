/// The value checks every structure with flat candidates (dense rows, candidate lists) runs
/// on each example it reads, in one vectorised scan that also keeps what the computing pass
/// reuses (RowSurvey).
enum FlatValidation {
    /// What the checks of a call's rows need from its options, derived from the recipe once:
    /// which checks apply and what the scan must keep for the computing pass.
    struct Checks<T: StorageFloat> {
        /// cost_scale times the largest term scale when costs are read, else 0: a read cost times
        /// this, added to a score, must stay finite in T.
        let costBound: Double
        /// The fear term's cost weight in T, whose cost-augmented max the scan of the costs keeps.
        let fearWeight: T
        /// A masked gold is an error (the loss uses the gold score).
        let goldScoreIsRead: Bool
        /// What the scan of the scores keeps besides their max (the computing pass reuses it).
        let keepsArgmax: Bool
        let keepsUnmaskedCount: Bool

        init(_ options: Options) {
            let recipe = options.recipe
            costBound = recipe.readsCosts ? options.costScale * recipe.costFactor : 0
            fearWeight = T(rounding: recipe.fearWeight * options.costScale)
            goldScoreIsRead = recipe.usesGoldScore
            keepsArgmax = recipe.needsArgmax
            keepsUnmaskedCount = recipe.needsUnmaskedCount
        }
    }

    /// The value checks of one row of flat candidates (a dense row or a candidate list): no +inf
    /// score, at least one unmasked candidate, an unmasked gold when the loss reads the gold
    /// score (`gold` nil: no gold is read, as when the oracle stands in for it), and finite costs
    /// for the unmasked candidates when costs are read, which stay finite when multiplied by
    /// `costBound` and added to the score. Returns what the scan learnt of the scores.
    static func check<T: StorageFloat>(
        _ scores: UnsafePointer<T>, count: Int, gold: Int?, costs: UnsafePointer<T>?, _ checks: Checks<T>,
        names: RowNames
    ) throws(Failure) -> RowSurvey<T> {
        let costBound = checks.costBound, fearWeight = checks.fearWeight, needsArgmax = checks.keepsArgmax
        let (maximum, index, unmasked, hasNaN) = switch (needsArgmax, checks.keepsUnmaskedCount) {
        case (false, false): RowKernel.survey(scores, count: count, SurveyMaximum.self)
        case (true, false): RowKernel.survey(scores, count: count, SurveyArgmax.self)
        case (false, true): RowKernel.survey(scores, count: count, SurveyUnmasked.self)
        case (true, true): RowKernel.survey(scores, count: count, SurveyAll.self)
        }
        if maximum == T.infinity || hasNaN {
            // The slow path names the first +inf (a NaN row may hide one from the max).
            for j in 0..<count where scores[j] == T.infinity {
                throw .domain("\(names.score(j)) = inf: +inf is not a valid score (-inf masks a candidate)")
            }
        }
        if maximum == -T.infinity, !hasNaN {
            throw .domain("example \(names.example) has every candidate masked (-inf scores)")
        }
        if checks.goldScoreIsRead, let gold, scores[gold] == -T.infinity {
            throw .domain("\(names.score(gold)) = -inf masks the gold of example \(names.example), but this loss uses "
                          + "the gold score")
        }
        // Costs that are read must be finite; with costBound > 0, a score plus its scaled cost
        // must stay finite too, checked per candidate only when the largest score and the
        // largest scaled cost together could overflow.
        var largestCost = 1.0  // 0/1 costs
        var augmented: T? = nil
        if let costs {
            let (largest, nonFinite, augmentedMaximum) = RowKernel.costSurvey(costs, scores: scores, count: count,
                                                                                weight: fearWeight)
            largestCost = largest.asDouble
            augmented = augmentedMaximum
            if nonFinite {
                for j in 0..<count where scores[j] != -T.infinity && !costs[j].isFinite {
                    throw .domain("\(names.cost(j)) = \(describe(costs[j])) is not finite (read for example "
                                  + "\(names.example))")
                }
            }
        }
        if costBound > 0 {
            if overflows(T.greatestFiniteMagnitude.asDouble + costBound * largestCost, T.self) {
                for j in 0..<count where scores[j] != -T.infinity {
                    let s = scores[j].asDouble.magnitude
                    let c = costs.map { $0[j].asDouble.magnitude } ?? 1
                    guard !overflows(s + costBound * c, T.self) else {  // NaN scores pass
                        if let costs {
                            throw .domain("\(names.cost(j)) = \(describe(costs[j])) overflows when scaled by "
                                          + "cost_scale and the term scales (\(costBound)) and added to the score")
                        }
                        throw .domain("\(names.score(j)) = \(describe(scores[j])) overflows when the scaled 0/1 cost "
                                      + "(\(costBound)) is added")
                    }
                }
            }
        }
        return RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: needsArgmax ? index : -1, unmasked: unmasked,
                         fearWeight: fearWeight, fearMaximum: hasNaN ? nil : augmented, largestCost: largestCost)
    }
}

extension FlatValidation {
    /// Chunks whose rows (lists) hold fewer values than this on average are screened; longer
    /// ones are checked row by row, for the survey the computing pass then reuses (one pass
    /// fewer over each row). Where the two cost the same (measured: bench/README.md).
    static let screenedLength = 512

    /// Whether a stretch of flat candidates — consecutive lists or rows that are read — passes
    /// every value check of `check` whatever their boundaries: no score is NaN or infinite (so
    /// no candidate is masked, no list wholly masked, no gold masked), and, with `costs`, no
    /// cost is NaN or infinite and `costBound` times the largest cost (1 for 0/1 costs) added
    /// to any score stays finite in T. One vector pass, nothing per list: when it says false,
    /// the caller runs `check` list by list, for the exact verdict and message.
    static func screen<T: StorageFloat>(_ scores: UnsafePointer<T>, costs: UnsafePointer<T>?, count: Int,
                                costBound: Double) -> Bool {
        let w = T.laneCount
        let magnitudeMask = T.Bits(repeating: T.Bits.Scalar.max)  // the sign bit cleared
        let infinityBits = T.bits(T.Vector(repeating: .infinity))
        let shift = T.Bits(repeating: T.Bits.Scalar(T.Bits.Scalar.bitWidth - 1))
        // All ones where |x| >= +inf as integers: infinite or NaN.
        @inline(__always) func nonFinite(_ magnitude: T.Bits) -> T.Bits { ~((magnitude &- infinityBits) &>> shift) }
        var bad = T.Bits(repeating: 0)
        var i = 0
        while i + w <= count {
            bad |= nonFinite(T.bits(loadVector(scores, i)) & magnitudeMask)
            i += w
        }
        for j in i..<count where !scores[j].isFinite { return false }
        // Costs are read only when no candidate is masked (the costs of masked ones are not).
        guard horizontalIntegerSum(bad) == 0 else { return false }
        var largest = T.Vector(repeating: 0)
        if let costs {
            i = 0
            while i + w <= count {
                let magnitude = T.bits(loadVector(costs, i)) & magnitudeMask
                bad |= nonFinite(magnitude)
                largest = T.maximum(largest, T.vector(magnitude))
                i += w
            }
            for j in i..<count {
                guard costs[j].isFinite else { return false }
                largest[0] = Swift.max(largest[0], costs[j].magnitude)
            }
        }
        guard horizontalIntegerSum(bad) == 0 else { return false }
        guard costBound > 0 else { return true }
        let largestCost = costs == nil ? 1 : T.maxOfLanes(largest).asDouble
        return !overflows(T.greatestFiniteMagnitude.asDouble + costBound * largestCost, T.self)
    }

    /// Whether `screen` passes on every maximal run of consecutive examples of `examples` that
    /// are read (`isRead`): `run` screens the candidates of one such run. Examples that are not
    /// read (ignored, zero weight) split the runs and are not touched.
    static func screenRuns(_ examples: Range<Int>, isRead: (Int) -> Bool, _ run: (Range<Int>) -> Bool) -> Bool {
        var i = examples.lowerBound
        while i < examples.upperBound {
            guard isRead(i) else { i += 1; continue }
            var end = i + 1
            while end < examples.upperBound, isRead(end) { end += 1 }
            guard run(i..<end) else { return false }
            i = end
        }
        return true
    }

    /// Whether `x` (a magnitude, formed in double) is infinite once rounded to T: a score plus
    /// its scaled cost is computed in the input type.
    @inline(__always) static func overflows<T: StorageFloat>(_ x: Double, _: T.Type) -> Bool {
        T(rounding: x).isInfinite
    }
}

/// How messages name candidate j of an example: `scores[row, j]` / `cost[row, j]` in a dense
/// row, `scores[offset + j]` / `cost[offset + j]` in a candidate list. Built only when a check
/// fails.
struct RowNames {
    enum Layout {
        case dense(scoreRow: Int, costRow: Int)
        case list(offset: Int)
    }
    let example: Int
    let layout: Layout

    func score(_ j: Int) -> String { name("scores", j) }
    func cost(_ j: Int) -> String { name("cost", j) }

    private func name(_ buffer: String, _ j: Int) -> String {
        switch layout {
        case .dense(let scoreRow, let costRow): return "\(buffer)[\(buffer == "cost" ? costRow : scoreRow), \(j)]"
        case .list(let offset): return "\(buffer)[\(offset + j)] (candidate \(j) of example \(example))"
        }
    }
}
