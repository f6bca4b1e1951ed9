/* The C side of choosing a per-CPU-level build (see include/losskit_internal.h). */
#define _GNU_SOURCE /* dladdr, Dl_info */
#include "losskit_internal.h"

#include <dlfcn.h>    /* dladdr */
#include <elf.h>      /* Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr */
#include <fcntl.h>    /* open */
#include <limits.h>   /* PATH_MAX */
#include <stdint.h>   /* uint64_t */
#include <stdlib.h>   /* realpath */
#include <stdio.h>    /* snprintf */
#include <string.h>   /* strrchr, strncmp, memcmp */
#include <sys/stat.h> /* fstat, S_ISREG */
#include <unistd.h>   /* pread, close */

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

/* The level marker of a CPU-level build. The build passes -Xcc -DLK_VARIANT_LEVEL=1 (AVX2) or 2
 * (AVX-512); the marker is the level's name and the library's version, "avx2\0" "0.2.0\0", in a
 * section of its own, which the baseline reads from the file before it loads it (a build of
 * another version, left beside a newer library, is never loaded). This file is compiled without
 * the Swift target's CPU flags, so the variant's lk_cpu_level below is baseline code: asking a
 * build its level never executes an instruction the CPU may lack. Returning the marker (its
 * first string, the level) keeps its section in the link. */
#if defined(LK_VARIANT_LEVEL)
#if LK_VARIANT_LEVEL == 1
#define LK_LEVEL_NAME "avx2"
#elif LK_VARIANT_LEVEL == 2
#define LK_LEVEL_NAME "avx512"
#else
#error "LK_VARIANT_LEVEL must be 1 (avx2) or 2 (avx512)"
#endif
#include "losskit.h" /* the declaration lk_cpu_level is checked against */

__attribute__((used, section(LOSSKIT_LEVEL_SECTION))) static const char level_marker[] =
    LK_LEVEL_NAME "\0" LOSSKIT_VERSION_STRING;

const char *lk_cpu_level(void) { return level_marker; }
#endif

/* The most threads one computing pass of this thread's calls ran on, since it was last taken. */
static _Thread_local int widest_split = 1;

void losskit_internal_note_split(int threads) {
    if (threads > widest_split) widest_split = threads;
}

int losskit_internal_take_widest_split(void) {
    const int widest = widest_split;
    widest_split = 1;
    return widest;
}

int losskit_internal_variant_path(const char *level, char *buffer, size_t capacity) {
    Dl_info info;
    if (!dladdr((void *)&losskit_internal_variant_path, &info) || !info.dli_fname) return -1;
    /* The real file, not a symlink to it: the CPU-level builds sit beside the real file. */
    char real[PATH_MAX];
    const char *path = realpath(info.dli_fname, real) ? real : info.dli_fname;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    /* The folder with its final slash ("/" for a file in /), or "./" for a bare file name. */
    const char *folder = slash ? path : "./";
    const int folder_length = slash ? (int)(slash - path + 1) : 2;
    /* liblosskit.so -> liblosskit-avx2.so, liblosskit.so.0.2.0 -> liblosskit-avx2.so.0.2.0;
     * a library under any other name looks for the plain liblosskit-avx2.so. */
    const char stem[] = "liblosskit", own[] = "liblosskit.so";
    const int versioned = strncmp(name, own, sizeof own - 1) == 0 &&
                          (name[sizeof own - 1] == '\0' || name[sizeof own - 1] == '.');
    const char *suffix = versioned ? name + (sizeof stem - 1) : ".so";
    const int written = snprintf(buffer, capacity, "%.*s%s-%s%s", folder_length, folder, stem, level, suffix);
    return written < 0 || (size_t)written >= capacity ? -1 : 0;
}

int losskit_internal_is_this_library(const void *symbol) {
    Dl_info mine, theirs;
    if (!dladdr((void *)&losskit_internal_is_this_library, &mine)) return 1; /* unknown: refuse */
    if (!dladdr(symbol, &theirs)) return 0;
    return mine.dli_fbase == theirs.dli_fbase;
}

