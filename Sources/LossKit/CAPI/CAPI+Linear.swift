import CLossKit

// The fused linear layer + loss: argument checks and the core live in Linear.swift; these only
// forward.

@c @implementation
public func lk_linear_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ d: Int64, _ k: Int64,
    _ x: UnsafePointer<Float>?, _ w: UnsafePointer<Float>?, _ bias: UnsafePointer<Float>?,
    _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
    _ loss: UnsafeMutablePointer<Float>?, _ dX: UnsafeMutablePointer<Float>?,
    _ dW: UnsafeMutablePointer<Float>?, _ dB: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_linear_f32() {
        return forward(opt, n, d, k, x, w, bias, gold, cost, weight, loss, dX, dW, dB)
    }
    return report { () throws(Failure) in
        try Linear.compute(opt, n: n, d: d, k: k, x: x, w: w, bias: bias, gold: gold, cost: cost,
                           weight: weight, loss: loss, dX: dX, dW: dW, dB: dB)
    }
}

@c @implementation
public func lk_linear_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ d: Int64, _ k: Int64,
    _ x: UnsafePointer<Double>?, _ w: UnsafePointer<Double>?, _ bias: UnsafePointer<Double>?,
    _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?, _ weight: UnsafePointer<Double>?,
    _ loss: UnsafeMutablePointer<Double>?, _ dX: UnsafeMutablePointer<Double>?,
    _ dW: UnsafeMutablePointer<Double>?, _ dB: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_linear_f64() {
        return forward(opt, n, d, k, x, w, bias, gold, cost, weight, loss, dX, dW, dB)
    }
    return report { () throws(Failure) in
        try Linear.compute(opt, n: n, d: d, k: k, x: x, w: w, bias: bias, gold: gold, cost: cost,
                           weight: weight, loss: loss, dX: dX, dW: dW, dB: dB)
    }
}

@c @implementation
public func lk_linear_bf16(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ d: Int64, _ k: Int64,
    _ x: UnsafePointer<UInt16>?, _ w: UnsafePointer<UInt16>?, _ bias: UnsafePointer<Float>?,
    _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?, _ weight: UnsafePointer<Float>?,
    _ loss: UnsafeMutablePointer<Float>?, _ dX: UnsafeMutablePointer<UInt16>?,
    _ dW: UnsafeMutablePointer<UInt16>?, _ dB: UnsafeMutablePointer<Float>?,
    _ dXF32: UnsafeMutablePointer<Float>?, _ dWF32: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_linear_bf16() {
        return forward(opt, n, d, k, x, w, bias, gold, cost, weight, loss, dX, dW, dB, dXF32, dWF32)
    }
    return report { () throws(Failure) in
        try Linear.compute(opt, n: n, d: d, k: k, bfloat16: x, w: w, bias: bias, gold: gold, cost: cost,
                           weight: weight, loss: loss, dX: dX, dW: dW, dB: dB, dXFloat: dXF32, dWFloat: dWF32)
    }
}
