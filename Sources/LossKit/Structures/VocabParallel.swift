import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// Dense rows whose classes are split across processes (lk_vocab_dense_*): each process holds
/// the columns [k_offset, k_offset + k_local) of the n x k scores and calls three phases, with
/// the caller's reductions between them (Megatron-LM's pattern, any engine):
///
///   1  each row's local maxima (the fear's max of v = s' + a alpha c, lse(s')'s max for the
///      z-loss, a flag for a bad value)               -> the caller all-reduces them with MAX
///   2  each row's local sums centred on those maxima (exps, exact ties, the gold score where
///      owned, the logits' mean, the unmasked count)  -> all-reduce SUM; for a max fear also the
///      argmax key                                      -> all-reduce MAX
///   3  every row's loss (the same on every process) and the gradient of this process's columns:
///      no communication in the backward pass.
///
/// The recipes are Linear's (the gold hope: LOG with label smoothing, SOFTMAX_MARGIN, HINGE,
/// PERCEPTRON, HOPE_FEAR with a gold hope), with the dense rows' masks, costs, softcap, z-loss
/// and batch semantics; the per-row terms are Linear.RowTerms's, split into what a MAX and a SUM
/// can combine. A log-sum-exp's rest keeps its digits across processes: every process counts
/// its exps equal to 1 (the global max and its exact ties) apart, and rest = the other exps +
/// (ties - 1), as RowKernel.restWithoutOnes does in one process.
///
/// A value a process finds wrong in its own columns (+inf, a masked gold, a bad cost) is not an
/// error of its phase 1, which other processes could not see (they would wait in the
/// reduction): it is a flag in the maxima, and every process's phase 3 returns LK_ERR_DOMAIN.
enum VocabParallel {
    static let maxima = Int(LK_VOCAB_MAXIMA)
    static let sums = Int(LK_VOCAB_SUMS)
    /// The largest k: class indices travel in doubles (the flag 2 + 3 j + kind, the argmax key
    /// -j), exact below 2^53.
    static let largestK = 1 << 50

    /// The flag of maxima[2]: 0 clean, 1 a NaN score, else 2 + 3 j + kind for a bad value at
    /// global class j (so that MAX keeps a real one, of the highest class).
    enum Flag: Int {
        case infiniteScore = 0, badCost = 1, maskedGold = 2
        static func code(_ kind: Flag, _ j: Int) -> Double { Double(2 + 3 * j + kind.rawValue) }  // j < 2^50
    }

    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, phase: Int32, n: Int64, k: Int64, kOffset: Int64, kLocal: Int64,
        scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?, weight: UnsafePointer<T>?,
        maxima: UnsafeMutablePointer<Double>?, sums: UnsafeMutablePointer<Double>?,
        argmax: UnsafeMutablePointer<Double>?, loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .dense, computingIn: T.self)
        guard (1...3).contains(phase) else { throw .option("phase = \(phase) is not 1, 2 or 3") }
        let lossKind = try Linear.Loss(options.recipe, entry: "lk_vocab_dense")
        let call = Call(options: options, phase: Int(phase), fearIsMax: lossKind.fearIsMax, n: n, k: k,
                        kOffset: kOffset, kLocal: kLocal, scores: scores, gold: gold, cost: cost, weight: weight,
                        maxima: maxima, sums: sums, argmax: argmax, loss: loss, grad: grad)
        guard let checked = try call.validate() else { return }
        Pass(options: options, loss: lossKind, checked: checked, call: call).run()
    }
}

extension VocabParallel {
    /// One call's pass over its rows, after the checks.
    struct Pass<T: StorageFloat> {
        let options: Options
        let loss: Linear.Loss
        let checked: Call<T>.Checked
        let call: Call<T>

        var shape: Call<T>.Shape { checked.shape }

