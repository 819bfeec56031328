import StarlingUV
import Testing

@Suite struct TCPTests {
    @Test func echoesOneMebibyteIntact() throws {
        try withLoop { loop in
            let server = try TCPServer(loop: loop)
            defer { server.close() }
            var accepted: [TCPStream] = []
            defer { accepted.forEach { $0.close() } }
            var serverErrors: [String] = []

            try server.bind(to: loopback)
            try server.listen { result in
                switch result {
                case .failure(let error):
                    serverErrors.append("\(error)")
                case .success(let stream):
                    accepted.append(stream)
                    do {
                        try stream.startReading { event in
                            switch event {
                            case .bytes(let bytes):
                                do { try stream.write(bytes: bytes) } catch { serverErrors.append("\(error)") }
                            case .endOfFile:
                                do { try stream.shutdown() } catch { serverErrors.append("\(error)") }
                            case .failed(let error):
                                serverErrors.append("\(error)")
                            }
                        }
                    } catch {
                        serverErrors.append("\(error)")
                    }
                }
            }
            let serverAddress = try server.localAddress

            let payload = pattern(count: 1 << 20)
            let client = try TCPStream(loop: loop)
            defer { client.close() }
            var connected = 0, written = 0, shutDown = 0
            var echoed: [UInt8] = []
            var clientEvents: [String] = []
            var eof = false
            var addresses: (peer: SocketAddress, local: SocketAddress)?
            try client.connect(to: serverAddress) { error in
                connected += 1
                if let error { clientEvents.append("connect \(error)"); return }
                do {
                    // Ask while connected: after both FINs getpeername fails with ENOTCONN.
                    addresses = (try client.peerAddress, try client.localAddress)
                    try client.startReading { event in
                        switch event {
                        case .bytes(let bytes): echoed += bytes
                        case .endOfFile: eof = true
                        case .failed(let error): clientEvents.append("read \(error)")
                        }
                    }
                    try client.write(bytes: payload) { error in
                        written += 1
                        if let error { clientEvents.append("write \(error)") }
                    }
                    try client.shutdown { error in
                        shutDown += 1
                        if let error { clientEvents.append("shutdown \(error)") }
                    }
                } catch {
                    clientEvents.append("\(error)")
                }
            }
            try drive(loop, timeoutMs: 10_000, "echo of 1 MiB") { eof || !clientEvents.isEmpty }

            #expect(clientEvents.isEmpty)
            #expect(serverErrors.isEmpty)
            #expect((connected, written, shutDown) == (1, 1, 1))
            #expect(echoed.count == payload.count)
            #expect(echoed == payload)
            #expect(accepted.count == 1)
            #expect(addresses?.peer == serverAddress)
            #expect(addresses?.local.port != 0)
        }
    }

    @Test func connectingToAClosedPortFailsExactlyOnce() throws {
        try withLoop { loop in
            // Take an ephemeral port and release it, so nothing listens there.
            let probe = try TCPServer(loop: loop)
            try probe.bind(to: loopback)
            try probe.listen { _ in }
            let closedAddress = try probe.localAddress
            probe.close()
            try drive(loop, "probe closed") { true }

            let client = try TCPStream(loop: loop)
            defer { client.close() }
            var results: [UVError?] = []
            try client.connect(to: closedAddress) { results.append($0) }
            try drive(loop, "connect result") { !results.isEmpty }
            // A few more non-blocking iterations must not deliver it again.
            for _ in 0..<5 { loop.runOnce(nowait: true) }
            #expect(results.count == 1)
            #expect(results.first??.name == "ECONNREFUSED")
        }
    }

    @Test func closingAStreamCancelsItsPendingWriteOnce() throws {
        try withLoop { loop in
            let client = try TCPStream(loop: loop)
            var connectResults: [UVError?] = []
            try client.connect(to: try SocketAddress(ip: "127.0.0.1", port: 9)) { connectResults.append($0) }
            client.close()
            try drive(loop, "cancelled connect") { !connectResults.isEmpty }
            for _ in 0..<3 { loop.runOnce(nowait: true) }
            #expect(connectResults.count == 1)
            #expect(connectResults.first??.name == "ECANCELED")
            #expect(caught { () throws(UVError) in try client.write(bytes: [1]) }?.name == "EBADF")
        }
    }

