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

    @Option(help: "HOST:PORT of the worker to ask.")
    var node: String

    @Flag(help: "Print the raw STATUS JSON instead of a table.")
    var json = false

    @Option(help: "Give up after this many milliseconds.")
    var timeout: UInt64 = 3_000

    @OptionGroup var tokenFile: TokenFileOption

    private var address: NodeAddress?
    private var token: ClientToken?

    private enum CodingKeys: String, CodingKey { case node, json, timeout, tokenFile }

    mutating func validate() throws {
        do {
            let parsed = try NodeAddress(parsing: node)
            guard parsed.port != 0 else { throw ValidationError("--node \(node): port 0 cannot be reached") }
            address = parsed
        } catch let error as NodeAddress.ParseError {
            throw ValidationError("--node: \(error)")
        }
        guard (1...600_000).contains(timeout) else { throw ValidationError("--timeout must be 1–600000 ms") }
        token = try tokenFile.token()
    }

    func run() throws {
        let body: [UInt8]
        do {
            body = try StatusClient.fetchJSON(from: address!, timeoutMs: timeout, token: token)
        } catch {
            printError("starling status: \(node): \(error)")
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
