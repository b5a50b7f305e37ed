import AgentronCore
import Testing

@testable import AgentronExport

/// The exporter checks its options itself: each refusal is one line that starts with the
/// flag (`KubernetesOptions.validate`).
@Suite struct OptionsTests {
    @Test(arguments: [
        (KubernetesOptions(namespace: "Bad_NS"), "--namespace"),
        (KubernetesOptions(namespace: ""), "--namespace"),
        (KubernetesOptions(namespace: "-ns"), "--namespace"),
        (KubernetesOptions(namespace: String(repeating: "n", count: 64)), "--namespace"),
        (KubernetesOptions(replicas: 0), "--replicas"),
        (KubernetesOptions(replicas: 1001), "--replicas"),
        (KubernetesOptions(replicas: -1), "--replicas"),
        (KubernetesOptions(cacheSize: "lots"), "--cache-size"),
        (KubernetesOptions(cacheSize: ""), "--cache-size"),
        (KubernetesOptions(cacheSize: "50 Gi"), "--cache-size"),
        (KubernetesOptions(cacheSize: "-5Gi"), "--cache-size"),
        (KubernetesOptions(shmSize: "1GB"), "--shm-size"),
        (KubernetesOptions(shmSize: "1gi"), "--shm-size"),
        (KubernetesOptions(shmSize: "Gi"), "--shm-size"),
        (KubernetesOptions(shmSize: "1.2.3Gi"), "--shm-size"),
        (KubernetesOptions(shmSize: "１Gi"), "--shm-size"),
        (KubernetesOptions(storageClass: "Fast"), "--storage-class"),
        (KubernetesOptions(storageClass: "fast..ssd"), "--storage-class"),
        (KubernetesOptions(storageClass: ""), "--storage-class"),
        (KubernetesOptions(image: ""), "--image"),
        (KubernetesOptions(image: "my image"), "--image"),
        (KubernetesOptions(image: "a\nb"), "--image"),
        (KubernetesOptions(gpus: -1), "--gpus"),
        (KubernetesOptions(gpus: 65), "--gpus"),
    ])
    func aBadOptionIsRefusedNamingItsFlag(_ options: KubernetesOptions, _ flag: String) {
        let error = #expect(throws: ExportError.self) { try Fixture.export(Fixture.vllm(), options) }
        guard case .option(let named, _, _) = error else {
            Issue.record("expected an option error, got \(String(describing: error))")
            return
        }
        #expect(named == flag)
        #expect(error?.description.hasPrefix(flag + ": ") == true, "\(String(describing: error))")
    }

    /// An error is one line (`ExportError`), also for a value holding a line break.
    @Test(arguments: [KubernetesOptions(image: "ghcr.io/a\nb:1"), KubernetesOptions(namespace: "ns\nx")])
    func anOptionErrorIsOneLineEvenWhenTheValueHasALineBreak(_ options: KubernetesOptions) {
        let error = #expect(throws: ExportError.self) { try options.validate() }
        #expect(error?.description.contains("\n") == false, "\(String(describing: error))")
    }

    @Test(arguments: ["50Gi", "512Mi", "1.5G", "1000000", "64k", "1Ti", "2E", "0.5Gi", "1Ei", "3P"])
    func sizesKubernetesReadsAreTaken(_ size: String) throws {
        let result = try Fixture.export(Fixture.vllm(), KubernetesOptions(cacheSize: size, shmSize: size))
        #expect(result.claim?["spec", "resources", "requests", "storage"]?.text == size)
        #expect(result.pod?["volumes", 0, "emptyDir", "sizeLimit"]?.text == size)
    }

    @Test func goodOptionsAreTaken() throws {
        let options = KubernetesOptions(
            namespace: "ml-serving", replicas: 1000, storageClass: "fast-ssd.example.com",
            image: "registry.local:5000/vllm:1", serviceType: .loadBalancer, gpus: 64)
        #expect(throws: Never.self) { try options.validate() }
        #expect(throws: Never.self) { try KubernetesOptions(namespace: "a", gpus: 0).validate() }
        #expect(throws: Never.self) { try KubernetesOptions().validate() }
    }

    @Test func aLongOptionIsClippedInTheMessage() {
        let options = KubernetesOptions(namespace: String(repeating: "N", count: 5000))
        let error = #expect(throws: ExportError.self) { try options.validate() }
        #expect((error?.description.count ?? .max) < 400)
    }

    @Test func optionsAreCheckedBeforeTheProfile() {
        // A profile the engine refuses, with a bad option: the option is what is reported.
        let profile = Fixture.vllm(args: ["--port", "1"])
        let error = #expect(throws: ExportError.self) { try Fixture.export(profile, KubernetesOptions(replicas: 0)) }
        guard case .option("--replicas", _, _) = error else {
            Issue.record("expected --replicas, got \(String(describing: error))")
            return
        }
    }
}