        /// v = s, uncapped and without costs: the rows run on the vector kernels (RowKernel), the
        /// exps in the input type as lk_dense's; the other recipes run the scalar loops in double.
        var plain: Bool {
            checked.costWeight == 0 && checked.layout == .zeroOne && options.shaping.softcap == 0 && !checked.zLossApart
        }

        @inline(__always) func rowOf(_ i: Int) -> PlainRow<T> {
            PlainRow(scores: shape.scores + i * shape.kLocal, count: shape.kLocal)
        }

        /// The gold's column in this process, or nil.
        @inline(__always) func owned(_ g: Int) -> Int? {
            g >= shape.kOffset && g < shape.kOffset + shape.kLocal ? g - shape.kOffset : nil
        }

        func run() {
            switch call.phase {
            case 1: localMaxima()
            case 2: localSums()
            default: finish()
            }
        }

        /// The rows read: neither ignored nor of zero weight.
        @inline(__always) func isRead(_ i: Int) -> Bool {
            shape.gold[i] != options.ignoreLabel && !shape.batch.hasZeroWeight(i)
        }

        /// Rows in blocks over threads; each row is computed alone, so any split gives the same bits.
        func forEachRow(_ body: (Int) -> Void) {
            let n = shape.n
            let rowsPerChunk = Swift.max(1, 16_384 / Swift.max(shape.kLocal, 1))
            let chunks = (n + rowsPerChunk - 1) / rowsPerChunk
            let threads = Parallel.threads(requested: options.threads, elements: n * Swift.max(shape.kLocal, 1),
                                           chunks: chunks)
            Parallel.forEach(chunks: chunks, threads: threads) { chunk, _ in
                for i in (chunk * rowsPerChunk)..<Swift.min(n, (chunk + 1) * rowsPerChunk) { body(i) }
            }
        }

        /// Column c of row i: s' (capped), the cap's slope, and v = s' + a alpha c; nil for a
        /// masked class (-inf).
        @inline(__always) func column(_ i: Int, _ g: Int, _ c: Int) -> (s: Double, slope: Double, v: Double)? {
            let raw = shape.scores[i * shape.kLocal + c].asDouble
            if raw == -.infinity { return nil }
            let (s, slope) = options.shaping.softcap == 0 ? (raw, 1.0) : Shaping.capped(raw, options.shaping.softcap)
            let a = checked.costWeight
            return (s, slope, a == 0 ? s : s + a * costOf(i, g, shape.kOffset + c, c))
        }

        @inline(__always) func costOf(_ i: Int, _ g: Int, _ j: Int, _ c: Int) -> Double {
            switch checked.layout {
            case .zeroOne: return j == g ? 0 : 1
            case .perExample: return call.cost![i * shape.kLocal + c].asDouble
            case .classMatrix: return call.cost![g * shape.kLocal + c].asDouble
            }
        }

