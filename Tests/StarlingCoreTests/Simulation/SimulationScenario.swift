import StarlingCore
import StarlingTestSupport

/// What one seed runs: the cluster's shape, its clients and the faults it suffers. Drawn from the
/// seed ("swarm" testing: every run gets its own mix of faults).
struct SimulationScenario: CustomStringConvertible {
    enum Kind: String { case chaos, stability }

    var kind: Kind
    var processCount: Int
    var services: [ServiceName]
    var priorities: [Int32]
    var intervalMs: Int64 = 100
    var lossRate: Double
    var duplicateRate: Double
    var minDelayMs: Int64
    var maxDelayMs: Int64
    /// Faults happen only before this time; afterwards the network is healed and must converge.
    var faultsEndMs: Int64
    var endMs: Int64
    var faults: [(atMs: Int64, fault: Fault)]
    /// Clients, each with its own pipeline depth and number of jobs to submit.
    var clients: [ClientPlan] = []
    /// Bytes a peer link holds in flight before the sender's frames are dropped (the shell's
    /// buffer limit); most scenarios never reach it, some reach it often.
    var linkBufferBytes = Int.max
    /// Frames on a link take this long at least; a stalled link much longer.
    var frameDelayMs: ClosedRange<Int64> = 0...2
    /// How often the properties that read every record (1, 4, and the stability check) are
    /// checked: 0 after every tick; a large cluster every this many ms, as each check reads
    /// every record (property 2 and the job checks still run after every step).
    var recordCheckEveryMs: Int64 = 0

    struct ClientPlan {
        var jobs: Int
        var pipeline: Int
        var startMs: Int64
        /// The entry node it connects to first; nil: one drawn at random.
        var entry: Int? = nil
    }

    enum Fault {
        case crash(slot: Int)
        case restart(slot: Int)
        case pause(slot: Int, forMs: Int64)
        case partition(sideA: Set<Int>)
        case heal
        /// Several processes that were not running start at once.
        case joinBurst(slots: [Int])
        /// Every process that is down starts again.
        case restartAllDown
        /// Whoever is the primary of the slot's service then crashes (it may be in mid-dispatch).
        case crashPrimary(ofSlot: Int)
        /// The entry node with the most clients then crashes (with jobs waiting for answers).
        case crashBusiestEntry
        /// The peer link between two processes breaks: frames in flight either way are lost.
        case breakLink(Int, Int)
        /// The link from one process to another delivers nothing for a while, then all of it late.
        case stallLink(from: Int, to: Int, forMs: Int64)
        /// What is in flight on the link from one process to another vanishes and neither end is
        /// told, as when a connection dies half-open: only overdue resends (`JobOverdue`) recover it.
        case loseSilently(from: Int, to: Int)
        /// A graceful stop: the process drains, then leaves.
        case drain(slot: Int)
        /// Forged heartbeats (issue 10, item 4), reaching `victims` only: they drop a live member
        /// from some records, or fence its own heartbeats out. A claim to be primary with a huge
        /// epoch and sequence, in the name of the primary of the slot's service (`ofPrimary`) or of
        /// the slot's process.
        case forgePrimaryClaim(ofSlot: Int, ofPrimary: Bool, victims: [Int], epoch: UInt64, sequence: UInt64)
        /// A `leaving` heartbeat with a huge sequence in the name of a live standby of the slot's service.
        case forgeLeave(ofSlot: Int, victims: [Int], sequence: UInt64)
        /// A gossip entry with a huge sequence about the slot's process, in a heartbeat that seems to
        /// come from another process (its next one, tampered with).
        case forgeGossip(about: Int, victims: [Int], sequence: UInt64)
    }

    var suspectAfterMs: Int64 { MembershipConfig(service: services[0], address: .ipv4(127, 0, 0, 1, port: 1)).suspectAfterMs }

    var description: String {
        "\(kind.rawValue): \(processCount) processes, services \(services.map(\.value)), loss \(Int(lossRate * 100))%, "
            + "dup \(Int(duplicateRate * 100))%, delay \(minDelayMs)–\(maxDelayMs) ms, \(faults.count) faults until \(faultsEndMs) ms, end \(endMs) ms, "
            + "\(clients.count) clients (\(clients.map(\.jobs).reduce(0, +)) jobs), link buffer \(linkBufferBytes == .max ? "unbounded" : "\(linkBufferBytes) B")"
    }

