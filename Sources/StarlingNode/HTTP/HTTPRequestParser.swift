import NIOCore
import NIOEmbedded
import NIOHTTP1

/// One HTTP/1.1 request, as far as the `--http` endpoints need it (README, "HTTP").
public struct HTTPRequest: Equatable, Sendable {
    /// The method as sent (`GET`, `HEAD`, ...).
    public var method: String
    /// The request target's path, without its query (`/metrics`).
    public var path: String
    /// Whether the connection stays open after the answer (HTTP/1.1's default, or
    /// `Connection: keep-alive` on HTTP/1.0).
    public var keepAlive: Bool
    /// Bytes of body the request carried (none of the endpoints takes one).
    public var bodyBytes: Int

    public init(method: String, path: String, keepAlive: Bool, bodyBytes: Int = 0) {
        (self.method, self.path, self.keepAlive, self.bodyBytes) = (method, path, keepAlive, bodyBytes)
    }
}

/// Why a connection's bytes are not a request this server takes.
public enum HTTPRequestProblem: Error, Equatable, Sendable {
    /// Not HTTP/1.x, as llhttp reports it.
    case malformed(String)
    /// A request line and headers longer than the limit.
    case headTooLarge(limit: Int)
    /// A body longer than the limit.
    case bodyTooLarge(limit: Int)
}

/// Turns the bytes of a connection into requests with llhttp, the parser Node.js uses, as SwiftNIO
/// ships and maintains it (`HTTPRequestDecoder`).
///
/// The decoder is driven by hand through an `EmbeddedChannel`: that runs nothing by itself (no
/// thread, no loop, no socket); the libuv read callback hands it bytes and takes the parsed parts
/// out at once. On top of llhttp it bounds what one request may hold: its head (request line and
/// headers; a head that follows another request in the same read may overrun by that read) and
/// its body. Pipelined requests come out in order. Loop-confined.
public final class HTTPRequestParser {
    private let channel: EmbeddedChannel
    private let maxHeadBytes: Int
    private let maxBodyBytes: Int
    /// Bytes fed since the current request's head began, until the head is complete.
    private var headBytes = 0
    private var inHead = true
    private var current: HTTPRequest?
    private var failed = false

    public init(maxHeadBytes: Int, maxBodyBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
        channel = EmbeddedChannel(
            handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
    }

    deinit {
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    /// Whether some request has begun and not yet ended: a connection that closes now cut it off.
    public var isMidRequest: Bool { current != nil || headBytes > 0 }

    /// Feeds bytes; returns the requests they complete and, when the bytes break the protocol or a
    /// bound, why (after the requests that came before it: those are still to be answered). After a
    /// problem the parser takes nothing more.
    public func feed(_ bytes: [UInt8]) -> (requests: [HTTPRequest], problem: HTTPRequestProblem?) {
        guard !failed else { return ([], .malformed("the connection already sent a bad request")) }
        var problem: HTTPRequestProblem?
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        } catch {
            // What llhttp parsed before the error is still in the channel, read below.
            problem = .malformed("\(error)")
        }
        var complete: [HTTPRequest] = []
        var endedHere = false
        readingParts: while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                // A head that arrived whole in one read is measured from what llhttp made of it.
                let size = head.uri.utf8.count + head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
                if size > maxHeadBytes {
                    problem = .headTooLarge(limit: maxHeadBytes)
                    break readingParts
                }
                let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                current = HTTPRequest(
                    method: head.method.rawValue, path: String(path), keepAlive: head.isKeepAlive, bodyBytes: 0)
                inHead = false
            case .body(let chunk):
                current?.bodyBytes += chunk.readableBytes
                if (current?.bodyBytes ?? 0) > maxBodyBytes {
                    problem = .bodyTooLarge(limit: maxBodyBytes)
                    break readingParts
                }
            case .end:
                if let request = current { complete.append(request) }
                current = nil
                inHead = true
                headBytes = 0
                endedHere = true
            }
        }
        // The head now being read: every byte since the last request ended. When one ended in
        // these bytes, the next head's share of them is not known and is not counted, so a head
        // may overrun the bound by one read before it is refused.
        if inHead, !endedHere { headBytes += bytes.count }
        if problem == nil, inHead, headBytes > maxHeadBytes { problem = .headTooLarge(limit: maxHeadBytes) }
        if problem != nil { failed = true }
        return (complete, problem)
    }
}
