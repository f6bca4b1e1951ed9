/* A libFuzzer harness over the whole C ABI of liblosskit (include/losskit.h).
 *
 * Each input is decoded, deterministically and byte by byte, into one call: which entry point,
 * the options (every enum in and out of range, NaN/+-inf/negative/huge scales, opt->size, a
 * NULL opt), the sizes (small ones, and negative, overflowing and huge ones), NULL for any
 * pointer, labels, offsets, lengths and the contents of every input buffer (NaN, +-inf,
 * +-1e38, +-1e308, subnormals, ordinary values). Missing bytes read as 0, so every input is a
 * valid call and short inputs are ordinary small calls.
 *
 * Buffers are allocated on the heap with exactly the byte size the call's arguments imply, so
 * AddressSanitizer reports any read or write past them. When a size the arguments imply
 * overflows (or is negative), a small real buffer is passed instead and the call must fail;
 * when it is representable but too large to allocate here, the call is skipped (a real
 * caller would own that memory). Every output is poisoned before the call with a pattern no
 * computation writes (a NaN payload for floats). Per call the harness checks what the header
 * promises:
 *   - the status is an LK_* value; NULL opt is LK_ERR_NULL (decoding accepts it), an opt->size
 *     below the first layout LK_ERR_OPTION, an impossible buffer size an error;
 *   - on an error, every output byte is untouched and lk_last_error() is not empty;
 *   - on success, lk_last_error() is "", every output element has been written, and each is
 *     finite, except that a NaN among the inputs lets NaN through (the header's propagation
 *     rule) and a float32 output may be +-INFINITY (its true value may exceed FLT_MAX);
 *     marginals lie in [0, 1], Viterbi paths hold tags (and -1 past each length).
 * A broken promise prints what broke and aborts, so libFuzzer keeps the input.
 *
 * Executions per entry point are counted and printed at exit (and appended to the file named by
 * $LK_FUZZ_STATS, one line per process, for fork-mode runs; $LK_FUZZ_STATS.PID holds a running
 * process's counts so far). Build and run: `make fuzz`,
 * `make test-fuzz` (Tests/fuzz/README.md). */
#include <float.h>
#include <math.h>
#include <sanitizer/common_interface_defs.h> /* __sanitizer_set_death_callback */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* getpid */

#include "losskit.h"

/* ----------------------------------------------------------------------------------------- */
/* Reading the input                                                                          */

typedef struct {
    const uint8_t *p;
    size_t n;
} Reader;

