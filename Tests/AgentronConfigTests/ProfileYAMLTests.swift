import AgentronCore
import Foundation
import Testing

@testable import AgentronConfig

/// Parses and returns the error, or nil when the YAML parsed.
private func failure(_ yaml: String, file: String = "p.yaml") -> ProfileError? {
    do throws(ProfileError) {
        _ = try Profile.parse(yaml: yaml, file: file)
        return nil
    } catch {
        return error
    }
}

private let minimal = "engine: vllm\nmodel: Qwen/Qwen2.5-1.5B-Instruct\n"

@Suite struct ProfileYAMLParsingTests {
    @Test func defaultsFromAMinimalProfile() throws {
        let profile = try Profile.parse(yaml: minimal, file: "/etc/agentron/profiles/qwen-small.yaml")
        #expect(profile.name == "qwen-small")
        #expect(profile.engine == .vllm)
        #expect(profile.model == "Qwen/Qwen2.5-1.5B-Instruct")
        #expect(profile.source == "/etc/agentron/profiles/qwen-small.yaml")
        var expected = Profile(name: "qwen-small", engine: .vllm, model: "Qwen/Qwen2.5-1.5B-Instruct")
        expected.source = profile.source
        #expect(profile == expected)
        #expect(profile.host == "127.0.0.1")
        #expect(profile.port == .auto)
        #expect(profile.restart.mode == .onFailure)
        #expect(profile.register)
        #expect(!profile.autostart)
    }

    @Test func nameFromFileStripsYmlToo() throws {
        #expect(try Profile.parse(yaml: minimal, file: "dir/my.server.yml").name == "my.server")
        #expect(try Profile.parse(yaml: "name: explicit\n" + minimal, file: "dir/other.yaml").name == "explicit")
    }

