/// The forward-backward tables of one sequence, left in its scratch (ChainScratch: alpha, beta,
/// psi, and for the scaled tables the norms and shifts), and their log Z: what a log-sum-exp
/// keeps for its marginals, the risk's expectations and the decoded marginals. Valid until the
/// next forward-backward on the same scratch.
///
/// The one place that decides between the two forms: the scaled programs (ScaledChain) when the
/// spreads leave them their margin, which is nearly always, else the log-space ones
/// (LogSpaceChain) on the rows shifted by their max. Every reader of the tables has a scaled and
/// a log-space form, on purpose: the scaled tables hold alpha-hat and beta-hat (a marginal is
/// alpha-hat beta-hat over its position's sum), the log-space ones log-weights.
struct ChainTables {
    /// Whether the tables are scaled (ScaledChain) rather than in log space (LogSpaceChain).
    let isScaled: Bool
    /// log Z of the rows the programs ran on: the rows given (scaled), or those rows shifted by
    /// their max (log space).
    let logZ: Double
    /// The sum of the row maxima the log-space programs' rows were shifted by (0 when scaled).
    let rowShift: Double

    /// log Z of the rows given, plus `offset` (what the caller's rows were shifted by before).
    func logZ(plus offset: Double) -> Double {
        isScaled ? offset + logZ : offset + rowShift + logZ
    }

    /// Forward and backward over `rows` (length x stride, in double), into `scratch`.
    static func compute(_ model: ChainModel, rows: UnsafePointer<Double>, length: Int,
                        scratch s: ChainScratch) -> ChainTables {
        if let logZ = ScaledChain.forward(model, emissions: rows, length: length, alpha: s.alpha, psi: s.psi,
                                          norms: s.norms, shifts: s.shifts),
           ScaledChain.backward(model, length: length, psi: UnsafePointer(s.psi), beta: s.beta,
                                norms: s.backNorms, work: s.work) {
            return ChainTables(isScaled: true, logZ: logZ, rowShift: 0)
        }
        // Log space on the rows shifted by their max (LogSpaceChain.shiftRows), kept in psi for
        // the readers; the tables' log Z is relative to the shift.
        let shift = LogSpaceChain.shiftRows(rows, length: length, stride: model.stride, into: s.psi)
        let logZ = LogSpaceChain.forward(model, emissions: s.psi, length: length, alpha: s.alpha, work: s.work)
        LogSpaceChain.backward(model, emissions: s.psi, length: length, beta: s.beta, work: s.work)
        return ChainTables(isScaled: false, logZ: logZ, rowShift: shift)
    }
}