static uint8_t u8(Reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

/* Sizes: mostly small (0 ..< small), sometimes one of these. */
static const int64_t special_sizes[] = {
    -1, INT64_MIN, INT64_MAX, (int64_t)1 << 62, (int64_t)1 << 61, (int64_t)1 << 32,
    (int64_t)1 << 31, 3037000499LL, 3037000500LL, INT32_MAX, (int64_t)1 << 40, -2,
    ((int64_t)1 << 60) + 1, 0, 1, 1000,
};
#define N_SPECIAL_SIZES (int)(sizeof special_sizes / sizeof special_sizes[0])

static int64_t size_arg(Reader *r, int small) {
    uint8_t b = u8(r);
    if (b < 240) return b % small;
    return special_sizes[(b - 240) % N_SPECIAL_SIZES];
}

/* Values of scores, costs, weights, features: ordinary ones and every edge of both types. */
static const double special_values[] = {
    NAN, INFINITY, -INFINITY, 1e38, -1e38, 3.4028234663852886e38, -3.4028234663852886e38, 1e308,
    -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 1e300, -1e300, 1e200, 1e20, -1e20,
    1e16, 1e15, -1e15, 88.0, 709.0, -709.0, 0.0, -0.0, 1.401298464324817e-45, 1e-40,
    4.9406564584124654e-324, 1e-310, 2.2250738585072014e-308, 1.1754943508222875e-38, 1e-160,
    -1e-160, 40.0, 35.0, -22.47, 25.04, 1e-20, 0.5, 1.0, -1.0, 2.0, 3.0, 20.0, 50.81, 89.0,
    710.0, 1e5, -1e5, 1e10, 90.0, -90.0, 1e-300, 0.25, -0.87758256189037265, 0.9999999,
};
#define N_SPECIAL_VALUES (int)(sizeof special_values / sizeof special_values[0])

static double value(Reader *r) {
    uint8_t b = u8(r);
    if (b < 200) return (b - 100) * 0.25; /* -25 .. 24.75 */
    return special_values[(b - 200) % N_SPECIAL_VALUES];
}

/* Weights: mostly ordinary, sometimes any value. */
static double weight_value(Reader *r) {
    uint8_t b = u8(r);
    if (b < 128) return 1.0;
    if (b < 160) return 0.0;
    if (b < 192) return (b - 160) * 0.125;
    return special_values[(b - 192) % N_SPECIAL_VALUES];
}

/* Labels, tags and gold indices: in range mostly, else an edge. */
static int32_t label(Reader *r, int64_t range, int32_t ignore) {
    uint8_t b = u8(r);
    if (b < 232) return range > 0 ? (int32_t)(b % (range < 232 ? range : 232)) : 0;
    switch (b % 8) {
    case 0: return -1;
    case 1: return -100;
    case 2: return (int32_t)(range < INT32_MAX ? range : INT32_MAX);
    case 3: return (int32_t)(range < INT32_MAX - 1 ? range + 1 : INT32_MAX);
    case 4: return INT32_MIN;
    case 5: return INT32_MAX;
    case 6: return ignore;
    default: return -2;
    }
}

static int32_t enum_value(Reader *r, int32_t lo, int32_t hi) {
    uint8_t b = u8(r);
    if (b < 224) return lo + (int32_t)(b % (uint32_t)(hi - lo + 1));
    static const int32_t bad[] = {-1, INT32_MIN, INT32_MAX, 14, 4, 100, -100, 1000};
    return bad[b % 8];
}

static const double scale_values[] = {
    0.0, -0.0, 1.0, 0.5, 2.0, 20.0, 50.81, 89.0, 710.0, 1e15, 1e38, 3.4028234663852886e38,
    3.5e38, 1e300, 1e308, 1.7976931348623157e308, INFINITY, -INFINITY, NAN, -1.0, -1e-300,
    4.9406564584124654e-324, 1e-40, 3.141592653589793, 3.2, 0.999999, 64.0, 0.35, 1e-8, 1e5,
};
#define N_SCALE_VALUES (int)(sizeof scale_values / sizeof scale_values[0])

static double scale(Reader *r) {
    uint8_t b = u8(r);
    if (b < 128) return b * 0.0625;
    return scale_values[b % N_SCALE_VALUES];
}

/* ----------------------------------------------------------------------------------------- */
/* Buffers                                                                                    */

enum { F32, F64, I32, I64, BF16 };
static size_t esize(int type) { return type == BF16 ? 2 : type == F32 || type == I32 ? 4 : 8; }

/* bfloat16: the upper half of a float (lk_dense_bf16). Rounded to nearest even from a float,
 * written independently of the library's own rounding. */
static float bf16_value(uint16_t bits) {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (f != f) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The largest buffer allocated; a call whose representable sizes exceed it is skipped. */
#define CAP_ELEMS ((int64_t)1 << 14)
/* The largest L-Softmax product n * d * k run (run_lsoftmax). */
#define LSOFTMAX_WORK_CAP ((double)(1 << 20))
/* The elements of the small real buffer passed where the implied size is impossible. */
#define SMALL_ELEMS 8

/* An implied element count: a product of sizes. bad = negative or its byte size overflows. */
typedef struct {
    int64_t elems;
    int bad;
} Count;

static Count count_of(int type, int m, const int64_t *f) {
    Count c = {1, 0};
    for (int i = 0; i < m; i++)
        if (f[i] == 0) return (Count){0, 0};
    for (int i = 0; i < m; i++) {
        if (f[i] < 0) return (Count){0, 1};
        if (__builtin_mul_overflow(c.elems, f[i], &c.elems)) return (Count){0, 1};
    }
    int64_t bytes;
    if (__builtin_mul_overflow(c.elems, (int64_t)esize(type), &bytes)) return (Count){0, 1};
    return c;
}
static Count cnt1(int type, int64_t a) { return count_of(type, 1, (int64_t[]){a}); }
static Count cnt2(int type, int64_t a, int64_t b) { return count_of(type, 2, (int64_t[]){a, b}); }
static Count cnt3(int type, int64_t a, int64_t b, int64_t c) {
    return count_of(type, 3, (int64_t[]){a, b, c});
}

#define MAX_BUFS 16
typedef struct {
    void *p;
    int64_t elems; /* elements allocated */
    int type;
    int out;       /* an output: poisoned, then checked */
    const char *name;
} Buf;

typedef struct {
    Buf b[MAX_BUFS];
    int nb;
    int impossible; /* a passed buffer has an impossible size: the call must fail */
    int skip;       /* a size too large to allocate: skip the call */
    int nan_in;     /* a NaN among the inputs passed */
    int huge_in;    /* an input of magnitude >= 1e300 */
    int inf_pair;   /* the weighted losses include +inf and -inf (a NaN total is then documented) */
    uint8_t nulls;  /* which pointers (in order of creation) are passed as NULL */
    int null_on;
    int shifted_nulls; /* pointers by order of creation, 8 and up on bit (order + 4) % 8 (below) */
    int created;       /* buf() calls so far, NULL or not */
    int nsizes;
    const char *size_names[4];
    int64_t sizes[4];
} Call;

typedef struct {
    void *p; /* NULL, or the caller's struct of `alloc` bytes */
    size_t alloc;
    lk_options o;
    int size_ok;
} Opt;

static void size_args(Call *call, int m, const char *const *names, const int64_t *values) {
    call->nsizes = m;
    for (int i = 0; i < m; i++) {
        call->size_names[i] = names[i];
        call->sizes[i] = values[i];
    }
}

static const uint32_t POISON32 = 0x7fa5a5a5u;                /* a float NaN payload */
static const uint64_t POISON64 = 0x7ff5a5a5a5a5a5a5ull;      /* a double NaN payload */
static const uint32_t POISONI32 = 0xa5a5a5a5u;
static const uint16_t POISON16 = 0x7fa5u;                     /* a bfloat16 NaN payload */

static void poison(Buf *b) {
    for (int64_t i = 0; i < b->elems; i++) {
        if (b->type == BF16) memcpy((char *)b->p + 2 * i, &POISON16, 2);
        else if (esize(b->type) == 4) memcpy((char *)b->p + 4 * i, b->type == F32 ? &POISON32 : &POISONI32, 4);
        else memcpy((char *)b->p + 8 * i, &POISON64, 8);
    }
}

static int is_poison(const Buf *b, int64_t i) {
    if (b->type == BF16) {
        uint16_t v;
        memcpy(&v, (char *)b->p + 2 * i, 2);
        return v == POISON16;
    }
    if (esize(b->type) == 4) {
        uint32_t v;
        memcpy(&v, (char *)b->p + 4 * i, 4);
        return v == (b->type == F32 ? POISON32 : POISONI32);
    }
    uint64_t v;
    memcpy(&v, (char *)b->p + 8 * i, 8);
    return v == POISON64;
}

/* Adds a buffer of the implied count c; returns NULL when this pointer is to be NULL. */
static void *buf(Call *call, Count c, int type, int out, const char *name) {
    int idx = call->nb;
    if (call->nb >= MAX_BUFS) abort();
    /* One byte of bits for every pointer: bit idx % 8 of the idx-th pointer that is not NULL, so
     * that with more than 8 a late pointer shares an early one's bit. An entry point whose late
     * outputs must vary apart from its early inputs (lk_linear_bf16: d_w and d_w_f32 shared x's
     * and gold's bits, so d_w alone needed a NULL gold) numbers its pointers by creation and
     * shifts those from 8 on by 4; older entry points keep their mapping (and their seeds' calls). */
    int order = call->created++;
    int bit = !call->shifted_nulls ? idx % 8 : order >= 8 ? (order + 4) % 8 : order;
    int is_null = call->null_on && ((call->nulls >> bit) & 1);
    if (is_null) return NULL;
    int64_t elems = c.elems;
    if (c.bad) {
        call->impossible = 1;
        elems = SMALL_ELEMS;
    } else if (elems > CAP_ELEMS) {
        call->skip = 1;
        elems = SMALL_ELEMS;
    }
    /* malloc(0) gives a real zero-byte allocation: ASan reports any access to it. */
    void *p = malloc((size_t)elems * esize(type));
    if (!p && elems) abort();
    call->b[call->nb++] = (Buf){p, elems, type, out, name};
    if (out) poison(&call->b[call->nb - 1]);
    return p;
}

static int64_t elems_of(const Call *call, const void *p) {
    for (int i = 0; i < call->nb; i++)
        if (p && call->b[i].p == p) return call->b[i].elems;
    return 0;
}

static void set_value(Call *call, void *p, int type, int64_t i, double v) {
    if (v != v) call->nan_in = 1;
    if (fabs(v) >= 1e300 && type == F64) call->huge_in = 1;
    if (type == F32) ((float *)p)[i] = (float)v;
    else if (type == BF16) ((uint16_t *)p)[i] = bf16_bits((float)v);
    else ((double *)p)[i] = v;
}

/* Fills an input buffer of values from the input bytes. */
static void fill_values(Call *call, Reader *r, void *p, int type, int weights) {
    if (!p) return;
    Buf *b = NULL;
    for (int i = 0; i < call->nb; i++)
        if (call->b[i].p == p) b = &call->b[i];
    for (int64_t i = 0; i < b->elems; i++) set_value(call, p, type, i, weights ? weight_value(r) : value(r));
}

static void free_call(Call *call) {
    for (int i = 0; i < call->nb; i++) free(call->b[i].p);
}

/* ----------------------------------------------------------------------------------------- */
/* Statistics                                                                                 */

enum {
    E_VERSION, E_STATUS_NAME, E_LAST_ERROR, E_OPTIONS_INIT, E_DENSE32, E_DENSE64, E_LISTS32,
    E_LISTS64, E_CHAIN32, E_CHAIN64, E_VITERBI32, E_VITERBI64, E_MARGINALS32, E_MARGINALS64,
    E_LSOFTMAX32, E_LSOFTMAX64, E_DENSE_HESSIAN32, E_DENSE_HESSIAN64, E_LISTS_HESSIAN32,
    E_LISTS_HESSIAN64, E_LINEAR32, E_LINEAR64, E_VOCAB32, E_VOCAB64, E_DENSE_BF16, E_LINEAR_BF16, E_COUNT
};
static const char *entry_names[E_COUNT] = {
    "lk_version+number+cpu_level", "lk_status_name", "lk_last_error", "lk_options_init",
    "lk_dense_f32", "lk_dense_f64", "lk_lists_f32", "lk_lists_f64", "lk_chain_f32",
    "lk_chain_f64", "lk_chain_viterbi_f32", "lk_chain_viterbi_f64", "lk_chain_marginals_f32",
    "lk_chain_marginals_f64", "lk_lsoftmax_f32", "lk_lsoftmax_f64", "lk_dense_hessian_f32",
    "lk_dense_hessian_f64", "lk_lists_hessian_f32", "lk_lists_hessian_f64", "lk_linear_f32", "lk_linear_f64",
    "lk_vocab_dense_f32", "lk_vocab_dense_f64", "lk_dense_bf16", "lk_linear_bf16",
};
static uint64_t calls[E_COUNT], oks[E_COUNT], skipped[E_COUNT];

static int format_stats(char *line, size_t size) {
    int len = snprintf(line, size, "losskit-fuzz stats:");
    for (int e = 0; e < E_COUNT; e++)
        len += snprintf(line + len, size - (size_t)len, " %s=%llu/%llu/%llu", entry_names[e],
                        (unsigned long long)calls[e], (unsigned long long)oks[e],
                        (unsigned long long)skipped[e]);
    return len;
}

/* $LK_FUZZ_STATS.PID: this process's counts so far, rewritten every 1024 calls, so that a
 * process that ends without running atexit (libFuzzer's _Exit on a timeout, a kill) keeps them;
 * its exit line replaces the file. sum_stats.py adds both kinds. */
static char checkpoint_path[4096];

static void checkpoint(void) {
    static char temporary[sizeof checkpoint_path + 8];
    const char *path = getenv("LK_FUZZ_STATS");
    if (!path || !*path) return;
    if (!checkpoint_path[0]) {
        int len = snprintf(checkpoint_path, sizeof checkpoint_path, "%s.%ld", path, (long)getpid());
        if (len < 0 || (size_t)len >= sizeof checkpoint_path) { /* too long: no checkpoints */
            checkpoint_path[0] = 0;
            return;
        }
        snprintf(temporary, sizeof temporary, "%s.tmp", checkpoint_path);
    }
    char line[4096];
    format_stats(line, sizeof line);
    /* Written aside, then renamed over the last one: a reader sees a whole line. */
    FILE *f = fopen(temporary, "w");
    if (f) {
        fprintf(f, "%s\n", line);
        if (fclose(f) == 0) rename(temporary, checkpoint_path);
    }
}

static void count_call(int entry) {
    static uint64_t total;
    calls[entry]++;
    if ((++total & 1023) == 0) checkpoint();
}

static void print_stats(void) {
    char line[4096];
    format_stats(line, sizeof line);
    fprintf(stderr, "%s (calls/ok/skipped)\n", line);
    const char *path = getenv("LK_FUZZ_STATS");
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fprintf(f, "%s\n", line);
            fclose(f);
            if (checkpoint_path[0]) remove(checkpoint_path);
        }
    }
}

/* The call, printed as C, for a reproducer (with LK_FUZZ_VERBOSE=1 before every call, which
 * shows the call that a sanitizer report interrupts). */
#ifndef DUMP_MAX
#define DUMP_MAX 64 /* values shown per buffer */
#endif
static const void *dump_opt;
static const Call *dump_call;

static void print_value(FILE *f, double v, int type) {
    if (v != v) fprintf(f, "NAN");
    else if (isinf(v)) fprintf(f, v > 0 ? "INFINITY" : "-INFINITY");
    else fprintf(f, type == F32 ? "%.9g" : "%.17g", v);
}

static void dump(FILE *f) {
    if (dump_opt) {
        lk_options o;
        memset(&o, 0, sizeof o);
        uint32_t size = ((const lk_options *)dump_opt)->size;
        memcpy(&o, dump_opt, size < sizeof o ? size : sizeof o);
        fprintf(f, "  opt = {size %u, loss %d, reduction %d, ignore_label %d, cost_layout %d, threads %d, "
                   "cost_scale %.17g, label_smoothing %.17g, square_k %.17g, square_m %.17g, hope %d, fear %d, "
                   "hope_scale %.17g, fear_scale %.17g, margin %d, lambda %.17g, angular_scale %.17g, "
                   "angular_margin %.17g, z_loss %.17g, softcap %.17g}\n",
                o.size, o.loss, o.reduction, o.ignore_label, o.cost_layout, o.threads, o.cost_scale,
                o.label_smoothing, o.square_k, o.square_m, o.hope, o.fear, o.hope_scale, o.fear_scale, o.margin,
                o.lambda, o.angular_scale, o.angular_margin, o.z_loss, o.softcap);
    } else {
        fprintf(f, "  opt = NULL\n");
    }
    const Call *c = dump_call;
    if (!c) return;
    for (int i = 0; i < c->nsizes; i++) fprintf(f, "  %s = %lld\n", c->size_names[i], (long long)c->sizes[i]);
    for (int i = 0; i < c->nb; i++) {
        const Buf *b = &c->b[i];
        fprintf(f, "  %s%s[%lld] = {", b->out ? "(out) " : "", b->name, (long long)b->elems);
        for (int64_t j = 0; j < b->elems && j < DUMP_MAX; j++) {
            if (j) fprintf(f, ", ");
            if (b->out) { fprintf(f, "poison"); break; }
            if (b->type == F32) print_value(f, ((float *)b->p)[j], F32);
            else if (b->type == BF16) print_value(f, bf16_value(((uint16_t *)b->p)[j]), F32);
            else if (b->type == F64) print_value(f, ((double *)b->p)[j], F64);
            else if (b->type == I32) fprintf(f, "%d", ((int32_t *)b->p)[j]);
            else fprintf(f, "%lld", (long long)((int64_t *)b->p)[j]);
        }
        fprintf(f, "}\n");
    }
    fprintf(f, "  (pointers not listed are NULL)\n");
}

