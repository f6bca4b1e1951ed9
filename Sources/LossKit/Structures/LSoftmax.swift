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
    static func compute<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, d: Int64, k: Int64,
        x: UnsafePointer<T>?, w: UnsafePointer<T>?, gold: UnsafePointer<Int32>?,
        weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?,
        dX: UnsafeMutablePointer<T>?, dW: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        let call = Call(options: try Options.parseLSoftmax(opt), n: n, d: d, k: k, x: x, w: w, gold: gold,
                        weight: weight, loss: loss, dW: dW)
        guard let checked = try call.validate() else { return }
        let (options, shape) = (call.options, checked.shape)
        let (n, d, k, weights, x, w, gold, batch) =
            (shape.n, shape.d, shape.k, shape.weights, shape.x, shape.w, shape.gold, shape.batch)
        let (active, wHasNaN, counted) = (checked.active, checked.wHasNaN, checked.counted)
        let ignore = options.ignoreLabel
        let isIgnored = { (i: Int) in gold[i] == ignore }

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
        let classNorms = try Scratch<Norm>(k, "the norms of w's rows")
        defer { classNorms.free() }
        let wantsGradient = dX != nil || dW != nil
        // No pass uses more threads than it has chunks (the products: 64 rows or 256 classes).
        let mostChunks = Swift.max(Chunks(examples: n, valuesPerExample: k).count, (active + 63) / 64, (k + 255) / 256)
        let threads = Swift.min(Parallel.available(requested: options.threads), mostChunks)
        let gradientRows = try Scratch<T>(wantsGradient ? threads * k : 0, "the gradient rows")
        defer { gradientRows.free() }
        let dXs = try Scratch<T>(dX != nil ? active * d : 0, "the gradient of the rows of x read")
        defer { dXs.free() }
        // d_w's gold terms, summed class by class in double: the chord-form rows ordered by gold.
        let classTerms = try Scratch<Double>(dW != nil ? k : 0, "the gold terms of d_w along each class row")
        defer { classTerms.free() }
        let byClass = try Scratch<Int>(dW != nil ? active : 0, "the chord-form rows ordered by gold class")
        defer { byClass.free() }
        let classStarts = try Scratch<Int>(dW != nil ? k + 1 : 0, "where each class starts in that order")
        defer { classStarts.free() }
        let classSum = try Scratch<Double>(dW != nil ? d : 0, "one class's gold terms")
        defer { classSum.free() }
        let partials = try Scratch<Double>(
            Batch<T>.partialCount(Chunks(examples: n, valuesPerExample: k).count), "the per-chunk sums")
        defer { partials.free() }
        let packs = try Scratch<T>(threads * MatrixKernel.packSize, "the packed blocks of the products")
        defer { packs.free() }
        let shifts = try Scratch<Int32>(wantsGradient ? active : 0, "the units of each row's gradient")
        defer { shifts.free() }

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
        let classThreads = Parallel.threads(requested: options.threads, elements: weights, chunks: classChunks)
        Parallel.forEach(chunks: classChunks, threads: classThreads) { chunk, _ in
            let classes = (chunk * 256)..<Swift.min(k, (chunk + 1) * 256)
            for j in classes { classNorms[j] = norm(w + j * d, count: d) }
            transpose(w, rows: k, columns: d, rowRange: classes, into: wt.base)
        }

        // The logits f = x w^T, rows split across threads.
        product(a: UnsafePointer(xs.base), aRow: d, aColumn: 1, depth: d, b: UnsafePointer(wt.base), bRow: k,
                width: k, out: logits.base, rows: active, rowsPerChunk: 64, threads: options.threads, packs: packs)

        // Each gold's logit moves; then its row is scanned (max for the log-sum-exp, and no
        // logit may have overflowed). The gold's angle is measured on the inputs themselves, in
        // double (`GoldLogit.Angle`), not from its rounded logit: cos theta = f / (|w| |x|) has
        // an absolute error of u, which psi near theta = 0 magnifies m^2 times.
        let margin = GoldLogit.Margin(m: options.margin, lambda: options.lambda)
        for r in 0..<active {
            let i = rows[r], y = Int(gold[i])
            let row = logits.base + r * k
            let features = xs.base + r * d
            let angle = GoldLogit.measure(features, w + y * d, count: d, classNorm: classNorms[y], margin: margin,
                                          refined: false)
            var g = GoldLogit(f: row[y].asDouble, y: y, angle: angle, margin: margin, chordForm: false)
            if g.bends, g.slopeMagnitude > GoldLogit.chordFormAbove {
                let refined = GoldLogit.refinesUnits(T.self)
                    ? GoldLogit.measure(features, w + y * d, count: d, classNorm: classNorms[y], margin: margin,
                                        refined: true)
                    : angle
                g = GoldLogit(f: row[y].asDouble, y: y, angle: refined, margin: margin, chordForm: true)
            }
            let moved = T(rounding: g.value)
            if moved.isInfinite {
                throw .domain("the gold's logit of example \(i) (class \(y)), (lambda x[\(i)] . w[\(y)] + "
                              + "|w[\(y)]| |x[\(i)]| psi) / (1 + lambda) = \(g.value), overflows \(T.self)")
            }
            golds[r] = g
            row[y] = moved
            let (maximum, argmax, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(row), count: k,
                                                                        SurveyUnmasked.self)
            if hasNaN || unmasked < k || maximum == T.infinity {
                for j in 0..<k where row[j].isInfinite {
                    throw .domain("the logit of example \(i), class \(j) (x[\(i)] . w[\(j)]) overflows \(T.self): "
                                  + "\(row[j])")
                }
                // NaN from finite, NaN-free inputs: a partial sum of x[i] . w[j] overflowed (inf - inf).
                if hasNaN, !wHasNaN, !(0..<d).contains(where: { features[$0].isNaN }),
                   let j = (0..<k).first(where: { row[$0].isNaN }) {
                    throw .domain("the logit of example \(i), class \(j) (x[\(i)] . w[\(j)]) overflows \(T.self) "
                                  + "in its partial sums")
                }
            }
            surveys[r] = RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: argmax, unmasked: unmasked)
        }

        // The units of the gradient: 1 unless a weight makes the products' partial sums overflow.
        let dWShift = wantsGradient
            ? gradientUnits(batch: batch, counted: counted, rows: UnsafePointer(rows.base), active: active,
                            golds: UnsafePointer(golds.base), classNorms: UnsafePointer(classNorms.base), k: k,
                            xs: dW != nil ? UnsafePointer(xs.base) : nil, d: d, shifts: shifts.base)
            : 0

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
                    gradient: gradient, scratch: nil, validated: surveys[r])
                let shift = wantsGradient ? Int(shifts[r]) : 0
                let value = recipe.loss(onFlat: example,
                                        gradientTimes: shift == 0 ? coefficient : scalbn(coefficient, -shift))
                if let gradient {
                    row.update(from: gradient, count: k)
                    golds[r].gradient = row[y].asDouble
                    row[y] = T(rounding: golds[r].productShare * golds[r].gradient)
                }
                return value
            })
        guard wantsGradient else { return }
        let g = UnsafePointer(logits.base)

        if let dX {
            // d_x = G' w (G' with `productShare` times the gold's gradient at the gold), plus the
            // gold's terms along x / |x| (and, in the chord form, the short chord).
            product(a: g, aRow: k, aColumn: 1, depth: k, b: w, bRow: d, width: d, out: dXs.base,
                    rows: active, rowsPerChunk: 64, threads: options.threads, packs: packs)
            for r in 0..<active where golds[r].bends {
                let logit = golds[r], y = Int(logit.y)
                let out = dXs.base + r * d, features = xs.base + r * d, classRow = w + y * d
                let a = logit.classNorm, b = logit.featureNorm
                if !logit.chordForm {
                    let c = logit.alongFeature(logit.gradient)
                    let cb = c * b.inverse
                    if b.shift == 0 && b.keepsDigits(c, over: cb) {
                        for t in 0..<d { out[t] = T(rounding: out[t].asDouble + cb * features[t].asDouble) }
                    } else if b.shift == 0 {
                        for t in 0..<d { out[t] = T(rounding: out[t].asDouble + b.unitTimes(c, features[t].asDouble)) }
                    } else {
                        for t in 0..<d {
                            out[t] = T(rounding: out[t].asDouble + c * b.unitParts(features[t].asDouble).hi)
                        }
                    }
                    continue
                }
                let cu = logit.radialFeature(logit.gradient), ce = logit.chordFeature(logit.gradient)
                let sign = logit.chordSign
                if a.isPlain && b.isPlain {
                    let ia = a.inverse, ib = b.inverse
                    for t in 0..<d {
                        let u = features[t].asDouble * ib, v = classRow[t].asDouble * ia
                        out[t] = T(rounding: out[t].asDouble + (cu * u + ce * (v - sign * u)))
                    }
                    continue
                }
                for t in 0..<d {
                    let u = b.unitParts(features[t].asDouble), v = a.unitParts(classRow[t].asDouble)
                    let e = (v.hi - sign * u.hi) + (v.lo - sign * u.lo)  // the short chord
                    out[t] = T(rounding: out[t].asDouble + (cu * u.hi + ce * e))
                }
            }
            for i in 0..<n {
                if rowOf[i] < 0 {
                    (dX + i * d).update(repeating: 0, count: d)
                } else if shifts[rowOf[i]] == 0 {
                    (dX + i * d).update(from: dXs.base + rowOf[i] * d, count: d)
                } else {
                    // Back from the row's units (exact, or +-inf where the true value overflows).
                    let from = dXs.base + rowOf[i] * d, shift = Int(shifts[rowOf[i]])
                    for t in 0..<d { dX[i * d + t] = T(rounding: scalbn(from[t].asDouble, shift)) }
                }
            }
        }
        if let dW {
            // The products of d_w add over rows: every row's G in the same units 2^-dWShift.
            for r in 0..<active where Int(shifts[r]) != dWShift {
                let change = Int(shifts[r]) - dWShift, row = logits.base + r * k
                for j in 0..<k { row[j] = T(rounding: scalbn(row[j].asDouble, change)) }
                golds[r].gradient = scalbn(golds[r].gradient, change)
            }
            // d_w = G'^T x, plus each gold's term along its class row / |w_y| (summed per class
            // first), and for chord-form rows their terms along the unit vectors and the short chord,
            // summed per class in double over its rows in order (counting sort by gold).
            product(a: g, aRow: 1, aColumn: k, depth: active, b: UnsafePointer(xs.base), bRow: d, width: d,
                    out: dW, rows: k, rowsPerChunk: 256, threads: options.threads, packs: packs)
            classTerms.base.update(repeating: 0, count: k)
            classStarts.base.update(repeating: 0, count: k + 1)
            for r in 0..<active where golds[r].bends {
                if golds[r].chordForm {
                    classStarts[Int(golds[r].y) + 1] += 1
                } else {
                    classTerms[Int(golds[r].y)] += golds[r].alongClass(golds[r].gradient)
                }
            }
            for j in 0..<k { classStarts[j + 1] += classStarts[j] }
            for r in 0..<active where golds[r].bends && golds[r].chordForm {
                let y = Int(golds[r].y)
                byClass[classStarts[y]] = r
                classStarts[y] += 1
            }
            // classStarts[j] is now where class j + 1 starts.
            var start = 0
            for j in 0..<k {
                let end = classStarts[j]
                defer { start = end }
                guard classTerms[j] != 0 || start < end else { continue }
                let classRow = w + j * d, c = classTerms[j], a = classNorms[j]
                let ca = c * a.inverse
                if a.shift == 0 && a.keepsDigits(c, over: ca) {
                    for t in 0..<d { classSum[t] = ca * classRow[t].asDouble }
                } else if a.shift == 0 {
                    for t in 0..<d { classSum[t] = a.unitTimes(c, classRow[t].asDouble) }
                } else {
                    for t in 0..<d { classSum[t] = c * a.unitParts(classRow[t].asDouble).hi }
                }
                for q in start..<end {
                    let r = byClass[q], logit = golds[r]
                    let cv = logit.radialClass(logit.gradient), ce = logit.chordClass(logit.gradient * logit.chordSign)
                    let a = logit.classNorm, b = logit.featureNorm, sign = logit.chordSign
                    let features = xs.base + r * d
                    if a.isPlain && b.isPlain {
                        let ia = a.inverse, ib = b.inverse
                        for t in 0..<d {
                            let u = features[t].asDouble * ib, v = classRow[t].asDouble * ia
                            classSum[t] += cv * v - ce * (v - sign * u)
                        }
                        continue
                    }
                    for t in 0..<d {
                        let u = b.unitParts(features[t].asDouble), v = a.unitParts(classRow[t].asDouble)
                        let e = (v.hi - sign * u.hi) + (v.lo - sign * u.lo)  // the short chord
                        classSum[t] += cv * v.hi - ce * e
                    }
                }
                let out = dW + j * d
                for t in 0..<d { out[t] = T(rounding: out[t].asDouble + classSum[t]) }
            }
            if dWShift > 0 {
                for e in 0..<weights { dW[e] = T(rounding: scalbn(dW[e].asDouble, dWShift)) }
            }
        }
    }

    /// The power of two 2^-shift each row's gradient is computed in (written to `shifts`), and
    /// the common one of d_w's product (returned). With weights near the largest finite number,
    /// G = c (p - e_y) in the input type and the products' partial sums G w, G^T x (a positive
    /// part and a negative one that cancel) would overflow to inf - inf = NaN where the true
    /// value is finite; in these units they cannot, and storing an output scales it back exactly
    /// (+-inf where its true value overflows). A bound on a row's terms: sum_j |G'_j| <=
    /// 2 c max(1, |productShare|), times max |w| (the largest class norm) or max |x_i| (its norm,
    /// or a scan of the row where it does not bend), plus its gold terms. The factors before the
    /// norms multiply in are bounded as well: G' and c times beta, radial or chord, which exceed
    /// the range where the norms are tiny (w ~ 1e-310 and c ~ 1e308) although the terms do not.
    /// Shift 0, and the bits unchanged, unless a bound comes within 2^-3 of the type's range (or
    /// 2^-3 / rows for d_w).
    private static func gradientUnits<T: StorageFloat>(
        batch: Batch<T>, counted: Double, rows: UnsafePointer<Int>, active: Int, golds: UnsafePointer<GoldLogit>,
        classNorms: UnsafePointer<Norm>, k: Int, xs: UnsafePointer<T>?, d: Int, shifts: UnsafeMutablePointer<Int32>
    ) -> Int {
        // Exponents of upper bounds: v < 2^top(v), and |c| |v| < 2^top(c, |v|) for a norm |v| kept
        // as scaled 2^shift (which may lie beyond the double range). A sum of four terms is below
        // 2^(2 + the largest exponent).
        let top = { (v: Double) -> Int in v.isNaN || v <= 0 ? -1100 : v.isFinite ? Int(v.exponent) + 1 : 1100 }
        let topTimes = { (c: Double, norm: Norm) -> Int in
            let v = c.magnitude * norm.scaled
            return v.isNaN || v <= 0 ? -1100 : top(v) + Int(norm.shift)
        }
        let limit = Int(T.greatestFiniteMagnitude.asDouble.exponent) - 3
        var wTop = -1100
        for j in 0..<k { wTop = Swift.max(wTop, topTimes(1, classNorms[j])) }
        var highest = Int.min
        for r in 0..<active {
            let w = batch.weight(rows[r]), c = batch.reduction == .mean ? w / counted : w
            let g = golds[r]
            let share = top(2 * Swift.max(1, g.productShare.magnitude))
            var xTop = g.bends ? topTimes(1, g.featureNorm) : -1100
            if !g.bends, let xs {
                var xMax = 0.0
                for t in 0..<d { xMax = Swift.max(xMax, xs[r * d + t].asDouble.magnitude) }
                xTop = top(xMax)
            }
            let a = g.classNorm, b = g.featureNorm
            let toX = 2 + Swift.max(share + wTop, topTimes(g.beta, a), topTimes(g.radial, a), 1 + topTimes(g.chord, a))
            let toW = 2 + Swift.max(share + xTop, topTimes(g.beta, b), topTimes(g.radial, b), 1 + topTimes(g.chord, b))
            // G' itself (stored in T) and the gold's gradient times its coefficients (formed before
            // a tiny norm scales them down) must be finite too.
            let terms = Swift.max(share, top(g.beta.magnitude), top(g.radial.magnitude), top(g.chord.magnitude))
            let shift = Swift.min(2000, Swift.max(0, top(c) + Swift.max(toX, terms) - limit))
            shifts[r] = Int32(shift)
            highest = Swift.max(highest, top(c) + toW)
        }
        guard xs != nil, highest > Int.min else { return 0 }
        let shiftW = Swift.max(0, highest + top(Double(active)) - limit)
        var most = 0
        for r in 0..<active { most = Swift.max(most, Int(shifts[r])) }
        return Swift.min(2000, Swift.max(shiftW, most))
    }

    /// The product `MatrixKernel.combineRows` over output rows 0 ..< rows, in chunks of
    /// `rowsPerChunk` rows spread over threads; each output row is computed by one thread in an
    /// order that depends only on the shapes.
    private static func product<T: StorageFloat>(
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

    /// |v| in double, like a careful nrm2: the plain sum of squares when it is safe, else the
    /// sum of squares of v scaled by a power of two (exact) that brings its largest entry to
    /// [1, 2). Safe means finite and at least 2^-969: below that a square under the smallest
    /// normal (2^-1022) may have lost bits that the sum needs (a float64 row of 1e-160s sums
    /// to 0). Float32 rows sum exactly in double except when they are 0; so do most rows.
    static func norm<T: StorageFloat>(_ v: UnsafePointer<T>, count: Int) -> Norm {
        var sum = 0.0
        for t in 0..<count { let e = v[t].asDouble; sum += e * e }
        guard !(sum >= 0x1p-969 && sum < .infinity) && !sum.isNaN else {
            return Norm(scaled: sum.squareRoot(), shift: 0)
        }
        var largest = 0.0
        for t in 0..<count { largest = Swift.max(largest, v[t].asDouble.magnitude) }
        guard largest > 0 else { return Norm(scaled: 0, shift: 0) }
        let e = Int32(largest.exponent)
        sum = 0
        for t in 0..<count { let s = scalbn(v[t].asDouble, -e); sum += s * s }
        return Norm(scaled: sum.squareRoot(), shift: e)
    }

    /// `norm` with its own rounding error (`Norm.correction`), from the sum of squares of the
    /// same scaled entries in double-double (exact squares by fma, exact additions by TwoSum).
    static func refined<T: StorageFloat>(_ norm: Norm, _ v: UnsafePointer<T>, count: Int) -> Norm {
        guard !norm.isZero, !norm.isNaN else { return norm }
        var sum = 0.0, low = 0.0
        for t in 0..<count {
            let e = norm.shift == 0 ? v[t].asDouble : scalbn(v[t].asDouble, -norm.shift)
            let p = e * e
            let pe = (-p).addingProduct(e, e)
            let s = sum + p, bb = s - sum
            low += ((sum - (s - bb)) + (p - bb)) + pe
            sum = s
        }
        // sqrt(S) = n (1 + (S - n^2) / (2 n^2) + ...), S - n^2 from the exact n^2 (fma), whose
        // high part cancels exactly against sum (Sterbenz).
        let n = norm.scaled, n2 = n * n, n2e = (-n2).addingProduct(n, n)
        let correction = ((sum - n2) - n2e + low) / (2 * n2)
        return Norm(scaled: n, shift: norm.shift, correction: correction.isFinite ? correction : 0)
    }

    /// No +-inf in v[0 ..< count] (NaN propagates); returns whether there is a NaN.
    fileprivate static func checkFinite<T: StorageFloat>(_ v: UnsafePointer<T>, count: Int,
                                             _ name: (Int) -> String) throws(Failure) -> Bool {
        var bad = false
        for t in 0..<count where !v[t].isFinite { bad = true }
        guard bad else { return false }
        for t in 0..<count where v[t].isInfinite {
            throw .domain("\(name(t)) = \(v[t]) is not finite")
        }
        return true
    }
}

