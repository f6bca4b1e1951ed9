/* LossKit-internal, not part of the public API (which is losskit.h alone): what the Swift code
 * needs from C to pick its per-CPU-level build (Variant.swift). Defined in internal.c; the
 * export list keeps these symbols local to the library. */
#ifndef LOSSKIT_INTERNAL_H
#define LOSSKIT_INTERNAL_H

#include <stddef.h> /* size_t */

#include "losskit.h" /* LK_VERSION_* */

/* "MAJOR.MINOR.PATCH" from the header's macros: lk_version() and the marker of a CPU-level build. */
#define LOSSKIT_STRINGIFY_(x) #x
#define LOSSKIT_STRINGIFY(x) LOSSKIT_STRINGIFY_(x)
#define LOSSKIT_VERSION_STRING \
    LOSSKIT_STRINGIFY(LK_VERSION_MAJOR) "." LOSSKIT_STRINGIFY(LK_VERSION_MINOR) "." LOSSKIT_STRINGIFY(LK_VERSION_PATCH)

/* 0: baseline x86-64; 1: the AVX2 build (-target-cpu haswell: AVX2, FMA, BMI1/2, LZCNT, MOVBE,
 * F16C, POPCNT, with the OS saving YMM state); 2: the AVX-512 build (-target-cpu skylake-avx512:
 * also AVX-512 F, CD, BW, DQ, VL, with the OS saving the opmask and ZMM state). */
int losskit_internal_cpu_level(void);

/* Writes into buffer (NUL-terminated) the path of the build of `level` ("avx2", "avx512") that
 * this library looks for: beside the file it was loaded from, symlinks resolved (realpath), named
 * after it with "liblosskit" replaced by "liblosskit-LEVEL" (liblosskit.so.0.2.0 ->
 * liblosskit-avx2.so.0.2.0, liblosskit.so -> liblosskit-avx2.so; liblosskit-LEVEL.so beside a
 * file of any other name). Returns 0 on success, -1 if the file is unknown or it does not fit. */
int losskit_internal_variant_path(const char *level, char *buffer, size_t capacity);

/* The section of a CPU-level build that holds its level's name ("avx2", "avx512") and the
 * library's version (LOSSKIT_VERSION_STRING), each NUL-terminated: "avx2\0" "0.2.0\0". Only builds
 * compiled with -DLK_VARIANT_LEVEL=1 or 2 have it. */
#define LOSSKIT_LEVEL_SECTION ".losskit_level"

/* Checks, by reading the file (never mapping or loading it), that path is a CPU-level build of
 * this library for `level` that dlopen can load without faulting: a regular file, an ELF64
 * little-endian x86-64 shared object whose program headers, segments and sections all lie within
 * the file, with a LOSSKIT_LEVEL_SECTION holding exactly `level` and this library's version.
 * Returns 0 if so, -1 otherwise. */
int losskit_internal_check_variant(const char *path, const char *level);

/* 1 if symbol lies in this very library (as a dlopen under another name can return it), else 0. */
int losskit_internal_is_this_library(const void *symbol);

/* For the determinism tests, which must prove that their inputs really split: the calling thread
 * notes the threads each parallel pass runs on (Parallel.swift), and a test takes the most since
 * it last asked (1 if nothing was split). Per thread, so tests running at once do not mix. */
void losskit_internal_note_split(int threads);
int losskit_internal_take_widest_split(void);

#endif /* LOSSKIT_INTERNAL_H */
