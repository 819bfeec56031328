#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingTestSupport
import StarlingUV
import Testing

/// One real `starling demo`, with the shortest workload it takes (5 s): two agents, their workers,
/// the two kill -9s, the summary, and nothing left running. The standby's kill waits for the first
/// failover to settle (the scaler's replacement included, once 2.7 s under the full suite's load
/// on two cores), and the load runs on past the 5 s, within a bound, until it has.
@Suite struct DemoProcessTests {
    @Test(.timeLimit(.minutes(3)))
    func aShortDemoPassesAndLeavesNothingRunning() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("starling-demo-test-\(UUID().uuidString.prefix(8))")
        defer {
            try? FileManager.default.removeItem(atPath: output.path + ".out")
            try? FileManager.default.removeItem(atPath: output.path + ".err")
        }
        let demo = try SpawnedProcess(
            executable: try StarlingBinary.locate(searchBuildFolders: true),
            arguments: ["demo", "--duration", "5", "--jobs", root + "/jobs"],
            stdout: .file(output.path + ".out"), stderr: .file(output.path + ".err"))
        var status = demo.wait(timeout: .seconds(120))
        if status == nil {
            // SIGTERM: the demo stops its agents and their workers itself, then exits.
            demo.signal(SIGTERM)
            status = demo.wait(timeout: .seconds(40))
            demo.kill()
        }
        let stdout = ProcFile.read(output.path + ".out") ?? ""
        #expect(status?.code == 0 && status?.signal == 0, "the demo failed:\n\(stdout)\n\(ProcFile.read(output.path + ".err") ?? "")")
        #expect(stdout.contains("== 4. summary"))
        #expect(stdout.contains("PASS: "))
        #expect(stdout.contains("no process of the demo is left"))
        #expect(RunningProcess.children(of: demo.pid).isEmpty)
    }
}
