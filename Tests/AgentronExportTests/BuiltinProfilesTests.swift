import AgentronConfig
import AgentronCore
import Foundation
import Testing

@testable import AgentronExport

/// Every profile shipped in the repository's profiles/ exports with the default options.
@Suite struct BuiltinProfilesTests {
    /// The repository's profiles/, found from this file: Tests/AgentronExportTests/<file>.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("profiles").path

    static func paths() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
            .map { directory + "/" + $0 }
    }

    @Test func thereAreBuiltinProfilesOfEveryEngine() throws {
        let profiles = try Self.paths().map { try Profile.load(path: $0) }
        #expect(profiles.count >= 4)
        #expect(Set(profiles.map(\.engine)) == Set(EngineKind.allCases))
    }

    @Test func everyBuiltinProfileExportsWithProbesAnImageAndLabels() throws {
        let paths = try Self.paths()
        for path in paths {
            let profile = try Profile.load(path: path)
            let result = try KubernetesExport.export(profile, options: KubernetesOptions())
            let deployment = try #require(result.deployment, "\(path)")
            let container = try #require(result.container, "\(path)")
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                #expect(container[probe] != nil, "\(path): \(probe)")
            }
            let image = try #require(container["image"]?.text, "\(path)")
            #expect(!image.isEmpty, "\(path)")
            let name = KubernetesNames.objectName(profile.name)
            for labels in [deployment["metadata", "labels"], deployment["spec", "template", "metadata", "labels"]] {
                #expect(labels?["app.kubernetes.io/name"]?.text == name, "\(path)")
                #expect(labels?["app.kubernetes.io/managed-by"]?.text == "agentron", "\(path)")
            }
            #expect(result.service != nil, "\(path)")
            // The startup probe waits the profile's whole startup_timeout.
            let startup = try #require(container["startupProbe"])
            let period = try #require(startup["periodSeconds"]?.number)
            let threshold = try #require(startup["failureThreshold"]?.number)
            #expect(period * threshold == KubernetesProbeTiming.seconds(profile.startupTimeout), "\(path)")
            for warning in result.warnings { #expect(warning.hasPrefix("\(profile.name): "), "\(warning)") }
            let nodes = try YAMLScalarTests.documents(result.text)
            #expect(nodes.count == result.documents.count)
            for (node, document) in zip(nodes, result.documents) {
                #expect(YAMLScalarTests.matches(node, document), "\(path)")
            }
        }
    }

    @Test func theBuiltinProfilesExportTogether() throws {
        let profiles = try Self.paths().map { try Profile.load(path: $0) }
        let results = try KubernetesExport.export(profiles, options: KubernetesOptions(namespace: "agentron"))
        #expect(results.count == profiles.count)
        let names = results.compactMap { $0.deployment?["metadata", "name"]?.text }
        #expect(Set(names).count == profiles.count, "\(names)")
    }
}
