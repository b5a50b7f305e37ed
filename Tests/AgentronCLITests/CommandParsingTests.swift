import AgentronCore
import ArgumentParser
import Testing

@testable import AgentronCLI

/// Every command's arguments, parsed as `agentron` parses them (`parseAsRoot`, which runs
/// `validate()`): valid invocations give the expected values, invalid ones the expected
/// one-line message. Nothing here talks to a daemon.
struct CommandParsingTests {
    /// Parses `arguments` as the `agentron` command line and returns the command as `T`.
    func parse<T: ParsableCommand>(_ arguments: [String], as type: T.Type = T.self) throws -> T {
        let command = try AgentronCommand.parseAsRoot(arguments)
        return try #require(command as? T, "\(arguments) parsed as \(Swift.type(of: command))")
    }

    /// The message `agentron` prints for an invocation that does not parse.
    func refusal(_ arguments: [String]) -> String? {
        do {
            _ = try AgentronCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return AgentronCommand.message(for: error)
        }
    }

    @Test func upWithAModelIdAndEveryFlag() throws {
        let up = try parse(
            [
                "up", "org/model", "--engine", "vllm", "--name", "m1", "--port", "8001", "--host", "0.0.0.0",
                "--gpus", "0, 1", "--arg=--max-model-len", "--arg=4096", "--env", "HF_TOKEN=x=y", "--env", "A=",
                "--startup-timeout", "30m", "--stop-timeout", "90s", "--no-register", "--detach", "--json",
            ], as: ServerUp.self)
        #expect(up.target == "org/model")
        #expect(up.engine == "vllm" && up.name == "m1" && up.host == "0.0.0.0")
        #expect(up.port == .fixed(8001))
        #expect(up.gpus == [0, 1])
        #expect(up.args == ["--max-model-len", "4096"], "an --arg value may start with dashes")
        #expect(up.envPairs == ["HF_TOKEN=x=y", "A="])
        #expect(up.startupTimeout == .minutes(30) && up.stopTimeout == .seconds(90))
        #expect(up.noRegister && up.detach && up.json && !up.pull && !up.adopt)
    }

    @Test func upDefaultsAndPortAuto() throws {
        let up = try parse(["up", "llama"], as: ServerUp.self)
        #expect(up.engine == nil && up.port == nil && up.args.isEmpty && !up.detach && up.pullPolicy == nil)
        #expect(try parse(["up", "x", "--port", "auto"], as: ServerUp.self).port == .auto)
        let ollama = try parse(
            ["up", "llama3.2:1b", "--engine", "ollama", "--pull-policy", "never", "--adopt", "--port", "11434"],
            as: ServerUp.self)
        #expect(ollama.pullPolicy == "never" && ollama.adopt)
        #expect(try parse(["up", "x", "--engine", "tgi", "--pull"], as: ServerUp.self).pull)
    }

    @Test(arguments: [
        (["up"], "name what to start: a profile, a profile file, or a model id with --engine"),
        (["up", "x", "--engine", "warp"], "unknown engine \"warp\"; choose one of: vllm, ollama, tgi, command"),
        (["up", "x", "--port", "0"], "invalid port \"0\"; give a number from 1 to 65535, or auto"),
        (["up", "x", "--port", "65536"], "invalid port \"65536\""),
        (["up", "x", "--port", "http"], "invalid port \"http\""),
        (["up", "x", "--gpus", "0,-1"], "invalid --gpus \"0,-1\"; give GPU indices like 0 or 0,1"),
        (["up", "x", "--gpus", "a"], "invalid --gpus \"a\""),
        (
            ["up", "x", "--env", "AGENTRON_TEST_SURELY_UNSET"],
            "AGENTRON_TEST_SURELY_UNSET is not set in your environment"
        ),
        (["up", "x", "--env", "NOT A NAME"], "invalid --env \"NOT A NAME\"; write it as KEY=VALUE"),
        (["up", "x", "--env", "=v"], "invalid --env \"=v\""),
        (["up", "x", "--startup-timeout", "soon"], "invalid duration \"soon\"; write it like 90s, 30m, 2h or 500ms"),
        (["up", "x", "--stop-timeout=-5s"], "invalid duration \"-5s\""),
        (["up", "x", "--stop-timeout", "9000h"], "duration \"9000h\" is longer than a year"),
        (
            ["up", "x", "--name", "bad name"],
            "invalid --name \"bad name\"; use letters, digits, '-', '_' or '.', at most 64 characters"
        ),
        (
            ["up", "x", "--engine", "vllm", "--pull"],
            "--pull and --pull-policy are for the ollama and tgi engines; vllm fetches its own model"
        ),
        (
            ["up", "x", "--engine", "tgi", "--pull", "--pull-policy", "always"],
            "give --pull-policy or --pull, not both"
        ),
        (
            ["up", "x", "--pull-policy", "sometimes"],
            "unknown pull policy \"sometimes\"; choose one of: missing, always, never"
        ),
        (["up", "x", "--unknown-flag"], "Unknown option '--unknown-flag'"),
    ])
    func upRefusals(_ arguments: [String], _ message: String) {
        let text = refusal(arguments)
        #expect(text?.contains(message) == true, "\(arguments): \(text ?? "parsed")")
    }

