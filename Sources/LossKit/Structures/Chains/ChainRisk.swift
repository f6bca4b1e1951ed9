/// The risk of a chain example, R = sum_y p(y) c(y) over its paths, with the first-order
/// expectation semiring (Li & Eisner 2009): besides the forward-backward tables, the expected
/// cost of the prefixes (`ahead`) and of the suffixes (`behind`) through each node, so that
/// E[c | y_t = y] = ahead + behind and dR/d(feature) = E[c 1{feature}] - R E[1{feature}].
///
/// Written once over the two forms of the tables (RiskTables: scaled or in log space), which
/// supply the node and edge weights and the two recursions in their own arithmetic.
extension ChainExample {
    func expectedCost(gradientTimes c: Double) -> Double {
        zeroGradient()
        let (rows, _) = augment(0)
        let tables = ChainTables.compute(model, rows: rows, length: length, scratch: scratch)
        if tables.isScaled { return expectedCost(on: ScaledRiskTables(model: model, scratch: scratch), times: c) }
        return expectedCost(on: LogSpaceRiskTables(model: model, scratch: scratch), times: c)
    }

    /// The risk, its gradient added times c (into a zeroed gradient).
    private func expectedCost<Tables: RiskTables>(on tables: Tables, times c: Double) -> Double {
        let L = tags, S = stride
        let cost = scratch.cost, ahead = scratch.forwardCost, behind = scratch.backwardCost
        let u = scratch.work, w = scratch.work + S, row = scratch.work + 2 * S
        // The costs centred position by position (referenceCost). The padding of every row holds
        // 0 (costs, expectations) or -inf (log-weights): it adds nothing and never makes a NaN.
        var shift = 0.0
        for t in 0..<length {
            let reference = referenceCost(t) { y in tables.weight(t, y) }
            shift += costScale * reference
            for y in 0..<S {
                cost[t * S + y] = y < L && tables.readsCost(t, y) ? centredCost(t, y, reference) : 0
                ahead[t * S + y] = 0
                behind[t * S + y] = 0
            }
        }
        for y in 0..<L { ahead[y] = cost[y] }
        for t in 1..<Swift.max(length, 1) { tables.stepAhead(t, ahead: ahead, cost: cost, work: (u, w, row)) }
        var t = length - 2
        while t >= 0 {
            tables.stepBehind(t, behind: behind, cost: cost, work: (u, w, row))
            t -= 1
        }
        let risk = tables.expectationAtStart { y in ahead[y] + behind[y] }
        for t in 0..<length {
            let z = tables.normaliser(t)
            addRiskNodes(t, times: c, mu: { y in tables.marginal(t, y, z) },
                         expected: { y in ahead[t * S + y] + behind[t * S + y] })
            guard t > 0, let d = gradient.transitions else { continue }
            // xi(from, y) (ahead[t-1][from] + cost[t][y] + behind[t][y] - risk), a row at a time.
            tables.edgeColumns(t, z, into: u)
            for y in 0..<S { w[y] = y < L ? cost[t * S + y] + behind[t * S + y] - risk : 0 }
            for from in 0..<L {
                guard tables.edgeRow(t, from: from, z, columns: UnsafePointer(u), into: row) else { continue }
                TagVectors.addScaled(d + from * S, c, UnsafePointer(row), times: ahead[(t - 1) * S + from],
                                     plus: UnsafePointer(w), count: S)
            }
        }
        return shift + risk
    }

    /// The cost at position t of the tag of largest marginal (`weight` is increasing in it): the
    /// risk programs run on the costs minus it, position by position. Subtracting a constant per
    /// position moves R and every E[c | y_t = y] by the same amount and leaves the gradient
    /// p (E[c | .] - R) unchanged — but where one path dominates, its centred costs are 0 and
    /// E[c | .] - R is formed from small numbers instead of cancelling between two near the
    /// dominant path's cost (which left noise of an ulp of R, of either sign, in the gradient),
    /// and R never exceeds the largest cost (a convex combination of centred costs <= 0 is <= 0).
    @inline(__always) private func referenceCost(_ t: Int, weight: (Int) -> Double) -> Double {
        var best = 0, top = -Double.infinity
        for y in 0..<tags where weight(y) > top { top = weight(y); best = y }
        return unscaledCost(t, best)
    }

