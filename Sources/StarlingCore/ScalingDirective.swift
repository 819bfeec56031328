/// What the scaler (the agents' primary; docs/HANDBOOK.md, "Scaling") asks its shell to do.
public enum ScalingDirective: Hashable, Sendable {
    /// Ask the agent at `agent` to start one worker of `service` on its host.
    case spawn(service: ServiceName, agent: NodeAddress, reason: String)
    /// Drain and stop the worker at `worker`: it steps down, takes no new work, finishes what it
    /// holds, then exits. Never a primary while another worker of the service can be picked.
    case retire(service: ServiceName, worker: NodeAddress, reason: String)
}