/// A norm |v| = scaled 2^shift, kept apart so that a norm beyond the double range, or below its
/// normal range (where it would keep only the bits of a subnormal), still gives unit vectors
/// and products to full precision. shift is 0 unless `LSoftmax.norm` had to rescale.
struct Norm {
    let scaled: Double
    let shift: Int32
    /// 1 / scaled: unit vectors by a multiplication. Without a shift, scaled is in
    /// [2^-485, 2^512] (sum of squares in [2^-969, inf)), so its inverse is a normal number.
    let inverse: Double
    /// delta with the exact norm = scaled (1 + delta) 2^shift, to first order (|delta| <~ u);
    /// 0 unless `LSoftmax.refined` measured it.
    let correction: Double

    init(scaled: Double, shift: Int32, correction: Double = 0) {
        self.scaled = scaled
        self.shift = shift
        inverse = 1 / scaled
        self.correction = correction
    }

    var isZero: Bool { scaled == 0 }
    /// Unit vectors by a plain multiplication: no shift, no refinement measured.
    var isPlain: Bool { shift == 0 && correction == 0 }
    var isNaN: Bool { scaled.isNaN }
    /// |v| rounded to double (may be subnormal or infinite).
    var value: Double { shift == 0 ? scaled : scalbn(scaled, shift) }
    /// v_t / |v| as hi + lo, to about u^2 (the product's residual by fma, the norm's own rounding
    /// by `correction`): the difference of two nearly equal unit vectors, the short chord, keeps
    /// its relative accuracy (a rounded unit vector is off by u, the chord may be 1e-12).
    @inline(__always) func unitParts(_ v: Double) -> (hi: Double, lo: Double) {
        let s = shift == 0 ? v : scalbn(v, -shift)
        let hi = s * inverse
        let residual = s.addingProduct(-hi, scaled)  // s - hi scaled, exact
        return (hi, residual * inverse - hi * correction)
    }
    /// c |v| with one rounding at the end.
    @inline(__always) func times(_ c: Double) -> Double { shift == 0 ? c * scaled : scalbn(c * scaled, shift) }
    /// Whether c v_t / |v| may be formed as (c * inverse) * v_t (no shift): when cq = c * inverse is
    /// a normal number (or c is 0 or NaN). Otherwise c / |v| alone overflows (a large c over a
    /// small norm: inf, then inf * 0 = NaN or inf for a finite term) or underflows (its digits
    /// lost), although the term, at most |c| in size, need not: `unitTimes` forms it then.
    @inline(__always) func keepsDigits(_ c: Double, over cq: Double) -> Bool { cq.isNormal || c == 0 || c.isNaN }
    /// c v_t / |v| (no shift) as c * inverse * v_t with c and v_t brought to [1, 2) by powers of
    /// two first and their exponents applied last: the same two roundings as the plain order
    /// where it neither overflows nor underflows, and no overflow or lost digits where it would.
    @inline(__always) func unitTimes(_ c: Double, _ v: Double) -> Double {
        guard c.isFinite, v.isFinite, c != 0, v != 0 else { return c * v }
        let ec = Int(c.exponent), ev = Int(v.exponent)
        return scalbn(scalbn(c, -ec) * inverse * scalbn(v, -ev), ec + ev)
    }
}

