import CLossKit
#if canImport(Glibc)
import Glibc
#endif

// CPU levels. Swift compiles a whole module for one CPU level, and mixing levels in one
// .so is unsafe (specialised SIMD code is emitted as weak symbols the linker may share), so the
// library is built once per level: liblosskit.so for baseline x86-64, liblosskit-avx2.so and
// liblosskit-avx512.so beside it (built with -D LK_VARIANT, which leaves this file out). On its
// first call liblosskit.so picks the widest level the CPU supports, dlopens that file, and from
// then on forwards every entry point to it through the table below. Nothing else changes: each
// build validates and computes exactly as the source says, with the vector width of its level.
//
// What is loaded is checked before anything is forwarded to it, since a bad file must cost the
// speed-up, never the process: the file is read (not mapped) first, and must be a complete x86-64
// ELF shared object carrying the marker of exactly the level its name claims and of this version
// (a truncated file would fault inside dlopen, a wider build would fault on its first
// instruction, a copy of this library would forward to itself, a build of another version left
// by an older install has other entry points); once loaded, its lk_cpu_level must not be ours
// (dlopen of a file already loaded returns that library) and must report that level, and its
// lk_version must be ours. A build's lk_cpu_level and lk_version are baseline C code, so asking
// runs nothing the CPU may lack. Its siblings are looked up beside the real file of this library,
// symlinks resolved, and named after it: liblosskit-avx2.so.0.2.0 beside liblosskit.so.0.2.0.

/// The vector level this build was compiled for.
enum BuildLevel {
    #if LK_WIDE
    static let name: StaticString = "avx512"
    #elseif LK_FMA
    static let name: StaticString = "avx2"
    #else
    static let name: StaticString = "x86-64"
    #endif
}

