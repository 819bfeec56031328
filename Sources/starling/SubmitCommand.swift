import ArgumentParser
import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingUV
import Synchronization

/// `starling submit`: submits one job and prints its result.
struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit one job to a service and print its result.",
        discussion: """
            The payload is the PAYLOAD argument's UTF-8 bytes, or stdin when PAYLOAD is '-' or \
            absent. The result bytes go to stdout as they are (no newline added). With several \
            --node flags the job fails over to the next node (same key) if one is down or dies. \
            Nodes started with --client-token-file need --token-file: a mode-600 file whose first \
            token is sent as AUTH (the node's own token file will do).

            Exit status:
              0  OK: the handler succeeded; its result is on stdout
              1  FAIL: the handler ran and failed; the node's text is on stderr
              2  ERR: the job was not run; 'CODE: message' is on stderr
                 (NO_SERVICE, TOO_LARGE, BAD_REQUEST, BUSY, UNAVAILABLE, UNAUTHORIZED)
              3  no answer: no node reachable, timed out (the job may still have run)
              64 bad arguments (an unusable --token-file included)
            """)

    /// Exit statuses, as documented above.
    enum Status {
        static let failed: Int32 = 1
        static let refused: Int32 = 2
        static let noAnswer: Int32 = 3
    }

    @Option(name: .customLong("node"), help: "HOST:PORT of a worker, a numeric host or a name (repeatable; tried in order, a name's addresses in the resolver's order).")
    var nodes: [String] = []

    @Option(help: "Idempotency key: 1–64 of A-Z, a-z, 0-9, '.', '_', ':', '-' (default: a fresh unique key).")
    var key: String?

    @Option(help: "Give up after this many milliseconds (1–3600000).")
    var timeout: UInt64 = 30_000

    @OptionGroup var tokenFile: TokenFileOption

    @Argument(help: "Service type, e.g. echo.")
    var service: String

    @Argument(help: "The payload, or '-' (the default) to read it from stdin.")
    var payload: String = "-"

    /// Filled in by `validate()` so that `run()` cannot meet a bad argument.
    private var addresses: [SocketAddress] = []
    private var token: ClientToken?

    private enum CodingKeys: String, CodingKey { case nodes, key, timeout, tokenFile, service, payload }

    mutating func validate() throws {
        guard !nodes.isEmpty else { throw ValidationError("at least one --node HOST:PORT is required") }
        addresses = []
        guard (1...3_600_000).contains(timeout) else { throw ValidationError("--timeout must be 1–3600000 ms") }
        do { _ = try ServiceName(service) } catch { throw ValidationError("SERVICE: \(error)") }
        if let key {
            do { _ = try JobKey(key) } catch { throw ValidationError("--key: \(error)") }
        }
        for node in nodes {
            // Every address a name gives is tried, in the resolver's order, after those before it.
            do {
                addresses += try NodeTarget.resolve(node, timeoutMs: min(timeout, 10_000)).map(\.socketAddress)
            } catch {
                throw ValidationError("--node: \(error)")
            }
        }
        token = try tokenFile.token()
    }

    func run() throws {
        var configuration = StarlingClient.Configuration()
        configuration.requestTimeoutMs = timeout
        configuration.token = token
        let bytes = payload == "-" ? Self.readStandardInput(limit: configuration.maxPayloadBytes) : Array(payload.utf8)

        let outcome: Result<JobAnswer, StarlingClientError>
        do {
            let client = try StarlingClient(nodes: addresses, configuration: configuration)
            outcome = Self.waitFor { [service, key] in
                let result: Result<JobAnswer, StarlingClientError>
                do throws(StarlingClientError) {
                    result = .success(try await client.submit(service: service, payload: bytes, key: key))
                } catch {
                    result = .failure(error)
                }
                await client.close()
                return result
            }
        } catch {
            outcome = .failure(error)
        }

        switch outcome {
        case .success(.ok(let result)):
            FileHandle.standardOutput.write(Data(result))
        case .success(.failed(let text)):
            printError(text)
            throw ExitCode(Status.failed)
        case .success(.error(let code, let message)):
            printError("\(code.rawValue): \(message)")
            throw ExitCode(Status.refused)
        case .failure(.unauthorized(_, let message)):
            // As an ERR: the node read no job, so none ran.
            printError("\(ClientErrorCode.unauthorized.rawValue): \(message)")
            throw ExitCode(Status.refused)
        case .failure(let error):
            printError("starling submit: \(error)")
            throw ExitCode(Status.noAnswer)
        }
    }

    /// Stdin up to `limit + 1` bytes: enough for the client to see that it is over the limit.
    private static func readStandardInput(limit: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count <= limit {
            guard let chunk = try? FileHandle.standardInput.read(upToCount: 64 * 1024), !chunk.isEmpty else { break }
            bytes += chunk
        }
        return Array(bytes.prefix(limit + 1))
    }

    /// Runs `body` on the cooperative pool and blocks this (main) thread until it is done: the
    /// root command is synchronous.
    private static func waitFor<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        Task {
            box.set(await body())
        }
        return box.wait()
    }
}

/// One value handed from a task to a blocked thread.
private final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    private let done = DispatchSemaphore(value: 0)

    func set(_ newValue: T) {
        value.withLock { $0 = newValue }
        done.signal()
    }

    func wait() -> T {
        done.wait()
        return value.withLock { $0 }!
    }
}
