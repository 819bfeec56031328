/// Jobs over gearmand's binary protocol: `SUBMIT_JOB` (function, a unique id per job, payload),
/// `JOB_CREATED` matched to submits in the order sent, then `WORK_COMPLETE`/`WORK_FAIL`/
/// `WORK_EXCEPTION` matched by the job handle.
struct GearmanWire: LoadWire {
    let function: [UInt8]
    /// Slots whose SUBMIT_JOB awaits its JOB_CREATED, in the order sent (from `awaitingHead`).
    private var awaitingCreated: [Int] = []
    private var awaitingHead = 0
    /// Handle → slot, and the handle each slot's job got (indexed by slot).
    private var byHandle: [[UInt8]: Int] = [:]
    private var handles: [[UInt8]?] = []
    /// Slots whose job was given up before its JOB_CREATED: that handle is not recorded.
    private var forgotten: Set<Int> = []

    init(function: String) {
        self.function = Array(function.utf8)
    }

    mutating func appendSubmit(slot: Int, id: Int, sequence: UInt64, payload: [UInt8], to out: inout [UInt8]) {
        // A unique id per job: gearmand would coalesce jobs that share one.
        let unique = Array("s\(id)-\(sequence)".utf8)
        GearmanCodec.appendRequest(.submitJob, [function[...], unique[...], payload[...]], to: &out)
        awaitingCreated.append(slot)
        if handles.count <= slot { handles += Array(repeating: nil, count: slot + 1 - handles.count) }
    }

    mutating func nextEvent(_ socket: LoopbackSocket) throws(WireError) -> WireEvent? {
        guard let packet = try socket.bufferedPacket() else { return nil }
        switch packet.known {
        case .jobCreated:
            guard awaitingHead < awaitingCreated.count else {
                throw WireError("JOB_CREATED with no SUBMIT_JOB waiting for it")
            }
            let slot = awaitingCreated[awaitingHead]
            awaitingHead += 1
            if awaitingHead == awaitingCreated.count {
                awaitingCreated.removeAll(keepingCapacity: true)
                awaitingHead = 0
            }
            if forgotten.remove(slot) != nil { return .nothing }
            byHandle[packet.data] = slot
            handles[slot] = packet.data
            return .nothing
        case .workComplete, .workFail, .workException:
            let arguments = packet.arguments(2) ?? [packet.data[...], []]
            guard let slot = byHandle.removeValue(forKey: Array(arguments[0])) else { return .stray }
            handles[slot] = nil
            switch packet.known {
            case .workComplete: return .answered(slot: slot, sequence: nil, .ok(arguments[1]))
            case .workFail: return .answered(slot: slot, sequence: nil, .failed("WORK_FAIL"))
            default: return .answered(slot: slot, sequence: nil, .failed("WORK_EXCEPTION"))
            }
        case .error:
            let text = packet.arguments(2).map { $0.map { String(decoding: $0, as: UTF8.self) } } ?? []
            throw WireError("ERROR from gearmand: \(text.joined(separator: ": "))")
        default:
            return .nothing  // WORK_DATA, WORK_STATUS, WORK_WARNING, NOOP: nothing to do for these jobs.
        }
    }

    mutating func forget(slot: Int) {
        if slot < handles.count, let handle = handles[slot] {
            handles[slot] = nil
            byHandle[handle] = nil
        } else if awaitingCreated[awaitingHead...].contains(slot) {
            forgotten.insert(slot)
        }
    }

    mutating func reset() {
        awaitingCreated.removeAll(keepingCapacity: true)
        awaitingHead = 0
        byHandle.removeAll()
        handles = Array(repeating: nil, count: handles.count)
        forgotten.removeAll()
    }
}