        /// Phase 1: per row, the max of v, the max of s' (the z-loss's own lse when the fear is
        /// not it), and the flag of a bad value.
        func localMaxima() {
            let out = call.maxima!
            let a = checked.costWeight, limit = T.greatestFiniteMagnitude.asDouble
            forEachRow { i in
                var fearMax = -Double.infinity, plainMax = -Double.infinity, flag = 0.0
                var scalar = isRead(i)
                if scalar, plain, shape.kLocal > 0 {
                    let survey = RowKernel.survey(shape.scores + i * shape.kLocal, count: shape.kLocal, SurveyMaximum.self)
                    let g = Int(shape.gold[i])
                    let goldMasked = owned(g).map { shape.scores[i * shape.kLocal + $0] == -.infinity } ?? false
                    if !survey.hasNaN, survey.maximum != .infinity, !goldMasked {
                        (fearMax, plainMax, scalar) = (survey.maximum.asDouble, survey.maximum.asDouble, false)
                    }  // else the scalar loop finds the flag
                }
                if scalar {
                    let g = Int(shape.gold[i])
                    for c in 0..<shape.kLocal {
                        let j = shape.kOffset + c
                        let raw = shape.scores[i * shape.kLocal + c].asDouble
                        if raw == .infinity { flag = Swift.max(flag, Flag.code(.infiniteScore, j)); continue }
                        if raw == -.infinity {
                            if j == g { flag = Swift.max(flag, Flag.code(.maskedGold, j)) }
                            continue
                        }
                        // The cost of every candidate that is not masked is read (as lk_dense
                        // does, whatever cost_scale), a NaN score's too.
                        if checked.layout != .zeroOne {
                            let cost = costOf(i, g, j, c)
                            guard cost.isFinite, (a * cost).isFinite else {
                                flag = Swift.max(flag, Flag.code(.badCost, j))
                                continue
                            }
                        }
                        if raw.isNaN { flag = Swift.max(flag, 1); continue }
                        guard let (s, _, v) = column(i, g, c) else { continue }
                        guard v.magnitude <= limit else {
                            flag = Swift.max(flag, Flag.code(.badCost, j))
                            continue
                        }
                        fearMax = Swift.max(fearMax, v)
                        plainMax = Swift.max(plainMax, s)
                    }
                }
                out[i * maxima] = fearMax
                out[i * maxima + 1] = checked.zLossApart ? plainMax : fearMax
                out[i * maxima + 2] = flag
            }
        }

        /// Phase 2: per row, centred on the reduced maxima M (fear) and P (plain): the exps of
        /// v - M other than exact 1s, the count of 1s, the gold's s' where this process owns it,
        /// sum s' / k over the unmasked classes, their count, the same two for s' - P; and for a
        /// max fear the argmax key: 1 when the gold reaches M here, else -j of the first class
        /// reaching it, else -inf.
        func localSums() {
            let inMax = UnsafePointer(call.maxima!), out = call.sums!
            let kk = Double(shape.k)
            forEachRow { i in
                var fearOthers = 0.0, fearOnes = 0.0, goldValue = 0.0, mean = 0.0, unmasked = 0.0
                var plainOthers = 0.0, plainOnes = 0.0, goldTies = false, firstTie = -1
                let m = inMax[i * maxima], p = inMax[i * maxima + 1], flag = inMax[i * maxima + 2]
                var scalar = isRead(i) && flag == 0 && m.isFinite && p.isFinite
                if scalar, plain, shape.kLocal > 0, let shift = T(exactly: m),
                   RowKernel.maximum(rowOf(i)) <= shift {
                    // Every exp <= 1 (the row's max is at most M); a holder of M counts its one 1 apart.
                    let row = rowOf(i), g = Int(shape.gold[i])
                    let survey = RowKernel.survey(row.scores, count: row.count, SurveyUnmasked.self)
                    unmasked = Double(survey.unmasked)
                    if let c = owned(g) { goldValue = row.scores[c].asDouble }
                    if loss.smoothing != 0 {
                        for c in 0..<row.count where row.scores[c] != -.infinity { mean += row.scores[c].asDouble / kk }
                    }
                    if loss.fearIsMax {
                        if let c = owned(g), row.scores[c] == shift {
                            goldTies = true
                        } else {
                            let c = RowKernel.firstIndex(of: shift, in: row)
                            if c >= 0 { firstTie = shape.kOffset + c }
                        }
                    } else {
                        let total = RowKernel.expSum(row, shift: shift, into: Discard<T>())
                        if survey.maximum == shift {
                            (fearOthers, fearOnes) = (RowKernel.rest(total: total, row: row, shift: shift), 1)
                        } else {
                            fearOthers = total
                        }
                    }
                    scalar = false
                }
                if scalar {
                    let g = Int(shape.gold[i])
                    for c in 0..<shape.kLocal {
                        let j = shape.kOffset + c
                        guard let (s, _, v) = column(i, g, c) else { continue }
                        unmasked += 1
                        mean += s / kk  // in parts: no overflow
                        if j == g { goldValue = s }
                        if loss.fearIsMax {
                            if v == m { if j == g { goldTies = true } else if firstTie < 0 { firstTie = j } }
                        } else {
                            let e = exp(v - m)
                            if e == 1 { fearOnes += 1 } else { fearOthers += e }
                        }
                        if checked.zLossApart {
                            let e = exp(s - p)
                            if e == 1 { plainOnes += 1 } else { plainOthers += e }
                        }
                    }
                }
                let key = goldTies ? 1 : firstTie >= 0 ? -Double(firstTie) : -Double.infinity
                let row = out + i * sums
                (row[0], row[1], row[2], row[3]) = (fearOthers, fearOnes, goldValue, mean)
                (row[4], row[5], row[6]) = (unmasked, plainOthers, plainOnes)
                if loss.fearIsMax, let argmax = call.argmax { argmax[i] = key }
            }
        }

