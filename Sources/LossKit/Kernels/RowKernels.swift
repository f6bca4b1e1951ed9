/// Vector kernels over one row of candidates: the passes every flat structure (dense rows,
/// candidate lists) runs. Each is a simple loop doing one thing a vector at a time, which is what
/// the compiler turns into good SIMD code (fusing an accumulation into a 4-way unrolled exp loop
/// made LLVM scatter the lanes and run 4x slower: measured, see bench/README.md).
///
/// Rows are read through `ScoreRow`, which yields the cost-augmented scores v = s + w c a vector
/// at a time; the three conformances (plain, 0/1 cost, per-candidate cost) make each kernel
/// specialise into three loops without a branch inside.

/// The cost-augmented scores v[j] of one row.
protocol ScoreRow<Scalar> {
    associatedtype Scalar: StorageFloat
    var count: Int { get }
    /// v[i ..< i + laneCount]; requires i + laneCount <= count.
    func load(_ i: Int) -> Scalar.Vector
    /// v[i ..< count] padded with -inf; requires i < count < i + laneCount.
    func loadTail(_ i: Int) -> Scalar.Vector
    /// v[j].
    func value(_ j: Int) -> Scalar
}

@inline(__always) func loadVector<T: StorageFloat>(_ p: UnsafePointer<T>, _ i: Int) -> T.Vector {
    UnsafeRawPointer(p + i).loadUnaligned(as: T.Vector.self)
}
@inline(__always) func storeVector<T: StorageFloat>(_ v: T.Vector, _ p: UnsafeMutablePointer<T>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: T.Vector.self)
}
/// p[i ..< count] padded with `pad`.
@inline(__always) func loadPartial<T: StorageFloat>(_ p: UnsafePointer<T>, _ i: Int, _ count: Int, pad: T) -> T.Vector {
    var v = T.Vector(repeating: pad)
    for j in 0..<(count - i) { v[j] = p[i + j] }
    return v
}
@inline(__always) func storePartial<T: StorageFloat>(_ v: T.Vector, _ p: UnsafeMutablePointer<T>, _ i: Int,
                                                     _ count: Int) {
    for j in 0..<(count - i) { p[i + j] = v[j] }
}

/// v = s.
struct PlainRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let count: Int
    @inline(__always) func load(_ i: Int) -> T.Vector { loadVector(scores, i) }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector { loadPartial(scores, i, count, pad: -.infinity) }
    @inline(__always) func value(_ j: Int) -> T { scores[j] }
}

/// v[j] = s[j] + w for j != gold, v[gold] = s[gold]: 0/1 cost against the gold, scaled by w.
struct ZeroOneRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let count: Int
    let weight: T
    let gold: Int
    @inline(__always) func patchGold(_ v: T.Vector, _ i: Int) -> T.Vector {
        guard gold >= i, gold < i + T.laneCount else { return v }
        var v = v
        v[gold - i] = scores[gold]
        return v
    }
    @inline(__always) func load(_ i: Int) -> T.Vector {
        patchGold(loadVector(scores, i) + T.Vector(repeating: weight), i)
    }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        patchGold(loadPartial(scores, i, count, pad: -.infinity) + T.Vector(repeating: weight), i)
    }
    @inline(__always) func value(_ j: Int) -> T { j == gold ? scores[j] : scores[j] + weight }
}

/// Exponents above this are clamped by the centred rows: a centred exponent is positive only by
/// the rounding of the max found in T (at most 2u|v|); e^32 keeps every sum finite and stays
/// within the vector exp's range (x <= 43).
@inline(__always) func clampedExponent<T: StorageFloat>(_ x: T.Vector, _: T.Type) -> T.Vector {
    let limit = T.Vector(repeating: 32)
    return T.select(T.signMask(x - limit), x, limit)
}

/// x[k] = v[k] - v[j] for 0/1 costs against the gold, formed centred on the candidate j that
/// reaches the max: (s[k] - s[j]) + (w - offset) off the gold, (s[g] - s[j]) - offset at it,
/// with offset = w when j is not the gold (its own cost), else 0. Near-equal scores subtract
/// exactly; clamped at 32 (clampedExponent).
struct CenteredZeroOneRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let count: Int
    let weight: T
    let gold: Int
    let center: T
    let offset: T
    @inline(__always) func patchGold(_ v: T.Vector, _ i: Int) -> T.Vector {
        guard gold >= i, gold < i + T.laneCount else { return v }
        var v = v
        v[gold - i] = Swift.min((scores[gold] - center) - offset, 32)
        return v
    }
    @inline(__always) func load(_ i: Int) -> T.Vector {
        let x = (loadVector(scores, i) - T.Vector(repeating: center)) + T.Vector(repeating: weight - offset)
        return patchGold(clampedExponent(x, T.self), i)
    }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        patchGold(clampedExponent((loadPartial(scores, i, count, pad: -.infinity) - T.Vector(repeating: center))
                                  + T.Vector(repeating: weight - offset), T.self), i)
    }
    @inline(__always) func value(_ j: Int) -> T {
        Swift.min(j == gold ? (scores[j] - center) - offset : (scores[j] - center) + (weight - offset), 32)
    }
}

