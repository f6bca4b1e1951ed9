import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// Per-thread working memory of the chain programs, for sequences of up to `capacity` positions.
struct ChainScratch {
    let augmented, alpha, beta, delta, cost, forwardCost, backwardCost, psi: UnsafeMutablePointer<Double>
    /// The scaled forward's and backward's per-position normalisers.
    let norms, backNorms: UnsafeMutablePointer<Double>
    /// The scaled forward's row shifts and the small part of its log Z (positions + 2).
    let shifts: UnsafeMutablePointer<Double>
    /// The sequence's emission gradient in double (positions x tags), rounded once when flushed.
    let gradient: UnsafeMutablePointer<Double>
    /// tags x stride: a sequence's edge marginals before the factor E (ScaledChain).
    let edges: UnsafeMutablePointer<Double>
    let pointers: UnsafeMutablePointer<Int32>
    let paths: (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>)
    /// Three rows of `stride` values for the inner loops.
    let work: UnsafeMutablePointer<Double>
    let reach: (UnsafeMutablePointer<Bool>, UnsafeMutablePointer<Bool>)

    /// Doubles, Int32s and Bools one worker needs for `positions` x `tags` (rows of `stride`);
    /// LK_ERR_ALLOC when `threads` workers' worth overflows (no trap on huge sizes).
    static func sizes(positions: Int, tags: Int, threads: Int) throws(Failure)
        -> (doubles: Int, ints: Int, bools: Int)
    {
        let stride = ChainModel.stride(tags: tags)
        let table = saturatingProduct(positions, stride)
        let doubles = saturatingAdd(saturatingAdd(saturatingProduct(9, table), 3 * positions + 2),
                                    saturatingProduct(tags + 3, stride))
        let ints = saturatingAdd(table, 2 * positions)
        guard saturatingProduct(doubles, threads) < Int.max / 8 else {
            throw Failure(status: LK_ERR_ALLOC,
                          message: "the chain tables for \(positions) positions x \(tags) tags overflow")
        }
        return (doubles, ints, 2 * tags)
    }

    init(doubles d: UnsafeMutablePointer<Double>, ints i: UnsafeMutablePointer<Int32>,
         bools b: UnsafeMutablePointer<Bool>, positions: Int, tags: Int) {
        let stride = ChainModel.stride(tags: tags)
        let table = positions * stride
        augmented = d; alpha = d + table; beta = d + 2 * table; delta = d + 3 * table
        cost = d + 4 * table; forwardCost = d + 5 * table; backwardCost = d + 6 * table
        psi = d + 7 * table
        gradient = d + 8 * table
        norms = d + 9 * table
        backNorms = d + 9 * table + positions
        work = d + 9 * table + 2 * positions
        edges = d + 9 * table + 2 * positions + 3 * stride
        shifts = edges + tags * stride
        pointers = i
        paths = (i + table, i + table + positions)
        reach = (b, b + tags)
    }
}

/// Where one sequence's gradient goes: its emissions' gradient, accumulated in double (rows of
/// `stride`, like the tables, so that whole vectors add into it) and rounded once into
/// `output` (rows of `tags`), and this chunk's accumulators of the shared parameters (rows of
/// `stride`, like the model's; summed over the chunk's sequences, then over chunks in order).
struct ChainGradient<T: Real> {
    let emissions: UnsafeMutablePointer<Double>?
    let output: UnsafeMutablePointer<T>?
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
    /// The gradient is computed in units of a power of two (Chains.gradientUnscale); stored times
    /// these two factors (1, 1 nearly always).
    let unscale: (Double, Double)
    let gradient: ChainGradient<T>
    let scratch: ChainScratch

    var tags: Int { model.tags }
    var stride: Int { model.stride }

