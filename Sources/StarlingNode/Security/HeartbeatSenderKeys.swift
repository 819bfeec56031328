import Crypto
import StarlingCore

/// The per-sender heartbeat keys (`HeartbeatSeal`) already derived from the current cluster keys,
/// so that HKDF runs once per sender instead of once per datagram (it costs more than the seal).
///
/// Only senders whose datagram opened are remembered, so forged sender ids cannot crowd out real
/// ones; the table is bounded and starts again when full. The owner empties it (`forgetAll`) when
/// the cluster keys change (docs/SECURITY.md, "Sealed heartbeats").
public struct HeartbeatSenderKeys {
    public static let capacity = 1024

    private var derived: [NodeID: [SymmetricKey]] = [:]

    public init() {}

    /// `sender`'s key under each of `clusterKeys`, in their order, and whether they were known.
    func keys(of sender: NodeID, under clusterKeys: [SymmetricKey]) -> (keys: [SymmetricKey], isKnown: Bool) {
        if let known = derived[sender] { return (known, true) }
        return (clusterKeys.map { HeartbeatSeal.senderKey($0, sender: sender) }, false)
    }

    /// Remembers keys a datagram of `sender` opened with.
    mutating func remember(_ keys: [SymmetricKey], of sender: NodeID) {
        if derived.count >= Self.capacity { derived.removeAll(keepingCapacity: true) }
        derived[sender] = keys
    }

    /// The cluster keys changed: every derived key may be stale.
    public mutating func forgetAll() {
        derived = [:]
    }
}