/// CenteredZeroOneRow without its per-vector gold patch, centred on a candidate j that is not
/// the gold: x[k] = s[k] - s[j] for every k, the gold included (its right value is s[g] - s[j]
/// - w), for a caller that corrects the gold's entry afterwards. s[j] is then the plain max up
/// to the rounding of the max (every s[k] + w but the gold's is at most s[j] + w, and s[g] <=
/// s[j]; FlatCandidates.exactCenter keeps that rounding within a few units), so no x[k] needs
/// a clamp.
struct CenteredShiftedRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let count: Int
    let center: T
    @inline(__always) func load(_ i: Int) -> T.Vector { loadVector(scores, i) - T.Vector(repeating: center) }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        loadPartial(scores, i, count, pad: -.infinity) - T.Vector(repeating: center)
    }
    @inline(__always) func value(_ j: Int) -> T { scores[j] - center }
}

/// Whether CenteredCostRow guards against a cost difference that overflows: a type each, so that
/// the unguarded row (every ordinary one) specialises without the guard's extra operations.
protocol CostDifferenceGuard { static var guarded: Bool { get } }
enum Guarded: CostDifferenceGuard { static let guarded = true }
enum Unguarded: CostDifferenceGuard { static let guarded = false }

/// x[k] = v[k] - v[j] = (s[k] - s[j]) + w (c[k] - c[j]) centred on the candidate j that reaches
/// the max; masked candidates stay -inf whatever their (unread) cost. Clamped at 32.
///
/// With costs of both signs beyond half the type's largest value, c[k] - c[j] overflows although
/// v[k] - v[j] need not (inf * 0 = NaN under a zero weight; inf * 0.5 where the true exponent is
/// 0). The guarded row then takes the difference of the rounded values, fma(c[k], w, s[k]) -
/// v[j], which validation keeps finite. (s[k] - s[j] overflowing alone is harmless: validation
/// keeps |s| + |w c| within the largest value, which then puts the true exponent at or below
/// minus an ulp of the largest value, and its exp at 0.)
struct CenteredCostRow<T: StorageFloat, Guard: CostDifferenceGuard>: ScoreRow {
    let scores: UnsafePointer<T>
    let costs: UnsafePointer<T>
    let count: Int
    let weight: T
    let centerScore: T
    let centerCost: T
    /// v[j] as the kernels round it.
    let centerValue: T

    init(scores: UnsafePointer<T>, costs: UnsafePointer<T>, count: Int, weight: T, center j: Int) {
        self.scores = scores
        self.costs = costs
        self.count = count
        self.weight = weight
        centerScore = scores[j]
        centerCost = costs[j]
        centerValue = T.fma(costs[j], weight, scores[j])
    }

    @inline(__always) func combine(_ s: T.Vector, _ c: T.Vector) -> T.Vector {
        let w = T.Vector(repeating: weight)
        var x = T.fma(c - T.Vector(repeating: centerCost), w, s - T.Vector(repeating: centerScore))
        if Guard.guarded { x = T.select(T.finiteMask(x), x, T.fma(c, w, s) - T.Vector(repeating: centerValue)) }
        return T.select(T.equalMask(s, T.Vector(repeating: -.infinity)), s, clampedExponent(x, T.self))
    }
    @inline(__always) func load(_ i: Int) -> T.Vector { combine(loadVector(scores, i), loadVector(costs, i)) }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        combine(loadPartial(scores, i, count, pad: -.infinity), loadPartial(costs, i, count, pad: 0))
    }
    @inline(__always) func value(_ j: Int) -> T {
        if scores[j] == -.infinity { return scores[j] }
        let x = T.fma(costs[j] - centerCost, weight, scores[j] - centerScore)
        return Swift.min(!Guard.guarded || x.isFinite ? x : T.fma(costs[j], weight, scores[j]) - centerValue, 32)
    }
}

/// v[j] = s[j] + w c[j]; masked candidates stay -inf whatever their (unread, unvalidated) cost.
struct CostRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let costs: UnsafePointer<T>
    let count: Int
    let weight: T
    @inline(__always) func combine(_ s: T.Vector, _ c: T.Vector) -> T.Vector {
        T.select(T.equalMask(s, T.Vector(repeating: -.infinity)), s,
                 T.fma(c, T.Vector(repeating: weight), s))
    }
    @inline(__always) func load(_ i: Int) -> T.Vector { combine(loadVector(scores, i), loadVector(costs, i)) }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        combine(loadPartial(scores, i, count, pad: -.infinity), loadPartial(costs, i, count, pad: 0))
    }
    @inline(__always) func value(_ j: Int) -> T {
        scores[j] == -.infinity ? scores[j] : T.fma(costs[j], weight, scores[j])
    }
}

