import Foundation
import StarlingTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a raw TCP client read before the other end closed or reset the connection, or before a
/// deadline passed with it still open.
struct RawReading: CustomStringConvertible, Sendable {
    enum End: Equatable { case closed, reset, stillOpen }
    var bytes: [UInt8] = []
    var end: End = .stillOpen

    var text: String { String(decoding: bytes, as: UTF8.self) }
    var description: String { "\(end) after \(text.debugDescription)" }
}

/// Raw client sockets for the connection-limit tests: many idle connections, and reads that tell a
/// close from a reset.
enum RawConnections {
    /// Raises this process's soft descriptor limit towards `wanted` (at most the hard limit);
    /// returns the soft limit now.
    static func raiseDescriptorLimit(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = min(rlim_t(wanted), limit.rlim_max)
        if limit.rlim_cur < target {
            limit.rlim_cur = target
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Opens `count` connections to 127.0.0.1:`port` that send nothing; the caller closes them.
    static func openIdle(_ count: Int, to port: UInt16) throws -> [Int32] {
        var descriptors: [Int32] = []
        descriptors.reserveCapacity(count)
        do {
            for _ in 0..<count { descriptors.append(try RawSocket.connectTCP(to: port)) }
        } catch {
            closeAll(descriptors)
            throw error
        }
        return descriptors
    }

    static func closeAll(_ descriptors: [Int32]) {
        for descriptor in descriptors { close(descriptor) }
    }

    /// Connects to 127.0.0.1:`port`, sends `request` and reads (as `read`) until the other end
    /// closes or resets, `timeoutMs` passes or, with `untilLineEnd`, a line has arrived; then closes.
    /// On a thread of its own (`runOnDedicatedThread`), so the wait holds no cooperative thread.
    static func exchange(
        _ request: String, with port: UInt16, within timeoutMs: Int, untilLineEnd: Bool = true
    ) async throws -> RawReading {
        try await runOnDedicatedThread {
            let descriptor = try RawSocket.connectTCP(to: port)
            defer { close(descriptor) }
            return read(descriptor, within: timeoutMs, untilLineEnd: untilLineEnd, sending: request)
        }
    }

    /// Whether a new client of 127.0.0.1:`port` is answered `PONG` to its `PING` within `timeout`
    /// (asked again every 20 ms while it is refused), e.g. once a place under the cap has freed.
    static func isServed(_ port: UInt16, within timeout: Duration) async -> Bool {
        await pollAsync(within: timeout, every: .milliseconds(20)) { () async -> Bool? in
            let answer = try? await exchange("PING\r\n", with: port, within: 2_000)
            return answer?.text == "PONG\r\n" ? true : nil
        } ?? false
    }

    /// `read` on a thread of its own (`runOnDedicatedThread`), so the wait holds no cooperative thread.
    static func readOffPool(
        _ descriptor: Int32, within timeoutMs: Int, untilLineEnd: Bool = false, sending request: String = ""
    ) async -> RawReading {
        await runOnDedicatedThread {
            read(descriptor, within: timeoutMs, untilLineEnd: untilLineEnd, sending: request)
        }
    }

    /// Reads until the other end closes or resets the connection, or until `timeoutMs` passes, or,
    /// with `untilLineEnd`, until a line has arrived.
    static func read(
        _ descriptor: Int32, within timeoutMs: Int, untilLineEnd: Bool = false, sending request: String = ""
    ) -> RawReading {
        if !request.isEmpty {
            _ = Array(request.utf8).withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        var reading = RawReading()
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !(untilLineEnd && reading.bytes.last == UInt8(ascii: "\n")) {
            let count = recv(descriptor, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                reading.bytes += chunk[..<count]
                continue
            }
            if count == 0 {
                reading.end = .closed
                break
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN else {
                reading.end = .reset  // ECONNRESET, or any other failure of the connection
                break
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            var watched = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&watched, 1, Int32(left / .milliseconds(1)) + 1)
        }
        return reading
    }

    /// What has arrived on a connection by now, without waiting: a refused connection has its
    /// line and its end already; one the worker holds has nothing.
    static func readNow(_ descriptor: Int32) -> RawReading {
        read(descriptor, within: 0)
    }
}
