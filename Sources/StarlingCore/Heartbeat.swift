/// The datagram every process sends each interval to every member it knows (docs/HANDBOOK.md, "heartbeat").
public struct Heartbeat: Hashable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// "Announce yourselves": the sender is being admitted; every receiver answers at once.
        public static let join = Flags(rawValue: 1 << 0)
        /// The sender is stopping gracefully: drop it now rather than after the failure timeout.
        public static let leaving = Flags(rawValue: 1 << 1)
        /// "Answer me at once": the sender has not heard from the receiver for a while.
        public static let probe = Flags(rawValue: 1 << 2)
        /// The sender is draining (SIGTERM): it stays in the record but is no candidate and takes no work.
        public static let draining = Flags(rawValue: 1 << 3)
        public static let known: Flags = [.join, .leaving, .probe, .draining]
    }

    /// News of a third member, relayed so that members learn of each other (discovery), a member
    /// stays alive in every record as long as anyone hears it (robust to packet loss), and a member
    /// that died or left leaves every record within a few intervals (docs/HANDBOOK.md, "Membership",
    /// "gossip"). With `state`, a receiver that does not hear the member itself may enter it in its
    /// record (second-hand); without, the entry only refreshes a member already there.
    public struct Gossip: Hashable, Sendable {
        public struct Flags: OptionSet, Hashable, Sendable {
            public let rawValue: UInt8
            public init(rawValue: UInt8) { self.rawValue = rawValue }

            /// The relaying process dropped the member as dead or gone (it timed out there, said
            /// `leaving`, or the relayer heard so first-hand): `sequence` is the last heard of it.
            public static let dead = Flags(rawValue: 1 << 0)
            /// The member is draining or leaving: no candidate, no slots.
            public static let draining = Flags(rawValue: 1 << 1)
            /// An indirect probe request (SWIM's ping-req, docs/HANDBOOK.md, "indirect probe"): the
            /// sender, a deputy, has not heard the member for two intervals and asks the receiver to
            /// check it and vouch for it. Not news: the entry's sequence and state teach nothing.
            /// At most `HeartbeatCodec.maxSuspectEntries` in a heartbeat.
            public static let suspect = Flags(rawValue: 1 << 2)
            public static let known: Flags = [.dead, .draining, .suspect]
        }

        /// What the member said of itself in its last heartbeat the relayer knows of.
        public struct State: Hashable, Sendable {
            public var service: ServiceName
            public var status: MemberStatus
            public var priority: Int32
            public var epoch: UInt64
            public var workload: Workload

            public init(service: ServiceName, status: MemberStatus, priority: Int32, epoch: UInt64, workload: Workload) {
                self.service = service
                self.status = status
                self.priority = priority
                self.epoch = epoch
                self.workload = workload
            }
        }

        public var id: NodeID
        /// The newest heartbeat sequence the relaying process knows of that member: heard from it
        /// directly where it hears the member itself, else as relayed to it.
        public var sequence: UInt64
        public var address: NodeAddress
        public var flags: Flags
        public var state: State?

        public init(id: NodeID, sequence: UInt64, address: NodeAddress, flags: Flags = [], state: State? = nil) {
            self.id = id
            self.sequence = sequence
            self.address = address
            self.flags = flags
            self.state = state
        }
    }

    public var sender: NodeID
    public var service: ServiceName
    public var status: MemberStatus
    public var priority: Int32
    /// The sender's epoch if it is primary, else the highest epoch it has seen for its service.
    public var epoch: UInt64
    public var workload: Workload
    /// Where the sender listens (UDP heartbeats and TCP jobs).
    public var address: NodeAddress
    public var flags: Flags
    /// Increases with every heartbeat the sender emits; orders its news.
    public var sequence: UInt64
    public var gossip: [Gossip]
    /// Room for an authentication tag (a later issue fills it); empty means none.
    public var authTag: [UInt8]

    public init(
        sender: NodeID, service: ServiceName, status: MemberStatus, priority: Int32, epoch: UInt64,
        workload: Workload, address: NodeAddress, flags: Flags, sequence: UInt64,
        gossip: [Gossip] = [], authTag: [UInt8] = []
    ) {
        self.sender = sender
        self.service = service
        self.status = status
        self.priority = priority
        self.epoch = epoch
        self.workload = workload
        self.address = address
        self.flags = flags
        self.sequence = sequence
        self.gossip = gossip
        self.authTag = authTag
    }
}
