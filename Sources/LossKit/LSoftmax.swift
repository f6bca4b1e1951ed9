import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// Large-Margin Softmax (DESIGN.md §4.5; Liu et al. 2016): the log loss over the logits
/// f = x w^T of a linear layer, with the gold's logit replaced by
///
///     f~_y = (lambda f_y + |w_y| |x| psi(theta_y)) / (1 + lambda)
///     psi(theta) = (-1)^j cos(m theta) - 2j    on [j pi/m, (j+1) pi/m]
///
/// It is the same loss recipe as every dense row (log loss = lse - gold, `FlatCandidates` over a
/// row of logits); what is particular is only where the row comes from — a product — and how
/// the gradient w.r.t. the row goes back to x and w: two more products plus, for the gold's
/// logit, a term along x and w themselves (see `GoldLogit`).
///
/// Order of work: validate everything (no output is written before the last check), compact
/// the rows that are read, form the logits (blocked product with w^T), move each gold's logit
/// and scan its row (a logit that overflowed is LK_ERR_DOMAIN here, still before any write),
/// then the loss pass writes the loss and leaves G = dloss/dlogits in place of the logits, and
/// d_x = G w, d_w = G^T x are the two remaining products.
enum LSoftmax {
    static func compute<T: Real>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, d d64: Int64, k k64: Int64,
        x: UnsafePointer<T>?, w: UnsafePointer<T>?, gold: UnsafePointer<Int32>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dX: UnsafeMutablePointer<T>?, dW: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let options = try Options.parseLSoftmax(opt)

        // Pointers (nothing is read when n = 0).
        if n64 != 0 {
            guard x != nil else { throw .null("x is NULL (required when n != 0)") }
            guard w != nil else { throw .null("w is NULL (required when n != 0)") }
            guard gold != nil else { throw .null("gold is NULL (required when n != 0)") }
        }

        // Sizes.
        guard n64 >= 0 else { throw .size("n = \(n64) is negative") }
        guard d64 >= 0 else { throw .size("d = \(d64) is negative") }
        guard k64 >= 0 else { throw .size("k = \(k64) is negative") }
        guard let n = Int(exactly: n64), let d = Int(exactly: d64), let k = Int(exactly: k64) else {
            throw .size("n = \(n64), d = \(d64), k = \(k64) do not fit this platform's address space")
        }
        let weights = try elementCount(k, d, of: T.self, "k * d (w)")
        let batch = Batch<T>(count: n, weights: weight, reduction: options.reduction)
        guard n > 0, let x, let w, let gold else {
            // No example: the loss is empty and its gradient w.r.t. w is 0.
            batch.writeEmpty(loss)
            dW?.update(repeating: 0, count: weights)
            return
        }
        guard d >= 1 else { throw .size("d = 0, but a feature row needs at least one value when n > 0") }
        guard k >= 1 else { throw .size("k = 0, but the loss needs at least one class when n > 0") }
        _ = try elementCount(n, d, of: T.self, "n * d (x)")
        _ = try elementCount(n, k, of: T.self, "n * k (the logits)")

        // Gold labels, for the examples that are neither ignored nor of zero weight.
        let ignore = options.ignoreLabel
        for i in 0..<n where gold[i] != ignore && !batch.hasZeroWeight(i) {
            let g = gold[i]
            guard g >= 0, Int(g) < k else {
                throw .label("gold[\(i)] = \(g) is outside [0, \(k)) and is not ignore_label (\(ignore))")
            }
        }

        // Values: weights, the rows of x that are read, all of w.
        var active = 0
        for i in 0..<n where gold[i] != ignore {
            try batch.checkWeight(i)
            if batch.hasZeroWeight(i) { continue }
            try checkFinite(x + i * d, count: d) { j in "x[\(i), \(j)]" }
            active += 1
        }
        for j in 0..<k {
            try checkFinite(w + j * d, count: d) { t in "w[\(j), \(t)]" }
        }
        let isIgnored = { (i: Int) in gold[i] == ignore }
        let counted = try batch.denominator(isIgnored: isIgnored)

