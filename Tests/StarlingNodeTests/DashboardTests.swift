import Foundation
import StarlingClient
import StarlingCore
import StarlingTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The dashboard at `GET /` (README, "Watching it over HTTP"): what the server sends, and, in
/// headless Chromium, that the page names a service's primary and follows a kill -9 to the new one.
@Suite(.serialized) struct DashboardTests {
    /// Debian's `chromium`, or nil; when missing the browser test says why and is skipped.
    static let chromium: String? = {
        let found = HeadlessChromium.locate()
        if found == nil { print("DashboardTests: the browser test is skipped: no chromium on PATH (scripts/ensure-deps installs Debian's)") }
        return found
    }()

    /// What the test reads of the page: the `echo` card and the connection state.
    static let probe = """
        (() => {
          const card = document.querySelector('[data-service="echo"]');
          const conn = document.getElementById("conn");
          return {
            primary: card ? card.dataset.primary : "",
            text: card ? card.innerText : "",
            members: card ? card.querySelectorAll("tr[data-member]").length : 0,
            connection: conn ? conn.dataset.state : "",
            failovers: [...document.querySelectorAll('#events li[data-kind="failover"]')].map((li) => li.innerText),
          };
        })()
        """

    struct PageState {
        var primary: String
        var text: String
        var members: Int
        var connection: String
        var failovers: [String]

        init?(_ value: Any?) {
            guard let object = value as? [String: Any] else { return nil }
            primary = object["primary"] as? String ?? ""
            text = object["text"] as? String ?? ""
            members = object["members"] as? Int ?? 0
            connection = object["connection"] as? String ?? ""
            failovers = object["failovers"] as? [String] ?? []
        }
    }

    @Test("GET / is one self-contained page with a strict CSP; /api/status keeps STATUS and adds jobs and events")
    func servesThePageAndItsJSON() async throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--http", "127.0.0.1:0"])
        let port = try #require(worker.httpAddress).port

        let page = try #require(try HTTPTestConnection.get("/", port: port))
        #expect(page.status == 200)
        #expect(page.headers["content-type"] == "text/html; charset=utf-8")
        let policy = try #require(page.headers["content-security-policy"])
        #expect(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"))
        #expect(policy.contains("script-src 'sha256-") && !policy.contains("unsafe"))
        #expect(!policy.contains("http"), "no other origin: \(policy)")
        // Offline: nothing in the page names another origin (the SVG namespace is a name, never fetched).
        let fetchable = page.text.replacingOccurrences(of: "\"http://www.w3.org/2000/svg\"", with: "")
        for origin in ["http://", "https://", "src=", "href=", "url(", "@import", "@font-face"] {
            #expect(!fetchable.contains(origin), "the page names \(origin)")
        }
        #expect(!page.text.contains("innerHTML"), "the page writes cluster data only as text")

        let ready = await pollAsync(within: .seconds(10)) { () -> Bool? in
            worker.status()?.primaries(of: "echo").count == 1 ? true : nil
        }
        try #require(ready == true)
        let client = try StarlingClient(nodes: [worker.address.description], configuration: .init())
        for n in 0..<50 {
            _ = try await client.submit(service: "echo", payload: Array("job \(n)".utf8), key: "dash-\(n)")
        }
        await client.close()

