// What outlives an engine's process tree: a container the daemon's shim made. Labels mark
// every such container, so the daemon finds its own (and only its own) after a crash.

/// The labels on the containers agentron runs, named once: the driver asks the shim to
/// set them, the shim finds its container by one, the daemon its leftovers by another.
public enum ContainerLabels {
    /// `true` on every container agentron made.
    public static let managed = "agentron.managed"
    /// The server the container runs.
    public static let server = "agentron.server"
    /// The daemon that made it (its instance id), so one daemon never removes another's.
    public static let instance = "agentron.instance"
    /// The container's own name: what a new shim adopts it by.
    public static let container = "agentron.container"
}

/// Something of this daemon's outside every process tree, found at daemon start.
public struct Leftover: Sendable, Equatable {
    /// The server it was made for.
    public var server: String
    /// What it is, for the log: `container`.
    public var kind: String
    /// Its id where it lives (the container id).
    public var id: String

    public init(server: String, kind: String, id: String) {
        self.server = server
        self.kind = kind
        self.id = id
    }
}
