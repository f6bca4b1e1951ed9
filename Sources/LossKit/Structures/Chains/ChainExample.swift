#if canImport(Glibc)
import Glibc
#endif

/// One sequence of a linear chain: its candidates are every tag path, scored by the model and
/// the sequence's emissions, with a cost per position (or Hamming against the gold). Here: the
/// cost-augmented rows and the values of paths (the gold, the oracle, the best path under a
/// cost weight). Its conformance to `LossStructure` is in ChainExample+LossStructure.swift, its
/// gradient in ChainGradient.swift, its risk in ChainRisk.swift.
struct ChainExample<T: StorageFloat> {
    let model: ChainModel
    let emissions: UnsafePointer<T>   // length x tags
    let costs: UnsafePointer<T>?      // length x tags, or nil: Hamming against the gold
    let goldPath: UnsafePointer<Int32>
    let length: Int
    let costScale: Double
    let isNaN: Bool
    /// The gradient is computed in units of a power of two (Chains.gradientUnscale); stored times
    /// these two factors (1, 1 nearly always).
    let unscale: (Double, Double)
    let gradient: ChainGradient<T>
    let scratch: ChainScratch

    var tags: Int { model.tags }
    var stride: Int { model.stride }

    /// cost(gold, (t, y)) before cost_scale.
    @inline(__always) func unscaledCost(_ t: Int, _ y: Int) -> Double {
        if let costs { return costs[t * tags + y].asDouble }
        return Int32(y) == goldPath[t] ? 0 : 1
    }

    /// e[t, y] + a * cost_scale * cost(t, y) into scratch.augmented (masked tags stay -inf,
    /// their costs unread).
    ///
    /// With a cost (a != 0) each row is stored relative to its largest entry y*,
    ///     (e[t, y] - e[t, y*]) + w (c(t, y) - c(t, y*)),   w = a cost_scale,
    /// and the offset sum_t (e[t, y*] + w c(t, y*)) returned: every path moves by the offset, so
    /// argmaxes and marginals do not, but the rows keep the digits of the emissions' differences
    /// where w c dwarfs them (e + 1e38 c rounds every emission away; the differences of two wrong
    /// tags' equal costs are exactly 0). Values are then formed from s(path) and the cost
    /// (`pathValue`) or from log Z plus the offset.
    func augment(_ a: Double) -> (rows: UnsafePointer<Double>, offset: Double) {
        let w = a * costScale, S = stride
        if w == 0 {
            // The plain emissions, widened (a loop the compiler vectorises).
            for t in 0..<length {
                let row = scratch.augmented + t * S, e = emissions + t * tags
                for y in 0..<tags { row[y] = e[y].asDouble }
                for y in tags..<S { row[y] = -.infinity }
            }
            return (UnsafePointer(scratch.augmented), 0)
        }
        var offset = 0.0
        let c = scratch.work  // the row's costs (stride values)
        for t in 0..<length {
            let row = scratch.augmented + t * S, e = emissions + t * tags
            var top = -1, best = -Double.infinity, largest = (emission: 0.0, cost: 0.0)
            for y in 0..<tags {
                c[y] = e[y] == -T.infinity ? 0 : unscaledCost(t, y)
                let v = e[y] == -T.infinity ? -Double.infinity : e[y].asDouble + w * c[y]
                row[y] = v
                if v > best { best = v; top = y }
                if v > -.infinity {
                    largest.emission = Swift.max(largest.emission, e[y].asDouble.magnitude)
                    largest.cost = Swift.max(largest.cost, c[y].magnitude)
                }
            }
            // Where the scaled costs do not exceed the emissions, e + w c already keeps their
            // digits as well as the relative form would (an error of u (|e| + |w c|) <= 2u max|e|,
            // either way): the second pass is spent only on rows that need it.
            if top >= 0, w.magnitude * largest.cost > largest.emission {
                let e0 = e[top].asDouble, c0 = c[top]
                for y in 0..<tags {
                    row[y] = e[y] == -T.infinity ? -.infinity
                        : (e[y].asDouble - e0) + Self.scaledDifference(w, c[y], c0)
                }
                offset += e0 + w * c0
            }
            for y in tags..<S { row[y] = -.infinity }
        }
        return (UnsafePointer(scratch.augmented), offset)
    }

    /// w (c - reference) for two costs: the difference first (exact where the two are close),
    /// unless it overflows (costs of both signs near DBL_MAX under a small scale w): then the
    /// scaled costs' difference, which the path-score bound keeps finite.
    @inline(__always) static func scaledDifference(_ w: Double, _ c: Double, _ reference: Double) -> Double {
        let difference = c - reference
        return difference.isFinite ? w * difference : w * c - w * reference
    }

