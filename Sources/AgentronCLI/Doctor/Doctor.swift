import AgentronConfig
import AgentronCore
import ArgumentParser

/// `agentron doctor`: what this machine offers agentron (engines on PATH, Docker, GPUs),
/// whether the daemon runs, and which well-known inference ports already answer, and
/// with what. A report: it exits 0 whatever is missing.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check engines, Docker, GPUs, the daemon and busy inference ports.",
        discussion: """
            Engines: vllm, ollama and llama-server on PATH, with their versions. Docker: the
            Engine API on DOCKER_HOST or /var/run/docker.sock (the tgi engine needs it).
            GPUs: nvidia-smi's list with free memory. Ports: 8000 (vLLM), 8080 (TGI,
            llama.cpp), 11434 (Ollama) and 1234 (LM Studio) on 127.0.0.1, and who answers.
            Always exits 0: missing pieces are part of the report.
            """
    )

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(name: .customLong("port"), help: "Also probe this port on 127.0.0.1; repeat for several.")
    var extraPorts: [Int] = []

    func validate() throws {
        for port in extraPorts where !PortSpec.validRange.contains(port) {
            throw ValidationError("invalid --port \(port); give a number from 1 to 65535")
        }
    }

    func run() async throws {
        let context = CLIContext()
        let report = await DoctorChecks(
            paths: context.paths, target: context.target, environment: ProcessEnvironment.current,
            extraPorts: extraPorts
        ).run()
        if json {
            Output.json(report)
        } else {
            Output.writeStdout(Array(DoctorRendering(report: report, fancy: Output.useColor).render().utf8))
        }
    }
}

/// The human report: one checklist line per item, ✓/✗ in colour on a terminal, plain
/// `ok`/`no` markers otherwise (NO_COLOR, pipes, logs).
struct DoctorRendering {
    let report: DoctorReport
    let fancy: Bool

    enum Mark {
        case ok, missing, note, busy
    }

    func mark(_ mark: Mark) -> String {
        switch (mark, fancy) {
        case (.ok, true): "\u{1B}[32m✓\u{1B}[0m"
        case (.missing, true): "\u{1B}[31m✗\u{1B}[0m"
        case (.note, true): "·"
        case (.busy, true): "\u{1B}[33m●\u{1B}[0m"
        case (.ok, false): "ok  "
        case (.missing, false): "no  "
        case (.note, false): "--  "
        case (.busy, false): "used"
        }
    }

    func render() -> String {
        var lines = ["agentron \(report.agentron) doctor", ""]

        lines.append("Engines")
        let width = max(12, report.engines.map(\.program.count).max() ?? 0)
        for engine in report.engines {
            let name = engine.program.padding(to: width)
            if engine.installed {
                var line = "  \(mark(.ok)) \(name)  \(engine.version ?? "version unknown")  \(engine.path ?? "")"
                if let note = engine.note { line += " (\(note))" }
                lines.append(line)
            } else {
                lines.append(
                    "  \(mark(engine.engine == "command" ? .note : .missing)) \(name)  not on PATH; \(engine.note ?? "")"
                )
            }
        }
        let docker = report.docker
        if docker.reachable {
            lines.append(
                "  \(mark(.ok)) \("docker".padding(to: width))  Docker \(docker.version ?? "?"), API \(docker.apiVersion ?? "?") on \(docker.endpoint)"
            )
        } else {
            lines.append(
                "  \(mark(.missing)) \("docker".padding(to: width))  \(docker.error ?? "not reachable on \(docker.endpoint)")"
            )
        }

        lines.append("GPUs")
        if !report.gpus.nvidiaSmi {
            lines.append(
                "  \(mark(.note)) nvidia-smi not on PATH: no NVIDIA driver here; engines that can run on CPU (ollama, llama-server) still work"
            )
        } else if let error = report.gpus.error {
            lines.append("  \(mark(.missing)) \(error)")
        } else if report.gpus.devices.isEmpty {
            lines.append("  \(mark(.missing)) nvidia-smi lists no GPU")
        } else {
            for gpu in report.gpus.devices {
                lines.append(
                    "  \(mark(.ok)) \(gpu.index)  \(gpu.name)  \(Self.mebibytes(gpu.memoryFreeMiB)) free of \(Self.mebibytes(gpu.memoryTotalMiB))"
                )
            }
        }

        lines.append("Daemon")
        let daemon = report.daemon
        if daemon.running {
            var line =
                "  \(mark(.ok)) agentrond \(daemon.version ?? "?") running, pid \(daemon.pid.map(String.init) ?? "?"), socket \(daemon.socket)"
                + (daemon.kind == "system" ? " (the system daemon)" : daemon.kind == "host" ? " (--host)" : "")
            if let servers = daemon.servers { line += ", \(servers) server\(servers == 1 ? "" : "s")" }
            lines.append(line)
            if let gateway = daemon.gateway {
                if let error = daemon.gatewayError {
                    lines.append(
                        "  \(mark(.missing)) gateway cannot listen on \(gateway): \(error); set AGENTRON_GATEWAY=host:port (or off) for agentrond"
                    )
                } else {
                    lines.append("  \(mark(.ok)) gateway on http://\(gateway)/v1 (one OpenAI endpoint for every model)")
                }
            } else {
                lines.append("  \(mark(.note)) gateway off (AGENTRON_GATEWAY=off)")
            }
            for problem in daemon.providerProblems ?? [] {
                lines.append("  \(mark(.missing)) provider config \(problem)")
            }
        } else if let error = daemon.error {
            lines.append("  \(mark(.missing)) \(error)")
        } else {
            lines.append("  \(mark(.note)) agentrond is not running (socket \(daemon.socket)); `agentron up` starts it")
            if let refusal = daemon.systemRefusal { lines.append("  \(mark(.note)) \(refusal)") }
        }

        lines.append("Ports on 127.0.0.1")
        for port in report.ports {
            let number = String(port.port).padding(to: 5)
            let usual = port.usualFor.map { " (\($0)'s default)" } ?? ""
            guard port.answering else {
                lines.append("  \(mark(.note)) \(number)  free\(usual)")
                continue
            }
            var line = "  \(mark(.busy)) \(number)  \(port.detail ?? port.identified ?? "answers")"
            if let models = port.models, !models.isEmpty { line += ", models: \(models.joined(separator: ", "))" }
            if let server = port.agentronServer { line += " (agentron server \"\(server)\")" }
            lines.append(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `80 GiB`, `512 MiB`.
    static func mebibytes(_ value: Int) -> String {
        value >= 1024 ? "\(Double(value * 10 / 1024) / 10) GiB" : "\(value) MiB"
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
