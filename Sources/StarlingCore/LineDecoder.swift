/// An incremental, pure decoder of a line protocol: a `LineFramer` plus the `LineGrammar` of one
/// side's header lines. `ClientRequestDecoder` and `ClientResponseDecoder` are this decoder with
/// their grammars.
///
/// Feed it whatever bytes arrive with `append(_:)` and pull items with `next()` until it returns
/// nil (more bytes needed). Items come out the same however the bytes are cut into chunks. Header
/// lines are at most `maxLineBytes` long; a body over `maxBodyBytes` is an error and is skipped by
/// its length, counted down as it arrives and never kept. After a fatal error the decoder yields
/// nothing more and drops all input.
///
/// Memory is bounded: once `next()` has returned nil, `bufferedByteCount` is at most
/// `max(maxLineBytes, maxBodyBytes) + 1`.
///
/// `next()` is the grammar's `next(in:)`, a decoding loop compiled for that grammar in its own
/// module: a caller in another module (the node's connection, the client) runs the specialised
/// loop, not a generic one through the grammar's witness table.
public struct LineDecoder<Grammar: LineGrammar>: Sendable {
    /// An item: what the grammar makes of a line or a body, or an error.
    public typealias Decoded = Grammar.Decoded

    public static var defaultMaxLineBytes: Int { 1024 }
    public static var defaultMaxBodyBytes: Int { Grammar.defaultMaxBodyBytes }

    @usableFromInline var framer: LineFramer
    @usableFromInline var grammar: Grammar

    public init(maxLineBytes: Int = defaultMaxLineBytes, maxBodyBytes: Int = defaultMaxBodyBytes) {
        precondition(maxLineBytes > 0 && maxBodyBytes >= 0, "limits must be positive")
        framer = LineFramer(maxLineBytes: maxLineBytes)
        grammar = Grammar(maxBodyBytes: maxBodyBytes)
    }

    /// The longest header line accepted, line end not counted.
    @inlinable
    public var maxLineBytes: Int { framer.maxLineBytes }

    /// The largest body accepted; larger ones are reported and skipped.
    @inlinable
    public var maxBodyBytes: Int { grammar.maxBodyBytes }

    /// Bytes received and not yet decoded or skipped.
    @inlinable
    public var bufferedByteCount: Int { framer.bufferedByteCount }

    /// Whether a fatal error has been returned: all further input is ignored.
    @inlinable
    public var isClosed: Bool { framer.isClosed }

    /// Feeds bytes as they arrive. Bytes of a body being skipped are counted, not kept.
    @inlinable
    public mutating func append(_ bytes: some Collection<UInt8>) {
        framer.append(bytes)
    }

    /// The next decoded item, or nil when more bytes are needed (or after a fatal error).
    @inlinable
    public mutating func next() -> Decoded? {
        Grammar.next(in: &self)
    }

    /// The decoding loop, for the grammar's `next(in:)`: called where the grammar is a concrete
    /// type, it is specialised there.
    public mutating func decodeNext() -> Decoded? {
        framer.next(using: &grammar)
    }
}
