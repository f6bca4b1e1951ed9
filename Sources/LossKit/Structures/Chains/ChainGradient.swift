#if canImport(Glibc)
import Glibc
#endif

/// Where one sequence's gradient goes: its emissions' gradient, accumulated in double (rows of
/// `stride`, like the tables, so that whole vectors add into it) and rounded once into
/// `output` (rows of `tags`), and this chunk's accumulators of the shared parameters (rows of
/// `stride`, like the model's; summed over the chunk's sequences, then over chunks in order).
struct ChainGradient<T: StorageFloat> {
    let emissions: UnsafeMutablePointer<Double>?
    let output: UnsafeMutablePointer<T>?
    let transitions: UnsafeMutablePointer<Double>?
    let start: UnsafeMutablePointer<Double>?
    let end: UnsafeMutablePointer<Double>?
}

/// The gradient of a chain example: one-hots of paths, the marginals of the current tables (in
/// their scaled and log-space forms), and the sink's zeroing, rounding and poisoning.
extension ChainExample {
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

    func addOneHot(_ path: UnsafePointer<Int32>, times c: Double) {
        if let d = gradient.emissions {
            for t in 0..<length { d[t * stride + Int(path[t])] += c }
        }
        if let d = gradient.transitions {
            for t in 1..<Swift.max(length, 1) { d[Int(path[t - 1]) * stride + Int(path[t])] += c }
        }
        gradient.start?[Int(path[0])] += c
        gradient.end?[Int(path[length - 1])] += c
    }

    /// Adds `coefficient` times the node and edge marginals of the current tables to the
    /// gradient; with `minus`, the one-hot of that path is taken away, the path's own entries
    /// written as minus the sum of the others (p - 1 = -(sum of the rest), exact near zero).
    func addMarginals(_ m: ChainTables, minus path: UnsafePointer<Int32>?, times c: Double) {
        if m.isScaled { addScaledMarginals(minus: path, times: c) } else { addLogSpaceMarginals(minus: path, times: c) }
    }

    /// addMarginals from the log-space tables (LogSpaceChain).
    private func addLogSpaceMarginals(minus path: UnsafePointer<Int32>?, times c: Double) {
        let L = tags, S = stride
        let alpha = scratch.alpha, beta = scratch.beta, e = scratch.psi  // the shifted rows
        @inline(__always) func on(_ t: Int, _ y: Int) -> Bool { path.map { Int($0[t]) == y } ?? false }
        for t in 0..<length {
            // Each position normalised by its own log Z (LogSpaceChain.positionLogZ).
            let z = LogSpaceChain.positionLogZ(alpha + t * S, beta + t * S, count: L)
            var others = 0.0
            for y in 0..<L {
                let mu = LogSpaceChain.marginal(alpha[t * S + y], beta[t * S + y], z)
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
                    let product = loadVector(e, i) * loadVector(UnsafePointer(m), i)
                    storeVector(Double.fma(product, Double.Vector(repeating: c), loadVector(UnsafePointer(out), i)),
                                out, i)
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
}
