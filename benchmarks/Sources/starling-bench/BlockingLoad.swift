import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a job's answer was, as a wire protocol reports it.
enum WireOutcome {
    case ok(ArraySlice<UInt8>)
    case failed(String)
}

/// One decoded answer from the server.
enum WireEvent {
    /// The answer to the job in flight on `slot` (an index into the connection's slots); with a
    /// `sequence`, only if it is that job's (else it is stray).
    case answered(slot: Int, sequence: UInt64?, WireOutcome)
    /// An answer for no job in flight (answered already, expired, or unknown).
    case stray
    /// Bookkeeping only (e.g. gearman's JOB_CREATED).
    case nothing
}

/// A job protocol spoken by `BlockingLoad`: how a job is sent and how answers are matched.
protocol LoadWire: Sendable {
    /// Appends the request for the job `sequence` of connection slot `slot` (global number `id`).
    mutating func appendSubmit(slot: Int, id: Int, sequence: UInt64, payload: [UInt8], to out: inout [UInt8])
    /// The next event already received, or nil if more bytes are needed.
    mutating func nextEvent(_ socket: LoopbackSocket) throws(WireError) -> WireEvent?
    /// The job in flight on `slot` was given up (expired): forget what maps answers to it.
    mutating func forget(slot: Int)
    /// The connection is gone: forget everything about it.
    mutating func reset()
    /// Runs once on each new connection, after `reset` and before the first submit (NATS says
    /// who it is and subscribes to its inbox here); throws if the connection is unusable.
    mutating func handshake(_ socket: LoopbackSocket) throws(WireError)
}

extension LoadWire {
    /// Gearman and Starling need nothing before the first submit.
    mutating func handshake(_ socket: LoopbackSocket) throws(WireError) {}
}

/// The closed-loop load over plain blocking sockets: `connections` connections (one thread
/// each; connection i to `ports[i mod ports.count]` on 127.0.0.1), slot i on connection i mod connections, each slot submitting its next job as soon as
/// the previous one is answered. Writes are batched: every submit caused by one read goes out in
/// one write. Measured like `LoadRun`.
///
/// When the server goes away, the jobs of that connection are lost (the client is told nothing
/// more about them; they are not resubmitted) and, after 20 ms, the connection is tried again
/// every 20 ms until the end; its slots then carry on with new jobs.
enum BlockingLoad {
    static func run<Wire: LoadWire>(ports: [UInt16], connections: Int, settings: LoadSettings, counters: LoadCounters,
                                    serverName: String, start: UInt64 = monotonicNs(),
                                    wire: @escaping @Sendable () -> Wire) async -> LoadResult {
        precondition(connections > 0 && !ports.isEmpty && settings.concurrency > 0)
        let measureFrom = start + UInt64(settings.warmupS * 1e9)
        let end = measureFrom + UInt64(settings.durationS * 1e9)
        let results = Mutex<[(Int, LoadResult)]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Atomic<Int>(connections)
            for index in 0..<connections {
                let slots = Array(stride(from: index, to: settings.concurrency, by: connections))
                let thread = Thread {
                    var connection = BlockingLoadConnection(
                        port: ports[index % ports.count], slots: slots, settings: settings, start: start, measureFrom: measureFrom,
                        end: end, counters: counters, serverName: serverName, wire: wire())
                    let result = connection.run()
                    results.withLock { $0.append((index, result)) }
                    if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.resume() }
                }
                thread.name = "load-\(index)"
                thread.start()
            }
        }
        var total = LoadResult()
        total.jobsPerEntry = Array(repeating: 0, count: connections)
        for (index, result) in results.withLock({ $0 }) {
            total.merge(result)
            total.jobsPerEntry[index] += result.measuredJobs
        }
        total.measuredS = Double(end - measureFrom) / 1e9
        counters.finished.store(true, ordering: .releasing)
        return total
    }
}

/// One connection's slots and jobs, run on its own thread.
private struct BlockingLoadConnection<Wire: LoadWire> {
    struct Slot {
        /// The slot's number in the whole load (for its payload stamp and job names).
        let id: Int
        /// The sequence number of the next job (the one in flight is `sequence - 1`).
        var sequence: UInt64 = 0
        var payload: [UInt8]
        var sentNs: UInt64 = 0
        var inFlight = false
        var startNs: UInt64
    }

    let port: UInt16
    let settings: LoadSettings
    let start: UInt64
    let measureFrom: UInt64
    let end: UInt64
    let counters: LoadCounters
    let serverName: String
    let expected: [UInt8]?
    var wire: Wire
    var slots: [Slot]
    var result = LoadResult()
    var out: [UInt8] = []

    init(port: UInt16, slots: [Int], settings: LoadSettings, start: UInt64, measureFrom: UInt64, end: UInt64,
         counters: LoadCounters, serverName: String, wire: Wire) {
        self.port = port
        self.settings = settings
        self.start = start
        self.measureFrom = measureFrom
        self.end = end
        self.counters = counters
        self.serverName = serverName
        self.wire = wire
        expected = settings.sleepMs.map { Array("slept \($0) ms".utf8) }
        self.slots = slots.map {
            Slot(id: $0, payload: settings.initialPayload(), startNs: start + settings.slotStartNs($0))
        }
        if settings.recordTimeline { result.timeline = Timeline(durationS: settings.timelineS) }
    }

