import StarlingClient
import StarlingCore
import StarlingDemo
import Testing

@Suite struct DemoAnswerCheckTests {
    private func check(_ answer: JobAnswer, waited: Duration = .milliseconds(5)) -> DemoAnswerCheck {
        DemoAnswerCheck(answer: answer, expected: Array("abc".utf8), service: "echo", key: "k1", waited: waited)
    }

    @Test func theExpectedResultIsOK() {
        #expect(check(.ok(Array("abc".utf8))) == .ok)
        #expect(check(.ok(Array("abc".utf8))).problem == nil)
    }

    @Test func anotherResultIsWrongAndShownSafely() {
        let result = check(.ok(Array("ab\u{7}".utf8)))
        #expect(result == .wrong(problem: "echo job k1: wrong result 'ab?', expected 'abc'"))
        var counts = DemoJobCounts()
        result.count(into: &counts)
        #expect(counts == DemoJobCounts(wrong: 1))
        #expect(counts.answered == 1)
    }

    @Test func failAndErrAreCountedApart() {
        var counts = DemoJobCounts(submitted: 2)
        let failed = check(.failed("exit status 3"))
        let error = check(.error(code: .noService, message: "no echo"))
        #expect(failed.problem == "echo job k1: FAIL exit status 3")
        #expect(error.problem == "echo job k1: ERR \(ClientErrorCode.noService.rawValue) no echo")
        failed.count(into: &counts)
        error.count(into: &counts)
        #expect(counts == DemoJobCounts(submitted: 2, failed: 1, errors: 1))
        #expect(counts.lost == 0)
    }

    @Test func busyAndUnavailableAreRetriedForTenSeconds() {
        #expect(check(.error(code: .busy, message: "")) == .retry)
        #expect(check(.error(code: .unavailable, message: "")) == .retry)
        #expect(check(.error(code: .busy, message: "full"), waited: .seconds(10)) == .error(problem: "echo job k1: ERR \(ClientErrorCode.busy.rawValue) full"))
    }

    @Test func aLongResultIsCutToEightyBytes() {
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 200)
        guard case .wrong(let problem) = check(.ok(long)) else {
            Issue.record("not wrong")
            return
        }
        #expect(problem.contains("'\(String(repeating: "x", count: 80))'"))
    }
}
