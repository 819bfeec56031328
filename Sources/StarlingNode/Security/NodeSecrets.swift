/// What this process's secret files hold now: the cluster keys and the client tokens. Loaded once
/// before the process binds, and again on SIGHUP; a file that fails to load on SIGHUP leaves what
/// was loaded before in place (docs/SECURITY.md). Loop-confined: the parts that seal, open and
/// check read it at each use, so a reload takes effect at once.
public final class NodeSecrets {
    public let clusterKeyFile: String?
    public let clientTokenFile: String?
    /// nil: the cluster is open (no `--cluster-key-file`).
    public private(set) var clusterKeys: ClusterKeys?
    /// nil: any client may submit (no `--client-token-file`).
    public private(set) var clientTokens: ClientTokens?
    /// Called after a reload changed the cluster keys, so that links proved with a key that is
    /// gone can be dropped.
    var onClusterKeysChanged: [() -> Void] = []

    /// Loads both files (either may be absent); throws the first file's problem.
    public init(clusterKeyFile: String?, clientTokenFile: String?) throws(SecretFileError) {
        self.clusterKeyFile = clusterKeyFile
        self.clientTokenFile = clientTokenFile
        clusterKeys = try clusterKeyFile.map { path throws(SecretFileError) in try ClusterKeys.load(path: path) }
        clientTokens = try clientTokenFile.map { path throws(SecretFileError) in try ClientTokens.load(path: path) }
    }

    /// No keys, no tokens: an open cluster (tests of the shell's parts).
    public static var open: NodeSecrets { try! NodeSecrets(clusterKeyFile: nil, clientTokenFile: nil) }

    /// Reads both files again. Each file that loads replaces what was loaded from it; the problems
    /// of those that do not are returned (and they keep their old contents).
    public func reload() -> [SecretFileError] {
        var problems: [SecretFileError] = []
        if let path = clusterKeyFile {
            do {
                clusterKeys = try ClusterKeys.load(path: path)
                for callback in onClusterKeysChanged { callback() }
            } catch {
                problems.append(error)
            }
        }
        if let path = clientTokenFile {
            do { clientTokens = try ClientTokens.load(path: path) } catch { problems.append(error) }
        }
        return problems
    }
}
