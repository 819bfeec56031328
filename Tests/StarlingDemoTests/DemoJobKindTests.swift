import Crypto
import Foundation
import StarlingDemo
import Testing

@Suite struct DemoJobKindTests {
    @Test func echoExpectsItsPayloadBack() {
        let (payload, expected) = DemoJobKind.echo().job(7)
        #expect(payload == expected)
        #expect(String(decoding: payload, as: UTF8.self) == "hello from starling demo #7")
    }

    @Test func sha256ExpectsTheTrueDigestOfEachPayload() {
        for n in 0..<16 {
            let (payload, expected) = DemoJobKind.sha256().job(n)
            let digest = SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined()
            #expect(String(decoding: expected, as: UTF8.self) == digest, "job \(n)")
        }
    }

    @Test func sleepExpectsTheSleepHandlersAnswer() {
        let kind = DemoJobKind.sleep(ms: 200, lanes: 12)
        let (payload, expected) = kind.job(0)
        #expect(payload == Array("200".utf8))
        #expect(expected == Array("slept 200 ms".utf8))
        #expect(kind.lanes == 12)
        #expect(kind.pace == .zero)
    }
}