        // The record still decodes as STATUS; the new keys carry the 50 jobs (once their second and
        // their five-second slot are complete) and this worker's status change.
        let counted = await pollAsync(within: .seconds(8), every: .milliseconds(200)) { () -> [String: Any]? in
            guard let answer = try? HTTPTestConnection.get("/api/status", port: port),
                  (try? StatusReport(json: answer.body))?.selfID == worker.id,
                  let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
                  let echo = (json["jobs"] as? [String: Any])?["echo"] as? [String: Any],
                  let perSecond = echo["per_second"] as? [Int], perSecond.reduce(0, +) == 50,
                  let p99 = echo["p99_ms"] as? [Any], p99.contains(where: { $0 is Double }) else { return nil }
            return json
        }
        let json = try #require(counted, "the 50 jobs in jobs.echo.per_second and a p99 for their slot")
        let echo = try #require((json["jobs"] as? [String: Any])?["echo"] as? [String: Any])
        #expect((echo["per_second"] as? [Int])?.count == 120)
        let p99 = try #require(echo["p99_ms"] as? [Any])
        #expect(p99.count == 24)
        #expect(p99.contains { ($0 as? Double ?? 0) > 0 }, "a p99 for the slot the jobs ran in: \(p99)")
        let events = try #require(json["events"] as? [[String: Any]])
        #expect(events.contains { $0["kind"] as? String == "status" && ($0["detail"] as? String)?.contains("-> primary") == true },
                "\(events)")
        #expect((json["now_unix_ms"] as? Int ?? 0) > 1_700_000_000_000)
    }

    @Test(
        "headless Chromium: the page names the primary, and the new one within 3 s of a kill -9",
        .enabled(if: chromium != nil, "needs Debian's chromium (scripts/ensure-deps installs it)"))
    func pageFollowsAFailover() throws {
        // The page is read from `watcher`; `primary` ranks highest and is killed; `heir` takes over.
        let watcher = try WorkerProcess(service: "echo", priority: 0, extra: ["--http", "127.0.0.1:0"])
        let primary = try WorkerProcess(service: "echo", join: [watcher.address], priority: 2)
        let heir = try WorkerProcess(service: "echo", join: [watcher.address], priority: 1)
        let url = "http://127.0.0.1:\(try #require(watcher.httpAddress).port)/"
        let settled = poll(within: .seconds(10), every: .milliseconds(50)) { () -> Bool? in
            guard let report = watcher.status() else { return nil }
            let echo = report.members.filter { $0.service.value == "echo" }
            return echo.count == 3 && report.primaries(of: "echo").map(\.id) == [primary.id]
                && echo.allSatisfy { $0.status == .primary || $0.status == .standby } ? true : nil
        }
        try #require(settled == true, "three echo workers, \(primary.id) primary")

        let browser = try HeadlessChromium(executable: try #require(Self.chromium))
        defer { browser.close() }
        let tab = try browser.open(url)
        let first = poll(within: .seconds(15), every: .milliseconds(100)) { () -> PageState? in
            guard let state = PageState(try? browser.evaluate(Self.probe, in: tab)),
                  state.primary == primary.id.description, state.members == 3 else { return nil }
            return state
        }
        let before = try #require(first, "the page named \(primary.id) as primary; browser log:\n\(browser.log.suffix(2_000))")
        #expect(before.text.contains(primary.id.description), "the primary's id is visible: \(before.text)")
        #expect(before.connection == "live")

        let killedAt = ContinuousClock.now
        primary.kill()
        let after = poll(within: .seconds(3), every: .milliseconds(50)) { () -> PageState? in
            guard let state = PageState(try? browser.evaluate(Self.probe, in: tab, timeout: .seconds(1))),
                  state.primary == heir.id.description else { return nil }
            return state
        }
        let took = ContinuousClock.now - killedAt
        let named = try #require(after, "the page did not name \(heir.id) within 3 s of the kill")
        print("dashboard: kill -9 of the primary to the page naming the new one: \(took)")
        #expect(named.text.contains(heir.id.description))
        #expect(took <= .seconds(3))

        // The timeline shows the failover with its duration.
        let failover = poll(within: .seconds(5), every: .milliseconds(100)) { () -> String? in
            PageState(try? browser.evaluate(Self.probe, in: tab))?.failovers.first
        }
        let line = try #require(failover, "a failover in the event timeline")
        #expect(line.contains(heir.id.description) && line.contains("took"), "\(line)")
        print("dashboard: timeline: \(line.replacingOccurrences(of: "\n", with: " "))")

        // The process it polls is gone: the page says so rather than showing old data as live.
        watcher.kill()
        let disconnected = poll(within: .seconds(5), every: .milliseconds(100)) { () -> Bool? in
            PageState(try? browser.evaluate(Self.probe, in: tab))?.connection == "disconnected" ? true : nil
        }
        #expect(disconnected == true, "the page shows disconnected once its process is gone")
    }
}
