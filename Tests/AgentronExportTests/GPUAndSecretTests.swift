import AgentronCore
import AgentronEngines
import Testing

@testable import AgentronExport

/// How many GPUs a pod asks for, and how secrets reach it without their values.
@Suite struct GPUAndSecretTests {
    // MARK: GPUs

    @Test func aProfileThatListsGPUsAsksForThatMany() throws {
        #expect(try Fixture.export(Fixture.vllm(gpus: [0, 1])).gpuLimit == 2)
        #expect(try Fixture.export(Fixture.tgi(gpus: [3])).gpuLimit == 1)
        var ollama = Fixture.ollama()
        ollama.gpus = [0, 1, 2]
        #expect(try Fixture.export(ollama).gpuLimit == 3)
        var command = Fixture.command()
        command.gpus = [1]
        #expect(try Fixture.export(command).gpuLimit == 1)
    }

    @Test func aProfileThatListsNoneAsksForTheEnginesDefault() throws {
        #expect(try Fixture.export(Fixture.vllm()).gpuLimit == 1)
        #expect(try Fixture.export(Fixture.tgi()).gpuLimit == 1)
        for profile in [Fixture.ollama(), Fixture.command()] {
            let result = try Fixture.export(profile)
            #expect(result.gpuLimit == nil, "\(profile.engine)")
            #expect(result.container?["resources"] == nil, "\(profile.engine): no resources key at all")
        }
    }

    @Test func theGPUOptionOverridesTheProfileAndTheEngine() throws {
        #expect(try Fixture.export(Fixture.vllm(gpus: [0]), KubernetesOptions(gpus: 4)).gpuLimit == 4)
        #expect(try Fixture.export(Fixture.ollama(), KubernetesOptions(gpus: 2)).gpuLimit == 2)
        let none = try Fixture.export(Fixture.vllm(gpus: [0, 1]), KubernetesOptions(gpus: 0))
        #expect(none.container?["resources"] == nil)
    }

    @Test func tgiRunsOneShardPerGPU() throws {
        let two = try Fixture.export(Fixture.tgi(gpus: [0, 1]))
        let args = try #require(two.container?["args"]?.strings)
        #expect(Array(args.suffix(2)) == ["--num-shard", "2"])
        let three = try #require(try Fixture.export(Fixture.tgi(), KubernetesOptions(gpus: 3)).container?["args"])
        #expect(three.strings?.suffix(2) == ["--num-shard", "3"])
        let one = try #require(try Fixture.export(Fixture.tgi()).container?["args"]?.strings)
        #expect(!one.contains("--num-shard"), "one GPU is one shard, TGI's default")
    }

    @Test(arguments: [["--num-shard", "1"], ["--num-shard=1"], ["--sharded", "false"]])
    func tgiKeepsTheShardingTheProfileSets(_ sharding: [String]) throws {
        let result = try Fixture.export(Fixture.tgi(args: sharding, gpus: [0, 1]))
        let args = try #require(result.container?["args"]?.strings)
        #expect(Array(args.suffix(sharding.count)) == sharding)
        #expect(args.filter { $0.hasPrefix("--num-shard") }.count == (sharding[0] == "--sharded" ? 0 : 1))
    }

    @Test func tgiKeepsTheShardingTheEnvironmentSets() throws {
        var profile = Fixture.tgi(gpus: [0, 1])
        profile.env["NUM_SHARD"] = "1"
        let result = try Fixture.export(profile)
        #expect(result.container?["args"]?.strings?.contains("--num-shard") == false)
        #expect(result.env("NUM_SHARD")?["value"]?.text == "1")
    }

    // MARK: Secrets

    static let hfToken = "hf_NotARealTokenValue123"
    static let apiKey = "sk-NotARealKeyValue456"

    @Test func secretsComeFromTheProfilesSecretByName() throws {
        let profile = Fixture.vllm(
            name: "qwen", env: ["HF_TOKEN": Self.hfToken, "VLLM_API_KEY": Self.apiKey, "OMP_NUM_THREADS": "4"])
        let result = try Fixture.export(profile)
        for key in ["HF_TOKEN", "VLLM_API_KEY"] {
            let entry = try #require(result.env(key), "\(key)")
            #expect(entry["value"] == nil, "\(key)")
            #expect(entry["valueFrom", "secretKeyRef", "name"]?.text == "qwen-secrets", "\(key)")
            #expect(entry["valueFrom", "secretKeyRef", "key"]?.text == key, "\(key)")
            #expect(entry["valueFrom", "secretKeyRef", "optional"] == .bool(false), "\(key): the profile needs it")
        }
        #expect(result.env("OMP_NUM_THREADS")?["value"]?.text == "4")
        #expect(result.env("OMP_NUM_THREADS")?["valueFrom"] == nil)
        let secret = try #require(result.secret)
        #expect(secret.name == "qwen-secrets")
        #expect(secret.keys.map(\.name) == ["HF_TOKEN", "VLLM_API_KEY"])
        #expect(secret.keys.map(\.optional) == [false, false])
    }

