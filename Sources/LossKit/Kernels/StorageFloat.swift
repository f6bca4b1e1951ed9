/// The storage types of the C API — `Float` for the `_f32` entry points, `Double` for `_f64` —
/// and the SIMD vocabulary the row kernels are written in, once, for both.
///
/// Width: `Vector` is SIMD8<Float> / SIMD4<Double> (two SSE registers or one AVX2 register),
/// or SIMD16<Float> / SIMD8<Double> when built for AVX-512 (`-D LK_WIDE`). `-D LK_FMA` (set for
/// every level from AVX2 up) turns `fma` into a fused multiply-add; without it `addingProduct`
/// would call `fmaf` once per lane (DESIGN.md §7), so the baseline multiplies and adds.
///
/// Selects are built from sign bits (`signMask`): stdlib SIMD comparisons produce `SIMDMask`
/// values that LLVM often scalarises inside real kernels.
protocol StorageFloat: BinaryFloatingPoint, Sendable, Codable {
    associatedtype Vector: SIMD where Vector.Scalar == Self
    /// The same lanes as signed integers of the same width (the bits of `Vector`).
    associatedtype Bits: SIMD where Bits.Scalar: FixedWidthInteger & SignedInteger

    /// `self` widened to `Double` (exact for both conforming types).
    var asDouble: Double { get }
    /// `value` rounded to nearest.
    init(rounding value: Double)

    static func bits(_ v: Vector) -> Bits
    static func vector(_ b: Bits) -> Vector
    /// a * b + c (fused when the build has FMA).
    static func fma(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector
    /// exp(x) for x <= 0, -inf (-> 0) and NaN (-> NaN), the range the losses need (every
    /// exponent is shifted by a max). Error <= 2 ulp down to the smallest normal; below it the
    /// result underflows gradually (a subnormal within an ulp of subnormal spacing), so that
    /// many tiny terms still add up to a normal sum (a near-zero loss). Positive x is outside
    /// the domain.
    static func expNonPositive(_ x: Vector) -> Vector
    /// The lane index vector 0, 1, 2, ... as `Bits`.
    static var laneIndices: Bits { get }
    /// The sum of the lanes (a tree of halves in the storage type, then double), and their max:
    /// a handful of instructions where a loop over the lanes would take a dependent add each.
    static func sumOfLanes(_ v: Vector) -> Double
    static func maxOfLanes(_ v: Vector) -> Self
}

extension StorageFloat {
    static var laneCount: Int { Vector.scalarCount }

    /// a * b + c on scalars, rounded as `fma` rounds each lane of a vector (fused when the
    /// build has FMA), so that a value recomputed alone compares equal to the kernels' (ties).
    @_transparent static func fma(_ a: Self, _ b: Self, _ c: Self) -> Self {
        #if LK_FMA
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    /// All ones in the lanes where the sign bit of `v` is set (v < 0, -0, or a negative NaN).
    @_transparent static func signMask(_ v: Vector) -> Bits {
        bits(v) &>> Bits(repeating: Bits.Scalar(Bits.Scalar.bitWidth - 1))
    }
    /// All ones in the lanes where `b` is not zero: x | -x has its sign bit set iff x != 0.
    @_transparent static func nonZeroMask(_ b: Bits) -> Bits {
        (b | (Bits(repeating: 0) &- b)) &>> Bits(repeating: Bits.Scalar(Bits.Scalar.bitWidth - 1))
    }
    /// mask ? a : b, lane by lane.
    @_transparent static func select(_ mask: Bits, _ a: Vector, _ b: Vector) -> Vector {
        vector((bits(a) & mask) | (bits(b) & ~mask))
    }
    /// Lanes of `v` where `mask` is set, 0 elsewhere.
    @_transparent static func keep(_ mask: Bits, _ v: Vector) -> Vector { vector(bits(v) & mask) }
    /// max(a, b) lane by lane: b where a - b < 0. (-inf - -inf is NaN: either lane is -inf.)
    @_transparent static func maximum(_ a: Vector, _ b: Vector) -> Vector {
        select(signMask(a - b), b, a)
    }
    /// All ones in the lanes that hold NaN: as integers, |v| > +inf exactly for NaN.
    @_transparent static func nanMask(_ v: Vector) -> Bits {
        let magnitude = bits(v) & Bits(repeating: Bits.Scalar.max)  // the sign bit cleared
        let signShift = Bits(repeating: Bits.Scalar(Bits.Scalar.bitWidth - 1))
        return (bits(Vector(repeating: .infinity)) &- magnitude) &>> signShift
    }
    /// All ones in the lanes that hold a finite value: as integers, |v| < +inf exactly then.
    @_transparent static func finiteMask(_ v: Vector) -> Bits {
        let magnitude = bits(v) & Bits(repeating: Bits.Scalar.max)
        let signShift = Bits(repeating: Bits.Scalar(Bits.Scalar.bitWidth - 1))
        return (magnitude &- bits(Vector(repeating: .infinity))) &>> signShift
    }
    /// All ones in the lanes that equal `value` exactly (bit for bit).
    @_transparent static func equalMask(_ v: Vector, _ value: Vector) -> Bits {
        ~nonZeroMask(bits(v) ^ bits(value))
    }
}

extension Float: StorageFloat {
    #if LK_WIDE
    typealias Vector = SIMD16<Float>
    typealias Bits = SIMD16<Int32>
    #else
    typealias Vector = SIMD8<Float>
    typealias Bits = SIMD8<Int32>
    #endif