    @Test func everyKey() throws {
        let yaml = """
            name: local-llama
            engine: command
            model: /models/llama.gguf
            host: 0.0.0.0
            port: 8081
            gpus: [0, 1]
            args: [--ctx-size, 8192, --flash-attn, true, 0.90]
            env:
              HF_HOME: /data/hf
              LLAMA_ARG_THREADS: 8
            startup_timeout: 10m
            stop_timeout: 15s
            probe:
              interval: 2s
              timeout: 500ms
              failure_threshold: 4
            restart:
              policy: always
              initial_delay: 2s
              factor: 1.5
              max_delay: 2m
              max_restarts: 7
              window: 1h
              reset_after: 90
            autostart: yes
            register: off
            command: [llama-server, -m, "{model}", --host, "{host}"]
            health_path: /health
            health_status: 200

            """
        let profile = try Profile.parse(yaml: yaml, file: "x.yaml")
        #expect(profile.name == "local-llama")
        #expect(profile.engine == .command)
        #expect(profile.host == "0.0.0.0")
        #expect(profile.port == .fixed(8081))
        #expect(profile.gpus == [0, 1])
        #expect(profile.args == ["--ctx-size", "8192", "--flash-attn", "true", "0.90"])
        #expect(profile.env == ["HF_HOME": "/data/hf", "LLAMA_ARG_THREADS": "8"])
        #expect(profile.startupTimeout == .minutes(10))
        #expect(profile.stopTimeout == .seconds(15))
        #expect(profile.probe == ProbeSettings(interval: .seconds(2), timeout: .milliseconds(500), failureThreshold: 4))
        #expect(
            profile.restart
                == RestartPolicy(
                    mode: .always, initialDelay: .seconds(2), factor: 1.5, maxDelay: .minutes(2), maxRestarts: 7,
                    window: .minutes(60), resetAfter: .seconds(90)))
        #expect(profile.autostart)
        #expect(!profile.register)
        #expect(profile.command == ["llama-server", "-m", "{model}", "--host", "{host}"])
        #expect(profile.healthPath == "/health")
        #expect(profile.healthStatus == 200)
        #expect(profile.image == nil)
    }

    @Test(arguments: [
        ("90s", 90.0), ("30m", 1800), ("500ms", 0.5), ("2h", 7200), ("45", 45), ("1.5", 1.5), ("\"2m\"", 120),
        ("0.25s", 0.25),
    ])
    func durations(text: String, seconds: Double) throws {
        let profile = try Profile.parse(yaml: minimal + "startup_timeout: \(text)\n", file: "p.yaml")
        #expect(profile.startupTimeout.seconds == seconds)
    }

    @Test(arguments: ["true", "True", "TRUE", "yes", "Yes", "on"])
    func truthyBooleans(text: String) throws {
        #expect(try Profile.parse(yaml: minimal + "autostart: \(text)\n", file: "p.yaml").autostart)
    }

    @Test(arguments: ["false", "False", "no", "NO", "off"])
    func falsyBooleans(text: String) throws {
        #expect(try !Profile.parse(yaml: minimal + "register: \(text)\n", file: "p.yaml").register)
    }

    @Test func gpuForms() throws {
        #expect(try Profile.parse(yaml: minimal + "gpus: [2, 0]\n", file: "p.yaml").gpus == [2, 0])
        #expect(try Profile.parse(yaml: minimal + "gpus: \"0,1\"\n", file: "p.yaml").gpus == [0, 1])
        #expect(try Profile.parse(yaml: minimal + "gpus: 0, 3\n", file: "p.yaml").gpus == [0, 3])
        #expect(try Profile.parse(yaml: minimal + "gpus: 1\n", file: "p.yaml").gpus == [1])
        #expect(try Profile.parse(yaml: minimal + "gpus: []\n", file: "p.yaml").gpus == [])
        #expect(try Profile.parse(yaml: minimal + "gpus: \"\"\n", file: "p.yaml").gpus == [])
    }

    @Test func portAutoMayBeQuoted() throws {
        #expect(try Profile.parse(yaml: minimal + "port: \"auto\"\n", file: "p.yaml").port == .auto)
        #expect(try Profile.parse(yaml: minimal + "port: 1\n", file: "p.yaml").port == .fixed(1))
        #expect(try Profile.parse(yaml: minimal + "port: 65535\n", file: "p.yaml").port == .fixed(65535))
    }

    @Test func commandEngineWithFixedPortNeedsNoPlaceholder() throws {
        let yaml = "engine: command\nmodel: m\nport: 9000\ncommand: [my-server, --port, 9000]\n"
        #expect(try Profile.parse(yaml: yaml, file: "c.yaml").command == ["my-server", "--port", "9000"])
    }
}

