import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension StarlingBench {
    /// A gearman worker process: the counterpart of a `starling worker` for the comparison.
    /// The bench starts W of them; they are separate processes like Starling's workers.
    struct GearmanWorker: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gearman-worker",
            abstract: "A gearman worker for the comparison (started by the bench itself).",
            discussion: """
                Connects to gearmand on 127.0.0.1:PORT, registers FUNCTION (CAN_DO), then loops: \
                GRAB_JOB_UNIQ, run the job, WORK_COMPLETE (sent with the next GRAB_JOB_UNIQ in one \
                write); on NO_JOB it sends PRE_SLEEP and waits for NOOP. It reconnects when the \
                server goes away. Prints 'gearman worker ready' once every connection is registered.
                """,
            shouldDisplay: false)

        @Option(help: "gearmand's port on 127.0.0.1.")
        var port: Int

        @Option(help: "echo (answers the payload) or sleep (payload: decimal ms; answers 'slept N ms').")
        var function = "echo"

        @Option(help: "Connections (threads), each running one job at a time.")
        var connections = 1

        func validate() throws {
            guard (1...65_535).contains(port) else { throw ValidationError("--port must be 1...65535") }
            guard GearmanJobFunction(rawValue: function) != nil else { throw ValidationError("--function must be echo or sleep") }
            guard (1...256).contains(connections) else { throw ValidationError("--connections must be 1...256") }
        }

        func run() throws {
            let job = GearmanJobFunction(rawValue: function)!
            let parent = getppid()
            let registered = Atomic<Int>(0)
            for index in 0..<connections {
                let thread = Thread { [port] in
                    GearmanWorkerLoop.serve(port: UInt16(port), function: job, name: "w\(getpid())-\(index)") {
                        registered.add(1, ordering: .relaxed)
                    }
                }
                thread.name = "gearman-worker-\(index)"
                thread.start()
            }
            let deadline = monotonicNs() + 10_000_000_000
            while registered.load(ordering: .relaxed) < connections {
                guard monotonicNs() < deadline else {
                    writeStderr("gearman-worker: not registered with 127.0.0.1:\(port) within 10 s\n")
                    throw ExitCode(1)
                }
                usleep(5_000)
            }
            let line = Array("gearman worker ready\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress!, $0.count) }
            // The bench stops this process with a signal; the threads serve until then. Should the
            // bench itself die without stopping it (kill -9), the worker goes too.
            while getppid() == parent { usleep(200_000) }
            writeStderr("gearman-worker: the bench (pid \(parent)) is gone; stopping\n")
            throw ExitCode(0)
        }
    }
}

/// What a gearman worker does with a job's payload.
enum GearmanJobFunction: String, Sendable {
    case echo
    case sleep

    /// The result, or nil for WORK_FAIL.
    func run(_ payload: ArraySlice<UInt8>) -> [UInt8]? {
        switch self {
        case .echo:
            return Array(payload)
        case .sleep:
            guard let ms = Int(String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)),
                  (0...60_000).contains(ms)
            else { return nil }
            usleep(useconds_t(ms * 1_000))
            return Array("slept \(ms) ms".utf8)
        }
    }
}

enum GearmanWorkerLoop {
    /// Serves jobs on one connection for ever, reconnecting (every 20 ms) when it drops.
    static func serve(port: UInt16, function: GearmanJobFunction, name: String, registered: () -> Void) {
        var announced = false
        let functionName = Array(function.rawValue.utf8)[...]
        while true {
            do throws(WireError) {
                let socket = try LoopbackSocket(port: port)
                var out: [UInt8] = []
                GearmanCodec.appendRequest(.canDo, [functionName], to: &out)
                // The echo's answer proves the server has processed CAN_DO (one connection is in order).
                GearmanCodec.appendRequest(.echoReq, [Array(name.utf8)[...]], to: &out)
                try socket.send(out)
                while try socket.receive(timeoutMs: -1)?.known != .echoRes {}
                if !announced {
                    announced = true
                    registered()
                }
                out.removeAll(keepingCapacity: true)
                GearmanCodec.appendRequest(.grabJobUniq, to: &out)
                try socket.send(out)
                try work(socket: socket, function: function, out: &out)
            } catch {
                writeStderr("gearman-worker \(name): \(error); reconnecting\n")
                usleep(20_000)
            }
        }
    }

    private static func work(socket: LoopbackSocket, function: GearmanJobFunction,
                             out: inout [UInt8]) throws(WireError) {
        while true {
            guard let packet = try socket.receive(timeoutMs: -1) else { continue }
            out.removeAll(keepingCapacity: true)
            switch packet.known {
            case .jobAssignUniq, .jobAssign:
                // JOB_ASSIGN_UNIQ: handle, function, unique id, data; JOB_ASSIGN: handle, function, data.
                let count = packet.known == .jobAssignUniq ? 4 : 3
                guard let arguments = packet.arguments(count) else {
                    throw WireError("malformed JOB_ASSIGN (\(packet.data.count) bytes)")
                }
                let handle = arguments[0]
                if let result = function.run(arguments[count - 1]) {
                    GearmanCodec.appendRequest(.workComplete, [handle, result[...]], to: &out)
                } else {
                    GearmanCodec.appendRequest(.workFail, [handle], to: &out)
                }
                GearmanCodec.appendRequest(.grabJobUniq, to: &out)
            case .noJob:
                GearmanCodec.appendRequest(.preSleep, to: &out)
            case .noop:
                GearmanCodec.appendRequest(.grabJobUniq, to: &out)
            case .error:
                let text = packet.arguments(2).map { $0.map { String(decoding: $0, as: UTF8.self) } } ?? []
                writeStderr("gearman-worker: ERROR from gearmand: \(text.joined(separator: ": "))\n")
            default:
                continue
            }
            if !out.isEmpty { try socket.send(out) }
        }
    }
}