        // Scratch, all of it before anything is computed.
        let rows = try Scratch<Int>(Swift.max(active, 1), "the rows that are read")
        defer { rows.free() }
        let rowOf = try Scratch<Int>(n, "the row of each example")
        defer { rowOf.free() }
        let xs = try Scratch<T>(active * d, "the rows of x that are read")
        defer { xs.free() }
        let wt = try Scratch<T>(weights, "w transposed")
        defer { wt.free() }
        let logits = try Scratch<T>(active * k, "the logits")
        defer { logits.free() }
        let golds = try Scratch<GoldLogit>(Swift.max(active, 1), "the gold logits")
        defer { golds.free() }
        let surveys = try Scratch<RowSurvey<T>>(Swift.max(active, 1), "the row surveys")
        defer { surveys.free() }
        let classNorms = try Scratch<Double>(k, "the norms of w's rows")
        defer { classNorms.free() }
        let thresholds = try Scratch<Double>(options.margin + 1, "the angles' thresholds")
        defer { thresholds.free() }
        let wantsGradient = dX != nil || dW != nil
        // No pass uses more threads than it has chunks (the products: 64 rows or 256 classes).
        let mostChunks = Swift.max(Chunks(examples: n, valuesPerExample: k).count, (active + 63) / 64, (k + 255) / 256)
        let threads = Swift.min(Parallel.available(requested: options.threads), mostChunks)
        let gradientRows = try Scratch<T>(wantsGradient ? threads * k : 0, "the gradient rows")
        defer { gradientRows.free() }
        let dXs = try Scratch<T>(dX != nil ? active * d : 0, "the gradient of the rows of x read")
        defer { dXs.free() }
        let classTerms = try Scratch<Double>(dW != nil ? k : 0, "the gold terms of d_w")
        defer { classTerms.free() }
        let partials = try Scratch<Double>(Chunks(examples: n, valuesPerExample: k).count, "the per-chunk sums")
        defer { partials.free() }
        let packs = try Scratch<T>(threads * MatrixKernel.packSize, "the packed blocks of the products")
        defer { packs.free() }

        // Compact the rows that are read; transpose w for the logits' product.
        var r = 0
        for i in 0..<n {
            if isIgnored(i) || batch.hasZeroWeight(i) { rowOf[i] = -1; continue }
            rowOf[i] = r
            rows[r] = i
            (xs.base + r * d).update(from: x + i * d, count: d)
            r += 1
        }
        // The class norms and w^T, 256 classes at a time across threads.
        let classChunks = (k + 255) / 256
        Parallel.forEach(chunks: classChunks, threads: Parallel.threads(requested: options.threads, elements: weights, chunks: classChunks)) { chunk, _ in
            let classes = (chunk * 256)..<Swift.min(k, (chunk + 1) * 256)
            for j in classes { classNorms[j] = norm(w + j * d, count: d) }
            transpose(w, rows: k, columns: d, rowRange: classes, into: wt.base)
        }
        for l in 0...options.margin { thresholds[l] = cos(Double(l) * Double.pi / Double(options.margin)) }

        // The logits f = x w^T, rows split across threads.
        product(a: UnsafePointer(xs.base), aRow: d, aColumn: 1, depth: d, b: UnsafePointer(wt.base), bRow: k,
                width: k, out: logits.base, rows: active, rowsPerChunk: 64, threads: options.threads, packs: packs)

        // Each gold's logit moves; then its row is scanned (max for the log-sum-exp, and no
        // logit may have overflowed).
        let margin = GoldLogit.Margin(m: options.margin, lambda: options.lambda, thresholds: UnsafePointer(thresholds.base))
        for r in 0..<active {
            let i = rows[r], y = Int(gold[i])
            let row = logits.base + r * k
            let g = GoldLogit(f: row[y].wide, classNorm: classNorms[y], featureNorm: norm(xs.base + r * d, count: d),
                              margin: margin)
            golds[r] = g
            row[y] = T(rounding: g.value)
            let (maximum, argmax, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(row), count: k, SurveyUnmasked.self)
            if hasNaN || unmasked < k || maximum == T.infinity {
                for j in 0..<k where row[j].isInfinite {
                    throw .domain("the \(j == y ? "gold's moved logit" : "logit") of example \(i), class \(j) (x[\(i)] . w[\(j)]) overflows \(T.self): \(row[j])")
                }
            }
            surveys[r] = RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: argmax, unmasked: unmasked)
        }

