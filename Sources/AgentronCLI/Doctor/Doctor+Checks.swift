import AgentronClient
import AgentronConfig
import AgentronCore
import AgentronEngines
import AgentronHTTP
import FoundationEssentials
import Glibc

/// What `agentron doctor` found. The JSON shape is stable (`version` bumps on a break).
struct DoctorReport: Codable, Sendable {
    var version = 1
    var agentron = agentronVersion
    var engines: [EngineCheck]
    var docker: DockerCheck
    var gpus: GPUCheck
    var daemon: DaemonCheck
    var ports: [PortCheck]
}

struct EngineCheck: Codable, Sendable {
    /// The engine as profiles name it (`vllm`, `ollama`, `command`).
    var engine: String
    var program: String
    var installed: Bool
    var path: String?
    var version: String?
    /// How to install it, or why the version is unknown.
    var note: String?
}

struct DockerCheck: Codable, Sendable {
    /// `unix:///var/run/docker.sock` or DOCKER_HOST's `tcp://...`.
    var endpoint: String
    var reachable: Bool
    var version: String?
    var apiVersion: String?
    var error: String?
}

struct GPUCheck: Codable, Sendable {
    struct Device: Codable, Sendable {
        var index: Int
        var name: String
        var memoryTotalMiB: Int
        var memoryFreeMiB: Int
    }
    /// Whether nvidia-smi is on PATH.
    var nvidiaSmi: Bool
    var devices: [Device]
    var error: String?
}

struct DaemonCheck: Codable, Sendable {
    var socket: String
    /// Whose daemon: `own`, `system` (reached through its group), `host` (--host).
    var kind: String?
    /// A system daemon this user may not use, when there is one.
    var systemRefusal: String?
    var running: Bool
    var pid: Int32?
    var version: String?
    /// Servers the daemon runs (any state but stopped).
    var servers: Int?
    var error: String?
    /// Provider targets the daemon could not write, or wrote with something left out:
    /// `<kind> <path>: <why>` (the same text `agentron providers` shows).
    var providerProblems: [String]?
    /// The gateway's address (nil: off), and why it does not listen.
    var gateway: String?
    var gatewayError: String?
}

struct PortCheck: Codable, Sendable {
    var port: Int
    /// Whose default this port is ("vLLM", "Ollama", ...); nil for a port asked for by --port.
    var usualFor: String?
    var answering: Bool
    /// Who answers: vllm, ollama, llama.cpp, tgi, lmstudio, or unknown.
    var identified: String?
    var detail: String?
    var models: [String]?
    /// The agentron server that owns this port, when one does.
    var agentronServer: String?
}

/// The checks behind `agentron doctor`. Every one is bounded in time and none fails the
/// command: what is missing is part of the report.
struct DoctorChecks {
    let paths: AgentronPaths
    /// The daemon this CLI talks to (own, system, or --host).
    var target: DaemonTarget
    let environment: [String: String]
    let extraPorts: [Int]

    /// A `--version` that takes longer is reported as "version unknown" (vLLM imports
    /// torch first and can take several seconds).
    static let versionTimeout: Duration = .seconds(2)
    /// nvidia-smi answers in well under a second on a healthy driver; a hung one must not
    /// hang doctor.
    static let gpuQueryTimeout: Duration = .seconds(5)
    /// The Docker daemon and the control socket are local: they answer at once or not at all.
    static let socketTimeout: Duration = .seconds(2)
    /// Loopback ports answer at once or are closed; a loaded engine may be slow to reply.
    static let portTimeout: Duration = .seconds(1)

    /// Well-known ports of local inference servers, probed on loopback only.
    static let wellKnownPorts: [(port: Int, usualFor: String)] = [
        (8000, "vLLM"), (8080, "TGI, llama.cpp"), (11434, "Ollama"), (1234, "LM Studio"),
    ]

    /// The programs the engines need on PATH, as their drivers name them, in the engines'
    /// order (an engine with nothing of its own on PATH, like TGI in Docker, has none).
    static let engines: [(engine: String, program: String, versionArguments: [String], hint: String)] =
        Engines.all.compactMap { driver in
            driver.installedProgram.map { (driver.kind.rawValue, $0.program, $0.versionArguments, $0.hint) }
        }

