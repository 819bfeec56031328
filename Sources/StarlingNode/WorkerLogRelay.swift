import Foundation
import Logging
import StarlingCore

/// How an agent passes one worker's stderr lines on to its own stderr so that every line says
/// which worker wrote it (docs/HANDBOOK.md, "log format"):
/// - **text**: a line that names the worker (its logger stamps `node=<id>` on each line) passes
///   unchanged; any other (a crash message, an error printed before the worker had an id) gets
///   `[worker <id>] `, or `[worker <service> pid <pid>] ` while its id is not yet known;
/// - **json**: a line that is one JSON object (the worker's own record, with its `node`) passes
///   unchanged; any other is wrapped into a record of its own, level `error`, with the worker's
///   node (null until known), its service and `fields` `pid` and `relayed: "not JSON"`, so the
///   agent's stderr stays one JSON object per line.
/// Blank lines are dropped.
struct WorkerLogRelay {
    let format: LogFormat
    let service: ServiceName
    let pid: Int32
    /// The worker's id, once its `listening on` line said it.
    private(set) var id: NodeID?

    init(format: LogFormat, service: ServiceName, pid: Int32) {
        self.format = format
        self.service = service
        self.pid = pid
    }

    /// Learns the id from the worker's stdout line `starling worker <id> listening on HOST:PORT`.
    mutating func listened(_ line: String) {
        let words = line.split(separator: " ")
        guard words.count >= 3, words[0] == "starling", let id = NodeID(words[2]) else { return }
        self.id = id
    }

    /// The bytes to write for `complete`, whole lines from `StderrTail.append` (a line longer than
    /// its bound comes in pieces, each relayed as a line).
    func relay(_ complete: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = complete.startIndex
        while start < complete.endIndex {
            let end = complete[start...].firstIndex(of: 0x0A) ?? complete.endIndex
            out += relayLine(complete[start..<end])
            start = end < complete.endIndex ? end + 1 : end
        }
        return out
    }

    private func relayLine(_ line: ArraySlice<UInt8>) -> [UInt8] {
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { return [] }
        switch format {
        case .text:
            let text = String(decoding: line, as: UTF8.self)
            let names = id.map { text.contains($0.description) } ?? text.contains("\(JSONLogHandler.nodeKey)=")
            guard !names else { return Array(line) + [0x0A] }
            let label = id.map { "[worker \($0)] " } ?? "[worker \(service) pid \(pid)] "
            return Array(label.utf8) + Array(line) + [0x0A]
        case .json:
            if (try? JSONSerialization.jsonObject(with: Data(line))) is [String: Any] {
                return Array(line) + [0x0A]
            }
            return JSONLogHandler.line(
                at: JSONLogHandler.now(), level: .error, node: id?.description, service: service.value,
                message: String(decoding: line, as: UTF8.self), fields: ["pid": "\(pid)", "relayed": "not JSON"])
        }
    }
}
