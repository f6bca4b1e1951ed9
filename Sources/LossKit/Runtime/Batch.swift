#if canImport(Glibc)
import Glibc
#endif

/// Weights, ignored examples and reductions (DESIGN.md §3), shared by every structure, and the
/// computing pass over chunks of examples (Parallel.swift).
///
/// An example is *ignored* when the structure says so (dense rows: gold == ignore_label); it is
/// *skipped* when ignored or when its weight is exactly 0. Skipped examples are not read beyond
/// their weight and label, add exactly 0 and get a zero gradient; only ignored ones are left
/// out of the mean's denominator (a zero weight adds 0 to it anyway).
struct Batch<T: StorageFloat> {
    let count: Int
    let weights: UnsafePointer<T>?
    let reduction: Reduction

    @inline(__always) func weight(_ i: Int) -> Double { weights.map { $0[i].asDouble } ?? 1 }

    /// Whether example `i`, not ignored, is skipped for a zero weight.
    @inline(__always) func hasZeroWeight(_ i: Int) -> Bool { weight(i) == 0 }

    /// A weight that is read must be finite and >= 0.
    func checkWeight(_ i: Int) throws(Failure) {
        let w = weight(i)
        guard w >= 0, w.isFinite else {
            throw .domain("weight[\(i)] = \(w) must be finite and >= 0")
        }
    }

    /// What SUM and MEAN write for an empty batch.
    static func writeEmpty(_ loss: UnsafeMutablePointer<T>?, _ reduction: Reduction) {
        if reduction != .none { loss?.pointee = 0 }
    }

    /// The mean's denominator: the summed weight of the examples that are not ignored (1 for
    /// SUM and NONE). Part of validation: a sum that overflows is LK_ERR_DOMAIN.
    func denominator(isIgnored: (Int) -> Bool) throws(Failure) -> Double {
        guard reduction == .mean else { return 1 }
        var counted = 0.0
        for i in 0..<count where !isIgnored(i) { counted += weight(i) }
        guard counted.isFinite else {
            throw .domain("the summed weight of the examples overflows (\(counted)); the mean is undefined")
        }
        return counted
    }

    /// Runs `check(i, worker)` for every example, chunk by chunk on up to `threads` threads,
    /// and throws the failure of the lowest example, as a sequential scan would.
    func validate(_ chunks: Chunks, threads: Int, _ check: (_ i: Int, _ worker: Int) throws(Failure) -> Void)
        throws(Failure)
    {
        try validateChunks(chunks, threads: threads) { (chunk: Int, worker: Int) throws(Failure) in
            for i in chunks.range(chunk) { try check(i, worker) }
        }
    }

    /// Runs `check(chunk, worker)` for every chunk on up to `threads` threads, and throws the
    /// failure of the lowest chunk (each chunk throwing its lowest example's).
    func validateChunks(_ chunks: Chunks, threads: Int,
                        _ check: (_ chunk: Int, _ worker: Int) throws(Failure) -> Void) throws(Failure) {
        if threads <= 1 {
            for chunk in 0..<chunks.count { try check(chunk, 0) }
            return
        }
        var failures = [Failure?](repeating: nil, count: chunks.count)
        failures.withUnsafeMutableBufferPointer { failures in
            Parallel.forEach(chunks: chunks.count, threads: threads) { chunk, worker in
                do throws(Failure) {
                    try check(chunk, worker)
                } catch {
                    failures[chunk] = error
                }
            }
        }
        if let first = failures.lazy.compactMap({ $0 }).first { throw first }
    }

    /// sum (w 2^-550) (loss 2^-550) = 2^-unitShift sum w loss cannot overflow: each term is below
    /// 2^-76 DBL_MAX. A term lost to underflow is below 2^26 in the true units, far below the
    /// rounding of a sum that needs this one (some term near DBL_MAX or beyond).
    static var unitShift: Int { 1100 }
    static var halfUnit: Double { 0x1p-550 }

    /// The room `run` needs in `partials` for `chunks` chunks (three sums each).
    static func partialCount(_ chunks: Int) -> Int { 3 * chunks }