/* A hash of every input buffer and of the options, to see that a call writes none of them. */
static uint64_t inputs_hash;
static uint64_t hash_inputs(const Call *call, const Opt *opt) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < call->nb; i++) {
        const Buf *b = &call->b[i];
        if (b->out) continue;
        const unsigned char *p = b->p;
        for (size_t j = 0; j < (size_t)b->elems * esize(b->type); j++) h = (h ^ p[j]) * 1099511628211ull;
    }
    if (opt->p)
        for (size_t j = 0; j < opt->alloc; j++) h = (h ^ ((const unsigned char *)opt->p)[j]) * 1099511628211ull;
    return h;
}

static void before_call(int entry, const Call *call, const Opt *optp) {
    const void *opt = optp->p;
    inputs_hash = hash_inputs(call, optp);
    dump_opt = opt;
    dump_call = call;
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("LK_FUZZ_VERBOSE") != NULL;
    if (verbose) {
        fprintf(stderr, "losskit-fuzz call %s:\n", entry_names[entry]);
        dump(stderr);
    }
}

/* With $LK_FUZZ_LOG set, a broken promise (not a sanitizer report) is appended to that file
 * the first time this process sees its kind, and the run goes on: a long run then catalogues
 * every kind of finding instead of stopping at the first. */
#define MAX_SIGNATURES 512
static const uint8_t *current_input;
static size_t current_size;
static char *signatures[MAX_SIGNATURES];
static int n_signatures;

static int log_finding(int entry, const char *what) {
    const char *path = getenv("LK_FUZZ_LOG");
    if (!path || !*path) return 0;
    char sig[320];
    int loss = dump_opt && ((const lk_options *)dump_opt)->size >= 8 ? ((const lk_options *)dump_opt)->loss : -1;
    snprintf(sig, sizeof sig, "%s loss %d: %s", entry_names[entry], loss, what);
    for (char *c = sig + strlen(entry_names[entry]) + 1; *c; c++)
        if (*c >= '0' && *c <= '9') *c = '#';
    for (int i = 0; i < n_signatures; i++)
        if (!strcmp(signatures[i], sig)) return 1;
    if (n_signatures < MAX_SIGNATURES) signatures[n_signatures++] = strdup(sig);
    FILE *f = fopen(path, "a");
    if (!f) return 1;
    fprintf(f, "FINDING %s\n  what: %s\n", sig, what);
    dump(f);
    /* The input itself, to replay it (xxd -r -p): the dump shows at most 64 values a buffer. */
    fprintf(f, "  input (hex): ");
    for (size_t i = 0; i < current_size; i++) fprintf(f, "%02x", current_input[i]);
    fprintf(f, "\n");
    fclose(f);
    return 1;
}

static void fail(int entry, const char *what) {
    if (log_finding(entry, what)) return;
    fprintf(stderr, "losskit-fuzz call %s:\n", entry_names[entry]);
    dump(stderr);
    fprintf(stderr, "losskit-fuzz FINDING in %s: %s (last error: \"%s\")\n", entry_names[entry], what,
            lk_last_error());
    print_stats();
    abort();
}

