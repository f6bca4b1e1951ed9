/// bfloat16 storage (lk_*_bf16): IEEE binary32's upper 16 bits (sign, 8 exponent bits, 7
/// fraction bits). Every bfloat16 is a float, so a row is widened to float exactly and the float
/// code runs on it unchanged (every sum in float or double); results are narrowed once, round to
/// nearest even, at the end.
enum BFloat16 {
    /// The float whose upper half `bits` is: exact.
    @_transparent static func widen(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `value` rounded to nearest even; a NaN stays a (quiet) NaN of its sign, a value past the
    /// largest bfloat16 by half an ulp or more becomes infinite.
    @_transparent static func narrow(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16)
    }

    /// `count` bfloat16 values widened into `into`.
    @inline(__always) static func widen(_ bits: UnsafePointer<UInt16>, count: Int, into: UnsafeMutablePointer<Float>) {
        var j = 0
        while j + 16 <= count {
            let v = UnsafeRawPointer(bits + j).loadUnaligned(as: SIMD16<UInt16>.self)
            let wide = SIMD16<UInt32>(truncatingIfNeeded: v) &<< 16
            UnsafeMutableRawPointer(into + j).storeBytes(of: unsafeBitCast(wide, to: SIMD16<Float>.self),
                                                         as: SIMD16<Float>.self)
            j += 16
        }
        while j < count {
            into[j] = widen(bits[j])
            j += 1
        }
    }

    /// `count` floats narrowed into `into` (round to nearest even).
    @inline(__always) static func narrow(_ values: UnsafePointer<Float>, count: Int, into: UnsafeMutablePointer<UInt16>) {
        var j = 0
        while j + 16 <= count {
            let bits = UnsafeRawPointer(values + j).loadUnaligned(as: SIMD16<Int32>.self)
            let rounded = (bits &+ 0x7fff &+ ((bits &>> 16) & 1)) &>> 16
            // NaN lanes (|bits| above inf's, as integers): their own upper half, made quiet
            // (rounding could carry a NaN's fraction into inf). All ones where NaN.
            let nan = (0x7f80_0000 &- (bits & 0x7fff_ffff)) &>> 31
            let result = (rounded & ~nan) | (((bits &>> 16) | 0x40) & nan)
            UnsafeMutableRawPointer(into + j).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: result),
                                                         as: SIMD16<UInt16>.self)
            j += 16
        }
        while j < count {
            into[j] = narrow(values[j])
            j += 1
        }
    }
}

/// An input as the loss code reads it (scores, features, class weights): values of T in place,
/// or bfloat16 bits widened a row at a time into a scratch row (T = Float: lk_dense_bf16,
/// lk_linear_bf16). Exactly one is set.
struct Source<T: StorageFloat> {
    let values: UnsafePointer<T>?
    let bfloat16: UnsafePointer<UInt16>?

    init(_ values: UnsafePointer<T>) { self.values = values; bfloat16 = nil }
    init(bfloat16: UnsafePointer<UInt16>) { values = nil; self.bfloat16 = bfloat16 }

    var address: UnsafeRawPointer { values.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bfloat16!) }

    /// Whether a read needs a scratch row (`span`'s `into`).
    var isWidened: Bool { values == nil }

    /// The values first ..< first + count copied (or widened) into `into`.
    @inline(__always) func copy(_ first: Int, _ count: Int, into: UnsafeMutablePointer<T>) {
        if let values { into.update(from: values + first, count: count); return }
        _ = span(first, count, into: into)
    }

    /// The values first ..< first + count: in place, or widened into `into` (count values).
    @inline(__always) func span(_ first: Int, _ count: Int, into: UnsafeMutablePointer<T>?) -> UnsafePointer<T> {
        if let values { return values + first }
        let row = UnsafeMutableRawPointer(into!).assumingMemoryBound(to: Float.self)
        BFloat16.widen(bfloat16! + first, count: count, into: row)
        return UnsafePointer(into!)
    }
}

/// Where a gradient goes: values of T in place (`values`, NULL for none), and/or bfloat16 bits
/// narrowed from them (T = Float: lk_dense_bf16's grad beside grad_f32, lk_linear_bf16's d_x and
/// d_w beside their float buffers). With bfloat16 and no float buffer, each row is computed in a
/// scratch row (`row`'s `scratch`) and narrowed from it.
struct GradientSink<T: StorageFloat> {
    let values: UnsafeMutablePointer<T>?
    let bfloat16: UnsafeMutablePointer<UInt16>?

    init(_ values: UnsafeMutablePointer<T>?, bfloat16: UnsafeMutablePointer<UInt16>? = nil) {
        self.values = values
        self.bfloat16 = bfloat16
    }

    var isWritten: Bool { values != nil || bfloat16 != nil }
    /// Whether a row needs a scratch row of its own.
    var needsScratch: Bool { values == nil && bfloat16 != nil }

    /// Where the loss writes the gradient of values first ..< first + count; nil for none.
    @inline(__always) func row(_ first: Int, scratch: UnsafeMutablePointer<T>?) -> UnsafeMutablePointer<T>? {
        if let values { return values + first }
        return bfloat16 == nil ? nil : scratch
    }

    /// The row `row` returned, narrowed into the bfloat16 buffer (if any).
    @inline(__always) func commit(_ first: Int, _ count: Int, _ row: UnsafeMutablePointer<T>?) {
        guard let bfloat16, let row else { return }
        BFloat16.narrow(UnsafeRawPointer(row).assumingMemoryBound(to: Float.self), count: count, into: bfloat16 + first)
    }

    /// Zeroes values first ..< first + count (an example that is not read).
    @inline(__always) func zero(_ first: Int, _ count: Int) {
        values?.advanced(by: first).update(repeating: 0, count: count)
        bfloat16?.advanced(by: first).update(repeating: 0, count: count)
    }
}
