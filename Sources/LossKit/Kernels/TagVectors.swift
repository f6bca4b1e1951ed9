/// Vector loops over one row of tags in double, for the chain programs' L x L steps
/// (Structures/Chains): the inner loop of each step runs over the "to" tags, contiguous in the
/// transitions' [from][to] rows, a vector at a time; the exps use the kernels' vector exp.
/// Rows are padded to whole vectors (ChainModel.stride), with -inf where an exp is taken so
/// that the padding adds 0: `count` is always a multiple of the lanes, and no loop has a tail
/// (a partial load's lane-by-lane code also made LLVM split every vector of the loop).
enum TagVectors {
    typealias V = Double.Vector
    static var lanes: Int { Double.laneCount }

    /// m[y] = max(m[y], a + row[y]).
    @inline(__always) static func maxInto(_ m: UnsafeMutablePointer<Double>, _ a: Double, _ row: UnsafePointer<Double>,
                                          count: Int) {
        let av = V(repeating: a)
        var i = 0
        while i < count {
            storeVector(Double.maximum(loadVector(UnsafePointer(m), i), av + loadVector(row, i)), m, i)
            i += lanes
        }
    }

    /// s[y] += exp(a + row[y] - m[y]) where m[y] > -inf (a + row[y] <= m[y]).
    @inline(__always) static func addExp(_ s: UnsafeMutablePointer<Double>, _ a: Double, _ row: UnsafePointer<Double>,
                                         _ m: UnsafePointer<Double>, count: Int) {
        let av = V(repeating: a)
        var i = 0
        while i < count {
            // A masked max (-inf) would give -inf - -inf: those lanes use 0 instead, their
            // arguments staying -inf (exp 0).
            let mv = loadVector(m, i)
            let safe = Double.select(Double.equalMask(mv, V(repeating: -.infinity)), V(repeating: 0), mv)
            let x = av + loadVector(row, i) - safe
            storeVector(loadVector(UnsafePointer(s), i) + Double.expNonPositive(clipAtZero(x)), s, i)
            i += lanes
        }
    }

    /// log sum_y exp(row[y] + u[y]) (-inf if every term is).
    @inline(__always) static func logSumExp(_ row: UnsafePointer<Double>, _ u: UnsafePointer<Double>,
                                            count: Int) -> Double {
        var best = V(repeating: -.infinity)
        var i = 0
        while i < count {
            best = Double.maximum(best, loadVector(row, i) + loadVector(u, i))
            i += lanes
        }
        let m = Double.maxOfLanes(best)
        guard m > -.infinity else { return m }
        let mv = V(repeating: m)
        var sum = V(repeating: 0)
        i = 0
        while i < count {
            let x = loadVector(row, i) + loadVector(u, i) - mv
            sum += Double.expNonPositive(clipAtZero(x))
            i += lanes
        }
        return m + log(Double.sumOfLanes(sum))
    }

    /// out[y] = exp(a + row[y] + u[y]) (a probability: the argument is <= 0 up to rounding);
    /// returns sum_y out[y].
    @inline(__always) static func exps(_ a: Double, _ row: UnsafePointer<Double>, _ u: UnsafePointer<Double>,
                                       into out: UnsafeMutablePointer<Double>, count: Int) -> Double {
        let av = V(repeating: a)
        var sum = V(repeating: 0)
        var i = 0
        while i < count {
            let x = av + loadVector(row, i) + loadVector(u, i)
            let e = Double.expNonPositive(clipAtZero(x))
            storeVector(e, out, i)
            sum += e  // padded lanes hold exp(-inf) = 0
            i += lanes
        }
        return Double.sumOfLanes(sum)
    }
}

extension TagVectors {
    /// d[y] += c * x[y].
    @inline(__always) static func addScaled(_ d: UnsafeMutablePointer<Double>, _ c: Double, _ x: UnsafePointer<Double>,
                                            count: Int) {
        let cv = V(repeating: c)
        var i = 0
        while i < count {
            storeVector(Double.fma(loadVector(x, i), cv, loadVector(UnsafePointer(d), i)), d, i)
            i += lanes
        }
    }