    /// Over `maxConnections` open accepted streams, a connection reads `refusalMessage` and its
    /// end of file (not a reset) and `onRefused` says why; closing an accepted stream frees its place.
    @Test func aConnectionOverTheCapReadsTheRefusalAndItsEnd() throws {
        try withLoop { loop in
            let server = try TCPServer(loop: loop)
            defer { server.close() }
            server.maxConnections = 1
            server.refusalMessage = Array("full\r\n".utf8)
            var refusals: [TCPServer.Refusal] = []
            server.onRefused = { refusals.append($0) }
            var accepted: [TCPStream] = []
            defer { accepted.forEach { $0.close() } }
            try server.bind(to: loopback)
            try server.listen { result in
                if case .success(let stream) = result { accepted.append(stream) }
            }
            let address = try server.localAddress

            let first = try TCPStream(loop: loop)
            defer { first.close() }
            try first.connect(to: address) { _ in }
            try drive(loop, "the first connection accepted") { accepted.count == 1 }
            #expect(server.openConnections == 1)

            let second = try TCPStream(loop: loop)
            defer { second.close() }
            var read: [UInt8] = []
            var ending: String?
            try second.connect(to: address) { error in
                if let error { ending = "connect \(error)"; return }
                // Sent before reading: the refusal must still arrive, not a reset.
                try? second.write(bytes: Array("PING\r\n".utf8))
                try? second.startReading { event in
                    switch event {
                    case .bytes(let bytes): read += bytes
                    case .endOfFile: ending = "end of file"
                    case .failed(let error): ending = "\(error)"
                    }
                }
            }
            try drive(loop, "the second connection ended") { ending != nil }
            #expect(ending == "end of file")
            #expect(read == Array("full\r\n".utf8))
            #expect(refusals == [.atCapacity(maxConnections: 1)])
            #expect(accepted.count == 1)

            accepted[0].close()
            #expect(server.openConnections == 0)
            let third = try TCPStream(loop: loop)
            defer { third.close() }
            try third.connect(to: address) { _ in }
            try drive(loop, "a third connection accepted once the first closed") { accepted.count == 2 }
        }
    }

    /// A bind whose port is taken for TCP fails at bind (libuv would keep the error for a listen).
    @Test func bindingATakenPortFails() throws {
        try withLoop { loop in
            let holder = try TCPServer(loop: loop)
            defer { holder.close() }
            try holder.bind(to: loopback)
            try holder.listen { _ in }
            let taken = try holder.localAddress
            let second = try TCPServer(loop: loop)
            defer { second.close() }
            let error = caught { () throws(UVError) in try second.bind(to: taken) }
            #expect(error?.name == "EADDRINUSE")
            // Named as the bind of that address, which is what failed (an operator reads it).
            #expect(error?.operation == "uv_tcp_bind \(taken)", "\(String(describing: error))")
        }
    }
}

@Suite struct TCPUserTimeoutTests {
    @Test("setUserTimeout sets TCP_USER_TIMEOUT before connect; bad values and unopened sockets fail clearly")
    func setsUserTimeout() throws {
        try withLoop { loop in
            let stream = try TCPStream(loop: loop, socketFor: loopback)
            defer { stream.close() }
            try stream.setUserTimeout(milliseconds: 1_500)
            try stream.setUserTimeout(milliseconds: 0)
            do throws(UVError) {
                try stream.setUserTimeout(milliseconds: -1)
                Issue.record("a negative timeout was accepted")
            } catch {
                #expect(error.name == "EINVAL")
                #expect(error.operation.contains("TCP_USER_TIMEOUT"))
            }
            // Without `socketFor` there is no socket before connect: EBADF, not a silent no-op.
            let lazy = try TCPStream(loop: loop)
            defer { lazy.close() }
            #expect(throws: UVError.self) { try lazy.setUserTimeout(milliseconds: 1_500) }
            stream.close()
            #expect(throws: UVError.self) { try stream.setUserTimeout(milliseconds: 1_500) }
        }
    }

    @Test("retransmissions reads TCP_INFO: none on a quiet socket; a stream without a socket fails clearly")
    func readsRetransmissions() throws {
        try withLoop { loop in
            let stream = try TCPStream(loop: loop, socketFor: loopback)
            defer { stream.close() }
            let quiet = try stream.retransmissions()
            #expect(quiet.timeoutsInARow == 0 && quiet.unacknowledgedSegments == 0 && quiet.waitedThroughTimeoutsUs == 0)
            // 50 ms, 100 ms and 200 ms waited; the next wait is 400 ms.
            #expect(TCPRetransmissions(timeoutsInARow: 3, timeoutUs: 400_000, unacknowledgedSegments: 2).waitedThroughTimeoutsUs == 350_000)
            let lazy = try TCPStream(loop: loop)
            defer { lazy.close() }
            do throws(UVError) {
                _ = try lazy.retransmissions()
                Issue.record("a stream without a socket gave TCP_INFO")
            } catch {
                #expect(error.operation.contains("TCP_INFO"))
            }
        }
    }
}
