#if canImport(Glibc)
import Glibc
#endif

/// One file descriptor held open (on /dev/null) so that a process out of descriptors (`EMFILE`)
/// can still take one connection, tell it why it is refused, and close it: the classic answer to
/// running out, instead of leaving connections in the backlog to be reset. Loop-confined.
struct DescriptorReserve {
    private var descriptor: Int32 = -1

    /// Whether a descriptor is held now (reopening can fail while the process is still out).
    var isHeld: Bool { descriptor >= 0 }

    /// Opens the reserve if it is not held; returns whether it is now.
    @discardableResult
    mutating func hold() -> Bool {
        if descriptor < 0 { descriptor = open("/dev/null", O_RDONLY | O_CLOEXEC) }
        return descriptor >= 0
    }

    /// Closes the reserve so that its number can be used once, then `hold()` takes it back.
    mutating func release() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }
}
