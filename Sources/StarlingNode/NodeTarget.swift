import StarlingCore
import StarlingUV

/// A `--node` of the client commands (`starling status`, `starling submit`): `HOST:PORT` with a
/// numeric host, `[IPv6]:PORT`, or `NAME:PORT`, parsed as `--join` is (`JoinTarget`). A name is
/// resolved once, before the command connects: the command runs no loop of its own yet, so it
/// drives a loop of its own for the lookup (libuv's resolver on its thread pool), bounded by
/// `timeoutMs`, and closes it again.
public enum NodeTarget {
    /// Why a `--node` gave no address; the description is meant for an operator.
    public enum ResolveError: Error, CustomStringConvertible {
        case unparsable(JoinTarget.ParseError)
        case lookupFailed(String, UVError)
        case timedOut(String, afterMs: UInt64)
        case noAddress(String)

        public var description: String {
            switch self {
            case .unparsable(let error): "\(error)"
            case .lookupFailed(let name, let error): "'\(name)' does not resolve: \(error)"
            case .timedOut(let name, let ms): "'\(name)' did not resolve within \(ms) ms"
            case .noAddress(let name): "'\(name)' resolves to no address"
            }
        }
    }

    /// The addresses `text` names, in the resolver's order (one for a numeric host).
    public static func resolve(_ text: String, timeoutMs: UInt64) throws(ResolveError) -> [NodeAddress] {
        let target: JoinTarget
        do { target = try JoinTarget(parsing: text) } catch { throw .unparsable(error) }
        switch target {
        case .address(let address):
            return [address]
        case .name(let name, let port):
            var answer: Result<[SocketAddress], UVError>?
            var timedOut = false
            do throws(UVError) {
                let loop = try EventLoop()
                defer { try? loop.close() }
                let lookup = try AddressLookup(loop: loop, host: name, port: port) { answer = $0 }
                if !(try loop.run(until: { answer != nil }, timeoutMs: timeoutMs)) {
                    // The loop cannot close with the lookup pending: cancel it and let it finish.
                    timedOut = true
                    lookup.cancel()
                    _ = try loop.run(until: { lookup.isFinished }, timeoutMs: 60_000)
                }
            } catch {
                throw .lookupFailed(name, error)
            }
            if timedOut { throw .timedOut(name, afterMs: timeoutMs) }
            switch answer {
            case .success(let found) where !found.isEmpty:
                return found.map(NodeAddress.init)
            case .failure(let error):
                throw .lookupFailed(name, error)
            default:
                throw .noAddress(name)
            }
        }
    }
}