#if !LK_VARIANT
/// The entry points of a wider build of this library, loaded once.
struct Variant {
    typealias DenseF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Int32>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias DenseF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Int32>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?
    ) -> lk_status

    typealias ListsF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, UnsafePointer<Int64>?, UnsafePointer<Float>?, UnsafePointer<Int32>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias ListsF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, UnsafePointer<Int64>?, UnsafePointer<Double>?, UnsafePointer<Int32>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?
    ) -> lk_status

    typealias DenseHessianF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Int32>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias DenseHessianF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Int32>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?,
        UnsafeMutablePointer<Double>?
    ) -> lk_status
    typealias ListsHessianF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, UnsafePointer<Int64>?, UnsafePointer<Float>?, UnsafePointer<Int32>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias ListsHessianF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, UnsafePointer<Int64>?, UnsafePointer<Double>?, UnsafePointer<Int32>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?,
        UnsafeMutablePointer<Double>?
    ) -> lk_status

    typealias ChainF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Float>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias ViterbiF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Float>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Int32>?, UnsafeMutablePointer<Int32>?,
        UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias MarginalsF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Float>?,
        UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Int32>?, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias ChainF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Double>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?,
        UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?
    ) -> lk_status
    typealias ViterbiF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Double>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafePointer<Int32>?, UnsafeMutablePointer<Int32>?,
        UnsafeMutablePointer<Double>?
    ) -> lk_status
    typealias MarginalsF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Double>?,
        UnsafePointer<Double>?, UnsafePointer<Double>?, UnsafePointer<Int32>?, UnsafeMutablePointer<Double>?,
        UnsafeMutablePointer<Double>?
    ) -> lk_status

    typealias LSoftmaxF32 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Float>?, UnsafePointer<Float>?,
        UnsafePointer<Int32>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<Float>?
    ) -> lk_status
    typealias LSoftmaxF64 = @convention(c) (
        UnsafePointer<lk_options>?, Int64, Int64, Int64, UnsafePointer<Double>?, UnsafePointer<Double>?,
        UnsafePointer<Int32>?, UnsafePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?,
        UnsafeMutablePointer<Double>?
    ) -> lk_status

    typealias CString = @convention(c) () -> UnsafePointer<CChar>?
    typealias OptionsInit = @convention(c) (UnsafeMutablePointer<lk_options>?, Int32) -> lk_status
    typealias OptionsInitSize = @convention(c) (UnsafeMutablePointer<lk_options>?, Int32, Int) -> lk_status

    let level: StaticString
    let lastError: CString
    let optionsInit: OptionsInit
    let optionsInitSize: OptionsInitSize
    let denseF32: DenseF32
    let denseF64: DenseF64
    let listsF32: ListsF32
    let listsF64: ListsF64
    let denseHessianF32: DenseHessianF32
    let denseHessianF64: DenseHessianF64
    let listsHessianF32: ListsHessianF32
    let listsHessianF64: ListsHessianF64
    let chainF32: ChainF32
    let chainF64: ChainF64
    let viterbiF32: ViterbiF32
    let viterbiF64: ViterbiF64
    let marginalsF32: MarginalsF32
    let marginalsF64: MarginalsF64
    let lsoftmaxF32: LSoftmaxF32
    let lsoftmaxF64: LSoftmaxF64

    /// The variant in use, or nil to compute here (baseline). Swift initialises a global once,
    /// thread-safely, on first use.
    static let active: Variant? = load()

    private static func load() -> Variant? {
        let levels: [StaticString] = ["avx512", "avx2"]
        var supported = Int(losskit_internal_cpu_level())  // 0 baseline, 1 avx2, 2 avx512
        if let cap = getenv("LOSSKIT_ISA").map({ String(cString: $0) }) {
            // A cap only ever lowers the level: a level the CPU lacks is never used, and an
            // unknown value is ignored.
            switch cap {
            case "x86-64", "baseline": supported = 0
            case "avx2": supported = Swift.min(supported, 1)
            default: break
            }
        }
        guard supported > 0 else { return nil }
        for (index, level) in levels.enumerated() where 2 - index <= supported {
            if let path = pathOfBuild(level), let variant = open(path, level: level) { return variant }
        }
        return nil
    }

    /// Where the build of `level` is looked for: beside this library's real file, named after it.
    private static func pathOfBuild(_ level: StaticString) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard losskit_internal_variant_path(String(describing: level), &buffer, buffer.count) == 0 else { return nil }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The build of `level` at `path`, or nil if it is absent or fails a check. A build that
    /// fails a check after dlopen stays loaded: unloading a library that carries its own Swift
    /// runtime is not safe, and it takes a broken installation to get there.
    private static func open(_ path: String, level: StaticString) -> Variant? {
        let levelName = String(describing: level)
        guard losskit_internal_check_variant(path, levelName) == 0,
              let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol<F>(_ name: String, as _: F.Type) -> F? {
            dlsym(handle, name).map { unsafeBitCast($0, to: F.self) }
        }
        guard let cpuLevel = dlsym(handle, "lk_cpu_level"), losskit_internal_is_this_library(cpuLevel) == 0,
              let reported = unsafeBitCast(cpuLevel, to: CString.self)(),
              String(cString: reported) == levelName,
              let version = symbol("lk_version", as: CString.self)?(), let ours = lk_version(),
              strcmp(version, ours) == 0
        else { return nil }
        guard let lastError = symbol("lk_last_error", as: CString.self),
              let optionsInit = symbol("lk_options_init", as: OptionsInit.self),
              let optionsInitSize = symbol("lk_options_init_size", as: OptionsInitSize.self),
              let denseF32 = symbol("lk_dense_f32", as: DenseF32.self),
              let denseF64 = symbol("lk_dense_f64", as: DenseF64.self),
              let listsF32 = symbol("lk_lists_f32", as: ListsF32.self),
              let listsF64 = symbol("lk_lists_f64", as: ListsF64.self),
              let denseHessianF32 = symbol("lk_dense_hessian_f32", as: DenseHessianF32.self),
              let denseHessianF64 = symbol("lk_dense_hessian_f64", as: DenseHessianF64.self),
              let listsHessianF32 = symbol("lk_lists_hessian_f32", as: ListsHessianF32.self),
              let listsHessianF64 = symbol("lk_lists_hessian_f64", as: ListsHessianF64.self),
              let chainF32 = symbol("lk_chain_f32", as: ChainF32.self),
              let chainF64 = symbol("lk_chain_f64", as: ChainF64.self),
              let viterbiF32 = symbol("lk_chain_viterbi_f32", as: ViterbiF32.self),
              let viterbiF64 = symbol("lk_chain_viterbi_f64", as: ViterbiF64.self),
              let marginalsF32 = symbol("lk_chain_marginals_f32", as: MarginalsF32.self),
              let marginalsF64 = symbol("lk_chain_marginals_f64", as: MarginalsF64.self),
              let lsoftmaxF32 = symbol("lk_lsoftmax_f32", as: LSoftmaxF32.self),
              let lsoftmaxF64 = symbol("lk_lsoftmax_f64", as: LSoftmaxF64.self)
        else { return nil }
        return Variant(level: level, lastError: lastError, optionsInit: optionsInit, optionsInitSize: optionsInitSize,
                       denseF32: denseF32, denseF64: denseF64, listsF32: listsF32, listsF64: listsF64,
                       denseHessianF32: denseHessianF32, denseHessianF64: denseHessianF64,
                       listsHessianF32: listsHessianF32, listsHessianF64: listsHessianF64,
                       chainF32: chainF32, chainF64: chainF64, viterbiF32: viterbiF32, viterbiF64: viterbiF64,
                       marginalsF32: marginalsF32, marginalsF64: marginalsF64,
                       lsoftmaxF32: lsoftmaxF32, lsoftmaxF64: lsoftmaxF64)
    }
}
#endif