/// v[j] = s[j] + w c[j] where no score is -inf (a screened example, FlatValidation.screen):
/// CostRow without its mask.
struct UnmaskedCostRow<T: StorageFloat>: ScoreRow {
    let scores: UnsafePointer<T>
    let costs: UnsafePointer<T>
    let count: Int
    let weight: T
    @inline(__always) func load(_ i: Int) -> T.Vector {
        T.fma(loadVector(costs, i), T.Vector(repeating: weight), loadVector(scores, i))
    }
    @inline(__always) func loadTail(_ i: Int) -> T.Vector {
        // The padding stays -inf: its cost is 0.
        T.fma(loadPartial(costs, i, count, pad: 0), T.Vector(repeating: weight),
              loadPartial(scores, i, count, pad: -.infinity))
    }
    @inline(__always) func value(_ j: Int) -> T { T.fma(costs[j], weight, scores[j]) }
}

/// Where a kernel's per-candidate results go: a buffer, or nowhere when only its sums are
/// wanted. Two types rather than an optional pointer, so that each kernel specialises into a
/// loop without a branch inside.
protocol RowSink<Scalar> {
    associatedtype Scalar: StorageFloat
    /// The current contents at i (zeros for `Discard`).
    func load(_ i: Int) -> Scalar.Vector
    /// The current contents at i ..< count, zero-padded.
    func loadTail(_ i: Int, _ count: Int) -> Scalar.Vector
    func store(_ v: Scalar.Vector, _ i: Int)
    /// out[i ..< count] = v's first lanes.
    func storeTail(_ v: Scalar.Vector, _ i: Int, _ count: Int)
}

struct BufferSink<T: StorageFloat>: RowSink {
    typealias Scalar = T
    let base: UnsafeMutablePointer<T>
    @inline(__always) func load(_ i: Int) -> T.Vector { loadVector(UnsafePointer(base), i) }
    @inline(__always) func loadTail(_ i: Int, _ count: Int) -> T.Vector {
        loadPartial(UnsafePointer(base), i, count, pad: 0)
    }
    @inline(__always) func store(_ v: T.Vector, _ i: Int) { storeVector(v, base, i) }
    @inline(__always) func storeTail(_ v: T.Vector, _ i: Int, _ count: Int) { storePartial(v, base, i, count) }
}

struct Discard<T: StorageFloat>: RowSink {
    typealias Scalar = T
    @inline(__always) func load(_ i: Int) -> T.Vector { T.Vector(repeating: 0) }
    @inline(__always) func loadTail(_ i: Int, _ count: Int) -> T.Vector { T.Vector(repeating: 0) }
    @inline(__always) func store(_ v: T.Vector, _ i: Int) {}
    @inline(__always) func storeTail(_ v: T.Vector, _ i: Int, _ count: Int) {}
}

/// Integer horizontal reductions (per row, outside the hot loops; the floating-point ones are
/// StorageFloat.sumOfLanes and StorageFloat.maxOfLanes), kept out of line: inside a hot loop a reduction invited
/// LLVM to re-vectorise across lanes and scatter the loop.
@inline(never) func horizontalIntegerMin<B: SIMD>(_ v: B) -> Int where B.Scalar: FixedWidthInteger {
    var m = v[0]
    for j in 1..<B.scalarCount where v[j] < m { m = v[j] }
    return Int(m)
}
@inline(never) func horizontalIntegerSum<B: SIMD>(_ v: B) -> Int where B.Scalar: FixedWidthInteger {
    var total = 0
    for j in 0..<B.scalarCount { total += Int(v[j]) }
    return total
}

/// What `RowKernel.survey` keeps besides the max and NaN: a type per combination, so that each
/// specialises into a loop doing only that.
protocol SurveyFields {
    /// The lowest index reaching the max.
    static var argmax: Bool { get }
    /// The number of candidates that are not -inf.
    static var unmasked: Bool { get }
}
enum SurveyMaximum: SurveyFields { static let argmax = false, unmasked = false }
enum SurveyArgmax: SurveyFields { static let argmax = true, unmasked = false }
enum SurveyUnmasked: SurveyFields { static let argmax = false, unmasked = true }
enum SurveyAll: SurveyFields { static let argmax = true, unmasked = true }

enum RowKernel {
    /// The last vector of a row whose length is not a multiple of the lanes, once `seen` values
    /// are done: when the row holds at least one whole vector, a whole vector ending at `count`
    /// (its first lanes seen already) and the mask of its lanes not seen before; nil for a
    /// shorter row, which needs a padded partial load. Whole loads beat lane-by-lane inserts
    /// and extracts, which cost more than the rest of a short row (candidate lists).
    @inline(__always) static func overlappingTail<T: StorageFloat>(count: Int, seen: Int, _: T.Type)
        -> (start: Int, fresh: T.Bits)?
    {
        guard count >= T.laneCount else { return nil }
        let start = count - T.laneCount
        let shift = T.Bits(repeating: T.Bits.Scalar(T.Bits.Scalar.bitWidth - 1))
        let fresh = ~((T.laneIndices &- T.Bits(repeating: T.Bits.Scalar(seen - start))) &>> shift)
        return (start, fresh)
    }

