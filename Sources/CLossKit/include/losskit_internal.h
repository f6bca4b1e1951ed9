/* LossKit-internal, not part of the public API (which is losskit.h alone): what the Swift code
 * needs from C to pick its per-CPU-level build (Variant.swift). Defined in internal.c; the
 * export list keeps these symbols local to the library. */
#ifndef LOSSKIT_INTERNAL_H
#define LOSSKIT_INTERNAL_H

#include <stddef.h> /* size_t */

/* 0: baseline x86-64; 1: the AVX2 build (-target-cpu haswell: AVX2, FMA, BMI1/2, LZCNT, MOVBE,
 * F16C, POPCNT, with the OS saving YMM state); 2: the AVX-512 build (-target-cpu skylake-avx512:
 * also AVX-512 F, CD, BW, DQ, VL, with the OS saving the opmask and ZMM state). */
int losskit_internal_cpu_level(void);

/* Writes the folder of the file this library was loaded from into buffer (NUL-terminated);
 * returns 0 on success, -1 if it is unknown or does not fit. */
int losskit_internal_library_folder(char *buffer, size_t capacity);

#endif /* LOSSKIT_INTERNAL_H */