        /// One row's reduced terms.
        struct Terms {
            var fearMax: Double, fearRest: Double, plainMax: Double, plainRest: Double
            var gold: Double, mean: Double, unmasked: Double, argmax: Int
        }

        func terms(_ i: Int) -> Terms {
            let mx = call.maxima! + i * maxima, sm = call.sums! + i * sums
            let argmax: Int
            if loss.fearIsMax, let key = call.argmax?[i], key == 1 || (key <= 0 && key > -Double(shape.k)) {
                // (checked in phase 3's values, but for a NaN row, which is not read)
                argmax = key == 1 ? Int(shape.gold[i]) : Int(-key)
            } else {
                argmax = -1
            }
            let unmasked = sm[4]
            return Terms(fearMax: mx[0], fearRest: sm[0] + Swift.max(sm[1] - 1, 0), plainMax: mx[1],
                         plainRest: sm[5] + Swift.max(sm[6] - 1, 0), gold: sm[2],
                         mean: unmasked > 0 ? sm[3] * (Double(shape.k) / unmasked) : 0, unmasked: unmasked,
                         argmax: argmax)
        }

        /// Phase 3: each row's loss (Linear's parts), the reduction, then this process's columns
        /// of the gradient.
        func finish() {
            let n = shape.n, kLocal = shape.kLocal
            let zLoss = options.shaping.zLoss
            let values = checked.values
            for i in 0..<n where isRead(i) {
                // A NaN score in some process's columns: the row's loss is NaN (its sums are not read).
                guard call.maxima![i * maxima + 2] != 1 else { values[i] = .nan; continue }
                let t = terms(i)
                let fearLog = loss.fearIsMax ? 0 : log1p(t.fearRest)
                let lse = zLoss == 0 ? 0 : checked.zLossApart ? t.plainMax + log1p(t.plainRest) : t.fearMax + fearLog
                checked.lses[i] = lse
                values[i] = Self.value(t, fearLog: fearLog, lse: lse, loss: loss, zLoss: zLoss)
            }
            let chunks = Chunks(examples: n, valuesPerExample: Swift.max(kLocal, 1))
            shape.batch.run(loss: call.loss, counted: checked.counted, chunks: chunks, threads: 1,
                            partials: checked.partials, isIgnored: { shape.gold[$0] == options.ignoreLabel },
                            skip: { _ in }, evaluate: { i, _, _, _ in values[i] })
            guard let grad = call.grad else { return }
            let eps = loss.smoothing
            forEachRow { i in
                let row = grad + i * kLocal
                guard isRead(i) else { row.update(repeating: 0, count: kLocal); return }
                if values[i].isNaN, call.maxima![i * maxima + 2] == 1 {
                    row.update(repeating: .nan, count: kLocal)
                    return
                }
                let g = Int(shape.gold[i]), t = terms(i), w = shape.batch.weight(i)
                let coefficient = options.reduction == .mean ? w / checked.counted : w
                let denominator = 1 + t.fearRest, plainDenominator = 1 + t.plainRest
                let kk = t.unmasked
                if plain, kLocal > 0, fastGradient(i, row: row, g: g, t: t, coefficient: coefficient) { return }
                for c in 0..<kLocal {
                    let j = shape.kOffset + c
                    guard let (s, slope, v) = column(i, g, c) else { row[c] = 0; continue }
                    var dg: Double
                    if loss.fearIsMax {
                        dg = (j == t.argmax ? 1 : 0) - (j == g ? 1 : 0)
                    } else {
                        let e = Swift.min(exp(v - t.fearMax), 1)  // <= 1 under the true max
                        dg = j == g ? (v == t.fearMax ? -t.fearRest / denominator : e / denominator - 1) : e / denominator
                    }
                    if eps != 0 { dg += j == g ? eps * ((kk - 1) / kk) : -eps / kk }
                    var q = 0.0
                    if zLoss != 0 {
                        q = Swift.min(checked.zLossApart ? exp(s - t.plainMax) / plainDenominator
                                                         : exp(v - t.fearMax) / denominator, 1)
                    }
                    row[c] = T(rounding: Self.entry(coefficient, dg * slope, zLoss, checked.lses[i], q * slope))
                }
            }
        }

