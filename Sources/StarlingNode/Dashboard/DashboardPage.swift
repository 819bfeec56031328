import Crypto
import Foundation

/// `GET /`: the live dashboard (README, "Watching it over HTTP"), one HTML page with its CSS and
/// script inline, served from the binary: nothing is fetched from elsewhere, so it works offline.
///
/// The script polls `GET /api/status` (`DashboardStatus`) every 500 ms and redraws per service its
/// primary and epoch, its members with workload bars, the queue depth at the primary, jobs/s and
/// p99 over the last two minutes (inline SVG); the agents and the scaler; the event timeline. It
/// writes what the cluster says only through `textContent` and attributes, never as markup:
/// service names and reasons come from the network. A failed poll shows "disconnected" and keeps
/// the last data, greyed. The `Content-Security-Policy` allows exactly this page's own script and
/// style (by hash) and requests to its own origin.
enum DashboardPage {
    static func response() -> HTTPResponse {
        HTTPResponse(
            status: 200, contentType: "text/html; charset=utf-8", body: html,
            headers: [
                ("Content-Security-Policy", contentSecurityPolicy),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ])
    }

    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'sha256-\(sha256(script))'; style-src 'sha256-\(sha256(style))'; "
        + "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let html: [UInt8] = Array((head + "<style>" + style + "</style>\n</head>\n" + body + "<script>" + script + "</script>\n</body>\n</html>\n").utf8)

    /// The base64 SHA-256 of an inline block, as CSP names it.
    private static func sha256(_ text: String) -> String {
        Data(SHA256.hash(data: Array(text.utf8))).base64EncodedString()
    }

    private static let head = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Starling</title>

        """

    private static let body = """
        <body>
        <header class="top">
          <h1>Starling</h1>
          <span id="conn" data-state="connecting">connecting…</span>
          <span id="updated" class="muted"></span>
          <span id="node" class="muted"></span>
        </header>
        <main>
          <section id="services-panel" class="panel">
            <h2>Services</h2>
            <div id="services"><p class="muted">waiting for /api/status…</p></div>
          </section>
          <section id="agents-panel" class="panel">
            <h2>Agents</h2>
            <div id="agents"></div>
          </section>
          <section id="events-panel" class="panel">
            <h2>Events <span class="muted">newest first</span></h2>
            <ol id="events"></ol>
          </section>
        </main>

