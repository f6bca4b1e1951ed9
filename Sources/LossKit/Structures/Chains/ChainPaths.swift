#if canImport(Glibc)
import Glibc
#endif

/// The path programs of a linear chain, in double, O(T L^2) each (O(T L) for reachability):
/// Viterbi with back-pointers, the lexicographic Viterbi of the oracle (lowest cost, then
/// highest score), one backtrack for both, the score of a given path, and whether any path is
/// allowed. Rows are padded as ChainModel describes.
enum ChainPaths {
    /// Viterbi on `rows` (a sequence's emissions or cost-augmented emissions in double, rows of
    /// the stride) shifted by their max in place: every path moves by the same sum, so the best
    /// path does not, but the comparisons keep the digits of the rows' differences (at
    /// 1e300 + 0.5 the 0.5 is gone and a worse path ties or wins). Writes the path, and returns
    /// its score on the shifted rows.
    static func viterbiOnShiftedRows(_ model: ChainModel, rows: UnsafeMutablePointer<Double>, length: Int,
                                     scratch: ChainScratch, path: UnsafeMutablePointer<Int32>) -> Double {
        _ = LogSpaceChain.shiftRows(rows, length: length, stride: model.stride, into: rows)
        return viterbi(model, emissions: rows, length: length, delta: scratch.delta, pointers: scratch.pointers,
                       path: path)
    }

