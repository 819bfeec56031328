import StarlingCore

/// The connected node's key shards (docs/PROTOCOL.md, "Key shards"), for `GeneratedKeys`.
///
/// `SHARDS` goes first on every connection (after `WELCOME`, with a token), pipelined with the
/// calls sent again, and is asked again every `shardsRefreshMs` while jobs are submitted. The
/// check rides on each submit, one comparison with the loop's cached clock: no timer, and an idle
/// client asks nothing. The node's shards change only when its service's workers come and go or
/// its primary changes, so a second is fresh enough and costs one short line per second.
///
/// A dropped connection forgets the answer: the next node may be another. An `ERR` means no
/// shards; `BAD_REQUEST` means a worker older than the command, not asked again on that connection.
extension ClientEngine {
    static let shardsRefreshMs: UInt64 = 1_000

    /// On a new connection, before the unanswered calls go out again.
    func askShardsFirst() {
        ClientRequest.shards.encode(into: &outbox)
        table.askedShardsFirst()
        shardsAskedAt = loop.now
    }

    /// A job was submitted: asks again if the last answer may be stale. Not while one is still
    /// unanswered: a node whose answer never comes (or came malformed) is not asked without end.
    func askShardsIfDue(now: UInt64) {
        guard case .connected = link, !awaitingWelcome, !nodeLacksShards, let asked = shardsAskedAt,
              now >= asked + Self.shardsRefreshMs, !table.isAskingShards else { return }
        ClientRequest.shards.encode(into: &outbox)
        table.askedShards()
        shardsAskedAt = now
    }

    func shardsAnswered(service: ServiceName, shards: KeyShardSet) {
        table.answerShards()
        keys.nodeHolds(shards, of: service)
    }

    func shardsRefused(code: ClientErrorCode) {
        keys.forgetNode()
        if code == .badRequest { nodeLacksShards = true }
    }

    /// The connection is gone.
    func forgetShards() {
        keys.forgetNode()
        shardsAskedAt = nil
        nodeLacksShards = false
    }
}
