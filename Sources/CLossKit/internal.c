/* The C side of choosing a per-CPU-level build (see include/losskit_internal.h). */
#define _GNU_SOURCE /* dladdr, Dl_info */
#include "losskit_internal.h"

#include <dlfcn.h>  /* dladdr */
#include <string.h> /* strrchr, memcpy */

#if defined(__x86_64__)
#include <cpuid.h> /* __get_cpuid, __get_cpuid_count: inline assembly, no library */

int losskit_internal_cpu_level(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    const int movbe = (c >> 22) & 1, popcnt = (c >> 23) & 1, f16c = (c >> 29) & 1;
    if (!(osxsave && avx && fma && movbe && popcnt && f16c)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    if ((xcr0_lo & 0x6) != 0x6) return 0; /* XMM and YMM state */
    unsigned ea, eb, ec, ed;
    if (!__get_cpuid(0x80000001, &ea, &eb, &ec, &ed)) return 0;
    const int lzcnt = (ec >> 5) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int bmi1 = (b >> 3) & 1, avx2 = (b >> 5) & 1, bmi2 = (b >> 8) & 1;
    if (!(bmi1 && avx2 && bmi2 && lzcnt)) return 0;
    const unsigned avx512 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31); /* F DQ CD BW VL */
    if ((b & avx512) == avx512 && (xcr0_lo & 0xE0) == 0xE0) return 2;
    return 1;
}
#else
int losskit_internal_cpu_level(void) { return 0; }
#endif

int losskit_internal_library_folder(char *buffer, size_t capacity) {
    Dl_info info;
    if (!dladdr((void *)&losskit_internal_library_folder, &info) || !info.dli_fname) return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) {
        if (capacity < 2) return -1;
        buffer[0] = '.';
        buffer[1] = '\0';
        return 0;
    }
    const size_t length = (size_t)(slash - info.dli_fname);
    if (length + 1 > capacity) return -1;
    memcpy(buffer, info.dli_fname, length);
    buffer[length] = '\0';
    return 0;
}

