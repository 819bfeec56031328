import StarlingCore
import StarlingUV

/// The connection and failover: connect to the current node; when the connection fails or drops,
/// move to the next node (after a backoff that grows along a streak of failures) and resend every
/// unanswered call with the same key; give up, failing every pending call with `.unreachable`,
/// after `maxConnectAttempts` failures or `failoverTimeoutMs` of failing, whichever comes first.
/// A streak ends when an answer arrives.
///
/// With a token, each connection starts with `AUTH` alone; the unanswered calls go out once the
/// node answers `WELCOME` (waiting one round trip means a refused token is answered before any
/// job is sent, so the node never closes on unread requests). `ERR - UNAUTHORIZED`, with or
/// without a token, fails every pending call with `.unauthorized` and is not failed over: the
/// nodes share the cluster's tokens (docs/PROTOCOL.md, "Authentication").
extension ClientEngine {
    /// Starts connecting if there is work and no connection or attempt under way.
    func ensureLink() {
        guard case .idle = link, !table.isEmpty, !isShutDown else { return }
        scheduleAttempt(afterMs: configuration.backoffMs(afterFailures: failures))
    }

    /// Bytes queued in the outbox go out in one write.
    func flush() {
        guard !outbox.isEmpty, case .connected(let stream) = link else { return }
        let attempt = generation
        do {
            try stream.write(bytes: outbox) { [weak self] error in
                guard let self, let error, attempt == self.generation else { return }
                self.connectionFailed("write to \(self.currentNode): \(error)")
                self.afterEvent()
            }
        } catch {
            connectionFailed("write to \(currentNode): \(error)")
            return
        }
        // The stream copied the bytes: empty the outbox in place, keeping a small one's storage.
        if outbox.capacity > 256 * 1024 {
            outbox = []
        } else {
            outbox.removeAll(keepingCapacity: true)
        }
    }

    var currentNode: SocketAddress { nodes[nodeIndex] }

    // MARK: - Connecting

    private func scheduleAttempt(afterMs delay: UInt64) {
        link = .backingOff
        let attempt = generation
        do {
            try linkTimer.start(afterMs: delay) { [weak self] in
                guard let self, attempt == self.generation else { return }
                self.connect()
                self.afterEvent()
            }
        } catch {
            // Only a closed timer fails, and it is closed only by shutDown().
            assertionFailure("link timer: \(error)")
        }
    }

    private func connect() {
        guard !table.isEmpty else {
            link = .idle
            return
        }
        generation += 1
        let attempt = generation
        let node = currentNode
        let stream: TCPStream
        do {
            stream = try TCPStream(loop: loop)
        } catch {
            connectionFailed("connect to \(node): \(error)")
            return
        }
        link = .connecting(stream)
        do {
            try stream.connect(to: node) { [weak self] error in
                guard let self, attempt == self.generation else { return }
                if let error {
                    self.connectionFailed("connect to \(node): \(error.name) (\(error.message))")
                } else {
                    self.connected(stream)
                }
                self.afterEvent()
            }
            try linkTimer.start(afterMs: configuration.connectTimeoutMs) { [weak self] in
                guard let self, attempt == self.generation else { return }
                self.connectionFailed("connect to \(node): no answer within \(self.configuration.connectTimeoutMs) ms")
                self.afterEvent()
            }
        } catch {
            connectionFailed("connect to \(node): \(error)")
        }
    }

    private func connected(_ stream: TCPStream) {
        linkTimer.stop()
        link = .connected(stream)
        decoder = ClientResponseDecoder(maxBodyBytes: configuration.maxAnswerBytes)
        let attempt = generation
        do {
            try? stream.setNoDelay(true)  // latency only; the connection works without it
            try stream.startReading { [weak self] event in
                guard let self, attempt == self.generation else { return }
                self.read(event)
                self.afterEvent()
            }
        } catch {
            connectionFailed("read from \(currentNode): \(error)")
            return
        }
        outbox = []
        if let token = configuration.token {
            ClientRequest.auth(token: token).encode(into: &outbox)
            awaitingWelcome = true
        } else {
            askShardsFirst()
            resendUnanswered()
        }
    }

    /// Everything unanswered goes out again, same keys, in the callers' order.
    private func resendUnanswered() {
        for request in table.requestsToResend() { request.encode(into: &outbox) }
    }

    // MARK: - Reading answers

