import Logging
import StarlingCore
import StarlingUV

/// Resolves the host names among the `--join` seeds (docs/HANDBOOK.md, "seed") and hands every
/// address they name to the core (`Membership.seedsResolved`), again every announce round, so that
/// a name whose addresses change or grow later (a restarted pod, a Kubernetes headless service that
/// gains members) keeps working. Numeric seeds need none of this and go to the core at start.
///
/// Lookups run through `AddressLookup` (libuv's thread pool), one at a time in the whole process:
/// a resolver that hangs holds one pool thread, never the loop nor the pool. A name is looked up
/// again once `roundMs` has passed since its last lookup began. A failed lookup keeps the addresses
/// the name had (a DNS blip must not drop seeds) and is logged at once, then at most every
/// `failureLogEveryMs` with a count, never every round. Loop-confined.
final class SeedResolver {
    private struct Name {
        let host: String
        let port: UInt16
        /// The last answer; kept through failed lookups.
        var addresses: [NodeAddress] = []
        var lastStartMs: Int64?
        /// The last lookup's error, while the name does not resolve.
        var failure: String?
        var failuresSinceLogged = 0
        var lastFailureLogMs: Int64?
    }

    /// A failing name is logged at most this often after its first failure.
    static let failureLogEveryMs: Int64 = 30_000

    private let loop: EventLoop
    private let logger: Logger
    private let family: AddressLookup.Family
    private let roundMs: Int64
    private var names: [Name]
    private var cursor = 0
    private var pending: AddressLookup?
    private var isClosed = false
    /// Called after every successful lookup with the addresses of all names.
    var onResolved: (([NodeAddress]) -> Void)?

    /// `family` is the bind address's: a socket of one family cannot reach the other.
    init(loop: EventLoop, joins: [JoinTarget], family: AddressLookup.Family, roundMs: Int64, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.family = family
        self.roundMs = roundMs
        names = joins.compactMap {
            guard case .name(let host, let port) = $0 else { return nil }
            return Name(host: host, port: port)
        }
    }

    /// Every address the names resolved to last, without duplicates.
    var addresses: [NodeAddress] {
        var seen = Set<NodeAddress>()
        return names.flatMap(\.addresses).filter { seen.insert($0).inserted }
    }

    /// A `--join` seed with what it resolves to, for a warning: `name:7946 → 10.0.0.5:7946`,
    /// `name:7946 (does not resolve: …)` or `name:7946 (not resolved yet)`; a number as it is.
    func describe(_ join: JoinTarget) -> String {
        guard case .name(let host, let port) = join,
              let name = names.first(where: { $0.host == host && $0.port == port }) else { return "\(join)" }
        if let failure = name.failure { return "\(join) (does not resolve: \(failure))" }
        if name.addresses.isEmpty { return "\(join) (not resolved yet)" }
        return "\(join) → \(name.addresses.map(\.description).joined(separator: " "))"
    }

    /// Called at start and every interval: starts the next lookup that is due, if none is running.
    func tick(nowMs: Int64) {
        guard !isClosed, pending == nil, !names.isEmpty else { return }
        for step in 0..<names.count {
            let index = (cursor + step) % names.count
            if let last = names[index].lastStartMs, nowMs - last < roundMs { continue }
            cursor = index + 1
            start(index, nowMs: nowMs)
            return
        }
    }

    /// Stops looking up: a queued lookup is cancelled, a running one finishes unheard (the loop
    /// waits for it, at most the system resolver's own timeout).
    func close() {
        isClosed = true
        pending?.cancel()
    }

    private func start(_ index: Int, nowMs: Int64) {
        names[index].lastStartMs = nowMs
        let name = names[index]
        do {
            pending = try AddressLookup(loop: loop, host: name.host, port: name.port, family: family) {
                [unowned self] result in
                pending = nil
                guard !isClosed else { return }
                switch result {
                case .success(let found) where !found.isEmpty:
                    resolved(index, to: found.map(NodeAddress.init))
                case .success:
                    failed(index, because: "no \(family == .ipv6 ? "IPv6" : "IPv4") address")
                case .failure(let error):
                    failed(index, because: "\(error.name) (\(error.message))")
                }
            }
        } catch {
            failed(index, because: "\(error)")
        }
    }

    private func resolved(_ index: Int, to found: [NodeAddress]) {
        let name = names[index]
        if name.failure != nil || found != name.addresses {
            let list = found.map(\.description).joined(separator: ", ")
            logger.log(
                level: name.failure != nil ? .notice : .info,
                "--join \(name.host):\(name.port) resolves to \(list)",
                metadata: ["seed": "\(name.host):\(name.port)", "addresses": "\(list)"])
        }
        names[index].addresses = found
        names[index].failure = nil
        names[index].failuresSinceLogged = 0
        names[index].lastFailureLogMs = nil
        onResolved?(addresses)
    }

    private func failed(_ index: Int, because why: String) {
        let nowMs = Int64(clamping: loop.now)
        names[index].failure = why
        names[index].failuresSinceLogged += 1
        let name = names[index]
        if let last = name.lastFailureLogMs, nowMs - last < Self.failureLogEveryMs { return }
        let kept = name.addresses.isEmpty
            ? "" : "; still announcing to \(name.addresses.map(\.description).joined(separator: ", "))"
        logger.warning(
            "--join \(name.host):\(name.port) does not resolve: \(why) (\(name.failuresSinceLogged) failed lookup\(name.failuresSinceLogged == 1 ? "" : "s") since the last such line); retrying every \(roundMs) ms\(kept)",
            metadata: ["seed": "\(name.host):\(name.port)"])
        names[index].lastFailureLogMs = nowMs
        names[index].failuresSinceLogged = 0
    }
}