    /// Adds c mu(y) (E(y) - R) to the node gradients of position t (emissions; start at 0, end
    /// at the last), mu the marginals and E(y) = E[c | y_t = y]. With y^ the tag of largest mu,
    ///     E(y^) - R = sum_{y != y^} mu(y) (E(y^) - E(y)) =: D,    E(y) - R = (E(y) - E(y^)) + D,
    /// an identity that forms the dominant tag's entry from the others' small weights: E(y^) - R
    /// as a difference would cancel (both near the dominant paths' expected cost) into noise of
    /// an ulp of R, of either sign, where the exact value is far smaller.
    @inline(__always) private func addRiskNodes(_ t: Int, times c: Double, mu: (Int) -> Double,
                                                expected: (Int) -> Double) {
        var top = 0, best = -1.0
        for y in 0..<tags { let m = mu(y); if m > best { best = m; top = y } }
        let dominant = expected(top)
        var d = 0.0
        for y in 0..<tags where y != top {
            let m = mu(y)
            if m > 0 { d += m * (dominant - expected(y)) }
        }
        for y in 0..<tags {
            let m = mu(y)
            guard m > 0 else { continue }
            let g = c * m * (y == top ? d : (expected(y) - dominant) + d)
            gradient.emissions?[t * stride + y] += g
            if t == 0 { gradient.start?[y] += g }
            if t == length - 1 { gradient.end?[y] += g }
        }
    }
}

/// What the risk reads from the current forward-backward tables (ChainTables), in the tables'
/// own form: the scaled and the log-space forms below are the deliberate pair.
private protocol RiskTables {
    /// What normalises the marginals of one position.
    associatedtype Normaliser
    /// Increasing in the marginal of tag y at position t (it picks the reference cost).
    func weight(_ t: Int, _ y: Int) -> Double
    /// Whether the cost of tag y at position t is read (the tag is not forbidden).
    func readsCost(_ t: Int, _ y: Int) -> Bool
    /// ahead[t] from ahead[t - 1]: ahead[t][y] = sum_from P(from at t-1 | y at t) ahead[t-1][from]
    /// + cost[t][y].
    func stepAhead(_ t: Int, ahead: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                   work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>))
    /// behind[t] from behind[t + 1]: behind[t][y] = sum_to P(to at t+1 | y at t)
    /// (cost[t+1][to] + behind[t+1][to]).
    func stepBehind(_ t: Int, behind: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                    work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>))
    /// sum_y mu[0](y) expected(y): the expected cost R.
    func expectationAtStart(_ expected: (Int) -> Double) -> Double
    func normaliser(_ t: Int) -> Normaliser
    /// mu[t](y), the marginal of tag y at position t.
    func marginal(_ t: Int, _ y: Int, _ z: Normaliser) -> Double
    /// The factors of the edge marginals of position t that depend on the tag at t, into
    /// `columns` (stride values).
    func edgeColumns(_ t: Int, _ z: Normaliser, into columns: UnsafeMutablePointer<Double>)
    /// xi[t](from, .), the edge marginals out of `from`, into `row`; false (row unwritten) when
    /// `from` is unreachable at t - 1.
    func edgeRow(_ t: Int, from: Int, _ z: Normaliser, columns: UnsafePointer<Double>,
                 into row: UnsafeMutablePointer<Double>) -> Bool
}

/// The scaled tables (ScaledChain): mu[t](y) = a[t](y) b[t](y) / sum_y a[t](y) b[t](y), and the
/// expectation semiring's weights
///   forward:  w(y', y) = a[t-1](y') E(y', y) psi[t](y) / (norm[t] a[t](y))
///   backward: w(y, y'') = E(y, y'') psi[t+1](y'') b[t+1](y'') / (backNorm[t] b[t](y))
/// so that both recursions are products with E (or its transpose), no exp per edge.
private struct ScaledRiskTables: RiskTables {
    let alpha, beta, psi, norms, backNorms: UnsafeMutablePointer<Double>
    let model: ChainModel

