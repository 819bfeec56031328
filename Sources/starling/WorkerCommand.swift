import ArgumentParser
import StarlingCore
import StarlingNode

/// `starling worker`: runs one worker process of one service type until SIGINT/SIGTERM.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker of one service type that joins the heartbeat group.",
        discussion: """
            Heartbeats (UDP) and clients (TCP) share one port. Logs go to stderr. Once bound, one \
            line goes to stdout:
              starling worker <id> listening on HOST:PORT

            SIGINT/SIGTERM drains: the worker steps down, takes no new work, finishes what it \
            holds and exits; a second signal stops it at once. With --parent-pid (set by \
            `starling up` for the workers it starts) it drains the same way once that process is \
            gone, even when it was killed with -9.
            """)

    @Option(help: "Service type: 1–64 of a-z, 0-9, '.', '_', '-'.")
    var service: String

    @Option(help: "Directory of service definitions; the worker loads DIR/<service>.toml.")
    var jobs: String = "jobs"

    @Option(name: .customLong("parent-pid"), help: ArgumentHelp(
        "Drain and stop once process PID is no longer this worker's parent.", valueName: "PID"))
    var parentPID: Int32?

    @OptionGroup var member: MemberOptions

    /// Filled in by `validate()` so that `run()` cannot meet a bad flag.
    private var settings: WorkerSettings?
    private var definition: ServiceDefinition?

    private enum CodingKeys: String, CodingKey {
        case service, jobs, parentPID, member
    }

    mutating func validate() throws {
        let name: ServiceName
        do { name = try ServiceName(service) } catch { throw ValidationError("--service: \(error)") }
        var settings = try member.settings(service: name)
        settings.parentPID = parentPID
        do { try settings.validate() } catch { throw ValidationError("--parent-pid: \(error)") }
        self.settings = settings
        do {
            definition = try ServiceDefinitionLoader.load(service: name, directory: jobs)
        } catch {
            throw ValidationError("--jobs: \(error)")
        }
    }

    func run() throws {
        try runMember(
            kind: "worker", settings: settings!, role: .worker(definition!), logLevel: member.logLevel.level,
            logFormat: member.logFormat.format)
    }
}
