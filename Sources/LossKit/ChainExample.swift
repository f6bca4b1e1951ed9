#if canImport(Glibc)
import Glibc
#endif

/// Per-thread working memory of the chain programs, for sequences of up to `capacity` positions.
struct ChainScratch {
    let augmented, alpha, beta, delta, cost, forwardCost, backwardCost: UnsafeMutablePointer<Double>
    let pointers: UnsafeMutablePointer<Int32>
    let paths: (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>)
    let work: UnsafeMutablePointer<Double>
    let reach: (UnsafeMutablePointer<Bool>, UnsafeMutablePointer<Bool>)

    /// Doubles, Int32s and Bools one worker needs for `positions` x `tags`.
    static func sizes(positions: Int, tags: Int) -> (doubles: Int, ints: Int, bools: Int) {
        (7 * positions * tags + tags, positions * tags + 2 * positions, 2 * tags)
    }

    init(doubles d: UnsafeMutablePointer<Double>, ints i: UnsafeMutablePointer<Int32>,
         bools b: UnsafeMutablePointer<Bool>, positions: Int, tags: Int) {
        let table = positions * tags
        augmented = d; alpha = d + table; beta = d + 2 * table; delta = d + 3 * table
        cost = d + 4 * table; forwardCost = d + 5 * table; backwardCost = d + 6 * table
        work = d + 7 * table
        pointers = i
        paths = (i + table, i + table + positions)
        reach = (b, b + tags)
    }
}

/// Where one sequence's gradient goes: its emissions' rows, and this chunk's accumulators of
/// the shared parameters (summed over the chunk's sequences, then over chunks in order).
struct ChainGradient<T: Real> {
    let emissions: UnsafeMutablePointer<T>?
    let transitions: UnsafeMutablePointer<Double>?
    let start: UnsafeMutablePointer<Double>?
    let end: UnsafeMutablePointer<Double>?
}

/// One sequence of a linear chain as a `LossStructure`: its candidates are every tag path, its
/// primitives dynamic programs (ChainDP). Argmax is a path; Marginals the forward-backward
/// tables it came from (valid until the next log-sum-exp of the same sequence).
struct ChainExample<T: Real> {
    let model: ChainModel
    let emissions: UnsafePointer<T>   // length x tags
    let costs: UnsafePointer<T>?      // length x tags, or nil: Hamming against the gold
    let goldPath: UnsafePointer<Int32>
    let length: Int
    let costScale: Double
    let isNaN: Bool
    let gradient: ChainGradient<T>
    let scratch: ChainScratch

    var tags: Int { model.tags }

    /// cost(gold, (t, y)) before cost_scale.
    @inline(__always) func unscaledCost(_ t: Int, _ y: Int) -> Double {
        if let costs { return costs[t * tags + y].wide }
        return Int32(y) == goldPath[t] ? 0 : 1
    }

    /// e[t, y] + a * cost_scale * cost(t, y) into scratch.augmented (masked tags stay -inf,
    /// their costs unread).
    func augment(_ a: Double) -> UnsafePointer<Double> {
        let w = a * costScale
        for t in 0..<length {
            for y in 0..<tags {
                let e = emissions[t * tags + y].wide
                scratch.augmented[t * tags + y] = (w == 0 || e == -.infinity) ? e : e + w * unscaledCost(t, y)
            }
        }
        return UnsafePointer(scratch.augmented)
    }

    /// Viterbi on s + a c into `path`; a tie with the gold path goes to the gold.
    func bestPath(_ a: Double, into path: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        let e = augment(a)
        let best = ChainDP.viterbi(model, emissions: e, length: length, delta: scratch.delta,
                                   pointers: scratch.pointers, path: path)
        if ChainDP.pathScore(model, emissions: e, length: length, path: goldPath) == best {
            return (best, goldPath)
        }
        return (best, UnsafePointer(path))
    }

