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
}