    /// cost(gold, (t, y)) before cost_scale.
    @inline(__always) func unscaledCost(_ t: Int, _ y: Int) -> Double {
        if let costs { return costs[t * tags + y].wide }
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
                for y in 0..<tags { row[y] = e[y].wide }
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
                let v = e[y] == -T.infinity ? -Double.infinity : e[y].wide + w * c[y]
                row[y] = v
                if v > best { best = v; top = y }
                if v > -.infinity {
                    largest.emission = Swift.max(largest.emission, e[y].wide.magnitude)
                    largest.cost = Swift.max(largest.cost, c[y].magnitude)
                }
            }
            // Where the scaled costs do not exceed the emissions, e + w c already keeps their
            // digits as well as the relative form would (an error of u (|e| + |w c|) <= 2u max|e|,
            // either way): the second pass is spent only on rows that need it.
            if top >= 0, w.magnitude * largest.cost > largest.emission {
                let e0 = e[top].wide, c0 = c[top]
                for y in 0..<tags {
                    row[y] = e[y] == -T.infinity ? -.infinity : (e[y].wide - e0) + Self.scaledDifference(w, c[y], c0)
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

    /// s(path) + a cost_scale c(path): a path's cost-augmented value, from the plain scores (so
    /// that two terms on the same path differ by exactly their costs' part).
    func pathValue(_ path: UnsafePointer<Int32>, _ a: Double) -> Double {
        let s = ChainDP.pathScore(model, emissions: emissions, rowStride: tags, length: length, path: path)
        let w = a * costScale
        return w == 0 ? s : s + pathCost(path, times: w)
    }

    /// Viterbi on s + a c into `path`; a tie with the gold path goes to the gold.
    /// It runs on the rows shifted by their max (in place: every path moves by the same sum, so
    /// the argmax does not), so that its comparisons keep the digits of the rows' differences:
    /// at 1e300 + 0.5 the 0.5 is gone and a worse path ties or wins.
    func bestPath(_ a: Double, into path: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        let (rows, _) = augment(a)
        _ = ChainDP.shiftRows(rows, length: length, stride: stride, into: scratch.augmented)
        let e = UnsafePointer(scratch.augmented)
        let best = ChainDP.viterbi(model, emissions: e, length: length, delta: scratch.delta,
                                   pointers: scratch.pointers, path: path)
        if ChainDP.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath) == best {
            return (pathValue(goldPath, a), goldPath)
        }
        return (pathValue(path, a), UnsafePointer(path))
    }

    func oraclePath(into path: UnsafeMutablePointer<Int32>) -> (score: Double, path: UnsafePointer<Int32>) {
        let (e, _) = augment(0)
        // Hamming cost: the gold path costs 0 and every other path more, so it is the oracle
        // unless it is forbidden.
        if costs == nil, Chains.forbiddenStep(model, emissions: emissions, length: length, path: goldPath) == nil {
            return (ChainDP.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath), goldPath)
        }
        for t in 0..<length { for y in 0..<tags { scratch.cost[t * stride + y] = unscaledCost(t, y) } }
        // Validation leaves an allowed path whose score is finite (Chains.checkPathBound); were
        // there none, the path would be unwritten: NaN, never a read through stale tags.
        // On rows shifted by their max, as bestPath (the ties of cost compare the scores' digits);
        // the score is then the path's own sum of the inputs.
        _ = ChainDP.shiftRows(e, length: length, stride: stride, into: scratch.augmented)
        guard ChainDP.oracle(model, emissions: e, cost: scratch.cost, length: length, totalCost: scratch.delta,
                             score: scratch.forwardCost, pointers: scratch.pointers, path: path)
        else { return (.nan, goldPath) }
        return (ChainDP.pathScore(model, emissions: emissions, rowStride: tags, length: length, path: path),
                UnsafePointer(path))
    }