    /// max_j v[j] (-inf when every candidate is masked; rows with NaN never reach here).
    @inline(__always) static func maximum<R: ScoreRow>(_ row: R) -> R.Scalar {
        typealias T = R.Scalar
        let w = T.laneCount
        var m0 = T.Vector(repeating: -.infinity), m1 = m0
        var i = 0
        while i + 2 * w <= row.count {
            m0 = T.maximum(m0, row.load(i))
            m1 = T.maximum(m1, row.load(i + w))
            i += 2 * w
        }
        if i + w <= row.count { m0 = T.maximum(m0, row.load(i)); i += w }
        if i < row.count {
            // A max may see a value twice: the overlapping tail needs no mask.
            let tail = overlappingTail(count: row.count, seen: i, T.self).map { row.load($0.start) } ?? row.loadTail(i)
            m1 = T.maximum(m1, tail)
        }
        return T.maxOfLanes(T.maximum(m0, m1))
    }

    /// One read of a row for validation: max_j s[j] (+inf if any score is +inf, -inf if all are
    /// masked), the lowest index reaching it, and whether any score is NaN (then the max and
    /// index are meaningless). The losses reuse the max and its index (FlatCandidates).
    @inline(__always) static func survey<T: StorageFloat, F: SurveyFields>(_ s: UnsafePointer<T>, count: Int, _: F.Type)
        -> (maximum: T, index: Int, unmasked: Int, hasNaN: Bool)
    {
        // Four independent streams: one (max, select) chain per vector would leave the loop
        // latency-bound at a quarter of the memory's speed (measured). The argmax and the count
        // are kept only when the loss needs them (F): they cost as much as the rest of the scan.
        let w = T.laneCount
        var best = (T.Vector(repeating: -.infinity), T.Vector(repeating: -.infinity),
                    T.Vector(repeating: -.infinity), T.Vector(repeating: -.infinity))
        var at = (T.Bits(repeating: 0), T.Bits(repeating: 0), T.Bits(repeating: 0), T.Bits(repeating: 0))
        var index = T.laneIndices
        let step = T.Bits(repeating: T.Bits.Scalar(w))
        var nan = T.Bits(repeating: 0)
        var masked = T.Bits(repeating: 0)  // minus the number of -inf lanes
        let minusInfinity = T.Vector(repeating: -.infinity)
        @inline(__always) func track(_ v: T.Vector, _ best: inout T.Vector, _ at: inout T.Bits, _ index: T.Bits) {
            let better = T.signMask(best - v)  // best < v, per lane: the first strict max stays
            best = T.select(better, v, best)
            if F.argmax { at = (index & better) | (at & ~better) }
        }
        @inline(__always) func maskedLanes(_ v: T.Vector) -> T.Bits {
            F.unmasked ? T.equalMask(v, minusInfinity) : T.Bits(repeating: 0)
        }
        var i = 0
        while i + 4 * w <= count {
            let v0 = loadVector(s, i), v1 = loadVector(s, i + w)
            let v2 = loadVector(s, i + 2 * w), v3 = loadVector(s, i + 3 * w)
            track(v0, &best.0, &at.0, index)
            track(v1, &best.1, &at.1, index &+ step)
            track(v2, &best.2, &at.2, index &+ step &+ step)
            track(v3, &best.3, &at.3, index &+ step &+ step &+ step)
            nan |= (T.nanMask(v0) | T.nanMask(v1)) | (T.nanMask(v2) | T.nanMask(v3))
            if F.unmasked {
                masked = masked &+ ((maskedLanes(v0) &+ maskedLanes(v1)) &+ (maskedLanes(v2) &+ maskedLanes(v3)))
            }
            if F.argmax { index = index &+ step &+ step &+ step &+ step }
            i += 4 * w
        }
        while i + w <= count {
            let v = loadVector(s, i)
            track(v, &best.0, &at.0, index)
            nan |= T.nanMask(v)
            if F.unmasked { masked = masked &+ maskedLanes(v) }
            if F.argmax { index = index &+ step }
            i += w
        }
        var padding = 0
        if i < count {
            // The max, its first index and NaN may see a value twice; the count may not.
            if let (start, fresh) = overlappingTail(count: count, seen: i, T.self) {
                let v = loadVector(s, start)
                track(v, &best.1, &at.1, T.laneIndices &+ T.Bits(repeating: T.Bits.Scalar(start)))
                nan |= T.nanMask(v)
                if F.unmasked { masked = masked &+ (maskedLanes(v) & fresh) }
            } else {
                let v = loadPartial(s, i, count, pad: -.infinity)
                track(v, &best.1, &at.1, index)
                nan |= T.nanMask(v)
                if F.unmasked { masked = masked &+ maskedLanes(v) }
                padding = i + w - count  // -inf lanes counted as masked
            }
        }
        let m: T, first: Int
        if F.argmax {
            (m, first) = lowestIndexOfMaximum(best, at)
        } else {
            (m, first) = (T.maxOfLanes(T.maximum(T.maximum(best.0, best.1), T.maximum(best.2, best.3))), 0)
        }
        let unmasked = F.unmasked ? count + horizontalIntegerSum(masked) + padding : count
        return (m, first, unmasked, horizontalIntegerSum(nan) != 0)
    }

