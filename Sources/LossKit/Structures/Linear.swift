import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// A linear layer and a dense loss fused (lk_linear_*): the logits z = x w^T + b of n rows and
/// k classes are never stored whole. Tile by tile (every row against `classTile` classes at a
/// time, classes in order), a first pass keeps each row's running max and sum of exps (the
/// fear term, the z-loss's plain log-sum-exp), its gold logit and its sum of logits; a second
/// pass computes the same tiles again and turns each into G = dloss/dz, then d_x += G w_C,
/// d_w[C] = G^T x and d_b[C] = the column sums of G. Four products in all (the logits twice);
/// extra memory n * classTile values for the tile of every row, classTile * d for that tile of
/// w transposed, and the products' packs: O(n + d) times the tile, whatever k.
///
/// Determinism: in the first pass and in d_x, threads own blocks of rows and each row runs over
/// the class tiles in order; d_w and d_b of a tile are owned class by class, each summed over
/// the rows in order. The same bits at any thread count.
///
/// The losses are the dense rows' fear-minus-hope recipes whose hope is the gold (log loss,
/// label smoothing, softmax-margin, hinge, perceptron, and HOPE_FEAR with a gold hope), with the
/// dense rows' softcap and z-loss (Shaping) and batch semantics.
enum Linear {
    /// Classes per tile, and rows per block of a thread's work.
    static let classTile = 256
    static let rowBlock = 64

    /// What the fused pass computes per row: fear(s' + a c) - s'[g] (+ the smoothing term), with
    /// the fear a log-sum-exp or a max of the cost-augmented logits.
    struct Loss {
        var fearIsMax: Bool
        /// a: the fear's cost weight (times cost_scale: `costWeight`).
        var costFactor: Double
        var smoothing: Double

        init(_ recipe: Recipe, entry: String = "lk_linear") throws(Failure) {
            switch recipe {
            case .fearMinusHope(.logSumExp(let a), .gold):
                (fearIsMax, costFactor, smoothing) = (false, a, 0)
            case .fearMinusHope(.max(let a), .gold):
                (fearIsMax, costFactor, smoothing) = (true, a, 0)
            case .smoothedLog(let epsilon):
                (fearIsMax, costFactor, smoothing) = (false, 0, epsilon)
            default:
                throw .unsupported("\(entry) computes the losses whose hope is the gold score: LOG (with label "
                                   + "smoothing), SOFTMAX_MARGIN, HINGE, PERCEPTRON and HOPE_FEAR with hope = "
                                   + "LK_TERM_GOLD; not this opt->loss")
            }
        }
    }

    /// One row's running terms (the first pass), in double.
    struct RowTerms {
        /// The fear: the max of v = s' + a alpha c (exact in double), its class, and for a
        /// log-sum-exp the sum of exp(v_j - max) over the other classes.
        var fearMax = -Double.infinity, fearArg = -1, fearRest = 0.0
        /// lse(s') for the z-loss, when the fear is not it.
        var plainMax = -Double.infinity, plainRest = 0.0
        var gold = 0.0
        var mean = 0.0
        /// A class whose logit (or, with `augmented`, its cost-augmented logit) overflows the
        /// type, or -1.
        var overflow = -1
        var augmented = false