    @Test func downNamesOrAll() throws {
        let down = try parse(["down", "a", "b", "--timeout", "30s", "--json"], as: ServerDown.self)
        #expect(down.names == ["a", "b"] && !down.all && down.timeout == .seconds(30) && down.json)
        let all = try parse(["down", "--all"], as: ServerDown.self)
        #expect(all.all && all.names.isEmpty && all.timeout == nil)
        #expect(refusal(["down"]) == "name the servers to stop, or give --all")
        #expect(refusal(["down", "a", "--all"]) == "give server names or --all, not both")
        #expect(refusal(["down", "a", "--timeout", "x"])?.contains("invalid duration \"x\"") == true)
    }

    @Test func psFlags() throws {
        let plain = try parse(["ps"], as: ServerPs.self)
        #expect(!plain.all && !plain.json)
        let all = try parse(["ps", "-a", "--json"], as: ServerPs.self)
        #expect(all.all && all.json)
        #expect(try parse(["ps", "--all"], as: ServerPs.self).all)
        #expect(refusal(["ps", "extra"])?.contains("Unexpected argument 'extra'") == true)
        #expect(try parse(["ps", "-q"], as: ServerPs.self).quiet)
        #expect(try parse(["ps", "--format", "names"], as: ServerPs.self).format == .names)
        #expect(refusal(["ps", "-q", "--json"]) == "give one of --json, -q/--quiet and --format")
        #expect(refusal(["ps", "--format", "yaml"])?.contains("yaml") == true)
    }

    /// The names users bring from docker: `stop` for down, `ls` for ps.
    @Test func dockerStyleAliases() throws {
        let command = try AgentronCommand.parseAsRoot(["stop", "a", "b"])
        #expect((command as? ServerDown)?.names == ["a", "b"])
        #expect(try AgentronCommand.parseAsRoot(["ls", "-a"]) is ServerPs)
        let named = try AgentronCommand.takeHost(from: ["--host", "/run/a.sock", "ps"])
        #expect(named.arguments == ["ps"] && named.host == "/run/a.sock")
        let late = try AgentronCommand.takeHost(from: ["ps", "--host=/x.sock", "--", "--host", "y"])
        #expect(late.arguments == ["ps", "--", "--host", "y"] && late.host == "/x.sock")
    }

    @Test func logsTailAndFollow() throws {
        let logs = try parse(["logs", "llama"], as: ServerLogs.self)
        #expect(logs.name == "llama" && logs.tail == 100 && !logs.follow)
        let follow = try parse(["logs", "llama", "-f", "-n", "5"], as: ServerLogs.self)
        #expect(follow.follow && follow.tail == 5)
        #expect(refusal(["logs", "llama", "-t", "5"]) != nil, "-t is docker's --timestamps, not --tail")
        #expect(try parse(["logs", "llama", "--follow", "--tail", "0"], as: ServerLogs.self).tail == 0)
        #expect(refusal(["logs", "llama", "--tail=-5"]) == "--tail must be 0 or more")
        #expect(refusal(["logs", "llama", "--tail", "many"])?.contains("many") == true)
        #expect(refusal(["logs"])?.contains("Missing expected argument '<name>'") == true)
    }

