import Foundation

/// The answer to `STATUS`: a process's record of its peers as JSON (issue 2, item 6).
///
/// ```json
/// {"members":[{"address":"127.0.0.1:7946","epoch":3,"id":"0192f3a4-…","last_heard_ms":12,
///   "priority":0,"service":"echo","status":"primary",
///   "workload":{"backlog":0,"capacity":4,"running":1}}],
///  "rejected":{"bad_magic":3},"scaler":"0192f3a4-…","self":"0192f3a4-…"}
/// ```
///
/// The worker encodes it (`jsonBytes()`, keys sorted so the output is deterministic) and
/// `starling status` decodes it (`init(json:)`), which validates every field: hostile or
/// malformed JSON throws a `DecodingError`, never traps.
public struct StatusReport: Codable, Hashable, Sendable {
    /// One row of the record, the reporting process itself included.
    public struct Entry: Codable, Hashable, Sendable {
        public var id: NodeID
        public var service: ServiceName
        public var status: MemberStatus
        public var epoch: UInt64
        public var priority: Int32
        /// `host:port` (`[v6]:port` for IPv6), as `NodeAddress.description` writes it.
        public var address: String
        public var workload: Workload
        /// Milliseconds since the reporter last heard of this member; 0 for the reporter itself.
        public var lastHeardMs: Int64

        public init(
            id: NodeID, service: ServiceName, status: MemberStatus, epoch: UInt64, priority: Int32,
            address: String, workload: Workload, lastHeardMs: Int64
        ) {
            self.id = id
            self.service = service
            self.status = status
            self.epoch = epoch
            self.priority = priority
            self.address = address
            self.workload = workload
            self.lastHeardMs = lastHeardMs
        }

        private enum CodingKeys: String, CodingKey {
            case id, service, status, epoch, priority, address, workload
            case lastHeardMs = "last_heard_ms"
        }

        private enum WorkloadKeys: String, CodingKey {
            case running, capacity, backlog
            case jobTimeoutMs = "job_timeout_ms"
        }

        /// Longest `address` accepted when decoding (an IPv6 address with port is 48).
        public static let maxAddressLength = 256

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try decodeID(c, .id)
            let serviceText = try c.decode(String.self, forKey: .service)
            do {
                service = try ServiceName(serviceText)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .service, in: c, debugDescription: error.description)
            }
            let statusText = try c.decode(String.self, forKey: .status)
            guard let status = MemberStatus(name: statusText) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .status, in: c, debugDescription: "unknown status '\(statusText.prefix(64))'")
            }
            self.status = status
            epoch = try c.decode(UInt64.self, forKey: .epoch)
            priority = try c.decode(Int32.self, forKey: .priority)
            address = try c.decode(String.self, forKey: .address)
            guard !address.isEmpty, address.utf8.count <= Self.maxAddressLength else {
                throw DecodingError.dataCorruptedError(
                    forKey: .address, in: c, debugDescription: "address must be 1–\(Self.maxAddressLength) bytes")
            }
            let w = try c.nestedContainer(keyedBy: WorkloadKeys.self, forKey: .workload)
            workload = Workload(
                running: try w.decode(UInt32.self, forKey: .running),
                capacity: try w.decode(UInt32.self, forKey: .capacity),
                backlog: try w.decode(UInt32.self, forKey: .backlog),
                jobTimeoutMs: try w.decodeIfPresent(UInt32.self, forKey: .jobTimeoutMs) ?? 0)
            lastHeardMs = try c.decode(Int64.self, forKey: .lastHeardMs)
            guard lastHeardMs >= 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .lastHeardMs, in: c, debugDescription: "last_heard_ms is negative")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id.description, forKey: .id)
            try c.encode(service.value, forKey: .service)
            try c.encode(status.description, forKey: .status)
            try c.encode(epoch, forKey: .epoch)
            try c.encode(priority, forKey: .priority)
            try c.encode(address, forKey: .address)
            var w = c.nestedContainer(keyedBy: WorkloadKeys.self, forKey: .workload)
            try w.encode(workload.running, forKey: .running)
            try w.encode(workload.capacity, forKey: .capacity)
            try w.encode(workload.backlog, forKey: .backlog)
            try w.encode(workload.jobTimeoutMs, forKey: .jobTimeoutMs)
            try c.encode(lastHeardMs, forKey: .lastHeardMs)
        }
    }

    /// The reporting process.
    public var selfID: NodeID
    /// Every member of the record, the reporter included, ordered by service then id.
    public var members: [Entry]
    /// Input rejected so far, counted by reason (e.g. `bad_magic`); empty when none.
    public var rejected: [String: UInt64]
    /// The current scaler (the agents' primary), when one is known.
    public var scaler: NodeID?

    public init(selfID: NodeID, members: [Entry], rejected: [String: UInt64] = [:], scaler: NodeID? = nil) {
        self.selfID = selfID
        self.members = members
        self.rejected = rejected
        self.scaler = scaler
    }

    /// Builds the report from a process's record at monotonic time `nowMs`. `members` should hold
    /// the process's own entry too; its `last_heard_ms` is 0, the others' `nowMs - lastHeardMs`
    /// (never negative).
    public init(
        selfID: NodeID, members: [Member], nowMs: Int64, rejected: [String: UInt64] = [:], scaler: NodeID? = nil
    ) {
        let entries = members.map { member in
            Entry(
                id: member.id, service: member.service, status: member.status, epoch: member.epoch,
                priority: member.priority, address: member.address.description, workload: member.workload,
                lastHeardMs: member.id == selfID ? 0 : max(0, nowMs.subtractingReportingOverflow(member.lastHeardMs).partialValue))
        }
        self.init(
            selfID: selfID, members: entries.sorted { ($0.service, $0.id) < ($1.service, $1.id) },
            rejected: rejected, scaler: scaler)
    }

    /// The report's own entry, if the record held it.
    public var selfEntry: Entry? { members.first { $0.id == selfID } }

    // MARK: - JSON

    /// The JSON body of a `STATUS` answer: compact, keys sorted.
    public func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// Decodes a `STATUS` JSON body; throws on anything malformed.
    public init(json: some Collection<UInt8>) throws {
        self = try JSONDecoder().decode(StatusReport.self, from: Data(json))
    }

    private enum CodingKeys: String, CodingKey {
        case selfID = "self"
        case members, rejected, scaler
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        selfID = try decodeID(c, .selfID)
        members = try c.decode([Entry].self, forKey: .members)
        rejected = try c.decodeIfPresent([String: UInt64].self, forKey: .rejected) ?? [:]
        scaler = try c.contains(.scaler) && !c.decodeNil(forKey: .scaler) ? decodeID(c, .scaler) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(selfID.description, forKey: .selfID)
        try c.encode(members, forKey: .members)
        try c.encode(rejected, forKey: .rejected)
        try c.encodeIfPresent(scaler?.description, forKey: .scaler)
    }
}

private func decodeID<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> NodeID {
    let text = try c.decode(String.self, forKey: key)
    guard text.utf8.count <= 36, let id = NodeID(text) else {
        throw DecodingError.dataCorruptedError(
            forKey: key, in: c, debugDescription: "'\(text.prefix(40))' is not a node id")
    }
    return id
}