        /// Phase 3's row on the vector kernels (`plain` rows): for a log-sum-exp fear the exps
        /// into the row, scaled once by coefficient (1 + 2 lambda lse) / (1 + rest), then the
        /// smoothing's -coefficient eps / K on the unmasked classes and the gold's entry formed
        /// as in the scalar loop; for a max fear (no z-loss here) zeros but at the argmax and the
        /// gold. False (nothing written) where the row's max exceeds M (statistics that are not
        /// this row's) or the factor is not finite: the scalar loop then takes the row.
        func fastGradient(_ i: Int, row: UnsafeMutablePointer<T>, g: Int, t: Terms, coefficient: Double) -> Bool {
            let scores = rowOf(i), kLocal = shape.kLocal, zLoss = options.shaping.zLoss, eps = loss.smoothing
            let lse = zLoss == 0 ? 0 : checked.lses[i]
            guard let shift = T(exactly: t.fearMax), RowKernel.maximum(scores) <= shift else { return false }
            if loss.fearIsMax {
                guard zLoss == 0 else { return false }
                row.update(repeating: 0, count: kLocal)
                if let c = owned(t.argmax) { row[c] = T(rounding: coefficient) }
                if let c = owned(g) { row[c] = T(rounding: (t.argmax == g ? 0 : -coefficient)) }
                return true
            }
            let denominator = 1 + t.fearRest
            let factor = coefficient / denominator * (zLoss == 0 ? 1 : 1 + 2 * zLoss * lse)
            guard factor.isFinite, T(rounding: factor).isFinite else { return false }
            _ = RowKernel.expSum(scores, shift: shift, into: BufferSink(base: row))
            RowKernel.scale(UnsafePointer(row), by: T(rounding: factor), into: row, count: kLocal)
            if eps != 0 {
                let minus = coefficient * eps / t.unmasked
                for c in 0..<kLocal where scores.scores[c] != -.infinity { row[c] = T(rounding: row[c].asDouble - minus) }
            }
            if let c = owned(g) {
                let v = scores.scores[c].asDouble
                let e = Swift.min(exp(v - t.fearMax), 1)
                var dg = v == t.fearMax ? -t.fearRest / denominator : e / denominator - 1
                if eps != 0 { dg += eps * ((t.unmasked - 1) / t.unmasked) }
                row[c] = T(rounding: Self.entry(coefficient, dg, zLoss, lse, zLoss == 0 ? 0 : e / denominator))
            }
            return true
        }

