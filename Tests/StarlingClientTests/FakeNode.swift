import Foundation
import StarlingCore
import StarlingUV
import Synchronization

/// How a `FakeNode` answers. Services: `echo` answers OK with the payload, `fail` answers FAIL,
/// `nosuch` answers ERR NO_SERVICE, `slow` is never answered. PING, STATUS and SHARDS are answered
/// at once.
struct FakeBehavior: Sendable {
    /// Answers are held until this many jobs are held, then sent in a shuffled order.
    var answerBatch = 1
    /// Once this many jobs have been read on a connection, it is closed without answering any:
    /// a worker killed with jobs in flight.
    var closeAfterJobs: Int?
    /// Every answer is sent twice.
    var duplicateAnswers = false
    var seed: UInt64 = 1
    /// The token the node requires, as a node with `--client-token-file` does; nil welcomes any.
    var token: String?
    /// What `SHARDS` is answered: the node's service and these shards (`FakeNode.holdShards`
    /// changes them); nil answers `ERR - BAD_REQUEST`, as a worker older than the command does.
    var shards: KeyShardSet?
    var service = "echo"
}

/// A stand-in for a worker's job port: a StarlingUV TCP server on 127.0.0.1, port 0, on its own
/// loop thread. Everything it saw is readable from any thread.
final class FakeNode: Sendable {
    let address: SocketAddress

    struct Seen: Sendable {
        /// Every SUBMIT key read, in order, over all connections.
        var keys: [String] = []
        var connections = 0
        /// The most jobs held unanswered at once on one connection.
        var maxHeld = 0
        /// `AUTH` lines read, and how many were refused (or other commands before one).
        var auths = 0
        var refusals = 0
        /// `SHARDS` requests read.
        var shardsAsked = 0
    }

    private let waker: LoopWakeup.Waker
    private let stopFlag = Box(false)
    private let seenBox = Box(Seen())
    private let shardsBox: Box<KeyShardSet?>
    private let lifecycle = StartBox()

    init(_ behavior: FakeBehavior = FakeBehavior()) throws {
        let shardsBox = Box(behavior.shards)
        self.shardsBox = shardsBox
        Thread { [stopFlag, seenBox, lifecycle] in
            FakeNode.serve(behavior, started: lifecycle, stop: stopFlag, seen: seenBox, shards: shardsBox)
        }.start()
        (address, waker) = try lifecycle.wait().get()
    }

    /// What the node has seen so far.
    var seen: Seen { seenBox.value.withLock { $0 } }

    /// `SHARDS` is answered with `shards` from now on, as when a primary leases them anew.
    func holdShards(_ shards: KeyShardSet) {
        shardsBox.value.withLock { $0 = shards }
    }

    /// Closes every connection and the server and waits for the loop thread to end; idempotent.
    func stop() {
        stopFlag.value.withLock { $0 = true }
        if waker.wake() { lifecycle.waitFinished() }
    }

    private static func serve(
        _ behavior: FakeBehavior, started: StartBox, stop: Box<Bool>, seen: Box<Seen>, shards: Box<KeyShardSet?>
    ) {
        do throws(UVError) {
            let loop = try EventLoop()
            let server = try TCPServer(loop: loop)
            var connections: [FakeConnection] = []
            var random = SplitMix64(seed: behavior.seed)
            try server.bind(to: try SocketAddress(ip: "127.0.0.1", port: 0))
            try server.listen { result in
                guard case .success(let stream) = result else { return }
                seen.value.withLock { $0.connections += 1 }
                let connection = FakeConnection(stream: stream, behavior: behavior, seen: seen, shards: shards,
                                                seed: random.next())
                connections.append(connection)
                connection.start()
            }
            var wakeup: LoopWakeup?
            wakeup = try LoopWakeup(loop: loop) {
                guard stop.value.withLock({ $0 }) else { return }
                connections.forEach { $0.stream.close() }
                server.close()
                wakeup?.close()
            }
            started.report(.success((try server.localAddress, wakeup!.waker)))
            loop.run()
            wakeup = nil
            connections = []
            try loop.close()
            started.finish()
        } catch {
            started.report(.failure(error))
            started.finish()
        }
    }
}

