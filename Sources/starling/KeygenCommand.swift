import ArgumentParser
import StarlingNode

/// `starling keygen`: prints a new cluster key.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Print a new random 256-bit cluster key (base64, one line).",
        discussion: """
            Write it to a file only you can read, and give that file to every process with \
            --cluster-key-file:
              (umask 077; starling keygen > cluster.key)

            A key file may hold several keys, one per line: the first seals, all open. See \
            docs/SECURITY.md for rotating keys without stopping the cluster.
            """)

    func run() {
        print(ClusterKeys.generateLine())
    }
}
