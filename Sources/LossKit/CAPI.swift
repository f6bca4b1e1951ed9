import CLossKit

// The C entry points shared by every structure: version, status names, the last error and
// option defaults. `@c @implementation` makes the compiler check each one against its
// declaration in include/losskit.h.

@c @implementation
public func lk_version() -> UnsafePointer<CChar>? {
    cString(Version.string)
}

@c @implementation
public func lk_version_number() -> Int32 {
    Version.number
}

@c @implementation
public func lk_status_name(_ status: lk_status) -> UnsafePointer<CChar>? {
    cString(statusName(status))
}

@c @implementation
public func lk_cpu_level() -> UnsafePointer<CChar>? {
    #if !LK_VARIANT
    if let variant = Variant.active { return cString(variant.level) }
    #endif
    return cString(BuildLevel.name)
}

@c @implementation
public func lk_last_error() -> UnsafePointer<CChar>? {
    #if !LK_VARIANT
    if let variant = Variant.active { return variant.lastError() }
    #endif
    return LastError.current
}

@c @implementation
public func lk_options_init(_ opt: UnsafeMutablePointer<lk_options>?, _ loss: Int32) -> lk_status {
    #if !LK_VARIANT
    if let variant = Variant.active { return variant.optionsInit(opt, loss) }
    #endif
    return report { () throws(Failure) in
        guard let opt else { throw .null("opt is NULL") }
        guard let defaults = Options.defaults(loss: loss) else {
            throw .option("loss = \(loss) is not an LK_LOSS_* value")
        }
        opt.pointee = defaults
    }
}
