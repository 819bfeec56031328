import StarlingClient
import StarlingCore
import StarlingTestSupport
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The number in a generated key: what follows the client's 10-character random prefix, in base 36.
private func number(_ key: String) -> UInt64? { UInt64(key.dropFirst(10), radix: 36) }

private func shard(_ key: String) -> Int { KeyShard.of(key.utf8) }

extension JobAnswer {
    fileprivate var isOK: Bool { if case .ok = self { true } else { false } }
}

/// Whether `keys` were made one after the other without skipping: plain keys.
private func areConsecutive(_ keys: some Collection<String>) -> Bool {
    let numbers = keys.compactMap(number)
    return numbers.count == keys.count && zip(numbers, numbers.dropFirst()).allSatisfy { $1 == $0 + 1 }
}

/// Generated keys in the key shards the connected node holds (docs/PROTOCOL.md, "Key shards"),
/// against a `FakeNode` that answers `SHARDS` with a set the test chooses.
@Suite struct GeneratedKeyShardTests {
    /// Three shards, far apart.
    static let held = KeyShardSet(bits: 1 << 3 | 1 << 17 | 1 << 42)

    /// Submits `count` echo jobs one after the other, each answered with its payload.
    private func submitInTurn(_ count: Int, to client: StarlingClient, service: String = "echo") async throws {
        for i in 0..<count {
            let answer = try await client.submit(service: service, payload: bytes("\(i)"))
            #expect(answer == (service == "fail" ? .failed("exit status 3") : .ok(bytes("\(i)"))))
        }
    }

    @Test func generatedKeysFallInTheNodesShardsAndStayUnique() async throws {
        let node = try FakeNode(FakeBehavior(shards: Self.held))
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        // PING goes out after SHARDS, so its answer comes after SHARDS's: the client knows the shards.
        try await client.ping()
        try await submitInTurn(200, to: client)
        let concurrent = try await withThrowingTaskGroup(of: JobAnswer.self) { group in
            for i in 0..<300 { group.addTask { try await client.submit(service: "echo", payload: bytes("c\(i)")) } }
            var count = 0
            for try await answer in group where answer.isOK { count += 1 }
            return count
        }
        #expect(concurrent == 300)

        let keys = node.seen.keys
        #expect(keys.count == 500 && Set(keys).count == 500, "generated keys are unique")
        let outside = keys.filter { !Self.held.contains(shard($0)) }
        #expect(outside.isEmpty, "keys outside the node's shards: \(outside.prefix(5))")
        let inTurn = keys.prefix(200).compactMap(number)
        #expect(inTurn.count == 200 && inTurn == inTurn.sorted(), "the counter only grows")
        #expect(!areConsecutive(keys.prefix(200)), "numbers whose keys fall outside were skipped")
        await client.close()
    }

    @Test func everySingleShardCanBeReached() async throws {
        for shard in 0..<KeyShard.count {
            var only = KeyShardSet()
            only.insert(shard)
            let node = try FakeNode(FakeBehavior(shards: only))
            defer { node.stop() }
            let client = try StarlingClient(nodes: [node.address])
            try await client.ping()
            try await submitInTurn(8, to: client)
            let keys = node.seen.keys
            #expect(keys.count == 8 && keys.allSatisfy { KeyShard.of($0.utf8) == shard }, "shard \(shard): \(keys)")
            await client.close()
        }
    }

    @Test func keysOfAnotherServiceThanTheNodesArePlain() async throws {
        let node = try FakeNode(FakeBehavior(shards: Self.held, service: "echo"))
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        try await client.ping()
        try await submitInTurn(50, to: client, service: "fail")
        #expect(areConsecutive(node.seen.keys) && node.seen.keys.count == 50)
        await client.close()
    }

    @Test func aNodeThatAnswersErrKeepsPlainKeysAndIsNotAskedAgain() async throws {
        let node = try FakeNode()  // SHARDS is answered ERR - BAD_REQUEST, as by an older worker
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        // SHARDS and PING go out together: the ERR is SHARDS's, the PONG this call's.
        try await client.ping()
        try await submitInTurn(100, to: client)
        #expect(try await client.status() == bytes("{\"fake\":true}"))
        #expect(areConsecutive(node.seen.keys) && node.seen.keys.count == 100)
        #expect(node.seen.shardsAsked == 1)
        await client.close()
    }

    @Test func withATokenShardsAreAskedAfterWelcome() async throws {
        let node = try FakeNode(FakeBehavior(token: "t0ken", shards: Self.held))
        defer { node.stop() }
        var configuration = StarlingClient.Configuration()
        configuration.token = try ClientToken("t0ken")
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)
        try await client.ping()
        try await submitInTurn(50, to: client)
        let seen = node.seen
        #expect(seen.auths == 1 && seen.refusals == 0 && seen.shardsAsked >= 1)
        #expect(seen.keys.allSatisfy { Self.held.contains(shard($0)) })
        await client.close()
    }

    @Test func shardsAreReadAgainWhileJobsAreSubmitted() async throws {
        var first = KeyShardSet()
        first.insert(3)
        var second = KeyShardSet()
        second.insert(60)
        let node = try FakeNode(FakeBehavior(shards: first))
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        try await client.ping()
        try await submitInTurn(20, to: client)
        #expect(node.seen.keys.allSatisfy { shard($0) == 3 })

        node.holdShards(second)
        let moved = try await pollAsync(within: .seconds(10), every: .milliseconds(20)) { () async throws -> Bool? in
            _ = try await client.submit(service: "echo", payload: [])
            return node.seen.keys.last.map { shard($0) == 60 } == true ? true : nil
        }
        #expect(moved == true, "the client read the node's new shards")
        let before = node.seen.keys.count
        try await submitInTurn(20, to: client)
        #expect(node.seen.keys.dropFirst(before).allSatisfy { shard($0) == 60 })
        #expect(node.seen.shardsAsked >= 2)
        await client.close()
    }
}
