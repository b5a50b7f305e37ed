import AgentronCore
import AgentronProcess

/// An engine driver: everything agentron knows about one engine, and the only place it
/// knows it (docs/architecture.md, "Engine drivers"). Outside this module an engine is a
/// case of `EngineKind` and a name in messages; what differs between engines is asked of
/// `Engines.driver(for:)` (or `kind.driver`).
///
/// The requirements come in groups, each with defaults below for the common case (an
/// OpenAI-compatible server that binds its own port and serves the profile's model):
/// launch and probes; the engine's port; what clients and apps are told; what a profile
/// may say for it.
public protocol EngineDriver: Sendable {
    var kind: EngineKind { get }
    /// The engine's name in prose ("vLLM", "Ollama"), for messages.
    var displayName: String { get }
    /// The program that must be on PATH, and how to get it when it is not.
    var program: String { get }
    var installHint: String { get }
    /// What `agentron doctor` looks for on PATH for this engine; nil when there is no
    /// program of its own to look for.
    var installedProgram: ProgramCheck? { get }

    // MARK: Launch and probes

    func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec
    /// The paths the probes below ask, for tests and docs.
    func probePaths(_ profile: Profile) -> ProbePaths
    /// Ready means the engine's own health endpoint passed AND the served model is listed.
    func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome
    func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome

    /// Whether there is work between "the engine answers" and "ready" (Ollama: pull and
    /// load the model). When true, startup is: `probeServing` until it passes, then
    /// `prepare`, then `probeReadiness` until it passes.
    var needsPreparation: Bool { get }
    /// The engine process answers at all (Ollama: `GET /` 200).
    func probeServing(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome
    /// The slow work before ready, reporting progress as it goes. A thrown error ends the
    /// start with its message (e.g. Ollama's own "pull model manifest: file does not exist").
    func prepare(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void)
        async throws(EngineError)

    /// After the engine's process tree is gone (stopped or crashed): remove what lives
    /// outside it (TGI: the container, if its shim was killed before it could).
    func cleanup(_ context: EngineContext) async
    /// At daemon start: what this daemon's earlier runs left outside every process tree
    /// (TGI: containers labelled with one of `instances`). The daemon decides which belong
    /// to servers that still run and removes the others with `removeLeftover`.
    func leftovers(daemonEnvironment: [String: String], instances: [String]) async -> [Leftover]
    func removeLeftover(_ leftover: Leftover, daemonEnvironment: [String: String]) async

    // MARK: The engine's port

    /// Whether the engine's own process tree holds its listening socket, so that a
    /// listener outside the tree is someone else's (issue #10). False where the port is
    /// published by another program (TGI: Docker's proxy).
    var listensInProcessTree: Bool { get }
    /// How strictly the listener on the engine's port must be the engine's own before a
    /// probe is sent to it.
    var listenerCheck: Ports.ListenerCheck { get }
    /// The port the engine listens on when nobody says otherwise (Ollama: 11434); nil when
    /// it has none of its own.
    var defaultPort: Int? { get }
    /// The process names its server runs under (Ollama: `ollama`), as `Ports.holder`
    /// reports them: `pid 812 (ollama)`.
    var processNames: [String] { get }
    /// Whether the server answering on a port is this engine, from what it answered
    /// (`agentron doctor`); nil when it is not.
    func recognise(_ answers: ListenerAnswers, timeout: Duration) async -> ListenerIdentity?

    // MARK: What clients and apps are told

    /// The model name clients send in requests (vLLM answers 404 to any other).
    func servedModelName(_ profile: Profile) -> String
    /// The key clients must send, when the profile sets one for the engine; it goes into
    /// provider entries so apps can use the server.
    func apiKey(_ profile: Profile) -> String?
    /// The profile's `env` variable that sets that key (vLLM: `VLLM_API_KEY`), for messages.
    var apiKeyVariable: String? { get }
    /// The context length the profile sets for the engine, or nil when it leaves it to the
    /// engine's default (which only the running engine knows).
    func contextLength(_ profile: Profile) -> Int?
    /// What `target` calls this engine (providers.json `provider`, OpenClaw `api`, the
    /// Agentron app's `provider`).
    func providerKind(for target: RegistrationTarget) -> String
    /// Which of the engine's APIs `target` is pointed at.
    func providerAPI(for target: RegistrationTarget) -> ProviderAPI

    // MARK: What a profile may say

    /// The profile keys only some engines take that this one does, each with what it is
    /// for here (Ollama's `pull`: "the model"; empty when it needs no saying).
    var profileKeys: [EngineProfileKey: String] { get }
    /// The engine's own rules over a profile that is within the limits every profile meets
    /// (`Profile.validate()`): the same problem in the same words wherever the profile
    /// came from. Keys it does not take are `Engines.validate`'s to refuse.
    func validate(_ profile: Profile) throws(ProfileProblem)
    /// A model this engine runs, for messages: `qwen2.5:1.5b`.
    var modelExample: String { get }
    /// What `model:` names for this engine: "an Ollama model name".
    var modelDescription: String { get }

    // MARK: On a cluster

    /// The engine in a container of its own (`agentron export kubernetes`,
    /// docs/kubernetes.md), built by the code that builds the local launch. `gpus` is how
    /// many GPUs the pod is given. Throws what a local launch of the profile would, and
    /// when the engine has no image and the profile names none.
    func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer
    /// How many GPUs a pod asks for when the profile lists none: 1 for an engine that
    /// cannot run without one.
    var clusterGPUs: Int { get }
}

/// A program `agentron doctor` looks for on PATH, and how it asks for the version.
public struct ProgramCheck: Sendable, Equatable {
    public var program: String
    public var versionArguments: [String]
    /// How to install it; said when it is missing.
    public var hint: String

    public init(program: String, versionArguments: [String], hint: String) {
        self.program = program
        self.versionArguments = versionArguments
        self.hint = hint
    }
}

extension EngineDriver {
    public var installedProgram: ProgramCheck? {
        ProgramCheck(program: program, versionArguments: ["--version"], hint: installHint)
    }

    public var needsPreparation: Bool { false }

    public func probeServing(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeReadiness(context, timeout: timeout)
    }

    public func prepare(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void)
        async throws(EngineError)
    {}

    public func cleanup(_ context: EngineContext) async {}
    public func leftovers(daemonEnvironment: [String: String], instances: [String]) async -> [Leftover] { [] }
    public func removeLeftover(_ leftover: Leftover, daemonEnvironment: [String: String]) async {}

    public var listensInProcessTree: Bool { true }
    public var listenerCheck: Ports.ListenerCheck { listensInProcessTree ? .processTree : .none }
    public var defaultPort: Int? { nil }
    public var processNames: [String] { [] }
    public func recognise(_ answers: ListenerAnswers, timeout: Duration) async -> ListenerIdentity? { nil }

    public func servedModelName(_ profile: Profile) -> String { profile.model }
    public func apiKey(_ profile: Profile) -> String? { nil }
    public var apiKeyVariable: String? { nil }
    public func contextLength(_ profile: Profile) -> Int? { nil }
    public func providerKind(for target: RegistrationTarget) -> String { target.openAICompatibleKind }
    public func providerAPI(for target: RegistrationTarget) -> ProviderAPI { .openAICompatible }

    public var profileKeys: [EngineProfileKey: String] { [:] }
    public func validate(_ profile: Profile) throws(ProfileProblem) {}

    public var clusterGPUs: Int { 0 }
}
