import StarlingUV
import Testing

@Suite struct UDPSocketTests {
    @Test func sendsAndReceivesUpToTheReceiveBound() throws {
        try withLoop { loop in
            let a = try UDPSocket(loop: loop)
            defer { a.close() }
            let b = try UDPSocket(loop: loop)
            defer { b.close() }
            try a.bind(to: loopback)
            try b.bind(to: loopback)
            let aAddress = try a.localAddress
            let bAddress = try b.localAddress
            #expect(bAddress.port != 0)

            var received: [UDPReceiveEvent] = []
            try b.startReceiving { received.append($0) }
            // 65,507 bytes is the largest IPv4 UDP payload; it must fit the 64 KiB buffer intact.
            let payloads = [[], [1, 2, 3], pattern(count: 65_507)]
            var completions: [UVError?] = []
            try a.send(bytes: payloads[0], to: bAddress)  // try_send path
            try a.send(bytes: payloads[1], to: bAddress) { completions.append($0) }  // queued path
            try a.send(bytes: payloads[2], to: bAddress) { completions.append($0) }
            try drive(loop, "three datagrams") { received.count == 3 && completions.count == 2 }

            #expect(completions.allSatisfy { $0 == nil })
            for (event, payload) in zip(received, payloads) {
                guard case let .datagram(bytes, from) = event else {
                    Issue.record("expected a datagram, got \(event)")
                    continue
                }
                #expect(bytes == payload)
                #expect(from == aAddress)
            }
        }
    }

    @Test func reportsTruncatedDatagramsInsteadOfDeliveringThem() throws {
        try withLoop { loop in
            let sender = try UDPSocket(loop: loop)
            defer { sender.close() }
            let receiver = try UDPSocket(loop: loop, receiveBufferSize: 1024)
            defer { receiver.close() }
            try receiver.bind(to: loopback)
            let target = try receiver.localAddress

            var received: [UDPReceiveEvent] = []
            try receiver.startReceiving { received.append($0) }
            try sender.send(bytes: pattern(count: 1025), to: target)
            try sender.send(bytes: pattern(count: 1024), to: target)
            try drive(loop, "two datagrams") { received.count == 2 }

            guard received.count == 2 else { return }
            if case .truncated = received[0] {} else { Issue.record("expected truncation, got \(received[0])") }
            if case let .datagram(bytes, _) = received[1] {
                #expect(bytes == pattern(count: 1024))
            } else {
                Issue.record("expected a datagram, got \(received[1])")
            }
        }
    }

    @Test func closingCompletesQueuedSendsExactlyOnce() throws {
        try withLoop { loop in
            let socket = try UDPSocket(loop: loop)
            try socket.bind(to: loopback)
            let target = try socket.localAddress
            var statuses: [UVError?] = []
            try socket.send(bytes: [1], to: target) { statuses.append($0) }
            socket.close()  // before the loop ever runs the send callback
            try drive(loop, "send completion") { statuses.count == 1 }
            for _ in 0..<3 { loop.runOnce(nowait: true) }
            // libuv may already have sent it (success) or cancel it; either way, exactly one completion.
            #expect(statuses.count == 1)
            #expect(statuses.allSatisfy { $0 == nil || $0?.name == "ECANCELED" })
            #expect(caught { () throws(UVError) in try socket.send(bytes: [1], to: target) }?.name == "EBADF")
        }
        // withLoop's close() also proved the send request and its bytes were released.
    }

    @Test func oversizedDatagramIsAnErrorNotACrash() throws {
        try withLoop { loop in
            let socket = try UDPSocket(loop: loop)
            defer { socket.close() }
            let target = try SocketAddress(ip: "127.0.0.1", port: 9)
            let error = caught { () throws(UVError) in try socket.send(bytes: pattern(count: 70_000), to: target) }
            #expect(error?.name == "EMSGSIZE")
        }
    }
}
