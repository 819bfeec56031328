import ArgumentParser
import Foundation

extension StarlingBench {
    /// Turns the JSON of one `benchmarks/run` into RESULTS.md and the SVG charts.
    struct Summarize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Writes RESULTS.md and SVG charts from the JSON results of a run (benchmarks/run calls it).",
            discussion: """
                Reads every <scenario>-<system>-run<N>.json in --results, takes the median of each \
                figure over the runs, and writes the comparison (Starling ÷ NATS, Starling ÷ gearmand, \
                the targets of issues 5 and 13, the members scenario) to --out, with the charts as SVG \
                files next to the JSON.
                """)

        @Option(help: "Folder of the JSON results.")
        var results = "benchmarks/results"

        @Option(help: "The Markdown file to write.")
        var out = "benchmarks/RESULTS.md"

        @Option(help: "The command that produced the results, as shown in the file.")
        var command = "benchmarks/run"

        @Option(help: "A line added under the machine (repeatable), e.g. the Swift version.")
        var note: [String] = []

        func validate() throws {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: results, isDirectory: &isFolder), isFolder.boolValue else {
                throw ValidationError("--results: \(results) is not a folder")
            }
            let folder = URL(fileURLWithPath: out).deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw ValidationError("--out: folder \(folder) does not exist")
            }
        }

        func run() throws {
            let names = try FileManager.default.contentsOfDirectory(atPath: results)
                .filter { $0.hasSuffix(".json") && $0.contains("-run") }.sorted()
            var reports: [BenchReport] = []
            var members: [MembersReport] = []
            let decoder = JSONDecoder()
            /// The one field every report has, to tell a members report from the others.
            struct Kind: Decodable { var benchmark: String }
            for name in names {
                do {
                    let data = try Data(contentsOf: URL(fileURLWithPath: results + "/" + name))
                    if try decoder.decode(Kind.self, from: data).benchmark == "members" {
                        members.append(try decoder.decode(MembersReport.self, from: data))
                    } else {
                        reports.append(try decoder.decode(BenchReport.self, from: data))
                    }
                } catch {
                    throw ValidationError("\(results)/\(name): not a starling-bench report: \(error)")
                }
            }
            guard !reports.isEmpty || !members.isEmpty else {
                throw ValidationError("no <scenario>-<system>-run<N>.json in \(results)")
            }
            let summary = ResultsSummary(reports: reports, membersReports: members, command: command, notes: note, resultsFolder: results,
                                         outFolder: URL(fileURLWithPath: out).deletingLastPathComponent().path)
            for (name, svg) in summary.charts() {
                try Data(svg.utf8).write(to: URL(fileURLWithPath: results + "/" + name))
                print("chart written to \(results)/\(name)")
            }
            try Data(summary.markdown().utf8).write(to: URL(fileURLWithPath: out))
            print("summary written to \(out)")
        }
    }
}

/// The figures of one run, grouped by scenario and system, with medians and ratios.
struct ResultsSummary {
    let reports: [BenchReport]
    /// The `members` scenario's reports (Starling only), one per run.
    let membersReports: [MembersReport]
    let command: String
    let notes: [String]
    let resultsFolder: String
    let outFolder: String

    static let starlingColor = "#1f5fbf"
    static let gearmandColor = "#d9480f"
    static let natsColor = "#2f9e44"

    func runs(_ benchmark: String, _ system: String) -> [BenchReport] {
        reports.filter { $0.benchmark == benchmark && $0.system == system }
    }

    /// The median of `value` over the runs (the mean of the middle two for an even count).
    func median(_ benchmark: String, _ system: String, _ value: (BenchReport) -> Double?) -> Double? {
        let values = runs(benchmark, system).compactMap(value).sorted()
        guard !values.isEmpty else { return nil }
        let middle = values.count / 2
        return values.count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2
    }

    /// The path of a chart relative to the Markdown file.
    var chartPrefix: String {
        let results = URL(fileURLWithPath: resultsFolder).standardizedFileURL.path
        let out = URL(fileURLWithPath: outFolder).standardizedFileURL.path
        if results.hasPrefix(out + "/") { return String(results.dropFirst(out.count + 1)) + "/" }
        return results + "/"
    }

