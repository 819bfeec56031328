/// gearmand's binary protocol (gearman.org/protocol): a 12-byte header — magic `\0REQ` (to the
/// server) or `\0RES` (from it), a big-endian packet type, a big-endian data size — then the
/// data: arguments separated by NUL bytes, the last one running to the end of the data.
enum GearmanType: UInt32, Sendable {
    case canDo = 1
    case preSleep = 4
    case noop = 6
    case submitJob = 7
    case jobCreated = 8
    case grabJob = 9
    case noJob = 10
    case jobAssign = 11
    case workStatus = 12
    case workComplete = 13
    case workFail = 14
    case echoReq = 16
    case echoRes = 17
    case error = 19
    case workException = 25
    case workData = 28
    case workWarning = 29
    case grabJobUniq = 30
    case jobAssignUniq = 31
}

/// One response packet from gearmand.
struct GearmanPacket: Sendable {
    /// The raw type: unknown types are kept, not rejected, so the caller can name them.
    var type: UInt32
    var data: [UInt8]

    var known: GearmanType? { GearmanType(rawValue: type) }

    /// The data split into exactly `count` arguments (the last one takes the rest, NULs and
    /// all), or nil if there are fewer than `count - 1` separators.
    func arguments(_ count: Int) -> [ArraySlice<UInt8>]? {
        precondition(count >= 1)
        var result: [ArraySlice<UInt8>] = []
        result.reserveCapacity(count)
        var start = data.startIndex
        while result.count < count - 1 {
            guard let nul = data[start...].firstIndex(of: 0) else { return nil }
            result.append(data[start..<nul])
            start = nul + 1
        }
        result.append(data[start...])
        return result
    }
}

enum GearmanCodec {
    static let headerBytes = 12
    /// Larger packets are a protocol error (the bench never sends more than its payload).
    static let maxDataBytes = 16 << 20
    private static let requestMagic: [UInt8] = [0, 0x52, 0x45, 0x51]   // "\0REQ"
    private static let responseMagic: [UInt8] = [0, 0x52, 0x45, 0x53]  // "\0RES"

    /// Appends a request packet with `arguments` joined by NULs.
    static func appendRequest(_ type: GearmanType, _ arguments: [ArraySlice<UInt8>], to out: inout [UInt8]) {
        var size = arguments.reduce(0) { $0 + $1.count }
        size += max(0, arguments.count - 1)
        out.append(contentsOf: requestMagic)
        appendBigEndian(type.rawValue, to: &out)
        appendBigEndian(UInt32(size), to: &out)
        for (index, argument) in arguments.enumerated() {
            if index > 0 { out.append(0) }
            out.append(contentsOf: argument)
        }
    }

    static func appendRequest(_ type: GearmanType, to out: inout [UInt8]) {
        appendRequest(type, [], to: &out)
    }

    private static func appendBigEndian(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value >> 24))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }

    private static func bigEndian(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }

    /// Takes the next complete response packet from the front of `buffer` (from `offset`),
    /// advancing `offset`; nil if more bytes are needed. Throws on a wrong magic or size.
    static func nextResponse(_ buffer: [UInt8], offset: inout Int) throws(WireError) -> GearmanPacket? {
        guard buffer.count - offset >= headerBytes else { return nil }
        guard buffer[offset..<offset + 4].elementsEqual(responseMagic) else {
            throw WireError("bad magic \(Array(buffer[offset..<offset + 4])) (expected \\0RES)")
        }
        let type = bigEndian(buffer, at: offset + 4)
        let size = Int(bigEndian(buffer, at: offset + 8))
        guard size <= maxDataBytes else { throw WireError("packet of \(size) bytes is over the limit") }
        guard buffer.count - offset - headerBytes >= size else { return nil }
        let dataStart = offset + headerBytes
        let packet = GearmanPacket(type: type, data: Array(buffer[dataStart..<dataStart + size]))
        offset = dataStart + size
        return packet
    }
}