/* A sanitizer report (ASan, or a Swift trap with handle_sigill=1) ends here: show the call. */
static void on_death(void) {
    if (dump_call || dump_opt) {
        fprintf(stderr, "losskit-fuzz call that died:\n");
        dump(stderr);
    }
    print_stats();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    atexit(print_stats);
    __sanitizer_set_death_callback(on_death);
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Options                                                                                    */


static void options(Reader *r, Opt *opt, int may_be_null) {
    uint8_t flags = u8(r);
    memset(opt, 0, sizeof *opt);
    if (may_be_null && (flags & 0x0f) == 0x0f) return; /* NULL opt */
    int32_t loss = enum_value(r, 1, 13);
    if (lk_options_init(&opt->o, loss >= 1 && loss <= 13 ? loss : 1) != LK_OK) fail(E_OPTIONS_INIT, "init");
    opt->o.loss = loss;
    uint16_t mask = u8(r);
    if (flags & 0x10) mask |= (uint16_t)(u8(r) << 8);
    if (mask & 0x0001) opt->o.reduction = enum_value(r, 0, 2);
    if (mask & 0x0002) opt->o.cost_layout = enum_value(r, 0, 2);
    if (mask & 0x0004) opt->o.cost_scale = scale(r);
    if (mask & 0x0008) opt->o.hope = enum_value(r, 0, 3);
    if (mask & 0x0010) opt->o.fear = enum_value(r, 2, 3);
    if (mask & 0x0020) opt->o.hope_scale = scale(r);
    if (mask & 0x0040) opt->o.fear_scale = scale(r);
    if (mask & 0x0080) opt->o.margin = enum_value(r, 1, 5);
    if (mask & 0x0100) opt->o.lambda = scale(r);
    if (mask & 0x0200) opt->o.label_smoothing = scale(r);
    if (mask & 0x0400) opt->o.square_k = scale(r);
    if (mask & 0x0800) opt->o.square_m = scale(r);
    if (mask & 0x1000) opt->o.angular_scale = scale(r);
    if (mask & 0x2000) opt->o.angular_margin = scale(r);
    if (mask & 0x4000) {
        static const int32_t ignores[] = {-100, 0, 1, -1, INT32_MIN, INT32_MAX, 2, -2};
        opt->o.ignore_label = ignores[u8(r) % 8];
    }
    if (mask & 0x8000) {
        static const int32_t threads[] = {0, 1, 2, 3, -1, INT32_MIN, 16, 1};
        opt->o.threads = threads[u8(r) % 8];
    }
    /* The fields appended in 0.3.0, behind a flags pattern no committed seed has (so the seeds
     * decode as they did before): one more byte says which follow. */
    if ((flags & 0xcf) == 0xce) {
        uint8_t extra = u8(r);
        if (extra & 1) opt->o.z_loss = scale(r);
        if (extra & 2) opt->o.softcap = scale(r);
    }
    /* opt->size: the caller's struct is exactly that large (the library reads only that many
     * bytes), or the whole struct when the size claims more than we allocate. */
    size_t alloc = sizeof(lk_options);
    if (flags & 0x20) {
        static const uint32_t sizes[] = {0, 4, 8, 104, 111, 113, 120, 256, 4096, UINT32_MAX};
        opt->o.size = sizes[u8(r) % 10];
        if (opt->o.size < sizeof(lk_options)) alloc = opt->o.size < 4 ? 4 : opt->o.size;
        else if (opt->o.size <= 4096) alloc = opt->o.size;
    }
    opt->size_ok = opt->o.size >= 112;
    opt->alloc = alloc;
    opt->p = calloc(1, alloc);
    memcpy(opt->p, &opt->o, alloc < sizeof(lk_options) ? alloc : sizeof(lk_options));
}

/* ----------------------------------------------------------------------------------------- */
/* The checks after a computing call                                                          */

static void check(int entry, Call *call, Opt *opt, int opt_required, lk_status st, int tags) {
    char msg[256];
    count_call(entry);
    if (st < LK_OK || st > LK_ERR_ALLOC) {
        snprintf(msg, sizeof msg, "status %d is not an LK_* value", st);
        fail(entry, msg);
    }
    if (hash_inputs(call, opt) != inputs_hash) fail(entry, "an input buffer or the options changed");
    const char *err = lk_last_error();
    if (!err) {
        fail(entry, "lk_last_error() is NULL");
        return;
    }
    if (opt_required && !opt->p && st != LK_ERR_NULL) fail(entry, "NULL opt is not LK_ERR_NULL");
    if (opt->p && !opt->size_ok && st != LK_ERR_OPTION) {
        snprintf(msg, sizeof msg, "opt->size = %u gives %s, not LK_ERR_OPTION", opt->o.size, lk_status_name(st));
        fail(entry, msg);
    }
    if (call->impossible && st == LK_OK) fail(entry, "a buffer size that overflows was accepted (LK_OK)");
    if (st != LK_OK) {
        if (err[0] == 0) fail(entry, "an error with an empty lk_last_error()");
        for (int i = 0; i < call->nb; i++) {
            Buf *b = &call->b[i];
            if (!b->out) continue;
            for (int64_t j = 0; j < b->elems; j++)
                if (!is_poison(b, j)) {
                    snprintf(msg, sizeof msg, "%s[%lld] written although the status is %s", b->name,
                             (long long)j, lk_status_name(st));
                    fail(entry, msg);
                }
        }
        return;
    }
    oks[entry]++;
    if (err[0] != 0) fail(entry, "success with a non-empty lk_last_error()");
    for (int i = 0; i < call->nb; i++) {
        Buf *b = &call->b[i];
        if (!b->out) continue;
        for (int64_t j = 0; j < b->elems; j++) {
            if (is_poison(b, j)) {
                snprintf(msg, sizeof msg, "%s[%lld] not written on success", b->name, (long long)j);
                fail(entry, msg);
            }
            double v;
            if (b->type == I32) {
                int32_t t = ((int32_t *)b->p)[j];
                if (t < -1 || t >= tags) {
                    snprintf(msg, sizeof msg, "%s[%lld] = %d is not a tag or -1", b->name, (long long)j, t);
                    fail(entry, msg);
                }
                continue;
            }
            v = b->type == F32 ? ((float *)b->p)[j]
                : b->type == BF16 ? bf16_value(((uint16_t *)b->p)[j]) : ((double *)b->p)[j];
            if (v != v) {
                if (call->nan_in) continue;
                if (call->inf_pair && !strcmp(b->name, "loss")) continue;
                snprintf(msg, sizeof msg, "%s[%lld] is NaN on success without a NaN input", b->name, (long long)j);
                fail(entry, msg);
            }
            /* +-INFINITY on success is allowed here: the header stores an output whose true value
             * exceeds the largest finite value of its type (FLT_MAX, DBL_MAX) as +-INFINITY. An
             * infinite loss where the true one is finite is caught for the fear-minus-hope
             * recipes on dense rows and lists (check_finite_losses); the exact-arithmetic suite
             * (bindings/python/tests/test_accuracy.py) covers values. */
            if (!strcmp(b->name, "marginals") && v == v && !(v >= 0 && v <= 1.0 + 1e-6)) {
                snprintf(msg, sizeof msg, "marginals[%lld] = %g outside [0, 1]", (long long)j, v);
                fail(entry, msg);
            }
        }
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Entry points                                                                               */

static void begin_call(Call *call, Reader *r) {
    memset(call, 0, sizeof *call);
    uint8_t b = u8(r);
    call->null_on = b >= 192;
    call->nulls = u8(r);
}

/* The losses that read costs (the header's conventions, "Costs"). */
static int reads_costs(const lk_options *o) {
    switch (o->loss) {
    case LK_LOSS_HINGE: case LK_LOSS_SOFTMAX_MARGIN: case LK_LOSS_RISK: case LK_LOSS_RAMP:
    case LK_LOSS_SOFT_RAMP: case LK_LOSS_INFINITE_RAMP: return 1;
    case LK_LOSS_HOPE_FEAR:
        return o->fear_scale != 0 || o->hope == LK_TERM_ORACLE ||
               ((o->hope == LK_TERM_MAX || o->hope == LK_TERM_LSE) && o->hope_scale != 0);
    default: return 0;
    }
}

/* A SUM or MEAN total is NaN without a NaN input exactly where the weighted losses include both
 * +inf and -inf (each beyond the type's range: the header calls that total undefined). Whether
 * they do: the same call again under LK_REDUCE_NONE, through `again` (losses into `out`). */
typedef lk_status (*AgainFn)(const lk_options *o, void *ctx, void *out);

static void note_inf_pair(Call *call, const Opt *opt, lk_status st, const void *loss, int type, int64_t n,
                          AgainFn again, void *ctx) {
    if (st != LK_OK || !loss || call->nan_in || n <= 0 || n > CAP_ELEMS) return;
    if (opt->o.reduction == LK_REDUCE_NONE) return;
    double total = type == F32 ? *(const float *)loss : *(const double *)loss;
    if (total == total) return;
    lk_options o = opt->o; /* LK_OK: the caller's struct held at least the published layout */
    o.reduction = LK_REDUCE_NONE;
    void *losses = calloc((size_t)n, esize(type));
    if (!losses) return;
    int pos = 0, neg = 0;
    if (again(&o, ctx, losses) == LK_OK)
        for (int64_t i = 0; i < n; i++) {
            double v = type == F32 ? ((float *)losses)[i] : ((double *)losses)[i];
            pos |= v == INFINITY;
            neg |= v == -INFINITY;
        }
    free(losses);
    call->inf_pair = pos && neg;
}

typedef struct {
    int type;
    int64_t n, k;
    const void *offsets, *scores, *gold, *cost, *weight;
} FlatArgs;

static lk_status dense_again(const lk_options *o, void *ctx, void *out) {
    const FlatArgs *a = ctx;
    return a->type == F32 ? lk_dense_f32(o, a->n, a->k, a->scores, a->gold, a->cost, a->weight, out, NULL)
                          : lk_dense_f64(o, a->n, a->k, a->scores, a->gold, a->cost, a->weight, out, NULL);
}

static lk_status lists_again(const lk_options *o, void *ctx, void *out) {
    const FlatArgs *a = ctx;
    return a->type == F32 ? lk_lists_f32(o, a->n, a->offsets, a->scores, a->gold, a->cost, a->weight, out, NULL)
                          : lk_lists_f64(o, a->n, a->offsets, a->scores, a->gold, a->cost, a->weight, out, NULL);
}

/* An infinite loss where the true one is finite. Each example's weighted F - H of a fear-minus-
 * hope recipe (DESIGN.md §1: log loss without smoothing, perceptron, hinge, softmax-margin, the
 * ramps, hope-fear) is computed again here in long double, whose range no sum of two doubles
 * leaves: where the library returned +-INFINITY on success for a loss below the type's largest
 * value (with a margin for rounding), an overflow inside the computation made a finite loss
 * infinite. Risk, the square losses and label smoothing are not modelled here. */
typedef struct {
    int kind; /* 0 gold, 1 oracle, 2 max, 3 log-sum-exp */
    long double scale;
} TermSpec;

static int terms_of(const lk_options *o, TermSpec *fear, TermSpec *hope) {
    *hope = (TermSpec){0, 0};
    switch (o->loss) {
    case LK_LOSS_LOG:
        if (o->label_smoothing != 0) return 0;
        *fear = (TermSpec){3, 0};
        return 1;
    case LK_LOSS_PERCEPTRON: *fear = (TermSpec){2, 0}; return 1;
    case LK_LOSS_HINGE: *fear = (TermSpec){2, 1}; return 1;
    case LK_LOSS_SOFTMAX_MARGIN: *fear = (TermSpec){3, 1}; return 1;
    case LK_LOSS_RAMP: *fear = (TermSpec){2, 1}; *hope = (TermSpec){2, 1}; return 1;
    case LK_LOSS_SOFT_RAMP: *fear = (TermSpec){3, 1}; *hope = (TermSpec){3, 1}; return 1;
    case LK_LOSS_INFINITE_RAMP: *fear = (TermSpec){2, 1}; *hope = (TermSpec){1, 0}; return 1;
    case LK_LOSS_HOPE_FEAR:
        *fear = (TermSpec){o->fear == LK_TERM_MAX ? 2 : 3, o->fear_scale};
        if (o->hope == LK_TERM_ORACLE) *hope = (TermSpec){1, 0};
        else if (o->hope == LK_TERM_MAX) *hope = (TermSpec){2, o->hope_scale};
        else if (o->hope == LK_TERM_LSE) *hope = (TermSpec){3, o->hope_scale};
        return 1;
    default: return 0;
    }
}

static long double ld_at(const void *p, int type, int64_t i) {
    return type == F32 ? (long double)((const float *)p)[i] : (long double)((const double *)p)[i];
}

/* A term over the m candidates s (masked: -inf), costs c (unscaled), v = s + sign w c. */
static long double term_value(TermSpec t, int sign, long double alpha, const long double *s, const long double *c,
                              int64_t m, int64_t gold, int64_t oracle) {
    if (t.kind == 0) return s[gold];
    if (t.kind == 1) return s[oracle];
    long double w = t.scale * alpha, best = -INFINITY;
    for (int64_t j = 0; j < m; j++)
        if (s[j] != -INFINITY) {
            long double v = w == 0 ? s[j] : s[j] + sign * w * c[j];
            if (v > best) best = v;
        }
    if (t.kind == 2 || best == -INFINITY) return best;
    long double sum = 0;
    for (int64_t j = 0; j < m; j++)
        if (s[j] != -INFINITY) sum += expl((w == 0 ? s[j] : s[j] + sign * w * c[j]) - best);
    return best + logl(sum);
}

/* Example i's candidates: m scores at s_at (type), unscaled costs (NULL: 0/1 against the gold),
 * gold (-1 on lists: the oracle), weight; `got` the library's loss of it. */
static void check_finite_example(int entry, const lk_options *o, int type, int64_t i, const void *scores,
                                 int64_t first, int64_t m, const void *cost, int64_t cost_first, int32_t gold,
                                 long double weight, long double got) {
    TermSpec fear = {0, 0}, hope = {0, 0};
    /* The log loss with label smoothing: lse(s) - s[g] + eps (s[g] - mean of the unmasked s). */
    int smoothed = o->loss == LK_LOSS_LOG && o->label_smoothing != 0;
    if (!isinf(got) || weight == 0 || m <= 0 || m > CAP_ELEMS || (!smoothed && !terms_of(o, &fear, &hope))) return;
    long double *s = malloc((size_t)m * sizeof *s), *c = malloc((size_t)m * sizeof *c);
    if (!s || !c) goto done;
    /* The costs are read only where the loss reads them (a term with a cost weight, the oracle,
     * or a list whose gold is -1: the oracle stands in for it), as the library does: otherwise
     * the buffer may be shorter than the scores. */
    int reads_costs = !smoothed && (fear.scale != 0 || hope.scale != 0 || hope.kind == 1 || gold < 0);
    int64_t oracle = -1;
    for (int64_t j = 0; j < m; j++) {
        s[j] = ld_at(scores, type, first + j);
        c[j] = cost && reads_costs ? ld_at(cost, type, cost_first + j) : (long double)(j != gold);
        if (s[j] != -INFINITY && (oracle < 0 || c[j] < c[oracle] || (c[j] == c[oracle] && s[j] > s[oracle])))
            oracle = j;
    }
    int64_t g = gold >= 0 ? gold : oracle;
    if (g < 0 || oracle < 0) goto done;
    /* Both terms relative to the largest score (which cancels in F - H): a scaled cost far
     * below the ulp of a huge score (1e5 next to 3.4e38) is not lost to rounding. */
    long double center = -INFINITY;
    for (int64_t j = 0; j < m; j++)
        if (s[j] > center) center = s[j];
    for (int64_t j = 0; j < m; j++)
        if (s[j] != -INFINITY) s[j] -= center;
    long double alpha = o->cost_scale;
    long double value;
    if (smoothed) {
        long double total = 0, mean = 0, unmasked = 0;
        for (int64_t j = 0; j < m; j++)
            if (s[j] != -INFINITY) { total += expl(s[j]); unmasked += 1; }
        for (int64_t j = 0; j < m; j++)
            if (s[j] != -INFINITY) mean += s[j] / unmasked;
        value = weight * (logl(total) - s[g] + (long double)o->label_smoothing * (s[g] - mean));
    } else {
        long double f = term_value(fear, 1, alpha, s, c, m, g, oracle), h = term_value(hope, -1, alpha, s, c, m, g, oracle);
        /* Terms that cancel beyond long double's 64 bits (scores plus costs near FLT_MAX, whose
         * difference is a few units): the model cannot tell the loss, so it says nothing. */
        if (fabsl(f - h) < fmaxl(fabsl(f), fabsl(h)) * 0x1p-56L) goto done;
        value = weight * (f - h);
    }
    long double largest = type == F32 ? FLT_MAX : DBL_MAX;
    if (isfinite(value) && fabsl(value) < largest * (1 - 0x1p-20L)) {
        char msg[256];
        snprintf(msg, sizeof msg, "loss[%lld] = %s on success, where the loss is %Lg", (long long)i,
                 got > 0 ? "INFINITY" : "-INFINITY", value);
        fail(entry, msg);
    }
done:
    free(s);
    free(c);
}

static void check_finite_losses(int entry, const Call *call, const Opt *opt, lk_status st, int type, int64_t n,
                                int64_t k, const int64_t *offsets, const void *scores, const int32_t *gold,
                                const void *cost, const void *weight, const void *loss) {
    const lk_options *o = &opt->o;
    if (st != LK_OK || !loss || !scores || !gold || call->nan_in || o->reduction != LK_REDUCE_NONE || n <= 0 ||
        n > CAP_ELEMS || o->z_loss != 0 || o->softcap != 0) /* the shaped losses are not modelled */
        return;
    for (int64_t i = 0; i < n; i++) {
        long double w = weight ? ld_at(weight, type, i) : 1;
        long double got = ld_at(loss, type, i);
        if (offsets) {
            check_finite_example(entry, o, type, i, scores, offsets[i], offsets[i + 1] - offsets[i], cost, offsets[i],
                                 gold[i], w, got);
        } else if (gold[i] != o->ignore_label) {
            int32_t layout = o->cost_layout;
            const void *row_cost = layout == LK_COST_ZERO_ONE ? NULL : cost;
            int64_t cost_first = layout == LK_COST_CLASS_MATRIX ? (int64_t)gold[i] * k : i * k;
            check_finite_example(entry, o, type, i, scores, i * k, k, row_cost, cost_first, gold[i], w, got);
        }
    }
}

/* hessian: lk_dense_hessian_* with the same inputs and one more output. */
static void run_dense(Reader *r, int type, int hessian) {
    int entry = hessian ? (type == F32 ? E_DENSE_HESSIAN32 : E_DENSE_HESSIAN64) : (type == F32 ? E_DENSE32 : E_DENSE64);
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    int64_t n = size_arg(r, 6), k = size_arg(r, 7);
    int64_t rows = n > 0 ? n : 0; /* nothing is read with n <= 0 */
    int32_t layout = opt.o.cost_layout;
    int nonzero = n != 0;
    if (n < 0 || (n > 0 && k < 1)) call.impossible = 1;
    void *scores = buf(&call, nonzero ? cnt2(type, n, k) : (Count){0, 0}, type, 0, "scores");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    Count cc = layout == LK_COST_PER_EXAMPLE ? cnt2(type, rows, k)
             : layout == LK_COST_CLASS_MATRIX && nonzero ? cnt2(type, k, k) : (Count){0, 0};
    /* A loss that reads no costs does not read the k*k matrix, whatever its size. */
    if (cc.bad && !(opt.p && reads_costs(&opt.o))) cc = (Count){SMALL_ELEMS, 0};
    void *cost = buf(&call, cc, type, 0, "cost");
    void *weight = buf(&call, cnt1(type, rows), type, 0, "weight");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), type, 1, "loss");
    void *grad = buf(&call, nonzero ? cnt2(type, n, k) : (Count){0, 0}, type, 1, "grad");
    void *hess = hessian ? buf(&call, nonzero ? cnt2(type, n, k) : (Count){0, 0}, type, 1, "hess") : NULL;
    if (call.skip && !call.impossible) { /* an impossible size must fail before any read */
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, scores, type, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, cost, type, 0);
    fill_values(&call, r, weight, type, 1);
    size_args(&call, 2, (const char *[]){"n", "k"}, (int64_t[]){n, k});
    before_call(entry, &call, &opt);
    lk_status st =
        hessian ? (type == F32 ? lk_dense_hessian_f32(opt.p, n, k, scores, gold, cost, weight, loss, grad, hess)
                               : lk_dense_hessian_f64(opt.p, n, k, scores, gold, cost, weight, loss, grad, hess))
        : type == F32 ? lk_dense_f32(opt.p, n, k, scores, gold, cost, weight, loss, grad)
                      : lk_dense_f64(opt.p, n, k, scores, gold, cost, weight, loss, grad);
    FlatArgs args = {type, n, k, NULL, scores, gold, cost, weight};
    note_inf_pair(&call, &opt, st, loss, type, n, dense_again, &args);
    check(entry, &call, &opt, 1, st, 0);
    check_finite_losses(entry, &call, &opt, st, type, n, k, NULL, scores, gold, cost, weight, loss);
done:
    free_call(&call);
    free(opt.p);
}

/* On success, each bfloat16 gradient entry must be its float twin rounded to nearest even (a NaN
 * stays a NaN), when both were asked for. */
static void check_narrowed(int entry, lk_status st, const uint16_t *b16, const float *f32, int64_t m, const char *name) {
    if (st != LK_OK || !b16 || !f32) return;
    for (int64_t i = 0; i < m; i++)
        if (b16[i] != bf16_bits(f32[i]) && !(f32[i] != f32[i] && bf16_value(b16[i]) != bf16_value(b16[i]))) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s[%lld] = 0x%04x is not %s_f32's %.9g rounded to bfloat16 (0x%04x)", name,
                     (long long)i, b16[i], name, f32[i], bf16_bits(f32[i]));
            fail(entry, msg);
        }
}

