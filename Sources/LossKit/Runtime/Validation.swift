/// The checks of every entry point, in the order of DESIGN.md §2, written once. After the
/// options (the entry point parses them first: Options.parse, which needs no other argument)
/// come the pointers (LK_ERR_NULL, only when there are examples), the sizes (LK_ERR_SIZE: every
/// dimension, byte size, offset and length), then — unless the batch is empty — the labels
/// (LK_ERR_LABEL) and the values (LK_ERR_DOMAIN). A structure plugs in what it checks in each
/// phase by conforming to `CallChecks`; `validate()` runs the phases in that order. Nothing is
/// written before every check has passed, except the outputs of an empty batch.
protocol CallChecks {
    /// What the sizes phase establishes: the dimensions as Int, their byte sizes checked.
    associatedtype Shape
    /// What the values phase leaves to the computing pass (surveys, chunks, threads, scratch).
    associatedtype Checked

    /// The number of examples as given: the pointers are required only when it is not 0.
    var examples: Int64 { get }
    /// Each pointer a call with examples needs (`Validation.require`), in the order of the
    /// header's parameters.
    func checkPointers() throws(Failure)
    /// The dimensions (`Validation.dimension`), the byte size of every buffer the call reads or
    /// writes, offsets and lengths; nil for an empty batch.
    func checkSizes() throws(Failure) -> Shape?
    /// What an empty batch writes (SUM and MEAN: a loss of 0; shared gradients: 0).
    func writeEmptyBatch()
    /// Gold indices and tags, for the examples that are read.
    func checkLabels(_ shape: Shape) throws(Failure)
    /// Weights, scores, costs and every other value read, and the mean's denominator.
    func checkValues(_ shape: Shape) throws(Failure) -> Checked
}

extension CallChecks {
    /// Runs the phases in order; nil for an empty batch, whose outputs are then written.
    func validate() throws(Failure) -> Checked? {
        if examples != 0 { try checkPointers() }
        guard let shape = try checkSizes() else {
            writeEmptyBatch()
            return nil
        }
        try checkLabels(shape)
        return try checkValues(shape)
    }
}

/// The checks each phase makes of one argument, with their messages.
enum Validation {
    /// A pointer a call with examples needs.
    static func require(_ pointer: UnsafeRawPointer?, _ name: StaticString) throws(Failure) {
        guard pointer != nil else { throw .null("\(name) is NULL (required when n != 0)") }
    }

    /// A dimension as given: non-negative, and an Int.
    static func dimension(_ value: Int64, _ name: StaticString) throws(Failure) -> Int {
        guard value >= 0 else { throw .size("\(name) = \(value) is negative") }
        guard let converted = Int(exactly: value) else {
            throw .size("\(name) = \(value) does not fit this platform's address space")
        }
        return converted
    }

    /// The gold class of each row that is read (dense rows, L-Softmax): in [0, k) unless it is
    /// `ignoreLabel`; rows ignored or of zero weight are not read.
    static func checkClasses<T>(_ gold: UnsafePointer<Int32>, k: Int, ignoreLabel: Int32, _ batch: Batch<T>)
        throws(Failure)
    {
        for i in 0..<batch.count where gold[i] != ignoreLabel && !batch.hasZeroWeight(i) {
            let g = gold[i]
            guard g >= 0, Int(g) < k else {
                throw .label("gold[\(i)] = \(g) is outside [0, \(k)) and is not ignore_label (\(ignoreLabel))")
            }
        }
    }
}

/// Checks that a buffer of `a * b` elements of `T` is addressable (the sizes phase); returns `a * b`.
func elementCount<T>(_ a: Int, _ b: Int, of _: T.Type, _ what: String) throws(Failure) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    let (_, bytesOverflow) = product.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
    guard !overflow, !bytesOverflow else {
        throw .size("\(what) = \(a) * \(b) elements overflow the address space")
    }
    return product
}
