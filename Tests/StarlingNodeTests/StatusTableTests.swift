import Foundation
import Testing
import StarlingCore
import StarlingNode

private let a = NodeID(high: 0x0192_F3A4_5B6C_7D8E, low: 0x9F00_1122_3344_5566)
private let b = NodeID(high: 0x0192_F3A4_5B6C_7D8F, low: 0x0000_0000_AAAA_0001)
private let c = NodeID(high: 0x0192_F3A4_5B6C_7D90, low: 0x0000_0000_BBBB_0002)
private let d = NodeID(high: 0x0192_F3A4_5B6C_7D91, low: 0x0000_0000_CCCC_0003)

private func member(
    _ id: NodeID, _ service: String, _ status: MemberStatus, epoch: UInt64 = 3, priority: Int32 = 0,
    port: UInt16, running: UInt32 = 0, backlog: UInt32 = 0, heard: Int64
) -> Member {
    Member(
        id: id, service: try! ServiceName(service), status: status, priority: priority, epoch: epoch,
        workload: Workload(running: running, capacity: 4, backlog: backlog),
        address: .ipv4(127, 0, 0, 1, port: port), lastHeardMs: heard, sequence: 1)
}

/// The record of process `b`, a standby of `echo`, at time 10 000 ms.
private func sampleReport() -> StatusReport {
    StatusReport(
        selfID: b,
        members: [
            member(c, "sha256", .primary, epoch: 1, port: 7003, heard: 9_990),
            member(b, "echo", .standby, port: 7002, running: 2, heard: 10_000),
            member(d, "echo", .joining, epoch: 0, port: 7004, heard: 8_500),
            member(a, "echo", .primary, priority: 5, port: 7001, running: 1, backlog: 7, heard: 9_988),
        ],
        nowMs: 10_000, rejected: ["bad_magic": 3, "truncated": 1])
}

@Suite struct StatusTableTests {
    @Test func jsonContract() throws {
        let json = try JSONSerialization.jsonObject(with: Data(try sampleReport().jsonBytes())) as! [String: Any]
        #expect(json["self"] as? String == b.description)
        #expect(json["scaler"] == nil)
        #expect((json["rejected"] as? [String: Int]) == ["bad_magic": 3, "truncated": 1])
        let members = json["members"] as! [[String: Any]]
        #expect(members.count == 4)
        let primary = members.first { $0["id"] as? String == a.description }!
        #expect(primary["service"] as? String == "echo")
        #expect(primary["status"] as? String == "primary")
        #expect(primary["epoch"] as? Int == 3)
        #expect(primary["priority"] as? Int == 5)
        #expect(primary["address"] as? String == "127.0.0.1:7001")
        #expect((primary["workload"] as? [String: Int]) == ["running": 1, "capacity": 4, "backlog": 7, "job_timeout_ms": 0])
        #expect(primary["last_heard_ms"] as? Int == 12)
        #expect(Set(primary.keys) == ["id", "service", "status", "epoch", "priority", "address", "workload", "last_heard_ms"])
        let me = members.first { $0["id"] as? String == b.description }!
        #expect(me["last_heard_ms"] as? Int == 0)
        // Deterministic: keys sorted, same bytes every time.
        let text = String(decoding: try sampleReport().jsonBytes(), as: UTF8.self)
        #expect(text.hasPrefix(#"{"members":[{"address":"#))
        #expect(try sampleReport().jsonBytes() == sampleReport().jsonBytes())
    }

