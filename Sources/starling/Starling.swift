import Foundation
import ArgumentParser
import StarlingCore

/// The `starling` command-line tool.
@main
struct Starling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "A masterless, workload-aware job dispatcher.",
        // The one place the version is written: `starling --version` prints it, with the wire
        // protocols' versions, which decide how a cluster can be upgraded (README, "Upgrading").
        version: "starling 0.1.0 (heartbeat protocol \(HeartbeatCodec.version), peer protocol \(PeerMessageCodec.version))",
        subcommands: [
            WorkerCommand.self, UpCommand.self, StatusCommand.self, SubmitCommand.self, KeygenCommand.self,
            DemoCommand.self,
        ])
}

/// Writes one line to stderr, for errors a command reports before exiting.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