@Suite struct ProfileYAMLErrorTests {
    @Test func unknownKeySuggestsTheClosest() throws {
        let error = try #require(failure(minimal + "startup_timout: 5m\n"))
        #expect(
            error
                == ProfileError(
                    file: "p.yaml", line: 3, column: 1, field: "startup_timout",
                    message: "unknown key; did you mean \"startup_timeout\"?"))
        #expect(error.description == "p.yaml:3:1: startup_timout: unknown key; did you mean \"startup_timeout\"?")
    }

    @Test func unknownKeyWrittenOtherwise() throws {
        #expect(failure(minimal + "startup-timeout: 5m\n")?.message == "unknown key; did you mean \"startup_timeout\"?")
        #expect(failure(minimal + "healthPath: /x\n")?.message == "unknown key; did you mean \"health_path\"?")
        #expect(failure(minimal + "prot: 80\n")?.message == "unknown key; did you mean \"port\"?")
    }

    @Test func unknownNestedKey() throws {
        let error = try #require(failure(minimal + "probe:\n  intervl: 5s\n"))
        #expect(error.description == "p.yaml:4:3: probe.intervl: unknown key; did you mean \"interval\"?")
    }

    @Test func unknownKeyFarFromAllListsTheValidOnes() throws {
        let error = try #require(failure(minimal + "colour: red\n"))
        #expect(error.line == 3 && error.column == 1 && error.field == "colour")
        #expect(error.message.hasPrefix("unknown key; valid keys are name, engine, model, host, port,"))
    }

    @Test func nestedKeyAtTopLevelSaysWhereItBelongs() throws {
        let error = try #require(failure(minimal + "interval: 5s\n"))
        #expect(error.message == "unknown key; did you mean \"probe.interval\"? Write it indented under probe:")
    }

    @Test func badDuration() throws {
        let error = try #require(failure(minimal + "probe:\n  interval: 5x\n"))
        #expect(
            error.description == "p.yaml:4:13: probe.interval: invalid duration \"5x\"; write it like 90s, 30m or 500ms"
        )
    }

    @Test func durationErrors() throws {
        #expect(
            failure(minimal + "stop_timeout: -5s\n")?.message
                == "invalid duration \"-5s\"; write it like 90s, 30m or 500ms")
        #expect(
            failure(minimal + "startup_timeout: 0s\n")?.message
                == "must be longer than 0; write it like startup_timeout: 10s")
        #expect(failure(minimal + "startup_timeout: 9999h\n")?.message.contains("longer than a year") == true)
        #expect(
            failure(minimal + "startup_timeout: true\n")?.message
                == "expected a duration, found the boolean true; write it like 90s, 30m or 500ms")
        // A zero stop timeout (SIGKILL at once) is allowed.
        #expect(failure(minimal + "stop_timeout: 0\n") == nil)
    }

    @Test func quotedPortIsRefused() throws {
        let error = try #require(failure(minimal + "port: \"8080\"\n"))
        #expect(
            error.description
                == "p.yaml:3:7: port: expected a number or auto, found the string \"8080\"; write it without quotes: port: 8080"
        )
    }

    @Test func portOutOfRange() throws {
        let error = try #require(failure(minimal + "port: 70000\n"))
        #expect(
            error.description == "p.yaml:3:7: port: port 70000 is out of range; use a number from 1 to 65535, or auto")
        #expect(
            failure(minimal + "port: 0\n")?.message == "port 0 is out of range; use a number from 1 to 65535, or auto")
        #expect(
            failure(minimal + "port: eighty\n")?.message
                == "invalid port \"eighty\"; use a number from 1 to 65535, or auto")
    }

    @Test func missingModel() throws {
        let error = try #require(failure("# a comment\nengine: vllm\nport: 8000\n"))
        #expect(error.file == "p.yaml" && error.line == 2 && error.column == 1 && error.field == "model")
        #expect(
            error.message
                == "required key is missing; add model: with a Hugging Face model id, e.g. model: Qwen/Qwen2.5-1.5B-Instruct"
        )
    }

    @Test func missingEngine() throws {
        let error = try #require(failure("model: x\n"))
        #expect(
            error.description
                == "p.yaml:1:1: engine: required key is missing; add engine: followed by one of vllm, ollama, tgi, command"
        )
    }

    @Test func unknownEngineListsTheValidOnes() throws {
        let error = try #require(failure("engine: vlm\nmodel: x\n"))
        #expect(
            error.description
                == "p.yaml:1:9: engine: unknown engine \"vlm\"; did you mean \"vllm\"? Use one of vllm, ollama, tgi, command"
        )
        #expect(
            failure("engine: docker\nmodel: x\n")?.message
                == "unknown engine \"docker\"; Use one of vllm, ollama, tgi, command")
    }

    @Test func unknownRestartPolicy() throws {
        let error = try #require(failure(minimal + "restart:\n  policy: on_failure\n"))
        #expect(error.field == "restart.policy" && error.line == 4 && error.column == 11)
        #expect(
            error.message
                == "unknown restart policy \"on_failure\"; did you mean \"on-failure\"? Use one of always, on-failure, never"
        )
    }

    @Test func wrongTypes() throws {
        let args = try #require(failure(minimal + "args: --verbose\n"))
        #expect(
            args.description
                == "p.yaml:3:7: args: expected a list, found the string \"--verbose\"; write it as a list: args: [--max-model-len, 8192]"
        )

        let autostart = try #require(failure(minimal + "autostart: \"yes\"\n"))
        #expect(
            autostart.description
                == "p.yaml:3:12: autostart: expected true or false, found the string \"yes\"; write autostart: true or autostart: false (without quotes)"
        )

        let probe = try #require(failure(minimal + "probe: 5s\n"))
        #expect(probe.field == "probe" && probe.line == 3 && probe.column == 8)
        #expect(
            probe.message.hasPrefix(
                "expected a mapping of keys (interval, timeout, failure_threshold), found the string \"5s\""))

        let model = try #require(failure("engine: vllm\nmodel:\n  id: x\n"))
        #expect(model.field == "model" && model.line == 3 && model.column == 3)
        #expect(model.message.hasPrefix("expected text, found a mapping;"))

        let threshold = try #require(failure(minimal + "probe:\n  failure_threshold: 2.5\n"))
        #expect(
            threshold.description
                == "p.yaml:4:22: probe.failure_threshold: expected a whole number, found the number 2.5; write it like failure_threshold: 3"
        )

        let quotedStatus = try #require(
            failure("engine: command\nmodel: m\ncommand: [s, \"{port}\"]\nhealth_status: '200'\n"))
        #expect(
            quotedStatus.message
                == "expected a number, found the string \"200\"; write it without quotes: health_status: 200")

        let env = try #require(failure(minimal + "env:\n  - A=1\n"))
        #expect(env.field == "env" && env.line == 4 && env.column == 3)

        let envValue = try #require(failure(minimal + "env:\n  EMPTY:\n"))
        #expect(envValue.field == "env.EMPTY" && envValue.line == 4)
        #expect(envValue.message.hasPrefix("expected text, found nothing; write EMPTY: \"\""))

        let argItem = try #require(failure(minimal + "args:\n  - --a\n  - {b: 1}\n"))
        #expect(argItem.field == "args[1]" && argItem.line == 5 && argItem.column == 5)

        let notAMapping = try #require(failure("- engine: vllm\n"))
        #expect(notAMapping.line == 1 && notAMapping.column == 1 && notAMapping.field == "")
        #expect(notAMapping.message.hasPrefix("expected a mapping of profile keys, found a list;"))
    }

    @Test func duplicateKey() throws {
        let error = try #require(failure("engine: vllm\nmodel: a\nport: 1\nmodel: b\n"))
        #expect(error.description == "p.yaml:4:1: model: duplicate key (first set on line 2); keep only one of them")
        let env = try #require(failure(minimal + "env:\n  A: 1\n  A: 2\n"))
        #expect(env.field == "env.A" && env.line == 5 && env.column == 3)
    }

    @Test func yamlSyntaxErrorCarriesLibyamlsPosition() throws {
        let error = try #require(failure("engine: vllm\nmodel: a: b\n"))
        #expect(error.line == 2 && error.column == 9 && error.field == "")
        #expect(error.message.hasPrefix("invalid YAML: mapping values are not allowed in this context;"))

        let unclosed = try #require(failure("engine: vllm\nargs: [a, b\nport: 1\n"))
        #expect(unclosed.line == 3 && unclosed.column == 5)
        #expect(
            unclosed.message.hasPrefix(
                "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 7);"))
        #expect(!unclosed.description.contains("\n"))
    }

    @Test func emptyFile() throws {
        for text in ["", "\n\n", "# nothing here yet\n"] {
            let error = try #require(failure(text, file: "empty.yaml"))
            #expect(error.file == "empty.yaml" && error.line == 1 && error.column == 1)
            #expect(error.message.hasPrefix("the file is empty; a profile needs at least engine: and model:"))
        }
        let nullDocument = try #require(failure("---\n"))
        #expect(nullDocument.message.hasPrefix("expected a mapping of profile keys, found nothing;"))
    }

    @Test func commandEngineWithoutCommand() throws {
        let error = try #require(failure("engine: command\nmodel: m\n"))
        #expect(
            error.description
                == "p.yaml:1:9: command: engine command needs the server's argv; add command: [llama-server, -m, \"{model}\", --port, \"{port}\"]"
        )
        let empty = try #require(failure("engine: command\nmodel: m\ncommand: []\n"))
        #expect(empty.line == 3 && empty.column == 10 && empty.field == "command")
    }

    @Test func commandWithoutPortPlaceholder() throws {
        let error = try #require(failure("engine: command\nmodel: m\ncommand: [srv, --port, 8000]\n"))
        #expect(error.line == 3 && error.column == 10 && error.field == "command")
        #expect(error.message.hasPrefix("port is auto but the command has no {port} placeholder;"))
    }

    @Test func executableIsAnAbsolutePathForLocalEngines() throws {
        #expect(
            try Profile.parse(yaml: minimal + "executable: /opt/venv/bin/vllm\n", file: "p.yaml").executable
                == "/opt/venv/bin/vllm")
        let relative = try #require(failure(minimal + "executable: bin/vllm\n"))
        #expect(relative.line == 3 && relative.field == "executable", "\(relative)")
        #expect(relative.message.contains("is not an absolute path"), "\(relative)")
        let tgi = try #require(failure("engine: tgi\nmodel: m\nexecutable: /usr/bin/x\n"))
        #expect(tgi.message.hasPrefix("only used with engine: "), "\(tgi)")
        #expect(tgi.message.contains("ollama") && tgi.message.contains("vllm"), "\(tgi)")
    }

    @Test func engineSpecificKeysElsewhere() throws {
        let error = try #require(failure(minimal + "image: ghcr.io/x:1\n"))
        #expect(
            error.description
                == "p.yaml:3:1: image: only used with engine: tgi (the container it runs in) or command (the image `export kubernetes` runs it in); remove it"
        )
        #expect(
            failure(minimal + "command: [x]\n")?.message
                == "only used with engine: command; remove it, or set engine: command")
    }

    @Test func multipleDocumentsAnchorsAndAliases() throws {
        let docs = try #require(failure(minimal + "---\nengine: tgi\n"))
        #expect(docs.line == 3 && docs.column == 1)
        #expect(docs.message.hasPrefix("a second YAML document starts here;"))

        let anchor = try #require(failure(minimal + "stop_timeout: &t 30s\nstartup_timeout: *t\n"))
        #expect(anchor.line == 3 && anchor.column == 15)
        #expect(anchor.message == "anchors (&t) are not supported; write the value out in full")

        let alias = try #require(failure(minimal + "args: [*x]\n"))
        #expect(alias.line == 3 && alias.column == 8)
        #expect(alias.message == "aliases (*x) are not supported; write the value out in full")
    }

    @Test func invalidNames() throws {
        let error = try #require(failure("name: \"my server\"\n" + minimal))
        #expect(error.line == 1 && error.column == 7 && error.field == "name")
        #expect(error.message.hasPrefix("invalid server name \"my server\";"))
        let fromFile = try #require(failure(minimal, file: "/x/My Server.yaml"))
        #expect(fromFile.field == "name" && fromFile.line == 1 && fromFile.column == 1)
        #expect(fromFile.message.hasPrefix("no name: key and the file name \"My Server\" is not a valid server name;"))
    }

    @Test func badGpus() throws {
        #expect(failure(minimal + "gpus: [0, -1]\n")?.field == "gpus[1]")
        #expect(
            failure(minimal + "gpus: \"0,x\"\n")?.message
                == "invalid GPU list \"0,x\"; write it like gpus: [0, 1] or gpus: \"0,1\"")
        #expect(failure(minimal + "gpus: [1, 1]\n")?.message == "GPU 1 is listed twice; list each GPU once")
    }

    @Test func restartDelays() throws {
        let error = try #require(failure(minimal + "restart:\n  initial_delay: 2m\n  max_delay: 30s\n"))
        #expect(error.field == "restart.max_delay" && error.line == 5 && error.column == 14)
        #expect(failure(minimal + "restart:\n  factor: 0.5\n")?.field == "restart.factor")
    }

    @Test func unreadableFile() throws {
        do throws(ProfileError) {
            _ = try Profile.load(path: "/nonexistent/agentron/x.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == "/nonexistent/agentron/x.yaml" && error.line == 0 && error.field == "")
            #expect(
                error.description
                    == "/nonexistent/agentron/x.yaml: cannot read the profile: No such file or directory; check the path and its permissions"
            )
        }
    }

    @Test func errorDescriptionWithoutFileOrPosition() {
        #expect(ProfileError(file: "", message: "no profile named \"x\"").description == "no profile named \"x\"")
        #expect(ProfileError(file: "a.yaml", line: 2, column: 3, message: "m").description == "a.yaml:2:3: m")
    }
}