        /// F - H (+ smoothing, + z-loss) from the parts, in eighths where a part or the sum is
        /// not finite (as Linear).
        static func value(_ t: Terms, fearLog: Double, lse: Double, loss: Linear.Loss, zLoss: Double) -> Double {
            func parts(_ scale: Double) -> Double {
                var value = (t.fearMax * scale - t.gold * scale) + fearLog * scale
                if loss.smoothing != 0 { value += loss.smoothing * (t.gold * scale - t.mean * scale) }
                if zLoss != 0 { value += ((zLoss * scale) * lse) * lse }
                return value
            }
            let value = parts(1)
            return value.isFinite ? value : 8 * parts(0.125)
        }

        /// coefficient (dloss/ds' slope + 2 lambda lse q slope), each product scaled once
        /// (Shaping.product), and the sum in units of 2^-64 where it is not finite.
        @inline(__always) static func entry(_ coefficient: Double, _ a: Double, _ zLoss: Double, _ lse: Double,
                                            _ b: Double) -> Double {
            func sum(_ c: Double) -> Double {
                c * a + (zLoss == 0 || b == 0 ? 0 : Shaping.product(c, zLoss, lse * b, times2: true))
            }
            let plain = sum(coefficient)
            return plain.isNaN ? scalbn(sum(scalbn(coefficient, -64)), 64) : plain
        }
    }
}

extension VocabParallel {
    /// The arguments of an lk_vocab_dense call and what each phase of the checks (CallChecks)
    /// checks of them.
    struct Call<T: StorageFloat>: CallChecks {
        let options: Options
        let phase: Int
        let fearIsMax: Bool
        let n: Int64, k: Int64, kOffset: Int64, kLocal: Int64
        let scores: UnsafePointer<T>?, gold: UnsafePointer<Int32>?, cost: UnsafePointer<T>?
        let weight: UnsafePointer<T>?
        let maxima: UnsafeMutablePointer<Double>?, sums: UnsafeMutablePointer<Double>?
        let argmax: UnsafeMutablePointer<Double>?
        let loss: UnsafeMutablePointer<T>?, grad: UnsafeMutablePointer<T>?

        var examples: Int64 { n }
        var layout: CostLayout { options.recipe.readsCosts ? options.costLayout : .zeroOne }

        func checkPointers() throws(Failure) {
            if kLocal != 0 { try Validation.require(scores, "scores") }
            try Validation.require(gold, "gold")
            try Validation.require(maxima, "maxima")
            if phase >= 2 { try Validation.require(sums, "sums") }
            if phase >= 2, fearIsMax {
                guard argmax != nil else {
                    throw .null("argmax is NULL (required in phases 2 and 3 by a max fear: HINGE, PERCEPTRON)")
                }
            }
            // Phases 1 and 2 read the costs of this process's columns, phase 3 only for the gradient.
            if kLocal != 0, layout != .zeroOne, cost == nil, phase < 3 || grad != nil {
                throw .null("cost is NULL, but this loss reads costs and opt->cost_layout is "
                            + "\(layout == .perExample ? "LK_COST_PER_EXAMPLE" : "LK_COST_CLASS_MATRIX")")
            }
        }

        struct Shape {
            let n: Int, k: Int, kOffset: Int, kLocal: Int
            let scores: UnsafePointer<T>, gold: UnsafePointer<Int32>
            let batch: Batch<T>
        }