        @inline(__always) static func add(_ v: Double, _ j: Int, gold: Int, max: inout Double, arg: inout Int,
                                          rest: inout Double, sums: Bool) {
            if v > max || (v == max && j == gold) {
                // A new max: the old one's exp (1) joins the rest, rescaled. A tie the gold
                // takes: the old argmax's exp(0) = 1 joins the rest, the gold's leaves it.
                if sums { rest = v > max ? (rest + (max == -.infinity ? 0 : 1)) * exp(max - v) : rest + 1 }
                max = v
                arg = j
            } else if sums {
                rest += exp(v - max)
            }
        }
    }

    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, d: Int64, k: Int64,
        x: UnsafePointer<T>?, w: UnsafePointer<T>?, bias: UnsafePointer<T>?, gold: UnsafePointer<Int32>?,
        cost: UnsafePointer<T>?, weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dX: UnsafeMutablePointer<T>?, dW: UnsafeMutablePointer<T>?, dB: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        try compute(opt, n: n, d: d, k: k, x: x.map { Source($0) }, w: w.map { Source($0) }, bias: bias, gold: gold,
                    cost: cost, weight: weight, loss: loss, dX: GradientSink(dX), dW: GradientSink(dW), dB: dB)
    }

    /// lk_linear_bf16: lk_linear_f32 on x and w widened (x's rows read at once, w a class tile at
    /// a time), d_x and d_w narrowed from their float values.
    static func compute(
        _ opt: UnsafePointer<lk_options>?, n: Int64, d: Int64, k: Int64,
        bfloat16 x: UnsafePointer<UInt16>?, w: UnsafePointer<UInt16>?, bias: UnsafePointer<Float>?,
        gold: UnsafePointer<Int32>?, cost: UnsafePointer<Float>?, weight: UnsafePointer<Float>?,
        loss: UnsafeMutablePointer<Float>?, dX: UnsafeMutablePointer<UInt16>?, dW: UnsafeMutablePointer<UInt16>?,
        dB: UnsafeMutablePointer<Float>?, dXFloat: UnsafeMutablePointer<Float>?, dWFloat: UnsafeMutablePointer<Float>?
    ) throws(Failure) {
        try compute(opt, n: n, d: d, k: k, x: x.map { Source(bfloat16: $0) }, w: w.map { Source(bfloat16: $0) },
                    bias: bias, gold: gold, cost: cost, weight: weight, loss: loss,
                    dX: GradientSink(dXFloat, bfloat16: dX), dW: GradientSink(dWFloat, bfloat16: dW), dB: dB)
    }

    private static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, d: Int64, k: Int64,
        x: Source<T>?, w: Source<T>?, bias: UnsafePointer<T>?, gold: UnsafePointer<Int32>?,
        cost: UnsafePointer<T>?, weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dX: GradientSink<T>, dW: GradientSink<T>, dB: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parse(opt, for: .dense, computingIn: T.self)
        let lossKind = try Loss(options.recipe)
        let call = Call(options: options, n: n, d: d, k: k, x: x, w: w, bias: bias, gold: gold, cost: cost,
                        weight: weight, loss: loss, dW: dW, dB: dB)
        guard let checked = try call.validate() else { return }
        let shape = checked.shape
        let (n, d, k, x, w, gold, batch) = (shape.n, shape.d, shape.k, shape.x, shape.w, shape.gold, shape.batch)
        let shaping = options.shaping
        let costWeight = Loss.costWeight(options)
        let layout = options.recipe.readsCosts ? options.costLayout : .zeroOne
        let ignore = options.ignoreLabel
        let isRead = { (i: Int) in gold[i] != ignore && !batch.hasZeroWeight(i) }

        // The rows read, compacted when some are not (their x is not read: it may be anything),
        // and always when x is widened (bfloat16).
        let active = checked.active
        let compact = active < n || x.isWidened
        let rowsOf = try Scratch<Int>(Swift.max(active, 1), "the rows that are read")
        defer { rowsOf.free() }
        let xsCopy = try Scratch<T>(compact ? active * d : 0, "the rows of x that are read")
        defer { xsCopy.free() }
        var r = 0
        for i in 0..<n where isRead(i) {
            rowsOf[r] = i
            if compact { x.copy(i * d, d, into: xsCopy.base + r * d) }
            r += 1
        }
        let xs = compact ? UnsafePointer(xsCopy.base) : x.values!
        let m = active
        let tile = Swift.min(classTile, k)
        let threads = Swift.min(Parallel.available(requested: options.threads),
                                Swift.max((m + rowBlock - 1) / rowBlock, (tile + 15) / 16))
        let logits = try Scratch<T>(m * tile, "the logits of one class tile")
        defer { logits.free() }
        let wt = try Scratch<T>(d * tile, "one class tile of w, transposed")
        defer { wt.free() }
        let wTile = try Scratch<T>(w.isWidened ? d * tile : 0, "one class tile of w, widened")
        defer { wTile.free() }
        let dWTile = try Scratch<T>(dW.needsScratch ? d * tile : 0, "one class tile of d_w before narrowing")
        defer { dWTile.free() }
        let packs = try Scratch<T>(threads * MatrixKernel.packSize, "the packed blocks of the products")
        defer { packs.free() }
        let terms = try Scratch<RowTerms>(Swift.max(m, 1), "each row's running terms")
        defer { terms.free() }
        terms.base.initialize(repeating: RowTerms(), count: Swift.max(m, 1))
        let dXs = try Scratch<T>(compact && dX.isWritten ? m * d : 0, "the gradient of the rows of x read")
        defer { dXs.free() }
        let dXRow = try Scratch<T>(dX.needsScratch ? d : 0, "a row of d_x before narrowing")
        defer { dXRow.free() }

        // Each thread takes one run of rows (at least rowBlock) and one run of a tile's classes:
        // a product packs its block of b once per call, so the fewer calls the better. Every
        // output row's sum runs in the same order however the rows are grouped: the same bits.
        let productThreads = Parallel.threads(requested: options.threads,
                                              elements: Int(Swift.min(Double(m) * Double(tile) * Double(d) / 8, 1e15)),
                                              chunks: (m + rowBlock - 1) / rowBlock)
        let rowsPerChunk = Swift.max(rowBlock, (m + productThreads - 1) / Swift.max(productThreads, 1))
        let rowBlocks = (m + rowsPerChunk - 1) / rowsPerChunk
        /// s' of row r (compact), class j, from the tile's logit: z + b, capped.
        @inline(__always) func shaped(_ z: T, _ j: Int) -> (value: Double, slope: Double) {
            let s = z.asDouble + (bias.map { $0[j].asDouble } ?? 0)
            guard shaping.softcap != 0 else { return (s, 1) }
            return Shaping.capped(s, shaping.softcap)
        }
        @inline(__always) func costOf(_ i: Int, _ g: Int, _ j: Int) -> Double {
            switch layout {
            case .zeroOne: return j == g ? 0 : 1
            case .perExample: return cost![i * k + j].asDouble
            case .classMatrix: return cost![g * k + j].asDouble
            }
        }
        /// The logits of rows `rows` (compact) against the classes of the current tile (wt).
        @inline(__always) func logitsOf(_ rows: Range<Int>, width: Int, worker: Int) {
            MatrixKernel.combineRows(a: xs, aRow: d, aColumn: 1, depth: d, b: UnsafePointer(wt.base), bRow: width,
                                     width: width, out: logits.base, outRow: width, rows: rows, accumulate: false,
                                     pack: packs.base + worker * MatrixKernel.packSize)
        }
        /// The tile's rows of w (widened if need be) into wt, transposed; returns those rows.
        func transposeTile(_ c0: Int, _ width: Int) -> UnsafePointer<T> {
            let rows = w.span(c0 * d, width * d, into: wTile.base)
            for c in 0..<width {
                let row = rows + c * d
                for t in 0..<d { wt[t * width + c] = row[t] }
            }
            return rows
        }
        let zLossApart = shaping.zLoss != 0 && (lossKind.fearIsMax || costWeight != 0)
        let kk = Double(k)

        // The first pass: each row's terms, tile by tile.
        var c0 = 0
        while c0 < k {
            let width = Swift.min(tile, k - c0)
            _ = transposeTile(c0, width)
            Parallel.forEach(chunks: rowBlocks, threads: productThreads) { block, worker in
                let rows = (block * rowsPerChunk)..<Swift.min(m, (block + 1) * rowsPerChunk)
                logitsOf(rows, width: width, worker: worker)
                for r in rows {
                    let i = rowsOf[r], g = Int(gold[i])
                    let z = logits.base + r * width
                    var t = terms[r]
                    for c in 0..<width {
                        let j = c0 + c
                        let logit = z[c].asDouble + (bias.map { $0[j].asDouble } ?? 0)
                        guard logit.magnitude <= T.greatestFiniteMagnitude.asDouble else {
                            if t.overflow < 0 { t.overflow = j }
                            continue
                        }
                        let s = shaped(z[c], j).value
                        let v = costWeight == 0 ? s : s + costWeight * costOf(i, g, j)
                        // The cost-augmented logit must fit the type too (as on dense rows).
                        guard v.magnitude <= T.greatestFiniteMagnitude.asDouble else {
                            if t.overflow < 0 { t.overflow = j; t.augmented = true }
                            continue
                        }
                        RowTerms.add(v, j, gold: g, max: &t.fearMax, arg: &t.fearArg, rest: &t.fearRest,
                                     sums: !lossKind.fearIsMax)
                        if zLossApart {
                            var arg = 0
                            RowTerms.add(s, j, gold: g, max: &t.plainMax, arg: &arg, rest: &t.plainRest, sums: true)
                        }
                        if j == g { t.gold = s }
                        t.mean += s / kk  // the mean of the logits, summed in parts: no overflow
                    }
                    terms[r] = t
                }
            }
            c0 += width
        }
        for r in 0..<m where terms[r].overflow >= 0 {
            let logit = "x[\(rowsOf[r])] . w[\(terms[r].overflow)] + b"
            throw .domain("the \(terms[r].augmented ? "cost-augmented logit \(logit) + cost" : "logit \(logit)") "
                          + "overflows \(T.self == Float.self ? "float" : "double")")
        }

        // Each row's loss and the normalisers its gradient needs.
        let values = try Scratch<Double>(Swift.max(m, 1), "each row's loss")
        defer { values.free() }
        let lses = try Scratch<Double>(Swift.max(m, 1), "each row's lse(s') for the z-loss")
        defer { lses.free() }
        for r in 0..<m {
            let t = terms[r]
            let fearLog = lossKind.fearIsMax ? 0 : log1p(t.fearRest)
            let lse = shaping.zLoss == 0 ? 0 : zLossApart ? t.plainMax + log1p(t.plainRest) : t.fearMax + fearLog
            lses[r] = lse
            // The parts times `scale`: 1, or 1/8 where a part or their sum is not finite (F - H
            // up to 2 DBL_MAX, the smoothing term, the z-loss: inf - inf, or a sum that overflows
            // on the way although the result need not); each part's eighth is finite, or
            // outweighs the others.
            func parts(_ scale: Double) -> Double {
                var value = (t.fearMax * scale - t.gold * scale) + fearLog * scale
                if lossKind.smoothing != 0 { value += lossKind.smoothing * (t.gold * scale - t.mean * scale) }
                // lambda scaled first: (lambda / 8) lse overflows only where lambda lse^2 / 8 does
                if shaping.zLoss != 0 { value += ((shaping.zLoss * scale) * lse) * lse }
                return value
            }
            let value = parts(1)
            values[r] = value.isFinite ? value : 8 * parts(0.125)
        }
        let compactRow = try Scratch<Int>(n, "the compact row of each example")
        defer { compactRow.free() }
        compactRow.base.update(repeating: -1, count: n)
        for r in 0..<m { compactRow[rowsOf[r]] = r }
        let chunks = Chunks(examples: n, valuesPerExample: Swift.max(k, 1))
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunks.count), "the per-chunk sums")
        defer { partials.free() }
        batch.run(loss: loss, counted: checked.counted, chunks: chunks, threads: 1, partials: partials,
                  isIgnored: { gold[$0] == ignore }, skip: { _ in },
                  evaluate: { i, _, _, _ in values[compactRow[i]] })

        guard dX.isWritten || dW.isWritten || dB != nil else { return }
        // The gradient's units 2^-shift: G = coefficient dloss/ds', and the products' partial sums,
        // bounded by (sum of the coefficients) (2 + 2 eps + 2 lambda max|lse|) max(|x|, |w|, 1) d,
        // stay finite; stored outputs are scaled back exactly (+-inf where they overflow).
        // In exponents (v < 2^top(v)), so that no bound itself overflows: the largest
        // coefficient, times |dloss/ds'| <= 2 + 2 eps + 2 lambda max|lse|, times max(|x|, |w|,
        // |b|, 1), times max(d, k) terms, times m rows.
        let top = { (v: Double) -> Int in v.isFinite && v > 0 ? Int(v.exponent) + 1 : (v > 0 ? 1100 : -1100) }
        var largestCoefficient = 0.0, largestLse = 0.0
        for r in 0..<m {
            let wr = batch.weight(rowsOf[r])
            largestCoefficient = Swift.max(largestCoefficient, options.reduction == .mean ? wr / checked.counted : wr)
            if shaping.zLoss != 0 { largestLse = Swift.max(largestLse, lses[r].magnitude) }
        }
        let factorTop = Swift.max(top(2 + 2 * lossKind.smoothing), 1 + top(shaping.zLoss) + top(largestLse)) + 1
        let boundTop = top(largestCoefficient) + factorTop + top(Swift.max(checked.largestInput, 1))
            + top(Double(Swift.max(d, k))) + top(Double(Swift.max(m, 1)))
        let limit = Int(T.greatestFiniteMagnitude.asDouble.exponent) - 3
        let shift = Swift.max(0, boundTop - limit)

        // The second pass: G tile by tile; d_x (+)= G w_C by rows, d_w[C] = G^T x and d_b[C] by classes.
        let dXOut = !dX.isWritten ? nil : compact ? dXs.base : dX.values
        c0 = 0
        while c0 < k {
            let width = Swift.min(tile, k - c0)
            let wRows = transposeTile(c0, width)
            let first = c0 == 0
            Parallel.forEach(chunks: rowBlocks, threads: productThreads) { block, worker in
                let rows = (block * rowsPerChunk)..<Swift.min(m, (block + 1) * rowsPerChunk)
                logitsOf(rows, width: width, worker: worker)
                for r in rows {
                    let i = rowsOf[r], g = Int(gold[i])
                    let wr = batch.weight(i)
                    // In units of 2^-shift (a small coefficient may underflow there: see the header).
                    let coefficient = scalbn(options.reduction == .mean ? wr / checked.counted : wr, -shift)
                    let t = terms[r]
                    let z = logits.base + r * width
                    let denominator = 1 + t.fearRest
                    let plainDenominator = 1 + t.plainRest
                    // 2 coefficient lambda lse (in the units: finite by the shift's bound).
                    let zFactor = shaping.zLoss == 0 ? 0 : Shaping.product(coefficient, shaping.zLoss, lses[r], times2: true)
                    for c in 0..<width {
                        let j = c0 + c
                        let (s, slope) = shaped(z[c], j)
                        var dg: Double
                        if lossKind.fearIsMax {
                            dg = (j == t.fearArg ? 1 : 0) - (j == g ? 1 : 0)
                        } else {
                            let v = costWeight == 0 ? s : s + costWeight * costOf(i, g, j)
                            let e = j == t.fearArg ? 1 : exp(v - t.fearMax)
                            dg = j == g ? (j == t.fearArg ? -t.fearRest / denominator : e / denominator - 1)
                                        : e / denominator
                        }
                        if lossKind.smoothing != 0 {
                            dg += j == g ? lossKind.smoothing * ((kk - 1) / kk) : -lossKind.smoothing / kk
                        }
                        var zTerm = 0.0
                        if zFactor != 0 {
                            let q = zLossApart ? exp(s - t.plainMax) / plainDenominator
                                               : (j == t.fearArg ? 1 : exp(s - t.fearMax)) / denominator
                            zTerm = zFactor * (q * slope)
                        }
                        z[c] = T(rounding: coefficient * (dg * slope) + zTerm)
                    }
                }
                if let out = dXOut {
                    MatrixKernel.combineRows(a: UnsafePointer(logits.base), aRow: width, aColumn: 1, depth: width,
                                             b: wRows, bRow: d, width: d, out: out, outRow: d, rows: rows,
                                             accumulate: !first, pack: packs.base + worker * MatrixKernel.packSize)
                }
            }
            if dW.isWritten || dB != nil {
                let classThreads = Parallel.threads(
                    requested: options.threads, elements: Int(Swift.min(Double(m) * Double(width) * Double(d) / 8, 1e15)),
                    chunks: (width + 15) / 16)
                let perChunk = (width + classThreads - 1) / classThreads
                Parallel.forEach(chunks: (width + perChunk - 1) / perChunk, threads: classThreads) { chunk, worker in
                    let classes = (chunk * perChunk)..<Swift.min(width, (chunk + 1) * perChunk)
                    if let out = dW.row(c0 * d, scratch: dWTile.base) {
                        MatrixKernel.combineRows(a: UnsafePointer(logits.base), aRow: 1, aColumn: width, depth: m,
                                                 b: xs, bRow: d, width: d, out: out, outRow: d, rows: classes,
                                                 accumulate: false, pack: packs.base + worker * MatrixKernel.packSize)
                        if shift > 0 {
                            for e in (classes.lowerBound * d)..<(classes.upperBound * d) {
                                out[e] = T(rounding: scalbn(out[e].asDouble, shift))
                            }
                        }
                        dW.commit(c0 * d + classes.lowerBound * d, classes.count * d, out + classes.lowerBound * d)
                    }
                    if let dB {
                        for c in classes {
                            var total = 0.0
                            for r in 0..<m { total += logits[r * width + c].asDouble }
                            dB[c0 + c] = T(rounding: scalbn(total, shift))
                        }
                    }
                }
            }
            c0 += width
        }
        if dX.isWritten {
            if compact {
                for i in 0..<n {
                    let r = compactRow[i]
                    if r < 0 { dX.zero(i * d, d); continue }
                    let row = dX.row(i * d, scratch: dXRow.base)!
                    for t in 0..<d { row[t] = T(rounding: scalbn(dXs[r * d + t].asDouble, shift)) }
                    dX.commit(i * d, d, row)
                }
            } else if shift > 0, let dX = dX.values {
                for e in 0..<(n * d) { dX[e] = T(rounding: scalbn(dX[e].asDouble, shift)) }
            }
        }
        if m == 0 { dW.zero(0, k * d); dB?.update(repeating: 0, count: k) }
    }
}