    /// d[y] += c * x[y] * (k + w[y]).
    @inline(__always) static func addScaled(_ d: UnsafeMutablePointer<Double>, _ c: Double, _ x: UnsafePointer<Double>,
                                            times k: Double, plus w: UnsafePointer<Double>, count: Int) {
        let cv = V(repeating: c), kv = V(repeating: k)
        var i = 0
        while i < count {
            let term = loadVector(x, i) * cv * (kv + loadVector(w, i))
            storeVector(loadVector(UnsafePointer(d), i) + term, d, i)
            i += lanes
        }
    }

    /// m[r][y] = sum_{k < steps} a[k * count + r] * w[k * count + y] for r < rows (m has rows of
    /// `count`): the edge marginals of a whole sequence at once (before the elementwise factor
    /// E), blocked so that 4 rows x up to 4 vectors of m stay in registers across the steps.
    static func sumOfOuterProducts(_ a: UnsafePointer<Double>, _ w: UnsafePointer<Double>, steps: Int, rows: Int,
                                   into m: UnsafeMutablePointer<Double>, count: Int) {
        var column = 0
        while column < count {
            // Up to 4 vectors of columns; the ones a narrower block skips cost a predictable branch.
            let vectors = Swift.min(4, (count - column) / lanes)
            var row = 0
            while row + 4 <= rows {
                // A 4-row block of m, in up to 16 registers across every step.
                var m00 = V(repeating: 0), m01 = m00, m02 = m00, m03 = m00
                var m10 = m00, m11 = m00, m12 = m00, m13 = m00
                var m20 = m00, m21 = m00, m22 = m00, m23 = m00
                var m30 = m00, m31 = m00, m32 = m00, m33 = m00
                for k in 0..<steps {
                    let ak = a + k * count + row, wk = w + k * count + column
                    let a0 = V(repeating: ak[0]), a1 = V(repeating: ak[1])
                    let a2 = V(repeating: ak[2]), a3 = V(repeating: ak[3])
                    let w0 = loadVector(wk, 0)
                    m00 = Double.fma(w0, a0, m00); m10 = Double.fma(w0, a1, m10)
                    m20 = Double.fma(w0, a2, m20); m30 = Double.fma(w0, a3, m30)
                    if vectors > 1 {
                        let w1 = loadVector(wk, lanes)
                        m01 = Double.fma(w1, a0, m01); m11 = Double.fma(w1, a1, m11)
                        m21 = Double.fma(w1, a2, m21); m31 = Double.fma(w1, a3, m31)
                    }
                    if vectors > 2 {
                        let w2 = loadVector(wk, 2 * lanes)
                        m02 = Double.fma(w2, a0, m02); m12 = Double.fma(w2, a1, m12)
                        m22 = Double.fma(w2, a2, m22); m32 = Double.fma(w2, a3, m32)
                    }
                    if vectors > 3 {
                        let w3 = loadVector(wk, 3 * lanes)
                        m03 = Double.fma(w3, a0, m03); m13 = Double.fma(w3, a1, m13)
                        m23 = Double.fma(w3, a2, m23); m33 = Double.fma(w3, a3, m33)
                    }
                }
                let block = [(m00, m01, m02, m03), (m10, m11, m12, m13), (m20, m21, m22, m23), (m30, m31, m32, m33)]
                for (b, (x0, x1, x2, x3)) in block.enumerated() {
                    let out = m + (row + b) * count + column
                    storeVector(x0, out, 0)
                    if vectors > 1 { storeVector(x1, out, lanes) }
                    if vectors > 2 { storeVector(x2, out, 2 * lanes) }
                    if vectors > 3 { storeVector(x3, out, 3 * lanes) }
                }
                row += 4
            }
            edgeBlock(a, w, steps: steps, rows: row..<rows, columns: column..<(column + vectors * lanes), into: m,
                      count: count)
            column += vectors * lanes
        }
    }

