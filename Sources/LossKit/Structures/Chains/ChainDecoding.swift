import CLossKit

/// Decoding: the best path of each sequence and its score (Viterbi), or each position's
/// marginals and log Z (forward-backward), set up as the loss is (ChainCall).
extension Chains {
    /// The checked call shared by Viterbi and the marginals: options (only the threads are
    /// read), shape, model, and each sequence's emissions and that it has an allowed path.
    /// nil for an empty batch.
    static func prepareDecoding<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n n64: Int64, tMax t64: Int64, tags l64: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?, output: (Bool, String)
    ) throws(Failure) -> ChainCall<T>? {
        let requestedThreads = try Options.decodingThreads(opt)
        guard let shape = try ChainCall<T>.checkShape(
            n: n64, tMax: t64, tags: l64, emissions: emissions, transitions: transitions, lengths: lengths,
            required: [output], readsLength: { _ in true }),
            let emissions, let transitions, let lengths
        else { return nil }
        let call = try ChainCall.prepare(shape: shape, emissions: emissions, transitions: transitions, start: start,
                                         end: end, lengths: lengths, readLength: { Int(lengths[$0]) },
                                         requestedThreads: requestedThreads)
        var validated = false
        defer { if !validated { call.free() } }
        let batch = LossKit.Batch<T>(count: call.n, weights: nil, reduction: .none)
        try batch.validate(call.chunks, threads: call.threads) { (i: Int, worker: Int) throws(Failure) in
            _ = try call.checkSequence(i, worker: worker, costBound: 0) { (_, _) throws(Failure) in 0 }
        }
        validated = true
        return call
    }

    static func viterbi<T: StorageFloat>(
        _ opt: UnsafePointer<lk_options>?, n: Int64, tMax: Int64, tags: Int64,
        emissions: UnsafePointer<T>?, transitions: UnsafePointer<T>?, start: UnsafePointer<T>?,
        end: UnsafePointer<T>?, lengths: UnsafePointer<Int32>?,
        path: UnsafeMutablePointer<Int32>?, score: UnsafeMutablePointer<T>?
    ) throws(Failure) {
        guard let call = try prepareDecoding(opt, n: n, tMax: tMax, tags: tags, emissions: emissions,
                                             transitions: transitions, start: start, end: end, lengths: lengths,
                                             output: (path != nil, "path")),
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
                                             output: (marginals != nil, "marginals")),
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
