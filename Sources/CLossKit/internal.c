/* The CPU-level dispatch of liblosskit.so (include/losskit_internal.h lists what it forwards).
 *
 * Swift compiles a whole module for one CPU level, and mixing levels in one .so is unsafe
 * (specialised SIMD code is emitted as weak symbols the linker may share), so the library is built
 * once per level: liblosskit.so for baseline x86-64, liblosskit-avx2.so and liblosskit-avx512.so
 * beside it (built with -DLK_VARIANT_LEVEL, which leaves the loader below out). On its first call
 * liblosskit.so picks the widest level the CPU supports (LOSSKIT_ISA may only lower it), dlopens
 * that file, and from then on each entry point forwards to it (losskit_forward_*). Nothing else
 * changes: each build validates and computes exactly as the source says, with the vector width of
 * its level.
 *
 * What is loaded is checked before anything is forwarded to it, since a bad file must cost the
 * speed-up, never the process: the file is read (not mapped) first, and must be a complete x86-64
 * ELF shared object carrying the marker of exactly the level its name claims and of this version
 * (a truncated file would fault inside dlopen, a wider build would fault on its first
 * instruction, a copy of this library would forward to itself, a build of another version left
 * by an older install has other entry points); once loaded, its lk_cpu_level must not be ours
 * (dlopen of a file already loaded returns that library) and must report that level, its
 * lk_version must be ours, and it must define every forwarded function. A build's lk_cpu_level
 * and lk_version are baseline C code, so asking runs nothing the CPU may lack. Its siblings are
 * looked up beside the real file of this library, symlinks resolved, and named after it:
 * liblosskit-avx2.so.0.3.0 beside liblosskit.so.0.3.0.
 *
 * Also here: the level marker and lk_cpu_level of a CPU-level build, and the notes of how widely
 * a call split across threads that the determinism tests read. */
#define _GNU_SOURCE /* dladdr, Dl_info */
#include "losskit_internal.h"

#include <dlfcn.h>    /* dlopen, dlsym, dladdr */
#include <elf.h>      /* Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr */
#include <fcntl.h>    /* open */
#include <limits.h>   /* PATH_MAX */
#include <pthread.h>  /* pthread_once */
#include <stddef.h>   /* size_t, NULL */
#include <stdint.h>   /* uint64_t */
#include <stdlib.h>   /* realpath, getenv */
#include <stdio.h>    /* snprintf */
#include <string.h>   /* strcmp, strrchr, strncmp, memcmp */
#include <sys/stat.h> /* fstat, S_ISREG */
#include <unistd.h>   /* pread, close */

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

/* The level marker of a CPU-level build. The build passes -Xcc -DLK_VARIANT_LEVEL=1 (AVX2) or 2
 * (AVX-512); the marker is the level's name and the library's version, "avx2\0" "0.3.0\0", in a
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

#if !defined(LK_VARIANT_LEVEL)
/* The loader, in liblosskit.so only. */

/* 0: baseline x86-64; 1: the AVX2 build (-target-cpu haswell: AVX2, FMA, BMI1/2, LZCNT, MOVBE,
 * F16C, POPCNT, with the OS saving YMM state); 2: the AVX-512 build (-target-cpu skylake-avx512:
 * also AVX-512 F, CD, BW, DQ, VL, with the OS saving the opmask and ZMM state). */
#if defined(__x86_64__)
#include <cpuid.h> /* __get_cpuid, __get_cpuid_count: inline assembly, no library */

