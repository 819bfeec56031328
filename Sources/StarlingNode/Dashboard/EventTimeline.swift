import DequeModule

/// The last events this process saw (joins, deaths, departures, failovers, status changes, scaler
/// decisions), oldest first, for the dashboard (docs/HANDBOOK.md, "event timeline"). A ring:
/// `/api/status` stays the same size however long the process runs. Loop-confined.
final class EventTimeline {
    /// Events kept; the oldest goes when one more comes.
    static let capacity = 200
    /// Characters of an event's `detail` kept: a reason may come from a peer's frame.
    static let maxDetailCharacters = 240

    private var ring: Deque<ClusterEvent> = []

    /// The events kept, oldest first.
    var events: [ClusterEvent] { Array(ring) }

    func record(_ event: ClusterEvent) {
        var event = event
        if event.detail.count > Self.maxDetailCharacters {
            event.detail = String(event.detail.prefix(Self.maxDetailCharacters - 1)) + "…"
        }
        if ring.count >= Self.capacity { ring.removeFirst() }
        ring.append(event)
    }
}
