import ArgumentParser
import Foundation

extension StarlingBench {
    struct Summarize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Writes RESULTS.md and the SVG charts from the JSON results of a run.")

        func run() throws {}
    }
}
