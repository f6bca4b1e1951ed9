import CLossKit

// Vocabulary-parallel dense rows: argument checks and the core live in
// Structures/VocabParallel.swift; these only forward.

@c @implementation
public func lk_vocab_dense_f32(
    _ opt: UnsafePointer<lk_options>?, _ phase: Int32, _ n: Int64, _ k: Int64, _ kOffset: Int64, _ kLocal: Int64,
    _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ maxima: UnsafeMutablePointer<Double>?, _ sums: UnsafeMutablePointer<Double>?,
    _ argmax: UnsafeMutablePointer<Double>?, _ loss: UnsafeMutablePointer<Float>?, _ grad: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_vocab_dense_f32() {
        return forward(opt, phase, n, k, kOffset, kLocal, scores, gold, cost, weight, maxima, sums, argmax, loss, grad)
    }
    return report { () throws(Failure) in
        try VocabParallel.compute(opt, phase: phase, n: n, k: k, kOffset: kOffset, kLocal: kLocal, scores: scores,
                                  gold: gold, cost: cost, weight: weight, maxima: maxima, sums: sums,
                                  argmax: argmax, loss: loss, grad: grad)
    }
}

@c @implementation
public func lk_vocab_dense_f64(
    _ opt: UnsafePointer<lk_options>?, _ phase: Int32, _ n: Int64, _ k: Int64, _ kOffset: Int64, _ kLocal: Int64,
    _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
    _ weight: UnsafePointer<Double>?, _ maxima: UnsafeMutablePointer<Double>?, _ sums: UnsafeMutablePointer<Double>?,
    _ argmax: UnsafeMutablePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?, _ grad: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_vocab_dense_f64() {
        return forward(opt, phase, n, k, kOffset, kLocal, scores, gold, cost, weight, maxima, sums, argmax, loss, grad)
    }
    return report { () throws(Failure) in
        try VocabParallel.compute(opt, phase: phase, n: n, k: k, kOffset: kOffset, kLocal: kLocal, scores: scores,
                                  gold: gold, cost: cost, weight: weight, maxima: maxima, sums: sums,
                                  argmax: argmax, loss: loss, grad: grad)
    }
}