    init(model: ChainModel, scratch s: ChainScratch) {
        (alpha, beta, psi, norms, backNorms, self.model) = (s.alpha, s.beta, s.psi, s.norms, s.backNorms, model)
    }

    @inline(__always) func weight(_ t: Int, _ y: Int) -> Double {
        alpha[t * model.stride + y] * beta[t * model.stride + y]
    }

    @inline(__always) func readsCost(_ t: Int, _ y: Int) -> Bool { alpha[t * model.stride + y] > 0 }

    func stepAhead(_ t: Int, ahead: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                   work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)) {
        let L = model.tags, S = model.stride, (u, _, row) = work
        for y in 0..<S { u[y] = alpha[(t - 1) * S + y] * ahead[(t - 1) * S + y] }
        TagVectors.combineRows(UnsafePointer(u), rows: L, model.expTransitions, into: row, count: S)
        let inverse = 1 / norms[t]
        for y in 0..<L where alpha[t * S + y] > 0 {
            ahead[t * S + y] = row[y] * psi[t * S + y] * inverse / alpha[t * S + y] + cost[t * S + y]
        }
    }

    func stepBehind(_ t: Int, behind: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                    work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)) {
        let L = model.tags, S = model.stride, (u, _, row) = work
        for y in 0..<S {
            u[y] = psi[(t + 1) * S + y] * beta[(t + 1) * S + y] * (cost[(t + 1) * S + y] + behind[(t + 1) * S + y])
        }
        TagVectors.combineRows(UnsafePointer(u), rows: L, model.expTransitionsTransposed, into: row, count: S)
        let inverse = 1 / backNorms[t]
        for y in 0..<L where beta[t * S + y] > 0 { behind[t * S + y] = row[y] * inverse / beta[t * S + y] }
    }

    func expectationAtStart(_ expected: (Int) -> Double) -> Double {
        let L = model.tags
        var z0 = 0.0, risk = 0.0
        for y in 0..<L { z0 += alpha[y] * beta[y] }
        for y in 0..<L where alpha[y] * beta[y] > 0 { risk += alpha[y] * beta[y] / z0 * expected(y) }
        return risk
    }

    /// The inverse of the position's sum of a b.
    func normaliser(_ t: Int) -> Double {
        let S = model.stride
        var z = 0.0
        for y in 0..<model.tags { z += alpha[t * S + y] * beta[t * S + y] }
        return 1 / z
    }

    @inline(__always) func marginal(_ t: Int, _ y: Int, _ inverse: Double) -> Double {
        alpha[t * model.stride + y] * beta[t * model.stride + y] * inverse
    }

    /// psi[t] b[t] / (norm[t] z): xi(from, .) = a[t-1](from) E[from] * these.
    func edgeColumns(_ t: Int, _ inverse: Double, into u: UnsafeMutablePointer<Double>) {
        let S = model.stride
        let scale = inverse / norms[t]
        for y in 0..<S { u[y] = psi[t * S + y] * beta[t * S + y] * scale }
    }

    @inline(__always) func edgeRow(_ t: Int, from: Int, _ inverse: Double, columns u: UnsafePointer<Double>,
                                   into row: UnsafeMutablePointer<Double>) -> Bool {
        let S = model.stride
        guard alpha[(t - 1) * S + from] > 0 else { return false }
        let a = alpha[(t - 1) * S + from], e = model.expTransitions + from * S
        for y in 0..<S { row[y] = a * e[y] * u[y] }
        return true
    }
}

/// The log-space tables (LogSpaceChain), on the rows shifted by their max (e, in psi): each
/// position normalised by its own log Z (LogSpaceChain.positionLogZ), the recursions' weights
/// taken as exps of log-weights.
private struct LogSpaceRiskTables: RiskTables {
    let alpha, beta, e: UnsafeMutablePointer<Double>
    let model: ChainModel

    init(model: ChainModel, scratch s: ChainScratch) {
        (alpha, beta, e, self.model) = (s.alpha, s.beta, s.psi, model)
    }

