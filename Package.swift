// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Starling",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "starling", targets: ["starling"]),
        .library(name: "StarlingCore", targets: ["StarlingCore"]),
        .library(name: "StarlingNode", targets: ["StarlingNode"]),
        .library(name: "StarlingClient", targets: ["StarlingClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.12.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .target(
            name: "StarlingCore",
            dependencies: [.product(name: "DequeModule", package: "swift-collections")]
        ),
        .target(
            name: "StarlingUV",
            dependencies: ["CLibUV"]
        ),
        .target(
            name: "StarlingNode",
            dependencies: [
                "StarlingCore",
                "StarlingUV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                // llhttp, through SwiftNIO's HTTP/1 decoder, parses the --http requests (README, "HTTP").
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "DequeModule", package: "swift-collections"),
                // The dashboard's per-service p99 (docs/HANDBOOK.md, "job rate window").
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "StarlingClient",
            dependencies: [
                "StarlingCore",
                "StarlingUV",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "StarlingTestSupport",
            dependencies: ["StarlingCore", "StarlingUV"]
        ),
        .target(
            name: "StarlingDemo",
            dependencies: ["StarlingCore", "StarlingNode", "StarlingClient", "StarlingTestSupport"]
        ),
        .executableTarget(
            name: "starling",
            dependencies: [
                "StarlingCore",
                "StarlingNode",
                "StarlingUV",
                "StarlingClient",
                "StarlingDemo",
                "StarlingTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "starling-bench",
            dependencies: [
                "StarlingClient",
                "StarlingCore",
                "StarlingUV",
                "StarlingTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "benchmarks/Sources/starling-bench"
        ),
        .testTarget(
            name: "StarlingCoreTests",
            dependencies: [
                "StarlingCore",
                "StarlingTestSupport",
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .testTarget(name: "StarlingUVTests", dependencies: ["StarlingUV", "StarlingTestSupport"]),
        .testTarget(
            name: "StarlingNodeTests",
            dependencies: [
                "StarlingNode", "StarlingCore", "StarlingUV", "StarlingClient", "StarlingTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "StarlingClientTests",
            dependencies: ["StarlingClient", "StarlingCore", "StarlingUV", "StarlingTestSupport"]
        ),
        .testTarget(name: "StarlingTestSupportTests", dependencies: ["StarlingTestSupport", "StarlingCore", "StarlingUV"]),
        .testTarget(
            name: "StarlingDemoTests",
            dependencies: [
                "StarlingDemo",
                "StarlingClient",
                "StarlingCore",
                "StarlingTestSupport",
                "StarlingUV",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
