/// Whether an agent carries out a scaler's `spawn` (docs/HANDBOOK.md, "agent"). A refusal goes
/// back to the scaler as `spawnRefused`, which then tries that agent last for a while
/// (`Scaler.spawnFailed`) instead of waiting out `spawnTimeoutMs`.
public enum SpawnAdmission {
    /// Why the agent refuses, or nil when it starts the worker.
    public static func refusal(
        of service: ServiceName, isDraining: Bool, definitions: [ServiceName: ServiceDefinition],
        workers: Int, maxWorkers: Int
    ) -> String? {
        if isDraining { return "draining" }
        if service == .agent { return "agent is the reserved service type of host agents" }
        if definitions[service] == nil { return "no definition of \(service) here" }
        if workers >= maxWorkers { return "no headroom (\(workers) of \(maxWorkers) workers)" }
        return nil
    }
}