/* Reads exactly `size` bytes at `offset`; 0 on success. */
static int read_at(int fd, void *out, size_t size, uint64_t offset) {
    char *p = out;
    while (size > 0) {
        const ssize_t got = pread(fd, p, size, (off_t)offset);
        if (got <= 0) return -1;
        p += got;
        size -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

/* Whether [offset, offset + count * entry) lies within a file of `size` bytes, without overflow. */
static int table_fits(uint64_t offset, uint64_t count, uint64_t entry, uint64_t size) {
    if (offset > size) return 0;
    if (entry != 0 && count > (size - offset) / entry) return 0;
    return 1;
}

static int check_variant_fd(int fd, const char *level) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    const uint64_t size = (uint64_t)st.st_size;
    Elf64_Ehdr eh;
    if (size < sizeof eh || read_at(fd, &eh, sizeof eh, 0) != 0) return -1;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_ident[EI_VERSION] != EV_CURRENT)
        return -1;
    if (eh.e_type != ET_DYN || eh.e_machine != EM_X86_64 || eh.e_version != EV_CURRENT) return -1;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM) return -1;
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum) return -1;
    if (!table_fits(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr), size)) return -1;
    if (!table_fits(eh.e_shoff, eh.e_shnum, sizeof(Elf64_Shdr), size)) return -1;

    /* Every byte the loader maps from the file must be in it: mapping a segment past the end
     * of a truncated file is what raises SIGBUS inside dlopen. */
    for (uint64_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (read_at(fd, &ph, sizeof ph, eh.e_phoff + i * sizeof ph) != 0) return -1;
        if (ph.p_type == PT_NULL) continue;
        if (!table_fits(ph.p_offset, 1, ph.p_filesz, size)) return -1;
    }

    /* The section table (the end of the file, so also a truncation check) and the marker. */
    Elf64_Shdr names;
    if (read_at(fd, &names, sizeof names, eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof names) != 0) return -1;
    if (names.sh_type != SHT_STRTAB || !table_fits(names.sh_offset, 1, names.sh_size, size)) return -1;
    const char wanted[] = LOSSKIT_LEVEL_SECTION;
    char marker[64] = {0};
    uint64_t marker_size = 0;
    int found = 0;
    for (uint64_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        if (read_at(fd, &sh, sizeof sh, eh.e_shoff + i * sizeof sh) != 0) return -1;
        if (sh.sh_type != SHT_NOBITS && !table_fits(sh.sh_offset, 1, sh.sh_size, size)) return -1;
        if (sh.sh_name >= names.sh_size || names.sh_size - sh.sh_name < sizeof wanted) continue;
        char name[sizeof wanted];
        if (read_at(fd, name, sizeof name, names.sh_offset + sh.sh_name) != 0) return -1;
        if (memcmp(name, wanted, sizeof wanted) != 0) continue;
        if (found || sh.sh_type != SHT_PROGBITS || sh.sh_size == 0 || sh.sh_size > sizeof marker) return -1;
        if (read_at(fd, marker, sh.sh_size, sh.sh_offset) != 0) return -1;
        marker_size = sh.sh_size;
        found = 1;
    }
    if (!found) return -1;
    /* Exactly "LEVEL\0VERSION\0", both NUL-terminated strings; the version is this library's. */
    char expected[sizeof marker];
    const int length = snprintf(expected, sizeof expected, "%s%c%s", level, '\0', LOSSKIT_VERSION_STRING);
    if (length < 0 || (size_t)length + 1 > sizeof expected || marker_size != (uint64_t)length + 1) return -1;
    return memcmp(marker, expected, (size_t)length + 1) == 0 ? 0 : -1;
}

int losskit_internal_check_variant(const char *path, const char *level) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const int result = check_variant_fd(fd, level);
    close(fd);
    return result;
}
