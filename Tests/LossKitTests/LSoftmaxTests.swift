// L-Softmax (lk_lsoftmax_f64/_f32) and the angular-margin dense losses.
//
// psi's own properties are checked on the internal `GoldLogit` against cos(m theta) from libm
// (the library never takes an arccos; the test builds the vectors from theta). The blocked product
// kernel is checked against a naive triple loop. Everything else goes through the C entry
// points: m = 1 against lk_dense_f64's log loss on x w^T computed here, the angular losses
// against closed forms, and every error path with poisoned, untouched outputs.
import CLossKit
import Glibc
@testable import LossKit
import Testing

/// psi(theta) = (-1)^j cos(m theta) - 2j on [j pi/m, (j+1) pi/m], written from its definition.
private func psiReference(_ theta: Double, m: Int) -> Double {
    let j = Swift.min(m - 1, Int((theta * Double(m) / Double.pi).rounded(.down)))
    return (j % 2 == 0 ? 1 : -1) * cos(Double(m) * theta) - 2 * Double(j)
}

/// `GoldLogit` for x = b (1, 0) and w = a (cos theta, sin theta): the angle theta between them.
private func goldLogit(theta: Double, m: Int, lambda: Double = 0, a: Double = 1, b: Double = 1) -> GoldLogit {
    goldLogit(x: [b, 0], w: [a * cos(theta), a * sin(theta)], m: m, lambda: lambda)
}

/// `GoldLogit` of the feature row x and the class row w, as the library calls it (`refined`: in
/// the chord form with the unit vectors to about u^2, as it does above `GoldLogit.chordFormAbove`).
private func goldLogit(x: [Double], w: [Double], m: Int, lambda: Double = 0, refined: Bool = false) -> GoldLogit {
    let margin = GoldLogit.Margin(m: m, lambda: lambda)
    let f = zip(x, w).reduce(0) { $0 + $1.0 * $1.1 }
    return x.withUnsafeBufferPointer { x in
        w.withUnsafeBufferPointer { w in
            GoldLogit(f: f, y: 0, angle: GoldLogit.measure(x.baseAddress!, w.baseAddress!, count: x.count,
                                                           classNorm: LSoftmax.norm(w.baseAddress!, count: w.count),
                                                           margin: margin, refined: refined),
                      margin: margin, chordForm: refined)
        }
    }
}

@Suite("L-Softmax psi")
struct PsiTests {
    @Test("psi from the chords equals (-1)^j cos(m theta) - 2j, m = 1 ... 8, theta over [0, pi]")
    func chordsEqualCosine() {
        for m in 1...8 {
            var worst = 0.0
            for step in 0...2000 {
                let theta = Double.pi * Double(step) / 2000
                let got = goldLogit(theta: theta, m: m).value
                worst = Swift.max(worst, abs(got - psiReference(theta, m: m)))
            }
            // w = (cos theta, sin theta) rounds theta by ~1e-16; psi's slope in theta is at most m.
            #expect(worst < 1e-14 * Double(m), "m = \(m): worst difference \(worst)")
        }
    }

    @Test("psi is continuous and decreasing on [0, pi]; psi(0) = 1, psi(pi) = 1 - 2m")
    func continuousAndDecreasing() {
        for m in 1...8 {
            let steps = 20000
            var previous = goldLogit(theta: 0, m: m).value
            #expect(abs(previous - 1) < 1e-15)
            var largestJump = 0.0
            for step in 1...steps {
                let theta = Double.pi * Double(step) / Double(steps)
                let value = goldLogit(theta: theta, m: m).value
                #expect(value <= previous + 1e-12, "m = \(m): psi rises at theta = \(theta)")
                largestJump = Swift.max(largestJump, previous - value)
                previous = value
            }
            // |dpsi/dtheta| <= m, so no step of pi/steps may jump by more than m pi/steps.
            #expect(largestJump <= Double(m) * Double.pi / Double(steps) + 1e-12, "m = \(m): jump \(largestJump)")
            #expect(abs(goldLogit(theta: Double.pi, m: m).value - Double(1 - 2 * m)) < 1e-12)
        }
    }