    func oraclePath(into path: UnsafeMutablePointer<Int32>) -> (score: Double, path: UnsafePointer<Int32>) {
        for t in 0..<length { for y in 0..<tags { scratch.cost[t * tags + y] = unscaledCost(t, y) } }
        let e = augment(0)
        _ = ChainDP.oracle(model, emissions: e, cost: scratch.cost, length: length,
                           totalCost: scratch.delta, score: scratch.forwardCost, pointers: scratch.pointers, path: path)
        return (ChainDP.pathScore(model, emissions: e, length: length, path: path), UnsafePointer(path))
    }

    /// The path a gold, oracle or max term names (into `buffer`), and its value: s(path), or
    /// s(path) + a c(path) for a max term.
    func pathTerm(_ term: Term, buffer: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        switch term {
        case .gold:
            return (ChainDP.pathScore(model, emissions: augment(0), length: length, path: goldPath), goldPath)
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

/// A log-sum-exp's tables: log Z over s + a c, with alpha, beta and the augmented emissions in
/// the example's scratch.
struct ChainMarginals {
    let costWeight: Double
    let logZ: Double
}

extension ChainExample: LossStructure {
    func gold() -> (score: Double, arg: UnsafePointer<Int32>) {
        let (value, path) = pathTerm(.gold, buffer: scratch.paths.0)
        return (value, path)
    }

    func oracle() -> (score: Double, arg: UnsafePointer<Int32>) {
        let (value, path) = oraclePath(into: scratch.paths.0)
        return (value, path)
    }

    func maximum(costWeight a: Double) -> (value: Double, arg: UnsafePointer<Int32>) {
        let (value, path) = bestPath(a, into: scratch.paths.0)
        return (value, path)
    }

    func logSumExp(costWeight a: Double) -> (shift: Double, rest: Double, marginals: ChainMarginals) {
        let e = augment(a)
        let logZ = ChainDP.forward(model, emissions: e, length: length, alpha: scratch.alpha, work: scratch.work)
        ChainDP.backward(model, emissions: e, length: length, beta: scratch.beta)
        return (logZ, 0, ChainMarginals(costWeight: a, logZ: logZ))
    }

    /// log of the sum over every path but `path` of exp(s(y) + a c(y)): a forward pass that
    /// carries the paths that have left `path` (a loss near zero keeps its digits: log Z - s(path)
    /// = log1p(exp(this - s(path)))).
    func logSumExpOff(_ path: UnsafePointer<Int32>) -> Double {
        let e = UnsafePointer(scratch.augmented), L = tags, f = scratch.delta
        for y in 0..<L { f[y] = y == Int(path[0]) ? -.infinity : model.start[y] + e[y] }
        var on = model.start[Int(path[0])] + e[Int(path[0])]
        for t in 1..<Swift.max(length, 1) {
            let previous = f + (t - 1) * L, here = f + t * L, from = Int(path[t - 1])
            for y in 0..<L {
                var total = -Double.infinity
                for p in 0..<L { total = ChainDP.logAdd(total, previous[p] + model.transitions[p * L + y]) }
                if y != Int(path[t]) { total = ChainDP.logAdd(total, on + model.transitions[from * L + y]) }
                here[y] = total == -.infinity ? -.infinity : total + e[t * L + y]
            }
            on = (on + model.transitions[from * L + Int(path[t])]) + e[t * L + Int(path[t])]
        }
        var total = -Double.infinity
        let last = f + (length - 1) * L
        for y in 0..<L { total = ChainDP.logAdd(total, last[y] + model.end[y]) }
        return total
    }

    /// Adds `coefficient` times the node and edge marginals of the current tables to the
    /// gradient; with `minus`, the one-hot of that path is taken away, the path's own entries
    /// written as minus the sum of the others (p - 1 = -(sum of the rest), exact near zero).
    private func addMarginals(_ m: ChainMarginals, minus path: UnsafePointer<Int32>?, times c: Double) {
        let L = tags, logZ = m.logZ
        let alpha = scratch.alpha, beta = scratch.beta, e = scratch.augmented
        @inline(__always) func on(_ t: Int, _ y: Int) -> Bool { path.map { Int($0[t]) == y } ?? false }
        for t in 0..<length {
            var others = 0.0
            for y in 0..<L {
                let mu = exp(alpha[t * L + y] + beta[t * L + y] - logZ)
                if on(t, y) { continue }
                others += mu
                if let d = gradient.emissions { d[t * L + y] = T(rounding: d[t * L + y].wide + c * mu) }
                if t == 0, let d = gradient.start { d[y] += c * mu }
                if t == length - 1, let d = gradient.end { d[y] += c * mu }
            }
            if let path {
                let g = Int(path[t])
                if let d = gradient.emissions { d[t * L + g] = T(rounding: d[t * L + g].wide - c * others) }
                if t == 0, let d = gradient.start { d[g] -= c * others }
                if t == length - 1, let d = gradient.end { d[g] -= c * others }
            } else {
                // Without a path every node was added above.
            }
            guard t > 0, let d = gradient.transitions else { continue }
            var otherEdges = 0.0
            for from in 0..<L where alpha[(t - 1) * L + from] > -.infinity {
                let a = alpha[(t - 1) * L + from]
                for y in 0..<L {
                    let xi = exp(a + model.transitions[from * L + y] + e[t * L + y] + beta[t * L + y] - logZ)
                    if on(t - 1, from) && on(t, y) { continue }
                    otherEdges += xi
                    d[from * L + y] += c * xi
                }
            }
            if let path { d[Int(path[t - 1]) * L + Int(path[t])] -= c * otherEdges }
        }
    }

    func addMarginals(_ m: ChainMarginals, times coefficient: Double) {
        addMarginals(m, minus: nil, times: coefficient)
    }

    func addMarginals(_ m: ChainMarginals, minusOneHot arg: UnsafePointer<Int32>, times coefficient: Double) {
        addMarginals(m, minus: arg, times: coefficient)
    }

    func addOneHot(_ path: UnsafePointer<Int32>, times c: Double) {
        let L = tags
        if let d = gradient.emissions {
            for t in 0..<length { d[t * L + Int(path[t])] = T(rounding: d[t * L + Int(path[t])].wide + c) }
        }
        if let d = gradient.transitions { for t in 1..<Swift.max(length, 1) { d[Int(path[t - 1]) * L + Int(path[t])] += c } }
        gradient.start?[Int(path[0])] += c
        gradient.end?[Int(path[length - 1])] += c
    }

    /// Risk with the first-order expectation semiring (Li & Eisner 2009): the forward and
    /// backward tables carry, besides log Z, the expected cost of the prefixes (suffixes)
    /// through each node, so that E[c | y_t = y] = forwardCost + backwardCost and
    /// dR/d(feature) = E[c 1{feature}] - R E[1{feature}].
    func expectedCost(gradientTimes c: Double) -> Double {
        zeroGradient()
        let L = tags
        let e = augment(0)
        let logZ = ChainDP.forward(model, emissions: e, length: length, alpha: scratch.alpha, work: scratch.work)
        ChainDP.backward(model, emissions: e, length: length, beta: scratch.beta)
        let alpha = scratch.alpha, beta = scratch.beta
        let cost = scratch.cost, ahead = scratch.forwardCost, behind = scratch.backwardCost
        for t in 0..<length { for y in 0..<L { cost[t * L + y] = costScale * (e[t * L + y] == -.infinity ? 0 : unscaledCost(t, y)) } }
        for y in 0..<L { ahead[y] = cost[y] }
        for t in 1..<Swift.max(length, 1) {
            for y in 0..<L {
                var sum = 0.0
                let here = alpha[t * L + y]
                if here > -.infinity {
                    for from in 0..<L where alpha[(t - 1) * L + from] > -.infinity {
                        let w = exp(alpha[(t - 1) * L + from] + model.transitions[from * L + y] + e[t * L + y] - here)
                        sum += w * ahead[(t - 1) * L + from]
                    }
                }
                ahead[t * L + y] = sum + cost[t * L + y]
            }
        }
        for y in 0..<L { behind[(length - 1) * L + y] = 0 }
        var t = length - 2
        while t >= 0 {
            for y in 0..<L {
                var sum = 0.0
                let here = beta[t * L + y]
                if here > -.infinity {
                    for to in 0..<L {
                        let w = exp(model.transitions[y * L + to] + e[(t + 1) * L + to] + beta[(t + 1) * L + to] - here)
                        if w > 0 { sum += w * (cost[(t + 1) * L + to] + behind[(t + 1) * L + to]) }
                    }
                }
                behind[t * L + y] = sum
            }
            t -= 1
        }
        var risk = 0.0
        for y in 0..<L {
            let mu = exp(alpha[y] + beta[y] - logZ)
            if mu > 0 { risk += mu * (ahead[y] + behind[y]) }
        }
        for t in 0..<length {
            for y in 0..<L {
                let mu = exp(alpha[t * L + y] + beta[t * L + y] - logZ)
                guard mu > 0 else { continue }
                let g = c * mu * (ahead[t * L + y] + behind[t * L + y] - risk)
                if let d = gradient.emissions { d[t * L + y] = T(rounding: d[t * L + y].wide + g) }
                if t == 0 { gradient.start?[y] += g }
                if t == length - 1 { gradient.end?[y] += g }
            }
            guard t > 0, let d = gradient.transitions else { continue }
            for from in 0..<L where alpha[(t - 1) * L + from] > -.infinity {
                for y in 0..<L {
                    let xi = exp(alpha[(t - 1) * L + from] + model.transitions[from * L + y] + e[t * L + y]
                                 + beta[t * L + y] - logZ)
                    guard xi > 0 else { continue }
                    d[from * L + y] += c * xi * (ahead[(t - 1) * L + from] + cost[t * L + y] + behind[t * L + y] - risk)
                }
            }
        }
        return risk
    }

    /// F - H, one term at a time: path terms first (they use the Viterbi tables), then a
    /// log-sum-exp, whose marginals are added while its tables are current. A log-sum-exp fear
    /// against a path hope is written lse - s(path) = (v(path) - H) + log1p(exp(lse_off - v(path)))
    /// near zero, and its gradient as marginals minus the path's one-hot without subtracting 1.
    func fearMinusHope(fear: Term, hope: Term, coefficient c: Double) -> Double {
        zeroGradient()
        if case .logSumExp(let a) = fear, !isLogSumExp(hope) {
            let (h, path) = pathTerm(hope, buffer: scratch.paths.1)
            let (logZ, _, marginals) = logSumExp(costWeight: a)
            let onPath = ChainDP.pathScore(model, emissions: UnsafePointer(scratch.augmented), length: length, path: path)
            var rest = logZ - onPath
            if rest < log1p(1.0 / 16) {
                rest = log1p(exp(logSumExpOff(path) - onPath))
            }
            addMarginals(marginals, minus: path, times: c)
            return (onPath - h) + rest
        }
        let f = term(fear, buffer: scratch.paths.0, sign: c)
        let h = term(hope, buffer: scratch.paths.1, sign: -c)
        return f - h
    }

    private func isLogSumExp(_ t: Term) -> Bool {
        if case .logSumExp = t { return true }
        return false
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

    var containsNaN: Bool { isNaN }

    func zeroGradient() { gradient.emissions?.update(repeating: 0, count: length * tags) }

    func poisonGradient() {
        gradient.emissions?.update(repeating: .nan, count: length * tags)
        gradient.transitions?.update(repeating: .nan, count: tags * tags)
        gradient.start?.update(repeating: .nan, count: tags)
        gradient.end?.update(repeating: .nan, count: tags)
    }
}
