import Crypto
import StarlingCore

/// The per-sender heartbeat keys (`HeartbeatSeal`) already derived from the cluster keys, so that
/// HKDF runs once per sender instead of once per datagram (it costs more than the seal).
///
/// It remembers which cluster keys it derived from and starts again when asked about others, so
/// a reload of the key file cannot leave a stale key in use. Only senders whose datagram opened
/// are remembered, so forged sender ids cannot crowd out real ones; the table is bounded and
/// starts again when full (docs/SECURITY.md, "Sealed heartbeats").
public struct HeartbeatSenderKeys {
    public static let capacity = 1024

    private var clusterKeys: [SymmetricKey] = []
    private var derived: [NodeID: [SymmetricKey]] = [:]

    public init() {}

    /// `sender`'s key under each of `clusterKeys`, in their order, and whether they were known.
    mutating func keys(of sender: NodeID, under clusterKeys: [SymmetricKey]) -> (keys: [SymmetricKey], isKnown: Bool) {
        if clusterKeys != self.clusterKeys {
            self.clusterKeys = clusterKeys
            derived = [:]
        }
        if let known = derived[sender] { return (known, true) }
        return (clusterKeys.map { HeartbeatSeal.senderKey($0, sender: sender) }, false)
    }

    /// Remembers keys a datagram of `sender` opened with (from `keys(of:under:)`).
    mutating func remember(_ keys: [SymmetricKey], of sender: NodeID) {
        if derived.count >= Self.capacity { derived.removeAll(keepingCapacity: true) }
        derived[sender] = keys
    }
}
