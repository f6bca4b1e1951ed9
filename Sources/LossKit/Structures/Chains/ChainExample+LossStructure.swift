#if canImport(Glibc)
import Glibc
#endif

/// A chain example as a `LossStructure`: what the recipes call is the fused fear - hope below
/// (path terms by Viterbi, log-sum-exp terms by one forward-backward each, whose tables
/// (ChainTables) give the marginals) and the risk (ChainRisk.swift).
extension ChainExample: LossStructure {
    /// log Z over s + a c, from the tables of one forward-backward (left current for the
    /// marginals).
    func logSumExp(costWeight a: Double) -> (shift: Double, rest: Double, marginals: ChainTables) {
        let (rows, augmentOffset) = augment(a)
        let tables = ChainTables.compute(model, rows: rows, length: length, scratch: scratch)
        return (tables.logZ(plus: augmentOffset), 0, tables)
    }

    var containsNaN: Bool { isNaN }

    /// F - H, one term at a time: path terms first (they use the Viterbi tables), then a
    /// log-sum-exp, whose marginals are added while its tables are current. A log-sum-exp fear
    /// against a path hope is written lse - s(path) = (v(path) - H) + log1p(exp(lse_off - v(path)))
    /// near zero, and its gradient as marginals minus the path's one-hot without subtracting 1.
    func fearMinusHope(fear: Term, hope: Term, coefficient c: Double) -> Double {
        zeroGradient()
        switch (fear, hope) {
        case (.logSumExp(let a), .logSumExp(let b)):
            // Split form, as dense rows do: both terms taken relative to one path P,
            //     lse(v+) - lse(v-) = (a - b) cost_scale c(P) + (lse(v+) - v+(P)) - (lse(v-) - v-(P)),
            // an identity for any allowed P, each part formed row by row (logZMinusPath), and
            // lse(v) - v(P) = log1p(A), A = sum_{y != P} exp(v(y) - v(P)), where P dominates.
            // P is the fear's most likely tag at each position (the dominant path, where there
            // is one), else the gold: the plain difference of two log Z near the scores'
            // magnitude would keep only the digits of their rounding (a soft ramp of 8.9e-15
            // came out as 1.4e-14; at |s| ~ 90, 30 times the error the inputs allow).
            let (fearLogZ, _, fearTables) = logSumExp(costWeight: a)
            guard let path = referencePath(fearTables) else {
                addMarginals(fearTables, minus: nil, times: c)
                return fearLogZ - term(hope, buffer: scratch.paths.1, sign: -c)
            }
            let (fearRest, fearNearZero) = restAgainst(fearTables, path)
            addMarginals(fearTables, minus: fearNearZero ? path : nil, times: c)
            let (_, _, hopeTables) = logSumExp(costWeight: b)
            let (hopeRest, hopeNearZero) = restAgainst(hopeTables, path)
            addMarginals(hopeTables, minus: hopeNearZero ? path : nil, times: -c)
            // A near-zero term's marginals were added as p - e_P (P's entries formed from the
            // others' mass): the e_P it owes, which cancel exactly when both terms are.
            let pending = (fearNearZero ? c : 0) - (hopeNearZero ? c : 0)
            if pending != 0 { addOneHot(path, times: pending) }
            let gap = pathCost(path, weights: a, minus: b)
            return gap + (fearRest - hopeRest)
        case (.logSumExp(let a), _):
            let (_, path) = pathTerm(hope, buffer: scratch.paths.1)
            let (_, _, tables) = logSumExp(costWeight: a)
            // v(path) - H exactly: the path's cost times the difference of the two cost weights
            // (H = s(path) for a gold or oracle hope, s(path) - h c(path) for a max hope).
            let aboveHope = pathCost(path, weights: a, minus: costWeight(hope))
            let (rest, _) = restAgainst(tables, path)
            splitGradient(tables, path: path, pathSign: -c)
            return aboveHope + rest
        case (_, .logSumExp(let b)):
            // A path fear against a log-sum-exp hope, split against the fear's path P:
            //     v+(P) - lse(v-) = (a - b) cost_scale c(P) - (lse(v-) - v-(P)),
            // the second part log1p of the other paths' mass where P dominates; the plain
            // difference of the two terms near the scores' magnitude kept only its rounding.
            let (_, path) = pathTerm(fear, buffer: scratch.paths.1)
            let (_, _, tables) = logSumExp(costWeight: b)
            let (rest, _) = restAgainst(tables, path)
            splitGradient(tables, path: path, pathSign: c)
            return pathCost(path, weights: costWeight(fear), minus: b) - rest
        default:
            // Two paths: F - H = (a c(P) - b c(Q)) cost_scale + (s(P) - s(Q)), the score
            // difference summed over the positions where the paths differ only.
            let (_, p) = pathTerm(fear, buffer: scratch.paths.0)
            let (_, q) = pathTerm(hope, buffer: scratch.paths.1)
            addOneHot(p, times: c)
            addOneHot(q, times: -c)
            // Costs are read only by a term that weighs them (an unread cost may be anything).
            let (a, b) = (costWeight(fear) * costScale, costWeight(hope) * costScale)
            let costs = pathCost(p, times: a) - pathCost(q, times: b)
            return costs + pathDifference(p, q)
        }
    }