        /// n, k and the shard (k_offset + k_local <= k), and the byte size of every buffer read
        /// or written, before anything is read.
        func checkSizes() throws(Failure) -> Shape? {
            let n = try Validation.dimension(self.n, "n"), k = try Validation.dimension(self.k, "k")
            let kOffset = try Validation.dimension(self.kOffset, "k_offset")
            let kLocal = try Validation.dimension(self.kLocal, "k_local")
            guard k <= VocabParallel.largestK else {
                throw .size("k = \(k) exceeds 2^50: class indices travel in the statistics as doubles, exact to 2^53")
            }
            guard kOffset <= k, kLocal <= k - kOffset else {
                throw .size("k_offset + k_local = \(kOffset) + \(kLocal) exceeds k = \(k): a shard's columns must be "
                            + "classes [k_offset, k_offset + k_local) of [0, k)")
            }
            _ = try elementCount(n, kLocal, of: T.self, "n * k_local (scores, grad)")
            _ = try elementCount(n, VocabParallel.maxima, of: Double.self, "n * LK_VOCAB_MAXIMA (maxima)")
            _ = try elementCount(n, VocabParallel.sums, of: Double.self, "n * LK_VOCAB_SUMS (sums)")
            if layout == .perExample { _ = try elementCount(n, kLocal, of: T.self, "n * k_local (cost)") }
            if layout == .classMatrix { _ = try elementCount(k, kLocal, of: T.self, "k * k_local (cost class columns)") }
            guard n > 0, let gold else { return nil }
            guard k >= 1 else { throw .size("k = 0, but the loss needs at least one class when n > 0") }
            // A process with no columns passes scores = NULL; nothing is read from it.
            let scores = self.scores ?? UnsafePointer(bitPattern: MemoryLayout<T>.alignment)!
            return Shape(n: n, k: k, kOffset: kOffset, kLocal: kLocal, scores: scores, gold: gold,
                         batch: Batch(count: n, weights: weight, reduction: options.reduction))
        }

        func writeEmptyBatch() {
            if phase == 3 { Batch<T>.writeEmpty(loss, options.reduction) }
        }

        func checkLabels(_ shape: Shape) throws(Failure) {
            try Validation.checkClasses(shape.gold, k: shape.k, ignoreLabel: options.ignoreLabel, shape.batch)
        }

        final class Checked {
            let shape: Shape
            let counted: Double
            let costWeight: Double
            let layout: CostLayout
            let zLossApart: Bool
            /// Phase 3: each row's loss and lse(s') (z-loss), and the reduction's per-chunk sums
            /// (phases 1 and 2 allocate nothing: no LK_ERR_ALLOC there, where a process alone
            /// failing would leave the others waiting in a reduction).
            let scratch: (values: Scratch<Double>, lses: Scratch<Double>, partials: Scratch<Double>)?
            var values: Scratch<Double> { scratch!.values }
            var lses: Scratch<Double> { scratch!.lses }
            var partials: Scratch<Double> { scratch!.partials }

            init(shape: Shape, counted: Double, costWeight: Double, layout: CostLayout, zLossApart: Bool,
                 phase: Int) throws(Failure) {
                (self.shape, self.counted, self.costWeight, self.layout, self.zLossApart) =
                    (shape, counted, costWeight, layout, zLossApart)
                guard phase == 3 else {
                    scratch = nil
                    return
                }
                let chunks = Chunks(examples: shape.n, valuesPerExample: Swift.max(shape.kLocal, 1))
                let values = try Scratch<Double>(shape.n, "each row's loss")
                let lses: Scratch<Double>, partials: Scratch<Double>
                do {
                    lses = try Scratch<Double>(shape.n, "each row's lse(s') for the z-loss")
                } catch {
                    values.free()
                    throw error
                }
                do {
                    partials = try Scratch<Double>(Batch<T>.partialCount(chunks.count), "the per-chunk sums")
                } catch {
                    values.free()
                    lses.free()
                    throw error
                }
                scratch = (values, lses, partials)
            }

            deinit {
                scratch?.values.free()
                scratch?.lses.free()
                scratch?.partials.free()
            }
        }

