/// An incremental, pure decoder of peer frames (`PeerMessageCodec`).
///
/// The connection feeds it whatever bytes arrive with `append(_:)` and pulls messages with
/// `next()` until it returns nil (more bytes needed). Messages come out the same however the
/// bytes are cut into chunks.
///
/// Every error is fatal: `next()` throws it, the decoder drops its buffer and ignores further
/// input, and each later `next()` throws the same error again. The caller closes the connection.
///
/// Memory is bounded: a length prefix announcing more than `maxFrameBytes` is an error as soon as
/// its four bytes are in, and one announcing more than its kind's limit (`PeerFrameLimits`) as
/// soon as the type byte after them is in, before any more of the body is kept; so once `next()`
/// has returned nil, `bufferedByteCount` is less than `PeerMessageCodec.headerBytes +
/// maxFrameBytes`. Room for a large frame grows with the bytes that came, not with the length a
/// peer announced.
public struct PeerFrameDecoder: Sendable {
    /// The largest frame of any kind: a result at the hard bound of `max_result_bytes`.
    public static let defaultMaxFrameBytes = PeerFrameLimits.largestFrameBytes
    /// Buffer capacity kept across frames; a larger buffer (after a large frame) is freed once
    /// what is left of it is no more than this.
    private static let retainedCapacity = 64 * 1024

    /// The largest frame body accepted (the value of the length prefix, prefix not counted).
    public let maxFrameBytes: Int

    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var head = 0
    private var failure: PeerDecodingError?
    /// The last service name decoded: frames on one connection mostly repeat it.
    private var lastService: ServiceName?

    public init(maxFrameBytes: Int = defaultMaxFrameBytes) {
        precondition(maxFrameBytes > 0, "frame limit must be positive")
        self.maxFrameBytes = maxFrameBytes
    }

    /// Bytes received and not yet decoded.
    public var bufferedByteCount: Int { buffer.count - head }

    /// Whether an error has been thrown: all further input is ignored.
    public var isClosed: Bool { failure != nil }

    /// Feeds bytes as they arrive.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        guard failure == nil, !bytes.isEmpty else { return }
        // Drop consumed bytes once they are more than half the buffer: each byte moves at most
        // once on average, and the buffer never grows just to keep consumed bytes.
        if head > 0, head * 2 > buffer.count {
            buffer.removeSubrange(0..<head)
            head = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next message, or nil when more bytes are needed.
    public mutating func next() throws(PeerDecodingError) -> PeerMessage? {
        if let failure { throw failure }
        let available = buffer.count - head
        guard available >= PeerMessageCodec.headerBytes else { return nil }
        var prefix = BinaryReader<PeerDecodingError>(buffer[head..<(head + PeerMessageCodec.headerBytes)])
        let announced = Int(try prefix.integer(UInt32.self, "frame length"))
        guard announced <= maxFrameBytes else {
            throw fail(.frameTooLarge(length: announced, limit: maxFrameBytes))
        }
        if announced > PeerFrameLimits.controlFrameBytes {
            // Only payloads and results may be this large: the type byte says which it is.
            guard available > PeerMessageCodec.headerBytes else { return nil }
            let limit = min(maxFrameBytes, PeerFrameLimits.maxBodyBytes(type: buffer[head + PeerMessageCodec.headerBytes]))
            guard announced <= limit else { throw fail(.frameTooLarge(length: announced, limit: limit)) }
        }
        let frameBytes = PeerMessageCodec.headerBytes + announced
        guard available >= frameBytes else {
            reserve(min(frameBytes, 2 * available + Self.retainedCapacity))
            return nil
        }
        let bodyStart = head + PeerMessageCodec.headerBytes
        let message: PeerMessage
        do {
            message = try PeerMessageCodec.decodeBody(
                buffer[bodyStart..<(bodyStart + announced)], serviceCache: &lastService)
        } catch {
            throw fail(error)
        }
        consume(frameBytes)
        return message
    }

    /// Makes room for `frameBytes` at once, rather than doubling towards it byte by byte; the
    /// caller asks for at most twice what has come, so an announced length alone costs nothing.
    private mutating func reserve(_ frameBytes: Int) {
        guard buffer.capacity - head < frameBytes else { return }
        if head > 0 {
            buffer.removeSubrange(0..<head)
            head = 0
        }
        buffer.reserveCapacity(frameBytes)
    }

    private mutating func consume(_ count: Int) {
        head += count
        if head == buffer.count {
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            head = 0
        } else if buffer.capacity > Self.retainedCapacity, buffer.count - head <= Self.retainedCapacity {
            // A large frame's storage goes with it even when the next frame's first bytes came in
            // the same read: on a busy link the buffer may never be empty between frames.
            buffer = Array(buffer[head...])
            head = 0
        }
    }

    private mutating func fail(_ error: PeerDecodingError) -> PeerDecodingError {
        failure = error
        buffer = []
        head = 0
        return error
    }
}
