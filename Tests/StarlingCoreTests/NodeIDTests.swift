import StarlingCore
import Testing
import StarlingTestSupport

@Suite struct NodeIDTests {
    @Test func carriesTheAdmissionTimeAndOrdersOlderFirst() {
        var rng = SeededRandom(seed: 1)
        let older = NodeID(admittedAtUnixMs: 1_700_000_000_000, using: &rng)
        let newer = NodeID(admittedAtUnixMs: 1_700_000_000_001, using: &rng)
        #expect(older.admittedAtUnixMs == 1_700_000_000_000)
        #expect(older < newer)
    }

    @Test func printsAndParsesTheUUIDForm() {
        let id = NodeID(high: 0x0192_F3A4_5B6C_7D8E, low: 0x9F00_1122_3344_5566)
        #expect(id.description == "0192f3a4-5b6c-7d8e-9f00-112233445566")
        #expect(id.short == "33445566")
        #expect(NodeID(id.description) == id)
        #expect(NodeID("0192f3a45b6c7d8e9f00112233445566") == id)
        #expect(NodeID("not an id") == nil)
        #expect(NodeID("0192f3a4-5b6c-7d8e-9f00-11223344556g") == nil)
        #expect(NodeID("+192f3a4-5b6c-7d8e-9f00-112233445566") == nil)
    }

    @Test func serviceNamesAreValidated() {
        #expect((try? ServiceName("resize-v2.fast_1")) != nil)
        #expect(throws: ServiceName.Invalid.empty) { try ServiceName("") }
        #expect(throws: ServiceName.Invalid.badCharacter("R")) { try ServiceName("Resize") }
        #expect(throws: ServiceName.Invalid.badCharacter("-")) { try ServiceName("-x") }
        #expect(throws: ServiceName.Invalid.tooLong(65)) { try ServiceName(String(repeating: "a", count: 65)) }
    }
}
