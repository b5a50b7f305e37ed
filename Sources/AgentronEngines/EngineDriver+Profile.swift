import AgentronCore

// What a profile may say for each engine (docs/configuration.md): the keys only some
// engines take, and each engine's own rules, applied by the daemon to every profile it is
// sent and by the YAML reader with the file's line.

/// The profile keys only some engines take. Each driver lists the ones it takes
/// (`profileKeys`); a profile that sets one its engine does not take is refused, naming
/// the engines that do.
public enum EngineProfileKey: String, Sendable, CaseIterable {
    case command
    case healthPath = "health_path"
    case healthStatus = "health_status"
    case image
    case imageProgram = "image_program"
    case executable
    case adopt
    case pull

    /// Whether `profile` sets this key. Only `adopt: true` asks for anything, so only it
    /// counts (the YAML reader refuses the key itself, whatever its value).
    public func isSet(in profile: Profile) -> Bool {
        switch self {
        case .command: profile.command != nil
        case .healthPath: profile.healthPath != nil
        case .healthStatus: profile.healthStatus != nil
        case .image: profile.image != nil
        case .imageProgram: profile.imageProgram != nil
        case .executable: profile.executable != nil
        case .adopt: profile.adopt == true
        case .pull: profile.pull != nil
        }
    }
}

extension Engines {
    /// The whole check of a profile, wherever it came from: the limits every profile meets
    /// (`Profile.validate()`), then the keys its engine takes, then the engine's own rules.
    public static func validate(_ profile: Profile) throws(ProfileProblem) {
        try profile.validate()
        for key in EngineProfileKey.allCases where key.isSet(in: profile) {
            if let refusal = refusal(of: key, for: profile.engine) {
                throw ProfileProblem(field: key.rawValue, message: refusal)
            }
        }
        try profile.engine.driver.validate(profile)
    }

    /// The first problem `validate` finds, or nil when the profile passes.
    public static func problem(in profile: Profile) -> ProfileProblem? {
        do {
            try validate(profile)
            return nil
        } catch {
            return error
        }
    }

    /// Why `key` is refused for `engine`, naming the engines that take it; nil when it
    /// takes it: `only used with engine: tgi; remove it, or set engine: tgi`, or, when
    /// several take it, `only used with engine: ollama (the model) or tgi (the image); remove it`.
    public static func refusal(of key: EngineProfileKey, for engine: EngineKind) -> String? {
        guard engine.driver.profileKeys[key] == nil else { return nil }
        let takers = drivers(accepting: key)
        guard !takers.isEmpty else { return "not used by any engine; remove it" }
        if takers.count == 1, let only = takers.first, only.profileKeys[key]?.isEmpty != false {
            return "only used with engine: \(only.kind.rawValue); remove it, or set engine: \(only.kind.rawValue)"
        }
        let names = takers.map { driver in
            let purpose = driver.profileKeys[key] ?? ""
            return purpose.isEmpty ? driver.kind.rawValue : "\(driver.kind.rawValue) (\(purpose))"
        }
        return "only used with engine: \(names.joined(separator: " or ")); remove it"
    }
}

extension EngineDriver {
    /// What `model:` takes, for a message that asks for one: "a Hugging Face model id,
    /// e.g. model: Qwen/Qwen2.5-1.5B-Instruct".
    public var modelHint: String { "\(modelDescription), e.g. model: \(modelExample)" }
}

/// Reading the values engines take from their own flags and variables.
enum ProfileArguments {
    /// The value after the last of `names` in `argv`: `--flag V` or `--flag=V`.
    static func flagValue(in argv: [String], names: [String]) -> String? {
        var found: String?
        for (index, argument) in argv.enumerated() {
            if names.contains(argument), index + 1 < argv.count {
                found = argv[index + 1]
            } else if let equals = argument.firstIndex(of: "="), names.contains(String(argument[..<equals])) {
                found = String(argument[argument.index(after: equals)...])
            }
        }
        return found
    }

    /// Whether `argv` sets `flag`, as `--flag V` or `--flag=V`.
    static func contains(_ flag: String, in argv: [String]) -> Bool {
        argv.contains { $0 == flag || $0.hasPrefix(flag + "=") }
    }

    /// A token count: a positive integer up to 2^30.
    static func positiveInt(_ text: String) -> Int? {
        guard let value = Int(text.trimmingSpaces), value > 0, value <= 1 << 30 else { return nil }
        return value
    }
}