    /// One read of the costs of a row for validation, over its unmasked candidates: the largest
    /// |c[j]|, whether any c[j] is not finite, and max_j s[j] + w c[j] (the max of the fear term's
    /// cost-augmented scores, which the computing pass then need not find again).
    @inline(__always) static func costSurvey<T: StorageFloat>(
        _ c: UnsafePointer<T>, scores s: UnsafePointer<T>, count: Int, weight: T
    ) -> (largest: T, nonFinite: Bool, augmentedMaximum: T)
    {
        let w = T.laneCount
        let minusInfinity = T.Vector(repeating: -.infinity)
        let infinityBits = T.bits(T.Vector(repeating: .infinity))
        let signBit = T.Bits.Scalar(T.Bits.Scalar.bitWidth - 1)
        let weightVector = T.Vector(repeating: weight)
        var largest = T.Vector(repeating: 0)
        var best = minusInfinity
        var bad = T.Bits(repeating: 0)
        var i = 0
        while i < count {
            // Max and "any" may see a value twice: the tail overlaps when it can.
            let full = i + w <= count
            let at = full ? i : (overlappingTail(count: count, seen: i, T.self)?.start ?? -1)
            let v = at >= 0 ? loadVector(s, at) : loadPartial(s, i, count, pad: -.infinity)
            let cv = at >= 0 ? loadVector(c, at) : loadPartial(c, i, count, pad: 0)
            let live = ~T.equalMask(v, minusInfinity)
            let magnitude = T.bits(cv) & T.Bits(repeating: T.Bits.Scalar.max)
            // |c| >= +inf as integers: infinite or NaN.
            bad |= live & ~((magnitude &- infinityBits) &>> T.Bits(repeating: signBit))
            largest = T.maximum(largest, T.vector(magnitude & live))
            // Masked candidates stay -inf whatever their cost (as CostRow computes them).
            best = T.maximum(best, T.select(live, T.fma(cv, weightVector, v), minusInfinity))
            i += w
        }
        return (T.maxOfLanes(largest), horizontalIntegerSum(bad) != 0, T.maxOfLanes(best))
    }

    /// The max over the lanes of four streams, and the lowest index among the lanes holding it:
    /// lane-wise first (vector ops), then over the lanes of one vector.
    @inline(__always) static func lowestIndexOfMaximum<T: StorageFloat>(
        _ best: (T.Vector, T.Vector, T.Vector, T.Vector), _ at: (T.Bits, T.Bits, T.Bits, T.Bits)
    ) -> (T, Int) {
        let m = T.maxOfLanes(T.maximum(T.maximum(best.0, best.1), T.maximum(best.2, best.3)))
        let mv = T.Vector(repeating: m)
        let none = T.Bits(repeating: T.Bits.Scalar.max)
        @inline(__always) func candidate(_ v: T.Vector, _ index: T.Bits) -> T.Bits {
            let hit = T.equalMask(v, mv)
            return (index & hit) | (none & ~hit)
        }
        @inline(__always) func smaller(_ a: T.Bits, _ b: T.Bits) -> T.Bits {
            // Indices are >= 0 and < Int.max, so a - b does not overflow.
            let aIsSmaller = (a &- b) &>> T.Bits(repeating: T.Bits.Scalar(T.Bits.Scalar.bitWidth - 1))
            return (a & aIsSmaller) | (b & ~aIsSmaller)
        }
        let lowest = smaller(smaller(candidate(best.0, at.0), candidate(best.1, at.1)),
                             smaller(candidate(best.2, at.2), candidate(best.3, at.3)))
        let first = horizontalIntegerMin(lowest)
        return (m, first == Int(T.Bits.Scalar.max) ? 0 : first)
    }

