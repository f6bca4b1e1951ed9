import CLossKit

// Candidate lists: argument checks and the core live in Lists.swift; these only forward.

@c @implementation
public func lk_lists_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
    _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ grad: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_lists_f32() {
        return forward(opt, n, offsets, scores, gold, cost, weight, loss, grad)
    }
    return report { () throws(Failure) in
        try Lists.compute(opt, n: n, offsets: offsets, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad)
    }
}

@c @implementation
public func lk_lists_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
    _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
    _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ grad: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_lists_f64() {
        return forward(opt, n, offsets, scores, gold, cost, weight, loss, grad)
    }
    return report { () throws(Failure) in
        try Lists.compute(opt, n: n, offsets: offsets, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad)
    }
}

// The same, with the diagonal of the Hessian (Hessian.swift).

@c @implementation
public func lk_lists_hessian_f32(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
    _ scores: UnsafePointer<Float>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Float>?,
    _ weight: UnsafePointer<Float>?, _ loss: UnsafeMutablePointer<Float>?,
    _ grad: UnsafeMutablePointer<Float>?, _ hess: UnsafeMutablePointer<Float>?
) -> lk_status {
    if let forward = losskit_forward_lk_lists_hessian_f32() {
        return forward(opt, n, offsets, scores, gold, cost, weight, loss, grad, hess)
    }
    return report { () throws(Failure) in
        try Lists.compute(opt, n: n, offsets: offsets, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad, hess: hess)
    }
}

@c @implementation
public func lk_lists_hessian_f64(
    _ opt: UnsafePointer<lk_options>?, _ n: Int64, _ offsets: UnsafePointer<Int64>?,
    _ scores: UnsafePointer<Double>?, _ gold: UnsafePointer<Int32>?, _ cost: UnsafePointer<Double>?,
    _ weight: UnsafePointer<Double>?, _ loss: UnsafeMutablePointer<Double>?,
    _ grad: UnsafeMutablePointer<Double>?, _ hess: UnsafeMutablePointer<Double>?
) -> lk_status {
    if let forward = losskit_forward_lk_lists_hessian_f64() {
        return forward(opt, n, offsets, scores, gold, cost, weight, loss, grad, hess)
    }
    return report { () throws(Failure) in
        try Lists.compute(opt, n: n, offsets: offsets, scores: scores, gold: gold, cost: cost,
                          weight: weight, loss: loss, grad: grad, hess: hess)
    }
}
