import ArgumentParser
import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport

/// `starling up`: runs a host agent, which scales every service type of a jobs directory.
struct UpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run a host agent: it accepts jobs, starts workers on this host, and scales them.",
        discussion: """
            The agent joins the heartbeat group as a process of the reserved service type `agent`. \
            The agents elect a primary, the scaler, which keeps every service type of DIR between \
            its min_workers and max_workers, admits workers when the backlog stays high, retires \
            them when idle, and replaces dead ones; new workers go to the agent with the most \
            headroom.

            Once bound, one line goes to stdout:
              starling agent <id> listening on HOST:PORT

            SIGINT/SIGTERM drains the agent and the workers it started. Workers whose agent is \
            killed (even with -9) drain and stop on their own. SIGHUP reloads DIR: new services \
            get their workers, changed ones apply to workers started from then on, nothing \
            running restarts; a DIR that fails to load keeps the previous definitions.
            """)

    @Argument(help: "Directory of service definitions (*.toml).")
    var directory: String = "jobs"

    @Option(help: "How many workers this host may run.")
    var maxWorkers: Int = 16

    @Option(name: .customLong("worker-log-level"), help: "The log level of the workers it starts.")
    var workerLogLevel = LogLevelOption(argument: "notice")!

    @OptionGroup var member: MemberOptions

    private var settings: WorkerSettings?
    private var agent: AgentSettings?

    private enum CodingKeys: String, CodingKey {
        case directory, maxWorkers, workerLogLevel, member
    }

    mutating func validate() throws {
        guard (1...1024).contains(maxWorkers) else { throw ValidationError("--max-workers must be 1–1024, got \(maxWorkers)") }
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        let definitions: [ServiceName: ServiceDefinition]
        do {
            definitions = try ServiceDefinitionLoader.loadAll(directory: absolute)
        } catch {
            throw ValidationError("\(directory): \(error)")
        }
        guard !definitions.isEmpty else { throw ValidationError("\(directory) holds no service definitions (*.toml)") }
        let executable: String
        do {
            executable = try StarlingBinary.selfExecutable()
        } catch {
            throw ValidationError("cannot find this program's path to start workers: \(error)")
        }
        settings = try member.settings(service: .agent, defaultPort: 7946)
        agent = AgentSettings(
            definitions: definitions, jobsDirectory: absolute, maxWorkers: maxWorkers, executable: executable,
            workerLogLevel: workerLogLevel.level.rawValue, logFormat: member.logFormat.format)
    }

    func run() throws {
        try runMember(
            kind: "agent", settings: settings!, role: .agent(agent!), logLevel: member.logLevel.level,
            logFormat: member.logFormat.format)
    }
}