    /// (max_j v[j], its argmax): the gold if it is among the tied maxima, else the lowest index
    /// (DESIGN.md §2 "Ties"). Each lane keeps the index of its first strict maximum; the lowest
    /// index among the lanes that reach the max wins.
    @inline(__always) static func maximumWithIndex<R: ScoreRow>(_ row: R, gold: Int) -> (value: R.Scalar, index: Int) {
        typealias T = R.Scalar
        let w = T.laneCount
        var best = T.Vector(repeating: -.infinity)
        var bestIndex = T.Bits(repeating: -1)
        var index = T.laneIndices
        let step = T.Bits(repeating: T.Bits.Scalar(w))
        var i = 0
        while i < row.count {
            var v: T.Vector
            if i + w <= row.count {
                v = row.load(i)
            } else if let (start, _) = overlappingTail(count: row.count, seen: i, T.self) {
                // A lane seeing an earlier candidate again keeps the first strict max.
                v = row.load(start)
                index = T.laneIndices &+ T.Bits(repeating: T.Bits.Scalar(start))
            } else {
                v = row.loadTail(i)
            }
            let better = T.signMask(best - v)  // best < v (NaN from -inf - -inf: both -inf)
            best = T.select(better, v, best)
            bestIndex = (index & better) | (bestIndex & ~better)
            index = index &+ step
            i += w
        }
        let m = T.maxOfLanes(best)
        if gold >= 0, gold < row.count, row.value(gold) == m { return (m, gold) }
        var first = Int.max
        for lane in 0..<w where best[lane] == m && bestIndex[lane] >= 0 {
            first = Swift.min(first, Int(bestIndex[lane]))
        }
        return (m, first == Int.max ? 0 : first)
    }

    /// The lowest j with v[j] == value bit for bit (a value the row holds, such as its max), or
    /// -1 if none. Blocks of 8 vectors are tested with one horizontal reduction each (a reduction
    /// per vector would cost more than the compares), and the block that hits is searched again
    /// lane by lane; the scan stops there.
    @inline(__always) static func firstIndex<R: ScoreRow>(of value: R.Scalar, in row: R) -> Int {
        typealias T = R.Scalar
        let w = T.laneCount
        let target = T.Vector(repeating: value)
        var i = 0
        while i < row.count {
            let blockEnd = Swift.min(row.count, i + 8 * w)
            var hit = T.Bits(repeating: 0)
            var j = i
            while j + w <= blockEnd { hit |= T.equalMask(row.load(j), target); j += w }
            if j < blockEnd { hit |= T.equalMask(row.loadTail(j), target) }
            if hit.wrappedSum() != 0 {
                for k in i..<blockEnd where row.value(k) == value { return k }
            }
            i = blockEnd
        }
        return -1
    }

    /// e[j] = exp(v[j] - shift) into `sink`; returns sum_j e[j] in double. Lanes accumulate in
    /// the storage type for blocks of 32 vectors, then in double.
    @inline(__always) static func expSum<R: ScoreRow, S: RowSink>(_ row: R, shift: R.Scalar, into sink: S) -> Double
        where S.Scalar == R.Scalar
    {
        typealias T = R.Scalar
        let w = T.laneCount
        let shiftVector = T.Vector(repeating: shift)
        var total = 0.0
        var i = 0
        while i + w <= row.count {
            let blockEnd = Swift.min(row.count, i + 32 * w)
            var accumulator = T.Vector(repeating: 0)
            while i + w <= blockEnd {
                let e = T.expNonPositive(row.load(i) - shiftVector)
                sink.store(e, i)
                accumulator += e
                i += w
            }
            total += T.sumOfLanes(accumulator)
        }
        if i < row.count {
            if let (start, fresh) = overlappingTail(count: row.count, seen: i, T.self) {
                // The seen lanes are computed again, bit for bit, and stored again; summed once.
                let e = T.expNonPositive(row.load(start) - shiftVector)
                sink.store(e, start)
                total += T.sumOfLanes(T.keep(fresh, e))
            } else {
                let e = T.expNonPositive(row.loadTail(i) - shiftVector)
                sink.storeTail(e, i, row.count)
                total += T.sumOfLanes(e)
            }
        }
        return total
    }

    /// (sum_j e[j], sum_j e[j] (c[j] - reference)) for e[j] = exp(s[j] - shift) into `sink`; c of
    /// masked candidates (e = 0) is not used, whatever it holds. For the risk, with the argmax's
    /// cost as the reference: its term is exactly 0, and the rest keeps its digits when the
    /// argmax dominates.
    @inline(__always) static func expSumAndDot<T: StorageFloat, S: RowSink>(
        _ s: UnsafePointer<T>, costs c: UnsafePointer<T>, reference: T, count: Int, shift: T, into sink: S
    ) -> (sum: Double, dot: Double) where S.Scalar == T {
        let w = T.laneCount
        let shiftVector = T.Vector(repeating: shift), referenceVector = T.Vector(repeating: reference)
        var sum = 0.0, dot = 0.0
        var i = 0
        while i + w <= count {
            let blockEnd = Swift.min(count, i + 32 * w)
            var a1 = T.Vector(repeating: 0), a2 = a1
            while i + w <= blockEnd {
                let e = T.expNonPositive(loadVector(s, i) - shiftVector)
                sink.store(e, i)
                a1 += e
                a2 += T.keep(T.nonZeroMask(T.bits(e)), e * (loadVector(c, i) - referenceVector))
                i += w
            }
            sum += T.sumOfLanes(a1)
            dot += T.sumOfLanes(a2)
        }
        if i < count {
            let e: T.Vector, cv: T.Vector, fresh: T.Bits
            if let (start, mask) = overlappingTail(count: count, seen: i, T.self) {
                e = T.expNonPositive(loadVector(s, start) - shiftVector)
                cv = loadVector(c, start) - referenceVector
                sink.store(e, start)
                fresh = mask
            } else {
                e = T.expNonPositive(loadPartial(s, i, count, pad: -.infinity) - shiftVector)
                cv = loadPartial(c, i, count, pad: 0) - referenceVector
                sink.storeTail(e, i, count)
                fresh = T.Bits(repeating: -1)
            }
            sum += T.sumOfLanes(T.keep(fresh, e))
            dot += T.sumOfLanes(T.keep(fresh & T.nonZeroMask(T.bits(e)), e * cv))
        }
        return (sum, dot)
    }