extension Linear {
    /// The arguments of an lk_linear call and what each phase of the checks (CallChecks) checks
    /// of them.
    struct Call<T: StorageFloat>: CallChecks {
        let options: Options
        let n: Int64, d: Int64, k: Int64
        let x: Source<T>?, w: Source<T>?, bias: UnsafePointer<T>?, gold: UnsafePointer<Int32>?
        let cost: UnsafePointer<T>?, weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?
        let dW: GradientSink<T>, dB: UnsafeMutablePointer<T>?

        var examples: Int64 { n }
        var layout: CostLayout { options.recipe.readsCosts ? options.costLayout : .zeroOne }

        func checkPointers() throws(Failure) {
            try Validation.require(x?.address, "x")
            try Validation.require(w?.address, "w")
            try Validation.require(gold, "gold")
            if layout != .zeroOne, cost == nil {
                throw .null("cost is NULL, but this loss reads costs and opt->cost_layout is "
                            + "\(layout == .perExample ? "LK_COST_PER_EXAMPLE" : "LK_COST_CLASS_MATRIX")")
            }
        }

        struct Shape {
            let n: Int, d: Int, k: Int
            let x: Source<T>, w: Source<T>, gold: UnsafePointer<Int32>
            let batch: Batch<T>
        }

        /// n, d, k, and the byte size of every buffer read or written (w, d_w, bias and d_b even
        /// when n = 0), before anything is read.
        func checkSizes() throws(Failure) -> Shape? {
            let n = try Validation.dimension(self.n, "n"), d = try Validation.dimension(self.d, "d"),
                k = try Validation.dimension(self.k, "k")
            _ = try elementCount(k, d, of: T.self, "k * d (w, d_w)")
            _ = try elementCount(k, 1, of: T.self, "k (bias, d_b)")
            _ = try elementCount(n, d, of: T.self, "n * d (x, d_x)")
            _ = try elementCount(n, 1, of: T.self, "n (gold, weight, loss)")
            if layout == .perExample { _ = try elementCount(n, k, of: T.self, "n * k (cost)") }
            if layout == .classMatrix { _ = try elementCount(k, k, of: T.self, "k * k (cost class matrix)") }
            guard n > 0, let x, let w, let gold else { return nil }
            guard d >= 1 else { throw .size("d = 0, but a feature row needs at least one value when n > 0") }
            guard k >= 1 else { throw .size("k = 0, but the loss needs at least one class when n > 0") }
            return Shape(n: n, d: d, k: k, x: x, w: w, gold: gold,
                         batch: Batch(count: n, weights: weight, reduction: options.reduction))
        }