    /// Processes crash, restart, pause (shorter and longer than the timeout), partition and heal,
    /// join in bursts, over a lossy, duplicating, reordering network.
    static func chaos(_ rng: inout SeededRandom, maxProcesses: Int) -> SimulationScenario {
        let count = Int.random(in: 2...maxProcesses, using: &rng)
        let serviceCount = Int.random(in: 1...min(3, count), using: &rng)
        let names = ["echo", "resize", "sha256"].prefix(serviceCount).map { try! ServiceName($0) }
        var scenario = SimulationScenario(
            kind: .chaos, processCount: count,
            services: (0..<count).map { names[$0 % serviceCount] },
            priorities: (0..<count).map { _ in rng.chance(0.2) ? Int32.random(in: 1...3, using: &rng) : 0 },
            lossRate: [0, 0, 0.05, 0.1, 0.3].randomElement(using: &rng)!,
            duplicateRate: rng.chance(0.3) ? 0.05 : 0,
            minDelayMs: 1, maxDelayMs: [2, 10, 30].randomElement(using: &rng)!,
            faultsEndMs: 0, endMs: 0, faults: [])
        // A burst of late joiners, unless the cluster is tiny.
        let lateJoiners = count >= 4 && rng.chance(0.5) ? Array((count - count / 3)..<count) : []
        var running = Set(0..<count).subtracting(lateJoiners)
        var t: Int64 = 2_000
        if !lateJoiners.isEmpty { scenario.faults.append((t, .joinBurst(slots: lateJoiners))) }
        running.formUnion(lateJoiners)
        var partitioned = false
        for _ in 0..<Int.random(in: 2...8, using: &rng) {
            t += Int64.random(in: 200...2_000, using: &rng)
            let slot = Int.random(in: 0..<count, using: &rng)
            switch Int.random(in: 0..<11, using: &rng) {
            case 0 where running.contains(slot):
                scenario.faults.append((t, .crash(slot: slot)))
                running.remove(slot)
            case 6:
                // Resolved when it happens: the primary may be any slot of that service by then.
                scenario.faults.append((t, .crashPrimary(ofSlot: slot)))
            case 7:
                scenario.faults.append((t, .crashBusiestEntry))
            case 8:
                scenario.faults.append((t, .breakLink(slot, Int.random(in: 0..<count, using: &rng))))
            case 9:
                scenario.faults.append((t, .stallLink(from: slot, to: Int.random(in: 0..<count, using: &rng),
                                                      forMs: Int64.random(in: 100...1_500, using: &rng))))
            case 10 where running.contains(slot):
                scenario.faults.append((t, .drain(slot: slot)))
                running.remove(slot)
            case 1 where !running.contains(slot):
                scenario.faults.append((t, .restart(slot: slot)))
                running.insert(slot)
            case 2:
                let pause = rng.chance(0.5) ? Int64.random(in: 50...150, using: &rng) : Int64.random(in: 500...2_000, using: &rng)
                scenario.faults.append((t, .pause(slot: slot, forMs: pause)))
            case 3 where !partitioned && count >= 3:
                let side = Set((0..<count).filter { _ in rng.chance(0.5) })
                scenario.faults.append((t, .partition(sideA: side)))
                partitioned = true
            case 4 where partitioned:
                scenario.faults.append((t, .heal))
                partitioned = false
            default:
                break
            }
        }
        // Every crashed process comes back (a targeted crash may have hit any slot, so all are
        // restarted that are down then), so the liveness phase sees the full cluster.
        t += 500
        if partitioned { scenario.faults.append((t, .heal)) }
        scenario.faults.append((t, .restartAllDown))
        scenario.faultsEndMs = t
        scenario.endMs = t + livenessMs
        scenario.drawJobs(&rng)
        // Forgeries from a generator of their own, drawn last: every other draw of a seed is as it was.
        var forging = rng.fork()
        if forging.chance(0.5) {
            for _ in 0..<Int.random(in: 1...3, using: &forging) {
                scenario.faults.append((Int64.random(in: 2_000...t, using: &forging), forgery(&forging, processCount: count)))
            }
        }
        // Silent losses likewise from a generator of their own.
        var vanishing = rng.fork()
        if vanishing.chance(0.3) {
            for _ in 0..<Int.random(in: 1...3, using: &vanishing) {
                let from = Int.random(in: 0..<count, using: &vanishing), to = Int.random(in: 0..<count, using: &vanishing)
                scenario.faults.append((Int64.random(in: 2_000...t, using: &vanishing), .loseSilently(from: from, to: to)))
            }
        }
        return scenario
    }

