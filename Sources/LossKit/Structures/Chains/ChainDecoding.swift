import CLossKit

/// Decoding: the best path of each sequence and its score (Viterbi), or each position's
/// marginals and log Z (forward-backward), set up as the loss is (ChainCall).
extension Chains {
    /// The arguments of a decoding call (Viterbi, the marginals) and what each phase of the
    /// checks (CallChecks) checks of them: options (only the threads are read), shape, model,
    /// and each sequence's emissions and that it has an allowed path. Its checked form is the
    /// call's set-up (ChainCall).
    struct DecodingCall<T: StorageFloat>: CallChecks {
        let requestedThreads: Int
        let n: Int64, tMax: Int64, tags: Int64
        let emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?
        let end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?
        /// The output, path or marginals, with its name.
        let output: (pointer: UnsafeRawPointer?, name: StaticString)

        var examples: Int64 { n }

        func checkPointers() throws(Failure) {
            try ChainCall.checkPointers(emissions: emissions, transitions: transitions, lengths: lengths,
                                        other: output.pointer, output.name)
        }

        func checkSizes() throws(Failure) -> ChainCall<T>.Shape? {
            try ChainCall<T>.checkShape(n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                                        lengths: lengths, readsLength: { _ in true })
        }

        func writeEmptyBatch() {}

        /// Decoding reads no labels.
        func checkLabels(_: ChainCall<T>.Shape) throws(Failure) {}

        /// The model, then each sequence (ChainCall.checkSequence).
        func checkValues(_ shape: ChainCall<T>.Shape) throws(Failure) -> ChainCall<T> {
            let call = try ChainCall.prepare(shape: shape, start: start, end: end,
                                             readLength: { Int(shape.lengths[$0]) }, requestedThreads: requestedThreads)
            var validated = false
            defer { if !validated { call.free() } }
            let batch = LossKit.Batch<T>(count: call.n, weights: nil, reduction: .none)
            try batch.validate(call.chunks, threads: call.threads) { (i: Int, worker: Int) throws(Failure) in
                _ = try call.checkSequence(i, worker: worker, costBound: 0) { (_, _) throws(Failure) in 0 }
            }
            validated = true
            return call
        }
    }

    /// The checked set-up of a decoding call; nil for an empty batch.
    static func prepareDecoding<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, output: (UnsafeRawPointer?, StaticString)
    ) throws(Failure) -> ChainCall<T>? {
        try DecodingCall(requestedThreads: try Options.decodingThreads(opt), n: n, tMax: tMax, tags: tags,
                         emissions: emissions, transitions: transitions, start: start, end: end, lengths: lengths,
                         output: output).validate()
    }

    static func viterbi<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        path: UnsafeMutablePointer<Int32>?, score: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        guard let call = try prepareDecoding(opt, n: n, tMax: tMax, tags: tags, emissions: emissions,
                                             transitions: transitions, start: start, end: end, lengths: lengths,
                                             output: (UnsafeRawPointer(path), "path")),
              let path
        else { return }
        defer { call.free() }
        Parallel.forEach(chunks: call.chunks.count, threads: call.threads) { chunk, worker in
            let s = call.scratch(worker)
            for i in call.chunks.range(chunk) {
                let length = call.length(i), out = path + i * call.tMax
                out.update(repeating: -1, count: call.tMax)
                guard length > 0 else { score?[i] = 0; continue }
                guard !call.nanFlags[i] else { score?[i] = .nan; continue }
                // The score is the path's own sum of the inputs, not its value on shifted rows.
                _ = ChainPaths.viterbiOnShiftedRows(call.model, rows: call.emissionsInDouble(i, s), length: length,
                                                    scratch: s, path: out)
                let best = ChainPaths.pathScore(call.model, emissions: call.emissions(of: i), rowStride: call.tags,
                                                length: length, path: UnsafePointer(out))
                score?[i] = T(rounding: best)
            }
        }
    }

    static func marginals<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        marginals: UnsafeMutablePointer<T>?, logZ: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        guard let call = try prepareDecoding(opt, n: n, tMax: tMax, tags: tags, emissions: emissions,
                                             transitions: transitions, start: start, end: end, lengths: lengths,
                                             output: (UnsafeRawPointer(marginals), "marginals")),
              let marginals
        else { return }
        defer { call.free() }
        let L = call.tags, S = call.model.stride
        Parallel.forEach(chunks: call.chunks.count, threads: call.threads) { chunk, worker in
            let s = call.scratch(worker)
            for i in call.chunks.range(chunk) {
                let length = call.length(i), out = marginals + i * call.tMax * L
                out.update(repeating: 0, count: call.tMax * L)
                guard length > 0 else { logZ?[i] = 0; continue }
                guard !call.nanFlags[i] else {
                    out.update(repeating: .nan, count: length * L)
                    logZ?[i] = .nan
                    continue
                }
                let tables = ChainTables.compute(call.model, rows: call.emissionsInDouble(i, s), length: length,
                                                 scratch: s)
                let alpha = s.alpha, beta = s.beta
                for t in 0..<length {
                    if tables.isScaled {
                        var total = 0.0
                        for y in 0..<L { total += alpha[t * S + y] * beta[t * S + y] }
                        for y in 0..<L { out[t * L + y] = T(rounding: alpha[t * S + y] * beta[t * S + y] / total) }
                    } else {
                        // Each position normalised by its own log Z (LogSpaceChain.positionLogZ).
                        let z = LogSpaceChain.positionLogZ(alpha + t * S, beta + t * S, count: L)
                        for y in 0..<L {
                            out[t * L + y] = T(rounding: LogSpaceChain.marginal(alpha[t * S + y], beta[t * S + y], z))
                        }
                    }
                }
                logZ?[i] = T(rounding: tables.logZ(plus: 0))
            }
        }
    }
}