    @Test func rmNamesOrStopped() throws {
        let rm = try parse(["rm", "a", "-f", "--json"], as: ServerRemove.self)
        #expect(rm.names == ["a"] && rm.force && rm.json && !rm.stopped)
        #expect(try parse(["rm", "--stopped"], as: ServerRemove.self).stopped)
        #expect(refusal(["rm"]) == "name the servers to remove, or give --stopped")
        #expect(refusal(["rm", "a", "--stopped"]) == "give server names or --stopped, not both")
    }

    @Test func restartAndInspect() throws {
        let restart = try parse(["restart", "llama", "--detach"], as: ServerRestart.self)
        #expect(restart.name == "llama" && restart.detach)
        #expect(!(try parse(["restart", "llama"], as: ServerRestart.self).detach))
        #expect(refusal(["restart"])?.contains("Missing expected argument '<name>'") == true)
        let inspect = try parse(["inspect", "llama", "--json"], as: ServerInspect.self)
        #expect(inspect.name == "llama" && inspect.json)
        #expect(refusal(["inspect", "a", "b"])?.contains("Unexpected argument 'b'") == true)
    }

    @Test func profilesSubcommands() throws {
        #expect(try parse(["profiles", "list", "--json"], as: ProfileList.self).json)
        #expect(!(try parse(["profiles", "ls"], as: ProfileList.self).json), "ls is list")
        #expect(try parse(["profiles", "show", "llama"], as: ProfileShow.self).profile == "llama")
        #expect(try parse(["profiles", "validate"], as: ProfileValidate.self).profiles.isEmpty)
        #expect(
            try parse(["profiles", "validate", "a.yaml", "b", "--json"], as: ProfileValidate.self).profiles == [
                "a.yaml", "b",
            ])
        #expect(refusal(["profiles", "show"])?.contains("Missing expected argument '<profile>'") == true)
        #expect(refusal(["profiles", "delete"])?.contains("delete") == true)
    }

    @Test func providersFlags() throws {
        #expect(!(try parse(["providers"], as: ProviderList.self).json))
        #expect(try parse(["providers", "--json"], as: ProviderList.self).json)
        #expect(refusal(["providers", "--yaml"])?.contains("Unknown option '--yaml'") == true)
    }

    @Test func serviceSubcommands() throws {
        let install = try parse(
            ["service", "install", "--user", "--dry-run", "--socket", "--agentrond", "/opt/agentron/agentrond"],
            as: ServiceInstall.self)
        #expect(install.user && install.dryRun && install.socket && install.agentrond == "/opt/agentron/agentrond")
        let plain = try parse(["service", "install"], as: ServiceInstall.self)
        #expect(!plain.user && !plain.dryRun && !plain.socket && plain.agentrond == nil)
        #expect(
            refusal(["service", "install", "--agentrond", "bin/agentrond"])
                == "--agentrond must be an absolute path (systemd runs ExecStart without a working directory); got bin/agentrond"
        )
        let uninstall = try parse(["service", "uninstall", "--user", "--dry-run"], as: ServiceUninstall.self)
        #expect(uninstall.user && uninstall.dryRun)
        let status = try parse(["service", "status", "--json"], as: ServiceStatus.self)
        #expect(status.json && !status.user)
        #expect(refusal(["service", "restart"])?.contains("restart") == true)
    }

    @Test func doctorPorts() throws {
        let doctor = try parse(["doctor", "--json", "--port", "8001", "--port", "9000"], as: Doctor.self)
        #expect(doctor.json && doctor.extraPorts == [8001, 9000])
        #expect(try parse(["doctor"], as: Doctor.self).extraPorts.isEmpty)
        #expect(refusal(["doctor", "--port", "0"]) == "invalid --port 0; give a number from 1 to 65535")
        #expect(refusal(["doctor", "--port", "70000"]) == "invalid --port 70000; give a number from 1 to 65535")
    }

    @Test func exportKubernetesTakesSeveralTargetsAndItsOptions() throws {
        let export = try parse(
            [
                "export", "k8s", "a", "b.yaml", "-o", "out.yaml", "--namespace", "ml", "--replicas", "3", "--cache",
                "none", "--cache-size", "10Gi", "--storage-class", "fast", "--shm-size", "2Gi", "--image", "x:1",
                "--service-type", "NodePort", "--gpus", "2",
            ], as: ExportKubernetes.self)
        #expect(export.targets == ["a", "b.yaml"] && export.output == "out.yaml" && export.namespace == "ml")
        #expect(export.replicas == 3 && export.cache == "none" && export.cacheSize == "10Gi")
        #expect(export.storageClass == "fast" && export.shmSize == "2Gi" && export.image == "x:1")
        #expect(export.serviceType == "NodePort" && export.gpus == 2)
        let plain = try parse(["export", "kubernetes", "a"], as: ExportKubernetes.self)
        #expect(plain.replicas == 1 && plain.cache == "pvc" && plain.serviceType == "ClusterIP" && plain.gpus == nil)
        #expect(refusal(["export", "kubernetes"])?.contains("<targets>") == true)
    }

    @Test func theRootListsEveryCommandAndItsVersion() throws {
        let help = AgentronCommand.helpMessage(columns: 200)
        for command in [
            "up", "ps, ls", "down, stop", "rm", "restart", "logs", "inspect", "env", "gateway", "profiles", "providers",
            "export", "service", "doctor",
        ] {
            #expect(help.contains("\n  \(command) "), "\(command) is listed: \(help)")
        }
        #expect(help.contains("--host <socket>"))
        #expect(help.contains("AGENTRON_HOME"))
        #expect(refusal(["frobnicate"])?.contains("frobnicate") == true)
        #expect(AgentronCommand.configuration.version == agentronVersion)
    }

    /// The commands by their path on the command line.
    static var commands: [String: ParsableCommand.Type] {
        [
            "up": ServerUp.self, "down": ServerDown.self, "ps": ServerPs.self, "logs": ServerLogs.self,
            "rm": ServerRemove.self, "restart": ServerRestart.self, "inspect": ServerInspect.self,
            "profiles": ProfileCommand.self, "profiles list": ProfileList.self, "profiles show": ProfileShow.self,
            "profiles validate": ProfileValidate.self, "providers": ProviderList.self, "service": ServiceCommand.self,
            "service install": ServiceInstall.self, "service uninstall": ServiceUninstall.self,
            "service status": ServiceStatus.self, "doctor": Doctor.self,
        ]
    }

    /// What each command's `--help` must tell a user.
    @Test(arguments: [
        ("up", ["--engine", "--port", "auto", "--arg", "--env", "--startup-timeout", "--detach", "--json", "profile"]),
        ("down", ["--all", "--timeout", "SIGTERM", "SIGKILL", "--json"]),
        ("ps", ["--all", "--json", "Stopped servers are hidden"]),
        ("logs", ["--follow", "--tail", "stdout and stderr"]),
        ("rm", ["--stopped", "--force", "logs", "Profiles are never touched"]),
        ("restart", ["--detach", "failed"]),
        ("inspect", ["--json", "redacted"]),
        ("profiles", ["list", "show", "validate", "/etc/agentron/profiles"]),
        ("profiles list", ["--json", "invalid"]),
        ("profiles show", ["default"]),
        ("profiles validate", ["non-zero"]),
        ("providers", ["--json", "providers.json", "AGENTRON_PROVIDERS_FILE", "AGENTRON_OPENCLAW_CONFIG"]),
        ("service", ["install", "uninstall", "status", "--user", "loginctl enable-linger"]),
        ("service install", ["--user", "--dry-run", "--socket", "--agentrond", "ExecStart"]),
        ("service uninstall", ["--user", "--dry-run", "Profiles, state and logs are kept"]),
        ("service status", ["--user", "--json"]),
        ("doctor", ["--json", "--port", "11434", "Always exits 0"]),
    ])
    func helpMentions(_ path: String, _ words: [String]) throws {
        let command = try #require(Self.commands[path])
        let help = AgentronCommand.helpMessage(for: command, columns: 400)
        #expect(help.contains("USAGE: agentron \(path)"), "\(help)")
        for word in words {
            #expect(help.contains(word), "`agentron \(path) --help` lacks \"\(word)\": \(help)")
        }
    }

    /// `--help` is a request for help, not an error, for every command.
    @Test func helpFlagsAreHelp() throws {
        for path in Self.commands.keys {
            let arguments = path.split(separator: " ").map(String.init) + ["--help"]
            let command = try AgentronCommand.parseAsRoot(arguments)
            #expect(
                String(describing: type(of: command)) == "HelpCommand", "\(arguments) parsed as \(type(of: command))")
        }
    }
}