    // MARK: - Charts

    func charts() -> [(String, String)] {
        var charts: [(String, String)] = []
        for kind in ["workers", "server"] {
            let benchmark = "failure-\(kind)"
            var series: [SVGChart.Series] = []
            var markers: [SVGChart.Marker] = []
            for (system, color) in [("starling", Self.starlingColor), ("nats", Self.natsColor), ("gearmand", Self.gearmandColor)] {
                guard let report = runs(benchmark, system).last, let failure = report.failure else { continue }
                let step = Double(failure.bucketMs) / 1_000
                series.append(SVGChart.Series(
                    name: Self.displayName(system), color: color,
                    points: failure.jobsPerSecond.enumerated().map { (Double($0.offset) * step + step / 2, $0.element) }))
                for kill in failure.kills {
                    markers.append(SVGChart.Marker(x: kill.atS, label: Self.shortLabel(kill.what), color: color))
                }
            }
            guard !series.isEmpty else { continue }
            let title = kind == "workers"
                ? "Echo jobs/s per 100 ms, kill -9 of the Starling primary then a standby / of two NATS, two gearman workers"
                : "Echo jobs/s per 100 ms, kill -9 of the Starling primary / of nats-server, of gearmand itself"
            let chart = SVGChart(title: title, xLabel: "seconds since the load started (the first 2 s are warm-up)",
                                 yLabel: "jobs/s", series: series, markers: markers)
            charts.append(("\(benchmark).svg", chart.render()))
        }
        if let starling = runs("scale", "starling").last?.scale {
            // 10 ms jobs finish in waves, which 100 ms buckets alias into a saw-tooth: plot 500 ms.
            var series = [SVGChart.Series(name: "Starling (starling up)", color: Self.starlingColor,
                                          points: Self.rebucket(starling.jobsPerSecond, from: starling.bucketMs, to: 500))]
            if let gearmand = runs("scale", "gearmand").last?.scale {
                series.append(SVGChart.Series(name: "gearmand (1 worker)", color: Self.gearmandColor,
                                              points: Self.rebucket(gearmand.jobsPerSecond, from: gearmand.bucketMs, to: 500)))
            }
            var markers = [SVGChart.Marker(x: starling.stepAtS, label: "C \(starling.fromConcurrency) → \(starling.toConcurrency)",
                                           color: "#333333")]
            var previous = starling.workers.first?[1] ?? 0
            for sample in starling.workers where sample[1] > previous {
                markers.append(SVGChart.Marker(x: sample[0], label: "\(Int(sample[1])) workers", color: Self.starlingColor))
                previous = sample[1]
            }
            let chart = SVGChart(title: "Sleep jobs (\(starling.sleepMs) ms) per second over 500 ms, a step in load",
                                 xLabel: "seconds since the load started", yLabel: "jobs/s", series: series, markers: markers)
            charts.append(("scale.svg", chart.render()))
        }
        return charts
    }

    /// Rates per `from` ms bucket averaged into buckets of `to` ms, as (mid-point in s, jobs/s).
    static func rebucket(_ rates: [Double], from: Int, to: Int) -> [(Double, Double)] {
        let per = max(1, to / from)
        return stride(from: 0, to: rates.count - per + 1, by: per).map { start in
            let mean = rates[start..<start + per].reduce(0, +) / Double(per)
            return ((Double(start) + Double(per) / 2) * Double(from) / 1_000, mean)
        }
    }

    static func shortLabel(_ what: String) -> String {
        if what.contains("primary") { return "primary killed" }
        if what.contains("standby") { return "standby killed" }
        if what.contains("nats-server started again") { return "nats-server restarted" }
        if what.contains("started again") { return "gearmand restarted" }
        if what.contains("of nats-server") { return "nats-server killed" }
        if what.contains("of gearmand") { return "gearmand killed" }
        if what.contains("worker") { return "worker killed" }
        return what
    }
}