/* lk_dense_bf16: lk_dense_f32's inputs with the scores in bfloat16, and a bfloat16 gradient beside
 * the float one. The header makes it lk_dense_f32 on the widened scores: the infinite-loss and
 * inf-pair checks run on those, and on success each bfloat16 gradient entry must be the float
 * one rounded to nearest even (when both are asked for). */
static void run_dense_bf16(Reader *r) {
    int entry = E_DENSE_BF16;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    int64_t n = size_arg(r, 6), k = size_arg(r, 7);
    int64_t rows = n > 0 ? n : 0;
    int32_t layout = opt.o.cost_layout;
    int nonzero = n != 0;
    if (n < 0 || (n > 0 && k < 1)) call.impossible = 1;
    /* The byte sizes are lk_dense_f32's (n*k*4 for the scores too). */
    Count sc = nonzero ? cnt2(F32, n, k) : (Count){0, 0};
    uint16_t *scores = buf(&call, sc, BF16, 0, "scores");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    Count cc = layout == LK_COST_PER_EXAMPLE ? cnt2(F32, rows, k)
             : layout == LK_COST_CLASS_MATRIX && nonzero ? cnt2(F32, k, k) : (Count){0, 0};
    if (cc.bad && !(opt.p && reads_costs(&opt.o))) cc = (Count){SMALL_ELEMS, 0};
    float *cost = buf(&call, cc, F32, 0, "cost");
    float *weight = buf(&call, cnt1(F32, rows), F32, 0, "weight");
    float *loss = buf(&call, cnt1(F32, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), F32, 1, "loss");
    uint16_t *grad = buf(&call, sc, BF16, 1, "grad");
    float *grad_f32 = buf(&call, sc, F32, 1, "grad_f32");
    if (call.skip && !call.impossible) {
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, scores, BF16, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, cost, F32, 0);
    fill_values(&call, r, weight, F32, 1);
    size_args(&call, 2, (const char *[]){"n", "k"}, (int64_t[]){n, k});
    before_call(entry, &call, &opt);
    lk_status st = lk_dense_bf16(opt.p, n, k, scores, gold, cost, weight, loss, grad, grad_f32);
    int64_t m = elems_of(&call, scores);
    float *wide = malloc((size_t)(m > 0 ? m : 1) * sizeof(float));
    if (!wide) abort();
    for (int64_t i = 0; i < m; i++) wide[i] = bf16_value(scores[i]);
    FlatArgs args = {F32, n, k, NULL, scores ? wide : NULL, gold, cost, weight};
    note_inf_pair(&call, &opt, st, loss, F32, n, dense_again, &args);
    check(entry, &call, &opt, 1, st, 0);
    check_finite_losses(entry, &call, &opt, st, F32, n, k, NULL, scores ? wide : NULL, gold, cost, weight, loss);
    check_narrowed(entry, st, grad, grad_f32, elems_of(&call, grad), "grad");
    free(wide);
done:
    free_call(&call);
    free(opt.p);
}