    /// `2s`, `500ms`: a timeout as profiles write it.
    static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return TimeSpan(seconds: Double(seconds) + Double(attoseconds) / 1e18).description
    }

    func run() async -> DoctorReport {
        // Network checks run while the version commands (blocking, bounded) do.
        async let docker = checkDocker()
        async let daemonAndServers = checkDaemon()
        let (engines, gpus) = checkPrograms()
        let (daemon, servers) = await daemonAndServers
        let ports = await checkPorts(servers: servers)
        return DoctorReport(engines: engines, docker: await docker, gpus: gpus, daemon: daemon, ports: ports)
    }

    // MARK: Engines and GPUs

    private func checkPrograms() -> ([EngineCheck], GPUCheck) {
        let path = environment["PATH"]
        var engines = Self.engines.map { entry in
            EngineCheck(
                engine: entry.engine, program: entry.program, installed: false,
                path: Subprocess.which(entry.program, path: path),
                version: nil, note: nil)
        }
        for index in engines.indices {
            engines[index].installed = engines[index].path != nil
            if !engines[index].installed { engines[index].note = Self.engines[index].hint }
        }
        let smi = Subprocess.which("nvidia-smi", path: path)

        var commands: [[String]] = []
        var owners: [Int] = []  // engine index, or -1 for nvidia-smi
        for (index, engine) in engines.enumerated() {
            guard let found = engine.path else { continue }
            commands.append([found] + Self.engines[index].versionArguments)
            owners.append(index)
        }
        let versions = Subprocess.runAll(commands, timeout: Self.versionTimeout)
        for (slot, outcome) in versions.enumerated() {
            let index = owners[slot]
            if outcome.timedOut {
                engines[index].note =
                    "--version took longer than \(Self.describe(Self.versionTimeout)); version unknown"
            } else if let error = outcome.spawnError {
                engines[index].installed = false
                engines[index].note = error
            } else {
                engines[index].version = Self.version(from: outcome.output, program: engines[index].program)
            }
        }

        var gpus = GPUCheck(nvidiaSmi: smi != nil, devices: [], error: nil)
        if let smi {
            let query = [smi, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"]
            let outcome = Subprocess.run(query, timeout: Self.gpuQueryTimeout)
            if outcome.timedOut {
                gpus.error =
                    "nvidia-smi did not answer within \(Self.describe(Self.gpuQueryTimeout)); the driver may be stuck"
            } else if outcome.status != 0 {
                gpus.error =
                    "nvidia-smi failed: "
                    + (Self.lastLine(outcome.output) ?? outcome.spawnError ?? "exit \(outcome.status)")
            } else {
                gpus.devices = Self.parseGPUs(outcome.output)
            }
        }
        return (engines, gpus)
    }

    /// "0.11.0"; "ollama version is 0.12.6" / "Warning: client version is 0.12.6";
    /// llama-server's "version: 6123 (abcdef0)".
    static func version(from output: String, program: String) -> String? {
        let lines = output.split(whereSeparator: \.isNewline).map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        for line in lines.reversed() {
            if let range = line.firstRange(of: "version is ") {
                return String(line[range.upperBound...]).trimmingSpaces
            }
            if line.hasPrefix("version: ") { return String(line.dropFirst("version: ".count)).trimmingSpaces }
        }
        // vLLM prints the bare version last, after any log lines.
        guard let last = lines.last else { return nil }
        return last.count > 80 ? String(last.prefix(80)) + "…" : last
    }

    /// `0, NVIDIA H100 80GB HBM3, 81559, 80982` per line.
    static func parseGPUs(_ output: String) -> [GPUCheck.Device] {
        output.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: ",").map { String($0).trimmingSpaces }
            guard fields.count >= 4, let index = Int(fields[0]) else { return nil }
            let name = fields[1..<(fields.count - 2)].joined(separator: ",")
            return GPUCheck.Device(
                index: index, name: name, memoryTotalMiB: Int(fields[fields.count - 2]) ?? 0,
                memoryFreeMiB: Int(fields[fields.count - 1]) ?? 0)
        }
    }

    static func lastLine(_ output: String) -> String? {
        output.split(whereSeparator: \.isNewline).last.map { String($0).trimmingSpaces }
    }

    // MARK: Docker

    private struct DockerVersion: Decodable {
        var Version: String?
        var ApiVersion: String?
    }

    /// GET /version on the Docker Engine API: DOCKER_HOST (`unix://` or `tcp://`), else
    /// /var/run/docker.sock.
    private func checkDocker() async -> DockerCheck {
        let host = environment["DOCKER_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "unix:///var/run/docker.sock"
        var check = DockerCheck(endpoint: host, reachable: false)
        let request: HTTPRequest
        if host.hasPrefix("unix://") {
            let socket = String(host.dropFirst("unix://".count))
            var info = stat()
            guard stat(socket, &info) == 0 else {
                check.error =
                    "no Docker socket at \(socket): Docker is not installed or not running (the tgi engine needs it)"
                return check
            }
            guard access(socket, R_OK | W_OK) == 0 else {
                check.error =
                    "permission denied on \(socket): add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again)"
                return check
            }
            request = HTTPRequest(
                url: "http://localhost/version", unixSocketPath: socket, timeout: Self.socketTimeout,
                connectTimeout: Self.socketTimeout)
        } else if host.hasPrefix("tcp://") {
            request = HTTPRequest(
                url: "http://" + host.dropFirst("tcp://".count) + "/version", timeout: Self.socketTimeout,
                connectTimeout: Self.socketTimeout)
        } else {
            check.error = "DOCKER_HOST=\(host) is not a unix:// or tcp:// address"
            return check
        }
        do {
            let response = try await HTTPClient.shared.execute(request)
            guard response.status == 200,
                let version = try? JSONDecoder().decode(DockerVersion.self, from: Data(response.body))
            else {
                check.error = "\(host) answered status \(response.status), not the Docker Engine API"
                return check
            }
            check.reachable = true
            check.version = version.Version
            check.apiVersion = version.ApiVersion
        } catch let error as HTTPClientError {
            switch error {
            case .connectionRefused:
                check.error =
                    "nothing answers on \(host): the Docker daemon is not running (`sudo systemctl start docker`)"
            case .timedOut: check.error = "\(host) did not answer within \(Self.describe(Self.socketTimeout))"
            default: check.error = "\(error)"
            }
        } catch {
            check.error = "\(error)"
        }
        return check
    }

    // MARK: Daemon

    private func checkDaemon() async -> (DaemonCheck, [ServerInfo]) {
        let client = ControlClient(target: target)
        var check = DaemonCheck(socket: target.socketPath, running: false)
        check.kind = target.kind.rawValue
        check.systemRefusal = target.systemRefusal
        do {
            let info = try await client.daemonInfo(timeout: Self.socketTimeout)
            check.running = true
            check.pid = info.pid
            check.version = info.version
            check.gateway = info.gateway
            check.gatewayError = info.gatewayError
            let servers = (try? await client.list(all: false)) ?? []
            check.servers = servers.count
            if let providers = try? await client.providers(timeout: Self.socketTimeout) {
                check.providerProblems = providers.targets.compactMap { target in
                    target.error.map { "\(target.kind) \(target.path ?? "-"): \($0)" }
                }
            }
            return (check, servers)
        } catch .daemonNotRunning {
            return (check, [])
        } catch {
            check.error = "\(error)"
            return (check, [])
        }
    }

    // MARK: Ports

    private func checkPorts(servers: [ServerInfo]) async -> [PortCheck] {
        var targets = Self.wellKnownPorts.map { ($0.port, Optional($0.usualFor)) }
        for port in extraPorts where !targets.contains(where: { $0.0 == port }) { targets.append((port, nil)) }
        let owners = Dictionary(
            servers.compactMap { server in server.port.map { ($0, server.name) } }, uniquingKeysWith: { a, _ in a })
        return await withTaskGroup(of: (Int, PortCheck).self) { group in
            for (order, target) in targets.enumerated() {
                group.addTask {
                    var check = await PortProbe.identify(port: target.0, timeout: Self.portTimeout)
                    check.usualFor = target.1
                    check.agentronServer = owners[target.0]
                    return (order, check)
                }
            }
            var results: [(Int, PortCheck)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

/// Who answers on a loopback port, told apart by what each server says about itself.
enum PortProbe {
    static func identify(port: Int, timeout: Duration) async -> PortCheck {
        let base = "http://127.0.0.1:\(port)"
        var check = PortCheck(port: port, answering: false)
        let root: HTTPResponse
        do {
            root = try await HTTPClient.shared.execute(
                HTTPRequest(url: base + "/", timeout: timeout, connectTimeout: timeout))
        } catch let error as HTTPClientError {
            switch error {
            case .connectionRefused: return check
            case .timedOut:
                check.answering = true
                check.identified = "unknown"
                check.detail = "accepts connections but sent no answer within \(DoctorChecks.describe(timeout))"
            default:
                check.answering = true
                check.identified = "unknown"
                check.detail = "\(error)"
            }
            return check
        } catch {
            return check
        }
        check.answering = true
        let server = root.header("server")?.lowercased() ?? ""
        // OpenAI-compatible servers list their models, many with an owner that names them.
        let listed = try? await get(base + "/v1/models", timeout)
        let answers = ListenerAnswers(
            baseURL: base, root: root, models: listed.flatMap { ListenerAnswers.modelCards(from: $0.body) })
        let cards = answers.models ?? []
        if !cards.isEmpty { check.models = cards.map(\.id) }

        // The engines agentron drives know their own servers.
        for driver in Engines.all {
            guard let identity = await driver.recognise(answers, timeout: timeout) else { continue }
            check.identified = identity.identified
            check.detail = identity.detail
            if let models = identity.models { check.models = models }
            return check
        }
        // Servers agentron does not drive itself, told by their `owned_by` or `Server:` header.
        let owners = answers.owners
        if owners.contains("llamacpp") || server.contains("llama.cpp") {
            check.identified = "llama.cpp"
            check.detail = "llama.cpp llama-server"
            return check
        }
        if owners.contains("organization_owner") || owners.contains("lmstudio") || server.contains("lm studio") {
            check.identified = "lmstudio"
            check.detail = "LM Studio"
            return check
        }
        check.identified = cards.isEmpty ? "unknown" : "openai-compatible"
        var detail = "HTTP \(root.status) on /"
        if !server.isEmpty { detail += ", server \"\(root.header("server") ?? server)\"" }
        check.detail = detail
        return check
    }

    private static func get(_ url: String, _ timeout: Duration) async throws -> HTTPResponse {
        try await HTTPClient.shared.execute(HTTPRequest(url: url, timeout: timeout, connectTimeout: timeout))
    }
}
