// The vector exp of the kernels (Kernels/StorageFloat.swift), against libm in double: error <= 2
// ulp over the whole domain the losses use (x <= 0), and the edges.
import Glibc
@testable import LossKit
import Testing

/// Runs `expNonPositive` of `T` on `xs`, a vector at a time.
private func vectorExp<T: StorageFloat>(_ xs: [T]) -> [T] {
    var out = [T]()
    out.reserveCapacity(xs.count)
    var i = 0
    while i < xs.count {
        var v = T.Vector(repeating: 0)
        for lane in 0..<T.laneCount where i + lane < xs.count { v[lane] = xs[i + lane] }
        let e = T.expNonPositive(v)
        for lane in 0..<T.laneCount where i + lane < xs.count { out.append(e[lane]) }
        i += T.laneCount
    }
    return out
}

/// |got - exact| in units of the last place of the exact value rounded to T.
private func ulps<T: StorageFloat>(_ got: T, _ exact: Double) -> Double {
    let rounded = T(rounding: exact)
    return abs(got.asDouble - exact) / rounded.ulp.asDouble
}

@Suite("Vector exp")
struct ExpTests {
    @Test("float32: <= 2 ulp on [-87.33, 0], exact at 0")
    func float32Accuracy() {
        var xs: [Float] = (0..<400_000).map { -87.3365 * Float($0) / 400_000 }
        xs += [0, -0.0, -1e-8, -1e-30, -Float.leastNonzeroMagnitude, -0.5, -1, -2, -10, -50, -87.33]
        var worst = 0.0, at: Float = 0
        for (x, e) in zip(xs, vectorExp(xs)) {
            let error = ulps(e, exp(Double(x)))
            if error > worst { (worst, at) = (error, x) }
        }
        #expect(worst <= 2, "worst \(worst) ulp at x = \(at)")
        #expect(vectorExp([Float(0)]) == [1])
    }

    @Test("float64: <= 2 ulp on [-708.39, 0], exact at 0")
    func float64Accuracy() {
        var xs: [Double] = (0..<400_000).map { -708.39 * Double($0) / 400_000 }
        xs += [0, -0.0, -1e-17, -1e-300, -0.5, -1, -2, -10, -700]
        var worst = 0.0, at = 0.0
        for (x, e) in zip(xs, vectorExp(xs)) {
            let error = ulps(e, exp(x))  // glibc's exp is within 1 ulp itself
            if error > worst { (worst, at) = (error, x) }
        }
        #expect(worst <= 2, "worst \(worst) ulp at x = \(at)")
        #expect(vectorExp([0.0]) == [1])
    }

    @Test("edges: -inf and far below the subnormals -> 0, NaN -> NaN")
    func edges() {
        // NaN of either sign (x86's default NaN, from 0/0 or inf - inf, has its sign bit set).
        let f = vectorExp([-Float.infinity, -1000, -Float.greatestFiniteMagnitude, -104.5, -200,
                           Float.nan, -Float.nan])
        #expect(f[0] == 0 && f[1] == 0 && f[2] == 0 && f[3] == 0 && f[4] == 0)
        #expect(f[5].isNaN && f[6].isNaN)
        let d = vectorExp([-Double.infinity, -1e6, -Double.greatestFiniteMagnitude, -746.5,
                           Double.nan, -Double.nan])
        #expect(d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0)
        #expect(d[4].isNaN && d[5].isNaN)
    }

    @Test("below the normal range the result underflows gradually, within one subnormal spacing")
    func gradualUnderflow() {
        // Reference: libm's exp in double. The kernel's error is at most 2 ulp of the normal
        // result it scales down (at most 2 subnormal spacings) plus the final rounding (half a
        // spacing): within 3 spacings.
        let xs: [Float] = (0..<20_000).map { -87.33 - 16.6 * Float($0) / 20_000 }
        for (x, e) in zip(xs, vectorExp(xs)) {
            let exact = Glibc.exp(Double(x))
            #expect(abs(Double(e) - exact) <= 3 * Double(Float.leastNonzeroMagnitude), "x = \(x): \(e) vs \(exact)")
        }
        // Double: the same bound in double's subnormal spacing.
        let ds: [Double] = (0..<20_000).map { -708.3 - 37.0 * Double($0) / 20_000 }
        for (x, e) in zip(ds, vectorExp(ds)) {
            let exact = Glibc.exp(x)
            #expect(abs(e - exact) <= 3 * Double.leastNonzeroMagnitude, "x = \(x): \(e) vs \(exact)")
        }
    }
}
