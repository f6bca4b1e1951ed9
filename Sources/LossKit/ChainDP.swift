#if canImport(Glibc)
import Glibc
#endif

/// The dynamic programs of a linear chain (DESIGN.md §4.4), in double, O(T L^2) each, on the
/// score of a tag path y of length T
///
///     s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_{T-1}]
///
/// with e the (possibly cost-augmented) emissions: forward and backward log-sum-exp (log Z and
/// the marginals), Viterbi with back-pointers, the lexicographic Viterbi of the oracle (lowest
/// cost, then highest score) and the first-order expectation semiring of the risk
/// (Li & Eisner 2009). -inf forbids a tag or a transition; the programs never form NaN from it.
/// Tables are row-major T x L; transitions are [from][to].
struct ChainModel {
    let tags: Int
    /// tags * tags, [from][to].
    let transitions: UnsafePointer<Double>
    let start: UnsafePointer<Double>
    let end: UnsafePointer<Double>
}

enum ChainDP {
    /// log(exp(a) + exp(b)) for a running log-sum (-inf allowed on either side).
    @inline(__always) static func logAdd(_ a: Double, _ b: Double) -> Double {
        if a == -.infinity { return b }
        if b == -.infinity { return a }
        return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b))
    }

    /// alpha[t][y] = log sum over prefixes ending in y at t; returns log Z (-inf: no path).
    static func forward(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        alpha: UnsafeMutablePointer<Double>, work: UnsafeMutablePointer<Double>) -> Double {
        let L = model.tags
        for y in 0..<L { alpha[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            step(model, previous: alpha + (t - 1) * L, emissions: e + t * L, into: alpha + t * L, work: work)
        }
        var logZ = -Double.infinity
        let last = alpha + (length - 1) * L
        var m = -Double.infinity
        for y in 0..<L { m = Swift.max(m, last[y] + model.end[y]) }
        guard m > -.infinity else { return m.isNaN ? .nan : -.infinity }
        var sum = 0.0
        for y in 0..<L { sum += exp(last[y] + model.end[y] - m) }
        logZ = m + log(sum)
        return logZ
    }

    /// next[y] = log sum_{y'} exp(previous[y'] + trans[y'][y]) + e[y]: the forward step, a max
    /// pass then an exp pass over contiguous rows of the transitions (vectorisable in y).
    @inline(__always) static func step(_ model: ChainModel, previous: UnsafePointer<Double>,
                                       emissions e: UnsafePointer<Double>,
                                       into next: UnsafeMutablePointer<Double>, work m: UnsafeMutablePointer<Double>) {
        let L = model.tags
        for y in 0..<L { m[y] = -.infinity }
        for from in 0..<L where previous[from] > -.infinity || previous[from].isNaN {
            let a = previous[from], row = model.transitions + from * L
            for y in 0..<L { m[y] = Swift.max(m[y], a + row[y]) }
        }
        for y in 0..<L { next[y] = 0 }
        for from in 0..<L where previous[from] > -.infinity || previous[from].isNaN {
            let a = previous[from], row = model.transitions + from * L
            for y in 0..<L where m[y] > -.infinity {
                next[y] += exp(a + row[y] - m[y])
            }
        }
        for y in 0..<L {
            next[y] = m[y] > -.infinity || m[y].isNaN ? m[y] + log(next[y]) + e[y] : -.infinity
        }
    }

    /// beta[t][y] = log sum over suffixes after y at t (end included).
    static func backward(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                         beta: UnsafeMutablePointer<Double>) {
        let L = model.tags
        let last = beta + (length - 1) * L
        for y in 0..<L { last[y] = model.end[y] }
        var t = length - 2
        while t >= 0 {
            let next = beta + (t + 1) * L, ahead = e + (t + 1) * L, here = beta + t * L
            for y in 0..<L {
                let row = model.transitions + y * L
                var m = -Double.infinity
                for to in 0..<L { m = Swift.max(m, row[to] + ahead[to] + next[to]) }
                if m > -.infinity {
                    var sum = 0.0
                    for to in 0..<L { sum += exp(row[to] + ahead[to] + next[to] - m) }
                    here[y] = m + log(sum)
                } else {
                    here[y] = m.isNaN ? .nan : -.infinity
                }
            }
            t -= 1
        }
    }

    /// Viterbi: the best path's score and the path (written to `path`), ties among predecessors
    /// and final tags going to the lowest tag. Returns -inf when no path is allowed.
    static func viterbi(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        delta: UnsafeMutablePointer<Double>, pointers: UnsafeMutablePointer<Int32>,
                        path: UnsafeMutablePointer<Int32>) -> Double {
        let L = model.tags
        for y in 0..<L { delta[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let previous = delta + (t - 1) * L, here = delta + t * L, back = pointers + t * L
            let emission = e + t * L
            for y in 0..<L { here[y] = -.infinity; back[y] = 0 }
            for from in 0..<L {
                let a = previous[from], row = model.transitions + from * L
                for y in 0..<L {
                    let v = a + row[y]
                    if v > here[y] { here[y] = v; back[y] = Int32(from) }  // strict: lowest tag wins ties
                }
            }
            for y in 0..<L { here[y] = here[y] + emission[y] }
        }
        let last = delta + (length - 1) * L
        var best = -Double.infinity, tag = 0
        for y in 0..<L {
            let v = last[y] + model.end[y]
            if v > best { best = v; tag = y }
        }
        path[length - 1] = Int32(tag)
        var t = length - 1
        while t > 0 {
            path[t - 1] = pointers[t * L + Int(path[t])]
            t -= 1
        }
        return best
    }

    /// s(path) summed in the order Viterbi sums (((start + e0) + trans) + e1) ... + end, so that a
    /// path Viterbi finds optimal compares equal to its value bit for bit.
    static func pathScore(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                          path: UnsafePointer<Int32>) -> Double {
        let L = model.tags
        var y = Int(path[0])
        var score = model.start[y] + e[y]
        for t in 1..<Swift.max(length, 1) {
            let next = Int(path[t])
            score = (score + model.transitions[y * L + next]) + e[t * L + next]
            y = next
        }
        return score + model.end[y]
    }

    /// The oracle path: lowest total unscaled cost among the allowed paths, then highest
    /// score, ties to the lowest tags. `cost` is the T x L unscaled cost; `score` the plain
    /// emissions. Returns false if no path is allowed.
    static func oracle(_ model: ChainModel, emissions e: UnsafePointer<Double>, cost: UnsafePointer<Double>,
                       length: Int, totalCost: UnsafeMutablePointer<Double>, score: UnsafeMutablePointer<Double>,
                       pointers: UnsafeMutablePointer<Int32>, path: UnsafeMutablePointer<Int32>) -> Bool {
        let L = model.tags
        @inline(__always) func better(_ c: Double, _ s: Double, than bc: Double, _ bs: Double) -> Bool {
            // Allowed (score > -inf) first, then lower cost, then higher score.
            if bs == -.infinity { return s > -.infinity }
            if s == -.infinity { return false }
            return c < bc || (c == bc && s > bs)
        }
        for y in 0..<L { totalCost[y] = cost[y]; score[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let pc = totalCost + (t - 1) * L, ps = score + (t - 1) * L
            let hc = totalCost + t * L, hs = score + t * L, back = pointers + t * L
            for y in 0..<L {
                var bc = Double.infinity, bs = -Double.infinity, arg = 0
                for from in 0..<L {
                    let s = ps[from] + model.transitions[from * L + y]
                    if better(pc[from], s, than: bc, bs) { bc = pc[from]; bs = s; arg = from }
                }
                hc[y] = bc + cost[t * L + y]
                hs[y] = bs + e[t * L + y]
                back[y] = Int32(arg)
            }
        }
        let lc = totalCost + (length - 1) * L, ls = score + (length - 1) * L
        var bc = Double.infinity, bs = -Double.infinity, tag = -1
        for y in 0..<L where better(lc[y], ls[y] + model.end[y], than: bc, bs) {
            bc = lc[y]; bs = ls[y] + model.end[y]; tag = y
        }
        guard tag >= 0 else { return false }
        path[length - 1] = Int32(tag)
        var t = length - 1
        while t > 0 {
            path[t - 1] = pointers[t * L + Int(path[t])]
            t -= 1
        }
        return true
    }

    /// Whether some path is allowed (a reachability pass; NaN counts as allowed).
    static func hasPath<T: Real>(_ model: ChainModel, emissions e: UnsafePointer<T>, length: Int,
                                 reach: UnsafeMutablePointer<Bool>, next: UnsafeMutablePointer<Bool>) -> Bool {
        let L = model.tags
        for y in 0..<L { reach[y] = model.start[y] != -.infinity && e[y] != -.infinity }
        for t in 1..<Swift.max(length, 1) {
            for y in 0..<L {
                var ok = false
                if e[t * L + y] != -.infinity {
                    for from in 0..<L where reach[from] && model.transitions[from * L + y] != -.infinity { ok = true; break }
                }
                next[y] = ok
            }
            for y in 0..<L { reach[y] = next[y] }
        }
        for y in 0..<L where reach[y] && model.end[y] != -.infinity { return true }
        return false
    }
}
