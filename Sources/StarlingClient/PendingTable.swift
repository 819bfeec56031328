import DequeModule
import StarlingCore

/// The client's bookkeeping of unanswered calls, without I/O: which jobs are in flight (by key),
/// who waits for each, who waits for an in-flight slot, which PING/STATUS calls are outstanding,
/// and when each call times out. Operations return the continuations to resume and the jobs to
/// send; the engine does the resuming and the sending.
struct PendingTable {
    /// One job in flight: sent (or to be sent on the next connection) until answered.
    struct Job {
        let service: ServiceName
        let key: JobKey
        let payload: [UInt8]
        /// Order of admission, so resubmission after failover keeps the callers' order.
        let sequence: UInt64
        /// The caller that submitted it, and any attached since with the same key: kept apart
        /// so that the usual job, with one caller, allocates no list.
        var caller: UInt64
        var attached: [UInt64] = []

        var request: ClientRequest { .submit(service: service, key: key, payload: payload) }
    }

    enum Kind {
        case job(JobKey)
        /// Waiting for an in-flight slot.
        case waiting
        case ping
        case status
    }

    struct Caller {
        let reply: ReplyContinuation
        var kind: Kind
    }

    /// A continuation to resume with its result.
    typealias Resumption = (reply: ReplyContinuation, result: Result<Reply, StarlingClientError>)

    /// A request answered without a key, in the order sent: a caller's PING or STATUS, or the
    /// client's own SHARDS (which no caller waits for).
    enum ControlRequest: Equatable {
        case call(UInt64)
        case shards
    }

    /// What an `ERR -` refused.
    enum ControlRefusal {
        case call(Resumption)
        case shards
    }

    /// What became of a new call.
    enum Admission {
        /// A new job: send it.
        case send(Job)
        /// Attached to a job with the same key already in flight, or queued for a slot.
        case tracked
        /// Refused at once.
        case refused(StarlingClientError)
    }

    private struct Submission {
        let id: UInt64
        let service: ServiceName
        let key: JobKey
        let payload: [UInt8]
    }

    let maxInFlight: Int
    let maxWaiting: Int
    let timeoutMs: UInt64?

    private(set) var jobs: [JobKey: Job] = [:]
    private var callers: [UInt64: Caller] = [:]
    /// Callers waiting for an in-flight slot, oldest first; entries of callers gone (timed out,
    /// cancelled) are skipped when reached.
    private var waiting: Deque<Submission> = []
    private var waitingCount = 0
    /// PING, STATUS and SHARDS requests in the order sent; the node answers them in order.
    private var control: [ControlRequest] = []
    /// Deadlines in the order registered; with one timeout for all calls they are sorted.
    private var deadlines: Deque<(at: UInt64, id: UInt64)> = []
    private var nextSequence: UInt64 = 0

    init(maxInFlight: Int, maxWaiting: Int, timeoutMs: UInt64?) {
        self.maxInFlight = maxInFlight
        self.maxWaiting = maxWaiting
        self.timeoutMs = timeoutMs
    }

    /// Whether any call is unanswered.
    var isEmpty: Bool { callers.isEmpty }

    /// Calls not yet answered, of every kind.
    var callerCount: Int { callers.count }

    /// Jobs in flight in admission order, then the PING/STATUS calls in order: what to send on a
    /// new connection.
    func requestsToResend() -> [ClientRequest] {
        let submits = jobs.values.sorted { $0.sequence < $1.sequence }.map(\.request)
        // A SHARDS is not sent again: the engine asks a new connection afresh (`askedShardsFirst`).
        let controls = control.compactMap { request -> ClientRequest? in
            guard case .call(let id) = request else { return nil }
            switch callers[id]?.kind {
            case .ping: return .ping
            case .status: return .status
            default: return nil
            }
        }
        return submits + controls
    }

    // MARK: - New calls

    mutating func submit(id: UInt64, service: ServiceName, key: JobKey, payload: [UInt8],
                         reply: ReplyContinuation, now: UInt64) -> Admission {
        if jobs[key] == nil && jobs.count >= maxInFlight {
            guard waitingCount < maxWaiting else {
                return .refused(.overloaded(inFlight: jobs.count, waiting: waitingCount))
            }
            waiting.append(Submission(id: id, service: service, key: key, payload: payload))
            waitingCount += 1
            register(id, Caller(reply: reply, kind: .waiting), now: now)
            return .tracked
        }
        register(id, Caller(reply: reply, kind: .job(key)), now: now)
        return attach(id: id, service: service, key: key, payload: payload)
    }

    mutating func control(id: UInt64, status: Bool, reply: ReplyContinuation, now: UInt64) {
        register(id, Caller(reply: reply, kind: status ? .status : .ping), now: now)
        control.append(.call(id))
    }

    /// Whether a `SHARDS` is sent and not answered.
    var isAskingShards: Bool { control.contains(.shards) }

    /// The engine sent `SHARDS` after what is outstanding.
    mutating func askedShards() {
        control.append(.shards)
    }

    /// The engine sent `SHARDS` first on a new connection, before the calls it resends: one from
    /// an earlier connection is not answered any more.
    mutating func askedShardsFirst() {
        control.removeAll { $0 == .shards }
        control.insert(.shards, at: 0)
    }