    /// sum_j e[j] - 1 (the sum without the argmax's exp(0) = 1) from the `total` expSum
    /// returned for the same row and shift. When that leaves less than 1/16 beyond the 1 (a
    /// loss near zero) the exps are summed again without the exact 1s (the argmax and its exact
    /// ties), so that no digit is lost to the 1 (DESIGN.md §2 "a loss near zero keeps its
    /// digits").
    @inline(__always) static func rest<R: ScoreRow>(total: Double, row: R, shift: R.Scalar) -> Double {
        let rest = total - 1
        return rest < 1.0 / 16 ? restWithoutOnes(row, shift: shift) : rest
    }

    static func restWithoutOnes<R: ScoreRow>(_ row: R, shift: R.Scalar) -> Double {
        typealias T = R.Scalar
        var others = 0.0
        var ones = 0
        var i = 0
        while i < row.count {
            let e = T.expNonPositive((i + T.laneCount <= row.count ? row.load(i) : row.loadTail(i))
                                     - T.Vector(repeating: shift))
            for lane in 0..<Swift.min(T.laneCount, row.count - i) {
                if e[lane] == 1 { ones += 1 } else { others += e[lane].asDouble }
            }
            i += T.laneCount
        }
        return others + Double(Swift.max(ones - 1, 0))
    }

    /// out[j] = factor * a[j].
    @inline(__always) static func scale<T: StorageFloat>(_ a: UnsafePointer<T>, by factor: T,
                                                 into out: UnsafeMutablePointer<T>, count: Int) {
        let f = T.Vector(repeating: factor)
        var i = 0
        while i + T.laneCount <= count { storeVector(loadVector(a, i) * f, out, i); i += T.laneCount }
        guard i < count else { return }
        if let (start, fresh) = overlappingTail(count: count, seen: i, T.self) {
            // `out` may be `a`: the seen lanes keep what they now hold.
            storeVector(T.select(fresh, loadVector(a, start) * f, loadVector(UnsafePointer(out), start)), out, start)
        } else {
            while i < count { out[i] = a[i] * factor; i += 1 }
        }
    }

    /// out[j] = fa * a[j] + fb * b[j].
    @inline(__always) static func combine<T: StorageFloat>(
        _ a: UnsafePointer<T>, _ fa: T, _ b: UnsafePointer<T>, _ fb: T, into out: UnsafeMutablePointer<T>, count: Int
    ) {
        let va = T.Vector(repeating: fa), vb = T.Vector(repeating: fb)
        var i = 0
        while i + T.laneCount <= count {
            storeVector(T.fma(loadVector(a, i), va, loadVector(b, i) * vb), out, i)
            i += T.laneCount
        }
        guard i < count else { return }
        if let (start, fresh) = overlappingTail(count: count, seen: i, T.self) {
            // `out` may be `a`: the seen lanes keep what they now hold.
            let value = T.fma(loadVector(a, start), va, loadVector(b, start) * vb)
            storeVector(T.select(fresh, value, loadVector(UnsafePointer(out), start)), out, start)
        } else {
            while i < count { out[i] = a[i] * fa + b[i] * fb; i += 1 }
        }
    }

