/// What a new set of service definitions changes against the one in use (an agent's SIGHUP
/// reload of `jobs/`; docs/HANDBOOK.md, "definitions reload"): services added, changed and
/// removed, each sorted by name.
public struct ServiceDefinitionChanges: Hashable, Sendable {
    public var added: [ServiceName]
    /// Services in both sets whose definitions differ in any setting.
    public var changed: [ServiceName]
    public var removed: [ServiceName]

    public init(added: [ServiceName] = [], changed: [ServiceName] = [], removed: [ServiceName] = []) {
        self.added = added
        self.changed = changed
        self.removed = removed
    }

    /// From `old` to `new`.
    public init(from old: [ServiceName: ServiceDefinition], to new: [ServiceName: ServiceDefinition]) {
        added = new.keys.filter { old[$0] == nil }.sorted()
        changed = new.keys.filter { old[$0] != nil && old[$0] != new[$0] }.sorted()
        removed = old.keys.filter { new[$0] == nil }.sorted()
    }

    public var isEmpty: Bool { added.isEmpty && changed.isEmpty && removed.isEmpty }
}
