#if canImport(Glibc)
import Glibc
#endif

/// Memory a call needs besides its outputs (row maxima, per-thread exps, per-chunk sums),
/// from malloc so that running out is LK_ERR_ALLOC rather than a trap. Freed by `free()`.
struct Scratch<Element> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ count: Int, _ what: String) throws(Failure) {
        let (bytes, overflow) = Swift.max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard !overflow, let raw = malloc(bytes) else {
            throw Failure(status: LK_ERR_ALLOC, message: "could not allocate \(count) values for \(what)")
        }
        base = raw.bindMemory(to: Element.self, capacity: Swift.max(count, 1))
        self.count = count
    }

    func free() { Glibc.free(base) }

    subscript(i: Int) -> Element {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
}

import CLossKit
