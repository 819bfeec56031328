import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The closed-loop load against gearmand: `connections` client connections (one thread each),
/// slot i on connection i mod connections, each slot submitting its next job (SUBMIT_JOB with a
/// unique id of its own) as soon as the previous one is answered. Writes are batched: every
/// submit caused by one read goes out in one write. Measured like `LoadRun`.
///
/// When gearmand goes away, the jobs of that connection are lost (a gearman client is told
/// nothing more about them; they are not resubmitted) and, after 20 ms, the connection is made
/// again every 20 ms until the end; its slots then carry on with new jobs.
enum GearmanLoad {
    static func run(port: UInt16, connections: Int, settings: LoadSettings, counters: LoadCounters,
                    start: UInt64 = monotonicNs()) async -> LoadResult {
        precondition(connections > 0 && settings.concurrency > 0)
        let measureFrom = start + UInt64(settings.warmupS * 1e9)
        let end = measureFrom + UInt64(settings.durationS * 1e9)
        let results = Mutex<[(Int, LoadResult)]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Atomic<Int>(connections)
            for index in 0..<connections {
                let slots = Array(stride(from: index, to: settings.concurrency, by: connections))
                let thread = Thread {
                    var connection = GearmanLoadConnection(
                        port: port, slots: slots, settings: settings, start: start, measureFrom: measureFrom,
                        end: end, counters: counters)
                    let result = connection.run()
                    results.withLock { $0.append((index, result)) }
                    if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.resume() }
                }
                thread.name = "gearman-client-\(index)"
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

/// One client connection's slots and jobs, run on its own thread.
private struct GearmanLoadConnection {
    struct Slot {
        /// The slot's number in the whole load (for its payload stamp and unique ids).
        let id: Int
        var sequence: UInt64 = 0
        var payload: [UInt8]
        var sentNs: UInt64 = 0
        /// The handle of its job in flight, once JOB_CREATED named it.
        var handle: [UInt8]?
        var inFlight = false
        var startNs: UInt64
    }

    let port: UInt16
    let settings: LoadSettings
    let start: UInt64
    let measureFrom: UInt64
    let end: UInt64
    let counters: LoadCounters
    let expected: [UInt8]?
    let function: [UInt8]
    /// This connection's slots; `awaitingCreated` and `byHandle` hold indices into it.
    var slots: [Slot] = []
    /// Slots whose SUBMIT_JOB awaits its JOB_CREATED, in the order sent.
    var awaitingCreated: [Int] = []
    var awaitingHead = 0
    var byHandle: [[UInt8]: Int] = [:]
    var result = LoadResult()
    var out: [UInt8] = []

    init(port: UInt16, slots: [Int], settings: LoadSettings, start: UInt64, measureFrom: UInt64, end: UInt64,
         counters: LoadCounters) {
        self.port = port
        self.settings = settings
        self.start = start
        self.measureFrom = measureFrom
        self.end = end
        self.counters = counters
        expected = settings.sleepMs.map { Array("slept \($0) ms".utf8) }
        function = Array((settings.sleepMs == nil ? "echo" : "sleep").utf8)
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
            let socket: GearmanSocket
            do {
                socket = try GearmanSocket(port: port)
            } catch {
                usleep(20_000)
                continue
            }
            connections += 1
            let connectedAt = monotonicNs()
            do throws(GearmanProtocolError) {
                try serve(socket, lostAfterNs: lostAfterNs, drainEnd: drainEnd)
                return result
            } catch {
                // The connection is gone, and with it every job it had in flight. A connection
                // made again while the dying server still had its listening socket is reset at
                // once: say so, as it makes the count exceed the jobs outstanding at the kill.
                let ageMs = (monotonicNs() - connectedAt) / 1_000_000
                let which = connections == 1 ? "" : ageMs < 100
                    ? " (a connection made again \(ageMs < 1 ? "under 1" : "\(ageMs)") ms before)" : " (a connection made again)"
                loseAll(reason: "lost (no answer): connection to gearmand\(which): \(error)")
                // Back off before connecting again: at once, the dying server's listening
                // socket may still accept, and reset, the new connection.
                usleep(20_000)
            }
        }
        return result
    }

    /// Submits and answers until `end`, then drains; throws when the connection fails.
    private mutating func serve(_ socket: GearmanSocket, lostAfterNs: UInt64, drainEnd: UInt64) throws(GearmanProtocolError) {
        awaitingCreated.removeAll(keepingCapacity: true)
        awaitingHead = 0
        while true {
            let now = monotonicNs()
            // Start every idle slot whose time has come.
            if now < end {
                for slot in slots.indices where !slots[slot].inFlight && slots[slot].startNs <= now {
                    submit(slot, now: now)
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
            while let packet = try socket.bufferedPacket() {
                try handle(packet)
            }
        }
        if !out.isEmpty { try socket.send(out) }
    }

    private mutating func submit(_ slot: Int, now: UInt64) {
        var state = slots[slot]
        if settings.sleepMs == nil { LoadRun.stamp(&state.payload, slot: state.id, sequence: state.sequence) }
        // A unique id per job: gearmand would coalesce jobs that share one.
        let unique = Array("s\(state.id)-\(state.sequence)".utf8)
        state.sequence += 1
        state.sentNs = monotonicNs()
        state.inFlight = true
        state.handle = nil
        slots[slot] = state
        GearmanCodec.appendRequest(.submitJob, [function[...], unique[...], state.payload[...]], to: &out)
        awaitingCreated.append(slot)
        result.submitted += 1
    }

    private mutating func handle(_ packet: GearmanPacket) throws(GearmanProtocolError) {
        switch packet.known {
        case .jobCreated:
            guard awaitingHead < awaitingCreated.count else {
                throw GearmanProtocolError("JOB_CREATED with no SUBMIT_JOB waiting for it")
            }
            let slot = awaitingCreated[awaitingHead]
            awaitingHead += 1
            if awaitingHead == awaitingCreated.count {
                awaitingCreated.removeAll(keepingCapacity: true)
                awaitingHead = 0
            }
            // A slot whose job expired before its JOB_CREATED has moved on: forget the handle.
            guard slots[slot].inFlight, slots[slot].handle == nil else { return }
            slots[slot].handle = packet.data
            byHandle[packet.data] = slot
        case .workComplete, .workFail, .workException:
            let arguments = packet.arguments(2) ?? [packet.data[...], []]
            let handle = Array(arguments[0])
            guard let slot = byHandle.removeValue(forKey: handle) else {
                result.duplicates += 1
                return
            }
            let now = monotonicNs()
            var problem: String?
            if packet.known == .workComplete {
                if !arguments[1].elementsEqual(expected ?? slots[slot].payload) {
                    problem = "WORK_COMPLETE with a wrong payload (\(arguments[1].count) bytes)"
                }
            } else {
                problem = packet.known == .workFail ? "WORK_FAIL" : "WORK_EXCEPTION"
            }
            answered(slot, now: now, problem: problem)
            if now < end { submit(slot, now: now) }
        case .error:
            let text = packet.arguments(2).map { $0.map { String(decoding: $0, as: UTF8.self) } } ?? []
            throw GearmanProtocolError("ERROR from gearmand: \(text.joined(separator: ": "))")
        default:
            return  // WORK_DATA, WORK_STATUS, WORK_WARNING, NOOP: nothing to do for echo.
        }
    }

    private mutating func answered(_ slot: Int, now: UInt64, problem: String?) {
        slots[slot].inFlight = false
        slots[slot].handle = nil
        result.totalAnswers += 1
        result.timeline?.record(atNs: now - start)
        counters.answers.add(1, ordering: .relaxed)
        let measured = now >= measureFrom && now < end
        if let problem {
            result.errorKinds[problem, default: 0] += 1
            counters.errors.add(1, ordering: .relaxed)
            if measured { result.measuredErrors += 1 }
        } else if measured {
            _ = result.latencyUs.record(max(1, (now - slots[slot].sentNs) / 1_000))
            result.measuredJobs += 1
        }
    }

    /// Jobs with no answer after `lostAfterNs` are lost; their slots move on.
    private mutating func expire(now: UInt64, lostAfterNs: UInt64) {
        for slot in slots.indices where slots[slot].inFlight && now >= slots[slot].sentNs + lostAfterNs {
            lose(slot, reason: "lost (no answer within \(settings.lostAfterMs) ms)")
            if now < end { submit(slot, now: now) }
        }
    }

    private mutating func lose(_ slot: Int, reason: String) {
        if let handle = slots[slot].handle { byHandle.removeValue(forKey: handle) }
        slots[slot].inFlight = false
        slots[slot].handle = nil
        result.lost += 1
        result.totalAnswers += 1
        result.errorKinds[reason, default: 0] += 1
        counters.errors.add(1, ordering: .relaxed)
        if monotonicNs() >= measureFrom && monotonicNs() < end { result.measuredErrors += 1 }
    }

    private mutating func loseAll(reason: String) {
        for slot in slots.indices where slots[slot].inFlight { lose(slot, reason: reason) }
        byHandle.removeAll()
        awaitingCreated.removeAll()
        awaitingHead = 0
        out.removeAll(keepingCapacity: true)
    }
}
