import AgentronClient
import AgentronCore
import ArgumentParser
import Foundation
import Testing

@testable import AgentronCLI

/// `up` runs the engine the caller's PATH finds, and `--env KEY` passes the caller's value
/// (issue #13, "The caller's engine").
struct CallerEngineTests {
    /// A directory with an executable `vllm` and `llama-server`, like a venv's bin.
    static func venv() throws -> String {
        let bin = NSTemporaryDirectory() + "agentron-venv-\(UUID().uuidString.prefix(8))/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for name in ["vllm", "llama-server"] {
            #expect(
                FileManager.default.createFile(
                    atPath: bin + "/" + name, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]
                ))
        }
        return bin
    }

    @Test func theProgramComesFromTheCallersPath() throws {
        let bin = try Self.venv()
        defer { try? FileManager.default.removeItem(atPath: FileManager.default.parentDirectory(bin)) }
        let environment = ["PATH": "/nonexistent:" + bin, "VIRTUAL_ENV": "/opt/venv"]
        let vllm = CallerEngine.apply(
            to: Profile(name: "q", engine: .vllm, model: "Qwen/Qwen2.5-0.5B-Instruct"), environment: environment)
        #expect(vllm.executable == bin + "/vllm")
        #expect(vllm.env["VIRTUAL_ENV"] == "/opt/venv")

        // The profile's own choices win.
        var own = Profile(name: "q", engine: .vllm, model: "m", env: ["VIRTUAL_ENV": "/srv/env"])
        own.executable = "/usr/bin/vllm"
        let kept = CallerEngine.apply(to: own, environment: environment)
        #expect(kept.executable == "/usr/bin/vllm" && kept.env["VIRTUAL_ENV"] == "/srv/env")

        var command = Profile(name: "l", engine: .command, model: "m")
        command.command = ["llama-server", "--port", "{port}"]
        #expect(CallerEngine.apply(to: command, environment: environment).command?.first == bin + "/llama-server")

        // Not on the caller's PATH: left to the daemon's, as before.
        let missing = CallerEngine.apply(
            to: Profile(name: "o", engine: .ollama, model: "qwen2.5:0.5b"), environment: ["PATH": "/nonexistent"])
        #expect(missing.executable == nil)
        // A container runs nothing of the caller's.
        let tgi = CallerEngine.apply(to: Profile(name: "t", engine: .tgi, model: "m"), environment: environment)
        #expect(tgi.executable == nil && tgi.env.isEmpty)
    }

    @Test func envKeyAlonePassesTheCallersValue() throws {
        let environment = ["HF_TOKEN": "hf_secret", "EMPTY": ""]
        #expect(try Parse.envPair("HF_TOKEN", environment: environment) == ("HF_TOKEN", "hf_secret"))
        #expect(try Parse.envPair("EMPTY", environment: environment) == ("EMPTY", ""))
        #expect(try Parse.envPair("A=b=c", environment: environment) == ("A", "b=c"))
        #expect(throws: ValidationError.self) { try Parse.envPair("UNSET_HERE", environment: environment) }
        #expect(throws: ValidationError.self) { try Parse.envPair("not a name", environment: environment) }
        #expect(throws: ValidationError.self) { try Parse.envPair("=x", environment: environment) }
    }
}

extension FileManager {
    fileprivate func parentDirectory(_ path: String) -> String { (path as NSString).deletingLastPathComponent }
}

/// The exit statuses scripts rely on (docs/cli.md, "Exit status").
struct ExitStatusTests {
    @Test func eachKindOfFailureHasItsStatus() {
        #expect(ExitStatus.of(ClientError.daemonNotRunning(socket: "/s")) == 3)
        #expect(ExitStatus.of(ClientError.notAllowed(socket: "/s")) == 3)
        #expect(ExitStatus.of(ClientError.daemonNotAnswering(socket: "/s", after: .seconds(30))) == 5)
        #expect(ExitStatus.of(ClientError.api(APIError(.notFound, "no server named x"))) == 2)
        #expect(ExitStatus.of(ClientError.api(APIError(.portInUse, "taken"))) == 4)
        #expect(ExitStatus.of(ClientError.api(APIError(.invalidRequest, "bad"))) == 64)
        #expect(ExitStatus.of(ClientError.badResponse("?")) == 1)
        #expect(ExitStatus.of(CancellationError()) == 1)
        #expect(ServerEnv.shellQuoted("a'b c") == "'a'\\''b c'")
    }
}

/// The system unit runs its agentrond as root: one in a tree another user can change is
/// refused (issue #13, "Install like a package").
struct ServiceInstallPathTests {
    @Test func aBinaryInATreeOthersCanWriteIsFound() throws {
        try #require(getuid() == 0, "ownership checks need root-owned files (CI runs as root)")
        let directory = NSTemporaryDirectory() + "agentron-owned-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let binary = directory + "/agentrond"
        #expect(
            FileManager.default.createFile(atPath: binary, contents: Data(), attributes: [.posixPermissions: 0o755]))
        #expect(chmod(directory, 0o755) == 0)
        #expect(ServiceInstall.writableByOthers(binary) == nil, "root's, in the sticky /tmp: fine")
        #expect(chmod(directory, 0o777) == 0)
        #expect(ServiceInstall.writableByOthers(binary) == directory)
        #expect(chmod(directory, 0o755) == 0)
        #expect(chown(binary, 65534, 65534) == 0)
        #expect(ServiceInstall.writableByOthers(binary) == binary)
    }
}
