// CPU levels. The library is built once per level: liblosskit.so for baseline x86-64, and
// liblosskit-avx2.so and liblosskit-avx512.so beside it (built with -D LK_VARIANT). On its first
// call liblosskit.so picks the widest level the CPU supports, checks and loads that build, and
// from then on each entry point forwards to it. The loader, its checks and the list of forwarded
// functions are C (Sources/CLossKit/internal.c, include/losskit_internal.h), where the function
// types come from the header's own declarations; each entry point in CAPI/ starts with its forward:
//
//     if let forward = losskit_forward_lk_dense_f32() { return forward(opt, n, k, ...) }

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
