import CLossKit

// Linear chains: argument checks and the programs live in Structures/Chains/; these only forward.

@c @implementation
public func lk_chain_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Float>?, _ transitions: UnsafePointer<Float>?, _ start: UnsafePointer<Float>?,
    _ end: UnsafePointer<Float>?, _ lengths: UnsafePointer<Int32>?, _ gold: UnsafePointer<Int32>?,
    _ cost: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ dEmissions: UnsafeMutablePointer<Float>?, _ dTransitions: UnsafeMutablePointer<Float>?,
    _ dStart: UnsafeMutablePointer<Float>?, _ dEnd: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_f32() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, gold, cost, weight,
                       loss, dEmissions, dTransitions, dStart, dEnd)
    }
    return report { () throws(Failure) in
        try Chains.compute(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                           start: start, end: end, lengths: lengths, gold: gold, cost: cost, weight: weight,
                           loss: loss, dEmissions: dEmissions, dTransitions: dTransitions, dStart: dStart, dEnd: dEnd)
    }
}

@c @implementation
public func lk_chain_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Double>?, _ transitions: UnsafePointer<Double>?, _ start: UnsafePointer<Double>?,
    _ end: UnsafePointer<Double>?, _ lengths: UnsafePointer<Int32>?, _ gold: UnsafePointer<Int32>?,
    _ cost: UnsafePointer<Double>?, _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ dEmissions: UnsafeMutablePointer<Double>?, _ dTransitions: UnsafeMutablePointer<Double>?,
    _ dStart: UnsafeMutablePointer<Double>?, _ dEnd: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_f64() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, gold, cost, weight,
                       loss, dEmissions, dTransitions, dStart, dEnd)
    }
    return report { () throws(Failure) in
        try Chains.compute(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                           start: start, end: end, lengths: lengths, gold: gold, cost: cost, weight: weight,
                           loss: loss, dEmissions: dEmissions, dTransitions: dTransitions, dStart: dStart, dEnd: dEnd)
    }
}

@c @implementation
public func lk_chain_viterbi_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Float>?, _ transitions: UnsafePointer<Float>?, _ start: UnsafePointer<Float>?,
    _ end: UnsafePointer<Float>?, _ lengths: UnsafePointer<Int32>?,
    _ path: UnsafeMutablePointer<Int32>?, _ score: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_viterbi_f32() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, path, score)
    }
    return report { () throws(Failure) in
        try Chains.viterbi(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                           start: start, end: end, lengths: lengths, path: path, score: score)
    }
}

@c @implementation
public func lk_chain_viterbi_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Double>?, _ transitions: UnsafePointer<Double>?, _ start: UnsafePointer<Double>?,
    _ end: UnsafePointer<Double>?, _ lengths: UnsafePointer<Int32>?,
    _ path: UnsafeMutablePointer<Int32>?, _ score: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_viterbi_f64() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, path, score)
    }
    return report { () throws(Failure) in
        try Chains.viterbi(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                           start: start, end: end, lengths: lengths, path: path, score: score)
    }
}

@c @implementation
public func lk_chain_marginals_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Float>?, _ transitions: UnsafePointer<Float>?, _ start: UnsafePointer<Float>?,
    _ end: UnsafePointer<Float>?, _ lengths: UnsafePointer<Int32>?,
    _ marginals: UnsafeMutablePointer<Float>?, _ logZ: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_marginals_f32() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, marginals, logZ)
    }
    return report { () throws(Failure) in
        try Chains.marginals(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                             start: start, end: end, lengths: lengths, marginals: marginals, logZ: logZ)
    }
}

@c @implementation
public func lk_chain_marginals_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ tMax: Int64, _ tags: Int64,
    _ emissions: UnsafePointer<Double>?, _ transitions: UnsafePointer<Double>?, _ start: UnsafePointer<Double>?,
    _ end: UnsafePointer<Double>?, _ lengths: UnsafePointer<Int32>?,
    _ marginals: UnsafeMutablePointer<Double>?, _ logZ: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_chain_marginals_f64() {
        return forward(opt, n, tMax, tags, emissions, transitions, start, end, lengths, marginals, logZ)
    }
    return report { () throws(Failure) in
        try Chains.marginals(opt, n: n, tMax: tMax, tags: tags, emissions: emissions, transitions: transitions,
                             start: start, end: end, lengths: lengths, marginals: marginals, logZ: logZ)
    }
}
