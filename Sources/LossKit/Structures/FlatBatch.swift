/// Where the examples of a batch of flat candidates sit in the flat buffers (scores, costs aligned
/// with them, the gradient, the Hessian): example i owns the candidates start(i) ..< start(i + 1).
protocol FlatLayout {
    /// The first candidate of example i; start(n) is the number of candidates.
    func start(_ i: Int) -> Int
}

extension FlatLayout {
    @inline(__always) func count(_ i: Int) -> Int { start(i + 1) - start(i) }
}

/// Dense rows: example i is row i of k classes.
struct RowLayout: FlatLayout {
    let k: Int
    @inline(__always) func start(_ i: Int) -> Int { i * k }
}

/// Candidate lists: example i owns offsets[i] ..< offsets[i + 1] (validated: 0 first, not
/// decreasing).
struct ListLayout: FlatLayout {
    let offsets: UnsafePointer<Int64>
    @inline(__always) func start(_ i: Int) -> Int { Int(offsets[i]) }
}

/// What dense rows and candidate lists share once their shapes and labels are checked: the values
/// phase (FlatValidation's screen of a chunk at once, or its check of each example) and the
/// computing pass, each example a `FlatCandidates`.
struct FlatBatch<T: StorageFloat, Layout: FlatLayout> {
    let layout: Layout
    /// In place, or bfloat16 widened row by row (then never screened a chunk at once).
    let scores: Source<T>
    let batch: Batch<T>
    let gold: UnsafePointer<Int32>
    /// The label that marks an example ignored (dense rows: ignore_label), or nil when none is
    /// (candidate lists).
    let ignoreLabel: Int32?
    let chunks: Chunks
    let threads: Int

    @inline(__always) func isIgnored(_ i: Int) -> Bool { ignoreLabel.map { gold[i] == $0 } ?? false }

    /// Whether some example is read (neither ignored nor of zero weight): the rows of scratch
    /// are allocated only then.
    var readsAny: Bool { (0..<batch.count).contains { !isIgnored($0) && !batch.hasZeroWeight($0) } }

    /// What the values phase leaves to the computing pass: the mean's denominator, whether each
    /// chunk passed the screen, and the survey of each example read in a chunk that did not.
    struct Checked {
        let counted: Double
        let screened: Scratch<Bool>
        let surveys: Scratch<RowSurvey<T>>

        func free() { screened.free(); surveys.free() }
    }

    /// The values phase: chunk by chunk on the call's threads, a screen of the chunk's runs of
    /// examples that are read (`FlatValidation.screen`, with `screenedCosts` aligned with the
    /// scores, when the chunk's examples are short and `mayScreen` allows it), then each example
    /// that is not ignored: its weight, and if it is read `check(i, row, screened)` with the
    /// example's scores (widened into a scratch row of `longest` values if need be), which returns
    /// its survey when the screen did not pass (nil when it did). Then the mean's denominator.
    @inline(__always)
    func checkValues(screenedCosts: UnsafePointer<T>?, costBound: Double, longest: Int,
                     mayScreen: (Range<Int>) -> Bool,
                     check: (_ i: Int, _ scores: UnsafePointer<T>, _ screened: Bool) throws(Failure) -> RowSurvey<T>?)
        throws(Failure) -> Checked
    {
        let widened = try Scratch<T>(scores.isWidened && readsAny ? threads * longest : 0, "the widened scores")
        defer { widened.free() }
        let surveys = try Scratch<RowSurvey<T>>(batch.count, "the surveys of the examples")
        var complete = false
        defer { if !complete { surveys.free() } }
        let screened = try Scratch<Bool>(chunks.count, "the screened chunks")
        defer { if !complete { screened.free() } }
        try batch.validateChunks(chunks, threads: threads) { (chunk: Int, worker: Int) throws(Failure) in
            let examples = chunks.range(chunk)
            let candidates = layout.start(examples.upperBound) - layout.start(examples.lowerBound)
            screened[chunk] = candidates < FlatValidation.screenedLength * examples.count && !scores.isWidened
                && mayScreen(examples)
                && FlatValidation.screenRuns(examples, isRead: { !isIgnored($0) && !batch.hasZeroWeight($0) }) {
                    run in
                    let first = layout.start(run.lowerBound)
                    return FlatValidation.screen(scores.values! + first, costs: screenedCosts.map { $0 + first },
                                                 count: layout.start(run.upperBound) - first, costBound: costBound)
                }
            for i in examples where !isIgnored(i) {
                try batch.checkWeight(i)
                if batch.hasZeroWeight(i) { continue }
                let row = scores.span(layout.start(i), layout.count(i), into: widened.base + worker * longest)
                if let survey = try check(i, row, screened[chunk]) { surveys[i] = survey }
            }
        }
        let counted = try batch.denominator(isIgnored: isIgnored)
        complete = true
        return Checked(counted: counted, screened: screened, surveys: surveys)
    }