/// The gold's logit of one example under L-Softmax, and what its gradient needs.
///
/// With a = |w_y|, b = |x|, u = x / b, v = w_y / a, c = cos theta and psi' = dpsi/dc:
///
///     value      (lambda f + a b psi(theta)) / (1 + lambda)
///     d/dx       (lambda w_y + a [psi u + psi' (v - c u)]) / (1 + lambda)
///     d/dw_y     (lambda x   + b [psi v + psi' (u - c v)]) / (1 + lambda)
///
/// psi(theta) = (-1)^j cos(m theta) - 2j and psi' = (-1)^j m sin(m theta) / sin theta, with
/// j = floor(m theta / pi) (at most m - 1). theta comes from the chords between the unit
/// vectors (`Angle`), cos(m theta) and sin(m theta) from libm: near theta = 0 (a loss near zero)
/// psi = 1 - 2 sin^2(m theta / 2) keeps its relative accuracy, where the Chebyshev polynomial
/// T_m(c) of a rounded c = f / (a b) is off by m^2 u.
///
/// The gradient's angular terms come in two forms. The textbook one,
///
///     d/dx = alpha w_y + beta a u      alpha = (lambda + psi') / (1 + lambda)
///     d/dw_y = alpha x + beta b v      beta  = (psi - c psi') / (1 + lambda)
///
/// costs nothing beyond the products (alpha joins the gold's entry of G', beta is one term per
/// row), but when theta is small its two terms are of size psi' a ~ m^2 a and cancel to a: it
/// loses |psi'| u. Where |psi'| > `chordFormAbove` (margins above 4 at small angles) the terms are
/// written around the short chord e = v - s u (s = 1 when theta <= pi/2, else -1) instead:
/// v - c u = e + (s - c) u with s - c = 2 s sin^2(theta_s / 2) (theta_s the acute angle), so
///
///     d/dx   = (lambda w_y + a [P u + psi' e]) / (1 + lambda)       P = psi + psi' (s - c)
///     d/dw_y = (lambda x   + b [P v - s psi' e]) / (1 + lambda)
///
/// with the unit vectors (in float64, refined to about u^2: `Angle.refined`), so that e keeps its
/// digits; this costs more passes over each such row of x and its class row. m = 1 and a zero norm give the plain
/// logit: value f, all of the gradient through the products.
struct GoldLogit {
    struct Margin {
        let m: Int
        let lambda: Double
    }

