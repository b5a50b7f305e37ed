import AgentronConfig
import AgentronCore
import AgentronEngines
import ArgumentParser
import Glibc
import Synchronization

/// `agentron-container-shim`: creates, starts and follows one container through the
/// Docker Engine API, writing its output to stdout (the server's log file), and exits with
/// the container's exit code. SIGTERM stops the container with `--stop-timeout` (TGI needs
/// up to 90 s; Docker's default 10 s cuts it short), then removes it.
///
/// The daemon runs it like any engine process, so supervision, live restore and tree
/// kill need nothing container-specific; if the shim itself is killed, the daemon removes
/// the container by name afterwards, and a new shim adopts a running container it finds.
struct ContainerShim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentron-container-shim",
        abstract: "Run one container for agentrond through the Docker Engine API (internal).")

    @Option(help: "Container name.") var name: String
    @Option(help: "Image to run.") var image: String
    @Option(help: "Host address to publish on.") var host: String = "127.0.0.1"
    @Option(help: "Host port.") var port: Int
    @Option(help: "Port inside the container.") var containerPort: Int = 80
    @Option(help: "Seconds between SIGTERM and SIGKILL on stop.") var stopTimeout: Int = 90
    @Option(name: .customLong("label"), help: "KEY=VALUE label; repeat.") var labels: [String] = []
    @Option(name: .customLong("env"), help: "Name of a variable of this process to pass to the container; repeat.")
    var envNames: [String] = []
    @Option(name: .customLong("bind"), help: "SRC:DST bind mount; repeat.") var binds: [String] = []
    @Option(help: "Shared memory size in bytes.") var shmSize: Int64 = 1 << 30
    @Option(help: "GPUs: indices (0,1), all, auto (all on a host with NVIDIA GPUs, none elsewhere), or none.")
    var gpus: String = "none"
    @Option(help: "Container argument that takes the GPU count (e.g. --num-shard); appended unless the command has it.")
    var gpuCountArg: String?
    @Option(help: "When to pull the image: missing (only when not present), always, or never.")
    var pullPolicy: PullPolicy = .missing
    @Argument(parsing: .postTerminator, help: "The container's command (after --).") var command: [String] = []

    /// Exit code for "could not run the container", as `docker run` uses.
    static let cannotRun: Int32 = 125

    func run() async throws {
        let environment = ProcessEnvironment.current
        let docker: DockerClient
        do {
            docker = try DockerClient.fromEnvironment(environment)
            let version = try await docker.version()
            say("agentron-container-shim: Docker \(version.Version) (API \(version.ApiVersion))")
        } catch {
            say("agentron-container-shim: \(error)")
            throw ExitCode(Self.cannotRun)
        }

        let id: String
        do {
            id = try await prepareContainer(docker, environment: environment)
        } catch {
            say("agentron-container-shim: \(error)")
            throw ExitCode(Self.cannotRun)
        }
        let stopper = Stopper(docker: docker, id: id, timeout: stopTimeout)
        SignalThread.start { Task { await stopper.stop() } }

        let logs = Task {
            do {
                for try await chunk in try await docker.followLogs(id) { writeStdout(chunk) }
            } catch {
                say("agentron-container-shim: log stream ended: \(error)")
            }
        }
        let code: Int
        do {
            code = try await docker.wait(id)
        } catch {
            say("agentron-container-shim: lost the container: \(error)")
            throw ExitCode(Self.cannotRun)
        }
        // Let the last lines arrive, then let go of the stream.
        try? await Task.sleep(for: .milliseconds(200))
        logs.cancel()
        say("agentron-container-shim: container \(name) exited with status \(code)")
        try? await docker.remove(id)
        throw ExitCode(Int32(clamping: code))
    }

    /// Creates and starts the container, or adopts one of ours already running under the
    /// name (the shim was restarted while its container kept serving).
    private func prepareContainer(_ docker: DockerClient, environment: [String: String]) async throws -> String {
        for existing in try await docker.containers(label: ContainerLabels.container, value: name) {
            if existing.State == "running" {
                say("agentron-container-shim: adopting running container \(name) (\(existing.Id.prefix(12)))")
                return existing.Id
            }
            try await docker.remove(existing.Id)
        }
        try createBindSources()
        let present = try await docker.imageExists(image)
        switch (pullPolicy, present) {
        case (.never, false):
            throw DockerError.api(
                status: 404,
                message:
                    "image \(image) is not present and the profile says pull: never; pull it with `docker pull \(image)`, or set pull: missing"
            )
        case (.missing, false), (.always, _):
            say("agentron-container-shim: pulling \(image)\(present ? " (pull: always)" : "")")
            try await docker.pull(image) { say("pull: \($0)") }
        case (.never, true), (.missing, true):
            break
        }
        var labelMap = [ContainerLabels.container: name]
        for label in labels {
            guard let eq = label.firstIndex(of: "=") else { continue }
            labelMap[String(label[..<eq])] = String(label[label.index(after: eq)...])
        }
        // Values come from this process's environment, never from argv (secrets).
        let env = envNames.compactMap { key in environment[key].map { "\(key)=\($0)" } }
        let (devices, count) = try await resolveGPUs(docker, environment: environment)
        var command = command
        if let flag = gpuCountArg, let count, !command.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) {
            command += [flag, String(count)]
        }
        let spec = ContainerSpec(
            image: image, command: command, environment: env, labels: labelMap, containerPort: containerPort,
            hostIP: host, hostPort: port, binds: binds, shmSize: shmSize, gpus: devices, stopTimeout: stopTimeout)
        let id = try await docker.createContainer(name: name, spec: spec)
        do { try await docker.start(id) } catch {
            // A container that never started is no use to a later shim: leave nothing behind.
            try? await docker.remove(id)
            // NVIDIA device nodes without the container toolkit: Docker cannot hand the
            // GPUs over, and its own words do not say what to do.
            if devices != .none, "\(error)".contains("could not select device driver") {
                say(
                    "agentron-container-shim: Docker cannot give this container the GPUs (\(error)); install the NVIDIA Container Toolkit (nvidia-container-toolkit) and restart dockerd"
                )
            }
            throw error
        }
        say("agentron-container-shim: started container \(name) (\(id.prefix(12))) from \(image)")
        return id
    }
}

