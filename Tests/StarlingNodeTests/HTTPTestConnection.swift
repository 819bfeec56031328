import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 answer as a test reads it.
struct HTTPTestResponse {
    var status: Int
    /// Header names lowercased.
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking TCP connection to a `--http` server on 127.0.0.1, for tests: raw bytes out, whole
/// answers (by `Content-Length`) in, every read bounded by a timeout.
final class HTTPTestConnection {
    private let fd: Int32
    private var buffered: [UInt8] = []

    init(port: UInt16, timeoutMs: Int = 5_000) throws {
        fd = try RawSocket.connectTCP(to: port)
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int(timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
    }

    /// One `GET` (HTTP/1.1, kept alive) and its answer.
    static func get(_ path: String, port: UInt16) throws -> HTTPTestResponse? {
        let connection = try HTTPTestConnection(port: port)
        connection.send("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
        return connection.readResponse()
    }

    func send(_ text: String) {
        send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The next whole answer, or nil if the connection closed or timed out first.
    func readResponse(omitsBody: Bool = false) -> HTTPTestResponse? {
        let separator = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = buffered.indices.dropLast(3).first { buffered[$0..<$0 + 4].elementsEqual(separator) }
            if headEnd == nil, !fill() { return nil }
        }
        let head = String(decoding: buffered[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        let statusWords = head[0].split(separator: " ")
        guard statusWords.count >= 2, let status = Int(statusWords[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = omitsBody ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headEnd! + 4
        while buffered.count < bodyStart + length {
            if !fill() { return nil }
        }
        let body = Array(buffered[bodyStart..<bodyStart + length])
        buffered.removeFirst(bodyStart + length)
        return HTTPTestResponse(status: status, headers: headers, body: body)
    }

    /// Whether the server closed the connection (reads end of file) within the read timeout.
    func isClosedByServer() -> Bool {
        while fill() {}
        var probe = [UInt8](repeating: 0, count: 1)
        return recv(fd, &probe, 1, Int32(MSG_DONTWAIT)) == 0
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = recv(fd, &chunk, chunk.count, 0)
        guard n > 0 else { return false }
        buffered += chunk[..<n]
        return true
    }
}
