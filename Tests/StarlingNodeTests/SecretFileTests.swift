import Foundation
import StarlingCore
import StarlingNode
import Testing

/// Key and token files: what is read, what is refused and why (docs/SECURITY.md).
@Suite struct SecretFileTests {
    @Test func aKeyFileHoldsKeysOnePerLineWithComments() throws {
        let first = ClusterKeys.generateLine()
        let second = ClusterKeys.generateLine()
        let path = try SecretFiles.write(["# rotated 2026-12-05", "", "  \(first)  ", "# the old one", second])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let keys = try ClusterKeys.load(path: path)
        #expect(keys.all.count == 2)
        #expect(keys.sealing == keys.all[0])
        let expected = try #require(Data(base64Encoded: first))
        #expect(keys.sealing.withUnsafeBytes { Data($0) } == expected)
    }

    @Test func keygenLinesAreDistinct256BitKeys() {
        let lines = (0..<16).map { _ in ClusterKeys.generateLine() }
        #expect(Set(lines).count == 16)
        #expect(lines.allSatisfy { Data(base64Encoded: $0)?.count == 32 })
    }

    @Test func aFileOthersMayReadIsRefusedAsSshWould() throws {
        let path = try SecretFiles.write([ClusterKeys.generateLine()])
        defer { try? FileManager.default.removeItem(atPath: path) }
        for mode in [0o640, 0o604, 0o660, 0o644] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            let error = #expect(throws: SecretFileError.self) { try ClusterKeys.load(path: path) }
            #expect(error?.description.contains("chmod 600") == true)
        }
    }

    @Test(arguments: [
        ("not base64 at all!", "not 32 bytes of base64"),
        (Data(repeating: 7, count: 16).base64EncodedString(), "not 32 bytes of base64"),
        ("# only a comment", "holds no entry"),
    ])
    func badKeyFilesNameTheProblem(line: String, problem: String) throws {
        let path = try SecretFiles.write([line])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: SecretFileError.self) { try ClusterKeys.load(path: path) }
        #expect(error?.description.contains(problem) == true)
        #expect(error?.description.contains(path) == true)
    }

    @Test func missingAndOversizedFilesAreRefused() throws {
        #expect(throws: SecretFileError.self) { try ClusterKeys.load(path: "/nonexistent/starling.key") }
        let path = try SecretFiles.write(Array(repeating: ClusterKeys.generateLine(), count: 2_000))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: SecretFileError.self) { try ClusterKeys.load(path: path) }
        #expect(error?.description.contains("limit") == true)
    }

    @Test func tokensAreComparedWhole() throws {
        let path = try SecretFiles.write(["s3cret-one", "# a comment", "second_token"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tokens = try ClientTokens.load(path: path)
        #expect(tokens.accepts(try ClientToken("s3cret-one")))
        #expect(tokens.accepts(try ClientToken("second_token")))
        #expect(!tokens.accepts(try ClientToken("s3cret")))
        #expect(!tokens.accepts(try ClientToken("s3cret-one-")))
    }

    @Test func aTokenWithSpacesOrControlCharactersIsRefused() throws {
        let path = try SecretFiles.write(["two words"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: SecretFileError.self) { try ClientTokens.load(path: path) }
    }

    @Test func reloadKeepsWhatLoadedWhenTheFileTurnsBad() throws {
        let path = try SecretFiles.write([ClusterKeys.generateLine()])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let secrets = try NodeSecrets(clusterKeyFile: path, clientTokenFile: nil)
        let before = try #require(secrets.clusterKeys?.sealing)
        try SecretFiles.rewrite(path, ["garbage"])
        #expect(secrets.reload().count == 1)
        #expect(secrets.clusterKeys?.sealing == before)
        let next = ClusterKeys.generateLine()
        try SecretFiles.rewrite(path, [next, ClusterKeys.generateLine()])
        #expect(secrets.reload().isEmpty)
        #expect(secrets.clusterKeys?.all.count == 2)
        #expect(secrets.clusterKeys?.sealing != before)
    }
}