    @Test func roundTripAndRender() throws {
        let report = sampleReport()
        let decoded = try StatusReport(json: try report.jsonBytes())
        #expect(decoded == report)

        let lines = StatusTable.render(decoded).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func cells(_ line: String) -> [String] {
            // Columns are separated by two or more spaces; "LAST HEARD" holds a single one.
            line.split(separator: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        #expect(cells(lines[0]) == ["ID", "SERVICE", "STATUS", "EPOCH", "PRI", "RUNNING/CAP", "BACKLOG", "ADDRESS", "LAST HEARD"])
        // Sorted by service, then primary first, then id; self marked with '*'.
        #expect(cells(lines[1]) == ["33445566", "echo", "primary", "3", "5", "1/4", "7", "127.0.0.1:7001", "12ms"])
        #expect(cells(lines[2]) == ["aaaa0001*", "echo", "standby", "3", "0", "2/4", "0", "127.0.0.1:7002", "0ms"])
        #expect(cells(lines[3]) == ["cccc0003", "echo", "joining", "0", "0", "0/4", "0", "127.0.0.1:7004", "1.5s"])
        #expect(cells(lines[4]) == ["bbbb0002", "sha256", "primary", "1", "0", "0/4", "0", "127.0.0.1:7003", "10ms"])
        #expect(lines[5] == "")
        #expect(lines[6] == "rejected: bad_magic=3 truncated=1")
        #expect(lines.last == "")
        // Columns line up: every header starts where its cells start.
        let statusColumn = lines[0].range(of: "STATUS")!.lowerBound.utf16Offset(in: lines[0])
        for line in lines[1...4] {
            #expect(line.dropFirst(statusColumn).first != " ")
            #expect(line.utf16[line.utf16.index(line.startIndex, offsetBy: statusColumn - 1)] == 0x20)
        }
        #expect(lines.allSatisfy { !$0.hasSuffix(" ") })
    }

    @Test func agentRowsGetANoteOnWhatTheirWorkloadCounts() {
        var report = sampleReport()
        #expect(!StatusTable.render(report).contains(StatusTable.agentNote))
        report.members.append(StatusReport.Entry(
            id: d, service: .agent, status: .primary, epoch: 1, priority: 0, address: "127.0.0.1:7946",
            workload: Workload(running: 3, capacity: 16, backlog: 0), lastHeardMs: 0))
        report.scaler = d
        #expect(StatusTable.render(report).hasSuffix("\nscaler: cccc0003\n\(StatusTable.agentNote)\n"))
    }

    @Test func scalerAndAbsentOptionalFields() throws {
        var report = sampleReport()
        report.scaler = c
        report.rejected = [:]
        let decoded = try StatusReport(json: try report.jsonBytes())
        #expect(decoded.scaler == c)
        #expect(StatusTable.render(decoded).hasSuffix("\nscaler: bbbb0002\n"))
        // An older worker's answer without "rejected" or "scaler" still decodes.
        let minimal = #"{"self":"\#(a)","members":[]}"#
        let parsed = try StatusReport(json: Array(minimal.utf8))
        #expect(parsed.rejected.isEmpty && parsed.scaler == nil && parsed.members.isEmpty)
        #expect(try StatusReport(json: Array(#"{"self":"\#(a)","members":[],"scaler":null}"#.utf8)).scaler == nil)
    }

    @Test func durations() {
        #expect(StatusTable.duration(ms: 0) == "0ms")
        #expect(StatusTable.duration(ms: 999) == "999ms")
        #expect(StatusTable.duration(ms: 1_500) == "1.5s")
        #expect(StatusTable.duration(ms: 187_000) == "3m07s")
        #expect(StatusTable.duration(ms: 7_500_000) == "2h05m")
    }

    @Test func hostileJSONThrows() throws {
        let good = String(decoding: try sampleReport().jsonBytes(), as: UTF8.self)
        let entry = #"{"id":"\#(a)","service":"echo","status":"primary","epoch":1,"priority":0,"address":"h:1","workload":{"running":0,"capacity":1,"backlog":0},"last_heard_ms":0}"#
        func withEntry(_ replace: (String) -> String) -> String { #"{"self":"\#(a)","members":[\#(replace(entry))]}"# }
        #expect(throws: Never.self) { try StatusReport(json: Array(withEntry { $0 }.utf8)) }
        let hostile: [String] = [
            "", "null", "[]", "{}", "\u{0}", "{\"self\":", good.replacingOccurrences(of: "\"members\"", with: "\"memberz\""),
            String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 50_000),
            #"{"self":"not-an-id","members":[]}"#,
            #"{"self":12,"members":[]}"#,
            #"{"self":"\#(a)","members":{}}"#,
            #"{"self":"\#(a)","members":[],"rejected":{"x":-1}}"#,
            #"{"self":"\#(a)","members":[],"rejected":{"x":1.5}}"#,
            #"{"self":"\#(a)","members":[],"scaler":"zz"}"#,
            withEntry { $0.replacingOccurrences(of: #""status":"primary""#, with: #""status":"king""#) },
            withEntry { $0.replacingOccurrences(of: #""service":"echo""#, with: #""service":"E\ncho""#) },
            withEntry { $0.replacingOccurrences(of: #""epoch":1"#, with: #""epoch":-1"#) },
            withEntry { $0.replacingOccurrences(of: #""epoch":1"#, with: #""epoch":1e400"#) },
            withEntry { $0.replacingOccurrences(of: #""epoch":1"#, with: #""epoch":99999999999999999999999"#) },
            withEntry { $0.replacingOccurrences(of: #""priority":0"#, with: #""priority":4294967296"#) },
            withEntry { $0.replacingOccurrences(of: #""running":0"#, with: #""running":"0""#) },
            withEntry { $0.replacingOccurrences(of: #""last_heard_ms":0"#, with: #""last_heard_ms":-5"#) },
            withEntry { $0.replacingOccurrences(of: #""address":"h:1""#, with: #""address":"""#) },
            withEntry { $0.replacingOccurrences(of: #","workload":{"running":0,"capacity":1,"backlog":0}"#, with: "") },
            withEntry { $0 + ",null" },
        ]
        for json in hostile {
            #expect(throws: (any Error).self, "\(json.prefix(80))") { try StatusReport(json: Array(json.utf8)) }
        }
        // Random bytes: never a trap.
        var state: UInt64 = 42
        for _ in 0..<500 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 64) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(truncatingIfNeeded: state >> 56))
            }
            _ = try? StatusReport(json: bytes)
        }
    }
}