    @_transparent var asDouble: Double { Double(self) }
    @_transparent init(rounding value: Double) { self = Float(value) }
    @_transparent static func bits(_ v: Vector) -> Bits { unsafeBitCast(v, to: Bits.self) }
    @_transparent static func vector(_ b: Bits) -> Vector { unsafeBitCast(b, to: Vector.self) }
    @_transparent static func fma(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector {
        #if LK_FMA
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }
    static let laneIndices: Bits = {
        var v = Bits(repeating: 0)
        for i in 0..<Bits.scalarCount { v[i] = Int32(i) }
        return v
    }()

    @inline(__always) static func sumOfLanes(_ v: Vector) -> Double {
        #if LK_WIDE
        let h8 = v.lowHalf + v.highHalf
        #else
        let h8 = v
        #endif
        let h4 = h8.lowHalf + h8.highHalf
        let h2 = h4.lowHalf + h4.highHalf
        return Double(h2[0]) + Double(h2[1])
    }

    @inline(__always) static func maxOfLanes(_ v: Vector) -> Float {
        #if LK_WIDE
        let h8 = halfMax(v.lowHalf, v.highHalf, SIMD8<Int32>.self)
        #else
        let h8 = v
        #endif
        let h4 = halfMax(h8.lowHalf, h8.highHalf, SIMD4<Int32>.self)
        let a = Swift.max(h4[0], h4[1]), b = Swift.max(h4[2], h4[3])
        return Swift.max(a, b)
    }

    /// exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (Cody-Waite, two parts), and
    /// 1 + r + r^2 q(r) for exp(r) on [-ln2/2, ln2/2], q of degree 4 fitted for least relative
    /// error (0.05 ulp of float; Lawson's iteration, see bench/README.md), evaluated by Estrin's
    /// scheme for a short dependency chain. n is rounded by adding 1.5 * 2^23, whose low bits
    /// then hold n, so 2^(n + 64) is built from them directly (a normal number for every n the
    /// domain gives, down to -150) and the result multiplied by 2^-64 last: exact for a normal
    /// result, and rounded into the subnormals below FLT_MIN (gradual underflow), at the cost of
    /// one multiply. Lanes below -104 (exp below half the smallest subnormal, and -inf) are
    /// zeroed at the end, which also discards what the exponent trick made of them; NaN (whose
    /// sign bit may be set, as x86's default NaN's is) propagates. x up to 43 (n <= 63) still
    /// comes out right, which the centred exponents' small positive excess needs.
    @inline(__always) static func expNonPositive(_ x: Vector) -> Vector {
        let underflow = signMask(x - Vector(repeating: -104))
        let magic = Vector(repeating: 12582912.0)
        let shifted = fma(x, Vector(repeating: 1.44269504088896341), magic)
        let n = shifted - magic
        let r = fma(n, Vector(repeating: 2.12194440e-4), fma(n, Vector(repeating: -0.693359375), x))
        let r2 = r * r
        let c23 = fma(r, Vector(repeating: 0.16666521131992340), Vector(repeating: 0.49999994039535522))
        let c45 = fma(r, Vector(repeating: 0.0083687100559473038), Vector(repeating: 0.041668388992547989))
        let c456 = fma(r2, Vector(repeating: 0.0013814612757414579), c45)
        let p = fma(r2, fma(r2, c456, c23), r + 1)
        let scale = vector((bits(shifted) &- Bits(repeating: 0x4B40_0000 - 127 - 64)) &<< Bits(repeating: 23))
        // NaN of either sign stays NaN.
        return vector(bits(p * scale * Vector(repeating: 0x1p-64)) & ~(underflow & ~nanMask(x)))
    }
}

extension Double: StorageFloat {
    #if LK_WIDE
    typealias Vector = SIMD8<Double>
    typealias Bits = SIMD8<Int64>
    #else
    typealias Vector = SIMD4<Double>
    typealias Bits = SIMD4<Int64>
    #endif

