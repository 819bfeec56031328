import Glibc
import StarlingUV
import Testing

@Suite struct SignalTests {
    @Test func receivesSIGUSR1() throws {
        try withLoop { loop in
            let signal = try Signal(loop: loop)
            defer { signal.close() }
            var received: [Int32] = []
            try signal.start(signal: SIGUSR1) { received.append($0) }
            #expect(kill(getpid(), SIGUSR1) == 0)
            try drive(loop, "SIGUSR1") { !received.isEmpty }
            #expect(received == [SIGUSR1])
        }
    }
}