    /// The computing pass over validated input, chunk by chunk on up to `threads` threads.
    /// `evaluate(i, c, worker, chunk)` returns example i's unweighted loss and sets its gradient
    /// to c times the loss's gradient; `skip(i)` zeroes example i's gradient. `counted` is what
    /// `denominator` returned; `partials` has room for three values per chunk (`partialCount`).
    func run(loss: UnsafeMutablePointer<T>?, counted: Double,
             chunks: Chunks, threads: Int, partials: Scratch<Double>,
             isIgnored: (Int) -> Bool,
             skip: (Int) -> Void,
             evaluate: (_ i: Int, _ coefficient: Double, _ worker: Int, _ chunk: Int) -> Double,
             weighted: (_ i: Int, _ factor: Double, _ worker: Int, _ chunk: Int) -> Double? = { _, _, _, _ in nil })
    {
        Parallel.forEach(chunks: chunks.count, threads: threads) { chunk, worker in
            // Three sums of the weighted losses, one multiply-add each per example; the first
            // keeps the bits of ordinary results. Each term w loss can reach DBL_MAX^2, so the
            // plain sum may overflow, or meet +inf and -inf (losses of both signs), where the
            // result does not: the mean is also summed as sum (w / counted) loss (at most the
            // largest loss), and every reduction in units of 2^-1100 (`unitShift`), whose terms
            // cannot overflow (error: u times the sum of the terms' magnitudes, as for the plain sum).
            var total = 0.0, scaled = 0.0, small = 0.0
            for i in chunks.range(chunk) {
                let w = isIgnored(i) ? 0 : weight(i)
                if w == 0 {
                    skip(i)
                    if reduction == .none { loss?[i] = 0 }
                    continue
                }
                let coefficient = reduction == .mean ? w / counted : w
                let value = evaluate(i, coefficient, worker, chunk)
                // An example's own loss beyond the double range, which a coefficient below 1
                // (its weight, over the summed weight under MEAN) brings back into it: the
                // coefficient times the loss as the structure forms it apart (`weighted`), if it
                // can; w times the loss is that times `counted` (1 but under MEAN).
                if value.isInfinite, coefficient < 1, let product = weighted(i, coefficient, worker, chunk),
                   product.isFinite {
                    let factor = reduction == .mean ? counted : 1
                    total += product * factor
                    scaled += product
                    small += (product * Self.halfUnit) * (factor * Self.halfUnit)
                    if reduction == .none { loss?[i] = T(rounding: product) }
                    continue
                }
                total += w * value
                scaled += coefficient * value
                small += (w * Self.halfUnit) * (value * Self.halfUnit)
                if reduction == .none { loss?[i] = T(rounding: w * value) }
            }
            partials[3 * chunk] = total
            partials[3 * chunk + 1] = scaled
            partials[3 * chunk + 2] = small
        }
        // Partial sums added in chunk order: the same bits at any thread count.
        var total = 0.0, scaled = 0.0, small = 0.0
        for chunk in 0..<chunks.count {
            total += partials[3 * chunk]
            scaled += partials[3 * chunk + 1]
            small += partials[3 * chunk + 2]
        }
        // Where the plain sum is not finite, the small one says whether that is an overflow of
        // the partial sums (a finite result, or the +-inf of the true sum's sign) or the true
        // result (an infinite loss; NaN from NaN or from +inf and -inf losses: `small` is the
        // same then).
        if !total.isFinite, !small.isNaN {
            total = scalbn(small, Self.unitShift)
        }
        switch reduction {
        case .none: break
        case .sum: loss?.pointee = T(rounding: total)
        case .mean:
            var mean = counted > 0 ? total / counted : 0
            if !mean.isFinite, !small.isNaN {
                // An overflow of the weighted sum (the mean itself is at most the largest loss):
                // the scaled sum, unless its own partial sums overflowed.
                let fromSmall = scalbn(small / counted, Self.unitShift)
                mean = scaled.isFinite ? scaled : fromSmall
            }
            loss?.pointee = T(rounding: mean)
        }
    }

}

/// How a batch of examples is cut into chunks of about `Chunks.target` values of work: the
/// boundaries depend on the input only, never on the thread count (Parallel.swift).
struct Chunks {
    static let target = 1 << 14
    /// The number of chunks.
    let count: Int
    private let examples: Int
    private let size: Int
    private let starts: UnsafePointer<Int>?

    /// Examples of equal work (dense rows of k values).
    init(examples: Int, valuesPerExample: Int) {
        self.examples = examples
        size = Swift.max(1, Self.target / Swift.max(1, valuesPerExample))
        count = (examples + size - 1) / size
        starts = nil
    }

    /// Chunk c is examples starts[c] ..< starts[c + 1] (count + 1 entries).
    init(starts: UnsafePointer<Int>, count: Int, examples: Int) {
        self.examples = examples
        self.count = count
        self.starts = starts
        size = 0
    }

    func range(_ chunk: Int) -> Range<Int> {
        if let starts { return starts[chunk]..<starts[chunk + 1] }
        return (chunk * size)..<Swift.min(examples, (chunk + 1) * size)
    }
}
