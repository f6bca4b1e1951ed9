import CLossKit

// The C entry points shared by every structure: status names, the last error and option
// defaults. `@c @implementation` makes the compiler check each one against its declaration in
// include/losskit.h. lk_version and lk_version_number are C (Sources/CLossKit/version.c): the
// preprocessor makes them from the header's LK_VERSION_* macros.

@c @implementation
public func lk_status_name(_ status: lk_status) -> UnsafePointer<CChar>? {
    cString(statusName(status))
}

// A CPU-level build answers lk_cpu_level from C (Sources/CLossKit/internal.c), so that the
// baseline can ask it before running any of its wider code.
#if !LK_VARIANT
@c @implementation
public func lk_cpu_level() -> UnsafePointer<CChar>? {
    if let forward = losskit_forward_lk_cpu_level() { return forward() }
    return cString(BuildLevel.name)
}
#endif

@c @implementation
public func lk_last_error() -> UnsafePointer<CChar>? {
    if let forward = losskit_forward_lk_last_error() { return forward() }
    return LastError.current
}

@c @implementation
public func lk_options_init(_ opt: UnsafeMutablePointer<lk_options>?, _ loss: Int32) -> lk_status {
    if let forward = losskit_forward_lk_options_init() { return forward(opt, loss) }
    // The function (not the header's macro) serves programs compiled against the first layout:
    // it writes that layout's bytes and no more, whatever this library's lk_options has grown to.
    return report { () throws(Failure) in try initOptions(opt, loss, size: UInt(Options.firstLayoutSize)) }
}

@c @implementation
public func lk_options_init_size(_ opt: UnsafeMutablePointer<lk_options>?, _ loss: Int32, _ size: Int) -> lk_status {
    if let forward = losskit_forward_lk_options_init_size() { return forward(opt, loss, size) }
    // size_t arrives as Int: a size above Int.max is a large size, not a negative one.
    return report { () throws(Failure) in try initOptions(opt, loss, size: UInt(bitPattern: size)) }
}

/// Writes the defaults for `loss` into the first min(size, MemoryLayout<lk_options>.size) bytes of
/// `opt`, with `size` set to that count; nothing past it, nothing at all on failure.
private func initOptions(_ opt: UnsafeMutablePointer<lk_options>?, _ loss: Int32, size: UInt) throws(Failure) {
    guard let opt else { throw .null("opt is NULL") }
    guard size >= UInt(Options.firstLayoutSize) else {
        let first = Options.firstLayoutSize
        throw .option("size = \(size) is smaller than the first published layout of lk_options (\(first) bytes)")
    }
    guard var defaults = Options.defaults(loss: loss) else {
        throw .option("loss = \(loss) is not an LK_LOSS_* value")
    }
    let written = Int(Swift.min(size, UInt(MemoryLayout<lk_options>.size)))
    defaults.size = UInt32(written)
    withUnsafeBytes(of: &defaults) { bytes in
        UnsafeMutableRawPointer(opt).copyMemory(from: bytes.baseAddress!, byteCount: written)
    }
}
