#if canImport(Glibc)
import Glibc
#endif
import StarlingTestSupport
import StarlingUV
import Testing

/// The /proc reader: `RunningProcess`, `ListeningSocket`, `ProcFile`, `StarlingBinary`.
@Suite struct ProcReaderTests {
    @Test func parsesAStatLineWhoseNameHoldsSpacesAndParentheses() throws {
        let stat = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
        let process = try #require(RunningProcess.parse(stat: stat, pid: 4242))
        #expect(process == RunningProcess(pid: 4242, parent: 17, group: 4242, startTicks: 987654))
    }

    @Test func aZombieOrAShortLineIsNoProcess() {
        #expect(RunningProcess.parse(stat: "5 (z) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0", pid: 5) == nil)
        #expect(RunningProcess.parse(stat: "5 (x) S 1 5", pid: 5) == nil)
        #expect(RunningProcess.parse(stat: "garbage", pid: 5) == nil)
    }

    @Test func readsThisProcess() throws {
        let me = try #require(RunningProcess.read(getpid()))
        #expect(me.parent == getppid())
        #expect(me.group == getpgrp())
        #expect(me.isAlive)
        #expect(me.executable == (try? StarlingBinary.selfExecutable()))
        #expect(!me.arguments.isEmpty)
        #expect((me.residentKB ?? 0) > 0)
        #expect(RunningProcess.all().contains(me))
    }

    @Test func seesAChildItStartedAndItsEnd() throws {
        let child = try SpawnedProcess(executable: "/bin/sleep", arguments: ["30"], ownProcessGroup: true)
        defer { child.kill() }
        // Until the child has exec'd, /proc shows the fork's copy of this process (or nothing):
        // wait for the sleep itself.
        let found = try #require(poll(within: .seconds(10)) {
            RunningProcess.read(child.pid).flatMap { $0.arguments == ["/bin/sleep", "30"] ? $0 : nil }
        })
        #expect(found.parent == getpid())
        #expect(RunningProcess.children(of: getpid()).contains(found))
        #expect(RunningProcess.members(ofGroup: child.pid).map(\.pid) == [child.pid])
        #expect(found.arguments == ["/bin/sleep", "30"])
        child.kill()
        #expect(!found.isAlive)
        #expect(!found.send(SIGKILL), "a process that is gone is not signalled")
    }

    @Test func parsesTheListeningSocketsOfATCPTable() {
        let table = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F4A 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0 100 0 0 10 0
               1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0 100 0 0 10 0
               2: 0100007F:1F4A 0100007F:A000 01 00000000:00000000 00:00000000 00000000  1000        0 99 1 0 20 4 30 10 -1
            """
        #expect(ListeningSocket.parse(table: table) == [
            ListeningSocket(host: "127.0.0.1", port: 8010, inode: 31337),
            ListeningSocket(host: "0.0.0.0", port: 22, inode: 42),
        ])
    }

    @Test func findsThePortThisProcessListensOn() throws {
        let loop = try EventLoop()
        let server = try TCPServer(loop: loop)
        try server.bind(to: try SocketAddress(ip: "127.0.0.1", port: 0))
        try server.listen { _ in }
        defer {
            server.close()
            _ = loop.run()
            try? loop.close()
        }
        let port = try server.localAddress.port
        let socket = try #require(ListeningSocket.onLoopback(port: port))
        let me = try #require(RunningProcess.read(getpid()))
        #expect(me.socketInodes.contains(socket.inode))
        #expect(me.listeningPorts.contains(port))
    }

    @Test func readsAProcFileToItsEnd() throws {
        let text = try #require(ProcFile.read("/proc/self/status"))
        #expect(text.contains("Pid:\t\(getpid())"))
        #expect(ProcFile.read("/proc/no-such-file") == nil)
    }

    @Test func findsTheStarlingBinaryOfThisBuild() throws {
        let path = try StarlingBinary.locate(searchBuildFolders: true)
        #expect(path.hasSuffix("starling"))
    }
}
