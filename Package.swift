// swift-tools-version:6.0
// LossKit: training losses and their gradients, as a standalone C library (liblosskit.so).
// The release library users build comes from `make lib` (see the Makefile), which adds
// -static-stdlib, a soname and the export list; those flags stay out of this manifest because
// -static-stdlib here breaks `swift test` (DESIGN.md §7).
import PackageDescription

let package = Package(
    name: "LossKit",
    products: [
        .library(name: "losskit", type: .dynamic, targets: ["LossKit"]),
    ],
    targets: [
        // The public header, shared with Swift through a symlink to include/losskit.h.
        .target(name: "CLossKit"),
        .target(name: "LossKit", dependencies: ["CLossKit"]),
        .testTarget(name: "LossKitTests", dependencies: ["LossKit", "CLossKit"]),
    ]
)