    mutating func run() -> LoadResult {
        let lostAfterNs = settings.lostAfterMs * 1_000_000
        let drainEnd = end + lostAfterNs
        var connections = 0
        while monotonicNs() < end {
            let socket: LoopbackSocket
            do {
                socket = try LoopbackSocket(port: port)
            } catch {
                usleep(20_000)
                continue
            }
            connections += 1
            let connectedAt = monotonicNs()
            do throws(WireError) {
                try serve(socket, lostAfterNs: lostAfterNs, drainEnd: drainEnd)
                return result
            } catch {
                // The connection is gone, and with it every job it had in flight. A connection
                // made again while the dying server still had its listening socket is reset at
                // once: say so, as it makes the count exceed the jobs outstanding at the kill.
                let ageMs = (monotonicNs() - connectedAt) / 1_000_000
                let which = connections == 1 ? "" : ageMs < 100
                    ? " (a connection made again \(ageMs < 1 ? "under 1" : "\(ageMs)") ms before)" : " (a connection made again)"
                loseAll(reason: "lost (no answer): connection to \(serverName)\(which): \(error)")
                // Back off before connecting again: at once, the dying server's listening
                // socket may still accept, and reset, the new connection.
                usleep(20_000)
            }
        }
        return result
    }

    /// Submits and answers until `end`, then drains; throws when the connection fails.
    private mutating func serve(_ socket: LoopbackSocket, lostAfterNs: UInt64, drainEnd: UInt64) throws(WireError) {
        wire.reset()
        try wire.handshake(socket)
        while true {
            let now = monotonicNs()
            // Start every idle slot whose time has come.
            if now < end {
                for slot in slots.indices where !slots[slot].inFlight && slots[slot].startNs <= now {
                    submit(slot)
                }
            }
            expire(now: now, lostAfterNs: lostAfterNs)
            let busy = slots.contains { $0.inFlight }
            if now >= end && (!busy || now >= drainEnd) { break }
            if !out.isEmpty {
                try socket.send(out)
                out.removeAll(keepingCapacity: true)
            }
            guard try socket.fill(timeoutMs: 20) else { continue }
            while let event = try wire.nextEvent(socket) {
                handle(event)
            }
        }
        if !out.isEmpty { try socket.send(out) }
    }

    private mutating func submit(_ slot: Int) {
        var state = slots[slot]
        if settings.sleepMs == nil { LoadRun.stamp(&state.payload, slot: state.id, sequence: state.sequence) }
        wire.appendSubmit(slot: slot, id: state.id, sequence: state.sequence, payload: state.payload, to: &out)
        state.sequence += 1
        state.sentNs = monotonicNs()
        state.inFlight = true
        slots[slot] = state
        result.submitted += 1
    }

    private mutating func handle(_ event: WireEvent) {
        switch event {
        case .nothing:
            return
        case .stray:
            result.duplicates += 1
        case .answered(let slot, let sequence, let outcome):
            guard slots[slot].inFlight, sequence == nil || sequence == slots[slot].sequence - 1 else {
                result.duplicates += 1
                return
            }
            let now = monotonicNs()
            var problem: String?
            switch outcome {
            case .ok(let bytes):
                if !bytes.elementsEqual(expected ?? slots[slot].payload) {
                    problem = "OK with a wrong payload (\(bytes.count) bytes)"
                }
            case .failed(let text):
                problem = text
            }
            answered(slot, now: now, problem: problem)
            if now < end { submit(slot) }
        }
    }

    private mutating func answered(_ slot: Int, now: UInt64, problem: String?) {
        slots[slot].inFlight = false
        let sinceStartNs = now - start, sentNs = slots[slot].sentNs, window = measureFrom..<end
        result.timeline?.record(atNs: sinceStartNs)
        result.countAnswer(answeredNs: now, sentNs: sentNs, problem: problem, measured: window, counters: counters)
    }

    /// Jobs with no answer after `lostAfterNs` are lost; their slots move on.
    private mutating func expire(now: UInt64, lostAfterNs: UInt64) {
        for slot in slots.indices where slots[slot].inFlight && now >= slots[slot].sentNs + lostAfterNs {
            lose(slot, reason: "lost (no answer within \(settings.lostAfterMs) ms)")
            if now < end { submit(slot) }
        }
    }

    private mutating func lose(_ slot: Int, reason: String) {
        wire.forget(slot: slot)
        slots[slot].inFlight = false
        result.lost += 1
        result.totalAnswers += 1
        result.errorKinds[reason, default: 0] += 1
        counters.errors.add(1, ordering: .relaxed)
        let now = monotonicNs()
        if now >= measureFrom && now < end { result.measuredErrors += 1 }
    }

    private mutating func loseAll(reason: String) {
        for slot in slots.indices where slots[slot].inFlight { lose(slot, reason: reason) }
        wire.reset()
        out.removeAll(keepingCapacity: true)
    }
}
