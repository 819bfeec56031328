import StarlingCore

/// The token a client presents with `AUTH` (`--token-file` of `starling submit` and `starling
/// status`): the first token of a file read as a node reads its `--client-token-file` (mode 600,
/// one token a line, `#` comments; see `SecretFile`), so one file can serve both sides.
public enum ClientTokenFile {
    public static func firstToken(path: String) throws(SecretFileError) -> ClientToken {
        let entries = try SecretFile.entries(path: path, what: "client token")
        do {
            return try ClientToken(entries[0])
        } catch {
            throw SecretFileError(path, "token 1: \(error)")
        }
    }
}
