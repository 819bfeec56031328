import Foundation

/// The demo's jobs: a few closed-loop "lanes" per kind, each submitting one job, checking its
/// answer, pausing, and submitting the next, until told to stop. Lanes alternate between two
/// clients, each entering the cluster at a different agent.
public struct DemoJobKind: Sendable {
    public var service: String
    public var lanes: Int
    /// The least time from one submission of a lane to its next.
    public var pace: Duration
    /// What one lane's job `n` carries, and the answer a correct run gives.
    public var job: @Sendable (_ n: Int) -> (payload: [UInt8], expected: [UInt8])
    public var summary: String

    public static func echo() -> DemoJobKind {
        DemoJobKind(service: "echo", lanes: 4, pace: .milliseconds(20), job: { n in
            let bytes = Array("hello from starling demo #\(n)".utf8)
            return (bytes, bytes)
        }, summary: "echo: 4 lanes, a job every 20 ms each (up to 200/s)")
    }

    public static func sha256() -> DemoJobKind {
        DemoJobKind(service: "sha256", lanes: 2, pace: .milliseconds(50), job: { n in
            let digest = knownDigests[n % knownDigests.count]
            return (Array("starling demo payload \(n % knownDigests.count)".utf8), Array(digest.utf8))
        }, summary: "sha256: 2 lanes, a job every 50 ms each (up to 40/s)")
    }

    public static func sleep(ms: Int, lanes: Int) -> DemoJobKind {
        DemoJobKind(service: "sleep", lanes: lanes, pace: .zero, job: { _ in
            (Array("\(ms)".utf8), Array("slept \(ms) ms".utf8))
        }, summary: "sleep: \(lanes) lanes of \(ms) ms jobs back to back (more than one worker can do: watch it scale)")
    }

    /// SHA-256 of "starling demo payload 0" … "7", lowercase hex.
    private static let knownDigests = [
        "d452d093192aa5ccdddb739ac4cd81d2f580e033162a57519d77a601e7208edb",
        "939051fa8f50ee9eb594217efe50fb5bc80c075cc58674a51613ea7f91b43e44",
        "6c7d59ec067ee68249b4590a39bc711a14687f724f28ed83c54b24c5f4489f94",
        "e69386960bfdd3ae41170ab40c83c6eaa2a09457d352644de09fa73ebc2fb01b",
        "7bcdefd6ffafe34acecd302fb3ae7dace55425ac528c34a02b064a11c79e5435",
        "29c235f3e3c4856cf5af4c3c0ce86465ad9631c21f29a2ab63ca1382e349e6dd",
        "8b473ee5d9b8c9cdb214c2e073b59bb55a7b58825ccd485bf081bef3c6ec356f",
        "babf1d76f351062603a4482e91566fa6e408781264f452affa9a180927ff6f5c",
    ]
}
