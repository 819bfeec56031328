import StarlingNode
import StarlingTestSupport
import Testing

/// `HTTPRequestParser`: llhttp through SwiftNIO, held to the bounds of `HTTPLimits`.
@Suite struct HTTPRequestParserTests {
    private func parse(_ text: String, maxHeadBytes: Int = 16_384, maxBodyBytes: Int = 0)
        -> (requests: [HTTPRequest], problem: HTTPRequestProblem?) {
        HTTPRequestParser(maxHeadBytes: maxHeadBytes, maxBodyBytes: maxBodyBytes).feed(Array(text.utf8))
    }

    @Test func readsRequestsAndPipelinedOnes() throws {
        let requests = parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.0\r\n\r\n").requests
        #expect(requests == [
            HTTPRequest(method: "GET", path: "/metrics", keepAlive: true),
            HTTPRequest(method: "HEAD", path: "/", keepAlive: false),
        ])
        #expect(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").requests.first?.keepAlive == false)
        #expect(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").requests.first?.keepAlive == true)
    }

    @Test func waitsForTheRestOfARequest() {
        let parser = HTTPRequestParser(maxHeadBytes: 1_024, maxBodyBytes: 0)
        #expect(parser.feed(Array("GET /metr".utf8)).requests.isEmpty)
        #expect(parser.isMidRequest)
        #expect(parser.feed(Array("ics HTTP/1.1\r\n\r\n".utf8)).requests == [HTTPRequest(method: "GET", path: "/metrics", keepAlive: true)])
        #expect(!parser.isMidRequest)
    }

    @Test func refusesWhatIsOverItsBoundsOrNotHTTP() {
        let long = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 100)
        #expect(parse(long, maxHeadBytes: 64).problem == .headTooLarge(limit: 64))
        #expect(parse("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").problem == .bodyTooLarge(limit: 0))
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        #expect(parse(chunked).problem == .bodyTooLarge(limit: 0))
        guard case .malformed? = parse("\u{0}\u{1} what\r\n\r\n").problem else {
            Issue.record("binary noise was taken for HTTP")
            return
        }
        // The requests before a refusal are still returned, to be answered; after it nothing is taken.
        let parser = HTTPRequestParser(maxHeadBytes: 1_024, maxBodyBytes: 0)
        let first = parser.feed(Array("GET /a HTTP/1.1\r\n\r\nBAD\u{0}\r\n\r\n".utf8))
        #expect(first.requests.map(\.path) == ["/a"])
        #expect(first.problem != nil)
        #expect(parser.feed(Array("GET / HTTP/1.1\r\n\r\n".utf8)).requests.isEmpty)
    }

    /// Thousands of seeded inputs of HTTP-shaped fragments and noise, fed whole and in random
    /// chunks: no trap, no hang, and the same requests and the same refusal however they arrive.
    @Test func seededRandomInputs() {
        let fragments = [
            "GET ", "HEAD ", "POST ", "DELETE ", "/metrics", "/api/status", "/", "?a=b", " HTTP/1.1", " HTTP/1.0",
            " HTTP/2", "\r\n", "\n", "\r\n\r\n", "Host: x", "Connection: close", "Connection: keep-alive",
            "Content-Length: 3", "Content-Length: -1", "Content-Length: 99999999999999999999",
            "Transfer-Encoding: chunked", "3\r\nabc\r\n0\r\n\r\n", "abc", ": ", " ", "\t",
            "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        ].map { Array($0.utf8) }
        var refused = 0
        var requests = 0
        for seed in UInt64(0)..<3_000 {
            var rng = SeededRandom(seed: seed)
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                if rng.chance(0.8) {
                    input += fragments.randomElement(using: &rng)!
                } else {
                    input += (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            let maxBody = Int.random(in: 0...8, using: &rng)
            let chunk = Int.random(in: 1...17, using: &rng)
            let whole = feed([input[...]], maxBody: maxBody)
            let pieces = feed(stride(from: 0, to: input.count, by: chunk).map { input[$0..<min($0 + chunk, input.count)] }, maxBody: maxBody)
            #expect(whole.requests == pieces.requests, "seed \(seed)")
            #expect(whole.problem == pieces.problem, "seed \(seed)")
            if whole.problem != nil { refused += 1 }
            requests += whole.requests.count
        }
        // The generator reaches both paths.
        #expect(refused > 0)
        #expect(requests > 0)
    }

    /// Requests until the first refusal, and the kind of that refusal (llhttp's messages aside).
    private func feed(_ chunks: [ArraySlice<UInt8>], maxBody: Int) -> (requests: [HTTPRequest], problem: String?) {
        let parser = HTTPRequestParser(maxHeadBytes: 1 << 20, maxBodyBytes: maxBody)
        var requests: [HTTPRequest] = []
        for chunk in chunks {
            let fed = parser.feed(Array(chunk))
            requests += fed.requests
            switch fed.problem {
            case nil: continue
            case .malformed?: return (requests, "malformed")
            case .headTooLarge?: return (requests, "head")
            case .bodyTooLarge?: return (requests, "body")
            }
        }
        return (requests, nil)
    }
}
