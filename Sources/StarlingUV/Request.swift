import CLibUV

/// One in-flight libuv request (send, write, connect, shutdown) and everything it owns.
///
/// A retained `Request` sits in the `uv_xxx_t`'s `data` from submission until its callback, which
/// is the only place (besides a failed submission) that frees the bytes and the request memory.
final class Request {
    /// A copy of the caller's bytes, so nothing points into Swift array storage after the call returns.
    private let bytes: UnsafeMutableRawBufferPointer?
    private let completion: ((UVError?) -> Void)?
    private let operation: String

    /// A request carrying no bytes (connect, shutdown).
    init(operation: String, completion: ((UVError?) -> Void)?) {
        self.bytes = nil
        self.operation = operation
        self.completion = completion
    }

    /// A request carrying its own copy of `bytes` (send, write).
    init(copying bytes: some Collection<UInt8>, operation: String, completion: ((UVError?) -> Void)?) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        copy.copyBytes(from: bytes)
        self.bytes = copy
        self.operation = operation
        self.completion = completion
    }

    /// Allocates the libuv request, retains `self` in its `data` and calls `start` with it and a
    /// descriptor of the owned bytes (libuv copies the descriptor). If `start` fails libuv will never
    /// call back, so everything is freed here and the error is thrown.
    func submit<Req>(
        as type: Req.Type,
        _ start: (UnsafeMutablePointer<Req>, UnsafePointer<uv_buf_t>) -> Int32
    ) throws(UVError) {
        let req = UnsafeMutablePointer<Req>.allocate(capacity: 1)
        Self.base(req).pointee.data = Unmanaged.passRetained(self).toOpaque()
        var buffer = uv_buf_init(bytes?.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(bytes?.count ?? 0))
        let code = start(req, &buffer)
        if code < 0 {
            Unmanaged<Request>.fromOpaque(Self.base(req).pointee.data).release()
            free(req)
        }
        try uvCheck(code, operation)
    }

    /// Runs from the request's libuv callback: frees everything, then reports the status exactly once.
    static func complete<Req>(_ req: UnsafeMutablePointer<Req>?, _ status: Int32) {
        guard let req else { return }
        let request = Unmanaged<Request>.fromOpaque(base(req).pointee.data).takeRetainedValue()
        request.free(req)
        request.completion?(uvStatus(status, request.operation))
    }

    private func free<Req>(_ req: UnsafeMutablePointer<Req>) {
        req.deallocate()
        bytes?.deallocate()
    }

    /// Every libuv request struct starts with the `uv_req_t` fields, `data` first.
    private static func base<Req>(_ req: UnsafeMutablePointer<Req>) -> UnsafeMutablePointer<uv_req_t> {
        UnsafeMutablePointer<uv_req_t>(OpaquePointer(req))
    }
}
