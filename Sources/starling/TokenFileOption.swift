import ArgumentParser
import StarlingCore
import StarlingNode

/// `--token-file` of the commands that talk to a node as a client (`starling submit`,
/// `starling status`).
struct TokenFileOption: ParsableArguments {
    @Option(help: "A mode-600 file of client tokens (one a line, '#' comments); the first is sent as AUTH.")
    var tokenFile: String?

    /// The token to send, read and checked (nil without the flag); the error names the flag.
    func token() throws -> ClientToken? {
        guard let tokenFile else { return nil }
        do {
            return try ClientTokens.read(path: tokenFile)[0]
        } catch {
            throw ValidationError("--token-file \(error)")
        }
    }
}
