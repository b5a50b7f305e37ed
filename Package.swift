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
        // C libraries: module maps, and shims for what Swift cannot import.
        // Headers only (no pkgConfig, which would link it): CCurlShims loads libcurl on first use.
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // The Agentron app keeps its providers in SQLite (docs/providers.md).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // libcurl through dlopen on first use, and its variadic calls (only the HTTP client uses it).
        .target(
            name: "CCurlShims",
            linkerSettings: [.linkedLibrary("dl")]
        ),
        // pidfds, the fork/exec, prctl, per-thread fs identity, peer credentials: libc only, so
        // linking the process layer does not drag libcurl into a binary.
        .target(name: "CProcessShims"),

        // Libraries.
        // Values and logic: profiles (limits, rendering, secrets), the wire types, the state
        // machine. No C library and no file I/O, so anything can link it.
        .target(name: "AgentronCore"),
        // What reads the filesystem and the environment: profile YAML (libyaml), checked
        // against the engines' rules (their drivers), the profile catalog, paths, the
        // runtime-directory rule, careful file I/O.
        .target(name: "AgentronConfig", dependencies: ["AgentronCore", "AgentronEngines", "CYAML"]),
        // A strict JSON scanner that keeps every value's byte range, and the splicing that
        // edits a shared file (providers.json, OpenClaw's config) without touching the
        // owner's other bytes. Pure Swift, no dependencies.
        .target(name: "AgentronJSON"),
        .target(name: "AgentronHTTP", dependencies: ["CCurl", "CCurlShims", "CProcessShims"]),
        .target(name: "AgentronProcess", dependencies: ["CProcessShims", "AgentronCore"]),
        .target(
            name: "AgentronSystemd",
            dependencies: [
                "CSystemd", "AgentronCore", "AgentronConfig", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Engine drivers: everything that differs between engines, and only here
        // (docs/architecture.md). Below the profile reader, which asks them what each takes.
        .target(
            name: "AgentronEngines",
            dependencies: ["AgentronCore", "AgentronHTTP", "AgentronProcess"]
        ),
        // `agentron export kubernetes`: profiles as manifests. Asks the engine drivers for
        // everything engine-specific (`EngineDriver.container`), so an engine brings its
        // export with it (docs/kubernetes.md).
        .target(name: "AgentronExport", dependencies: ["AgentronCore", "AgentronEngines"]),
        .target(
            name: "AgentronDaemon",
            dependencies: [
                "AgentronCore", "AgentronConfig", "AgentronEngines", "AgentronProcess", "AgentronHTTP",
                "AgentronSystemd", "AgentronJSON",
                "CProcessShims", "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "AgentronClient",
            dependencies: [
                "AgentronCore", "AgentronConfig", "AgentronProcess", "CProcessShims",
            ]),
        .target(
            name: "AgentronCLI",
            dependencies: [
                "AgentronCore", "AgentronConfig", "AgentronClient", "AgentronEngines", "AgentronExport",
                "AgentronHTTP", "AgentronProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // `service install` writes units/*.service|socket, embedded at build time.
            plugins: ["EmbedUnits"]
        ),

        // Executables: a few lines each.
        // Release builds link with lld (shipped with every Swift toolchain for Linux): the CLI
        // as a fixed-address executable, so the loader applies none of its ~55,000 relative
        // relocations at each start (like Go's CLIs); the daemon stays position-independent
        // with packed relocations (docs/PERFORMANCE.md, "Start-up of the CLI").
        .executableTarget(
            name: "agentron", dependencies: ["AgentronCLI"],
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xclang-linker", "-no-pie"], .when(configuration: .release))
            ]
        ),
        .executableTarget(
            name: "agentrond", dependencies: ["AgentronDaemon"],
            linkerSettings: [
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
                    .when(configuration: .release))
            ]
        ),
        // Runs one container for the daemon, like conmon for podman: the daemon supervises
        // it as an ordinary process (session, pidfd, SIGTERM → docker stop), and it drives
        // the container through the Docker Engine API (issue #5, TGI).
        .executableTarget(
            name: "AgentronContainerShim",
            dependencies: [
                "AgentronCore", "AgentronConfig", "AgentronEngines",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Build-time only: units/ as Swift strings in the CLI (one copy of the unit files).
        .executableTarget(name: "EmbedText"),
        .plugin(name: "EmbedUnits", capability: .buildTool(), dependencies: ["EmbedText"]),

        // Test fixture: behaves like `vllm serve` (flags, endpoints, startup), with fault knobs.
        .executableTarget(
            name: "FakeEngine",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "AgentronCoreTests", dependencies: ["AgentronCore", "AgentronConfig", "AgentronEngines"]),
        .testTarget(name: "AgentronConfigTests", dependencies: ["AgentronConfig", "AgentronCore", "AgentronEngines"]),
        .testTarget(name: "AgentronHTTPTests", dependencies: ["AgentronHTTP"]),
        .testTarget(name: "AgentronProcessTests", dependencies: ["AgentronProcess", "AgentronCore", "CProcessShims"]),
        .testTarget(name: "AgentronSystemdTests", dependencies: ["AgentronSystemd"]),
        .testTarget(name: "AgentronJSONTests", dependencies: ["AgentronJSON"]),
        .testTarget(
            name: "AgentronEnginesTests",
            dependencies: ["AgentronEngines", "AgentronConfig", "AgentronCore", "AgentronHTTP"]),
        .testTarget(
            name: "AgentronExportTests",
            dependencies: ["AgentronExport", "AgentronEngines", "AgentronConfig", "AgentronCore"]),
        .testTarget(name: "AgentronClientTests", dependencies: ["AgentronClient", "AgentronCore"]),
        .testTarget(
            name: "AgentronCLITests",
            dependencies: [
                "AgentronCLI", "AgentronCore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "AgentronDaemonTests",
            dependencies: [
                "AgentronDaemon", "AgentronCore", "AgentronConfig", "AgentronEngines", "AgentronJSON",
                "AgentronProcess",
                "CSQLite", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["AgentronCore", "AgentronClient", "AgentronEngines", "AgentronHTTP", "CSQLite"]
        ),
    ]
)
