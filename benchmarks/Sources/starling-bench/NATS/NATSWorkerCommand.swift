import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension StarlingBench {
    /// A NATS worker process: the counterpart of a `starling worker` (and of the bench's gearman
    /// worker) for the comparison. The bench starts W of them; they are separate processes.
    struct NATSWorker: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "nats-worker",
            abstract: "A NATS echo worker for the comparison (started by the bench itself).",
            discussion: """
                Connects to nats-server on 127.0.0.1:PORT, subscribes to SUBJECT in queue group \
                QUEUE (so that the server gives each request to one member of the group), and \
                publishes every request's payload back to its reply subject; the answers to \
                everything one read brought go out in one write. It reconnects when the server goes \
                away. Prints 'nats worker ready' once every connection is subscribed.
                """,
            shouldDisplay: false)

        @Option(help: "nats-server's port on 127.0.0.1.")
        var port: Int

        @Option(help: "The subject requests arrive on.")
        var subject = "echo"

        @Option(help: "The queue group the workers share.")
        var queue = "workers"

        @Option(help: "Connections (threads), each a member of the queue group.")
        var connections = 1

        func validate() throws {
            guard (1...65_535).contains(port) else { throw ValidationError("--port must be 1...65535") }
            guard NATSCodec.isToken(subject), NATSCodec.isToken(queue) else {
                throw ValidationError("--subject and --queue must be printable ASCII without spaces")
            }
            guard (1...256).contains(connections) else { throw ValidationError("--connections must be 1...256") }
        }

        func run() throws {
            let parent = getppid()
            let registered = Atomic<Int>(0)
            for index in 0..<connections {
                let thread = Thread { [port, subject, queue] in
                    NATSWorkerLoop.serve(port: UInt16(port), subject: subject, queue: queue, name: "w\(getpid())-\(index)") {
                        registered.add(1, ordering: .relaxed)
                    }
                }
                thread.name = "nats-worker-\(index)"
                thread.start()
            }
            let deadline = monotonicNs() + 10_000_000_000
            while registered.load(ordering: .relaxed) < connections {
                guard monotonicNs() < deadline else {
                    writeStderr("nats-worker: not subscribed at 127.0.0.1:\(port) within 10 s\n")
                    throw ExitCode(1)
                }
                usleep(5_000)
            }
            let line = Array("nats worker ready\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress!, $0.count) }
            // The bench stops this process with a signal; should the bench die without stopping
            // it (kill -9), the worker goes too.
            while getppid() == parent { usleep(200_000) }
            writeStderr("nats-worker: the bench (pid \(parent)) is gone; stopping\n")
            throw ExitCode(0)
        }
    }
}

enum NATSWorkerLoop {
    /// Serves requests on one connection for ever, reconnecting (every 20 ms) when it drops.
    static func serve(port: UInt16, subject: String, queue: String, name: String, registered: () -> Void) {
        var announced = false
        while true {
            do throws(WireError) {
                let socket = try LoopbackSocket(port: port)
                try NATSHandshake.open(socket, name: "starling-bench worker \(name)",
                                       subscriptions: [.init(subject: subject, queue: queue, sid: 1)])
                if !announced {
                    announced = true
                    registered()
                }
                try work(socket: socket)
            } catch {
                writeStderr("nats-worker \(name): \(error); reconnecting\n")
                usleep(20_000)
            }
        }
    }

    private static func work(socket: LoopbackSocket) throws(WireError) {
        var out: [UInt8] = []
        while true {
            _ = try socket.fill(timeoutMs: -1)
            while let operation = try socket.bufferedNATSOperation() {
                switch operation {
                case .message(let message):
                    // A request without a reply subject has nowhere to be answered.
                    guard let replyTo = message.replyTo else { continue }
                    NATSCodec.appendPublish(subject: replyTo, replyTo: nil as [UInt8]?, payload: message.payload, to: &out)
                case .ping:
                    NATSCodec.appendPong(to: &out)
                case .error(let text):
                    writeStderr("nats-worker: -ERR from nats-server: \(text)\n")
                case .info, .pong, .ok:
                    continue
                }
            }
            if !out.isEmpty {
                try socket.send(out)
                out.removeAll(keepingCapacity: true)
            }
        }
    }
}