        // The loss pass: the log loss of each row; G = dloss/dlogits replaces the logits.
        let recipe = Recipe.fearMinusHope(fear: .logSumExp(0), hope: .gold)
        let chunks = Chunks(examples: n, valuesPerExample: k)
        let lossThreads = Parallel.threads(requested: options.threads, elements: active * k, chunks: chunks.count)
        batch.run(
            loss: loss, counted: counted, chunks: chunks, threads: lossThreads, partials: partials,
            isIgnored: isIgnored, skip: { _ in },
            evaluate: { i, coefficient, worker, _ in
                let r = rowOf[i], y = Int(gold[i])
                let row = logits.base + r * k
                let gradient = wantsGradient ? gradientRows.base + worker * k : nil
                let example = FlatCandidates(
                    scores: UnsafePointer(row), count: k, goldIndex: y, costs: nil, costScale: 0,
                    gradient: gradient, scratch: nil, known: surveys[r])
                let value = recipe.loss(onEnumerable: example, gradientTimes: coefficient)
                if let gradient {
                    row.update(from: gradient, count: k)
                    golds[r].gradient = row[y].wide
                    row[y] = T(rounding: golds[r].alpha * golds[r].gradient)
                }
                return value
            })
        guard wantsGradient else { return }
        let g = UnsafePointer(logits.base)

        if let dX {
            // d_x = G' w (G' with alpha on the gold), plus the gold's term along x itself.
            product(a: g, aRow: k, aColumn: 1, depth: k, b: w, bRow: d, width: d, out: dXs.base,
                    rows: active, rowsPerChunk: 64, threads: options.threads, packs: packs)
            for r in 0..<active {
                let c = golds[r].gradient * golds[r].alongFeature
                guard c != 0 else { continue }
                let out = dXs.base + r * d, features = xs.base + r * d
                for t in 0..<d { out[t] = T(rounding: out[t].wide + c * features[t].wide) }
            }
            for i in 0..<n {
                if rowOf[i] < 0 {
                    (dX + i * d).update(repeating: 0, count: d)
                } else {
                    (dX + i * d).update(from: dXs.base + rowOf[i] * d, count: d)
                }
            }
        }
        if let dW {
            // d_w = G'^T x, plus each gold's term along its own class row.
            product(a: g, aRow: 1, aColumn: k, depth: active, b: UnsafePointer(xs.base), bRow: d, width: d,
                    out: dW, rows: k, rowsPerChunk: 256, threads: options.threads, packs: packs)
            classTerms.base.update(repeating: 0, count: k)
            for r in 0..<active { classTerms[Int(gold[rows[r]])] += golds[r].gradient * golds[r].alongClass }
            for j in 0..<k where classTerms[j] != 0 {
                let out = dW + j * d, row = w + j * d, c = classTerms[j]
                for t in 0..<d { out[t] = T(rounding: out[t].wide + c * row[t].wide) }
            }
        }
    }

    /// The product `MatrixKernel.combineRows` over output rows 0 ..< rows, in chunks of
    /// `rowsPerChunk` rows spread over threads; each output row is computed by one thread in an
    /// order that depends only on the shapes.
    private static func product<T: Real>(
        a: UnsafePointer<T>, aRow: Int, aColumn: Int, depth: Int, b: UnsafePointer<T>, bRow: Int,
        width: Int, out: UnsafeMutablePointer<T>, rows: Int, rowsPerChunk: Int, threads requested: Int,
        packs: Scratch<T>
    ) {
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        // One thread more pays off from about 2^20 multiply-adds (elementsPerThread * 8).
        let work = Swift.min(Double(rows) * Double(width) * Double(depth) / 8, 1e15)
        let threads = Parallel.threads(requested: requested, elements: Int(work), chunks: chunks)
        Parallel.forEach(chunks: chunks, threads: threads) { chunk, worker in
            let range = (chunk * rowsPerChunk)..<Swift.min(rows, (chunk + 1) * rowsPerChunk)
            MatrixKernel.combineRows(a: a, aRow: aRow, aColumn: aColumn, depth: depth, b: b, bRow: bRow,
                                     width: width, out: out, outRow: width, rows: range, accumulate: false,
                                     pack: packs.base + worker * MatrixKernel.packSize)
        }
    }

    /// out (columns x rows) = m^T for the rows `rowRange` of m, in tiles of 32 x 32 so that
    /// neither side is accessed with a stride longer than a tile.
    private static func transpose<T>(_ m: UnsafePointer<T>, rows: Int, columns: Int, rowRange: Range<Int>,
                                     into out: UnsafeMutablePointer<T>) {
        let tile = 32
        var r0 = rowRange.lowerBound
        while r0 < rowRange.upperBound {
            let r1 = Swift.min(rowRange.upperBound, r0 + tile)
            var c0 = 0
            while c0 < columns {
                let c1 = Swift.min(columns, c0 + tile)
                for c in c0..<c1 {
                    for r in r0..<r1 { out[c * rows + r] = m[r * columns + c] }
                }
                c0 = c1
            }
            r0 = r1
        }
    }

    /// |v| in double; rescaled when the plain sum of squares overflows (float64 input).
    static func norm<T: Real>(_ v: UnsafePointer<T>, count: Int) -> Double {
        var sum = 0.0
        for t in 0..<count { let e = v[t].wide; sum += e * e }
        guard sum.isInfinite else { return sum.squareRoot() }
        var largest = 0.0
        for t in 0..<count { largest = Swift.max(largest, v[t].wide.magnitude) }
        var scaled = 0.0
        for t in 0..<count { let e = v[t].wide / largest; scaled += e * e }
        return largest * scaled.squareRoot()
    }

    /// No +-inf in v[0 ..< count] (NaN propagates).
    private static func checkFinite<T: Real>(_ v: UnsafePointer<T>, count: Int, _ name: (Int) -> String) throws(Failure) {
        var bad = false
        for t in 0..<count where v[t].isInfinite { bad = true }
        guard bad else { return }
        for t in 0..<count where v[t].isInfinite {
            throw .domain("\(name(t)) = \(v[t]) is not finite")
        }
    }
}

