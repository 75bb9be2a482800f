// swift-tools-version:6.1
// Capstan: an event-sourced lifecycle engine for Kubernetes fleets.
// Layers (a module never imports one above it; see docs/ARCHITECTURE.md):
//   C (CLMDB, CZstd, CCurl) → EventLog → Engine → Fleet → Providers → Workflows → CapstanCLI
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    // SE-0335: `any` for existentials, so protocol costs stay visible.
    .enableUpcomingFeature("ExistentialAny"),
    // SE-0409: imports are internal unless a module re-exports on purpose.
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Capstan",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "capstan", targets: ["CapstanCLI"]),
        .executable(name: "kube-sim", targets: ["kube-sim"]),
        .executable(name: "eventlog-bench", targets: ["eventlog-bench"]),
        .executable(name: "eventlog-crash-driver", targets: ["eventlog-crash-driver"]),
        .executable(name: "engine-crash-driver", targets: ["engine-crash-driver"]),
        .executable(name: "engine-bench", targets: ["engine-bench"]),
        .executable(name: "providers-bench", targets: ["providers-bench"]),
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "EventLogTesting", targets: ["EventLogTesting"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Fleet", targets: ["Fleet"]),
        .library(name: "Providers", targets: ["Providers"]),
        .library(name: "Workflows", targets: ["Workflows"]),
        .library(name: "KubeSimKit", targets: ["KubeSimKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        // KubeSimKit imports these directly (Hummingbird brings them in; declared, not assumed).
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        // `capstan serve --metrics-address`: swift-metrics API, Prometheus exposition.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
    ],
    targets: [
        // MARK: C libraries (Debian packages; see .ci/run)
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // kube-sim's gzip responses.
        .systemLibrary(name: "CZlib", path: "tools/kube-sim/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Only the benchmark uses SQLite, as the peer Capstan's log is compared with.
        .systemLibrary(name: "CSQLite", path: "tools/eventlog-bench/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),

        // SSE4.2 CRC-32C for the log's checksums; only EventLog imports it.
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),

        // MARK: support
        // One home for small helpers every layer shares (JSON writing, RFC 3339, SplitMix64).
        .target(name: "CapstanSupport", swiftSettings: swiftSettings),

        // MARK: storage
        .target(
            name: "EventLog",
            dependencies: [
                "CLMDB", "CZstd", "CCRC32C",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // Seeded, realistic lifecycle events for the demo, the benchmark and the tests.
        .target(
            name: "EventLogTesting",
            dependencies: ["EventLog", "CapstanSupport"],
            swiftSettings: swiftSettings
        ),

        // MARK: engine
        .target(
            name: "Engine",
            dependencies: [
                "CapstanSupport", "EventLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Collections", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // The engine's in-memory store, for the simulation, the tests and the benchmark.
        .target(
            name: "EngineTesting",
            dependencies: ["Engine", "EventLog"],
            swiftSettings: swiftSettings
        ),

        // MARK: domain
        // Cluster API manifests, Kubernetes versions and skew rules, fleet projections.
        .target(
            name: "Fleet",
            dependencies: [
                "CapstanSupport", "EventLog", "Engine",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: providers
        .target(
            name: "Providers",
            dependencies: [
                "CapstanSupport", "CCurl",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                // kubeadm's CA pin (caCertHashes): SHA-256 of the CA's SubjectPublicKeyInfo.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: workflows
        // The lifecycle workflows: pure deciders and the executors that call the cluster APIs.
        .target(
            name: "Workflows",
            dependencies: [
                "CapstanSupport", "EventLog", "Engine", "Fleet", "Providers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "workflows",
            swiftSettings: swiftSettings
        ),

        // MARK: front
        .executableTarget(
            name: "CapstanCLI",
            dependencies: [
                "CapstanSupport", "EventLog", "EventLogTesting", "Engine", "Fleet", "Providers", "Workflows",
                // `capstan demo` runs kube-sim in its own process.
                "KubeSimKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: tools
        .target(
            name: "KubeSimKit",
            dependencies: [
                "CapstanSupport", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            path: "tools/kube-sim/KubeSimKit",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kube-sim",
            dependencies: [
                "KubeSimKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "tools/kube-sim/main",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "eventlog-bench",
            dependencies: [
                "EventLog", "EventLogTesting", "CLMDB", "CZstd", "CSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/eventlog-bench/main",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "eventlog-crash-driver",
            dependencies: [
                "EventLog", "EventLogTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/crash-driver/eventlog",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "engine-crash-driver",
            dependencies: [
                "Engine", "EventLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "tools/crash-driver/engine",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "engine-bench",
            dependencies: [
                "Engine", "EngineTesting", "EventLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/engine-bench",
            exclude: ["dbos_bench.py", "run.sh"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "providers-bench",
            dependencies: [
                "Providers", "KubeSimKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/providers-bench",
            swiftSettings: swiftSettings
        ),

        // MARK: tests
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "EventLogTesting", "CapstanCLI", "eventlog-crash-driver"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: ["CapstanSupport", "Engine", "EngineTesting", "EventLog", "engine-crash-driver"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetTests",
            dependencies: ["CapstanSupport", "Fleet", "EventLog", "Engine", "CapstanCLI"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkflowsTests",
            dependencies: [
                "CapstanSupport", "EventLog", "Workflows", "Fleet", "Engine", "Providers", "KubeSimKit", "kube-sim",
                "CapstanCLI",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProvidersTests",
            dependencies: [
                "Providers", "KubeSimKit", "kube-sim", .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["CapstanSupport", "EventLog", "Engine", "Fleet", "Workflows", "CapstanCLI"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KubeSimTests",
            dependencies: ["KubeSimKit", "kube-sim"],
            swiftSettings: swiftSettings
        ),
    ]
)