        /// Weights and the mean's denominator (the same on every process); in phase 3, the flags
        /// the reductions brought (a bad value in some process's columns), every row's maxima
        /// (a row with every class masked) and the argmax keys.
        func checkValues(_ shape: Shape) throws(Failure) -> Checked {
            let ignore = options.ignoreLabel
            for i in 0..<shape.n where shape.gold[i] != ignore { try shape.batch.checkWeight(i) }
            let counted = try shape.batch.denominator(isIgnored: { shape.gold[$0] == ignore })
            let costWeight = Linear.Loss.costWeight(options)
            let zLossApart = options.shaping.zLoss != 0 && (fearIsMax || costWeight != 0)
            if phase >= 2, let maxima {
                for i in 0..<shape.n where shape.gold[i] != ignore && !shape.batch.hasZeroWeight(i) {
                    let flag = maxima[i * VocabParallel.maxima + 2]
                    // 0, 1 (NaN), or 2 + 3 j + kind for a class j < k
                    guard flag >= 0, flag < 2 + 3 * Double(shape.k), flag == flag.rounded() else {
                        throw .domain("maxima[\(i), 2] = \(flag) is not a flag phase 1 wrote (reduced with MAX)")
                    }
                    if flag >= 2 {
                        guard phase == 3 else { continue }
                        let code = Int(flag) - 2, j = code / 3
                        let what = [Flag.infiniteScore: "is +inf", .badCost: "has a cost that is not finite, or "
                                    + "overflows once scaled and added to it", .maskedGold: "is the gold and masked (-inf) "
                                    + "under a loss that uses the gold score"][Flag(rawValue: code % 3)!]!
                        throw .domain("scores[\(i), \(j)] (global class \(j), in the process holding it) \(what)")
                    }
                    guard phase == 3, flag == 0 else { continue }
                    guard maxima[i * VocabParallel.maxima] > -.infinity else {
                        throw .domain("row \(i) has every class masked (-inf) in every process")
                    }
                    try checkReduced(i, k: shape.k, zLossApart: zLossApart)
                    if fearIsMax, let argmax {
                        let key = argmax[i]
                        guard key == 1 || (key <= 0 && key > -Double(shape.k) && key == key.rounded()) else {
                            throw .domain("argmax[\(i)] = \(key) is not a key phase 2 wrote (reduced with MAX)")
                        }
                    }
                }
            }
            return try Checked(shape: shape, counted: counted, costWeight: costWeight, layout: layout,
                               zLossApart: zLossApart, phase: phase)
        }

        /// Phase 3: row i's reduced maxima and sums are values phases 1 and 2 can produce (finite
        /// maxima; exp sums finite and >= 0; counts of exact 1s and of classes whole numbers in
        /// [1, k], 0 where unused; a finite gold and mean), so that no garbage becomes a NaN.
        func checkReduced(_ i: Int, k: Int, zLossApart: Bool) throws(Failure) {
            let mx = maxima! + i * VocabParallel.maxima, sm = sums! + i * VocabParallel.sums
            // Every v, s' and gold score phase 1 and 2 keep is within the type's range, and so
            // is a mean of s' (sums[3] is sum s' / k over the unmasked classes).
            let limit = T.greatestFiniteMagnitude.asDouble
            for c in 0..<2 where !(mx[c].magnitude <= limit) {
                throw .domain("maxima[\(i), \(c)] = \(mx[c]) is not a maximum phase 1 writes (reduced with MAX)")
            }
            let unmaskedShare = sm[4] / Double(k)
            let count = { (v: Double, used: Bool) -> Bool in
                used ? v >= 1 && v <= Double(k) && v == v.rounded() : v == 0
            }
            let valid = [sm[0].isFinite && sm[0] >= 0 && (!fearIsMax || sm[0] == 0), count(sm[1], !fearIsMax),
                         sm[2].magnitude <= limit, sm[3].magnitude <= limit * unmaskedShare, count(sm[4], true),
                         sm[5].isFinite && sm[5] >= 0 && (zLossApart || sm[5] == 0), count(sm[6], zLossApart)]
            if let c = valid.firstIndex(of: false) {
                throw .domain("sums[\(i), \(c)] = \(sm[c]) is not a sum phase 2 writes (reduced with SUM)")
            }
        }
    }
}