    /// sumOfOuterProducts for the rows and columns the register blocks leave: accumulated in m.
    static func edgeBlock(_ a: UnsafePointer<Double>, _ w: UnsafePointer<Double>, steps: Int, rows: Range<Int>,
                          columns: Range<Int>, into m: UnsafeMutablePointer<Double>, count: Int) {
        guard !rows.isEmpty, !columns.isEmpty else { return }
        for r in rows {
            for y in stride(from: columns.lowerBound, to: columns.upperBound, by: lanes) {
                storeVector(V(repeating: 0), m + r * count, y)
            }
        }
        for k in 0..<steps {
            for r in rows where a[k * count + r] > 0 {
                let av = V(repeating: a[k * count + r]), out = m + r * count
                for y in stride(from: columns.lowerBound, to: columns.upperBound, by: lanes) {
                    storeVector(Double.fma(loadVector(w + k * count, y), av, loadVector(UnsafePointer(out), y)), out, y)
                }
            }
        }
    }

    /// row[y] *= p[y] (p >= 0, so the row stays >= 0); then, only when the row's max has left
    /// [2^-8, 2^8], the row is divided by the power of two at or below its max (exact).
    /// Returns the divisor (1 when the row was left as it is; 0 when the row is all zeros) and
    /// whether its positive entries lie within a factor `limit` of each other — what
    /// ScaledChain.within would find on the result, from the same pass. Rescaling rarely keeps
    /// the max reduction and a second pass off the recurrence's critical path: each step of the
    /// scaled programs waits only for the previous row, not for its max.
    @inline(__always) static func multiplyAndRescale(_ row: UnsafeMutablePointer<Double>, by p: UnsafePointer<Double>,
                                                     count: Int, limit: Double) -> (divisor: Double, within: Bool) {
        let zero = V(repeating: 0), infinity = V(repeating: .infinity)
        var top = zero, bottom = infinity
        var i = 0
        while i < count {
            let x = loadVector(UnsafePointer(row), i) * loadVector(p, i)
            storeVector(x, row, i)
            top = Double.maximum(top, x)
            let positive = Double.select(Double.equalMask(x, zero), infinity, x)
            bottom = Double.select(Double.signMask(positive - bottom), positive, bottom)
            i += lanes
        }
        let m = Double.maxOfLanes(top)
        guard m > 0 else { return (m, true) }
        var b = Double.infinity
        for lane in 0..<lanes { b = Swift.min(b, bottom[lane]) }
        // The ratio is the same after an exact rescaling.
        let within = m <= limit * b
        if m >= 0x1p-8, m <= 0x1p8 { return (1, within) }
        let divisor = Double(sign: .plus, exponent: m.exponent, significand: 1)
        let inverse = V(repeating: 1 / divisor)
        i = 0
        while i < count { storeVector(loadVector(UnsafePointer(row), i) * inverse, row, i); i += lanes }
        return (divisor, within)
    }

    /// out[y] = sum_{r < rows} weights[r] * matrix[r * count + y]: a vector-matrix product with the
    /// accumulators in registers, up to four vectors of `out` at a time (accumulating into
    /// memory row after row would chain every row through a store and a load), and two sets of
    /// them, for the even and the odd rows: one set would chain every row through the latency of
    /// a multiply-add, twice the time its throughput allows (measured on chains of 20 tags).
    @inline(__always) static func combineRows(_ weights: UnsafePointer<Double>, rows: Int,
                                              _ matrix: UnsafePointer<Double>,
                                              into out: UnsafeMutablePointer<Double>, count: Int) {
        var base = 0
        while base < count {
            switch Swift.min(4, (count - base) / lanes) {
            case 4: combineBlock(weights, rows: rows, matrix + base, into: out + base, count: count, vectors: 4)
            case 3: combineBlock(weights, rows: rows, matrix + base, into: out + base, count: count, vectors: 3)
            case 2: combineBlock(weights, rows: rows, matrix + base, into: out + base, count: count, vectors: 2)
            default: combineBlock(weights, rows: rows, matrix + base, into: out + base, count: count, vectors: 1)
            }
            base += Swift.min(4, (count - base) / lanes) * lanes
        }
    }