extension ContainerShim {
    /// Docker exposes GPUs only when the create asks for them, and asking on a host without
    /// the NVIDIA runtime fails the create ("could not select device driver"), so `auto`
    /// asks for all GPUs exactly when the host has them: NVIDIA device nodes, or dockerd
    /// reporting the `nvidia` runtime. Returns the request and the GPU count when known
    /// (the listed indices, or the /dev/nvidiaN nodes for all).
    /// AGENTRON_GPU_DEVICES_DIR replaces /dev for the device-node check (tests simulate a
    /// GPU host with it).
    func resolveGPUs(_ docker: DockerClient, environment: [String: String]) async throws(ShimError) -> (
        ContainerSpec.GPUs, Int?
    ) {
        switch gpus {
        case "", "none":
            return (.none, nil)
        case "all", "auto":
            let directory = environment["AGENTRON_GPU_DEVICES_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/dev"
            let nodes = Self.nvidiaDevices(in: directory)
            let count = nodes.gpus > 0 ? nodes.gpus : nil
            if gpus == "all" { return (.all, count) }
            var runtimes: [String] = []
            if !nodes.present { runtimes = (try? await docker.runtimes()) ?? [] }
            guard nodes.present || runtimes.contains("nvidia") else {
                say(
                    "agentron-container-shim: no NVIDIA GPU on this host (no \(directory)/nvidia*, no nvidia runtime in Docker): running without GPUs"
                )
                return (.none, nil)
            }
            say("agentron-container-shim: GPUs: all (\(count.map(String.init) ?? "an unknown number of") found)")
            return (.all, count)
        default:
            var indices: [Int] = []
            for part in gpus.split(separator: ",") {
                guard let index = Int(part.trimmingPrefix(" ")), index >= 0 else {
                    throw ShimError("--gpus \(gpus): not a list of GPU indices; use e.g. 0,1, all, auto or none")
                }
                indices.append(index)
            }
            return (.indices(indices), indices.count)
        }
    }

    /// `nvidiactl` or any `nvidiaN` under `directory`, and how many `nvidiaN` there are.
    static func nvidiaDevices(in directory: String) -> (present: Bool, gpus: Int) {
        guard let dir = opendir(directory) else { return (false, 0) }
        defer { closedir(dir) }
        var present = false
        var gpus = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasPrefix("nvidia") else { continue }
            let suffix = name.dropFirst("nvidia".count)
            if suffix == "ctl" { present = true }
            if !suffix.isEmpty, suffix.allSatisfy(\.isASCII), suffix.allSatisfy(\.isNumber) {
                present = true
                gpus += 1
            }
        }
        return (present, gpus)
    }

