/// The storage types of the C API: `Float` for the `_f32` entry points, `Double` for `_f64`.
///
/// Arithmetic is done in `Double` for both (DESIGN.md §2 "Accuracy": sums accumulate in
/// double); values are widened when loaded and rounded once when stored.
protocol Real: BinaryFloatingPoint, Sendable {
    /// `self` widened to `Double` (exact for both conforming types).
    var wide: Double { get }
    /// `value` rounded to nearest.
    init(rounding value: Double)
}

extension Float: Real {
    @_transparent var wide: Double { Double(self) }
    @_transparent init(rounding value: Double) { self = Float(value) }
}

extension Double: Real {
    @_transparent var wide: Double { self }
    @_transparent init(rounding value: Double) { self = value }
}