    /// The angle between x and w_y, measured as acute = the angle to the nearer of w_y and -w_y:
    /// theta = acute or pi - acute. From the chords |x/b - w/a| = 2 sin(theta/2) and
    /// |x/b + w/a| = 2 cos(theta/2), acute = 2 atan2(shorter, longer) is accurate to a few u in
    /// relative terms over the whole range (Kahan's angle between vectors), where arccos(c) is
    /// not near 0 and pi. Also the dot x . w in double, and both norms (0 if either is 0).
    /// `refined`: the unit vectors to about u^2 (`Norm.unitParts`), for a short chord that must
    /// keep its relative accuracy (a rounded unit vector is off by u; the chord may be 1e-12).
    struct Angle {
        let classNorm: Norm
        let featureNorm: Norm
        let acute: Double
        let isObtuse: Bool
        let dot: Double
        let refined: Bool

        /// An angle measured otherwise (arccos of a cosine away from +-1).
        init(classNorm: Norm, featureNorm: Norm, acute: Double, isObtuse: Bool, dot: Double) {
            self.classNorm = classNorm
            self.featureNorm = featureNorm
            self.acute = acute
            self.isObtuse = isObtuse
            self.dot = dot
            refined = false
        }

        init<T: StorageFloat>(_ x: UnsafePointer<T>, _ w: UnsafePointer<T>, count: Int, classNorm: Norm,
                      featureNorm: Norm, refined: Bool) {
            let a = refined ? LSoftmax.refined(classNorm, w, count: count) : classNorm
            let b = refined ? LSoftmax.refined(featureNorm, x, count: count) : featureNorm
            self.classNorm = a
            self.featureNorm = b
            self.refined = refined
            // One pass over x and w_y, in double (exact products for float32 input).
            var apart = 0.0, together = 0.0, f = 0.0
            if !refined && a.shift == 0 && b.shift == 0 {
                let ia = a.inverse, ib = b.inverse
                for t in 0..<count {
                    let xt = x[t].asDouble, wt = w[t].asDouble
                    let u = xt * ib, v = wt * ia
                    apart += (v - u) * (v - u)
                    together += (v + u) * (v + u)
                    f += xt * wt
                }
            } else {
                for t in 0..<count {
                    let xt = x[t].asDouble, wt = w[t].asDouble
                    let u = b.unitParts(xt), v = a.unitParts(wt)
                    let minus = (v.hi - u.hi) + (v.lo - u.lo), plus = (v.hi + u.hi) + (v.lo + u.lo)
                    apart += minus * minus
                    together += plus * plus
                    f += xt * wt
                }
            }
            isObtuse = apart > together
            acute = 2 * atan2((isObtuse ? together : apart).squareRoot(), (isObtuse ? apart : together).squareRoot())
            dot = f
        }
    }

