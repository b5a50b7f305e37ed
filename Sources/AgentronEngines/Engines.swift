import AgentronCore

/// The engines agentron drives, one driver each. Adding an engine is a case of
/// `EngineKind`, a driver file and a line here (docs/engines.md, "Adding an engine").
public enum Engines {
    /// The driver for `kind`. It throws for an engine this build knows by name but cannot
    /// run; none today, so `kind.driver` gives the same without the `try`.
    public static func driver(for kind: EngineKind) throws(EngineError) -> any EngineDriver {
        kind.driver
    }

    /// Every driver, in `EngineKind.allCases` order (messages that list engines follow it).
    public static var all: [any EngineDriver] { EngineKind.allCases.map(\.driver) }

    /// The drivers that take `key`, in `all`'s order.
    public static func drivers(accepting key: EngineProfileKey) -> [any EngineDriver] {
        all.filter { $0.profileKeys[key] != nil }
    }
}

extension EngineKind {
    /// This engine's driver.
    public var driver: any EngineDriver {
        switch self {
        case .vllm: VLLMEngine()
        case .ollama: OllamaEngine()
        case .tgi: TGIEngine()
        case .command: CommandEngine()
        }
    }
}