    @Test("the gradient terms are the derivatives of the gold logit (central differences in x and w)")
    func derivatives() {
        var rng = SplitMix64("psi derivatives")
        for m in 1...5 {
            for lambda in [0.0, 1, 100] {
                for _ in 0..<20 {
                    let d = 4
                    let x = (0..<d).map { _ in rng.normal() }, w = (0..<d).map { _ in rng.normal() }
                    func value(_ x: [Double], _ w: [Double]) -> Double {
                        goldLogit(x: x, w: w, m: m, lambda: lambda).value
                    }
                    let refined = goldLogit(x: x, w: w, m: m, lambda: lambda, refined: true)
                    let a = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    let b = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    let g = goldLogit(x: x, w: w, m: m, lambda: lambda)
                    for t in 0..<d {
                        let h = 1e-6
                        var xp = x, xm = x, wp = w, wm = w
                        xp[t] += h; xm[t] -= h; wp[t] += h; wm[t] -= h
                        let dx = (value(xp, w) - value(xm, w)) / (2 * h)
                        let dw = (value(x, wp) - value(x, wm)) / (2 * h)
                        // u = x / b, v = w / a and the short chord e = v - s u (GoldLogit's two forms).
                        let u = x[t] / b, v = w[t] / a
                        let wantX = g.productShare * w[t] + g.alongFeature(1) * u
                        let wantW = g.productShare * x[t] + g.alongClass(1) * v
                        #expect(isClose(wantX, dx, 1e-6), "m \(m) lambda \(lambda) d/dx[\(t)]")
                        #expect(isClose(wantW, dw, 1e-6), "m \(m) lambda \(lambda) d/dw[\(t)]")
                        let e = v - refined.chordSign * u
                        let chordX = refined.productShare * w[t] + (refined.bends
                            ? refined.radialFeature(1) * u + refined.chordFeature(1) * e : 0)
                        let chordW = refined.productShare * x[t] + (refined.bends
                            ? refined.radialClass(1) * v - refined.chordSign * refined.chordClass(1) * e : 0)
                        #expect(isClose(chordX, dx, 1e-6), "chord form: m \(m) lambda \(lambda) d/dx[\(t)]")
                        #expect(isClose(chordW, dw, 1e-6), "chord form: m \(m) lambda \(lambda) d/dw[\(t)]")
                        #expect(isClose(refined.value, g.value, 1e-13), "refined: the same value")
                    }
                }
            }
        }
    }
}

@Suite("Blocked products")
struct ProductTests {
    /// out = a b by the definition, in double.
    private func naive(_ a: [Double], aRow: Int, aColumn: Int, depth: Int, _ b: [Double], width: Int,
                       rows: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * width)
        for r in 0..<rows {
            for c in 0..<width {
                var s = 0.0
                for q in 0..<depth { s += a[r * aRow + q * aColumn] * b[q * width + c] }
                out[r * width + c] = s
            }
        }
        return out
    }

    private func check<T: StorageFloat>(_: T.Type, rows: Int, depth: Int, width: Int, transposedA: Bool,
                                        accumulate: Bool) {
        var rng = SplitMix64("product", "\(T.self) \(rows) \(depth) \(width) \(transposedA) \(accumulate)")
        let a = (0..<rows * depth).map { _ in rng.normal() }
        let b = (0..<depth * width).map { _ in rng.normal() }
        let start = (0..<rows * width).map { _ in rng.normal() }
        let (aRow, aColumn) = transposedA ? (1, rows) : (depth, 1)
        var want = naive(a, aRow: aRow, aColumn: aColumn, depth: depth, b, width: width, rows: rows)
        if accumulate { want = zip(want, start).map { $0 + $1 } }
        let a32 = a.map { T(rounding: $0) }, b32 = b.map { T(rounding: $0) }
        var out = start.map { T(rounding: $0) }
        var pack = [T](repeating: .nan, count: MatrixKernel.packSize)
        // The range's rows only: one row before and after is left alone.
        a32.withUnsafeBufferPointer { ap in
            b32.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    pack.withUnsafeMutableBufferPointer { pp in
                        MatrixKernel.combineRows(a: ap.baseAddress!, aRow: aRow, aColumn: aColumn, depth: depth,
                                                 b: bp.baseAddress!, bRow: width, width: width,
                                                 out: op.baseAddress!, outRow: width, rows: 0..<rows,
                                                 accumulate: accumulate, pack: pp.baseAddress!)
                    }
                }
            }
        }
        let tolerance = T.self == Float.self ? 1e-5 : 1e-13
        var worst = 0.0
        for (got, w) in zip(out, want) {
            worst = Swift.max(worst, abs(got.asDouble - w) / (depth > 0 ? Double(depth).squareRoot() : 1))
        }
        #expect(worst < tolerance, "\(T.self) rows \(rows) depth \(depth) width \(width): worst \(worst)")
    }

    @Test("against the definition: ragged rows, widths and depths, both layouts of a, float and double")
    func againstDefinition() {
        for (rows, depth, width) in [(1, 1, 1), (3, 5, 7), (4, 16, 32), (5, 129, 33), (9, 300, 261), (13, 7, 517),
                                     (2, 0, 5)] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    check(Float.self, rows: rows, depth: depth, width: width, transposedA: transposed,
                          accumulate: accumulate)
                    check(Double.self, rows: rows, depth: depth, width: width, transposedA: transposed,
                          accumulate: accumulate)
                }
            }
        }
    }
}