    /// Above this |psi'| the gradient takes the chord form. At or below it (every margin up to 4:
    /// |psi'| <= m^2) the textbook form meets the accuracy target (measured against mpmath,
    /// near-zero losses: within 0.3 of it at m = 3, 4; at m = 10 float64 was 1.2 times over, and
    /// at m = 1000 float32 with x along an axis 1500 times over).
    static let chordFormAbove = 16.0

    /// Whether the chord form needs the unit vectors refined to about u^2: in float64, where a
    /// rounded unit vector is off by as much as the chord's digits are worth (without: 2000
    /// times over the target at m = 1000). float32 input does not: the chord is formed in double,
    /// whose error |psi'| 2^-53 <= 1e6 2^-53 stays far below float32's rounding.
    static func refinesUnits<T: StorageFloat>(_: T.Type) -> Bool { T.ulpOfOne.asDouble < 0x1p-30 }

    let value: Double
    /// The gold's class (for the gradient passes).
    let y: Int32
    /// The share of the gradient that goes through the products, as for any logit (w_y in d/dx,
    /// x in d/dw_y): 1 for the plain logit, alpha = (lambda + psi') / (1 + lambda) in the textbook
    /// form, lambda / (1 + lambda) in the chord form.
    let productShare: Double
    /// beta = (psi - c psi') / (1 + lambda): the textbook form's terms are beta a u in d/dx and
    /// beta b v in d/dw_y (`alongFeature`, `alongClass`).
    let beta: Double
    /// Whether the angular terms apply (m > 1 and both norms non-zero).
    let bends: Bool
    /// P / (1 + lambda) and psi' / (1 + lambda): the chord form's terms are a (P u + psi' e) in
    /// d/dx and b (P v - s psi' e) in d/dw_y, over 1 + lambda.
    let radial: Double
    let chord: Double
    /// s: e = v - s u is the shorter chord.
    let chordSign: Double
    /// |x| and |w_y| (used only where `bends`), refined or not as the angle was measured.
    let featureNorm: Norm
    let classNorm: Norm
    /// The chord form (the textbook form when false).
    let chordForm: Bool
    /// dloss/d(this logit), set by the loss pass.
    var gradient: Double = 0