    /// Creates each missing bind-mount source before the container exists, as this
    /// process's user (the daemon's), or for a root daemon as the owner of the directory it
    /// is made in: Docker would create it as root, and a later run as the user then fails
    /// writing into it (the TGI download's PermissionError in the HF cache).
    func createBindSources() throws(ShimError) {
        for bind in binds {
            guard bind.hasPrefix("/"), let colon = bind.firstIndex(of: ":") else { continue }
            let source = String(bind[..<colon])
            var path = ""
            for component in source.split(separator: "/") {
                let parent = path.isEmpty ? "/" : path
                path += "/" + component
                if mkdir(path, 0o755) != 0 {
                    guard errno == EEXIST else {
                        let reason = String(cString: strerror(errno))
                        throw ShimError(
                            "cannot create \(path) for the bind mount \(bind): \(reason); create it writable for uid \(getuid()), or change the path in the profile"
                        )
                    }
                    continue
                }
                // A root daemon creating a cache in a user's home (HF_HOME=/home/alice/...)
                // gives the new directory to the owner of the one it is in, so the user can
                // still write their own cache (lchown: never through a link).
                var info = stat()
                if geteuid() == 0, lstat(parent, &info) == 0, info.st_uid != 0 {
                    lchown(path, info.st_uid, info.st_gid)
                }
            }
        }
    }
}

/// A failure of the shim's own (not Docker's answer): one line.
struct ShimError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Stops the container once, however many signals arrive.
actor Stopper {
    let docker: DockerClient
    let id: String
    let timeout: Int
    private var stopping = false

    init(docker: DockerClient, id: String, timeout: Int) {
        self.docker = docker
        self.id = id
        self.timeout = timeout
    }

    func stop() async {
        guard !stopping else { return }
        stopping = true
        say("agentron-container-shim: stopping the container (up to \(timeout) s)")
        do { try await docker.stop(id, timeout: timeout) } catch {
            say("agentron-container-shim: stop failed: \(error); removing it")
            try? await docker.remove(id)
        }
    }
}

extension ContainerShim {
    /// Entry point; called from an async context so AsyncParsableCommand's `main` is used.
    static func runAsync() async {
        await main()
    }
}

func say(_ line: String) {
    writeStdout(Array((line + "\n").utf8))
}

func writeStdout(_ bytes: [UInt8]) {
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes {
            write(STDOUT_FILENO, $0.baseAddress.map { $0 + written }, bytes.count - written)
        }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return }
        written += n
    }
}

/// Waits for SIGTERM/SIGINT (blocked in every thread by main.swift) on its own thread.
enum SignalThread {
    private static let handler = Mutex<(@Sendable () -> Void)?>(nil)

    static func start(_ onSignal: @escaping @Sendable () -> Void) {
        handler.withLock { $0 = onSignal }
        var thread = pthread_t()
        pthread_create(
            &thread, nil,
            { _ in
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, SIGTERM)
                sigaddset(&set, SIGINT)
                while true {
                    var signal: Int32 = 0
                    guard sigwait(&set, &signal) == 0 else { continue }
                    SignalThread.handler.withLock { $0 }?()
                }
            }, nil)
        pthread_detach(thread)
    }
}

extension PullPolicy: ExpressibleByArgument {}