    /// One forged heartbeat of a kind drawn at random, to a random set of processes.
    private static func forgery(_ rng: inout SeededRandom, processCount count: Int) -> Fault {
        let slot = Int.random(in: 0..<count, using: &rng)
        var victims = (0..<count).filter { $0 != slot && rng.chance(0.5) }
        if victims.isEmpty { victims = [(slot + 1) % count] }
        // Huge: far above anything real, now and then the very top of the range.
        func huge(_ rng: inout SeededRandom) -> UInt64 { rng.chance(0.2) ? .max : UInt64.random(in: 1 << 32...1 << 62, using: &rng) }
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            return .forgePrimaryClaim(ofSlot: slot, ofPrimary: rng.chance(0.7), victims: victims,
                                      epoch: UInt64.random(in: 1 << 20...1 << 40, using: &rng), sequence: huge(&rng))
        case 1: return .forgeLeave(ofSlot: slot, victims: victims, sequence: huge(&rng))
        default: return .forgeGossip(about: slot, victims: victims, sequence: huge(&rng))
        }
    }

    /// The shape of the scripted scenarios: three `echo` processes on a clean network, slot 0 the
    /// primary (the highest priority), every job answered within `livenessMs` of the last fault.
    private static func threeEchoes(faultsEndMs: Int64, maxDelayMs: Int64, faults: [(atMs: Int64, fault: Fault)]) -> SimulationScenario {
        let echo = try! ServiceName("echo")
        return SimulationScenario(
            kind: .chaos, processCount: 3, services: [echo, echo, echo], priorities: [3, 0, 0],
            lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: maxDelayMs,
            faultsEndMs: faultsEndMs, endMs: faultsEndMs + livenessMs, faults: faults)
    }

    /// The stall of issue 9: an entry node's link to the primary stalls while a pipelined client
    /// submits through it, so frames pile up to the link's buffer limit and the shell drops them.
    /// Before the engine took dropped frames as an input, those jobs were never answered.
    static func frameDropStall() -> SimulationScenario {
        var scenario = threeEchoes(
            faultsEndMs: 6_000, maxDelayMs: 2,
            faults: [(1_100, .stallLink(from: 1, to: 0, forMs: 800)), (2_000, .stallLink(from: 0, to: 1, forMs: 800))])
        scenario.clients = [ClientPlan(jobs: 300, pipeline: 64, startMs: 1_000, entry: 1)]
        scenario.linkBufferBytes = 600
        return scenario
    }

    /// The fence under pressure: the primary (slot 0, which is also an entry node with a
    /// pipelined client) pauses past the failure timeout, the others elect a primary at a newer
    /// epoch, and when it wakes it may still dispatch under its old epoch before it hears of the
    /// new one. Its standbys have seen the new epoch and must decline those dispatches.
    static func stalePrimaryWakesUp() -> SimulationScenario {
        var scenario = threeEchoes(faultsEndMs: 4_000, maxDelayMs: 5, faults: [(2_000, .pause(slot: 0, forMs: 1_200))])
        scenario.clients = [
            ClientPlan(jobs: 400, pipeline: 32, startMs: 1_000, entry: 0),
            ClientPlan(jobs: 400, pipeline: 32, startMs: 1_000, entry: 1),
        ]
        return scenario
    }

    /// Links that break with frames in flight, while a pipelined client keeps an entry node busy:
    /// forwards (entry to primary), dispatches (primary to standby) and results are lost with the
    /// connection, and each end must ask again for what it waited on.
    static func linksBreakMidDispatch() -> SimulationScenario {
        var faults: [(atMs: Int64, fault: Fault)] = []
        for at in stride(from: Int64(1_200), to: 3_000, by: 300) {
            faults.append((at, .breakLink(1, 0)))
            faults.append((at + 150, .breakLink(0, 2)))
        }
        var scenario = threeEchoes(faultsEndMs: 3_000, maxDelayMs: 5, faults: faults)
        scenario.clients = [ClientPlan(jobs: 600, pipeline: 64, startMs: 1_000, entry: 1)]
        scenario.frameDelayMs = 1...20
        return scenario
    }

    /// Forged heartbeats of issue 10 that drop live members from records: a standby said to leave,
    /// told to the primary only (before the sequence fence was bounded, the primary dropped the
    /// standby's own heartbeats for minutes, the standby took it for dead and became a second
    /// primary); the primary said to claim a huge epoch, told to both standbys; gossip with a huge
    /// sequence; a standby said to be primary, told to the primary. Pipelined clients throughout.
    static func forgedRecords() -> SimulationScenario {
        let huge = UInt64(1) << 60
        var scenario = threeEchoes(faultsEndMs: 6_500, maxDelayMs: 5, faults: [
            (1_500, .forgeLeave(ofSlot: 1, victims: [0], sequence: huge)),
            (3_000, .forgePrimaryClaim(ofSlot: 0, ofPrimary: true, victims: [1, 2], epoch: 1 << 30, sequence: huge)),
            (4_500, .forgeGossip(about: 2, victims: [0, 1], sequence: .max)),
            (5_500, .forgePrimaryClaim(ofSlot: 2, ofPrimary: false, victims: [0], epoch: 1 << 31, sequence: .max)),
        ])
        scenario.clients = [
            ClientPlan(jobs: 300, pipeline: 16, startMs: 1_000, entry: 0),
            ClientPlan(jobs: 300, pipeline: 16, startMs: 1_000, entry: 1),
        ]
        return scenario
    }

    /// Issue 13: `count` members of four services join through one seed within 350 ms, settle,
    /// the primary of one service is killed and a member of another service drains, with
    /// clients submitting throughout; the killed process comes back. A lossless network with a
    /// little delay: what it shows is that membership converges and fails over in bound at a size
    /// where heartbeating everyone would be 10⁶ datagrams an interval.
    static func large(_ rng: inout SeededRandom, count: Int = 1_000) -> SimulationScenario {
        let names = ["echo", "resize", "sha256", "thumb"].map { try! ServiceName($0) }
        var scenario = SimulationScenario(
            kind: .chaos, processCount: count,
            services: (0..<count).map { names[$0 % names.count] },
            priorities: (0..<count).map { _ in rng.chance(0.01) ? 1 : 0 },
            lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 5,
            faultsEndMs: 0, endMs: 0, faults: [])
        let killed = Int.random(in: 0..<names.count, using: &rng)
        let drained = (killed + 1) % names.count
        scenario.faults = [
            (3_000, .crashPrimary(ofSlot: killed)),
            (3_500, .drain(slot: drained)),
            (4_500, .restartAllDown),
        ]
        scenario.faultsEndMs = 4_500
        scenario.endMs = 4_500 + livenessMs
        scenario.clients = (0..<4).map { _ in
            ClientPlan(jobs: 40, pipeline: 4, startMs: Int64.random(in: 1_500...2_500, using: &rng))
        }
        scenario.recordCheckEveryMs = 100
        return scenario
    }

    /// How long after the last fault every job must have its answer: the cluster settles
    /// (suspectAfter + a few intervals), entry nodes forward again, the slowest handler runs.
    static let livenessMs: Int64 = 6_000

    /// Clients and link limits, for either kind of scenario.
    mutating func drawJobs(_ rng: inout SeededRandom) {
        clients = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
            ClientPlan(jobs: Int.random(in: 20...90, using: &rng), pipeline: [1, 2, 8, 32].randomElement(using: &rng)!,
                       startMs: Int64.random(in: 300...1_500, using: &rng))
        }
        // A third of the runs drop frames at a buffer limit of a few frames: under stalls, bursts
        // and partitions the senders' shells then drop frames often.
        if rng.chance(0.33) { linkBufferBytes = Int.random(in: 100...1_200, using: &rng) }
        frameDelayMs = 0...[1, 3, 10].randomElement(using: &rng)!
    }

    /// A settled cluster on a network losing 30 % of datagrams, with pauses shorter than the
    /// failure timeout: the primary of each service must never change.
    static func stability(_ rng: inout SeededRandom, maxProcesses: Int) -> SimulationScenario {
        let count = Int.random(in: 4...maxProcesses, using: &rng)
        let serviceCount = Int.random(in: 1...2, using: &rng)
        let names = ["echo", "resize"].prefix(serviceCount).map { try! ServiceName($0) }
        var scenario = SimulationScenario(
            kind: .stability, processCount: count,
            services: (0..<count).map { names[$0 % serviceCount] },
            priorities: Array(repeating: 0, count: count),
            lossRate: 0.3, duplicateRate: 0.02, minDelayMs: 1, maxDelayMs: 5,
            faultsEndMs: 0, endMs: 0, faults: [])
        // A pause of p ms leaves a gap of p + one interval (+ delay) in the paused process's heartbeats.
        let longestSafePause = scenario.suspectAfterMs - scenario.intervalMs - scenario.maxDelayMs - 50
        var t: Int64 = 3_000
        for _ in 0..<Int.random(in: 3...10, using: &rng) {
            t += Int64.random(in: 300...1_500, using: &rng)
            scenario.faults.append((t, .pause(slot: Int.random(in: 0..<count, using: &rng),
                                              forMs: Int64.random(in: 20...longestSafePause, using: &rng))))
        }
        // Peer links may break and stall too: the job path recovers, membership does not notice.
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            let at = Int64.random(in: 3_000...max(3_001, t), using: &rng)
            let a = Int.random(in: 0..<count, using: &rng), b = Int.random(in: 0..<count, using: &rng)
            scenario.faults.append(rng.chance(0.5) ? (at, .breakLink(a, b)) : (at, .stallLink(from: a, to: b, forMs: 800)))
        }
        scenario.faults.sort { $0.atMs < $1.atMs }
        scenario.faultsEndMs = t
        scenario.endMs = t + livenessMs
        scenario.drawJobs(&rng)
        return scenario
    }
}
