import StarlingCore
import Testing

@Suite struct ServiceDefinitionTests {
    private func definition(_ handler: ServiceDefinition.Handler = .builtin(.echo)) throws -> ServiceDefinition {
        ServiceDefinition(service: try ServiceName("echo"), handler: handler)
    }

    /// The key `validate()` names, or nil when it passes.
    private func failingKey(_ change: (inout ServiceDefinition) -> Void) throws -> ServiceDefinition.Key? {
        var value = try definition()
        change(&value)
        do {
            try value.validate()
            return nil
        } catch {
            return error.key
        }
    }

    @Test func defaultsAreValidAndMatchTheDocumentedValues() throws {
        let value = try definition()
        try value.validate()
        #expect(value.concurrency == 1)
        #expect(value.timeoutMs == 30_000)
        #expect(value.minWorkers == 1)
        #expect(value.maxWorkers == 8)
        #expect(value.scaleUpBacklog == 4)
        #expect(value.scaleDownIdleMs == 10_000)
        #expect(value.maxPayloadBytes == 1_048_576)
        #expect(value.maxResultBytes == 16_777_216)
    }

    @Test func boundsAreInclusive() throws {
        #expect(try failingKey { $0.concurrency = 1 } == nil)
        #expect(try failingKey { $0.concurrency = 1024 } == nil)
        #expect(try failingKey { $0.timeoutMs = 1 } == nil)
        #expect(try failingKey { $0.timeoutMs = 86_400_000 } == nil)
        #expect(try failingKey { $0.minWorkers = 1 } == nil)
        #expect(try failingKey { $0.minWorkers = 8; $0.maxWorkers = 8 } == nil)
        #expect(try failingKey { $0.maxWorkers = 1024 } == nil)
        #expect(try failingKey { $0.scaleUpBacklog = 1 } == nil)
        #expect(try failingKey { $0.scaleDownIdleMs = 0 } == nil)
        #expect(try failingKey { $0.maxPayloadBytes = 0; $0.maxResultBytes = 0 } == nil)
        #expect(try failingKey { $0.maxPayloadBytes = 64 << 20; $0.maxResultBytes = 256 << 20 } == nil)
    }

    @Test func everyViolationNamesItsKey() throws {
        #expect(try failingKey { $0.concurrency = 0 } == .concurrency)
        #expect(try failingKey { $0.concurrency = 1025 } == .concurrency)
        #expect(try failingKey { $0.timeoutMs = 0 } == .timeoutMs)
        #expect(try failingKey { $0.timeoutMs = 86_400_001 } == .timeoutMs)
        #expect(try failingKey { $0.maxWorkers = 0 } == .maxWorkers)
        #expect(try failingKey { $0.maxWorkers = 1025 } == .maxWorkers)
        #expect(try failingKey { $0.minWorkers = -1 } == .minWorkers)
        #expect(try failingKey { $0.minWorkers = 0 } == .minWorkers)
        #expect(try failingKey { $0.minWorkers = 9 } == .minWorkers)
        #expect(try failingKey { $0.scaleUpBacklog = 0 } == .scaleUpBacklog)
        #expect(try failingKey { $0.scaleDownIdleMs = -1 } == .scaleDownIdleMs)
        #expect(try failingKey { $0.maxPayloadBytes = -1 } == .maxPayloadBytes)
        #expect(try failingKey { $0.maxPayloadBytes = (64 << 20) + 1 } == .maxPayloadBytes)
        #expect(try failingKey { $0.maxResultBytes = -1 } == .maxResultBytes)
        #expect(try failingKey { $0.maxResultBytes = (256 << 20) + 1 } == .maxResultBytes)
        #expect(try failingKey { $0.handler = .command([]) } == .command)
        #expect(try failingKey { $0.handler = .command([""]) } == .command)
        #expect(try failingKey { $0.handler = .command(["/bin/echo", "a\u{0}b"]) } == .command)
        #expect(try failingKey { $0.handler = .command(["/bin/echo"] + Array(repeating: "x", count: 256)) } == .command)
        #expect(try failingKey { $0.handler = .command(["/bin/echo", "hi"]) } == nil)
        #expect(try failingKey { $0.service = .agent } == .service)
    }

    @Test func messagesUseTheTOMLSpellingAndShowTheValue() throws {
        var value = try definition()
        value.minWorkers = 9
        #expect(throws: ServiceDefinition.Invalid(key: .minWorkers, reason: "must be in 1...max_workers (8), got 9")) {
            try value.validate()
        }
        value = try definition()
        value.timeoutMs = 0
        do {
            try value.validate()
            Issue.record("timeout_ms = 0 passed")
        } catch {
            #expect(error.description == "timeout_ms: must be in 1...86400000, got 0")
        }
        value = try definition()
        value.maxResultBytes = 300_000_000
        #expect(throws: ServiceDefinition.Invalid(
            key: .maxResultBytes, reason: "must be in 0...268435456 (256 MiB, the hard bound), got 300000000")) {
            try value.validate()
        }
    }

    @Test func keysAndBuiltinsAreSpelledAsInTheFiles() {
        #expect(ServiceDefinition.Key.allCases.map(\.rawValue) == [
            "service", "handler", "command", "concurrency", "timeout_ms", "min_workers", "max_workers",
            "scale_up_backlog", "scale_down_idle_ms", "max_payload_bytes", "max_result_bytes",
        ])
        #expect(ServiceDefinition.Builtin.allCases.map(\.rawValue) == ["echo", "sleep", "sha256", "spin"])
    }
}