/// One accepted connection of a `FakeNode`, on its loop thread.
private final class FakeConnection {
    let stream: TCPStream
    let behavior: FakeBehavior
    let seen: Box<FakeNode.Seen>
    let shards: Box<KeyShardSet?>
    var decoder = ClientRequestDecoder()
    var held: [ClientResponse] = []
    var jobsRead = 0
    var random: SplitMix64
    lazy var authentication = ClientAuthentication(required: behavior.token != nil)

    init(stream: TCPStream, behavior: FakeBehavior, seen: Box<FakeNode.Seen>, shards: Box<KeyShardSet?>, seed: UInt64) {
        self.stream = stream
        self.behavior = behavior
        self.seen = seen
        self.shards = shards
        self.random = SplitMix64(seed: seed)
    }

    func start() {
        try? stream.startReading { [self] event in
            guard case .bytes(let bytes) = event else {
                stream.close()
                return
            }
            decoder.append(bytes)
            while !stream.isClosed, let item = decoder.next() {
                let token = behavior.token
                switch authentication.step(item, accepts: { $0.value == token ?? $0.value }) {
                case .welcome:
                    seen.value.withLock { $0.auths += 1 }
                    try? stream.write(bytes: ClientResponse.welcome.encode())
                    continue
                case .refuse(let answer, _):
                    seen.value.withLock {
                        if case .request(.auth) = item { $0.auths += 1 }
                        $0.refusals += 1
                    }
                    try? stream.write(bytes: answer.encode())
                    stream.close()
                    return
                case .handle:
                    break
                }
                guard case .request(let request) = item else {
                    stream.close()
                    return
                }
                handle(request)
            }
        }
    }

    private func handle(_ request: ClientRequest) {
        switch request {
        case .auth:
            preconditionFailure("the authentication step answers AUTH")
        case .ping:
            send([.pong])
        case .status:
            send([.status(json: Array("{\"fake\":true}".utf8))])
        case .shards:
            seen.value.withLock { $0.shardsAsked += 1 }
            if let held = shards.value.withLock({ $0 }), let service = try? ServiceName(behavior.service) {
                send([.shards(service: service, shards: held)])
            } else {
                send([.error(key: nil, code: .badRequest, message: "unknown command 'SHARDS'")])
            }
        case .submit(let service, let key, let payload):
            jobsRead += 1
            seen.value.withLock { $0.keys.append(key.value) }
            if let limit = behavior.closeAfterJobs {
                if jobsRead >= limit { stream.close() }
                return  // a node about to die answers nothing
            }
            switch service.value {
            case "echo": held.append(.ok(key: key, result: payload))
            case "fail": held.append(.fail(key: key, text: Array("exit status 3".utf8)))
            case "nosuch": held.append(.error(key: key, code: .noService, message: "no such service"))
            default: return  // slow: never answered
            }
            let count = held.count
            seen.value.withLock { $0.maxHeld = max($0.maxHeld, count) }
            if held.count >= behavior.answerBatch {
                held.shuffle(using: &random)
                let answers = held
                held = []
                send(behavior.duplicateAnswers ? answers + answers : answers)
            }
        }
    }

    private func send(_ responses: [ClientResponse]) {
        try? stream.write(bytes: responses.flatMap { $0.encode() })
    }
}

/// A value shared between a test and a fake's loop thread.
final class Box<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}

/// Start-up and shut-down hand-shakes of a fake's loop thread.
private final class StartBox: Sendable {
    private let result = Mutex<Result<(SocketAddress, LoopWakeup.Waker), UVError>?>(nil)
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    func report(_ value: Result<(SocketAddress, LoopWakeup.Waker), UVError>) {
        result.withLock { $0 = value }
        started.signal()
    }

    func wait() -> Result<(SocketAddress, LoopWakeup.Waker), UVError> {
        started.wait()
        return result.withLock { $0! }
    }

    func finish() { finished.signal() }
    func waitFinished() { finished.wait() }
}

/// SplitMix64: seeded, so shuffles replay.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