    @inline(__always) func weight(_ t: Int, _ y: Int) -> Double {
        alpha[t * model.stride + y] + beta[t * model.stride + y]
    }

    @inline(__always) func readsCost(_ t: Int, _ y: Int) -> Bool { e[t * model.stride + y] > -.infinity }

    /// ahead[t][y] = sum_from exp(alpha[t-1][from] + trans[from][y] + e[t][y] - alpha[t][y])
    ///               * ahead[t-1][from] + cost[t][y]   (the weights sum to 1 over from)
    func stepAhead(_ t: Int, ahead: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                   work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)) {
        let L = model.tags, S = model.stride, (u, _, row) = work
        for y in 0..<S { u[y] = y < L && alpha[t * S + y] > -.infinity ? e[t * S + y] - alpha[t * S + y] : -.infinity }
        for from in 0..<L where alpha[(t - 1) * S + from] > -.infinity {
            _ = TagVectors.exps(alpha[(t - 1) * S + from], model.transitions + from * S, UnsafePointer(u), into: row,
                                count: S)
            TagVectors.addScaled(ahead + t * S, ahead[(t - 1) * S + from], UnsafePointer(row), count: S)
        }
        for y in 0..<L { ahead[t * S + y] += cost[t * S + y] }
    }

    /// behind[t][y] = sum_to exp(trans[y][to] + e[t+1][to] + beta[t+1][to] - beta[t][y])
    ///                * (cost[t+1][to] + behind[t+1][to])
    func stepBehind(_ t: Int, behind: UnsafeMutablePointer<Double>, cost: UnsafePointer<Double>,
                    work: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>)) {
        let L = model.tags, S = model.stride, (u, w, row) = work
        TagVectors.add(e + (t + 1) * S, beta + (t + 1) * S, into: u, count: S)
        TagVectors.add(cost + (t + 1) * S, behind + (t + 1) * S, into: w, count: S)
        for y in 0..<L {
            let here = beta[t * S + y]
            guard here > -.infinity else { continue }
            _ = TagVectors.exps(-here, model.transitions + y * S, UnsafePointer(u), into: row, count: S)
            behind[t * S + y] = TagVectors.dot(UnsafePointer(row), UnsafePointer(w), count: S)
        }
    }

    func expectationAtStart(_ expected: (Int) -> Double) -> Double {
        var risk = 0.0
        let z0 = LogSpaceChain.positionLogZ(alpha, beta, count: model.tags)
        for y in 0..<model.tags {
            let mu = LogSpaceChain.marginal(alpha[y], beta[y], z0)
            if mu > 0 { risk += mu * expected(y) }
        }
        return risk
    }

    func normaliser(_ t: Int) -> (shift: Double, top: Double, rest: Double) {
        LogSpaceChain.positionLogZ(alpha + t * model.stride, beta + t * model.stride, count: model.tags)
    }

    @inline(__always) func marginal(_ t: Int, _ y: Int, _ z: (shift: Double, top: Double, rest: Double)) -> Double {
        LogSpaceChain.marginal(alpha[t * model.stride + y], beta[t * model.stride + y], z)
    }

    /// e[t] + beta[t]: xi(from, y) = exp(alpha[t-1][from] - log Z + trans[from][y] + these).
    func edgeColumns(_ t: Int, _ z: (shift: Double, top: Double, rest: Double),
                     into u: UnsafeMutablePointer<Double>) {
        let S = model.stride
        TagVectors.add(e + t * S, beta + t * S, into: u, count: S)
    }

    @inline(__always) func edgeRow(_ t: Int, from: Int, _ z: (shift: Double, top: Double, rest: Double),
                                   columns u: UnsafePointer<Double>, into row: UnsafeMutablePointer<Double>) -> Bool {
        let S = model.stride
        guard alpha[(t - 1) * S + from] > -.infinity else { return false }
        let a = ((alpha[(t - 1) * S + from] - z.shift) - z.top) - z.rest
        _ = TagVectors.exps(a, model.transitions + from * S, u, into: row, count: S)
        return true
    }
}