    // The gold's gradient g (in the gradient's units) times a coefficient times a norm: g first,
    // the norm's power of two last, so that a norm beyond the double range (|x| ~ 1e308 in
    // several entries) gives a finite term wherever the term itself is finite, and g = 0 gives 0.
    func alongFeature(_ g: Double) -> Double { classNorm.times(g * beta) }
    func alongClass(_ g: Double) -> Double { featureNorm.times(g * beta) }
    func radialFeature(_ g: Double) -> Double { classNorm.times(g * radial) }
    func radialClass(_ g: Double) -> Double { featureNorm.times(g * radial) }
    func chordFeature(_ g: Double) -> Double { classNorm.times(g * chord) }
    func chordClass(_ g: Double) -> Double { featureNorm.times(g * chord) }

    /// |psi'|, which decides the form of the gradient.
    let slopeMagnitude: Double

    /// The angle between the feature row `features` and its class row `classRow`, or nil when
    /// it does not bend the logit (m = 1 or a zero norm).
    static func measure<T: StorageFloat>(_ features: UnsafePointer<T>, _ classRow: UnsafePointer<T>, count: Int,
                                 classNorm: Norm, margin: Margin, refined: Bool) -> Angle? {
        guard margin.m > 1, !classNorm.isZero else { return nil }
        // One pass for |x| and x . w_y; where cos theta is within [-1/2, 1/2], theta from the
        // cosine is as accurate as from the chords (|dtheta/dcos| <= 1.16), so the pass over the
        // chords is skipped. atan2(sin, cos), with sin^2 = (1 - c)(1 + c) formed without
        // cancellation, rather than acos: DESIGN.md keeps acos out of the library.
        var sum = 0.0, dot = 0.0
        for t in 0..<count {
            let e = features[t].asDouble
            sum += e * e
            dot += e * classRow[t].asDouble
        }
        let featureNorm = sum >= 0x1p-969 && sum < .infinity
            ? Norm(scaled: sum.squareRoot(), shift: 0) : LSoftmax.norm(features, count: count)
        guard !featureNorm.isZero else { return nil }
        if !refined, featureNorm.shift == 0, classNorm.shift == 0 {
            let c = dot * classNorm.inverse * featureNorm.inverse
            if c.magnitude <= 0.5 {
                let a = c.magnitude
                return Angle(classNorm: classNorm, featureNorm: featureNorm,
                             acute: atan2(((1 - a) * (1 + a)).squareRoot(), a),
                             isObtuse: c < 0, dot: dot)
            }
        }
        return Angle(features, classRow, count: count, classNorm: classNorm, featureNorm: featureNorm,
                     refined: refined)
    }