/* hessian: lk_lists_hessian_* with the same inputs and one more output. */
static void run_lists(Reader *r, int type, int hessian) {
    int entry = hessian ? (type == F32 ? E_LISTS_HESSIAN32 : E_LISTS_HESSIAN64) : (type == F32 ? E_LISTS32 : E_LISTS64);
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    int64_t n = size_arg(r, 6);
    int64_t lists = n > 0 ? n : 0;
    Count oc = n <= 0 ? (Count){0, 0} : n == INT64_MAX ? (Count){0, 1} : cnt1(I64, n + 1);
    int64_t *offsets = buf(&call, oc, I64, 0, "offsets");
    if (n < 0 || (!offsets && n > 0)) call.impossible = 1; /* a size error, or a NULL offsets */
    /* The offsets: list lengths 0..6, then perhaps one corruption. */
    int64_t total = 0, m = call.nb ? call.b[0].elems : 0;
    int bad_offsets = 0;
    if (offsets && m > 0) {
        offsets[0] = 0;
        for (int64_t i = 1; i < m; i++) offsets[i] = offsets[i - 1] + u8(r) % 7;
        uint8_t c = u8(r);
        if (c >= 208) {
            static const int64_t odd[] = {-1, 1, INT64_MAX, (int64_t)1 << 62, (int64_t)1 << 61,
                                          INT64_MIN, (int64_t)1 << 32, -((int64_t)1 << 62)};
            offsets[c % m] = odd[(c >> 3) % 8];
        }
        for (int64_t i = 1; i < m; i++)
            if (offsets[i] < offsets[i - 1]) bad_offsets = 1;
        if (offsets[0] != 0) bad_offsets = 1;
        total = offsets[m - 1];
    }
    Count tc = bad_offsets ? (Count){0, 1} : cnt1(type, total);
    if (bad_offsets) call.impossible = 1;
    void *scores = buf(&call, tc, type, 0, "scores");
    int32_t *gold = buf(&call, cnt1(I32, lists), I32, 0, "gold");
    void *cost = buf(&call, tc, type, 0, "cost");
    void *weight = buf(&call, cnt1(type, lists), type, 0, "weight");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? lists : 1), type, 1, "loss");
    void *grad = buf(&call, tc, type, 1, "grad");
    void *hess = hessian ? buf(&call, tc, type, 1, "hess") : NULL;
    /* The offsets are read to find the total: when they are too many to allocate, nothing
     * can be inferred from the few that were, and the call is skipped. */
    int offsets_shrunk = !oc.bad && oc.elems > CAP_ELEMS;
    if (call.skip && (!call.impossible || offsets_shrunk)) {
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, scores, type, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) {
            int64_t len = offsets && !bad_offsets && i + 1 < m ? offsets[i + 1] - offsets[i] : 1;
            gold[i] = label(r, len, -1);
        }
    fill_values(&call, r, cost, type, 0);
    fill_values(&call, r, weight, type, 1);
    size_args(&call, 1, (const char *[]){"n"}, (int64_t[]){n});
    before_call(entry, &call, &opt);
    lk_status st =
        hessian ? (type == F32 ? lk_lists_hessian_f32(opt.p, n, offsets, scores, gold, cost, weight, loss, grad, hess)
                               : lk_lists_hessian_f64(opt.p, n, offsets, scores, gold, cost, weight, loss, grad, hess))
        : type == F32 ? lk_lists_f32(opt.p, n, offsets, scores, gold, cost, weight, loss, grad)
                      : lk_lists_f64(opt.p, n, offsets, scores, gold, cost, weight, loss, grad);
    FlatArgs args = {type, n, 0, offsets, scores, gold, cost, weight};
    note_inf_pair(&call, &opt, st, loss, type, n, lists_again, &args);
    check(entry, &call, &opt, 1, st, 0);
    check_finite_losses(entry, &call, &opt, st, type, n, 0, offsets, scores, gold, cost, weight, loss);
done:
    free_call(&call);
    free(opt.p);
}

/* The three chain entry points share their inputs. */
typedef struct {
    int64_t n, t_max, tags, seqs;
    int lengths_shrunk;
    void *emissions, *transitions, *start, *end;
    int32_t *lengths;
} ChainIn;

static void chain_inputs(Reader *r, Call *call, ChainIn *c, int type) {
    c->n = size_arg(r, 4);
    c->t_max = size_arg(r, 6);
    c->tags = size_arg(r, 5);
    c->seqs = c->n > 0 ? c->n : 0;
    int read = c->n > 0;
    c->emissions = buf(call, read ? cnt3(type, c->n, c->t_max, c->tags) : (Count){0, 0}, type, 0, "emissions");
    c->transitions = buf(call, read ? cnt2(type, c->tags, c->tags) : (Count){0, 0}, type, 0, "transitions");
    c->start = buf(call, read ? cnt1(type, c->tags) : (Count){0, 0}, type, 0, "start");
    c->end = buf(call, read ? cnt1(type, c->tags) : (Count){0, 0}, type, 0, "end");
    Count lc = cnt1(I32, c->seqs);
    c->lengths = buf(call, lc, I32, 0, "lengths");
    /* The lengths are read with the sizes: when they are too many to allocate, the call is
     * skipped even if another size is impossible (that one may legitimately be found later). */
    c->lengths_shrunk = !lc.bad && lc.elems > CAP_ELEMS;
    /* Negative sizes are errors whatever n is. */
    if (c->n < 0 || c->t_max < 0 || c->tags < 0 || (c->n > 0 && c->tags == 0)) call->impossible = 1;
}

static void chain_fill(Reader *r, Call *call, ChainIn *c, int type) {
    fill_values(call, r, c->emissions, type, 0);
    fill_values(call, r, c->transitions, type, 0);
    fill_values(call, r, c->start, type, 0);
    fill_values(call, r, c->end, type, 0);
    if (c->lengths) {
        int64_t range = c->t_max + 1;
        for (int64_t i = 0; i < elems_of(call, c->lengths); i++) {
            uint8_t b = u8(r);
            c->lengths[i] = b < 232 ? (int32_t)(range > 0 ? (int64_t)b % (range < 232 ? range : 232) : 0)
                                    : label(r, range, -1);
        }
    }
}

static void run_chain(Reader *r, int type) {
    int entry = type == F32 ? E_CHAIN32 : E_CHAIN64;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    ChainIn c;
    chain_inputs(r, &call, &c, type);
    int read = c.n > 0;
    int32_t *gold = buf(&call, read ? cnt2(I32, c.n, c.t_max) : (Count){0, 0}, I32, 0, "gold");
    void *cost = buf(&call, read ? cnt3(type, c.n, c.t_max, c.tags) : (Count){0, 0}, type, 0, "cost");
    void *weight = buf(&call, cnt1(type, c.seqs), type, 0, "weight");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? c.seqs : 1), type, 1, "loss");
    void *d_em = buf(&call, read ? cnt3(type, c.n, c.t_max, c.tags) : (Count){0, 0}, type, 1, "d_emissions");
    void *d_tr = buf(&call, cnt2(type, c.tags, c.tags), type, 1, "d_transitions");
    void *d_st = buf(&call, cnt1(type, c.tags), type, 1, "d_start");
    void *d_en = buf(&call, cnt1(type, c.tags), type, 1, "d_end");
    if (call.skip && (!call.impossible || c.lengths_shrunk)) { /* an impossible size must fail before any read */
        skipped[entry]++;
        goto done;
    }
    chain_fill(r, &call, &c, type);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, c.tags, -1);
    fill_values(&call, r, cost, type, 0);
    fill_values(&call, r, weight, type, 1);
    size_args(&call, 3, (const char *[]){"n", "t_max", "tags"}, (int64_t[]){c.n, c.t_max, c.tags});
    before_call(entry, &call, &opt);
    lk_status st = type == F32
        ? lk_chain_f32(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions, c.start, c.end, c.lengths,
                       gold, cost, weight, loss, d_em, d_tr, d_st, d_en)
        : lk_chain_f64(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions, c.start, c.end, c.lengths,
                       gold, cost, weight, loss, d_em, d_tr, d_st, d_en);
    check(entry, &call, &opt, 1, st, 0);
done:
    free_call(&call);
    free(opt.p);
}

/* Viterbi paths: -1 exactly at positions >= length. */
static void check_paths(int entry, const ChainIn *c, const int32_t *path) {
    if (!path) return;
    for (int64_t i = 0; i < c->seqs; i++)
        for (int64_t t = 0; t < c->t_max; t++) {
            int32_t y = path[i * c->t_max + t];
            if ((t >= c->lengths[i]) != (y == -1)) {
                /* A NaN input makes the whole path -1. */
                if (y == -1) continue;
                fail(entry, "a path entry past the length is not -1");
            }
        }
}

static void run_decode(Reader *r, int type, int marginals) {
    int entry = marginals ? (type == F32 ? E_MARGINALS32 : E_MARGINALS64) : (type == F32 ? E_VITERBI32 : E_VITERBI64);
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    ChainIn c;
    chain_inputs(r, &call, &c, type);
    int read = c.n > 0;
    void *out = marginals
        ? buf(&call, read ? cnt3(type, c.n, c.t_max, c.tags) : (Count){0, 0}, type, 1, "marginals")
        : buf(&call, read ? cnt2(I32, c.n, c.t_max) : (Count){0, 0}, I32, 1, "path");
    void *per_seq = buf(&call, cnt1(type, c.seqs), type, 1, marginals ? "log_z" : "score");
    if (call.skip && (!call.impossible || c.lengths_shrunk)) { /* an impossible size must fail before any read */
        skipped[entry]++;
        goto done;
    }
    chain_fill(r, &call, &c, type);
    size_args(&call, 3, (const char *[]){"n", "t_max", "tags"}, (int64_t[]){c.n, c.t_max, c.tags});
    before_call(entry, &call, &opt);
    lk_status st;
    if (marginals)
        st = type == F32 ? lk_chain_marginals_f32(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions,
                                                  c.start, c.end, c.lengths, out, per_seq)
                         : lk_chain_marginals_f64(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions,
                                                  c.start, c.end, c.lengths, out, per_seq);
    else
        st = type == F32 ? lk_chain_viterbi_f32(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions,
                                                c.start, c.end, c.lengths, out, per_seq)
                         : lk_chain_viterbi_f64(opt.p, c.n, c.t_max, c.tags, c.emissions, c.transitions,
                                                c.start, c.end, c.lengths, out, per_seq);
    check(entry, &call, &opt, 0, st, c.tags > INT32_MAX ? INT32_MAX : (int)c.tags);
    if (st == LK_OK && !marginals) check_paths(entry, &c, out);
done:
    free_call(&call);
    free(opt.p);
}