@Suite struct ProfileRenderTests {
    func roundTrip(_ profile: Profile) throws {
        let text = profile.yamlText
        var parsed: Profile
        do throws(ProfileError) {
            parsed = try Profile.parse(yaml: text, file: "rendered.yaml")
        } catch {
            Issue.record("rendered profile did not parse: \(error)\n\(text)")
            return
        }
        #expect(parsed.source == "rendered.yaml")
        parsed.source = profile.source
        #expect(parsed == profile, "\(text)")
    }

    @Test func fullCommandProfile() throws {
        try roundTrip(
            Profile(
                name: "llama-cpp", engine: .command, model: "/models/llama 3.2: q4.gguf", host: "::1",
                port: .fixed(8081),
                gpus: [1, 0],
                args: [
                    "--ctx-size", "8192", "-", "yes", "null", "", " padded ", "#hash", "a #b", "x: y", "0.90", "{x}",
                    "- item", "---", "it's \"quoted\"", "tab\there", "line\nbreak", "ünïcode", "back\\slash", "::1",
                    "?x", ":x", "-x", "x:", "a:b", "%x", "@x", "!x", "&x", "*x", "[x]", "x,y", "1e3", "0x1F", ".5", "~",
                    "...",
                ],
                env: ["HF_HOME": "/data/hf", "EMPTY": "", "NO": "off", "MULTI": "a\nb", "TOKEN": "~"],
                startupTimeout: .seconds(1.25),
                probe: ProbeSettings(interval: .milliseconds(250), timeout: .seconds(3), failureThreshold: 5),
                restart: RestartPolicy(
                    mode: .never, initialDelay: .seconds(0), factor: 1.7, maxDelay: .seconds(0.1), maxRestarts: 0,
                    window: .minutes(90), resetAfter: .seconds(7200)),
                stopTimeout: .seconds(0), autostart: true, register: false,
                command: ["my-server", "--model={model}", "--port", "{port}"], healthPath: "/v1/health?x=1",
                healthStatus: 204,
                source: "somewhere.yaml"))
    }