    /// `angle` nil: the plain logit (m = 1 or a zero norm).
    init(f: Double, y: Int, angle: Angle?, margin: Margin, chordForm: Bool) {
        self.y = Int32(truncatingIfNeeded: y)
        guard let angle, margin.m > 1, !angle.classNorm.isZero, !angle.featureNorm.isZero else {
            // m = 1: psi = cos, a b psi = f exactly; a zero vector has no angle (header).
            value = f
            productShare = 1
            bends = false
            beta = 0; radial = 0; chord = 0
            featureNorm = Norm(scaled: 0, shift: 0); classNorm = featureNorm
            self.chordForm = false; chordSign = 1; slopeMagnitude = 0
            return
        }
        let a = angle.classNorm, b = angle.featureNorm
        featureNorm = b
        classNorm = a
        self.chordForm = chordForm
        chordSign = angle.isObtuse ? -1 : 1
        bends = true
        let x = angle.acute
        guard !x.isNaN, !a.isNaN, !b.isNaN else {
            value = .nan; productShare = .nan; beta = .nan; radial = .nan; chord = .nan
            slopeMagnitude = 0
            return
        }
        let m = margin.m, dm = Double(m)
        let mx = dm * x
        let q = Swift.min(Int((mx / Double.pi).rounded(.down)), m - 1)  // mx <= m pi / 2
        // theta = pi - x: cos(m theta) = (-1)^m cos(m x), sin(m theta) = -(-1)^m sin(m x).
        let j = angle.isObtuse ? Swift.max(m - 1 - q, 0) : q
        let flipCos = angle.isObtuse && m % 2 == 1, flipSin = angle.isObtuse && m % 2 == 0
        let cosMTheta = flipCos ? -cos(mx) : cos(mx)
        // sin(m theta) / sin theta, whose limit at x = 0 is m (or -(-1)^m m at theta = pi).
        let ratio = (x == 0 ? dm : sin(mx) / sin(x)) * (flipSin ? -1 : 1)
        let sign = j % 2 == 0 ? 1.0 : -1.0
        let psi = sign * cosMTheta - 2 * Double(j)
        let slope = sign * dm * ratio
        slopeMagnitude = slope.magnitude
        let lambda = margin.lambda
        // (lambda f + a b psi) / (1 + lambda), the norms' scales applied last, so that no
        // intermediate overflows or underflows where the result does not (a b alone may exceed
        // the double range). f is the dot in double; with lambda = 0 it is not used (a float64
        // dot may overflow where a b psi does not).
        let scaled = a.scaled / (1 + lambda) * b.scaled * psi
        value = (lambda == 0 ? 0 : lambda / (1 + lambda) * angle.dot) + scalbn(scaled, a.shift + b.shift)
        productShare = chordForm ? lambda / (1 + lambda) : (lambda + slope) / (1 + lambda)
        let cosine = angle.isObtuse ? -cos(x) : cos(x)
        beta = (psi - cosine * slope) / (1 + lambda)
        let halfSine = sin(x / 2)
        radial = (psi + slope * chordSign * 2 * halfSine * halfSine) / (1 + lambda)
        chord = slope / (1 + lambda)
    }
}

