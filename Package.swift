// swift-tools-version:6.2
// agentron: a supervisor and launcher for local LLM inference servers.
// Layout: docs/architecture.md; thin executables, logic in libraries, the CLI
// never links daemon code. Both binaries stay off full Foundation (docs/PERFORMANCE.md).
import PackageDescription

let package = Package(
    name: "agentron",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "agentron", targets: ["agentron"]),
        .executable(name: "agentrond", targets: ["agentrond"]),
        .executable(name: "agentron-container-shim", targets: ["AgentronContainerShim"]),
        .executable(name: "fake-engine", targets: ["FakeEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // C libraries: module maps, and one shim for what Swift cannot import.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // The Agentron app keeps its providers in SQLite (docs/providers.md).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "CAgentronShims",
            linkerSettings: [.linkedLibrary("curl")]
        ),

        // Libraries.
        .target(name: "AgentronCore", dependencies: ["CYAML"]),
        .target(name: "AgentronHTTP", dependencies: ["CCurl", "CAgentronShims"]),
        .target(name: "AgentronProcess", dependencies: ["CAgentronShims", "AgentronCore"]),
        .target(
            name: "AgentronSystemd",
            dependencies: ["CSystemd", "AgentronCore", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "AgentronEngines",
            dependencies: ["AgentronCore", "AgentronHTTP", "AgentronProcess"]
        ),
        .target(
            name: "AgentronDaemon",
            dependencies: [
                "AgentronCore", "AgentronEngines", "AgentronProcess", "AgentronHTTP", "AgentronSystemd", "CAgentronShims", "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "AgentronClient", dependencies: ["AgentronCore", "AgentronHTTP", "AgentronProcess"]),
        .target(
            name: "AgentronCLI",
            dependencies: [
                "AgentronCore", "AgentronClient", "AgentronHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Executables: a few lines each.
        .executableTarget(name: "agentron", dependencies: ["AgentronCLI"]),
        .executableTarget(name: "agentrond", dependencies: ["AgentronDaemon"]),
        // Runs one container for the daemon, like conmon for podman: the daemon supervises
        // it as an ordinary process (session, pidfd, SIGTERM → docker stop), and it drives
        // the container through the Docker Engine API (issue #5, TGI).
        .executableTarget(
            name: "AgentronContainerShim",
            dependencies: [
                "AgentronCore", "AgentronHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Test fixture: behaves like `vllm serve` (flags, endpoints, startup), with fault knobs.
        .executableTarget(
            name: "FakeEngine",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "AgentronCoreTests", dependencies: ["AgentronCore"]),
        .testTarget(name: "AgentronHTTPTests", dependencies: ["AgentronHTTP"]),
        .testTarget(name: "AgentronProcessTests", dependencies: ["AgentronProcess", "AgentronCore", "CAgentronShims"]),
        .testTarget(name: "AgentronSystemdTests", dependencies: ["AgentronSystemd"]),
        .testTarget(name: "AgentronDaemonTests", dependencies: ["AgentronDaemon", "AgentronCore", "CSQLite"]),
        .testTarget(name: "AgentronClientTests", dependencies: ["AgentronClient", "AgentronCore"]),
        .testTarget(
            name: "AgentronCLITests",
            dependencies: ["AgentronCLI", "AgentronCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["AgentronCore", "AgentronClient", "AgentronHTTP", "CSQLite"]
        ),
    ]
)
