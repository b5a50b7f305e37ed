import AgentronCore
import Foundation
import Testing

/// `agentron doctor` (issue #5): a report that always exits 0, as JSON or a checklist.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DoctorTests {
    @Test func doctorReportsTheEnginesOnPathAndNoDaemon() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let result = try await harness.run(["doctor", "--json"])
        #expect(result.code == 0, "\(result.stderr)")
        let report = try harness.json(result.stdout)
        #expect(report["version"] as? Int == 1)
        let engines = try #require(report["engines"] as? [[String: Any]])
        let vllm = try #require(engines.first { $0["program"] as? String == "vllm" })
        #expect(vllm["installed"] as? Bool == true)
        #expect(vllm["path"] as? String == harness.fakeBin.appendingPathComponent("vllm").path)
        #expect(vllm["version"] as? String == "0.11.0")
        let ollama = try #require(engines.first { $0["program"] as? String == "ollama" })
        #expect(ollama["installed"] as? Bool == false)
        #expect((ollama["note"] as? String)?.contains("ollama.com") == true)
        let daemon = try #require(report["daemon"] as? [String: Any])
        #expect(daemon["running"] as? Bool == false)
        #expect(daemon["socket"] as? String == harness.socketPath)
        #expect(report["docker"] is [String: Any])
        #expect(report["gpus"] is [String: Any])
        let ports = try #require(report["ports"] as? [[String: Any]])
        #expect(ports.map { $0["port"] as? Int } == [8000, 8080, 11434, 1234])
        #expect(!harness.isListening(), "doctor does not start the daemon")
    }

    @Test func doctorSeesTheRunningDaemonAndWhatAnswersOnAPort() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try FileManager.default.createSymbolicLink(
            at: harness.fakeBin.appendingPathComponent("ollama"),
            withDestinationURL: harness.binDirectory.appendingPathComponent("fake-engine"))
        let daemon = try await harness.startDaemon()
        let up = try await harness.run(["up", "llama3.2:1b", "--engine", "ollama", "--env", "FAKE_PULL_SECONDS=0"])
        #expect(up.code == 0, "\(up.stderr)")
        let port = try #require(try await harness.servers().first?["port"] as? Int)

        let result = try await harness.run(["doctor", "--json", "--port", String(port)])
        #expect(result.code == 0, "\(result.stderr)")
        let report = try harness.json(result.stdout)
        let status = try #require(report["daemon"] as? [String: Any])
        #expect(status["running"] as? Bool == true)
        #expect((status["pid"] as? Int).map(Int32.init) == daemon.processIdentifier)
        #expect(status["servers"] as? Int == 1)
        let engines = try #require(report["engines"] as? [[String: Any]])
        let ollama = try #require(engines.first { $0["program"] as? String == "ollama" })
        #expect(ollama["installed"] as? Bool == true)
        #expect(ollama["version"] as? String == "0.12.6")
        let ports = try #require(report["ports"] as? [[String: Any]])
        let probed = try #require(ports.first { $0["port"] as? Int == port })
        #expect(probed["answering"] as? Bool == true)
        #expect(probed["identified"] as? String == "ollama")
        #expect(probed["detail"] as? String == "Ollama 0.12.6")
        #expect(probed["models"] as? [String] == ["llama3.2:1b"])
        #expect(probed["agentronServer"] as? String == "llama3.2-1b")

        // The checklist for people: plain markers without a terminal, same facts.
        let human = try await harness.run(["doctor", "--port", String(port)])
        #expect(human.code == 0)
        #expect(human.stdout.contains("ok   vllm"), "\(human.stdout)")
        #expect(
            human.stdout.contains("agentrond \(agentronVersion) running, pid \(daemon.processIdentifier)"),
            "\(human.stdout)")
        #expect(human.stdout.contains("used \(port)"), "\(human.stdout)")
        #expect(
            human.stdout.contains("Ollama 0.12.6, models: llama3.2:1b (agentron server \"llama3.2-1b\")"),
            "\(human.stdout)")
        #expect(!human.stdout.contains("\u{1B}["), "no colour without a terminal")
        #expect(try await harness.run(["down", "llama3.2-1b"]).code == 0)
    }

    @Test func gpusAndFreeMemoryComeFromNvidiaSmi() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        // nvidia-smi's CSV answer to exactly the query doctor makes.
        let smi = harness.fakeBin.appendingPathComponent("nvidia-smi")
        try """
        #!/bin/sh
        if [ "$1" = "--query-gpu=index,name,memory.total,memory.free" ] && [ "$2" = "--format=csv,noheader,nounits" ]; then
          echo "0, NVIDIA H100 80GB HBM3, 81559, 80982"
          echo "1, NVIDIA H100 80GB HBM3, 81559, 1024"
          exit 0
        fi
        echo "unexpected arguments: $*" >&2
        exit 2
        """.write(to: smi, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: smi.path)
        let result = try await harness.run(["doctor", "--json"])
        #expect(result.code == 0)
        let gpus = try #require(try harness.json(result.stdout)["gpus"] as? [String: Any])
        #expect(gpus["nvidiaSmi"] as? Bool == true)
        #expect(gpus["error"] == nil, "\(gpus)")
        let devices = try #require(gpus["devices"] as? [[String: Any]])
        #expect(devices.count == 2)
        #expect(devices.first?["name"] as? String == "NVIDIA H100 80GB HBM3")
        #expect(devices.first?["memoryTotalMiB"] as? Int == 81559)
        #expect(devices.last?["index"] as? Int == 1)
        #expect(devices.last?["memoryFreeMiB"] as? Int == 1024)
        let human = try await harness.run(["doctor"])
        #expect(human.stdout.contains("ok   1  NVIDIA H100 80GB HBM3  1.0 GiB free of 79.6 GiB"), "\(human.stdout)")
    }

    @Test func aSlowVersionCommandIsCutShort() async throws {
        let harness = try Harness(withFakeVLLM: false)
        defer { harness.shutdown() }
        // A `vllm` that takes far longer than doctor waits (vLLM imports torch first).
        let slow = harness.fakeBin.appendingPathComponent("vllm")
        try "#!/bin/sh\nsleep 30\necho 0.99.0\n".write(to: slow, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: slow.path)
        let started = Date()
        let result = try await harness.run(["doctor", "--json"])
        #expect(result.code == 0)
        #expect(Date().timeIntervalSince(started) < 10, "doctor waited for the slow --version")
        let engines = try #require(try harness.json(result.stdout)["engines"] as? [[String: Any]])
        let vllm = try #require(engines.first { $0["program"] as? String == "vllm" })
        #expect(vllm["installed"] as? Bool == true)
        #expect(vllm["version"] == nil)
        #expect((vllm["note"] as? String)?.contains("version unknown") == true)
    }
}
