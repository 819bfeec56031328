import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One host name resolved to addresses by libuv's `uv_getaddrinfo`: the system resolver runs on
/// libuv's thread pool and the answer comes back on the loop thread, so the loop never waits on DNS.
///
/// The request memory is owned by a context retained in the request's `data` from submission until
/// the callback, which libuv calls exactly once (with `EAI_CANCELED` after a successful `cancel()`)
/// and which frees the request and the `addrinfo` list. A loop cannot be closed while a lookup is
/// pending: cancel it, then drive the loop until the completion has run. Loop-confined.
public final class AddressLookup {
    /// Which addresses to ask for: a socket bound to one family can only reach that family.
    public enum Family: Sendable {
        case ipv4, ipv6, any
    }

    /// At most this many addresses are kept from one answer, in the resolver's order.
    public static let maxAddresses = 64
    /// The longest host name looked up (RFC 1035: 253 characters without the final dot).
    public static let maxHostLength = 254

    private let context: LookupContext

    /// Starts resolving `host`; `completion` runs exactly once, on the loop thread, with the distinct
    /// addresses found (each with `port`), or with the resolver's error (`EAI_NONAME`, `EAI_AGAIN`,
    /// ...), unless this throws. A host that is empty, too long or holds a NUL byte throws `EINVAL`.
    public init(
        loop: EventLoop, host: String, port: UInt16, family: Family = .any,
        completion: @escaping (Result<[SocketAddress], UVError>) -> Void
    ) throws(UVError) {
        let operation = "uv_getaddrinfo \(host)"
        try uvCheck(
            !host.isEmpty && host.utf8.count <= Self.maxHostLength && !host.utf8.contains(0) ? 0 : UVCode.invalid,
            operation)
        let context = LookupContext(loop: loop, port: port, operation: operation, completion: completion)
        var hints = addrinfo()
        switch family {
        case .ipv4: hints.ai_family = AF_INET
        case .ipv6: hints.ai_family = AF_INET6
        case .any: hints.ai_family = AF_UNSPEC
        }
        // One entry per address rather than one per socket type.
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        try context.submit(host: host, hints: &hints)
        self.context = context
    }

    /// Whether the completion has run (or is running).
    public var isFinished: Bool { !context.isPending }

    /// Cancels the lookup if no pool thread has picked it up yet; the completion then gets
    /// `EAI_CANCELED` (from the loop, never inside this call). Returns whether it was cancelled; a
    /// lookup already running completes normally.
    @discardableResult
    public func cancel() -> Bool {
        guard context.isPending else { return false }
        return uv_cancel(context.requestBase) == 0
    }
}

/// The object retained in the `uv_getaddrinfo_t`'s `data` from submission to the callback.
private final class LookupContext {
    /// Kept so the loop outlives the request.
    private let loop: EventLoop
    private let request: UnsafeMutablePointer<uv_getaddrinfo_t>
    private let port: UInt16
    private let operation: String
    private var completion: ((Result<[SocketAddress], UVError>) -> Void)?
    /// True from a successful submission until the callback.
    private(set) var isPending = false

    init(
        loop: EventLoop, port: UInt16, operation: String,
        completion: @escaping (Result<[SocketAddress], UVError>) -> Void
    ) {
        self.loop = loop
        self.request = .allocate(capacity: 1)
        self.port = port
        self.operation = operation
        self.completion = completion
    }

    var requestBase: UnsafeMutablePointer<uv_req_t> { UnsafeMutablePointer(OpaquePointer(request)) }

    /// Queues the lookup with a retained `self` in `data`; on failure frees the request and throws.
    /// libuv copies the host name and the hints, so neither need outlive this call.
    func submit(host: String, hints: inout addrinfo) throws(UVError) {
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let code = uv_getaddrinfo(loop.raw, request, lookupDone, host, nil, &hints)
        if code < 0 {
            Unmanaged<LookupContext>.fromOpaque(request.pointee.data).release()
            request.deallocate()
        } else {
            isPending = true
        }
        try uvCheck(code, operation)
    }

    /// The callback's part: copies the addresses out, frees the list and the request, then delivers.
    static func finish(
        _ request: UnsafeMutablePointer<uv_getaddrinfo_t>, status: Int32, list: UnsafeMutablePointer<addrinfo>?
    ) {
        let context = Unmanaged<LookupContext>.fromOpaque(request.pointee.data).takeRetainedValue()
        var addresses: [SocketAddress] = []
        var entry = list
        while let current = entry, addresses.count < AddressLookup.maxAddresses {
            if let raw = current.pointee.ai_addr,
               let found = try? SocketAddress(UnsafePointer(raw), context.operation),
               let address = try? SocketAddress(hostBytes: found.hostBytes, port: context.port),
               !addresses.contains(address) {
                addresses.append(address)
            }
            entry = current.pointee.ai_next
        }
        uv_freeaddrinfo(list)
        request.deallocate()
        context.isPending = false
        // Taken out so it can never run twice.
        guard let completion = context.completion else { return }
        context.completion = nil
        if let error = uvStatus(status, context.operation) {
            completion(.failure(error))
        } else {
            completion(.success(addresses))
        }
    }
}

private func lookupDone(
    _ request: UnsafeMutablePointer<uv_getaddrinfo_t>?, _ status: Int32, _ list: UnsafeMutablePointer<addrinfo>?
) {
    LookupContext.finish(request!, status: status, list: list)
}