    /// pathSign (e_path - p), p the current tables' marginals, as pathSign (e_path - e_Q) -
    /// pathSign (p - e_Q) with Q the tables' dominant path (referencePath; else `path`): the
    /// one-hots first (integers: where the paths share an entry they cancel exactly), then
    /// p - e_Q with Q's entries formed from the others' mass. Where the log-sum-exp's mass sits
    /// on another path than `path`, e_path - p near Q's entries is a difference of two masses
    /// near 1 (a cost_scale of 1000 left -2.2e-16 in an entry of 1e-300).
    private func splitGradient(_ m: ChainTables, path: UnsafePointer<Int32>, pathSign c: Double) {
        let q = referencePath(m) ?? path
        if q != path {
            addOneHot(path, times: c)
            addOneHot(q, times: -c)
        }
        addMarginals(m, minus: q, times: -c)
    }

    /// The signed cost weight of a path term (0 for gold and oracle).
    private func costWeight(_ t: Term) -> Double {
        if case .max(let a) = t { return a }
        return 0
    }

    /// s(p) - s(q), summed over the positions (and edges, start, end) where they differ.
    func pathDifference(_ p: UnsafePointer<Int32>, _ q: UnsafePointer<Int32>) -> Double {
        let S = stride
        var total = 0.0
        for t in 0..<length {
            let a = Int(p[t]), b = Int(q[t])
            if a != b { total += emissions[t * tags + a].asDouble - emissions[t * tags + b].asDouble }
            if t > 0 {
                let a0 = Int(p[t - 1]), b0 = Int(q[t - 1])
                if a0 != b0 || a != b { total += model.transitions[a0 * S + a] - model.transitions[b0 * S + b] }
            }
        }
        let (a0, b0) = (Int(p[0]), Int(q[0])), (a1, b1) = (Int(p[length - 1]), Int(q[length - 1]))
        if a0 != b0 { total += model.start[a0] - model.start[b0] }
        if a1 != b1 { total += model.end[a1] - model.end[b1] }
        return total
    }

