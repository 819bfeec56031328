import CLibUV

/// What a reading stream reports.
public enum StreamReadEvent: Sendable {
    /// Bytes read, at most the stream's read buffer size per event.
    case bytes([UInt8])
    /// The peer finished sending; reading has stopped.
    case endOfFile
    /// A read error; reading has stopped, close the stream.
    case failed(UVError)
}

/// The shared part of `TCPStream` and `PipeStream`: reading, writing, shutdown, close. Loop-confined.
public class StreamHandle {
    /// The default bound on bytes delivered per read event.
    public static let defaultReadBufferSize = 64 * 1024

    let context: StreamContext

    init(context: StreamContext) {
        self.context = context
    }

    deinit {
        assert(context.state != .open, "\(type(of: self)) deallocated without close()")
    }

    /// The loop the stream belongs to.
    public var loop: EventLoop { context.loop }

    /// The handle as a `uv_stream_t`, for `uv_accept` and process stdio.
    var stream: UnsafeMutablePointer<uv_stream_t> { context.pointer(as: uv_stream_t.self) }

    /// Starts delivering reads to `handler` on the loop thread until EOF, an error, `stopReading` or close.
    public func startReading(_ handler: @escaping (StreamReadEvent) -> Void) throws(UVError) {
        let stream = try context.live(as: uv_stream_t.self, "uv_read_start")
        context.onRead = handler
        try uvCheck(uv_read_start(stream, streamAllocate, streamRead), "uv_read_start")
    }

    /// Stops reading; no effect once closed.
    public func stopReading() {
        guard context.state == .open else { return }
        _ = uv_read_stop(stream)  // always 0 per libuv docs
    }

    /// Writes `bytes`; the completion runs exactly once, on the loop (never before this returns),
    /// unless this throws.
    ///
    /// With nothing queued before them, the bytes go to the kernel at once (`uv_try_write`): no
    /// copy, no request, and no writability watch to register and drop again, which `uv_write`
    /// costs even when the kernel takes everything at once (an `epoll_ctl` per write). Whatever
    /// the kernel does not take is copied and queued with `uv_write`, as is everything after an
    /// error, which then reaches the completion as `uv_write` reports it.
    public func write(bytes: [UInt8], completion: ((UVError?) -> Void)? = nil) throws(UVError) {
        let stream = try context.live(as: uv_stream_t.self, "uv_write")
        // libuv describes a buffer with a 32-bit length: more is an error, not a trap.
        guard bytes.count <= UInt32.max else { throw UVError(code: UV_E2BIG.rawValue, operation: "uv_write of \(bytes.count) bytes") }
        let written = bytes.isEmpty ? 0 : bytes.withUnsafeBytes { raw in
            var buffer = uv_buf_init(
                UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: CChar.self)), UInt32(raw.count))
            return max(0, Int(uv_try_write(stream, &buffer, 1)))
        }
        if written > 0 && written == bytes.count {
            if let completion { context.loop.soon { completion(nil) } }
            return
        }
        let request = Request(copying: bytes[written...], operation: "uv_write", completion: completion)
        try request.submit(as: uv_write_t.self) { req, buffer in
            uv_write(req, stream, buffer, 1, writeCompleted)
        }
    }

    /// Bytes queued by `write` and not yet handed to the kernel; use it to apply backpressure.
    public var writeQueueSize: Int {
        context.state == .open ? uv_stream_get_write_queue_size(stream) : 0
    }

    /// Half-closes the write side after queued writes finish; the completion runs exactly once unless this throws.
    public func shutdown(completion: ((UVError?) -> Void)? = nil) throws(UVError) {
        let stream = try context.live(as: uv_stream_t.self, "uv_shutdown")
        let request = Request(operation: "uv_shutdown", completion: completion)
        try request.submit(as: uv_shutdown_t.self) { req, _ in
            uv_shutdown(req, stream, shutdownCompleted)
        }
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { context.state != .open }

    /// Closes the stream; idempotent. Pending writes and shutdowns complete with `ECANCELED` first.
    public func close() {
        context.close()
    }
}

/// Context for any stream handle (TCP or pipe).
final class StreamContext: HandleContext {
    var readBufferSize = StreamHandle.defaultReadBufferSize
    /// One buffer reused for every read: libuv reports each read before allocating the next.
    /// Allocated at the first read, so a connection that never sends costs no buffer.
    var readBuffer: UnsafeMutableRawBufferPointer?
    var onRead: ((StreamReadEvent) -> Void)?
    /// Runs once when the stream starts closing (its descriptor is closed then), e.g. to count it.
    var onClose: (() -> Void)?

    func allocateReadBuffer() -> UnsafeMutableRawBufferPointer {
        if let readBuffer { return readBuffer }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readBufferSize, alignment: 16)
        readBuffer = buffer
        return buffer
    }

    override func close() {
        guard state == .open else { return }
        super.close()
        let onClose = onClose
        self.onClose = nil
        onClose?()
    }

    override func didClose() {
        onRead = nil
        readBuffer?.deallocate()
        readBuffer = nil
        super.didClose()
    }
}

private func streamAllocate(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int,
                            _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
    let storage = HandleContext.unretained(handle, as: StreamContext.self).allocateReadBuffer()
    buffer!.pointee = uv_buf_init(storage.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(storage.count))
}

private func streamRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ nread: Int,
                        _ buffer: UnsafePointer<uv_buf_t>?) {
    let context = HandleContext.unretained(stream, as: StreamContext.self)
    guard let onRead = context.onRead else { return }
    if nread > 0 {
        onRead(.bytes(Array(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: nread))))
    } else if nread == Int(UVCode.endOfFile) {
        onRead(.endOfFile)
    } else if nread < 0 {
        onRead(.failed(uvStatus(Int32(nread), "uv_read")!))
    }
    // nread == 0 is libuv's EAGAIN: nothing was read and the buffer is simply reused.
}

private func writeCompleted(_ req: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    Request.complete(req, status)
}

private func shutdownCompleted(_ req: UnsafeMutablePointer<uv_shutdown_t>?, _ status: Int32) {
    Request.complete(req, status)
}
