// swift-tools-version:6.0
import PackageDescription

// Data flows row → claim → sandbox → result → row. Each module knows only its
// neighbours: MicroVM knows nothing of jobs, JobQueue nothing of KVM, and
// Worker is the one place that joins them.
let package = Package(
    name: "hl-worker",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hl-worker", targets: ["hl-worker"]),
        .executable(name: "hl-bench", targets: ["hl-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // The guest ABI header, shared with guests/sdk.
        .target(name: "CGuestABI"),
        // <linux/kvm.h> ioctls and constants, signal helpers. Nothing else.
        .target(name: "CKVM"),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "MicroVM", dependencies: ["CKVM"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(
            name: "Sandbox",
            dependencies: [
                "MicroVM", "CKVM", "CGuestABI",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "JobQueue",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            // Migrations links to migrations/: listing its files here makes
            // SwiftPM replan (and so rerun the plugin) when one is added or
            // removed. The copies are unused; the plugin's code embeds them.
            resources: [.process("Migrations")],
            plugins: ["EmbedMigrations"]
        ),
        // migrations/*.sql compiled into JobQueue, so the binary carries its schema.
        .plugin(name: "EmbedMigrations", capability: .buildTool()),
        .target(
            name: "Worker",
            dependencies: [
                "Sandbox", "JobQueue",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The one HTTP stack (Hummingbird 2): the worker's /metrics and
        // /healthz, and the dashboard's pages. Worker does not depend on it
        // (the command line hands WorkerService its server), so neither do
        // the fuzz builds.
        .target(
            name: "OperationsHTTP",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The web dashboard: reads the job tables (and acts, where the
        // connecting role may) through libpq, serves HTML built in code.
        .target(
            name: "Dashboard",
            dependencies: [
                "JobQueue", "OperationsHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "hl-worker",
            dependencies: [
                "Worker", "Sandbox", "JobQueue", "MicroVM", "Dashboard", "OperationsHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "hl-bench",
            dependencies: [
                "Worker", "Sandbox", "JobQueue", "MicroVM", "CKVM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fuzz targets for the parsers a guest controls (fuzz/, scripts/fuzz.sh).
        // A plain build makes corpus replayers of them; the fuzz build
        // (-sanitize=fuzzer -DFUZZING) makes libFuzzer programs.
        .systemLibrary(name: "CLibFuzzer", path: "fuzz/Sources/CLibFuzzer"),
        .target(name: "FuzzChecks", dependencies: ["CLibFuzzer", "CGuestABI", "MicroVM", "Sandbox", "JobQueue", "Worker"],
                path: "fuzz/Sources/FuzzChecks"),
        .executableTarget(name: "fuzz-elf", dependencies: ["FuzzChecks"], path: "fuzz/Sources/fuzz-elf"),
        .executableTarget(name: "fuzz-result", dependencies: ["FuzzChecks"], path: "fuzz/Sources/fuzz-result"),
        .executableTarget(name: "fuzz-hostcall", dependencies: ["FuzzChecks"], path: "fuzz/Sources/fuzz-hostcall"),
        // Shared by the test targets: the KVM requirement switch and paths to
        // the built guests; a private PostgreSQL database per test.
        .target(name: "KVMTestSupport", path: "Tests/KVMTestSupport"),
        .target(name: "HLTestSupport", dependencies: ["JobQueue", "KVMTestSupport"], path: "Tests/HLTestSupport"),
        .testTarget(name: "MicroVMTests", dependencies: ["MicroVM", "CKVM", "KVMTestSupport"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "MicroVM", "CGuestABI", "KVMTestSupport"]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzChecks"]),
        .testTarget(
            name: "JobQueueTests",
            dependencies: ["JobQueue", "HLTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Worker", "Sandbox", "JobQueue", "HLTestSupport", "KVMTestSupport", "OperationsHTTP",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "DashboardTests",
            dependencies: [
                "Dashboard", "JobQueue", "HLTestSupport",
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ],
    swiftLanguageModes: [.v5]
)