    @Test func theEnginesOptionalTokenIsReadWhenThereAndNotRequired() throws {
        for profile in [Fixture.vllm(env: ["OMP_NUM_THREADS": "4"]), Fixture.tgi(), Fixture.command()] {
            let result = try Fixture.export(profile)
            let entry = try #require(result.env("HF_TOKEN"), "\(profile.engine)")
            #expect(entry["valueFrom", "secretKeyRef", "optional"] == .bool(true), "\(profile.engine)")
            let secret = try #require(result.secret, "\(profile.engine)")
            #expect(secret.name == KubernetesNames.objectName(profile.name) + "-secrets")
            #expect(secret.keys.map(\.name) == ["HF_TOKEN"], "\(profile.engine)")
            #expect(secret.keys.map(\.optional) == [true], "\(profile.engine)")
        }
    }

    @Test func ollamaReadsNoSecretUnlessTheProfileHasOne() throws {
        let plain = try Fixture.export(Fixture.ollama())
        #expect(plain.secret == nil)
        #expect(plain.env("HF_TOKEN") == nil)
        let keyed = try Fixture.export(Fixture.ollama(env: ["OLLAMA_API_KEY": "k"]))
        #expect(keyed.secret?.keys.map(\.name) == ["OLLAMA_API_KEY"])
    }

    @Test func noSecretValueReachesTheManifestsOrTheWarnings() throws {
        let secrets: [String: String] = [
            "HF_TOKEN": Self.hfToken, "VLLM_API_KEY": Self.apiKey, "DB_PASSWORD": "/pw/NotARealPassword789",
        ]
        var profiles = Fixture.everyEngine.filter { $0.engine != .vllm }.map { profile in
            var profile = profile
            profile.env.merge(secrets.filter { $0.key != "VLLM_API_KEY" }) { $1 }
            return profile
        }
        profiles.append(Fixture.vllm(env: secrets.merging(["OMP_NUM_THREADS": "4"]) { $1 }))
        for profile in profiles {
            let result = try Fixture.export(profile)
            let text = result.text
            for (key, value) in secrets {
                #expect(!text.contains(value), "\(profile.engine): \(key)'s value")
                #expect(!result.warnings.joined(separator: "\n").contains(value), "\(profile.engine): \(key)")
                #expect(!(result.secret?.createCommand(namespace: "ml").contains(value) ?? false))
            }
            #expect(text.contains("secretKeyRef"), "\(profile.engine)")
        }
    }

    @Test func theSecretsCommandReadsEachValueFromTheShell() throws {
        let profile = Fixture.vllm(env: ["HF_TOKEN": Self.hfToken, "VLLM_API_KEY": Self.apiKey])
        let secret = try #require(try Fixture.export(profile).secret)
        #expect(
            secret.createCommand(namespace: "ml")
                == "kubectl create secret generic qwen-secrets --namespace ml"
                + " --from-literal=HF_TOKEN=\"$HF_TOKEN\" --from-literal=VLLM_API_KEY=\"$VLLM_API_KEY\"")
        let unplaced = secret.createCommand(namespace: nil)
        #expect(!unplaced.contains("--namespace"))
        #expect(unplaced.hasPrefix("kubectl create secret generic qwen-secrets --from-literal=HF_TOKEN=\"$HF_TOKEN\""))
    }

    @Test func thisMachinesSettingsAreNotPassed() throws {
        let profile = Fixture.vllm(env: [
            "CUDA_VISIBLE_DEVICES": "0", "HF_HOME": "/home/u/hf", "AGENTRON_X": "1", "TOKENIZERS_PARALLELISM": "false",
        ])
        let result = try Fixture.export(profile)
        for key in ["CUDA_VISIBLE_DEVICES", "HF_HOME", "AGENTRON_X"] { #expect(result.env(key) == nil, "\(key)") }
        #expect(result.env("TOKENIZERS_PARALLELISM")?["value"]?.text == "false", "not a secret")
    }
}