static int cpu_level(void) {
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
static int cpu_level(void) { return 0; }
#endif

/* Writes into buffer (NUL-terminated) the path of the build of `level` ("avx2", "avx512") that
 * this library looks for: beside the file it was loaded from, symlinks resolved (realpath), named
 * after it with "liblosskit" replaced by "liblosskit-LEVEL" (liblosskit.so.0.3.0 ->
 * liblosskit-avx2.so.0.3.0, liblosskit.so -> liblosskit-avx2.so; liblosskit-LEVEL.so beside a
 * file of any other name). Returns 0 on success, -1 if the file is unknown or it does not fit. */
static int variant_path(const char *level, char *buffer, size_t capacity) {
    Dl_info info;
    if (!dladdr((void *)&variant_path, &info) || !info.dli_fname) return -1;
    /* The real file, not a symlink to it: the CPU-level builds sit beside the real file. */
    char real[PATH_MAX];
    const char *path = realpath(info.dli_fname, real) ? real : info.dli_fname;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    /* The folder with its final slash ("/" for a file in /), or "./" for a bare file name. */
    const char *folder = slash ? path : "./";
    const int folder_length = slash ? (int)(slash - path + 1) : 2;
    /* liblosskit.so -> liblosskit-avx2.so, liblosskit.so.0.3.0 -> liblosskit-avx2.so.0.3.0;
     * a library under any other name looks for the plain liblosskit-avx2.so. */
    const char stem[] = "liblosskit", own[] = "liblosskit.so";
    const int versioned = strncmp(name, own, sizeof own - 1) == 0 &&
                          (name[sizeof own - 1] == '\0' || name[sizeof own - 1] == '.');
    const char *suffix = versioned ? name + (sizeof stem - 1) : ".so";
    const int written = snprintf(buffer, capacity, "%.*s%s-%s%s", folder_length, folder, stem, level, suffix);
    return written < 0 || (size_t)written >= capacity ? -1 : 0;
}

/* 1 if symbol lies in this very library (as a dlopen under another name can return it), else 0. */
static int is_this_library(const void *symbol) {
    Dl_info mine, theirs;
    if (!dladdr((void *)&is_this_library, &mine)) return 1; /* unknown: refuse */
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

/* Checks, by reading the file (never mapping or loading it), that path is a CPU-level build of
 * this library for `level` that dlopen can load without faulting: a regular file, an ELF64
 * little-endian x86-64 shared object whose program headers, segments and sections all lie within
 * the file, with a LOSSKIT_LEVEL_SECTION holding exactly `level` and this library's version.
 * Returns 0 if so, -1 otherwise. */
static int check_variant(const char *path, const char *level) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const int result = check_variant_fd(fd, level);
    close(fd);
    return result;
}

/* The names looked up in a loaded build, in the order of enum losskit_entry. */
static const char *const entry_names[losskit_entry_count] = {
#define LOSSKIT_ENTRY_NAME(name) #name,
    LOSSKIT_FORWARDED(LOSSKIT_ENTRY_NAME)
#undef LOSSKIT_ENTRY_NAME
};

/* The loaded build's entry points; written once, by load_variant under pthread_once. */
static losskit_entry_point variant_entries[losskit_entry_count];
static int variant_loaded;
static pthread_once_t variant_once = PTHREAD_ONCE_INIT;

typedef const char *(*string_function)(void);

/* Loads the build of `level` at `path` into variant_entries; 0 if it passes every check. A build
 * that fails a check after dlopen stays loaded: unloading a library that carries its own Swift
 * runtime is not safe, and it takes a broken installation to get there. */
static int open_variant(const char *path, const char *level) {
    if (check_variant(path, level) != 0) return -1;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return -1;
    void *cpu_level_symbol = dlsym(handle, "lk_cpu_level");
    if (!cpu_level_symbol || is_this_library(cpu_level_symbol)) return -1;
    const char *reported = ((string_function)cpu_level_symbol)();
    if (!reported || strcmp(reported, level) != 0) return -1;
    void *version_symbol = dlsym(handle, "lk_version");
    const char *version = version_symbol ? ((string_function)version_symbol)() : NULL;
    if (!version || strcmp(version, LOSSKIT_VERSION_STRING) != 0) return -1;
    losskit_entry_point entries[losskit_entry_count];
    for (int i = 0; i < losskit_entry_count; i++) {
        void *symbol = dlsym(handle, entry_names[i]);
        if (!symbol) return -1;
        entries[i] = (losskit_entry_point)symbol;
    }
    memcpy(variant_entries, entries, sizeof entries);
    return 0;
}

/* Picks the widest level the CPU supports and LOSSKIT_ISA allows, falling back to the next one
 * down when a build is absent or fails a check. */
static void load_variant(void) {
    int supported = cpu_level();
    const char *cap = getenv("LOSSKIT_ISA");
    if (cap) {
        /* A cap only ever lowers the level: a level the CPU lacks is never used, and an unknown
         * value is ignored. */
        if (strcmp(cap, "x86-64") == 0 || strcmp(cap, "baseline") == 0) supported = 0;
        else if (strcmp(cap, "avx2") == 0 && supported > 1) supported = 1;
    }
    static const char *const level_names[] = {"x86-64", "avx2", "avx512"};
    for (int level = supported; level > 0; level--) {
        char path[4096];
        if (variant_path(level_names[level], path, sizeof path) == 0 && open_variant(path, level_names[level]) == 0) {
            variant_loaded = 1;
            return;
        }
    }
}

const losskit_entry_point *losskit_internal_variant(void) {
    if (pthread_once(&variant_once, load_variant) != 0) return NULL;
    return variant_loaded ? variant_entries : NULL;
}
#else
/* A CPU-level build computes every call itself. */
const losskit_entry_point *losskit_internal_variant(void) { return NULL; }
#endif
