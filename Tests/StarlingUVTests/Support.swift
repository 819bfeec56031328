import StarlingUV
import Testing

/// Runs `body` with a fresh loop, then closes the loop, which fails if any handle was left open.
///
/// Tests close their handles with `defer` inside `body`, so they are closed even when `body` throws.
func withLoop(_ body: (EventLoop) throws -> Void) throws {
    let loop = try EventLoop()
    do {
        try body(loop)
    } catch {
        try? loop.close()
        throw error
    }
    try loop.close()
}

/// Drives the loop until `condition` holds; records a test failure at the deadline.
func drive(_ loop: EventLoop, timeoutMs: UInt64 = 5000, _ what: Comment,
           sourceLocation: SourceLocation = #_sourceLocation, until condition: () -> Bool) throws {
    let met = try loop.run(until: condition, timeoutMs: timeoutMs)
    #expect(met, "deadline passed waiting for: \(what)", sourceLocation: sourceLocation)
}

let loopback = try! SocketAddress(ip: "127.0.0.1", port: 0)

/// A deterministic payload that catches reordered or dropped chunks.
func pattern(count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
}

/// The `UVError` that `body` throws, or nil.
func caught(_ body: () throws(UVError) -> Void) -> UVError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