    @_transparent var asDouble: Double { self }
    @_transparent init(rounding value: Double) { self = value }
    @_transparent static func bits(_ v: Vector) -> Bits { unsafeBitCast(v, to: Bits.self) }
    @_transparent static func vector(_ b: Bits) -> Vector { unsafeBitCast(b, to: Vector.self) }
    @_transparent static func fma(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector {
        #if LK_FMA
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }
    static let laneIndices: Bits = {
        var v = Bits(repeating: 0)
        for i in 0..<Bits.scalarCount { v[i] = Int64(i) }
        return v
    }()

    @inline(__always) static func sumOfLanes(_ v: Vector) -> Double {
        #if LK_WIDE
        let h4 = v.lowHalf + v.highHalf
        #else
        let h4 = v
        #endif
        let h2 = h4.lowHalf + h4.highHalf
        return h2[0] + h2[1]
    }

    @inline(__always) static func maxOfLanes(_ v: Vector) -> Double {
        #if LK_WIDE
        let h4 = halfMax(v.lowHalf, v.highHalf, SIMD4<Int64>.self)
        #else
        let h4 = v
        #endif
        let a = Swift.max(h4[0], h4[1]), b = Swift.max(h4[2], h4[3])
        return Swift.max(a, b)
    }

    /// As Float.expNonPositive, in double: round with 1.5 * 2^52, ln 2 in two parts (the high
    /// part has 32 significant bits, so n * high is exact), and the Taylor polynomial of degree
    /// 13 (remainder (ln2/2)^14 / 14! < 2e-17). 2^(n + 64) times 2^-64 as in Float (gradual
    /// underflow below DBL_MIN); lanes below -746 (exp under half the smallest subnormal) are 0.
    @inline(__always) static func expNonPositive(_ x: Vector) -> Vector {
        let underflow = signMask(x - Vector(repeating: -746))
        let magic = Vector(repeating: 6755399441055744.0)
        let shifted = fma(x, Vector(repeating: 1.4426950408889634), magic)
        let n = shifted - magic
        let r = fma(n, Vector(repeating: -1.9082149292705877e-10),
                    fma(n, Vector(repeating: -0.6931471803691238), x))
        let r2 = r * r
        let r4 = r2 * r2
        // 1 + r + r^2/2! + ... + r^13/13!, in pairs (Estrin).
        let q0 = fma(r, Vector(repeating: 1.0), Vector(repeating: 1.0))
        let q1 = fma(r, Vector(repeating: 1.0 / 6), Vector(repeating: 1.0 / 2))
        let q2 = fma(r, Vector(repeating: 1.0 / 120), Vector(repeating: 1.0 / 24))
        let q3 = fma(r, Vector(repeating: 1.0 / 5040), Vector(repeating: 1.0 / 720))
        let q4 = fma(r, Vector(repeating: 1.0 / 362880), Vector(repeating: 1.0 / 40320))
        let q5 = fma(r, Vector(repeating: 1.0 / 39916800), Vector(repeating: 1.0 / 3628800))
        let q6 = fma(r, Vector(repeating: 1.0 / 6227020800), Vector(repeating: 1.0 / 479001600))
        let s01 = fma(r2, q1, q0)
        let s23 = fma(r2, q3, q2)
        let s45 = fma(r2, q5, q4)
        let s0123 = fma(r4, s23, s01)
        let s456 = fma(r4, q6, s45)
        let p = fma(r4 * r4, s456, s0123)
        let scale = vector((bits(shifted) &- Bits(repeating: 0x4338_0000_0000_0000 - 1023 - 64))
                           &<< Bits(repeating: 52))
        // NaN of either sign stays NaN.
        return vector(bits(p * scale * Vector(repeating: 0x1p-64)) & ~(underflow & ~nanMask(x)))
    }
}

/// max(a, b) lane by lane for the narrower vectors of the reductions: b where a - b < 0, from
/// the sign bit as in StorageFloat.maximum (B: the integer vector of the same lanes).
@inline(__always) func halfMax<V: SIMD, B: SIMD>(_ a: V, _ b: V, _: B.Type) -> V
    where V.Scalar: FloatingPoint, B.Scalar: FixedWidthInteger & SignedInteger
{
    let difference = unsafeBitCast(a - b, to: B.self)
    let takeB = difference &>> B(repeating: B.Scalar(B.Scalar.bitWidth - 1))
    return unsafeBitCast((unsafeBitCast(b, to: B.self) & takeB) | (unsafeBitCast(a, to: B.self) & ~takeB), to: V.self)
}