    @Test func tgiAndDefaults() throws {
        try roundTrip(
            Profile(
                name: "tgi-1", engine: .tgi, model: "meta-llama/Llama-3.2-1B-Instruct",
                image: "ghcr.io/huggingface/text-generation-inference:3.3.5"))
        try roundTrip(Profile(name: "123", engine: .ollama, model: "llama3.2:1b", env: ["OLLAMA_KEEP_ALIVE": "-1"]))
        try roundTrip(
            Profile(
                name: "odd-durations", engine: .vllm, model: "m", startupTimeout: .seconds(0.0001),
                stopTimeout: .seconds(1e-7)))
    }

    @Test func renderedTextLooksHandWritten() {
        let text = Profile(
            name: "qwen", engine: .vllm, model: "Qwen/Qwen2.5-1.5B-Instruct", args: ["--max-model-len", "8192"]
        ).yamlText
        #expect(
            text.hasPrefix(
                "name: qwen\nengine: vllm\nmodel: Qwen/Qwen2.5-1.5B-Instruct\nhost: 127.0.0.1\nport: auto\ngpus: []\nargs:\n  - --max-model-len\n  - \"8192\"\nenv: {}\nstartup_timeout: 30m\nstop_timeout: 90s\n"
            ))
        #expect(text.contains("restart:\n  policy: on-failure\n  initial_delay: 1s\n  factor: 2\n"))
    }
}

