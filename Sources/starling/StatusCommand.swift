import ArgumentParser
import StarlingCore
import StarlingNode

/// `starling status`: a worker's record of its peers, as a table or JSON.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a worker's record of every member (or its JSON with --json).",
        discussion: """
            A worker started with --client-token-file needs --token-file: a mode-600 file whose \
            first token is sent as AUTH (the worker's own token file will do).
            """)

    @Option(help: "HOST:PORT of the worker to ask (a numeric host or a name, resolved once).")
    var node: String

    @Flag(help: "Print the raw STATUS JSON instead of a table.")
    var json = false

    @Option(help: "Give up after this many milliseconds.")
    var timeout: UInt64 = 3_000

    @OptionGroup var tokenFile: TokenFileOption

    /// What `--node` names: one address, or every address its name resolved to, tried in turn.
    private var addresses: [NodeAddress] = []
    private var token: ClientToken?

    private enum CodingKeys: String, CodingKey { case node, json, timeout, tokenFile }

    mutating func validate() throws {
        guard (1...600_000).contains(timeout) else { throw ValidationError("--timeout must be 1–600000 ms") }
        do {
            addresses = try NodeTarget.resolve(node, timeoutMs: timeout)
        } catch {
            throw ValidationError("--node: \(error)")
        }
        token = try tokenFile.token()
    }

    func run() throws {
        var fetched: [UInt8]?
        var failures: [String] = []
        for address in addresses where fetched == nil {
            do {
                fetched = try StatusClient.fetchJSON(from: address, timeoutMs: timeout, token: token)
            } catch {
                failures.append(addresses.count == 1 ? "\(error)" : "\(address): \(error)")
            }
        }
        guard let body = fetched else {
            printError("starling status: \(node): \(failures.joined(separator: "; "))")
            throw ExitCode.failure
        }
        if json {
            print(String(decoding: body, as: UTF8.self))
            return
        }
        do {
            print(StatusTable.render(try StatusReport(json: body)), terminator: "")
        } catch {
            printError("starling status: \(node) answered malformed JSON: \(error)")
            throw ExitCode.failure
        }
    }
}