    private func read(_ event: StreamReadEvent) {
        switch event {
        case .bytes(let bytes):
            decoder.append(bytes)
            let attempt = generation
            while attempt == generation, let item = decoder.next() {
                switch item {
                case .response(.welcome):
                    welcomed()
                case .response(.error(nil, .unauthorized, let message)):
                    refused(message)
                case .response(let response) where awaitingWelcome:
                    // Refused before AUTH was read (draining, too many clients) or AUTH not
                    // understood: not this node.
                    connectionFailed("\(currentNode) answered AUTH with \(response.summary)")
                case .response(let response):
                    answered(response)
                case .error(let failure):
                    if failure.isFatal {
                        connectionFailed("\(currentNode) broke the protocol: \(failure)")
                    } else if let key = failure.key {
                        answer(key, with: .failure(.badAnswer("\(failure)")))
                    }
                    // A malformed line about no job in particular is skipped.
                }
            }
        case .endOfFile:
            connectionFailed("\(currentNode) closed the connection")
        case .failed(let error):
            connectionFailed("read from \(currentNode): \(error.name) (\(error.message))")
        }
    }

    private func welcomed() {
        guard awaitingWelcome else { return }  // a WELCOME nobody asked for is ignored
        awaitingWelcome = false
        failures = 0
        failingSince = nil
        askShardsFirst()
        resendUnanswered()
    }

    /// `ERR - UNAUTHORIZED`: every pending call fails; the node closes this connection.
    private func refused(_ message: String) {
        let error = StarlingClientError.unauthorized(node: currentNode.description, message: message)
        dropLink()
        nodeIndex = (nodeIndex + 1) % nodes.count
        failures = 0
        failingSince = nil
        resume(table.removeAll(with: error))
    }

    private func answered(_ response: ClientResponse) {
        // An answer proves the node works: a streak of failures ends.
        failures = 0
        failingSince = nil
        switch response {
        case .ok(let key, let result):
            answer(key, with: .success(.job(.ok(result))))
        case .fail(let key, let text):
            answer(key, with: .success(.job(.failed(String(decoding: text, as: UTF8.self)))))
        case .error(let key?, let code, let message):
            answer(key, with: .success(.job(.error(code: code, message: message))))
        case .error(nil, let code, let message):
            let error = StarlingClientError.badAnswer("\(code.rawValue): \(message)")
            switch table.refuseControl(error) {
            case .call(let refused):
                resume([refused])
            case .shards:
                shardsRefused(code: code)
                // Only BAD_REQUEST is about SHARDS itself; another code refuses the connection
                // (`ERR - BUSY too many connections`, a draining worker), the one line it gets:
                // the oldest call learns why, as it would had SHARDS not been sent first.
                if code != .badRequest, case .call(let refused)? = table.refuseControl(error) { resume([refused]) }
            case nil:
                break
            }
        case .pong:
            if let resumption = table.answerControl(status: false, with: .pong) { resume([resumption]) }
        case .welcome:
            break  // a WELCOME nobody asked for (`welcomed()` takes the one that was)
        case .status(let json):
            if let resumption = table.answerControl(status: true, with: .status(json)) { resume([resumption]) }
        case .shards(let service, let shards):
            shardsAnswered(service: service, shards: shards)
        }
    }

    /// Resumes the callers of `key` with `result` and sends the waiting jobs that take its slot.
    private func answer(_ key: JobKey, with result: Result<Reply, StarlingClientError>) {
        let (resumptions, admitted) = table.answer(key: key, with: result)
        resume(resumptions)
        send(admitted.map(\.request))
    }

    // MARK: - Failure and failover

    /// The current connection or attempt failed: tear it down, then try the next node, or give up.
    func connectionFailed(_ reason: String) {
        guard !isShutDown else { return }
        dropLink()
        let now = loop.now
        failures += 1
        failingSince = failingSince ?? now
        lastFailure = reason
        nodeIndex = (nodeIndex + 1) % nodes.count
        if table.isEmpty {
            // Nothing waits: stay idle, and start afresh with the next call.
            failures = 0
            failingSince = nil
            return
        }
        let budgetSpent = failures >= configuration.maxConnectAttempts
            || now - failingSince! >= configuration.failoverTimeoutMs
        if budgetSpent {
            let error = StarlingClientError.unreachable(nodes: nodes.map(\.description), attempts: failures,
                                                        lastError: lastFailure)
            failures = 0
            failingSince = nil
            resume(table.removeAll(with: error))
            return
        }
        scheduleAttempt(afterMs: configuration.backoffMs(afterFailures: failures))
    }

    /// Closes the connection or attempt, if any, so none of its callbacks counts any more.
    func dropLink() {
        generation += 1
        linkTimer.stop()
        outbox = []
        awaitingWelcome = false
        forgetShards()
        switch link {
        case .connecting(let stream), .connected(let stream):
            stream.close()
        case .idle, .backingOff:
            break
        }
        link = .idle
    }
}
