import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// A failed call: the status the C API returns and the message `lk_last_error()` shows.
///
/// Messages name the argument and the index, e.g. `gold[17] = 1003 is outside [0, 1000)`.
struct Failure: Error {
    let status: lk_status
    let message: String

    static func null(_ message: String) -> Failure { Failure(status: LK_ERR_NULL, message: message) }
    static func size(_ message: String) -> Failure { Failure(status: LK_ERR_SIZE, message: message) }
    static func label(_ message: String) -> Failure { Failure(status: LK_ERR_LABEL, message: message) }
    static func option(_ message: String) -> Failure { Failure(status: LK_ERR_OPTION, message: message) }
    static func domain(_ message: String) -> Failure { Failure(status: LK_ERR_DOMAIN, message: message) }
    static func unsupported(_ message: String) -> Failure {
        Failure(status: LK_ERR_UNSUPPORTED, message: message)
    }
}

/// The pinned name of each status, as `lk_status_name` returns it.
func statusName(_ status: lk_status) -> StaticString {
    switch status {
    case LK_OK: return "LK_OK"
    case LK_ERR_NULL: return "LK_ERR_NULL"
    case LK_ERR_SIZE: return "LK_ERR_SIZE"
    case LK_ERR_LABEL: return "LK_ERR_LABEL"
    case LK_ERR_OPTION: return "LK_ERR_OPTION"
    case LK_ERR_DOMAIN: return "LK_ERR_DOMAIN"
    case LK_ERR_UNSUPPORTED: return "LK_ERR_UNSUPPORTED"
    case LK_ERR_ALLOC: return "LK_ERR_ALLOC"
    default: return "LK_ERR_UNKNOWN"
    }
}

/// A C string that lives as long as the library (a Swift string literal's storage).
func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// This thread's `lk_last_error()` buffer, allocated on the first failure a thread sees and
/// freed by the pthread key's destructor when the thread exits. The key is the library's only
/// global, created once (Swift globals are initialised exactly once, thread-safely).
enum LastError {
    static let capacity = 1024
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // If the key cannot be created, messages are simply not kept (lk_last_error returns "").
        if pthread_key_create(&key, { free($0) }) != 0 { key = pthread_key_t.max }
        return key
    }()

    /// The message of this thread's last failed call, or "" if it has none.
    static var current: UnsafePointer<CChar> {
        guard key != pthread_key_t.max, let buffer = pthread_getspecific(key) else { return cString("") }
        return UnsafePointer(buffer.assumingMemoryBound(to: CChar.self))
    }

    /// Records `message` for this thread, truncated to the buffer's capacity.
    static func set(_ message: String) {
        guard key != pthread_key_t.max else { return }
        var raw = pthread_getspecific(key)
        if raw == nil {
            raw = calloc(capacity, 1)
            guard raw != nil, pthread_setspecific(key, raw) == 0 else { free(raw); return }
        }
        let buffer = raw!.assumingMemoryBound(to: UInt8.self)
        var count = 0
        for byte in message.utf8 where count < capacity - 1 {
            buffer[count] = byte
            count += 1
        }
        buffer[count] = 0
    }

    /// Resets this thread's message to "" after a successful call (allocates nothing).
    static func clear() {
        guard key != pthread_key_t.max, let raw = pthread_getspecific(key) else { return }
        raw.assumingMemoryBound(to: UInt8.self)[0] = 0
    }
}

/// Runs one C entry point's body: success clears this thread's message, a failure records it.
@inline(__always)
func report(_ body: () throws(Failure) -> Void) -> lk_status {
    do {
        try body()
        LastError.clear()
        return LK_OK
    } catch {
        LastError.set(error.message)
        return error.status
    }
}

/// A value as messages print it (`inf`, `-inf`, `nan`, `1.5`).
func describe<T: StorageFloat>(_ value: T) -> String { "\(value.asDouble)" }