static void run_lsoftmax(Reader *r, int type) {
    int entry = type == F32 ? E_LSOFTMAX32 : E_LSOFTMAX64;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    int64_t n = size_arg(r, 5), d = size_arg(r, 5), k = size_arg(r, 5);
    int64_t rows = n > 0 ? n : 0;
    int read = n > 0;
    void *x = buf(&call, read ? cnt2(type, n, d) : (Count){0, 0}, type, 0, "x");
    void *w = buf(&call, read ? cnt2(type, k, d) : (Count){0, 0}, type, 0, "w");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    void *weight = buf(&call, cnt1(type, rows), type, 0, "weight");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), type, 1, "loss");
    void *d_x = buf(&call, read ? cnt2(type, n, d) : (Count){0, 0}, type, 1, "d_x");
    void *d_w = buf(&call, cnt2(type, k, d), type, 1, "d_w");
    if (n < 0 || d < 0 || k < 0 || (n > 0 && (d == 0 || k == 0))) call.impossible = 1;
    /* Products of more than LSOFTMAX_WORK_CAP multiply-adds are skipped like buffers beyond
     * CAP_ELEMS: under ASan and comparison tracing, n = k = 2^14 at d = 1 took seconds a call,
     * most of a long run's time, and a smaller product runs the same tiles (and splits over
     * threads from 2^17 elements). */
    if (!call.impossible && n > 0 && (double)n * (double)d * (double)k > LSOFTMAX_WORK_CAP) call.skip = 1;
    if (call.skip && !call.impossible) { /* an impossible size must fail before any read */
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, x, type, 0);
    fill_values(&call, r, w, type, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, weight, type, 1);
    size_args(&call, 3, (const char *[]){"n", "d", "k"}, (int64_t[]){n, d, k});
    before_call(entry, &call, &opt);
    lk_status st = type == F32 ? lk_lsoftmax_f32(opt.p, n, d, k, x, w, gold, weight, loss, d_x, d_w)
                               : lk_lsoftmax_f64(opt.p, n, d, k, x, w, gold, weight, loss, d_x, d_w);
    check(entry, &call, &opt, 1, st, 0);
done:
    free_call(&call);
    free(opt.p);
}

static void run_small(Reader *r, int entry) {
    dump_opt = NULL;
    dump_call = NULL;
    count_call(entry);
    oks[entry]++;
    if (entry == E_VERSION) {
        const char *v = lk_version(), *level = lk_cpu_level();
        if (!v || strlen(v) > 64) fail(entry, "lk_version");
        if (lk_version_number() != LK_VERSION_NUMBER) fail(entry, "lk_version_number");
        if (!level || (strcmp(level, "x86-64") && strcmp(level, "avx2") && strcmp(level, "avx512")))
            fail(entry, "lk_cpu_level");
    } else if (entry == E_STATUS_NAME) {
        uint32_t bits = 0;
        for (int i = 0; i < 4; i++) bits |= (uint32_t)u8(r) << (8 * i);
        int32_t s = (int32_t)bits;
        const char *name = lk_status_name(s);
        if (!name || strncmp(name, "LK_", 3) || strlen(name) > 32) fail(entry, "lk_status_name");
        if (name && (s < 0 || s > LK_ERR_ALLOC) && strcmp(name, "LK_ERR_UNKNOWN")) fail(entry, "unknown status named");
    } else if (entry == E_LAST_ERROR) {
        const char *e = lk_last_error();
        if (!e || strlen(e) > 4096) fail(entry, "lk_last_error");
    } else {
        int32_t loss = enum_value(r, 0, 14);
        int null = u8(r) >= 240;
        lk_options *o = null ? NULL : malloc(sizeof *o);
        if (o) memset(o, 0xa5, sizeof *o);
        lk_status st = lk_options_init(o, loss);
        if (null) {
            if (st != LK_ERR_NULL) fail(entry, "NULL opt is not LK_ERR_NULL");
        } else if (loss >= 1 && loss <= 13) {
            if (st != LK_OK || o->size != sizeof *o || o->loss != loss || lk_last_error()[0])
                fail(entry, "a valid loss not initialised");
        } else {
            unsigned char poisoned[sizeof(lk_options)];
            memset(poisoned, 0xa5, sizeof poisoned);
            if (st != LK_ERR_OPTION || memcmp(o, poisoned, sizeof poisoned) || !lk_last_error()[0])
                fail(entry, "an unknown loss not refused, or opt written");
        }
        free(o);
    }
}

/* lk_linear_*: the shapes of L-Softmax, the options of dense rows (the loss read), a bias and
 * costs per the layout. */
static void run_linear(Reader *r, int type) {
    int entry = type == F32 ? E_LINEAR32 : E_LINEAR64;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    int64_t n = size_arg(r, 5), d = size_arg(r, 5), k = size_arg(r, 5);
    int64_t rows = n > 0 ? n : 0;
    int read = n > 0;
    int32_t layout = opt.o.cost_layout;
    void *x = buf(&call, read ? cnt2(type, n, d) : (Count){0, 0}, type, 0, "x");
    void *w = buf(&call, read ? cnt2(type, k, d) : (Count){0, 0}, type, 0, "w");
    void *bias = buf(&call, cnt1(type, k > 0 ? k : 0), type, 0, "bias");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    Count cc = layout == LK_COST_PER_EXAMPLE ? cnt2(type, rows, k)
             : layout == LK_COST_CLASS_MATRIX && read ? cnt2(type, k, k) : (Count){0, 0};
    if (cc.bad && !(opt.p && reads_costs(&opt.o))) cc = (Count){SMALL_ELEMS, 0};
    void *cost = buf(&call, cc, type, 0, "cost");
    void *weight = buf(&call, cnt1(type, rows), type, 0, "weight");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), type, 1, "loss");
    void *d_x = buf(&call, read ? cnt2(type, n, d) : (Count){0, 0}, type, 1, "d_x");
    void *d_w = buf(&call, cnt2(type, k, d), type, 1, "d_w");
    void *d_b = buf(&call, cnt1(type, k > 0 ? k : 0), type, 1, "d_b");
    if (n < 0 || d < 0 || k < 0 || (n > 0 && (d == 0 || k == 0))) call.impossible = 1;
    /* four products of n * d * k: capped as for L-Softmax */
    if (!call.impossible && n > 0 && (double)n * (double)d * (double)k > LSOFTMAX_WORK_CAP) call.skip = 1;
    if (call.skip && !call.impossible) {
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, x, type, 0);
    fill_values(&call, r, w, type, 0);
    fill_values(&call, r, bias, type, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, cost, type, 0);
    fill_values(&call, r, weight, type, 1);
    size_args(&call, 3, (const char *[]){"n", "d", "k"}, (int64_t[]){n, d, k});
    before_call(entry, &call, &opt);
    lk_status st = type == F32 ? lk_linear_f32(opt.p, n, d, k, x, w, bias, gold, cost, weight, loss, d_x, d_w, d_b)
                               : lk_linear_f64(opt.p, n, d, k, x, w, bias, gold, cost, weight, loss, d_x, d_w, d_b);
    check(entry, &call, &opt, 1, st, 0);
done:
    free_call(&call);
    free(opt.p);
}

/* lk_linear_bf16: lk_linear_f32's inputs with x and w in bfloat16, d_x and d_w in bfloat16 beside
 * their float twins (each pointer may be NULL). */
static void run_linear_bf16(Reader *r) {
    int entry = E_LINEAR_BF16;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    call.shifted_nulls = 1; /* d_w, d_b, d_x_f32, d_w_f32 take cost's, weight's, loss's, d_x's bits */
    int64_t n = size_arg(r, 5), d = size_arg(r, 5), k = size_arg(r, 5);
    int64_t rows = n > 0 ? n : 0;
    int read = n > 0;
    int32_t layout = opt.o.cost_layout;
    /* The byte sizes are lk_linear_f32's (4 bytes an element for x and w too). */
    Count xc = read ? cnt2(F32, n, d) : (Count){0, 0}, wc = read ? cnt2(F32, k, d) : (Count){0, 0};
    uint16_t *x = buf(&call, xc, BF16, 0, "x");
    uint16_t *w = buf(&call, wc, BF16, 0, "w");
    float *bias = buf(&call, cnt1(F32, k > 0 ? k : 0), F32, 0, "bias");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    Count cc = layout == LK_COST_PER_EXAMPLE ? cnt2(F32, rows, k)
             : layout == LK_COST_CLASS_MATRIX && read ? cnt2(F32, k, k) : (Count){0, 0};
    if (cc.bad && !(opt.p && reads_costs(&opt.o))) cc = (Count){SMALL_ELEMS, 0};
    float *cost = buf(&call, cc, F32, 0, "cost");
    float *weight = buf(&call, cnt1(F32, rows), F32, 0, "weight");
    float *loss = buf(&call, cnt1(F32, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), F32, 1, "loss");
    uint16_t *d_x = buf(&call, xc, BF16, 1, "d_x");
    uint16_t *d_w = buf(&call, cnt2(F32, k, d), BF16, 1, "d_w");
    float *d_b = buf(&call, cnt1(F32, k > 0 ? k : 0), F32, 1, "d_b");
    float *d_x_f32 = buf(&call, xc, F32, 1, "d_x_f32");
    float *d_w_f32 = buf(&call, cnt2(F32, k, d), F32, 1, "d_w_f32");
    if (n < 0 || d < 0 || k < 0 || (n > 0 && (d == 0 || k == 0))) call.impossible = 1;
    if (!call.impossible && n > 0 && (double)n * (double)d * (double)k > LSOFTMAX_WORK_CAP) call.skip = 1;
    if (call.skip && !call.impossible) {
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, x, BF16, 0);
    fill_values(&call, r, w, BF16, 0);
    fill_values(&call, r, bias, F32, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, cost, F32, 0);
    fill_values(&call, r, weight, F32, 1);
    size_args(&call, 3, (const char *[]){"n", "d", "k"}, (int64_t[]){n, d, k});
    before_call(entry, &call, &opt);
    lk_status st = lk_linear_bf16(opt.p, n, d, k, x, w, bias, gold, cost, weight, loss, d_x, d_w, d_b, d_x_f32,
                                  d_w_f32);
    check(entry, &call, &opt, 1, st, 0);
    check_narrowed(entry, st, d_x, d_x_f32, elems_of(&call, d_x), "d_x");
    check_narrowed(entry, st, d_w, d_w_f32, elems_of(&call, d_w), "d_w");
done:
    free_call(&call);
    free(opt.p);
}

