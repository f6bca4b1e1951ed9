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

    /// Computes (or, with `accumulate`, adds) out[r, 0 ..< width] for r in `rows`. `pack` has room
    /// for `packSize` values: each block of b is copied into it first (contiguous rows, as BLAS
    /// packs its panels), so that the tiles read it without long strides.
    static let packSize = columnBlock * depthBlock

    static func combineRows<T: StorageFloat>(
        a: UnsafePointer<T>, aRow: Int, aColumn: Int, depth: Int,
        b: UnsafePointer<T>, bRow: Int, width: Int,
        out: UnsafeMutablePointer<T>, outRow: Int, rows: Range<Int>, accumulate: Bool,
        pack: UnsafeMutablePointer<T>
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
            let blockWidth = c1 - c0
            var q0 = 0
            while q0 < depth {
                let q1 = Swift.min(depth, q0 + depthBlock)
                for q in q0..<q1 { (pack + (q - q0) * blockWidth).update(from: b + q * bRow + c0, count: blockWidth) }
                let add = accumulate || q0 > 0
                var r = rows.lowerBound
                while r < rows.upperBound {
                    // A tile of 4 rows; past the range's end the last row is recomputed, not stored.
                    let last = rows.upperBound - 1
                    let rs = (r, Swift.min(r + 1, last), Swift.min(r + 2, last), Swift.min(r + 3, last))
                    let stored = Swift.min(4, rows.upperBound - r)
                    let a0 = a + q0 * aColumn
                    var c = 0
                    while c < blockWidth {
                        let outs = (out + rs.0 * outRow + c0 + c, out + rs.1 * outRow + c0 + c,
                                    out + rs.2 * outRow + c0 + c, out + rs.3 * outRow + c0 + c)
                        let coefficients = (a0 + rs.0 * aRow, a0 + rs.1 * aRow, a0 + rs.2 * aRow, a0 + rs.3 * aRow)
                        if c + 2 * lanes <= blockWidth {
                            tile(coefficients, aColumn, q1 - q0, UnsafePointer(pack + c), blockWidth, outs, stored, add,
                                 load: { p in loadVector(p, 0) }, store: { v, p in storeVector(v, p, 0) },
                                 load2: { p in loadVector(p, lanes) }, store2: { v, p in storeVector(v, p, lanes) })
                            c += 2 * lanes
                        } else {
                            // The ragged end of the block: one or two partial vectors.
                            let left = blockWidth - c
                            let first = Swift.min(lanes, left)
                            tile(coefficients, aColumn, q1 - q0, UnsafePointer(pack + c), blockWidth, outs, stored, add,
                                 load: { p in first == lanes ? loadVector(p, 0) : loadPartial(p, 0, first, pad: 0) },
                                 store: { v, p in
                                     if first == lanes { storeVector(v, p, 0) } else { storePartial(v, p, 0, first) }
                                 },
                                 load2: { p in
                                     left > lanes ? loadPartial(p, lanes, left, pad: 0) : T.Vector(repeating: 0)
                                 },
                                 store2: { v, p in if left > lanes { storePartial(v, p, lanes, left) } })
                            c = blockWidth
                        }
                    }
                    r += 4
                }
                q0 = q1
            }
            c0 = c1
        }
    }

    /// One register tile: 4 rows of coefficients (stepping by `aColumn`) times `steps` rows of b
    /// (stepping by `bRow`), into 4 output rows, 2 vectors wide (loaded and stored through the
    /// given closures, which handle a ragged end). Only the first `stored` rows are written.
    @inline(__always)
    private static func tile<T: StorageFloat>(
        _ a: (UnsafePointer<T>, UnsafePointer<T>, UnsafePointer<T>, UnsafePointer<T>), _ aColumn: Int, _ steps: Int,
        _ b: UnsafePointer<T>, _ bRow: Int,
        _ o: (UnsafeMutablePointer<T>, UnsafeMutablePointer<T>, UnsafeMutablePointer<T>, UnsafeMutablePointer<T>),
        _ stored: Int, _ add: Bool,
        load: (UnsafePointer<T>) -> T.Vector, store: (T.Vector, UnsafeMutablePointer<T>) -> Void,
        load2: (UnsafePointer<T>) -> T.Vector, store2: (T.Vector, UnsafeMutablePointer<T>) -> Void
    ) {
        let zero = T.Vector(repeating: 0)
        var x00 = add ? load(o.0) : zero, x01 = add ? load2(o.0) : zero
        var x10 = add ? load(o.1) : zero, x11 = add ? load2(o.1) : zero
        var x20 = add ? load(o.2) : zero, x21 = add ? load2(o.2) : zero
        var x30 = add ? load(o.3) : zero, x31 = add ? load2(o.3) : zero
        var (a0, a1, a2, a3) = a
        var bq = b
        for _ in 0..<steps {
            let b0 = load(bq), b1 = load2(bq)
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
        store(x00, o.0); store2(x01, o.0)
        if stored > 1 { store(x10, o.1); store2(x11, o.1) }
        if stored > 2 { store(x20, o.2); store2(x21, o.2) }
        if stored > 3 { store(x30, o.3); store2(x31, o.3) }
    }
}