        /// No example: the loss is empty and the gradients w.r.t. w and b are 0.
        func writeEmptyBatch() {
            Batch<T>.writeEmpty(loss, options.reduction)
            let (k, d) = (Int(Swift.max(k, 0)), Int(Swift.max(d, 0)))
            dW.zero(0, k * d)
            dB?.update(repeating: 0, count: k)
        }

        func checkLabels(_ shape: Shape) throws(Failure) {
            try Validation.checkClasses(shape.gold, k: shape.k, ignoreLabel: options.ignoreLabel, shape.batch)
        }

        struct Checked {
            let shape: Shape
            /// The examples read (neither ignored nor of zero weight).
            let active: Int
            let counted: Double
            /// The largest |value| of the rows of x read, of w and of the bias.
            let largestInput: Double
        }

        /// Weights, the rows of x read, all of w and the bias (finite: a logit is a sum of their
        /// products), the costs read (finite, and finite once scaled); then the mean's denominator.
        func checkValues(_ shape: Shape) throws(Failure) -> Checked {
            let (n, d, k, x, w, gold, batch) = (shape.n, shape.d, shape.k, shape.x, shape.w, shape.gold, shape.batch)
            let ignore = options.ignoreLabel
            var largest = 0.0
            // A row of x or w widened (bfloat16) before it is scanned.
            let row = try Scratch<T>(x.isWidened || w.isWidened ? d : 0, "a widened row of x or w")
            defer { row.free() }
            func scan(_ p: UnsafePointer<T>, count: Int, _ name: (Int) -> String) throws(Failure) {
                for j in 0..<count {
                    let v = p[j].asDouble
                    guard v.isFinite else { throw .domain("\(name(j)) = \(v) is not finite") }
                    largest = Swift.max(largest, v.magnitude)
                }
            }
            let costWeight = Loss.costWeight(options)
            var active = 0
            for i in 0..<n where gold[i] != ignore {
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) { continue }
                try scan(x.span(i * d, d, into: row.base), count: d) { t in "x[\(i), \(t)]" }
                active += 1
                if layout != .zeroOne, let cost {
                    let row = layout == .perExample ? i : Int(gold[i])
                    for j in 0..<k {
                        let c = cost[row * k + j].asDouble
                        guard c.isFinite, (costWeight * c).isFinite else {
                            throw .domain("cost[\(row), \(j)] = \(c) is not finite, or overflows once scaled")
                        }
                    }
                }
            }
            for j in 0..<k { try scan(w.span(j * d, d, into: row.base), count: d) { t in "w[\(j), \(t)]" } }
            if let bias { try scan(bias, count: k) { j in "bias[\(j)]" } }
            let counted = try batch.denominator(isIgnored: { gold[$0] == ignore })
            return Checked(shape: shape, active: active, counted: counted, largestInput: largest)
        }
    }
}

extension Linear.Loss {
    /// a alpha: what a cost is multiplied by in the fear's v = s' + a alpha c.
    static func costWeight(_ options: Options) -> Double {
        (try? Linear.Loss(options.recipe)).map { $0.costFactor * options.costScale } ?? 0
    }
}