        """

    static let style = #"""
        :root { --bg: #f4f5f7; --panel: #fff; --ink: #1d2430; --muted: #6b7380; --line: #e2e5ea;
          --accent: #2f6fdb; --ok: #1f9d55; --warn: #c97a00; --bad: #d23c3c; --bar: #dfe6f2; }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--ink);
          font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
        code, .id, .num { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12px; }
        .muted { color: var(--muted); font-weight: normal; }
        .top { display: flex; align-items: baseline; gap: 14px; padding: 12px 20px; background: var(--ink); color: #fff; }
        .top h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }
        .top .muted { color: #aab3c0; }
        #conn { padding: 2px 10px; border-radius: 10px; font-weight: 600; font-size: 12px; background: #555; }
        #conn[data-state="live"] { background: var(--ok); }
        #conn[data-state="disconnected"] { background: var(--bad); }
        main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; padding: 16px 20px; }
        #services-panel { grid-row: span 2; }
        .panel { min-width: 0; }
        h2 { font-size: 15px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); }
        body.stale main { opacity: .45; }
        .svc, .box { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin-bottom: 12px; }
        .svc header { display: flex; align-items: center; gap: 10px; }
        .svc h3 { margin: 0; font-size: 17px; }
        .badge { font-size: 11px; padding: 1px 8px; border-radius: 9px; background: var(--bar); color: var(--ink); font-weight: 600; }
        .primary-line { margin: 6px 0 8px; display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
        .primary-line .label { font-weight: 600; color: var(--accent); }
        .warn { color: var(--warn); font-weight: 600; }
        .stats { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px; margin-bottom: 8px; }
        .stat { background: var(--bg); border-radius: 6px; padding: 6px 8px; }
        .stat b { display: block; font-size: 18px; }
        .stat span { font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
        .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; margin-bottom: 6px; }
        figure { margin: 0; }
        figcaption { font-size: 11px; color: var(--muted); }
        svg.spark { width: 100%; height: 44px; display: block; background: var(--bg); border-radius: 4px; }
        svg.spark .line { fill: none; stroke: var(--accent); stroke-width: 1.5; }
        svg.spark .area { fill: var(--accent); opacity: .15; stroke: none; }
        svg.spark.p99 .line { stroke: var(--warn); }
        svg.spark.p99 .area { fill: var(--warn); }
        table { width: 100%; border-collapse: collapse; font-size: 13px; }
        th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .5px; }
        th, td { padding: 4px 5px; border-bottom: 1px solid var(--line); white-space: nowrap; }
        .box, .svc { overflow-x: auto; }
        @media (max-width: 1000px) { main { grid-template-columns: minmax(0, 1fr); } #services-panel { grid-row: auto; } }
        tr.primary td { background: #eef4ff; }
        .status { font-weight: 600; }
        .status.primary { color: var(--accent); }
        .status.joining, .status.to-become-primary { color: var(--warn); }
        .load { display: inline-flex; align-items: center; gap: 6px; }
        .bar { display: inline-block; width: 90px; height: 9px; background: var(--bar); border-radius: 5px; overflow: hidden; }
        .box .bar { width: 60px; }
        .bar .fill { display: block; height: 100%; background: var(--ok); }
        .bar .fill.hot { background: var(--bad); }
        .scaler { background: var(--accent); color: #fff; }
        #events { list-style: none; margin: 0; padding: 0; max-height: 560px; overflow-y: auto; }
        #events li { display: grid; grid-template-columns: 64px 74px minmax(0, 1fr); gap: 6px; padding: 5px 8px;
          background: var(--panel); border-bottom: 1px solid var(--line); font-size: 12.5px; }
        #events li:first-child { border-radius: 8px 8px 0 0; }
        #events .kind { font-weight: 700; font-size: 11px; text-transform: uppercase; }
        #events .what { overflow-wrap: anywhere; }
        .k-joined { color: var(--ok); } .k-died { color: var(--bad); } .k-left { color: var(--muted); }
        .k-failover { color: var(--bad); } .k-status { color: var(--accent); } .k-scaler { color: #7a43c9; }
        .took { font-weight: 700; color: var(--bad); }
        """#

    static let script = #"""
        "use strict";
        (() => {
          const POLL_MS = 500;
          const TIMEOUT_MS = 2000;
          const SVG = "http://www.w3.org/2000/svg";
          const KINDS = new Set(["joined", "died", "left", "failover", "status", "scaler"]);
          const STATUSES = new Set(["joining", "standby", "to-become-primary", "primary"]);
          const byId = (id) => document.getElementById(id);
          let lastOk = 0;

          // Everything from the cluster goes in as text or attribute values, never as markup.
          function el(tag, className, text) {
            const node = document.createElement(tag);
            if (className) node.className = className;
            if (text !== undefined && text !== null) node.textContent = String(text);
            return node;
          }
          const str = (v) => (typeof v === "string" ? v : v === undefined || v === null ? "" : String(v));
          const num = (v) => { const n = Number(v); return Number.isFinite(n) ? n : 0; };
          const list = (v) => (Array.isArray(v) ? v : []);
          const obj = (v) => (v !== null && typeof v === "object" && !Array.isArray(v) ? v : {});
          // As `starling status` shortens them; the whole id is the cell's tooltip.
          const shortID = (id) => (id.length > 8 ? id.slice(-8) : id);
          function idCell(id) {
            const td = el("td", "id", shortID(id));
            td.title = id;
            return td;
          }
          const fmtRate = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
          const fmtMs = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(2) + " ms");

          function bar(running, capacity) {
            const box = el("span", "load");
            const track = el("span", "bar");
            const fill = el("span", "fill");
            const share = capacity > 0 ? Math.min(1, running / capacity) : 0;
            fill.style.width = (share * 100).toFixed(1) + "%";
            if (share >= 0.9) fill.classList.add("hot");
            track.append(fill);
            box.append(track, el("span", "num", capacity > 0 ? running + "/" + capacity : running + "/0 draining"));
            return box;
          }

          function spark(values, className, label) {
            const w = 240, h = 44, pad = 3;
            const svg = document.createElementNS(SVG, "svg");
            svg.setAttribute("viewBox", "0 0 " + w + " " + h);
            svg.setAttribute("preserveAspectRatio", "none");
            svg.setAttribute("class", "spark " + className);
            svg.setAttribute("role", "img");
            svg.setAttribute("aria-label", label);
            const title = document.createElementNS(SVG, "title");
            title.textContent = label;
            svg.append(title);
            const present = values.filter((v) => v !== null);
            const top = present.length && Math.max(...present) > 0 ? Math.max(...present) : 1;
            const step = values.length > 1 ? (w - 2 * pad) / (values.length - 1) : 0;
            let run = [];
            const flush = () => {
              if (run.length === 1) run.push([run[0][0] + 1.5, run[0][1]]);
              if (run.length > 1) {
                const points = (ps) => ps.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
                const area = document.createElementNS(SVG, "polygon");
                area.setAttribute("class", "area");
                area.setAttribute("points", points([[run[0][0], h - pad], ...run, [run[run.length - 1][0], h - pad]]));
                const line = document.createElementNS(SVG, "polyline");
                line.setAttribute("class", "line");
                line.setAttribute("points", points(run));
                svg.append(area, line);
              }
              run = [];
            };
            values.forEach((v, i) => {
              if (v === null) return flush();
              run.push([pad + i * step, h - pad - (v / top) * (h - 2 * pad)]);
            });
            flush();
            return svg;
          }

          function figure(svg, caption) {
            const f = el("figure");
            f.append(svg, el("figcaption", null, caption));
            return f;
          }

          function stat(value, label) {
            const s = el("div", "stat");
            s.append(el("b", null, value), el("span", null, label));
            return s;
          }

          function primaryOf(members) {
            let best = null;
            for (const m of members) {
              if (str(m.status) === "primary" && (!best || num(m.epoch) > num(best.epoch))) best = m;
            }
            return best;
          }

          function statusCell(status) {
            return el("td", STATUSES.has(status) ? "status " + status : "status", status);
          }

          function heard(m, self) {
            return str(m.id) === self ? "self" : num(m.last_heard_ms) + " ms ago";
          }

          function serviceCard(name, members, rates, self) {
            const primary = primaryOf(members);
            const card = el("article", "svc");
            card.dataset.service = name;
            card.dataset.primary = primary ? str(primary.id) : "";
            card.dataset.epoch = primary ? String(num(primary.epoch)) : "";
            const head = el("header");
            head.append(el("h3", null, name));
            if (primary) head.append(el("span", "badge", "epoch " + num(primary.epoch)));
            head.append(el("span", "muted", members.length + (members.length === 1 ? " member" : " members")));
            card.append(head);

            const line = el("p", "primary-line");
            if (primary) {
              line.append(el("span", "label", "primary"), el("code", "id primary-id", str(primary.id)), el("span", "muted", str(primary.address)));
            } else {
              line.classList.add("warn");
              line.textContent = members.length ? "no primary: electing" : "no member in this record";
            }
            card.append(line);

            const perSecond = list(rates.per_second).map(num);
            const p99 = list(rates.p99_ms).map((v) => (v === null || v === undefined ? null : num(v)));
            const recent = perSecond.slice(-10);
            const rate = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : 0;
            const lastP99 = [...p99].reverse().find((v) => v !== null);
            const stats = el("div", "stats");
            stats.append(
              stat(primary ? String(num(obj(primary.workload).backlog)) : "–", "queue depth"),
              stat(fmtRate(rate), "jobs/s (10 s)"),
              stat(lastP99 === undefined ? "–" : fmtMs(lastP99), "p99 (5 s)"),
              stat(String(members.filter((m) => str(m.status) !== "primary").length), "standbys"));
            card.append(stats);

            const charts = el("div", "charts");
            const peak = perSecond.length ? Math.max(...perSecond) : 0;
            const p99Peak = Math.max(0, ...p99.filter((v) => v !== null));
            charts.append(
              figure(spark(perSecond, "rate", "jobs per second, last 2 minutes"), "jobs/s, last 2 min (peak " + peak + ")"),
              figure(spark(p99, "p99", "p99 per 5 s, last 2 minutes"), "p99 per 5 s, last 2 min (peak " + (p99Peak ? fmtMs(p99Peak) : "–") + ")"));
            card.append(charts);

            const table = el("table", "members");
            const th = el("tr");
            for (const h of ["status", "id", "address", "running / slots", "backlog", "heard"]) th.append(el("th", null, h));
            table.append(th);
            const rank = (m) => (str(m.status) === "primary" ? 0 : str(m.status) === "standby" ? 1 : 2);
            const sorted = [...members].sort((a, b) => rank(a) - rank(b) || str(a.id).localeCompare(str(b.id)));
            for (const m of sorted) {
              const w = obj(m.workload);
              const tr = el("tr", str(m.status) === "primary" ? "primary" : "");
              tr.dataset.member = str(m.id);
              const load = el("td");
              load.append(bar(num(w.running), num(w.capacity)));
              tr.append(statusCell(str(m.status)), idCell(str(m.id)), el("td", "num", str(m.address)), load,
                el("td", "num", String(num(w.backlog))), el("td", "muted", heard(m, self)));
              table.append(tr);
            }
            card.append(table);
            return card;
          }

          function agentsBox(agents, scaler, self) {
            const box = el("div", "box");
            if (!agents.length) {
              box.append(el("p", "muted", "no agents in this record (workers started by hand): nothing scales"));
              return box;
            }
            const table = el("table");
            const th = el("tr");
            for (const h of ["status", "id", "address", "workers / max", "heard"]) th.append(el("th", null, h));
            table.append(th);
            for (const a of [...agents].sort((x, y) => str(x.id).localeCompare(str(y.id)))) {
              const w = obj(a.workload);
              const tr = el("tr");
              tr.dataset.agent = str(a.id);
              const id = idCell(str(a.id));
              if (str(a.id) === scaler) {
                id.append(document.createTextNode(" "), el("span", "badge scaler", "scaler"));
                tr.dataset.scaler = "true";
              }
              const load = el("td");
              load.append(bar(num(w.running), num(w.capacity)));
              tr.append(statusCell(str(a.status)), id, el("td", "num", str(a.address)), load, el("td", "muted", heard(a, self)));
              table.append(tr);
            }
            box.append(table);
            return box;
          }

          function eventRows(events, now) {
            if (!events.length) return [el("li", "muted", "nothing yet")];
            return events.slice().reverse().map((raw) => {
              const e = obj(raw);
              const kind = str(e.kind);
              const at = num(e.at_unix_ms);
              const li = el("li");
              li.dataset.kind = kind;
              const when = el("span", "num", at ? new Date(at).toLocaleTimeString([], { hour12: false }) : "");
              when.title = now && at ? Math.max(0, Math.round((now - at) / 1000)) + " s ago" : "";
              const what = el("span", "what");
              what.append(el("b", null, str(e.service) + " "), document.createTextNode(str(e.detail)));
              if (kind === "failover" && e.duration_ms !== undefined && e.duration_ms !== null) {
                what.append(document.createTextNode(" "), el("span", "took", "took " + fmtMs(num(e.duration_ms))));
              }
              li.append(when, el("span", KINDS.has(kind) ? "kind k-" + kind : "kind", kind), what);
              return li;
            });
          }

          function render(data) {
            const self = str(data.self);
            byId("node").textContent = self ? "as seen by " + self : "";
            const groups = new Map();
            for (const raw of list(data.members)) {
              const m = obj(raw);
              const service = str(m.service);
              if (!groups.has(service)) groups.set(service, []);
              groups.get(service).push(m);
            }
            const jobs = obj(data.jobs);
            const names = new Set([...groups.keys(), ...Object.keys(jobs)]);
            names.delete("agent");
            const cards = [...names].sort().map((name) =>
              serviceCard(name, groups.get(name) || [], Object.prototype.hasOwnProperty.call(jobs, name) ? obj(jobs[name]) : {}, self));
            byId("services").replaceChildren(...(cards.length ? cards : [el("p", "muted", "no service in this record")]));
            byId("agents").replaceChildren(agentsBox(groups.get("agent") || [], str(data.scaler), self));
            byId("events").replaceChildren(...eventRows(list(data.events), num(data.now_unix_ms)));
          }

          function connection(ok, why) {
            const c = byId("conn");
            c.dataset.state = ok ? "live" : "disconnected";
            c.textContent = ok ? "live" : "disconnected (" + why + "): retrying";
            document.body.classList.toggle("stale", !ok);
          }

          setInterval(() => {
            byId("updated").textContent = lastOk ? "updated " + ((Date.now() - lastOk) / 1000).toFixed(1) + " s ago" : "";
          }, 250);

          async function poll() {
            const started = Date.now();
            const abort = new AbortController();
            const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
            try {
              const answer = await fetch("/api/status", { cache: "no-store", signal: abort.signal });
              if (!answer.ok) throw new Error("HTTP " + answer.status);
              render(obj(await answer.json()));
              lastOk = Date.now();
              connection(true);
            } catch (error) {
              connection(false, error && error.name === "AbortError" ? "no answer in " + TIMEOUT_MS / 1000 + " s" : str(error && error.message) || "error");
            } finally {
              clearTimeout(timer);
              setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
            }
          }
          poll();
        })();
        """#
}