/// lk_lsoftmax_f64 with poisoned outputs.
private struct LSoftmaxOutput {
    var status: lk_status
    var loss: [Double]
    var dX: [Double]
    var dW: [Double]
    var message: String
}

private func callLSoftmax(_ opt: lk_options?, n: Int64, d: Int64, k: Int64, x: [Double]?, w: [Double]?,
                          gold: [Int32]?, weight: [Double]? = nil, lossCount: Int, dXCount: Int?,
                          dWCount: Int?) -> LSoftmaxOutput {
    var loss = [Double](repeating: poisonValue, count: lossCount)
    var dX = [Double](repeating: poisonValue, count: dXCount ?? 0)
    var dW = [Double](repeating: poisonValue, count: dWCount ?? 0)
    let status = withOptionalPointer(opt) { o in
        withOptionalBuffer(x) { xp in
            withOptionalBuffer(w) { wp in
                withOptionalBuffer(gold) { g in
                    withOptionalBuffer(weight) { wt in
                        loss.withUnsafeMutableBufferPointer { l in
                            dX.withUnsafeMutableBufferPointer { dx in
                                dW.withUnsafeMutableBufferPointer { dw in
                                    lk_lsoftmax_f64(o, n, d, k, xp, wp, g, wt, l.baseAddress,
                                                    dXCount == nil ? nil : dx.baseAddress,
                                                    dWCount == nil ? nil : dw.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return LSoftmaxOutput(status: status, loss: loss, dX: dX, dW: dW, message: String(cString: lk_last_error()))
}

private func lsoftmaxOptions(margin: Int32 = 2, lambda: Double = 0, reduction: Int32 = LK_REDUCE_MEAN) -> lk_options {
    var o = Setup(loss: LK_LOSS_LOG, reduction: reduction).options
    o.margin = margin
    o.lambda = lambda
    return o
}

@Suite("L-Softmax through the C API")
struct LSoftmaxCTests {
    let n = 5, d = 3, k = 4
    let x: [Double] = [0.5, -1, 2, 1, 0, -0.5, 0.25, 3, 1, -2, 0.75, 0, 0.1, 0.2, -0.3]
    let w: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1, -1, 1, 0.5]
    let gold: [Int32] = [0, 1, 2, 3, 1]

    @Test("m = 1 is the log loss on x w^T for any lambda: value and chained gradients")
    func marginOneIsLogLoss() {
        var logits = [Double](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { for t in 0..<d { logits[i * k + j] += x[i * d + t] * w[j * d + t] } } }
        let log = callDense(Setup(loss: LK_LOSS_LOG).options, n: Int64(n), k: Int64(k), scores: logits,
                            gold: gold, lossCount: 1, gradCount: n * k)
        #expect(log.status == LK_OK)
        // d_x = G w and d_w = G^T x, by the definition.
        var dX = [Double](repeating: 0, count: n * d), dW = [Double](repeating: 0, count: k * d)
        for i in 0..<n { for j in 0..<k { for t in 0..<d {
            dX[i * d + t] += log.grad[i * k + j] * w[j * d + t]
            dW[j * d + t] += log.grad[i * k + j] * x[i * d + t]
        } } }
        for lambda in [0.0, 1, 100] {
            let got = callLSoftmax(lsoftmaxOptions(margin: 1, lambda: lambda), n: Int64(n), d: Int64(d), k: Int64(k),
                                   x: x, w: w, gold: gold, lossCount: 1, dXCount: n * d, dWCount: k * d)
            #expect(got.status == LK_OK, "\(got.message)")
            #expect(isClose(got.loss[0], log.loss[0], 1e-14))
            for (a, b) in zip(got.dX, dX) { #expect(isClose(a, b, 1e-13)) }
            for (a, b) in zip(got.dW, dW) { #expect(isClose(a, b, 1e-13)) }
        }
    }

    @Test("ignored and zero-weight rows are not read: NaN there changes nothing, their d_x is 0")
    func skippedRowsAreNotRead() {
        var opt = lsoftmaxOptions(margin: 3, reduction: LK_REDUCE_SUM)
        opt.ignore_label = -1
        let base = callLSoftmax(opt, n: 3, d: Int64(d), k: Int64(k), x: Array(x[0..<9]), w: w, gold: [0, 1, 2],
                                weight: [1, 1, 1], lossCount: 1, dXCount: 3 * d, dWCount: k * d)
        var garbage = Array(x[0..<9]) + [.nan, .infinity, 1, .nan, -.infinity, 2]
        garbage[0] = x[0]
        let got = callLSoftmax(opt, n: 5, d: Int64(d), k: Int64(k), x: garbage, w: w, gold: [0, 1, 2, -1, 99],
                               weight: [1, 1, 1, 1, 0], lossCount: 1, dXCount: 5 * d, dWCount: k * d)
        #expect(got.status == LK_OK, "\(got.message)")
        #expect(got.loss == base.loss)
        #expect(Array(got.dX[0..<9]) == base.dX)
        #expect(got.dX[9...].allSatisfy { $0 == 0 })
        #expect(got.dW == base.dW)
    }

    @Test("n = 0 writes a zero loss and a zero d_w; a zero vector gives the plain logit, no NaN")
    func edges() {
        let empty = callLSoftmax(lsoftmaxOptions(), n: 0, d: 2, k: 3, x: nil, w: nil, gold: nil,
                                 lossCount: 1, dXCount: nil, dWCount: 6)
        #expect(empty.status == LK_OK && empty.loss == [0] && empty.dW == [Double](repeating: 0, count: 6))
        let zero = callLSoftmax(lsoftmaxOptions(margin: 4), n: 1, d: 2, k: 2, x: [0, 0], w: [1, 0, 0, 1], gold: [0],
                                lossCount: 1, dXCount: 2, dWCount: 4)
        #expect(zero.status == LK_OK)
        #expect(isClose(zero.loss[0], log(2), 1e-15))  // every logit is 0
        #expect(zero.dX.allSatisfy { $0.isFinite } && zero.dW.allSatisfy { $0.isFinite })
    }

    @Test("every error: status, a message naming the argument, outputs untouched")
    func errors() {
        struct Case { var what: String; var status: lk_status; var mention: String
            var opt: lk_options?; var n: Int64 = 5; var d: Int64 = 3; var k: Int64 = 4
            var x: [Double]?; var w: [Double]?; var gold: [Int32]?; var weight: [Double]? = nil }
        var badX = x; badX[7] = .infinity
        var badW = w; badW[4] = -.infinity
        var nanLambda = lsoftmaxOptions(); nanLambda.lambda = .nan
        var infLambda = lsoftmaxOptions(); infLambda.lambda = .infinity
        var small = lsoftmaxOptions(); small.size = 100
        var threads = lsoftmaxOptions(); threads.threads = -1
        var reduction = lsoftmaxOptions(); reduction.reduction = 7
        let cases: [Case] = [
            Case(what: "NULL opt", status: LK_ERR_NULL, mention: "opt", opt: nil, x: x, w: w, gold: gold),
            Case(what: "size", status: LK_ERR_OPTION, mention: "size", opt: small, x: x, w: w, gold: gold),
            Case(what: "margin 0", status: LK_ERR_OPTION, mention: "margin", opt: lsoftmaxOptions(margin: 0),
                 x: x, w: w, gold: gold),
            Case(what: "margin 1001", status: LK_ERR_OPTION, mention: "margin", opt: lsoftmaxOptions(margin: 1001),
                 x: x, w: w, gold: gold),
            Case(what: "lambda < 0", status: LK_ERR_OPTION, mention: "lambda", opt: lsoftmaxOptions(lambda: -1),
                 x: x, w: w, gold: gold),
            Case(what: "lambda NaN", status: LK_ERR_OPTION, mention: "lambda", opt: nanLambda, x: x, w: w, gold: gold),
            Case(what: "lambda inf", status: LK_ERR_OPTION, mention: "lambda", opt: infLambda, x: x, w: w, gold: gold),
            Case(what: "threads", status: LK_ERR_OPTION, mention: "threads", opt: threads, x: x, w: w, gold: gold),
            Case(what: "reduction", status: LK_ERR_OPTION, mention: "reduction", opt: reduction,
                 x: x, w: w, gold: gold),
            Case(what: "x NULL", status: LK_ERR_NULL, mention: "x", opt: lsoftmaxOptions(), x: nil, w: w, gold: gold),
            Case(what: "w NULL", status: LK_ERR_NULL, mention: "w", opt: lsoftmaxOptions(), x: x, w: nil, gold: gold),
            Case(what: "gold NULL", status: LK_ERR_NULL, mention: "gold", opt: lsoftmaxOptions(),
                 x: x, w: w, gold: nil),
            Case(what: "n < 0", status: LK_ERR_SIZE, mention: "n = -1", opt: lsoftmaxOptions(), n: -1,
                 x: x, w: w, gold: gold),
            Case(what: "d < 0", status: LK_ERR_SIZE, mention: "d = -3", opt: lsoftmaxOptions(), d: -3,
                 x: x, w: w, gold: gold),
            Case(what: "d = 0", status: LK_ERR_SIZE, mention: "d = 0", opt: lsoftmaxOptions(), d: 0,
                 x: x, w: w, gold: gold),
            Case(what: "k = 0", status: LK_ERR_SIZE, mention: "k = 0", opt: lsoftmaxOptions(), k: 0,
                 x: x, w: w, gold: gold),
            Case(what: "n * d overflow", status: LK_ERR_SIZE, mention: "overflow", opt: lsoftmaxOptions(),
                 n: 1 << 40, d: 1 << 30, x: x, w: w, gold: gold),
            Case(what: "gold", status: LK_ERR_LABEL, mention: "gold[2] = 4", opt: lsoftmaxOptions(),
                 x: x, w: w, gold: [0, 1, 4, 3, 1]),
            Case(what: "inf in x", status: LK_ERR_DOMAIN, mention: "x[2, 1]", opt: lsoftmaxOptions(),
                 x: badX, w: w, gold: gold),
            Case(what: "inf in w", status: LK_ERR_DOMAIN, mention: "w[1, 1]", opt: lsoftmaxOptions(),
                 x: x, w: badW, gold: gold),
            Case(what: "negative weight", status: LK_ERR_DOMAIN, mention: "weight[3]", opt: lsoftmaxOptions(),
                 x: x, w: w, gold: gold, weight: [1, 1, 1, -1, 1]),
            Case(what: "logit overflow", status: LK_ERR_DOMAIN, mention: "overflows", opt: lsoftmaxOptions(),
                 x: x.map { $0 * 1e160 }, w: w.map { $0 * 1e160 }, gold: gold),
        ]
        for c in cases {
            let got = callLSoftmax(c.opt, n: c.n, d: c.d, k: c.k, x: c.x, w: c.w, gold: c.gold, weight: c.weight,
                                   lossCount: n, dXCount: n * d, dWCount: k * d)
            #expect(got.status == c.status, "\(c.what): \(got.status) \(got.message)")
            #expect(got.message.contains(c.mention), "\(c.what): \(got.message)")
            #expect(got.loss.allSatisfy { $0 == poisonValue } && got.dX.allSatisfy { $0 == poisonValue }
                    && got.dW.allSatisfy { $0 == poisonValue }, "\(c.what): an output was written")
        }
        let ok = callLSoftmax(lsoftmaxOptions(), n: 5, d: 3, k: 4, x: x, w: w, gold: gold,
                              lossCount: 1, dXCount: 15, dWCount: 12)
        #expect(ok.status == LK_OK && ok.message.isEmpty)
    }
}

@Suite("Angular-margin losses")
struct AngularTests {
    @Test("CosFace and ArcFace on two classes: log(1 + exp(z1 - z0)) in closed form, and its gradient")
    func twoClasses() {
        let s = 30.0
        for (loss, m) in [(LK_LOSS_COSFACE, 0.35), (LK_LOSS_ARCFACE, 0.5), (LK_LOSS_ARCFACE, 2.9)] {
            for (c0, c1) in [(0.8, 0.1), (-0.3, 0.6), (-0.99, -0.5), (0.999, 0.2)] {
                var o = Setup(loss: loss).options
                o.angular_scale = s
                o.angular_margin = m
                let theta = acos(c0)
                let z0: Double, slope: Double
                if loss == LK_LOSS_COSFACE {
                    (z0, slope) = (s * (c0 - m), s)
                } else if theta + m < Double.pi {
                    (z0, slope) = (s * cos(theta + m), s * sin(theta + m) / sin(theta))
                } else {
                    (z0, slope) = (s * (c0 - m * sin(m)), s)
                }
                let z1 = s * c1
                let want = log1p(exp(z1 - z0))
                let p1 = 1 / (1 + exp(z0 - z1))
                let got = callDense(o, n: 1, k: 2, scores: [c0, c1], gold: [0], lossCount: 1, gradCount: 2)
                #expect(got.status == LK_OK, "\(got.message)")
                #expect(isClose(got.loss[0], want, 1e-13), "loss \(loss) m \(m) c \(c0), \(c1)")
                #expect(isClose(got.grad[0], -p1 * slope, 1e-12), "d/dc0: \(got.grad[0]) vs \(-p1 * slope)")
                #expect(isClose(got.grad[1], p1 * s, 1e-12))
            }
        }
    }

    @Test("ArcFace's threshold: cos m in double-double against 60-digit values (mpmath)")
    func cosineDoubleDouble() {
        // (m, hi, lo) with hi + lo = cos m to 2^-107, from mpmath.cos at 60 digits; the ends of
        // each argument reduction (0.78, 2.35) and m where cos m is near 0 (pi/2) or -1 (pi).
        let table: [(Double, Double, Double)] = [
            (0.5, 0x1.c1528065b7d50p-1, -0x1.892111312e828p-55),
            (1.5707963267948966, 0x1.1a62633145c07p-54, -0x1.f1976b7ed8fbcp-110),
            (3.0, -0x1.fae04be85e5d2p-1, -0x1.83effc17efb54p-55),
            (0.78, 0x1.6bfcdbf817bfap-1, 0x1.5242555683f8bp-55),
            (2.35, -0x1.67ca02266d8b1p-1, 0x1.a99d0638a47a2p-55),
            (1e-3, 0x1.ffffef390876cp-1, -0x1.20ee49f228c2cp-57),
            (3.141592653589793, -1, 0x1.377ce858a5d48p-107),
        ]
        for (m, hi, lo) in table {
            let got = CosineDD.of(m)
            #expect(got.hi == hi, "cos \(m): hi \(got.hi) vs \(hi)")
            #expect(abs(got.lo - lo) <= 0x1p-100 * abs(hi), "cos \(m): lo \(got.lo) vs \(lo)")
        }
    }

    @Test("defaults, options and structures: m 0.35 / 0.5, s 64; bad s, m are LK_ERR_OPTION; lists reject them")
    func options() {
        var o = lk_options()
        #expect(lk_options_init(&o, LK_LOSS_COSFACE) == LK_OK && o.angular_margin == 0.35 && o.angular_scale == 64)
        #expect(lk_options_init(&o, LK_LOSS_ARCFACE) == LK_OK && o.angular_margin == 0.5)
        for (scale, margin) in [(0.0, 0.5), (-1, 0.5), (.nan, 0.5), (.infinity, 0.5), (64, -0.1), (64, 3.2),
                                (64, .nan)] {
            var bad = Setup(loss: LK_LOSS_ARCFACE).options
            bad.angular_scale = scale
            bad.angular_margin = margin
            let got = callDense(bad, n: 1, k: 2, scores: [0.1, 0.2], gold: [0], lossCount: 1, gradCount: 2)
            #expect(got.status == LK_ERR_OPTION && got.message.contains("angular"),
                    "s \(scale) m \(margin): \(got.message)")
            #expect(got.loss == [poisonValue] && got.grad == [poisonValue, poisonValue])
        }
        var huge = Setup(loss: LK_LOSS_COSFACE).options
        huge.angular_scale = 3e38  // s (1 + 0.35) > FLT_MAX
        let f32 = callDense(huge, n: 1, k: 2, scores: [Float(0.1), 0.2], gold: [0], lossCount: 1, gradCount: 2)
        #expect(f32.status == LK_ERR_OPTION, "float32 logits of s (1 + m) overflow: \(f32.message)")
        #expect(callDense(huge, n: 1, k: 2, scores: [0.1, 0.2], gold: [0], lossCount: 1, gradCount: 2).status == LK_OK)
        let lists = callLists(Setup(loss: LK_LOSS_COSFACE).options, n: 1, offsets: [0, 2], scores: [0.1, 0.2],
                              gold: [0], lossCount: 1, gradCount: 2)
        #expect(lists.status == LK_ERR_UNSUPPORTED && lists.message.contains("dense"))
    }
}
