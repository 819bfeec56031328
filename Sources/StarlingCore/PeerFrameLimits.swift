/// The largest peer frame body of each kind, derived from the hard bounds of job sizes
/// (`ServiceDefinition.maxPayloadBytesRange`, `maxResultBytesRange`), so that a frame its sender
/// made within its service's limits is never refused by a peer (docs/HANDBOOK.md, "job sizes").
///
/// The decoder (`PeerFrameDecoder`) checks a frame's announced length against its kind's limit as
/// soon as the type byte is in, and the sender (`PeerLinks`) checks each frame it encodes with
/// `refusal(ofFrame:)`, by the same numbers, so a frame over them is dropped where it is made and
/// never sent, let alone sent again.
public enum PeerFrameLimits {
    /// Room for every field of a frame but its payload or result: type, epoch, service, key,
    /// entry address, lengths, a failure text (≤ `PeerMessageCodec.maxTextBytes`).
    public static let overheadBytes = 64 * 1024
    /// A frame that carries no payload or result (`hello`, `refused`, `declined`, scaling frames);
    /// the longest is a full `running` or `released` list, 8,192 keys of at most 65 bytes (about 532 KiB).
    public static let controlFrameBytes = 1 << 20
    /// `forward` and `dispatch`: a payload at the hard bound of `max_payload_bytes`.
    public static let payloadFrameBytes = ServiceDefinition.maxPayloadBytesRange.upperBound + overheadBytes
    /// `result`: a result at the hard bound of `max_result_bytes`.
    public static let resultFrameBytes = ServiceDefinition.maxResultBytesRange.upperBound + overheadBytes
    /// The most any frame may announce.
    public static let largestFrameBytes = max(controlFrameBytes, payloadFrameBytes, resultFrameBytes)

    /// The limit of a body whose first byte, its type, is `type`; an unknown type gets the
    /// control limit (its decoding fails anyway).
    public static func maxBodyBytes(type: UInt8) -> Int {
        switch PeerMessageCodec.MessageType(rawValue: type) {
        case .forward, .dispatch: payloadFrameBytes
        case .result: resultFrameBytes
        case .hello, .refused, .declined, .running, .lease, .released, .spawn, .retire, .spawnRefused, nil: controlFrameBytes
        }
    }

    /// How a peer's decoder would refuse `frame`, one frame as `PeerMessageCodec.encode` made it
    /// (length prefix first), or nil when it is within its kind's limit: what the sender checks
    /// before it queues the frame, by the same numbers as the decoder.
    public static func refusal(ofFrame frame: ArraySlice<UInt8>) -> PeerDecodingError? {
        let bodyBytes = frame.count - PeerMessageCodec.headerBytes
        let limit = maxBodyBytes(type: frame[frame.startIndex + PeerMessageCodec.headerBytes])
        return bodyBytes > limit ? .frameTooLarge(length: bodyBytes, limit: limit) : nil
    }
}
