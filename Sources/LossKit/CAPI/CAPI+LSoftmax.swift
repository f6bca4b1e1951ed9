import CLossKit

// L-Softmax: argument checks and the core live in LSoftmax.swift; these only forward.

@c @implementation
public func lk_lsoftmax_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ d: Int64, _ k: Int64,
    _ x: UnsafePointer<Float>?, _ w: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ dX: UnsafeMutablePointer<Float>?, _ dW: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_lsoftmax_f32() {
        return forward(opt, n, d, k, x, w, gold, weight, loss, dX, dW)
    }
    return report { () throws(Failure) in
        try LSoftmax.compute(opt, n: n, d: d, k: k, x: x, w: w, gold: gold, weight: weight,
                             loss: loss, dX: dX, dW: dW)
    }
}

@c @implementation
public func lk_lsoftmax_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ d: Int64, _ k: Int64,
    _ x: UnsafePointer<Double>?, _ w: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?,
    _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ dX: UnsafeMutablePointer<Double>?, _ dW: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_lsoftmax_f64() {
        return forward(opt, n, d, k, x, w, gold, weight, loss, dX, dW)
    }
    return report { () throws(Failure) in
        try LSoftmax.compute(opt, n: n, d: d, k: k, x: x, w: w, gold: gold, weight: weight,
                             loss: loss, dX: dX, dW: dW)
    }
}