/// The gold's logit of one example under L-Softmax, and what its gradient needs.
///
/// With a = |w_y|, b = |x|, c = cos theta = f / (a b) and psi' = dpsi/dc:
///
///     value      (lambda f + a b psi(c)) / (1 + lambda)
///     d/dx       alpha w_y + beta (a / b) x          alpha = (lambda + psi') / (1 + lambda)
///     d/dw_y     alpha x   + beta (b / a) w_y        beta  = (psi - c psi') / (1 + lambda)
///
/// psi(c) = (-1)^j T_m(c) - 2j and psi'(c) = (-1)^j m U_{m-1}(c) (Chebyshev polynomials of the
/// first and second kind), with j = the number of thresholds cos(l pi / m), l = 1 ..< m, above c.
/// m = 1 and a zero norm give the plain logit: value f, alpha 1, beta 0.
struct GoldLogit {
    struct Margin {
        let m: Int
        let lambda: Double
        /// cos(l pi / m) for l = 0 ... m.
        let thresholds: UnsafePointer<Double>
    }

    let value: Double
    let alpha: Double
    /// beta a / b and beta b / a: the coefficients of x in d/dx and of w_y in d/dw_y.
    let alongFeature: Double
    let alongClass: Double
    /// dloss/d(this logit), set by the loss pass.
    var gradient: Double = 0

    init(f: Double, classNorm a: Double, featureNorm b: Double, margin: Margin) {
        guard margin.m > 1, a != 0, b != 0 else {
            // m = 1: psi = cos, a b psi = f exactly; a zero vector has no angle (header).
            value = f
            alpha = 1
            alongFeature = 0
            alongClass = 0
            return
        }
        var c = f / a / b  // a b may overflow where f / a / b does not
        if c > 1 { c = 1 } else if c < -1 { c = -1 }  // rounding; NaN stays NaN
        let m = margin.m
        var j = 0
        while j + 1 < m, c < margin.thresholds[j + 1] { j += 1 }
        // T_m(c) and U_{m-1}(c) by their three-term recurrences (stable on [-1, 1]).
        var (t0, t1) = (1.0, c)
        var (u0, u1) = (1.0, 2 * c)
        for _ in 1..<m {
            (t0, t1) = (t1, 2 * c * t1 - t0)
            (u0, u1) = (u1, 2 * c * u1 - u0)
        }
        // After the loop: t1 = T_m, u0 = U_{m-1}.
        let sign = j % 2 == 0 ? 1.0 : -1.0
        let psi = sign * t1 - 2 * Double(j)
        let slope = sign * Double(m) * u0
        let lambda = margin.lambda
        // (lambda f + a b psi) / (1 + lambda), ordered so that no intermediate overflows where
        // the result does not (a b alone may exceed the double range).
        value = lambda / (1 + lambda) * f + (a / (1 + lambda)) * b * psi
        alpha = (lambda + slope) / (1 + lambda)
        let beta = (psi - c * slope) / (1 + lambda)
        alongFeature = beta * (a / b)
        alongClass = beta * (b / a)
    }
}