/// `aliases:`, the gateway's other names for a server (docs/gateway.md).
@Suite struct ProfileAliasTests {
    @Test func aliasesAreReadKeptInOrderAndWrittenBack() throws {
        let profile = try Profile.parse(
            yaml: minimal + "aliases: [qwen-small, gpt-4o-mini, Qwen/Qwen2.5-1.5B]\n", file: "q.yaml")
        #expect(profile.aliases == ["qwen-small", "gpt-4o-mini", "Qwen/Qwen2.5-1.5B"])
        #expect(profile.yamlText.contains("aliases:\n  - qwen-small\n  - gpt-4o-mini\n"))
        var back = try Profile.parse(yaml: profile.yamlText, file: "q.yaml")
        back.source = profile.source
        #expect(back == profile)
        #expect(try Profile.parse(yaml: minimal + "aliases: []\n", file: "q.yaml").aliases == nil)
        #expect(try Profile.parse(yaml: minimal, file: "q.yaml").aliasList.isEmpty)
    }

    @Test(arguments: [
        ("aliases: [\"has space\"]", "aliases[0]", "invalid alias"),
        ("aliases: [a, b, a]", "aliases[2]", "listed twice"),
        ("aliases: small", "aliases", "write it as a list"),
        ("aliases: [\"\"]", "aliases[0]", "invalid alias"),
    ])
    func badAliasesPointAtTheLine(yaml: String, field: String, message: String) throws {
        let error = try #require(failure(minimal + yaml + "\n"))
        #expect(error.line == 3, "\(error)")
        #expect(error.field == field, "\(error)")
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func ttlAndGroupAreReadCheckedAndWrittenBack() throws {
        let profile = try Profile.parse(yaml: minimal + "ttl: 10m\ngroup: gpu0\n", file: "q.yaml")
        #expect(profile.ttl == .minutes(10))
        #expect(profile.group == "gpu0")
        var back = try Profile.parse(yaml: profile.yamlText, file: "q.yaml")
        back.source = profile.source
        #expect(back == profile)
        let zero = try #require(failure(minimal + "ttl: 0\n"))
        #expect(zero.field == "ttl" && zero.line == 3, "\(zero)")
        let badGroup = try #require(failure(minimal + "group: \"two words\"\n"))
        #expect(badGroup.field == "group" && badGroup.message.contains("invalid group"), "\(badGroup)")
    }

    @Test func theDaemonChecksAliasesToo() {
        var profile = Profile(name: "q", engine: .vllm, model: "m")
        profile.aliases = Array(repeating: "x", count: 65).enumerated().map { "a\($0.offset)" }
        #expect(throws: ProfileProblem.self) { try profile.validate() }
        profile.aliases = [String(repeating: "a", count: 257)]
        #expect(throws: ProfileProblem.self) { try profile.validate() }
        profile.aliases = ["quote\"d"]
        #expect(throws: ProfileProblem.self) { try profile.validate() }
        profile.aliases = ["meta-llama/Llama-3.1-8B-Instruct", "llama3.1:8b"]
        #expect(throws: Never.self) { try profile.validate() }
    }
}
