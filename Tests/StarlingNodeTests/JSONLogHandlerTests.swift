import Foundation
import Logging
import StarlingNode
import Synchronization
import Testing

/// `JSONLogHandler` alone: what any text becomes on one line, and where the process id goes.
@Suite struct JSONLogHandlerTests {
    /// The lines a handler wrote, each with its newline.
    final class Lines: Sendable {
        let lines = Mutex<[[UInt8]]>([])
    }

    private func logger(_ lines: Lines) -> Logger {
        var logger = Logger(label: "test") { _ in
            JSONLogHandler(service: "echo") { line in lines.lines.withLock { $0.append(line) } }
        }
        logger.logLevel = .trace
        return logger
    }

    private func object(_ line: [UInt8]) throws -> [String: Any] {
        #expect(line.last == 0x0A)
        #expect(line.dropLast().firstIndex(of: 0x0A) == nil, "one line: \(String(decoding: line, as: UTF8.self))")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.dropLast())) as? [String: Any])
    }

    @Test("quotes, backslashes, newlines and control characters stay on one line and come back as written")
    func anyTextIsOneValidLine() throws {
        let lines = Lines()
        var log = logger(lines)
        let nasty = "say \"hi\"\\ then\nnext line\r\t\u{0}\u{1}\u{1B}[31m red \u{7F} é 🐦 </script>"
        log[metadataKey: JSONLogHandler.nodeKey] = "0192f3a4-5b6c-7d8e-9f00-112233445566"
        log.warning("\(nasty)", metadata: ["why": "\(nasty)", "nested": ["list": ["a", "b\n"], "n": "1"]])
        let written = lines.lines.withLock { $0 }
        #expect(written.count == 1)
        let record = try object(try #require(written.first))
        #expect(Set(record.keys) == ["time", "level", "node", "service", "message", "fields"])
        #expect(record["message"] as? String == nasty)
        #expect(record["level"] as? String == "warning")
        #expect(record["service"] as? String == "echo")
        #expect(record["node"] as? String == "0192f3a4-5b6c-7d8e-9f00-112233445566")
        let fields = try #require(record["fields"] as? [String: Any])
        #expect(fields["why"] as? String == nasty)
        #expect(fields[JSONLogHandler.nodeKey] == nil, "the node is the top-level key, not a field")
        let nested = try #require(fields["nested"] as? [String: Any])
        #expect(nested["list"] as? [String] == ["a", "b\n"])
        // RFC 3339, UTC, with microseconds.
        let time = try #require(record["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z/) != nil, "\(time)")
    }

    @Test("before the process has an id, node is null; an error goes into the fields")
    func nodeIsNullUntilStamped() throws {
        struct Broken: Error, CustomStringConvertible { var description: String { "it \"broke\"" } }
        let lines = Lines()
        logger(lines).error("cannot start", error: Broken())
        let record = try object(try #require(lines.lines.withLock { $0.first }))
        #expect(record["node"] is NSNull)
        #expect((record["fields"] as? [String: Any])?["error"] as? String == "it \"broke\"")
    }
}