    /// cost_scale (c(t, y) - reference), as `scaledDifference`.
    @inline(__always) func centredCost(_ t: Int, _ y: Int, _ reference: Double) -> Double {
        Self.scaledDifference(costScale, unscaledCost(t, y), reference)
    }

    /// w times the cost of a path, sum_t w c(t, path[t]): the scaled costs, which the path-score
    /// bound keeps finite, are summed (the unscaled sum may overflow). 0, and no cost read, when
    /// w = 0.
    func pathCost(_ path: UnsafePointer<Int32>, times w: Double) -> Double {
        guard w != 0 else { return 0 }
        var total = 0.0
        for t in 0..<length { total += w * unscaledCost(t, Int(path[t])) }
        return total
    }

    /// (a - b) cost_scale c(path), the cost part of two terms' difference on one path: one
    /// product per position, unless (a - b) cost_scale overflows (weights of opposite signs and a
    /// cost_scale near DBL_MAX, which the path-score bound admits only where the costs read are
    /// 0 or tiny): then the two terms' scaled path costs, each finite under the bound, subtracted.
    func pathCost(_ path: UnsafePointer<Int32>, weights a: Double, minus b: Double) -> Double {
        let w = (a - b) * costScale
        return w.isFinite ? pathCost(path, times: w)
                          : pathCost(path, times: a * costScale) - pathCost(path, times: b * costScale)
    }

    /// s(path) + a cost_scale c(path): a path's cost-augmented value, from the plain scores (so
    /// that two terms on the same path differ by exactly their costs' part).
    func pathValue(_ path: UnsafePointer<Int32>, _ a: Double) -> Double {
        let s = ChainPaths.pathScore(model, emissions: emissions, rowStride: tags, length: length, path: path)
        let w = a * costScale
        return w == 0 ? s : s + pathCost(path, times: w)
    }

    /// Viterbi on s + a c into `path` (on rows shifted by their max: ChainPaths.viterbiOnShiftedRows);
    /// a tie with the gold path goes to the gold.
    func bestPath(_ a: Double, into path: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        _ = augment(a)
        let best = ChainPaths.viterbiOnShiftedRows(model, rows: scratch.augmented, length: length, scratch: scratch,
                                                   path: path)
        let e = UnsafePointer(scratch.augmented)
        if ChainPaths.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath) == best {
            return (pathValue(goldPath, a), goldPath)
        }
        return (pathValue(path, a), UnsafePointer(path))
    }

    func oraclePath(into path: UnsafeMutablePointer<Int32>) -> (score: Double, path: UnsafePointer<Int32>) {
        let (e, _) = augment(0)
        // Hamming cost: the gold path costs 0 and every other path more, so it is the oracle
        // unless it is forbidden.
        if costs == nil, ChainPaths.forbiddenStep(model, emissions: emissions, length: length, path: goldPath) == nil {
            let score = ChainPaths.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath)
            return (score, goldPath)
        }
        for t in 0..<length { for y in 0..<tags { scratch.cost[t * stride + y] = unscaledCost(t, y) } }
        // Validation leaves an allowed path whose score is finite (ChainCall.checkPathBound); were
        // there none, the path would be unwritten: NaN, never a read through stale tags.
        // On rows shifted by their max, as bestPath (the ties of cost compare the scores' digits);
        // the score is then the path's own sum of the inputs.
        _ = LogSpaceChain.shiftRows(e, length: length, stride: stride, into: scratch.augmented)
        guard ChainPaths.oracle(model, emissions: e, cost: scratch.cost, length: length, totalCost: scratch.delta,
                                score: scratch.forwardCost, pointers: scratch.pointers, path: path)
        else { return (.nan, goldPath) }
        return (ChainPaths.pathScore(model, emissions: emissions, rowStride: tags, length: length, path: path),
                UnsafePointer(path))
    }

    /// The path a gold, oracle or max term names (into `buffer`), and its value: s(path), or
    /// s(path) + a c(path) for a max term.
    func pathTerm(_ term: Term, buffer: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        switch term {
        case .gold:
            let score = ChainPaths.pathScore(model, emissions: emissions, rowStride: tags, length: length,
                                             path: goldPath)
            return (score, goldPath)
        case .oracle:
            let (score, path) = oraclePath(into: buffer)
            return (score, path)
        case .max(let a):
            return bestPath(a, into: buffer)
        case .logSumExp:
            return (.nan, goldPath)  // not a path term
        }
    }
}