    /// The computing pass: example i is the candidates of its span, with gold `gold(i)` and costs
    /// `costs(i)`; a row of scratch per thread (`longest` values) when the recipe needs one (a
    /// second log-sum-exp term keeps its exps there; so does risk's Hessian, its softmax beside
    /// p (c - R)). `hess` receives the diagonal of the Hessian (Hessian.swift). Widened scores
    /// (bfloat16) take a scratch row per thread, and so does a bfloat16 gradient without a float
    /// one (GradientSink).
    @inline(__always)
    func run(_ checked: Checked, options: Options, longest: Int, gold: (Int) -> Int,
             costs: (Int) -> UnsafePointer<T>?, loss: UnsafeMutablePointer<T>?, grad sink: GradientSink<T>,
             hess: UnsafeMutablePointer<T>?) throws(Failure) {
        let recipe = options.recipe, shaping = options.shaping
        let writesGradient = sink.isWritten
        // No row of scratch when no example is read (as huge as k may be then).
        let rowLength = readsAny ? longest : 0
        let widenedRows = (scores.isWidened ? 1 : 0) + (sink.needsScratch ? 1 : 0)
        let widened = try Scratch<T>(threads * widenedRows * rowLength, "the widened scores and their gradient")
        defer { widened.free() }
        let scratchRow = recipe.needsScratchRow(gradient: writesGradient, hessian: hess != nil) ? rowLength : 0
        let scratch = try Scratch<T>(threads * scratchRow, "the exps of a second log-sum-exp term")
        defer { scratch.free() }
        // Softcap and z-loss (Shaping): the capped row, its slopes, the exps of lse(s').
        let shapingRows = shaping.scratchRows(gradient: writesGradient) * rowLength
        let shaped = try Scratch<T>(threads * shapingRows, "the capped scores, their slopes and the z-loss's exps")
        defer { shaped.free() }
        let rerunRows = shaping.isActive && writesGradient ? Shaping.rerunRows * rowLength : 0
        let reruns = try Scratch<Double>(threads * rerunRows, "the rows of a rerun in double (softcap, z-loss)")
        defer { reruns.free() }
        let partials = try Scratch<Double>(Batch<T>.partialCount(chunks.count), "the per-chunk sums")
        defer { partials.free() }
        batch.run(
            loss: loss, counted: checked.counted, chunks: chunks, threads: threads, partials: partials,
            isIgnored: isIgnored,
            skip: { i in
                sink.zero(layout.start(i), layout.count(i))
                hess?.advanced(by: layout.start(i)).update(repeating: 0, count: layout.count(i))
            },
            evaluate: { i, coefficient, worker, chunk in
                let first = layout.start(i), count = layout.count(i)
                let row = scratchRow > 0 ? scratch.base + worker * scratchRow : nil
                let widenedRow = widened.base + worker * widenedRows * rowLength
                let raw = scores.span(first, count, into: widenedRow)
                let gradientRow = sink.row(first, scratch: widenedRow + (scores.isWidened ? rowLength : 0))
                var rowScores = raw
                var validated = checked.screened[chunk] ? nil : checked.surveys[i]
                let shapingRow = shaped.base + worker * shapingRows
                let slopes = shaping.softcap != 0 ? shapingRow + count : nil
                if let slopes {
                    // The loss runs on the capped row, surveyed afresh (a NaN score stays NaN).
                    shaping.cap(rowScores, count: count, into: shapingRow, slopes: slopes)
                    let (maximum, argmax, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(shapingRow), count: count,
                                                                               SurveyAll.self)
                    validated = RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: argmax, unmasked: unmasked)
                    rowScores = UnsafePointer(shapingRow)
                }
                let example = FlatCandidates(
                    scores: rowScores, count: count, goldIndex: gold(i),
                    costs: costs(i), costScale: options.costScale,
                    gradient: gradientRow,
                    scratch: row,
                    validated: validated)
                var value = recipe.loss(onFlat: example, gradientTimes: coefficient)
                var zTerms: Shaping.ZTerms<T>? = nil
                if shaping.zLoss != 0, !value.isNaN {
                    let exps = !writesGradient ? nil : shapingRow + (slopes == nil ? 0 : 2 * count)
                    let z = shaping.zLossTerm(of: example, exps: exps)
                    if let exps { zTerms = Shaping.ZTerms(exps: exps, denominator: z.denominator, lse: z.lse) }
                    let sum = value + z.value
                    // F - H beyond -DBL_MAX and a z-loss beyond DBL_MAX (or the other way round):
                    // -inf + inf, where eighths give the sum ((F - H) / 8 is finite: |F - H| is at
                    // most about 4 DBL_MAX; a z-loss whose eighth overflows outweighs it).
                    if sum.isNaN, !z.value.isNaN, let eighth = recipe.weightedLoss(onFlat: example, weight: 0.125) {
                        value = 8 * (eighth + ((shaping.zLoss * 0.125) * z.lse) * z.lse)
                    } else {
                        value = sum
                    }
                }
                // The z-loss's gradient added and the cap's slope chained in (Shaping.finish), with
                // a rerun of the loss in double where terms overflow.
                if shaping.isActive, let gradient = example.gradient {
                    let rerun = reruns.base + worker * rerunRows
                    shaping.finish(gradient, count: count, coefficient: coefficient,
                                   slopes: slopes.map { UnsafePointer($0) }, scores: raw, z: zTerms,
                                   rescaled: rerun + 2 * count, pending: rerun + 4 * count) { unit, into in
                        let wide = rerun, wideCosts = rerun + count
                        for j in 0..<count { wide[j] = rowScores[j].asDouble }
                        let rowCosts = costs(i)
                        if let rowCosts { for j in 0..<count { wideCosts[j] = rowCosts[j].asDouble } }
                        // Surveyed afresh: its masked classes (K, the max) as the row's own.
                        let (maximum, argmax, unmasked, hasNaN) = RowKernel.survey(UnsafePointer(wide), count: count,
                                                                                   SurveyAll.self)
                        let again = FlatCandidates<Double>(
                            scores: UnsafePointer(wide), count: count, goldIndex: gold(i),
                            costs: rowCosts == nil ? nil : UnsafePointer(wideCosts), costScale: options.costScale,
                            gradient: into, scratch: rerun + 3 * count,
                            validated: RowSurvey(maximum: hasNaN ? .nan : maximum, argmax: argmax, unmasked: unmasked))
                        _ = recipe.loss(onFlat: again, gradientTimes: unit)
                    }
                }
                if let hess {
                    recipe.hessian(on: example.writing(into: hess + first, scratch: row), times: coefficient)
                }
                sink.commit(first, count, gradientRow)
                return value
            },
            weighted: { i, factor, worker, chunk in
                // Not with softcap or z-loss: their losses are left as computed.
                guard !shaping.isActive else { return nil }
                let first = layout.start(i), count = layout.count(i)
                let example = FlatCandidates(
                    scores: scores.span(first, count, into: widened.base + worker * widenedRows * rowLength),
                    count: count, goldIndex: gold(i),
                    costs: costs(i), costScale: options.costScale, gradient: nil, scratch: nil,
                    validated: checked.screened[chunk] ? nil : checked.surveys[i])
                return recipe.weightedLoss(onFlat: example, weight: factor)
            })
    }
}