    /// Viterbi: the best path's score and the path (written to `path`), ties among predecessors
    /// and final tags going to the lowest tag. Returns -inf when no path is allowed.
    static func viterbi(_ model: ChainModel, emissions e: UnsafePointer<Double>, length: Int,
                        delta: UnsafeMutablePointer<Double>, pointers: UnsafeMutablePointer<Int32>,
                        path: UnsafeMutablePointer<Int32>) -> Double {
        let L = model.tags, S = model.stride
        for y in 0..<S { delta[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let previous = delta + (t - 1) * S, here = delta + t * S, back = pointers + t * S
            TagVectors.maxPlus(previous, rows: L, model.transitions, into: here, argmax: back, count: S)
            for y in 0..<S { here[y] += e[t * S + y] }
        }
        let last = delta + (length - 1) * S
        var best = -Double.infinity, tag = 0
        for y in 0..<L {
            let v = last[y] + model.end[y]
            if v > best { best = v; tag = y }
        }
        backtrack(from: tag, length: length, pointers: pointers, stride: S, into: path)
        return best
    }

    /// s(path) summed in the order Viterbi sums (((start + e0) + trans) + e1) ... + end, so that a
    /// path Viterbi finds optimal compares equal to its value bit for bit.
    /// The emissions are rows of `rowStride` (the model's stride for a scratch table, the tag
    /// count for the caller's own emissions: widened exactly, the same bits either way).
    static func pathScore<E: StorageFloat>(_ model: ChainModel, emissions e: UnsafePointer<E>, rowStride: Int,
                                   length: Int, path: UnsafePointer<Int32>) -> Double {
        let S = model.stride
        var y = Int(path[0])
        var score = model.start[y] + e[y].asDouble
        for t in 1..<Swift.max(length, 1) {
            let next = Int(path[t])
            score = (score + model.transitions[y * S + next]) + e[t * rowStride + next].asDouble
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
        let L = model.tags, S = model.stride
        @inline(__always) func better(_ c: Double, _ s: Double, than bc: Double, _ bs: Double) -> Bool {
            // Allowed (score > -inf) first, then lower cost, then higher score.
            if bs == -.infinity { return s > -.infinity }
            if s == -.infinity { return false }
            return c < bc || (c == bc && s > bs)
        }
        for y in 0..<L { totalCost[y] = cost[y]; score[y] = model.start[y] + e[y] }
        for t in 1..<Swift.max(length, 1) {
            let pc = totalCost + (t - 1) * S, ps = score + (t - 1) * S
            let hc = totalCost + t * S, hs = score + t * S, back = pointers + t * S
            for y in 0..<L {
                var bc = Double.infinity, bs = -Double.infinity, arg = 0
                for from in 0..<L {
                    let s = ps[from] + model.transitions[from * S + y]
                    if better(pc[from], s, than: bc, bs) { bc = pc[from]; bs = s; arg = from }
                }
                hc[y] = bc + cost[t * S + y]
                hs[y] = bs + e[t * S + y]
                back[y] = Int32(arg)
            }
        }
        let lc = totalCost + (length - 1) * S, ls = score + (length - 1) * S
        var bc = Double.infinity, bs = -Double.infinity, tag = -1
        for y in 0..<L where better(lc[y], ls[y] + model.end[y], than: bc, bs) {
            bc = lc[y]; bs = ls[y] + model.end[y]; tag = y
        }
        guard tag >= 0 else { return false }
        backtrack(from: tag, length: length, pointers: pointers, stride: S, into: path)
        return true
    }

    /// The path that ends in `last` at position length - 1, following the back-pointers of
    /// `viterbi` or `oracle` (pointers[t * stride + y]: the tag before y at t).
    @inline(__always) static func backtrack(from last: Int, length: Int, pointers: UnsafePointer<Int32>,
                                            stride S: Int, into path: UnsafeMutablePointer<Int32>) {
        path[length - 1] = Int32(last)
        var t = length - 1
        while t > 0 {
            path[t - 1] = pointers[t * S + Int(path[t])]
            t -= 1
        }
    }

    /// Whether some path is allowed (a reachability pass; NaN counts as allowed), on the
    /// caller's emissions (rows of `tags`, unpadded). Up to 64 tags, sets of tags are bit masks
    /// (O(T L) with the allowed predecessors of each tag precomputed); beyond, Bool rows.
    static func hasPath<T: StorageFloat>(_ model: ChainModel, emissions e: UnsafePointer<T>, length: Int,
                                 reach: UnsafeMutablePointer<Bool>, next: UnsafeMutablePointer<Bool>) -> Bool {
        let L = model.tags, S = model.stride
        if L <= 64, let predecessors = model.allowedPredecessors {
            var set: UInt64 = 0
            for y in 0..<L where model.start[y] != -.infinity && e[y] != -.infinity { set |= 1 << UInt64(y) }
            for t in 1..<Swift.max(length, 1) {
                var following: UInt64 = 0
                for y in 0..<L where e[t * L + y] != -.infinity && set & predecessors[y] != 0 {
                    following |= 1 << UInt64(y)
                }
                set = following
                if set == 0 { return false }
            }
            for y in 0..<L where set & (1 << UInt64(y)) != 0 && model.end[y] != -.infinity { return true }
            return false
        }
        for y in 0..<L { reach[y] = model.start[y] != -.infinity && e[y] != -.infinity }
        for t in 1..<Swift.max(length, 1) {
            for y in 0..<L {
                var ok = false
                if e[t * L + y] != -.infinity {
                    for from in 0..<L where reach[from] && model.transitions[from * S + y] != -.infinity {
                        ok = true
                        break
                    }
                }
                next[y] = ok
            }
            for y in 0..<L { reach[y] = next[y] }
        }
        for y in 0..<L where reach[y] && model.end[y] != -.infinity { return true }
        return false
    }

    /// The first position at which a path's score becomes -inf (start, emission, transition or
    /// end), or nil if it is allowed.
    static func forbiddenStep<T: StorageFloat>(_ model: ChainModel, emissions e: UnsafePointer<T>, length: Int,
                                       path: UnsafePointer<Int32>) -> Int? {
        let L = model.tags
        for t in 0..<length {
            let y = Int(path[t])
            if e[t * L + y] == -T.infinity { return t }
            if t == 0, model.start[y] == -.infinity { return 0 }
            if t > 0, model.transitions[Int(path[t - 1]) * model.stride + y] == -.infinity { return t }
            if t == length - 1, model.end[y] == -.infinity { return t }
        }
        return nil
    }
}