    private mutating func register(_ id: UInt64, _ caller: Caller, now: UInt64) {
        callers[id] = caller
        if let timeoutMs { deadlines.append((now + timeoutMs, id)) }
    }

    private mutating func attach(id: UInt64, service: ServiceName, key: JobKey, payload: [UInt8]) -> Admission {
        if jobs[key] != nil {
            jobs[key]!.attached.append(id)
            return .tracked
        }
        let job = Job(service: service, key: key, payload: payload, sequence: nextSequence, caller: id)
        nextSequence += 1
        jobs[key] = job
        return .send(job)
    }

    // MARK: - Answers

    /// The answer for `key` reached every caller attached to it; a key not in flight (already
    /// answered, timed out, cancelled) is dropped. Also returns the waiting jobs admitted to the
    /// freed slot.
    mutating func answer(key: JobKey, with result: Result<Reply, StarlingClientError>)
        -> (resume: [Resumption], send: [Job])
    {
        guard let job = jobs.removeValue(forKey: key) else { return ([], []) }
        var resume: [Resumption] = []
        resume.reserveCapacity(1 + job.attached.count)
        func resumeCaller(_ id: UInt64) {
            if let caller = callers.removeValue(forKey: id) { resume.append((caller.reply, result)) }
        }
        resumeCaller(job.caller)
        job.attached.forEach(resumeCaller)
        return (resume, admitWaiting())
    }

    /// The oldest outstanding PING (or STATUS) call, for a `PONG` (or `STATUS`) answer.
    mutating func answerControl(status: Bool, with reply: Reply) -> Resumption? {
        guard let index = control.firstIndex(where: { request in
            guard case .call(let id) = request else { return false }
            return if case .status = callers[id]?.kind { status } else { !status }
        }), case .call(let id) = control.remove(at: index) else { return nil }
        return callers.removeValue(forKey: id).map { ($0.reply, .success(reply)) }
    }

    /// A `SHARDS` answer: the oldest outstanding SHARDS is answered.
    mutating func answerShards() {
        if let index = control.firstIndex(of: .shards) { control.remove(at: index) }
    }

    /// An `ERR -`: the oldest outstanding PING, STATUS or SHARDS, if any, is the request it refuses.
    mutating func refuseControl(_ error: StarlingClientError) -> ControlRefusal? {
        guard !control.isEmpty else { return nil }
        switch control.removeFirst() {
        case .shards:
            return .shards
        case .call(let id):
            return callers.removeValue(forKey: id).map { .call(($0.reply, .failure(error))) }
        }
    }

    // MARK: - Calls that end without an answer

    /// Ends one call (cancelled, timed out) with `error`; a job left without callers is no longer
    /// tracked (its answer will be dropped) and its slot goes to a waiting caller.
    mutating func remove(id: UInt64, with error: StarlingClientError) -> (resume: Resumption?, send: [Job]) {
        guard let caller = callers.removeValue(forKey: id) else { return (nil, []) }
        var send: [Job] = []
        switch caller.kind {
        case .job(let key):
            guard var job = jobs[key] else { break }
            if job.caller == id {
                guard !job.attached.isEmpty else {
                    // No caller left: the job is no longer tracked and its slot is free.
                    jobs[key] = nil
                    send = admitWaiting()
                    break
                }
                job.caller = job.attached.removeFirst()
            } else {
                job.attached.removeAll { $0 == id }
            }
            jobs[key] = job
        case .waiting:
            waitingCount -= 1
        case .ping, .status:
            control.removeAll { $0 == .call(id) }
        }
        return ((caller.reply, .failure(error)), send)
    }

    /// Ends every call with `error` and forgets everything.
    mutating func removeAll(with error: StarlingClientError) -> [Resumption] {
        let resume = callers.values.map { ($0.reply, Result<Reply, StarlingClientError>.failure(error)) }
        self = PendingTable(maxInFlight: maxInFlight, maxWaiting: maxWaiting, timeoutMs: timeoutMs)
        return resume
    }

    /// Ends every call whose deadline is at or before `now` with `.timedOut`.
    mutating func expire(now: UInt64) -> (resume: [Resumption], send: [Job]) {
        var resume: [Resumption] = []
        var send: [Job] = []
        while let first = deadlines.first, first.at <= now {
            deadlines.removeFirst()
            let removed = remove(id: first.id, with: .timedOut(ms: timeoutMs ?? 0))
            if let one = removed.resume { resume.append(one) }
            send += removed.send
        }
        return (resume, send)
    }

    /// The earliest deadline of a call still unanswered.
    mutating func nextDeadline() -> UInt64? {
        while let first = deadlines.first {
            if callers[first.id] != nil { return first.at }
            deadlines.removeFirst()
        }
        return nil
    }

    /// Moves waiting callers into free slots, oldest first.
    private mutating func admitWaiting() -> [Job] {
        var send: [Job] = []
        while jobs.count < maxInFlight, let next = waiting.first {
            waiting.removeFirst()
            guard callers[next.id] != nil else { continue }  // gone while waiting
            waitingCount -= 1
            callers[next.id]!.kind = .job(next.key)
            if case .send(let job) = attach(id: next.id, service: next.service, key: next.key, payload: next.payload) {
                send.append(job)
            }
        }
        return send
    }
}