    /// The path a gold, oracle or max term names (into `buffer`), and its value: s(path), or
    /// s(path) + a c(path) for a max term.
    func pathTerm(_ term: Term, buffer: UnsafeMutablePointer<Int32>) -> (value: Double, path: UnsafePointer<Int32>) {
        switch term {
        case .gold:
            return (ChainDP.pathScore(model, emissions: emissions, rowStride: tags, length: length, path: goldPath), goldPath)
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
/// the example's scratch — scaled (alpha-hat, beta-hat, psi, norms: ScaledChain) or in log.
struct ChainMarginals {
    let costWeight: Double
    let logZ: Double
    let scaled: Bool
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
        let (e, augmentOffset) = augment(a)
        // The scaled programs when the spreads allow (nearly always), else the log-space ones.
        if let logZ = ScaledChain.forward(model, emissions: e, length: length, alpha: scratch.alpha, psi: scratch.psi,
                                          norms: scratch.norms, shifts: scratch.shifts),
           ScaledChain.backward(model, length: length, psi: UnsafePointer(scratch.psi), beta: scratch.beta,
                                norms: scratch.backNorms, work: scratch.work) {
            return (augmentOffset + logZ, 0, ChainMarginals(costWeight: a, logZ: logZ, scaled: true))
        }
        // Log space on rows shifted by their max (ChainDP.shiftRows), kept in scratch.psi for the
        // marginals; the tables' log Z is relative to the shift.
        let shifted = scratch.psi
        let offset = ChainDP.shiftRows(e, length: length, stride: stride, into: shifted)
        let logZ = ChainDP.forward(model, emissions: shifted, length: length, alpha: scratch.alpha, work: scratch.work)
        ChainDP.backward(model, emissions: shifted, length: length, beta: scratch.beta, work: scratch.work)
        return (augmentOffset + offset + logZ, 0, ChainMarginals(costWeight: a, logZ: logZ, scaled: false))
    }

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
                for p in 0..<L { total = ChainDP.logAdd(total, previous[p] + model.transitions[p * S + y]) }
                if y != to { total = ChainDP.logAdd(total, model.transitions[from * S + y]) }
                here[y] = total == -.infinity ? -.infinity : total + (row[y] - row[to]) - step
            }
        }
        var total = -Double.infinity
        let last = f + (length - 1) * S, final = Int(path[length - 1])
        for y in 0..<L { total = ChainDP.logAdd(total, last[y] + (model.end[y] - model.end[final])) }
        return total
    }

    /// Adds `coefficient` times the node and edge marginals of the current tables to the
    /// gradient; with `minus`, the one-hot of that path is taken away, the path's own entries
    /// written as minus the sum of the others (p - 1 = -(sum of the rest), exact near zero).
    private func addMarginals(_ m: ChainMarginals, minus path: UnsafePointer<Int32>?, times c: Double) {
        if m.scaled { return addScaledMarginals(minus: path, times: c) }
        let L = tags, S = stride
        let alpha = scratch.alpha, beta = scratch.beta, e = scratch.psi  // the shifted rows
        @inline(__always) func on(_ t: Int, _ y: Int) -> Bool { path.map { Int($0[t]) == y } ?? false }
        for t in 0..<length {
            // Each position normalised by its own log Z (ChainDP.positionLogZ).
            let z = ChainDP.positionLogZ(alpha + t * S, beta + t * S, count: L)
            var others = 0.0
            for y in 0..<L {
                let mu = ChainDP.marginal(alpha[t * S + y], beta[t * S + y], z)
                if on(t, y) { continue }
                others += mu
                gradient.emissions?[t * S + y] += c * mu
                if t == 0, let d = gradient.start { d[y] += c * mu }
                if t == length - 1, let d = gradient.end { d[y] += c * mu }
            }
            if let path {
                let g = Int(path[t])
                gradient.emissions?[t * S + g] -= c * others
                if t == 0, let d = gradient.start { d[g] -= c * others }
                if t == length - 1, let d = gradient.end { d[g] -= c * others }
            } else {
                // Without a path every node was added above.
            }
            guard t > 0, let d = gradient.transitions else { continue }
            // Edge marginals xi(from, y) = exp(alpha[t-1][from] - log Z + trans[from][y] + u[y]),
            // u = e[t] + beta[t]: a row at a time.
            let u = scratch.work, xi = scratch.work + S
            TagVectors.add(e + t * S, beta + t * S, into: u, count: S)
            var otherEdges = 0.0
            for from in 0..<L where alpha[(t - 1) * S + from] > -.infinity {
                let a = ((alpha[(t - 1) * S + from] - z.shift) - z.top) - z.rest
                var rowSum = TagVectors.exps(a, model.transitions + from * S,
                                             UnsafePointer(u), into: xi, count: S)
                if let path, Int(path[t - 1]) == from {
                    // The others summed without the path's edge (rowSum - xi(own) would leave an
                    // ulp of an own edge near 1 in a mass near 0).
                    xi[Int(path[t])] = 0
                    rowSum = 0
                    for y in 0..<L { rowSum += xi[y] }
                }
                otherEdges += rowSum
                TagVectors.addScaled(d + from * S, c, UnsafePointer(xi), count: S)
            }
            if let path { d[Int(path[t - 1]) * S + Int(path[t])] -= c * otherEdges }
        }
    }

    /// addMarginals from the scaled tables (ScaledChain):
    ///     mu[t](y) = a[t](y) b[t](y) / sum_y a[t](y) b[t](y)
    ///     xi[t](y', y) = a[t-1](y') E(y', y) psi[t](y) b[t](y) / (norm[t] sum_y a[t](y) b[t](y))
    /// with a, b the scaled alpha-hat, beta-hat (a[t] = (a[t-1] E) psi[t] / norm[t]).
    private func addScaledMarginals(minus path: UnsafePointer<Int32>?, times c: Double) {
        let L = tags, S = stride
        let alpha = scratch.alpha, beta = scratch.beta, psi = scratch.psi
        var dominated = false  // some step's path edge had the others' mass below 1/16
        for t in 0..<length {
            let a = alpha + t * S, b = beta + t * S
            let inverse = 1 / TagVectors.dot(a, b, count: S)
            // mu = a b / z, added times c to every tag but the path's (the padding adds 0).
            let g = path.map { Int($0[t]) } ?? -1
            var others = TagVectors.addProducts(gradient.emissions.map { $0 + t * S }, c, a, b, times: inverse,
                                                excluding: g, count: S)
            if t == 0, let d = gradient.start {
                others = TagVectors.addProducts(d, c, a, b, times: inverse, excluding: g, count: S)
            }
            if t == length - 1, let d = gradient.end {
                others = TagVectors.addProducts(d, c, a, b, times: inverse, excluding: g, count: S)
            }
            if let path {
                let g = Int(path[t])
                gradient.emissions?[t * S + g] -= c * others
                if t == 0 { gradient.start?[g] -= c * others }
                if t == length - 1 { gradient.end?[g] -= c * others }
            }
            guard t > 0, let d = gradient.transitions else { continue }
            // xi[t](y', y) = a[t-1](y') E(y', y) w[t](y), w[t] = psi[t] b[t] / (norm[t] z): the w rows
            // are kept, and the sum over t done once below as a product of two tables.
            let w = scratch.forwardCost + (t - 1) * S
            let scale = inverse / scratch.norms[t]
            for y in 0..<S { w[y] = psi[t * S + y] * beta[t * S + y] * scale }
            if let path {
                // The path's own edge is written as minus the other edges of t (sum 1 - own,
                // formed term by term when that is small: a loss near zero keeps its digits).
                let from = Int(path[t - 1]), to = Int(path[t])
                let own = alpha[(t - 1) * S + from] * model.expTransitions[from * S + to] * w[to]
                var others = 1 - own
                if others < 1.0 / 16 {
                    dominated = true
                    others = 0
                    for p in 0..<L where alpha[(t - 1) * S + p] > 0 {
                        let row = model.expTransitions + p * S
                        var sum = 0.0
                        for y in 0..<L where !(p == from && y == to) { sum += row[y] * w[y] }
                        others += alpha[(t - 1) * S + p] * sum
                    }
                }
                // The own part is settled below, once it is known whether a step dominated.
                d[from * S + to] -= c * others
            }
        }
        // d[y'][y] += c E(y', y) sum_t a[t-1](y') w[t](y).
        if let d = gradient.transitions, length > 1 {
            TagVectors.sumOfOuterProducts(UnsafePointer(alpha), UnsafePointer(scratch.forwardCost), steps: length - 1,
                                          rows: L, into: scratch.edges, count: S)
            if let path {
                if dominated {
                    excludePathEdges(path)
                } else {
                    for t in 1..<length {
                        let from = Int(path[t - 1]), to = Int(path[t])
                        let own = alpha[(t - 1) * S + from] * model.expTransitions[from * S + to]
                            * scratch.forwardCost[(t - 1) * S + to]
                        d[from * S + to] -= c * own
                    }
                }
            }
            for from in 0..<L {
                let e = model.expTransitions + from * S, m = scratch.edges + from * S, out = d + from * S
                var i = 0
                while i < S {
                    storeVector(Double.fma(loadVector(e, i) * loadVector(UnsafePointer(m), i), Double.Vector(repeating: c),
                                           loadVector(UnsafePointer(out), i)), out, i)
                    i += Double.laneCount
                }
            }
        }
    }

    /// Where the path dominates some step, its own edges' entries are re-formed without the
    /// path's steps: sum_t xi[t] - #steps = sum over the other steps of xi[t] - sum over the
    /// path's steps of (the others' mass), so that no xi near 1 is added and then taken away
    /// (that left an ulp of 1 in an entry whose exact value is 1e-15, or exactly 0 when the
    /// path is the only one); the others' mass was taken from d step by step.
    /// O(positions x distinct path edges), only when a path dominates some step.
    private func excludePathEdges(_ path: UnsafePointer<Int32>) {
        let S = stride, alpha = scratch.alpha, w = scratch.forwardCost
        for t in 1..<length {
            let from = Int(path[t - 1]), to = Int(path[t])
            var seen = false
            for s in 1..<t where Int(path[s - 1]) == from && Int(path[s]) == to { seen = true; break }
            if seen { continue }
            var sum = 0.0
            for s in 1..<length where !(Int(path[s - 1]) == from && Int(path[s]) == to) {
                sum += alpha[(s - 1) * S + from] * w[(s - 1) * S + to]
            }
            scratch.edges[from * S + to] = sum
        }
    }

    func addMarginals(_ m: ChainMarginals, times coefficient: Double) {
        addMarginals(m, minus: nil, times: coefficient)
    }

    func addMarginals(_ m: ChainMarginals, minusOneHot arg: UnsafePointer<Int32>, times coefficient: Double) {
        addMarginals(m, minus: arg, times: coefficient)
    }

    func addOneHot(_ path: UnsafePointer<Int32>, times c: Double) {
        if let d = gradient.emissions {
            for t in 0..<length { d[t * stride + Int(path[t])] += c }
        }
        if let d = gradient.transitions { for t in 1..<Swift.max(length, 1) { d[Int(path[t - 1]) * stride + Int(path[t])] += c } }
        gradient.start?[Int(path[0])] += c
        gradient.end?[Int(path[length - 1])] += c
    }

    /// Risk with the first-order expectation semiring (Li & Eisner 2009): the forward and
    /// backward tables carry, besides log Z, the expected cost of the prefixes (suffixes)
    /// through each node, so that E[c | y_t = y] = forwardCost + backwardCost and
    /// dR/d(feature) = E[c 1{feature}] - R E[1{feature}].
    func expectedCost(gradientTimes c: Double) -> Double {
        zeroGradient()
        let (e, _) = augment(0)
        if ScaledChain.forward(model, emissions: e, length: length, alpha: scratch.alpha, psi: scratch.psi,
                               norms: scratch.norms) != nil,
           ScaledChain.backward(model, length: length, psi: UnsafePointer(scratch.psi), beta: scratch.beta,
                                norms: scratch.backNorms, work: scratch.work) {
            return scaledExpectedCost(times: c)
        }
        return logSpaceExpectedCost(emissions: e, times: c)
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

    /// The risk from the scaled tables (ScaledChain), the expectation semiring's weights being
    ///   forward:  w(y', y) = a[t-1](y') E(y', y) psi[t](y) / (norm[t] a[t](y))
    ///   backward: w(y, y'') = E(y, y'') psi[t+1](y'') b[t+1](y'') / (backNorm[t] b[t](y))
    /// so that both recursions are products with E (or its transpose), no exp per edge.
    private func scaledExpectedCost(times c: Double) -> Double {
        let L = tags, S = stride
        let alpha = scratch.alpha, beta = scratch.beta, psi = scratch.psi
        let cost = scratch.cost, ahead = scratch.forwardCost, behind = scratch.backwardCost
        let u = scratch.work, w = scratch.work + S, row = scratch.work + 2 * S
        var shift = 0.0
        for t in 0..<length {
            let reference = referenceCost(t) { y in alpha[t * S + y] * beta[t * S + y] }
            shift += costScale * reference
            for y in 0..<S {
                cost[t * S + y] = y < L && alpha[t * S + y] > 0 ? centredCost(t, y, reference) : 0
                ahead[t * S + y] = 0
                behind[t * S + y] = 0
            }
        }
        for y in 0..<L { ahead[y] = cost[y] }
        for t in 1..<Swift.max(length, 1) {
            for y in 0..<S { u[y] = alpha[(t - 1) * S + y] * ahead[(t - 1) * S + y] }
            TagVectors.combineRows(UnsafePointer(u), rows: L, model.expTransitions, into: row, count: S)
            let inverse = 1 / scratch.norms[t]
            for y in 0..<L where alpha[t * S + y] > 0 {
                ahead[t * S + y] = row[y] * psi[t * S + y] * inverse / alpha[t * S + y] + cost[t * S + y]
            }
        }
        var t = length - 2
        while t >= 0 {
            for y in 0..<S {
                u[y] = psi[(t + 1) * S + y] * beta[(t + 1) * S + y] * (cost[(t + 1) * S + y] + behind[(t + 1) * S + y])
            }
            TagVectors.combineRows(UnsafePointer(u), rows: L, model.expTransitionsTransposed, into: row, count: S)
            let inverse = 1 / scratch.backNorms[t]
            for y in 0..<L where beta[t * S + y] > 0 { behind[t * S + y] = row[y] * inverse / beta[t * S + y] }
            t -= 1
        }
        var z0 = 0.0, risk = 0.0
        for y in 0..<L { z0 += alpha[y] * beta[y] }
        for y in 0..<L where alpha[y] * beta[y] > 0 { risk += alpha[y] * beta[y] / z0 * (ahead[y] + behind[y]) }
        for t in 0..<length {
            var z = 0.0
            for y in 0..<L { z += alpha[t * S + y] * beta[t * S + y] }
            let inverse = 1 / z
            addRiskNodes(t, times: c, mu: { y in alpha[t * S + y] * beta[t * S + y] * inverse },
                         expected: { y in ahead[t * S + y] + behind[t * S + y] })
            guard t > 0, let d = gradient.transitions else { continue }
            // xi(from, y) (ahead[t-1][from] + cost[t][y] + behind[t][y] - risk), a row at a time,
            // xi(from, .) = a[t-1](from) E[from] * psi[t] b[t] / (norm[t] z).
            let scale = inverse / scratch.norms[t]
            for y in 0..<S {
                u[y] = psi[t * S + y] * beta[t * S + y] * scale
                w[y] = y < L ? cost[t * S + y] + behind[t * S + y] - risk : 0
            }
            for from in 0..<L where alpha[(t - 1) * S + from] > 0 {
                let a = alpha[(t - 1) * S + from], e = model.expTransitions + from * S
                for y in 0..<S { row[y] = a * e[y] * u[y] }
                TagVectors.addScaled(d + from * S, c, UnsafePointer(row), times: ahead[(t - 1) * S + from],
                                     plus: UnsafePointer(w), count: S)
            }
        }
        return shift + risk
    }

    /// The risk in log space (inputs whose spreads the scaled programs cannot take).
    private func logSpaceExpectedCost(emissions augmented: UnsafePointer<Double>, times c: Double) -> Double {
        let L = tags, S = stride
        // On rows shifted by their max (ChainDP.shiftRows): the risk does not depend on the shift.
        _ = ChainDP.shiftRows(augmented, length: length, stride: S, into: scratch.psi)
        let e = UnsafePointer(scratch.psi)
        let logZ = ChainDP.forward(model, emissions: e, length: length, alpha: scratch.alpha, work: scratch.work)
        ChainDP.backward(model, emissions: e, length: length, beta: scratch.beta, work: scratch.work)
        let alpha = scratch.alpha, beta = scratch.beta
        let cost = scratch.cost, ahead = scratch.forwardCost, behind = scratch.backwardCost
        // The padding of every row holds 0 (costs, expectations) or -inf (log-weights): it adds
        // nothing and never makes a NaN.
        var shift = 0.0
        for t in 0..<length {
            let reference = referenceCost(t) { y in alpha[t * S + y] + beta[t * S + y] }
            shift += costScale * reference
            for y in 0..<S {
                cost[t * S + y] = y < L && e[t * S + y] > -.infinity ? centredCost(t, y, reference) : 0
                ahead[t * S + y] = 0
                behind[t * S + y] = 0
            }
        }
        let u = scratch.work, w = scratch.work + S, row = scratch.work + 2 * S
        for y in 0..<L { ahead[y] = cost[y] }
        for t in 1..<Swift.max(length, 1) {
            // ahead[t][y] = sum_from exp(alpha[t-1][from] + trans[from][y] + e[t][y] - alpha[t][y])
            //               * ahead[t-1][from] + cost[t][y]   (the weights sum to 1 over from)
            for y in 0..<S { u[y] = y < L && alpha[t * S + y] > -.infinity ? e[t * S + y] - alpha[t * S + y] : -.infinity }
            for from in 0..<L where alpha[(t - 1) * S + from] > -.infinity {
                _ = TagVectors.exps(alpha[(t - 1) * S + from], model.transitions + from * S, UnsafePointer(u), into: row, count: S)
                TagVectors.addScaled(ahead + t * S, ahead[(t - 1) * S + from], UnsafePointer(row), count: S)
            }
            for y in 0..<L { ahead[t * S + y] += cost[t * S + y] }
        }
        var t = length - 2
        while t >= 0 {
            // behind[t][y] = sum_to exp(trans[y][to] + e[t+1][to] + beta[t+1][to] - beta[t][y])
            //                * (cost[t+1][to] + behind[t+1][to])
            TagVectors.add(e + (t + 1) * S, beta + (t + 1) * S, into: u, count: S)
            TagVectors.add(cost + (t + 1) * S, behind + (t + 1) * S, into: w, count: S)
            for y in 0..<L {
                let here = beta[t * S + y]
                guard here > -.infinity else { continue }
                _ = TagVectors.exps(-here, model.transitions + y * S, UnsafePointer(u), into: row, count: S)
                behind[t * S + y] = TagVectors.dot(UnsafePointer(row), UnsafePointer(w), count: S)
            }
            t -= 1
        }
        _ = logZ
        var risk = 0.0
        let z0 = ChainDP.positionLogZ(alpha, beta, count: L)
        for y in 0..<L {
            let mu = ChainDP.marginal(alpha[y], beta[y], z0)
            if mu > 0 { risk += mu * (ahead[y] + behind[y]) }
        }
        for t in 0..<length {
            // Each position normalised by its own log Z (ChainDP.positionLogZ).
            let z = ChainDP.positionLogZ(alpha + t * S, beta + t * S, count: L)
            addRiskNodes(t, times: c, mu: { y in ChainDP.marginal(alpha[t * S + y], beta[t * S + y], z) },
                         expected: { y in ahead[t * S + y] + behind[t * S + y] })
            guard t > 0, let d = gradient.transitions else { continue }
            // xi(from, y) (ahead[t-1][from] + cost[t][y] + behind[t][y] - risk), a row at a time.
            TagVectors.add(e + t * S, beta + t * S, into: u, count: S)
            for y in 0..<S { w[y] = y < L ? cost[t * S + y] + behind[t * S + y] - risk : 0 }
            for from in 0..<L where alpha[(t - 1) * S + from] > -.infinity {
                let a = ((alpha[(t - 1) * S + from] - z.shift) - z.top) - z.rest
                _ = TagVectors.exps(a, model.transitions + from * S, UnsafePointer(u),
                                    into: row, count: S)
                TagVectors.addScaled(d + from * S, c, UnsafePointer(row), times: ahead[(t - 1) * S + from],
                                     plus: UnsafePointer(w), count: S)
            }
        }
        return shift + risk
    }

    /// F - H, one term at a time: path terms first (they use the Viterbi tables), then a
    /// log-sum-exp, whose marginals are added while its tables are current. A log-sum-exp fear
    /// against a path hope is written lse - s(path) = (v(path) - H) + log1p(exp(lse_off - v(path)))
    /// near zero, and its gradient as marginals minus the path's one-hot without subtracting 1.
    func fearMinusHope(fear: Term, hope: Term, coefficient c: Double) -> Double {
        zeroGradient()
        if case .logSumExp(let a) = fear, !isLogSumExp(hope) {
            let (h, path) = pathTerm(hope, buffer: scratch.paths.1)
            let (_, _, marginals) = logSumExp(costWeight: a)
            // v(path) - H exactly: the path's cost times the difference of the two cost weights
            // (H = s(path) for a gold or oracle hope, s(path) - h c(path) for a max hope).
            var hopeWeight = 0.0
            if case .max(let b) = hope { hopeWeight = b }
            let aboveHope = pathCost(path, times: (a - hopeWeight) * costScale)
            _ = h
            var rest = logZMinusPath(marginals, path)
            if rest < log1p(1.0 / 16) {
                rest = ChainDP.softplus(logSumExpOff(path))
            }
            splitGradient(marginals, path: path, pathSign: -c)
            return aboveHope + rest
        }
        if case .logSumExp(let a) = fear, case .logSumExp(let b) = hope {
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
            let gap = pathCost(path, times: (a - b) * costScale)
            return gap + (fearRest - hopeRest)
        }
        if !isLogSumExp(fear), case .logSumExp(let b) = hope {
            // A path fear against a log-sum-exp hope, split against the fear's path P:
            //     v+(P) - lse(v-) = (a - b) cost_scale c(P) - (lse(v-) - v-(P)),
            // the second part log1p of the other paths' mass where P dominates; the plain
            // difference of the two terms near the scores' magnitude kept only its rounding.
            let (_, path) = pathTerm(fear, buffer: scratch.paths.1)
            let (_, _, tables) = logSumExp(costWeight: b)
            let (rest, _) = restAgainst(tables, path)
            splitGradient(tables, path: path, pathSign: c)
            let w = (costWeight(fear) - b) * costScale
            return pathCost(path, times: w) - rest
        }
        if !isLogSumExp(fear), !isLogSumExp(hope) {
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
        let f = term(fear, buffer: scratch.paths.0, sign: c)
        let h = term(hope, buffer: scratch.paths.1, sign: -c)
        return f - h
    }

    /// pathSign (e_path - p), p the current tables' marginals, as pathSign (e_path - e_Q) -
    /// pathSign (p - e_Q) with Q the tables' dominant path (referencePath; else `path`): the
    /// one-hots first (integers: where the paths share an entry they cancel exactly), then
    /// p - e_Q with Q's entries formed from the others' mass. Where the log-sum-exp's mass sits
    /// on another path than `path`, e_path - p near Q's entries is a difference of two masses
    /// near 1 (a cost_scale of 1000 left -2.2e-16 in an entry of 1e-300).
    private func splitGradient(_ m: ChainMarginals, path: UnsafePointer<Int32>, pathSign c: Double) {
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
            if a != b { total += emissions[t * tags + a].wide - emissions[t * tags + b].wide }
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
    private func referencePath(_ m: ChainMarginals) -> UnsafePointer<Int32>? {
        let S = stride, path = scratch.paths.0
        for t in 0..<length {
            var top = 0, best = -Double.infinity
            for y in 0..<tags {
                let v = m.scaled ? scratch.alpha[t * S + y] * scratch.beta[t * S + y]
                                 : scratch.alpha[t * S + y] + scratch.beta[t * S + y]
                if v > best { best = v; top = y }
            }
            path[t] = Int32(top)
        }
        let e = UnsafePointer(scratch.augmented)
        if ChainDP.pathScore(model, emissions: e, rowStride: stride, length: length, path: path) > -.infinity {
            return UnsafePointer(path)
        }
        if ChainDP.pathScore(model, emissions: e, rowStride: stride, length: length, path: goldPath) > -.infinity {
            return goldPath
        }
        return nil
    }

    /// lse(v) - v(path) for the current tables, and whether it was formed as log1p of the other
    /// paths' mass (the path dominates: then the marginals go in as p - e_path).
    private func restAgainst(_ m: ChainMarginals, _ path: UnsafePointer<Int32>) -> (Double, Bool) {
        let rest = logZMinusPath(m, path)
        guard rest < log1p(1.0 / 16) else { return (rest, false) }
        return (ChainDP.softplus(logSumExpOff(path)), true)
    }

    /// log Z - v(path) for the current tables, formed row by row against the same shifts as
    /// log Z (each row's max), so that it keeps the digits of the scores' differences however
    /// large the scores (log Z - v(path) as two sums near 1e15 would keep a multiple of 1/8).
    func logZMinusPath(_ m: ChainMarginals, _ path: UnsafePointer<Int32>) -> Double {
        let S = stride
        guard m.scaled else {
            // The log-space tables ran on the shifted rows (scratch.psi), log Z relative to them.
            return m.logZ - ChainDP.pathScore(model, emissions: UnsafePointer(scratch.psi), rowStride: S,
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

    func zeroGradient() { gradient.emissions?.update(repeating: 0, count: length * stride) }

    /// Rounds the emission gradient into the caller's buffer, once.
    func flushGradient() {
        guard let table = gradient.emissions, let out = gradient.output else { return }
        for t in 0..<length {
            for y in 0..<tags { out[t * tags + y] = T(rounding: table[t * stride + y] * unscale.0 * unscale.1) }
        }
    }

    func poisonGradient() {
        gradient.emissions?.update(repeating: .nan, count: length * stride)
        gradient.transitions?.update(repeating: .nan, count: tags * stride)
        gradient.start?.update(repeating: .nan, count: stride)
        gradient.end?.update(repeating: .nan, count: stride)
    }
}
