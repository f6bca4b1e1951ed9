/// The matrix products of the fused "linear layer + loss" form (L-Softmax, LSoftmax.swift), all
/// three written as one kernel:
///
///     out[r, c] (+)= sum_{q < depth} a(r, q) b[q, c]        a(r, q) = a[r * aRow + q * aColumn]
///
/// i.e. each output row is a combination of the rows of b with the coefficients of a row of a.
/// The logits x w^T take b = w^T (transposed once per call), d_x = G w takes b = w, and
/// d_w = G^T x takes a = G read by columns (aRow = 1) and b = x.
///
/// Blocking: the output is computed in column blocks of `columnBlock` values and the depth in
/// blocks of `depthBlock` rows of b, so that the block of b in use (depthBlock x columnBlock,
/// 128 KiB of float) stays in L2 while every output row of the range streams past it. Inside a
/// block, a register tile of 4 output rows x 2 vectors accumulates in the storage type over the
/// depth block: 8 accumulators, 2 loads of b and 4 broadcast coefficients per step, which fits the
/// 16 vector registers of SSE2 and AVX2. The summation order depends only on the shapes, never on
/// the thread count (threads own whole output rows).
enum MatrixKernel {
    static let columnBlock = 256
    static let depthBlock = 128

    /// Computes (or, with `accumulate`, adds) out[r, 0 ..< width] for r in `rows`.
    static func combineRows<T: Real>(
        a: UnsafePointer<T>, aRow: Int, aColumn: Int, depth: Int,
        b: UnsafePointer<T>, bRow: Int, width: Int,
        out: UnsafeMutablePointer<T>, outRow: Int, rows: Range<Int>, accumulate: Bool
    ) {
        guard !rows.isEmpty, width > 0 else { return }
        guard depth > 0 else {
            if !accumulate { for r in rows { (out + r * outRow).update(repeating: 0, count: width) } }
            return
        }
        let lanes = T.laneCount
        var c0 = 0
        while c0 < width {
            let c1 = Swift.min(width, c0 + columnBlock)
            var q0 = 0
            while q0 < depth {
                let q1 = Swift.min(depth, q0 + depthBlock)
                let add = accumulate || q0 > 0
                var r = rows.lowerBound
                while r < rows.upperBound {
                    // A tile of 4 rows; past the range's end the last row is recomputed, not stored.
                    let last = rows.upperBound - 1
                    let rs = (r, Swift.min(r + 1, last), Swift.min(r + 2, last), Swift.min(r + 3, last))
                    let stored = Swift.min(4, rows.upperBound - r)
                    var c = c0
                    while c < c1 {
                        if c + 2 * lanes <= c1 {
                            tile(a, aRow, aColumn, q0, q1, b, bRow, out, outRow, rs, stored, c, add,
                                 load: { p, i in loadVector(p, i) }, store: { v, p, i in storeVector(v, p, i) },
                                 load2: { p, i in loadVector(p, i) }, store2: { v, p, i in storeVector(v, p, i) })
                            c += 2 * lanes
                        } else {
                            // The ragged end of the block: one or two partial vectors.
                            let end = c1
                            let first = Swift.min(lanes, end - c)
                            tile(a, aRow, aColumn, q0, q1, b, bRow, out, outRow, rs, stored, c, add,
                                 load: { p, i in first == lanes ? loadVector(p, i) : loadPartial(p, i, i + first, pad: 0) },
                                 store: { v, p, i in if first == lanes { storeVector(v, p, i) } else { storePartial(v, p, i, i + first) } },
                                 load2: { p, i in i < end ? loadPartial(p, i, end, pad: 0) : T.Vector(repeating: 0) },
                                 store2: { v, p, i in if i < end { storePartial(v, p, i, end) } })
                            c = end
                        }
                    }
                    r += 4
                }
                q0 = q1
            }
            c0 = c1
        }
    }

    /// One register tile: rows rs, columns c ..< c + 2 lanes (loaded and stored through the
    /// given closures, which handle a ragged end), depth q0 ..< q1.
    @inline(__always)
    private static func tile<T: Real>(
        _ a: UnsafePointer<T>, _ aRow: Int, _ aColumn: Int, _ q0: Int, _ q1: Int,
        _ b: UnsafePointer<T>, _ bRow: Int, _ out: UnsafeMutablePointer<T>, _ outRow: Int,
        _ rs: (Int, Int, Int, Int), _ stored: Int, _ c: Int, _ add: Bool,
        load: (UnsafePointer<T>, Int) -> T.Vector, store: (T.Vector, UnsafeMutablePointer<T>, Int) -> Void,
        load2: (UnsafePointer<T>, Int) -> T.Vector, store2: (T.Vector, UnsafeMutablePointer<T>, Int) -> Void
    ) {
        let lanes = T.laneCount
        let c2 = c + lanes
        let o0 = out + rs.0 * outRow, o1 = out + rs.1 * outRow
        let o2 = out + rs.2 * outRow, o3 = out + rs.3 * outRow
        let zero = T.Vector(repeating: 0)
        var x00 = add ? load(o0, c) : zero, x01 = add ? load2(o0, c2) : zero
        var x10 = add ? load(o1, c) : zero, x11 = add ? load2(o1, c2) : zero
        var x20 = add ? load(o2, c) : zero, x21 = add ? load2(o2, c2) : zero
        var x30 = add ? load(o3, c) : zero, x31 = add ? load2(o3, c2) : zero
        var a0 = a + rs.0 * aRow + q0 * aColumn, a1 = a + rs.1 * aRow + q0 * aColumn
        var a2 = a + rs.2 * aRow + q0 * aColumn, a3 = a + rs.3 * aRow + q0 * aColumn
        var bq = b + q0 * bRow
        for _ in q0..<q1 {
            let b0 = load(bq, c), b1 = load2(bq, c2)
            let k0 = T.Vector(repeating: a0.pointee), k1 = T.Vector(repeating: a1.pointee)
            let k2 = T.Vector(repeating: a2.pointee), k3 = T.Vector(repeating: a3.pointee)
            x00 = T.fma(k0, b0, x00); x01 = T.fma(k0, b1, x01)
            x10 = T.fma(k1, b0, x10); x11 = T.fma(k1, b1, x11)
            x20 = T.fma(k2, b0, x20); x21 = T.fma(k2, b1, x21)
            x30 = T.fma(k3, b0, x30); x31 = T.fma(k3, b1, x31)
            a0 += aColumn; a1 += aColumn; a2 += aColumn; a3 += aColumn
            bq += bRow
        }
        // Rows past the range's end repeat the last row: only the first `stored` are written.
        store(x00, o0, c); store2(x01, o0, c2)
        if stored > 1 { store(x10, o1, c); store2(x11, o1, c2) }
        if stored > 2 { store(x20, o2, c); store2(x21, o2, c2) }
        if stored > 3 { store(x30, o3, c); store2(x31, o3, c2) }
    }
}