    /// The path of each position's most likely tag under the current tables (scratch.paths.0),
    /// if it is allowed; else the gold path if allowed; else nil.
    private func referencePath(_ m: ChainTables) -> UnsafePointer<Int32>? {
        let S = stride, path = scratch.paths.0
        for t in 0..<length {
            var top = 0, best = -Double.infinity
            for y in 0..<tags {
                let v = m.isScaled ? scratch.alpha[t * S + y] * scratch.beta[t * S + y]
                                 : scratch.alpha[t * S + y] + scratch.beta[t * S + y]
                if v > best { best = v; top = y }
            }
            path[t] = Int32(top)
        }
        let e = UnsafePointer(scratch.augmented)
        if ChainPaths.pathScore(model, emissions: e, rowStride: stride, length: length, path: path) > -.infinity {
            return UnsafePointer(path)
        }
        if ChainPaths.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath) > -.infinity {
            return goldPath
        }
        return nil
    }

    /// lse(v) - v(path) for the current tables, and whether it was formed as log1p of the other
    /// paths' mass (the path dominates: then the marginals go in as p - e_path).
    private func restAgainst(_ m: ChainTables, _ path: UnsafePointer<Int32>) -> (Double, Bool) {
        let rest = logZMinusPath(m, path)
        guard rest < log1p(1.0 / 16) else { return (rest, false) }
        return (LogSpaceChain.softplus(logSumExpOff(path)), true)
    }

    /// log Z - v(path) for the current tables, formed row by row against the same shifts as
    /// log Z (each row's max), so that it keeps the digits of the scores' differences however
    /// large the scores (log Z - v(path) as two sums near 1e15 would keep a multiple of 1/8).
    func logZMinusPath(_ m: ChainTables, _ path: UnsafePointer<Int32>) -> Double {
        let S = stride
        guard m.isScaled else {
            // The log-space tables ran on the shifted rows (scratch.psi), log Z relative to them.
            return m.logZ - ChainPaths.pathScore(model, emissions: UnsafePointer(scratch.psi), rowStride: S,
                                              length: length, path: path)
        }
        let e = scratch.augmented, shifts = scratch.shifts
        var y = Int(path[0])
        var inside = (model.start[y] + e[y]) - shifts[0]
        for t in 1..<Swift.max(length, 1) {
            let next = Int(path[t])
            inside += (model.transitions[y * S + next] - model.transitionMax) + (e[t * S + next] - shifts[t])
            y = next
        }
        inside += model.end[y] - shifts[length]
        return shifts[length + 1] - inside
    }

    /// A term's value, its gradient added times `sign` right away.
    private func term(_ t: Term, buffer: UnsafeMutablePointer<Int32>, sign: Double) -> Double {
        if case .logSumExp(let a) = t {
            let (logZ, _, marginals) = logSumExp(costWeight: a)
            addMarginals(marginals, minus: nil, times: sign)
            return logZ
        }
        let (value, path) = pathTerm(t, buffer: buffer)
        addOneHot(path, times: sign)
        return value
    }

}

/// The paths and tables the fused fear - hope forms its differences against.
extension ChainExample {
    /// log of the sum over every path y but `path` of exp(v(y) - v(path)), v = s + a c the current
    /// augmented scores: a forward pass that carries the paths that have left `path`, each
    /// relative to `path`'s own prefix (so that a loss near zero keeps its digits: log Z - v(path)
    /// = log1p(exp(this)), and no sum ever holds the scores' magnitude — with emissions near
    /// 1e16, sums of absolute scores would round away every difference between paths).
    func logSumExpOff(_ path: UnsafePointer<Int32>) -> Double {
        let e = UnsafePointer(scratch.augmented), L = tags, S = stride, f = scratch.delta
        let first = Int(path[0])
        for y in 0..<L {
            f[y] = y == first ? -.infinity : (model.start[y] - model.start[first]) + (e[y] - e[first])
        }
        for t in 1..<Swift.max(length, 1) {
            let previous = f + (t - 1) * S, here = f + t * S, from = Int(path[t - 1]), to = Int(path[t])
            let step = model.transitions[from * S + to], row = e + t * S
            for y in 0..<L {
                var total = -Double.infinity
                for p in 0..<L { total = LogSpaceChain.logAdd(total, previous[p] + model.transitions[p * S + y]) }
                if y != to { total = LogSpaceChain.logAdd(total, model.transitions[from * S + y]) }
                here[y] = total == -.infinity ? -.infinity : total + (row[y] - row[to]) - step
            }
        }
        var total = -Double.infinity
        let last = f + (length - 1) * S, final = Int(path[length - 1])
        for y in 0..<L { total = LogSpaceChain.logAdd(total, last[y] + (model.end[y] - model.end[final])) }
        return total
    }

}
