import CLossKit

/// Per-thread working memory of the chain programs, for sequences of up to `positions`
/// positions: T x stride tables of doubles, back-pointers and paths, and reachability rows.
/// Some tables serve two programs that never run at once for the same sequence; each field
/// says what holds it.
struct ChainScratch {
    /// The rows the programs run on: the (cost-augmented) emissions in double (ChainExample.augment,
    /// ChainCall.emissionsInDouble), shifted by their max in place for Viterbi and the oracle.
    let augmented: UnsafeMutablePointer<Double>
    /// The forward and backward tables (ChainTables: scaled or in log space).
    let alpha, beta: UnsafeMutablePointer<Double>
    /// Viterbi's scores; the oracle's total costs; the off-path forward of
    /// ChainExample.logSumExpOff.
    let delta: UnsafeMutablePointer<Double>
    /// The risk's centred costs; the oracle's unscaled costs.
    let cost: UnsafeMutablePointer<Double>
    /// The risk's expected costs of the prefixes; the scaled edge weights w[t] of
    /// ChainExample.addScaledMarginals; the oracle's scores.
    let forwardCost: UnsafeMutablePointer<Double>
    /// The risk's expected costs of the suffixes.
    let backwardCost: UnsafeMutablePointer<Double>
    /// What the forward-backward ran on besides `augmented`: the exps of its rows (scaled), or
    /// the rows shifted by their max (log space).
    let psi: UnsafeMutablePointer<Double>
    /// The scaled forward's and backward's per-position normalisers.
    let norms, backNorms: UnsafeMutablePointer<Double>
    /// The scaled forward's row shifts and the small part of its log Z (positions + 2).
    let shifts: UnsafeMutablePointer<Double>
    /// The sequence's emission gradient in double (positions x tags), rounded once when flushed.
    let gradient: UnsafeMutablePointer<Double>
    /// tags x stride: a sequence's edge marginals before the factor E (ScaledChain).
    let edges: UnsafeMutablePointer<Double>
    /// The back-pointers of Viterbi and of the oracle.
    let pointers: UnsafeMutablePointer<Int32>
    /// Two paths: a fear's and a hope's.
    let paths: (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>)
    /// Three rows of `stride` values for the inner loops.
    let work: UnsafeMutablePointer<Double>
    /// Two rows of tags for the reachability check (ChainPaths.hasPath).
    let reach: (UnsafeMutablePointer<Bool>, UnsafeMutablePointer<Bool>)

    /// Doubles, Int32s and Bools one worker needs for `positions` x `tags` (rows of `stride`);
    /// LK_ERR_ALLOC when `threads` workers' worth overflows (no trap on huge sizes).
    static func sizes(positions: Int, tags: Int, threads: Int) throws(Failure)
        -> (doubles: Int, ints: Int, bools: Int)
    {
        let stride = ChainModel.stride(tags: tags)
        let table = saturatingProduct(positions, stride)
        let doubles = saturatingAdd(saturatingAdd(saturatingProduct(9, table), 3 * positions + 2),
                                    saturatingProduct(tags + 3, stride))
        let ints = saturatingAdd(table, 2 * positions)
        guard saturatingProduct(doubles, threads) < Int.max / 8 else {
            throw Failure(status: LK_ERR_ALLOC,
                          message: "the chain tables for \(positions) positions x \(tags) tags overflow")
        }
        return (doubles, ints, 2 * tags)
    }

    init(doubles d: UnsafeMutablePointer<Double>, ints i: UnsafeMutablePointer<Int32>,
         bools b: UnsafeMutablePointer<Bool>, positions: Int, tags: Int) {
        let stride = ChainModel.stride(tags: tags)
        let table = positions * stride
        augmented = d; alpha = d + table; beta = d + 2 * table; delta = d + 3 * table
        cost = d + 4 * table; forwardCost = d + 5 * table; backwardCost = d + 6 * table
        psi = d + 7 * table
        gradient = d + 8 * table
        norms = d + 9 * table
        backNorms = d + 9 * table + positions
        work = d + 9 * table + 2 * positions
        edges = d + 9 * table + 2 * positions + 3 * stride
        shifts = edges + tags * stride
        pointers = i
        paths = (i + table, i + table + positions)
        reach = (b, b + tags)
    }
}

/// a + b for counts >= 0, Int.max when it overflows (work estimates need no more).
@inline(__always) func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

/// a * b for counts >= 0, Int.max when it overflows.
@inline(__always) func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : product
}
