import Foundation
import Testing

/// What users bring from docker and systemctl (issue #13, "CLI conventions"), through the
/// real CLI and daemon: several targets in one `up`, `ps -q`, `stop`/`ls`, exit statuses.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CLIHabitsTests {
    @Test func upStartsSeveralInParallelAndATypoStartsNothing() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()

        let typo = try await harness.run(["up", "org/one", "no-such-profile.yaml", "--engine", "vllm"])
        #expect(typo.code != 0)
        #expect(typo.stderr.contains("no-such-profile.yaml"), "\(typo.stderr)")
        #expect(try await harness.servers(all: true).isEmpty, "nothing started")

        let up = try await harness.run(["up", "org/one", "org/two", "org/three", "--engine", "vllm"])
        #expect(up.code == 0, "\(up.stderr)")
        for name in ["one", "two", "three"] {
            #expect(up.stdout.contains("\(name) is ready (vllm"), "\(up.stdout)")
        }
        let names = try await harness.run(["ps", "-q"])
        #expect(names.stdout.split(separator: "\n").sorted() == ["one", "three", "two"])
        #expect(try await harness.run(["ls", "--format", "names"]).stdout == names.stdout)

        let refused = try await harness.run(["up", "org/a", "org/b", "--engine", "vllm", "--name", "x"])
        #expect(refused.code == 64 && refused.stderr.contains("--name names one server"), "\(refused.stderr)")

        #expect(try await harness.run(["stop", "one", "two", "three"]).code == 0)
        #expect(try await harness.servers().isEmpty)
        let missing = try await harness.run(["inspect", "one-that-never-was"])
        #expect(missing.code == 2, "not found: \(missing.stderr)")
    }
}