/* lk_vocab_dense_*: the options of dense rows, a phase (0 and 4 are invalid), n, k and a shard
 * [k_offset, k_offset + k_local) of any size. The reduced statistics a phase reads are either
 * bytes of the input (any values: the phase must refuse what phases 1 and 2 cannot produce, and
 * never crash or give NaN from them) or, with the mode's bit 3, the library's own phases 1 and 2
 * on the same arguments (as if this process were the only one), to reach the computing pass. */
typedef struct {
    int type;
    int64_t n, k, k_offset, k_local;
    const void *scores, *cost, *weight;
    const int32_t *gold;
    double *maxima, *sums, *argmax;
} VocabArgs;

/* Phase 3 again under the options given (LK_REDUCE_NONE): note_inf_pair's second look. */
static lk_status vocab_again(const lk_options *o, void *ctx, void *out) {
    const VocabArgs *a = ctx;
    return a->type == F32 ? lk_vocab_dense_f32(o, 3, a->n, a->k, a->k_offset, a->k_local, a->scores, a->gold,
                                               a->cost, a->weight, a->maxima, a->sums, a->argmax, out, NULL)
                          : lk_vocab_dense_f64(o, 3, a->n, a->k, a->k_offset, a->k_local, a->scores, a->gold,
                                               a->cost, a->weight, a->maxima, a->sums, a->argmax, out, NULL);
}

static void run_vocab(Reader *r, int type) {
    int entry = type == F32 ? E_VOCAB32 : E_VOCAB64;
    Opt opt;
    options(r, &opt, 1);
    Call call;
    begin_call(&call, r);
    uint8_t mode = u8(r);
    int32_t phase = mode % 5;
    int genuine = (mode >> 3) & 1;
    int64_t n = size_arg(r, 5), k = size_arg(r, 7), k_offset = size_arg(r, 4), k_local = size_arg(r, 7);
    int64_t rows = n > 0 ? n : 0;
    int nonzero = n != 0;
    int32_t layout = opt.o.cost_layout;
    if (n < 0 || k < 0 || k_offset < 0 || k_local < 0 || k_offset > k || k_local > k - k_offset || (n > 0 && k < 1))
        call.impossible = 1;
    int64_t columns = k_local > 0 ? k_local : 0;
    void *scores = buf(&call, nonzero ? cnt2(type, n, columns) : (Count){0, 0}, type, 0, "scores");
    int32_t *gold = buf(&call, cnt1(I32, rows), I32, 0, "gold");
    Count cc = layout == LK_COST_PER_EXAMPLE ? cnt2(type, rows, columns)
             : layout == LK_COST_CLASS_MATRIX && nonzero ? cnt2(type, k > 0 ? k : 0, columns) : (Count){0, 0};
    if (cc.bad && !(opt.p && reads_costs(&opt.o))) cc = (Count){SMALL_ELEMS, 0};
    void *cost = buf(&call, cc, type, 0, "cost");
    void *weight = buf(&call, cnt1(type, rows), type, 0, "weight");
    double *maxima = buf(&call, cnt2(F64, rows, LK_VOCAB_MAXIMA), F64, phase == 1, "maxima");
    double *sums = buf(&call, cnt2(F64, rows, LK_VOCAB_SUMS), F64, phase == 2, "sums");
    /* argmax: written (phase 2) and read (phase 3) by a max fear only, else left alone */
    int max_fear = opt.p && (opt.o.loss == LK_LOSS_PERCEPTRON || opt.o.loss == LK_LOSS_HINGE ||
                             (opt.o.loss == LK_LOSS_HOPE_FEAR && opt.o.fear == LK_TERM_MAX));
    double *argmax = buf(&call, cnt1(F64, rows), F64, phase == 2 && max_fear, "argmax");
    void *loss = buf(&call, cnt1(type, opt.o.reduction == LK_REDUCE_NONE ? rows : 1), type, phase == 3, "loss");
    void *grad = buf(&call, nonzero ? cnt2(type, n, columns) : (Count){0, 0}, type, phase == 3, "grad");
    if (call.skip && !call.impossible) {
        skipped[entry]++;
        goto done;
    }
    fill_values(&call, r, scores, type, 0);
    for (int64_t i = 0; i < elems_of(&call, gold); i++) gold[i] = label(r, k, opt.o.ignore_label);
    fill_values(&call, r, cost, type, 0);
    fill_values(&call, r, weight, type, 1);
#define VOCAB_CALL(ph, mx, sm, am, lo, gr)                                                                   \
    (type == F32 ? lk_vocab_dense_f32(opt.p, ph, n, k, k_offset, k_local, scores, gold, cost, weight, mx, sm, am, \
                                      lo, gr)                                                               \
                 : lk_vocab_dense_f64(opt.p, ph, n, k, k_offset, k_local, scores, gold, cost, weight, mx, sm, am, \
                                      lo, gr))
    if (genuine && phase >= 2 && !call.impossible) {
        if (VOCAB_CALL(1, maxima, NULL, NULL, NULL, NULL) == LK_OK && phase == 3)
            (void)VOCAB_CALL(2, maxima, sums, argmax, NULL, NULL);
    } else {
        if (phase >= 2) fill_values(&call, r, maxima, F64, 0);
        if (phase >= 3) {
            fill_values(&call, r, sums, F64, 0);
            fill_values(&call, r, argmax, F64, 0);
        }
    }
    /* A flag of 1 (reduced with MAX) says a NaN score is in some process's columns. */
    if (phase >= 2 && maxima)
        for (int64_t i = 0; i < elems_of(&call, maxima) / LK_VOCAB_MAXIMA; i++)
            if (maxima[i * LK_VOCAB_MAXIMA + 2] == 1) call.nan_in = 1;
    size_args(&call, 4, (const char *[]){"n", "k", "k_offset", "k_local"}, (int64_t[]){n, k, k_offset, k_local});
    before_call(entry, &call, &opt);
    lk_status st = VOCAB_CALL(phase, maxima, sums, argmax, loss, grad);
#undef VOCAB_CALL
    if (phase == 3) {
        /* A NaN total is right where the rows' losses are +inf and -inf (beyond the range). */
        VocabArgs args = {type, n, k, k_offset, k_local, scores, cost, weight, gold, maxima, sums, argmax};
        note_inf_pair(&call, &opt, st, loss, type, n, vocab_again, &args);
    }
    check(entry, &call, &opt, 1, st, 0);
done:
    free_call(&call);
    free(opt.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    current_input = data;
    current_size = size;
    Reader r = {data, size};
    uint8_t first = u8(&r);
    uint8_t b = first % 64;
    int entry = b < 4 ? b : 4 + (b - 4) % 12;
    /* The first byte's top bit turns dense and lists into their Hessian entry points (the
     * same inputs and one more output), L-Softmax into the fused linear layer + loss (its
     * shapes, then a bias and costs), and chain marginals into vocabulary-parallel dense rows;
     * the seeds of the other entry points keep their call. dense_f32's bytes 28, 40 and 52 (mod
     * 64; no older seed has them) are bfloat16 dense rows, and the fused linear layer's (L-Softmax
     * f32's with the top bit) 154, 166, 178 and 190 are the bfloat16 one. */
    int hessian = first >= 128;
    switch (entry) {
    case E_DENSE32: if (b >= 28) run_dense_bf16(&r); else run_dense(&r, F32, hessian); break;
    case E_DENSE64: run_dense(&r, F64, hessian); break;
    case E_LISTS32: run_lists(&r, F32, hessian); break;
    case E_LISTS64: run_lists(&r, F64, hessian); break;
    case E_CHAIN32: run_chain(&r, F32); break;
    case E_CHAIN64: run_chain(&r, F64); break;
    case E_VITERBI32: run_decode(&r, F32, 0); break;
    case E_VITERBI64: run_decode(&r, F64, 0); break;
    case E_MARGINALS32: if (hessian) run_vocab(&r, F32); else run_decode(&r, F32, 1); break;
    case E_MARGINALS64: if (hessian) run_vocab(&r, F64); else run_decode(&r, F64, 1); break;
    case E_LSOFTMAX32:
        if (hessian && b >= 26) run_linear_bf16(&r);
        else if (hessian) run_linear(&r, F32);
        else run_lsoftmax(&r, F32);
        break;
    case E_LSOFTMAX64: if (hessian) run_linear(&r, F64); else run_lsoftmax(&r, F64); break;
    default: run_small(&r, entry); break;
    }
    return 0;
}