    /// The risk gradient f e[j] (alpha (c[j] - reference) - excess), with R = alpha reference +
    /// excess: formed from the cost difference, so that a candidate whose cost is the reference's
    /// keeps the sign of its exact gradient when R nearly equals alpha c[j]. 0 where e[j] = 0
    /// (masked candidates, whose cost is unread). `out` may be `e` (in place). Takes excess / 4
    /// (which the input type holds where excess itself may not). (0/1 costs form theirs from the
    /// sum over the candidates but the gold: FlatCandidates.expectedCost.)
    @inline(__always) static func riskGradient<T: StorageFloat>(
        _ e: UnsafePointer<T>, costs: UnsafePointer<T>, count: Int,
        reference: T, factor f: T, alpha: T, quarterExcess: T, into out: UnsafeMutablePointer<T>
    ) {
        // ((c - c_a) alpha - excess) / 4 cannot overflow where alpha c is finite for every cost
        // (validated) and |excess| <= 2 max |alpha c|; the quarter is exact for costs above
        // 2^-1020 (or -124 in float), so ordinary results keep their bits, and times 4 gives
        // +-inf only where the true entry overflows.
        let vf = T.Vector(repeating: f), va = T.Vector(repeating: alpha), vr = T.Vector(repeating: quarterExcess)
        let quarter = T.Vector(repeating: 0.25), four = T.Vector(repeating: 4)
        let vc = T.Vector(repeating: reference) * quarter
        var i = 0
        while i + T.laneCount <= count {
            let v = loadVector(e, i)
            let g = v * vf * T.fma(loadVector(costs, i) * quarter - vc, va, -vr) * four
            storeVector(T.keep(T.nonZeroMask(T.bits(v)), g), out, i)
            i += T.laneCount
        }
        guard i < count else { return }
        if let (start, fresh) = overlappingTail(count: count, seen: i, T.self) {
            // `out` may be `e`: the seen lanes keep what they now hold.
            let v = loadVector(e, start)
            let g = T.keep(T.nonZeroMask(T.bits(v)),
                           v * vf * T.fma(loadVector(costs, start) * quarter - vc, va, -vr) * four)
            storeVector(T.select(fresh, g, loadVector(UnsafePointer(out), start)), out, start)
        } else {
            let c = reference * 0.25
            while i < count {
                out[i] = e[i] == 0 ? 0 : e[i] * f * ((costs[i] * 0.25 - c) * alpha - quarterExcess) * 4
                i += 1
            }
        }
    }

    /// Clears lane `index - i` of `mask` when `index` falls in the vector at i.
    @inline(__always) static func dropLane<B: SIMD>(_ mask: B, _ index: Int, at i: Int) -> B
        where B.Scalar: FixedWidthInteger
    {
        guard index >= i, index < i + B.scalarCount else { return mask }
        var m = mask
        m[index - i] = 0
        return m
    }

    /// One pass over a row for the square losses and label smoothing: out[j] = factor * s[j] +
    /// constant (+ out[j] when `adding`) for unmasked j; masked candidates get 0 (or keep theirs
    /// when adding); `excluding` (-1: none) gets only the constant. Returns, from the same pass,
    /// sum s[j] and sum s[j]^2 over the unmasked j but `excluding` (blocks of 32 vectors in the
    /// storage type, then double).
    @inline(__always) static func scores<T: StorageFloat, S: RowSink>(
        _ s: UnsafePointer<T>, times factor: T, plus constant: T, excluding: Int, adding: Bool,
        into out: S, count: Int
    ) -> (sum: Double, sumOfSquares: Double) where S.Scalar == T {
        let vf = T.Vector(repeating: factor), vc = T.Vector(repeating: constant)
        let minusInfinity = T.Vector(repeating: -.infinity)
        var sum = 0.0, squares = 0.0
        var i = 0
        while i + T.laneCount <= count {
            let blockEnd = Swift.min(count, i + 32 * T.laneCount)
            var a1 = T.Vector(repeating: 0), a2 = a1
            while i + T.laneCount <= blockEnd {
                let v = loadVector(s, i)
                let live = ~T.equalMask(v, minusInfinity)
                let x = T.keep(dropLane(live, excluding, at: i), v)
                a1 += x
                a2 = T.fma(x, x, a2)
                var g = T.keep(live, T.fma(x, vf, vc))
                if adding { g += out.load(i) }
                out.store(g, i)
                i += T.laneCount
            }
            sum += T.sumOfLanes(a1)
            squares += T.sumOfLanes(a2)
        }
        if i < count {
            if let (start, fresh) = overlappingTail(count: count, seen: i, T.self) {
                // The seen lanes are summed once and keep what they now hold.
                let v = loadVector(s, start)
                let live = ~T.equalMask(v, minusInfinity)
                let x = T.keep(dropLane(live, excluding, at: start), v)
                sum += T.sumOfLanes(T.keep(fresh, x))
                squares += T.sumOfLanes(T.keep(fresh, x * x))
                let old = out.load(start)
                var g = T.keep(live, T.fma(x, vf, vc))
                if adding { g += old }
                out.store(T.select(fresh, g, old), start)
            } else {
                // A row shorter than a vector: masked padding, and only its live lanes stored.
                let v = loadPartial(s, i, count, pad: -.infinity)
                let live = ~T.equalMask(v, minusInfinity)
                let x = T.keep(dropLane(live, excluding, at: i), v)
                sum += T.sumOfLanes(x)
                squares += T.sumOfLanes(x * x)
                var g = T.keep(live, T.fma(x, vf, vc))
                if adding { g += out.loadTail(i, count) }
                out.storeTail(g, i, count)
            }
        }
        return (sum, squares)
    }
}
