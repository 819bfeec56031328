import ArgumentParser
import StarlingDemo

/// `starling demo`: a local cluster, a mixed workload, two kill -9s, and a summary. The demo itself
/// is the StarlingDemo module; this is its command line.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a local cluster, run jobs through it while killing workers, and show that no job is lost.",
        discussion: """
            With no set-up: starts two agents (`starling up`) on loopback, which start the workers of \
            every service in the jobs directory; runs a mixed workload of echo, sha256 and sleep jobs \
            with a live progress line; kills the echo primary with kill -9 midway and an echo standby \
            later; shows the failover and the scaler's replacements as they happen; and ends with a \
            summary. It stops every process it started, also on Ctrl-C.

            Exit status 0 when every job was answered OK and nothing was left running; 1 otherwise.
            """)

    @Option(help: "Directory of service definitions (*.toml); needs an echo service.")
    var jobs: String = "jobs"

    @Option(help: "Seconds of workload (5–600).")
    var duration: Int = 20

    @Flag(help: "Keep the agents' logs even when the demo passes.")
    var keepLogs = false

    mutating func validate() throws {
        guard (5...600).contains(duration) else { throw ValidationError("--duration must be 5–600 seconds, got \(duration)") }
    }

    func run() throws {
        let passed = DemoRun(jobs: jobs, duration: .seconds(duration), keepLogs: keepLogs).run()
        if !passed { throw ExitCode.failure }
    }
}