    /// `vectors` (1 to 4, a constant once inlined) vectors of combineRows' output.
    @inline(__always) private static func combineBlock(_ weights: UnsafePointer<Double>, rows: Int,
                                                       _ matrix: UnsafePointer<Double>,
                                                       into out: UnsafeMutablePointer<Double>, count: Int,
                                                       vectors: Int) {
        var e0 = V(repeating: 0), e1 = e0, e2 = e0, e3 = e0  // even rows
        var o0 = e0, o1 = e0, o2 = e0, o3 = e0                // odd rows
        var r = 0
        while r + 2 <= rows {
            let we = V(repeating: weights[r]), wo = V(repeating: weights[r + 1])
            let even = matrix + r * count, odd = even + count
            e0 = Double.fma(loadVector(even, 0), we, e0)
            o0 = Double.fma(loadVector(odd, 0), wo, o0)
            if vectors > 1 {
                e1 = Double.fma(loadVector(even, lanes), we, e1); o1 = Double.fma(loadVector(odd, lanes), wo, o1)
            }
            if vectors > 2 {
                e2 = Double.fma(loadVector(even, 2 * lanes), we, e2)
                o2 = Double.fma(loadVector(odd, 2 * lanes), wo, o2)
            }
            if vectors > 3 {
                e3 = Double.fma(loadVector(even, 3 * lanes), we, e3)
                o3 = Double.fma(loadVector(odd, 3 * lanes), wo, o3)
            }
            r += 2
        }
        if r < rows {
            let we = V(repeating: weights[r]), even = matrix + r * count
            e0 = Double.fma(loadVector(even, 0), we, e0)
            if vectors > 1 { e1 = Double.fma(loadVector(even, lanes), we, e1) }
            if vectors > 2 { e2 = Double.fma(loadVector(even, 2 * lanes), we, e2) }
            if vectors > 3 { e3 = Double.fma(loadVector(even, 3 * lanes), we, e3) }
        }
        storeVector(e0 + o0, out, 0)
        if vectors > 1 { storeVector(e1 + o1, out, lanes) }
        if vectors > 2 { storeVector(e2 + o2, out, 2 * lanes) }
        if vectors > 3 { storeVector(e3 + o3, out, 3 * lanes) }
    }

    /// The Viterbi step: out[y] = max_r (a[r] + matrix[r * count + y]), argmax[y] = the lowest r
    /// reaching it (strict comparisons keep the first). -inf rows never win over a finite value;
    /// where every row is -inf, out is -inf and argmax 0. Up to four vectors of `out` per pass
    /// over the rows: each vector's (max, select) chain is latency-bound on its own.
    @inline(__always) static func maxPlus(_ a: UnsafePointer<Double>, rows: Int, _ matrix: UnsafePointer<Double>,
                                          into out: UnsafeMutablePointer<Double>, argmax: UnsafeMutablePointer<Int32>,
                                          count: Int) {
        var base = 0
        while base < count {
            let vectors = Swift.min(4, (count - base) / lanes)
            switch vectors {
            case 4: maxPlusBlock(a, rows: rows, matrix + base, count: count, into: out + base, argmax: argmax + base,
                                 vectors: 4)
            case 3: maxPlusBlock(a, rows: rows, matrix + base, count: count, into: out + base, argmax: argmax + base,
                                 vectors: 3)
            case 2: maxPlusBlock(a, rows: rows, matrix + base, count: count, into: out + base, argmax: argmax + base,
                                 vectors: 2)
            default: maxPlusBlock(a, rows: rows, matrix + base, count: count, into: out + base, argmax: argmax + base,
                                  vectors: 1)
            }
            base += vectors * lanes
        }
    }

