/* LossKit-internal, not part of the public API (which is losskit.h alone): the CPU-level dispatch
 * of liblosskit.so (the functions it forwards, their pointer types, the loader) and what else the
 * Swift code needs from C. Defined in internal.c; the export list keeps these symbols local. */
#ifndef LOSSKIT_INTERNAL_H
#define LOSSKIT_INTERNAL_H

#include "losskit.h" /* LK_VERSION_*, and the declarations the pointer types below are taken from */

/* "MAJOR.MINOR.PATCH" from the header's macros: lk_version() and the marker of a CPU-level build. */
#define LOSSKIT_STRINGIFY_(x) #x
#define LOSSKIT_STRINGIFY(x) LOSSKIT_STRINGIFY_(x)
#define LOSSKIT_VERSION_STRING \
    LOSSKIT_STRINGIFY(LK_VERSION_MAJOR) "." LOSSKIT_STRINGIFY(LK_VERSION_MINOR) "." LOSSKIT_STRINGIFY(LK_VERSION_PATCH)

/* The section of a CPU-level build that holds its level's name ("avx2", "avx512") and the
 * library's version (LOSSKIT_VERSION_STRING), each NUL-terminated: "avx2\0" "0.3.0\0". Only builds
 * compiled with -DLK_VARIANT_LEVEL=1 or 2 have it. */
#define LOSSKIT_LEVEL_SECTION ".losskit_level"

/* The CPU-level dispatch (internal.c says how a build is chosen and checked before it is used).
 * Every function of losskit.h is named in exactly one of the two lists below, once; the signatures
 * themselves are written only in losskit.h. scripts/check-library.sh checks the lists against the
 * header, and that each forwarded function of the shipped liblosskit.so reaches the build it
 * loaded. A new entry point is one line in LOSSKIT_FORWARDED, and its Swift implementation starts
 * with its forward:
 *     if let forward = losskit_forward_lk_dense_f32() { return forward(opt, n, k, ...) } */

/* Forwarded by liblosskit.so to the CPU-level build it loaded, if any. */
#define LOSSKIT_FORWARDED(X) \
    X(lk_cpu_level) \
    X(lk_last_error) \
    X(lk_options_init) \
    X(lk_options_init_size) \
    X(lk_dense_f32) \
    X(lk_dense_f64) \
    X(lk_dense_bf16) \
    X(lk_dense_hessian_f32) \
    X(lk_dense_hessian_f64) \
    X(lk_lists_f32) \
    X(lk_lists_f64) \
    X(lk_lists_hessian_f32) \
    X(lk_lists_hessian_f64) \
    X(lk_chain_f32) \
    X(lk_chain_f64) \
    X(lk_chain_viterbi_f32) \
    X(lk_chain_viterbi_f64) \
    X(lk_chain_marginals_f32) \
    X(lk_chain_marginals_f64) \
    X(lk_lsoftmax_f32) \
    X(lk_lsoftmax_f64) \
    X(lk_linear_f32) \
    X(lk_linear_f64) \
    X(lk_linear_bf16) \
    X(lk_vocab_dense_f32) \
    X(lk_vocab_dense_f64)

/* Answered by liblosskit.so itself, the same in every build (a build of another version is never
 * loaded). */
#define LOSSKIT_ANSWERED_HERE(X) \
    X(lk_version) \
    X(lk_version_number) \
    X(lk_status_name)

/* The pointer type of each forwarded function, taken from its declaration in losskit.h (Swift
 * imports it as the @convention(c) function type): losskit_fn_lk_dense_f32. A listed name that
 * losskit.h does not declare fails to compile here. */
#define LOSSKIT_POINTER_TYPE(name) typedef __typeof__(name) *losskit_fn_##name;
LOSSKIT_FORWARDED(LOSSKIT_POINTER_TYPE)
#undef LOSSKIT_POINTER_TYPE

/* The place of each forwarded function in the loaded build's table: losskit_entry_lk_dense_f32. */
enum losskit_entry {
#define LOSSKIT_ENTRY_INDEX(name) losskit_entry_##name,
    LOSSKIT_FORWARDED(LOSSKIT_ENTRY_INDEX)
#undef LOSSKIT_ENTRY_INDEX
    losskit_entry_count
};

/* The entry points of the CPU-level build in use, indexed by enum losskit_entry, or NULL to compute
 * in this build. The first call, from whichever thread, picks and loads the build (other threads
 * wait for it); a CPU-level build itself (LK_VARIANT_LEVEL) always answers NULL. */
typedef void (*losskit_entry_point)(void);
const losskit_entry_point *losskit_internal_variant(void);

/* losskit_forward_lk_dense_f32(): the loaded build's lk_dense_f32, or NULL to compute here. */
#define LOSSKIT_FORWARD(name) \
    static inline losskit_fn_##name losskit_forward_##name(void) { \
        const losskit_entry_point *entries = losskit_internal_variant(); \
        return entries ? (losskit_fn_##name)entries[losskit_entry_##name] : 0; \
    }
LOSSKIT_FORWARDED(LOSSKIT_FORWARD)
#undef LOSSKIT_FORWARD

/* For the determinism tests, which must prove that their inputs really split: the calling thread
 * notes the threads each parallel pass runs on (Parallel.swift), and a test takes the most since
 * it last asked (1 if nothing was split). Per thread, so tests running at once do not mix. */
void losskit_internal_note_split(int threads);
int losskit_internal_take_widest_split(void);

#endif /* LOSSKIT_INTERNAL_H */
