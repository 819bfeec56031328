import StarlingCore

/// What one seed runs: the cluster's shape and the faults it suffers. Drawn from the seed
/// ("swarm" testing: every run gets its own mix of faults).
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

    enum Fault {
        case crash(slot: Int)
        case restart(slot: Int)
        case pause(slot: Int, forMs: Int64)
        case partition(sideA: Set<Int>)
        case heal
        /// Several processes that were not running start at once.
        case joinBurst(slots: [Int])
    }

    var suspectAfterMs: Int64 { MembershipConfig(service: services[0], address: .ipv4(127, 0, 0, 1, port: 1)).suspectAfterMs }

    var description: String {
        "\(kind.rawValue): \(processCount) processes, services \(services.map(\.value)), loss \(Int(lossRate * 100))%, "
            + "dup \(Int(duplicateRate * 100))%, delay \(minDelayMs)–\(maxDelayMs) ms, \(faults.count) faults until \(faultsEndMs) ms, end \(endMs) ms"
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
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where running.contains(slot):
                scenario.faults.append((t, .crash(slot: slot)))
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
        // Every crashed process comes back, so the liveness phase sees the full cluster.
        t += 500
        if partitioned { scenario.faults.append((t, .heal)) }
        for slot in Set(0..<count).subtracting(running).sorted() {
            scenario.faults.append((t, .restart(slot: slot)))
        }
        scenario.faultsEndMs = t
        scenario.endMs = t + 3_000
        return scenario
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
        scenario.faultsEndMs = t
        scenario.endMs = t + 2_000
        return scenario
    }
}