extension LSoftmax {
    /// The arguments of an lk_lsoftmax call and what each phase of the checks (CallChecks) checks
    /// of them.
    struct Call<T: StorageFloat>: CallChecks {
        let options: Options.LSoftmax
        let n: Int64, d: Int64, k: Int64
        let x: UnsafePointer<T>?, w: UnsafePointer<T>?, gold: UnsafePointer<Int32>?
        let weight: UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, dW: UnsafeMutablePointer<T>?

        var examples: Int64 { n }

        func checkPointers() throws(Failure) {
            try Validation.require(x, "x")
            try Validation.require(w, "w")
            try Validation.require(gold, "gold")
        }

        struct Shape {
            let n: Int, d: Int, k: Int
            /// k * d: the entries of w and d_w.
            let weights: Int
            let x: UnsafePointer<T>, w: UnsafePointer<T>, gold: UnsafePointer<Int32>
            let batch: Batch<T>
        }

        /// n, d, k, and the byte size of every buffer that is read or written (w and d_w are
        /// written even when n = 0), checked before anything is read.
        func checkSizes() throws(Failure) -> Shape? {
            let n = try Validation.dimension(self.n, "n"), d = try Validation.dimension(self.d, "d"),
                k = try Validation.dimension(self.k, "k")
            let weights = try elementCount(k, d, of: T.self, "k * d (w, d_w)")
            _ = try elementCount(n, 1, of: Int32.self, "n (gold)")
            _ = try elementCount(n, 1, of: T.self, "n (weight, loss)")
            _ = try elementCount(n, d, of: T.self, "n * d (x, d_x)")
            _ = try elementCount(n, k, of: T.self, "n * k (the logits)")
            guard n > 0, let x, let w, let gold else { return nil }
            guard d >= 1 else { throw .size("d = 0, but a feature row needs at least one value when n > 0") }
            guard k >= 1 else { throw .size("k = 0, but the loss needs at least one class when n > 0") }
            return Shape(n: n, d: d, k: k, weights: weights, x: x, w: w, gold: gold,
                         batch: Batch(count: n, weights: weight, reduction: options.reduction))
        }

        /// No example: the loss is empty and its gradient w.r.t. w is 0 (k * d passed the sizes).
        func writeEmptyBatch() {
            Batch<T>.writeEmpty(loss, options.reduction)
            dW?.update(repeating: 0, count: Int(k) * Int(d))
        }

        /// Gold labels, for the examples that are neither ignored nor of zero weight.
        func checkLabels(_ shape: Shape) throws(Failure) {
            try Validation.checkClasses(shape.gold, k: shape.k, ignoreLabel: options.ignoreLabel, shape.batch)
        }

        struct Checked {
            let shape: Shape
            /// The examples read (neither ignored nor of zero weight).
            let active: Int
            /// Whether an entry of w is NaN.
            let wHasNaN: Bool
            /// The mean's denominator.
            let counted: Double
        }

        /// Weights, the rows of x that are read, all of w; then the mean's denominator.
        func checkValues(_ shape: Shape) throws(Failure) -> Checked {
            let (d, x, w, gold, batch) = (shape.d, shape.x, shape.w, shape.gold, shape.batch)
            let ignore = options.ignoreLabel
            var active = 0
            for i in 0..<shape.n where gold[i] != ignore {
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) { continue }
                _ = try checkFinite(x + i * d, count: d) { j in "x[\(i), \(j)]" }
                active += 1
            }
            var wHasNaN = false
            for j in 0..<shape.k {
                if try checkFinite(w + j * d, count: d, { t in "w[\(j), \(t)]" }) { wHasNaN = true }
            }
            let counted = try batch.denominator(isIgnored: { gold[$0] == ignore })
            return Checked(shape: shape, active: active, wHasNaN: wHasNaN, counted: counted)
        }
    }
}