    /// `vectors` (1 to 4, a constant once inlined) vectors of maxPlus' output.
    @inline(__always) private static func maxPlusBlock(_ a: UnsafePointer<Double>, rows: Int,
                                                       _ matrix: UnsafePointer<Double>, count: Int,
                                                       into out: UnsafeMutablePointer<Double>,
                                                       argmax: UnsafeMutablePointer<Int32>, vectors: Int) {
        let minusInfinity = V(repeating: -.infinity), zero = V(repeating: 0)
        var best = (minusInfinity, minusInfinity, minusInfinity, minusInfinity)
        var at = (zero, zero, zero, zero)  // the row index, as a double (exact)
        @inline(__always) func track(_ v: V, _ r: V, _ best: inout V, _ at: inout V) {
            let better = Double.signMask(best - v)  // best < v
            best = Double.select(better, v, best)
            at = Double.select(better, r, at)
        }
        for r in 0..<rows where a[r] > -.infinity {
            let av = V(repeating: a[r]), rv = V(repeating: Double(r)), row = matrix + r * count
            track(av + loadVector(row, 0), rv, &best.0, &at.0)
            if vectors > 1 { track(av + loadVector(row, lanes), rv, &best.1, &at.1) }
            if vectors > 2 { track(av + loadVector(row, 2 * lanes), rv, &best.2, &at.2) }
            if vectors > 3 { track(av + loadVector(row, 3 * lanes), rv, &best.3, &at.3) }
        }
        @inline(__always) func put(_ best: V, _ at: V, _ k: Int) {
            storeVector(best, out, k * lanes)
            for lane in 0..<lanes { argmax[k * lanes + lane] = Int32(at[lane]) }
        }
        put(best.0, at.0, 0)
        if vectors > 1 { put(best.1, at.1, 1) }
        if vectors > 2 { put(best.2, at.2, 2) }
        if vectors > 3 { put(best.3, at.3, 3) }
    }

    /// d[y] += c * mu[y] for mu[y] = a[y] b[y] times `inverse`, except at y = `excluding` (-1:
    /// none); returns the sum of those mu[y]. `d` nil: only the sum.
    @inline(__always) static func addProducts(_ d: UnsafeMutablePointer<Double>?, _ c: Double,
                                              _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                                              times inverse: Double, excluding: Int, count: Int) -> Double {
        let cv = V(repeating: c), iv = V(repeating: inverse)
        var sum = V(repeating: 0)
        var i = 0
        while i < count {
            let keep = RowKernel.dropLane(Double.Bits(repeating: -1), excluding, at: i)
            let mu = Double.keep(keep, loadVector(a, i) * loadVector(b, i) * iv)
            sum += mu
            if let d { storeVector(Double.fma(mu, cv, loadVector(UnsafePointer(d), i)), d, i) }
            i += lanes
        }
        return Double.sumOfLanes(sum)
    }

    /// sum_y x[y] v[y].
    @inline(__always) static func dot(_ x: UnsafePointer<Double>, _ v: UnsafePointer<Double>, count: Int) -> Double {
        var sum = V(repeating: 0)
        var i = 0
        while i < count {
            sum = Double.fma(loadVector(x, i), loadVector(v, i), sum)
            i += lanes
        }
        return Double.sumOfLanes(sum)
    }

    /// out[y] = a[y] + b[y].
    @inline(__always) static func add(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                                      into out: UnsafeMutablePointer<Double>, count: Int) {
        var i = 0
        while i < count { storeVector(loadVector(a, i) + loadVector(b, i), out, i); i += lanes }
    }
}

/// min(x, 0) lane by lane: the exps' arguments are log-probabilities, which rounding may push
/// an ulp above 0 (outside expNonPositive's domain). -inf stays -inf.
@inline(__always) func clipAtZero(_ x: Double.Vector) -> Double.Vector {
    Double.select(Double.signMask(x), x, Double.Vector(repeating: 0))
}

#if canImport(Glibc)
import Glibc
#endif
