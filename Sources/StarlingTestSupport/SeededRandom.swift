/// SplitMix64: a tiny, fast, seeded generator. Every random choice of a simulation or of a
/// seeded fuzz test comes from one of these, derived from the run's root seed, so a seed replays
/// the run exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator for a component, independent of how much the parent draws later.
    public mutating func fork() -> SeededRandom { SeededRandom(seed: next()) }

    public mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double.random(in: 0..<1, using: &self) < probability
    }
}
