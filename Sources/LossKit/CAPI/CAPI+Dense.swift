import CLossKit

// Dense rows: argument checks and the core live in Dense.swift; these only forward.

@c @implementation
public func lk_dense_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
    _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ grad: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_dense_f32() {
        return forward(opt, n, k, scores, gold, cost, weight, loss, grad)
    }
    return report { () throws(Failure) in
        try Dense.compute(opt, n: n, k: k, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad)
    }
}

@c @implementation
public func lk_dense_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
    _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
    _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ grad: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_dense_f64() {
        return forward(opt, n, k, scores, gold, cost, weight, loss, grad)
    }
    return report { () throws(Failure) in
        try Dense.compute(opt, n: n, k: k, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad)
    }
}

@c @implementation
public func lk_dense_bf16(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
    _ scores: UnsafePointer<UInt16>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ grad: UnsafeMutablePointer<UInt16>?, _ gradF32: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_dense_bf16() {
        return forward(opt, n, k, scores, gold, cost, weight, loss, grad, gradF32)
    }
    return report { () throws(Failure) in
        try Dense.compute(opt, n: n, k: k, bfloat16: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad, gradFloat: gradF32)
    }
}

// The same, with the diagonal of the Hessian (Hessian.swift).

@c @implementation
public func lk_dense_hessian_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
    _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ grad: UnsafeMutablePointer<Float>?, _ hess: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_dense_hessian_f32() {
        return forward(opt, n, k, scores, gold, cost, weight, loss, grad, hess)
    }
    return report { () throws(Failure) in
        try Dense.compute(opt, n: n, k: k, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad, hess: hess)
    }
}

@c @implementation
public func lk_dense_hessian_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ k: Int64,
    _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
    _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ grad: UnsafeMutablePointer<Double>?, _ hess: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_dense_hessian_f64() {
        return forward(opt, n, k, scores, gold, cost, weight, loss, grad, hess)
    }
    return report { () throws(Failure) in
        try Dense.compute(opt, n: n, k: k, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad, hess: hess)
    }
}
