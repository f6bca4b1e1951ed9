/* Threads under load: many threads calling every entry point at once, valid and invalid calls
 * mixed, against the same calls made serially beforehand.
 *
 *   1. Serially, on the main thread: for each of THREADS thread ids and each entry point (dense,
 *      lists, chain, Viterbi, marginals, L-Softmax; float32 and float64), one valid and one
 *      invalid call on inputs of that thread id (its own scores and loss), recording the status,
 *      every output byte and lk_last_error(). The invalid input names the thread: a label or a
 *      length of 1000 + id, so the message ("gold[1] = 1007 ...") says whose call it was.
 *   2. THREADS threads at once, CALLS calls each, cycling through the entry points with one
 *      call in three invalid: every call must give the serial status and output bytes, and right
 *      after it lk_last_error() must be that thread's own message for it ("" after a success).
 *   3. Inputs that really split: each structure on a batch large enough for 16 threads by the
 *      documented rule (include/losskit.h, lk_options.threads: one more thread per 2^17 values
 *      of work, chunks of about 2^14, never more threads than chunks), checked here from the
 *      sizes; threads = 1, 2 and 16 must give the same bits.
 * Small inputs in 1 and 2 keep it fast: 16 x 120,000 calls take a few seconds on 2 cores.
 * Prints one line per failure (the first few), then "N passed, M failed"; exits 1 on a failure. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losskit.h"

enum { THREADS = 16, CALLS = 120000 };

/* ---- Small per-thread inputs ------------------------------------------------------------- */

enum kind {
    DENSE32, DENSE64, LISTS32, LISTS64, CHAIN32, CHAIN64, VITERBI32, VITERBI64,
    MARGINALS32, MARGINALS64, LSOFTMAX32, LSOFTMAX64, KINDS
};
static const char *const kind_names[KINDS] = {
    "lk_dense_f32", "lk_dense_f64", "lk_lists_f32", "lk_lists_f64", "lk_chain_f32", "lk_chain_f64",
    "lk_chain_viterbi_f32", "lk_chain_viterbi_f64", "lk_chain_marginals_f32", "lk_chain_marginals_f64",
    "lk_lsoftmax_f32", "lk_lsoftmax_f64"};

/* Dense: n = 2 rows of k = 3. Lists: 2 lists of 2 and 3. Chains: 2 sequences (lengths 3 and 2)
 * of t_max = 3 over 2 tags. L-Softmax: n = 2, d = 2, k = 3. */
struct inputs {
    int32_t loss, reduction;
    double scores[6], weight[2], list_scores[5], list_cost[5];
    double emissions[12], transitions[4], start[2], end[2];
    double x[4], w[6];
    int32_t gold[2], list_gold[2], chain_gold[6], lengths[2];
};

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-3, 3), a multiple of 2^-20: exact in float and double, so both precisions read
 * the same values. */
static double draw(uint64_t *state) { return (double)(int64_t)(splitmix(state) % 6291456) / 1048576.0 - 3.0; }

static void make_inputs(int id, struct inputs *in) {
    static const int32_t losses[] = {LK_LOSS_LOG, LK_LOSS_HINGE, LK_LOSS_SOFTMAX_MARGIN, LK_LOSS_RISK,
                                     LK_LOSS_SOFT_RAMP, LK_LOSS_PERCEPTRON, LK_LOSS_INFINITE_RAMP};
    uint64_t state = 0x1234 + (uint64_t)id;
    memset(in, 0, sizeof *in);
    in->loss = losses[id % 7];
    in->reduction = id % 3 == 0 ? LK_REDUCE_NONE : id % 3 == 1 ? LK_REDUCE_SUM : LK_REDUCE_MEAN;
    for (int i = 0; i < 6; i++) in->scores[i] = draw(&state);
    in->weight[0] = 1.0 + id / 16.0;
    in->weight[1] = 0.5;
    for (int i = 0; i < 5; i++) in->list_scores[i] = draw(&state);
    for (int i = 0; i < 5; i++) in->list_cost[i] = fabs(draw(&state));
    for (int i = 0; i < 12; i++) in->emissions[i] = draw(&state);
    for (int i = 0; i < 4; i++) in->transitions[i] = draw(&state);
    for (int i = 0; i < 2; i++) in->start[i] = draw(&state), in->end[i] = draw(&state);
    for (int i = 0; i < 4; i++) in->x[i] = draw(&state);
    for (int i = 0; i < 6; i++) in->w[i] = draw(&state);
    in->gold[0] = id % 3;
    in->gold[1] = (id + 1) % 3;
    in->list_gold[0] = id % 2;
    in->list_gold[1] = id % 3;
    in->list_cost[in->list_gold[0]] = 0;
    in->list_cost[2 + in->list_gold[1]] = 0;
    for (int i = 0; i < 6; i++) in->chain_gold[i] = (id + i) % 2;
    in->lengths[0] = 3;
    in->lengths[1] = 2;
}

/* The invalid version names the thread: 1000 + id where a label or a length is read. */
static int32_t bad_value(int id) { return 1000 + id; }

/* ---- One call ---------------------------------------------------------------------------- */

struct result {
    lk_status status;
    size_t size;                /* output bytes in `bytes` */
    unsigned char bytes[1024];  /* every output, concatenated, poisoned before the call */
    char message[256];
};

#define POISON 0x7B

/* Runs entry point `kind` on `in`, made invalid if `invalid`, into fresh poisoned outputs. */
static void call(enum kind kind, int invalid, int id, const struct inputs *in, struct result *r) {
    struct inputs bad = *in;
    const int32_t b = bad_value(id);
    if (invalid) {
        bad.gold[1] = b;
        bad.list_gold[1] = b;
        bad.chain_gold[3] = b; /* sequence 1, position 0 */
        bad.lengths[1] = b;    /* read by the decoders: longer than t_max */
    }
    const struct inputs *p = &bad;
    lk_options o;
    lk_options_init(&o, p->loss);
    o.reduction = p->reduction;
    const int64_t offsets[3] = {0, 2, 5};
    const int32_t *chain_lengths = in->lengths; /* the loss calls get a bad gold, not a bad length */

    union {
        struct { double loss[2], grad[6]; } dense64;
        struct { float loss[2], grad[6]; } dense32;
        struct { double loss[2], grad[5]; } lists64;
        struct { float loss[2], grad[5]; } lists32;
        struct { double loss[2], de[12], dt[4], ds[2], dd[2]; } chain64;
        struct { float loss[2], de[12], dt[4], ds[2], dd[2]; } chain32;
        struct { int32_t path[6]; double score[2]; } viterbi64;
        struct { int32_t path[6]; float score[2]; } viterbi32;
        struct { double marginals[12], log_z[2]; } marginals64;
        struct { float marginals[12], log_z[2]; } marginals32;
        struct { double loss[2], dx[4], dw[6]; } lsoftmax64;
        struct { float loss[2], dx[4], dw[6]; } lsoftmax32;
    } out;
    memset(&out, POISON, sizeof out);
    size_t size = 0;
    switch (kind) {
    case DENSE64:
        r->status = lk_dense_f64(&o, 2, 3, p->scores, p->gold, NULL, p->weight, out.dense64.loss, out.dense64.grad);
        size = sizeof out.dense64;
        break;
    case LISTS64:
        r->status = lk_lists_f64(&o, 2, offsets, p->list_scores, p->list_gold, p->list_cost, p->weight,
                                 out.lists64.loss, out.lists64.grad);
        size = sizeof out.lists64;
        break;
    case CHAIN64:
        r->status = lk_chain_f64(&o, 2, 3, 2, p->emissions, p->transitions, p->start, p->end, chain_lengths,
                                 p->chain_gold, NULL, p->weight, out.chain64.loss, out.chain64.de, out.chain64.dt,
                                 out.chain64.ds, out.chain64.dd);
        size = sizeof out.chain64;
        break;
    case VITERBI64:
        r->status = lk_chain_viterbi_f64(&o, 2, 3, 2, p->emissions, p->transitions, p->start, p->end, p->lengths,
                                         out.viterbi64.path, out.viterbi64.score);
        size = sizeof out.viterbi64;
        break;
    case MARGINALS64:
        r->status = lk_chain_marginals_f64(NULL, 2, 3, 2, p->emissions, p->transitions, p->start, p->end,
                                           p->lengths, out.marginals64.marginals, out.marginals64.log_z);
        size = sizeof out.marginals64;
        break;
    case LSOFTMAX64:
        r->status = lk_lsoftmax_f64(&o, 2, 2, 3, p->x, p->w, p->gold, p->weight, out.lsoftmax64.loss,
                                    out.lsoftmax64.dx, out.lsoftmax64.dw);
        size = sizeof out.lsoftmax64;
        break;
    default: {
        /* float32: the same inputs (exact in float). */
        float s[6], wt[2], ls[5], lc[5], e[12], t[4], st[2], en[2], x[4], w[6];
        for (int i = 0; i < 6; i++) s[i] = (float)p->scores[i], w[i] = (float)p->w[i];
        for (int i = 0; i < 2; i++) {
            wt[i] = (float)p->weight[i], st[i] = (float)p->start[i], en[i] = (float)p->end[i];
        }
        for (int i = 0; i < 5; i++) ls[i] = (float)p->list_scores[i], lc[i] = (float)p->list_cost[i];
        for (int i = 0; i < 12; i++) e[i] = (float)p->emissions[i];
        for (int i = 0; i < 4; i++) t[i] = (float)p->transitions[i], x[i] = (float)p->x[i];
        switch (kind) {
        case DENSE32:
            r->status = lk_dense_f32(&o, 2, 3, s, p->gold, NULL, wt, out.dense32.loss, out.dense32.grad);
            size = sizeof out.dense32;
            break;
        case LISTS32:
            r->status = lk_lists_f32(&o, 2, offsets, ls, p->list_gold, lc, wt, out.lists32.loss, out.lists32.grad);
            size = sizeof out.lists32;
            break;
        case CHAIN32:
            r->status = lk_chain_f32(&o, 2, 3, 2, e, t, st, en, chain_lengths, p->chain_gold, NULL, wt,
                                     out.chain32.loss, out.chain32.de, out.chain32.dt, out.chain32.ds,
                                     out.chain32.dd);
            size = sizeof out.chain32;
            break;
        case VITERBI32:
            r->status = lk_chain_viterbi_f32(&o, 2, 3, 2, e, t, st, en, p->lengths, out.viterbi32.path,
                                             out.viterbi32.score);
            size = sizeof out.viterbi32;
            break;
        case MARGINALS32:
            r->status = lk_chain_marginals_f32(NULL, 2, 3, 2, e, t, st, en, p->lengths, out.marginals32.marginals,
                                               out.marginals32.log_z);
            size = sizeof out.marginals32;
            break;
        case LSOFTMAX32:
            r->status = lk_lsoftmax_f32(&o, 2, 2, 3, x, w, p->gold, wt, out.lsoftmax32.loss, out.lsoftmax32.dx,
                                        out.lsoftmax32.dw);
            size = sizeof out.lsoftmax32;
            break;
        default:
            break;
        }
        break;
    }
    }
    r->size = size;
    memcpy(r->bytes, &out, size);
    snprintf(r->message, sizeof r->message, "%s", lk_last_error());
}

/* ---- Phases 1 and 2 ---------------------------------------------------------------------- */

static struct inputs inputs[THREADS];
static struct result serial[THREADS][KINDS][2];

struct worker {
    int id;
    long calls, failures;
    char first_failure[512];
};

static int same(const struct result *a, const struct result *b) {
    return a->status == b->status && a->size == b->size && memcmp(a->bytes, b->bytes, a->size) == 0 &&
           strcmp(a->message, b->message) == 0;
}

static void *work(void *arg) {
    struct worker *me = arg;
    struct result r;
    for (long i = 0; i < CALLS; i++) {
        const enum kind kind = (enum kind)(i % KINDS);
        const int invalid = (i / KINDS + me->id) % 3 == 0;
        call(kind, invalid, me->id, &inputs[me->id], &r);
        me->calls++;
        if (!same(&r, &serial[me->id][kind][invalid])) {
            if (me->failures++ == 0) {
                snprintf(me->first_failure, sizeof me->first_failure,
                         "thread %d call %ld (%s, %s): status %d vs %d, message \"%s\" vs \"%s\"", me->id, i,
                         kind_names[kind], invalid ? "invalid" : "valid", r.status,
                         serial[me->id][kind][invalid].status, r.message, serial[me->id][kind][invalid].message);
            }
        }
    }
    return NULL;
}

static long passed = 0, failed = 0;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        if (failed <= 20) fprintf(stderr, "thread_load: FAIL: %s\n", what);
    }
}

/* Serial references: each valid call succeeds with "" as the message and writes its outputs;
 * each invalid one fails, writes nothing, and its message names this thread's 1000 + id. */
static void serial_phase(void) {
    char what[512], token[32];
    for (int id = 0; id < THREADS; id++) {
        make_inputs(id, &inputs[id]);
        snprintf(token, sizeof token, "%d", bad_value(id));
        for (int kind = 0; kind < KINDS; kind++) {
            struct result *ok = &serial[id][kind][0], *bad = &serial[id][kind][1];
            call((enum kind)kind, 0, id, &inputs[id], ok);
            snprintf(what, sizeof what, "serial %s, thread id %d: valid call: status %d \"%s\"", kind_names[kind],
                     id, ok->status, ok->message);
            check(ok->status == LK_OK && ok->message[0] == '\0', what);
            call((enum kind)kind, 1, id, &inputs[id], bad);
            int untouched = 1;
            for (size_t b = 0; b < bad->size; b++) untouched &= bad->bytes[b] == POISON;
            snprintf(what, sizeof what, "serial %s, thread id %d: invalid call: status %d \"%s\" (should name %s)",
                     kind_names[kind], id, bad->status, bad->message, token);
            check(bad->status != LK_OK && strstr(bad->message, token) != NULL && untouched, what);
        }
    }
}

static void concurrent_phase(void) {
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    char what[700];
    for (int id = 0; id < THREADS; id++) {
        workers[id] = (struct worker){.id = id};
        check(pthread_create(&threads[id], NULL, work, &workers[id]) == 0, "pthread_create");
    }
    long calls = 0;
    for (int id = 0; id < THREADS; id++) {
        pthread_join(threads[id], NULL);
        calls += workers[id].calls;
        snprintf(what, sizeof what, "%ld of %ld calls differ from the serial ones; first: %s", workers[id].failures,
                 workers[id].calls, workers[id].first_failure);
        check(workers[id].failures == 0 && workers[id].calls == CALLS, what);
    }
    printf("thread_load: %d threads x %d calls (%ld in total, one in three invalid) over %d entry points\n",
           THREADS, CALLS, calls, KINDS);
}

/* ---- Phase 3: inputs that really split --------------------------------------------------- */

/* The documented rule: a call uses min(threads, chunks, work / 2^17) threads. */
enum { PER_THREAD = 1 << 17, SPLIT = 16 };

static double *random_doubles(size_t count, uint64_t seed) {
    double *p = malloc(count * sizeof *p);
    if (!p) {
        fprintf(stderr, "thread_load: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < count; i++) p[i] = draw(&seed);
    return p;
}

static float *to_float(const double *p, size_t count) {
    float *f = malloc(count * sizeof *f);
    if (!f) exit(2);
    for (size_t i = 0; i < count; i++) f[i] = (float)p[i];
    return f;
}

/* Runs `body(threads, out)` at 1, 2 and 16 threads and compares the output bytes. */
typedef lk_status (*split_body)(int32_t threads, unsigned char *out);

static void same_bits_at_1_2_16(const char *name, split_body body, size_t bytes) {
    unsigned char *one = malloc(bytes), *other = malloc(bytes);
    if (!one || !other) exit(2);
    memset(one, POISON, bytes);
    char what[256];
    lk_status status = body(1, one);
    snprintf(what, sizeof what, "%s at 1 thread: status %d \"%s\"", name, status, lk_last_error());
    check(status == LK_OK, what);
    for (int32_t threads = 2; threads <= 16; threads *= 8) {
        memset(other, POISON, bytes);
        status = body(threads, other);
        snprintf(what, sizeof what, "%s: threads = %d gives other bits than threads = 1 (status %d)", name, threads,
                 status);
        check(status == LK_OK && memcmp(one, other, bytes) == 0, what);
    }
    free(one);
    free(other);
}

/* Dense: n = 4100 rows of k = 512: 2,099,200 values >= 16 * 2^17, in chunks of 2^14 / 512 = 32
 * rows, 129 chunks. */
enum { DN = 4100, DK = 512 };
static double *dense_scores, *dense_weight;
static float *dense_scores32, *dense_weight32;
static int32_t *dense_gold;

static lk_status dense_body(int32_t threads, int32_t loss, int single, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, loss);
    o.threads = threads;
    o.reduction = LK_REDUCE_NONE;
    if (single) {
        float *l = (float *)out, *g = l + DN;
        return lk_dense_f32(&o, DN, DK, dense_scores32, dense_gold, NULL, dense_weight32, l, g);
    }
    double *l = (double *)out, *g = l + DN;
    return lk_dense_f64(&o, DN, DK, dense_scores, dense_gold, NULL, dense_weight, l, g);
}
static lk_status dense_log64(int32_t t, unsigned char *out) { return dense_body(t, LK_LOSS_LOG, 0, out); }
static lk_status dense_risk64(int32_t t, unsigned char *out) { return dense_body(t, LK_LOSS_RISK, 0, out); }
static lk_status dense_ramp32(int32_t t, unsigned char *out) { return dense_body(t, LK_LOSS_SOFT_RAMP, 1, out); }
static lk_status dense_mean64(int32_t threads, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_SOFTMAX_MARGIN);
    o.threads = threads; /* MEAN: one total from the per-chunk partial sums */
    double *l = (double *)out, *g = l + 1;
    return lk_dense_f64(&o, DN, DK, dense_scores, dense_gold, NULL, dense_weight, l, g);
}

/* Lists: 16400 lists of 128 candidates: 2,099,200 candidates, chunks of >= 2^14 candidates
 * (128 lists), 129 chunks. */
enum { LN = 16400, LC = 128 };
static int64_t *list_offsets;
static int32_t *list_gold;
static double *list_cost;
static float *list_cost32;

static lk_status lists_body(int32_t threads, int single, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_INFINITE_RAMP);
    o.threads = threads;
    o.reduction = LK_REDUCE_SUM;
    if (single) {
        float *l = (float *)out, *g = l + 1;
        return lk_lists_f32(&o, LN, list_offsets, dense_scores32, list_gold, list_cost32, NULL, l, g);
    }
    double *l = (double *)out, *g = l + 1;
    return lk_lists_f64(&o, LN, list_offsets, dense_scores, list_gold, list_cost, NULL, l, g);
}
static lk_status lists64(int32_t t, unsigned char *out) { return lists_body(t, 0, out); }
static lk_status lists32(int32_t t, unsigned char *out) { return lists_body(t, 1, out); }

/* Chains: 512 sequences of length 32 over 16 tags: work 512 * 32 * 16^2 = 4,194,304 >= 16 * 2^17,
 * in min(64, 2^24 / (16^2 + 2 * 16)) = 64 chunks. */
enum { CN = 512, CT = 32, CL = 16 };
static int32_t *chain_lengths, *chain_gold;

static lk_status chain_body(int32_t threads, int single, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    o.threads = threads;
    o.reduction = LK_REDUCE_MEAN;
    const double *e = dense_scores, *tr = dense_scores + CN * CT * CL, *s = tr + CL * CL, *en = s + CL;
    if (single) {
        const float *e32 = dense_scores32, *tr32 = e32 + CN * CT * CL, *s32 = tr32 + CL * CL, *en32 = s32 + CL;
        float *l = (float *)out, *de = l + 1, *dt = de + CN * CT * CL, *ds = dt + CL * CL, *dd = ds + CL;
        return lk_chain_f32(&o, CN, CT, CL, e32, tr32, s32, en32, chain_lengths, chain_gold, NULL, NULL, l, de, dt,
                            ds, dd);
    }
    double *l = (double *)out, *de = l + 1, *dt = de + CN * CT * CL, *ds = dt + CL * CL, *dd = ds + CL;
    return lk_chain_f64(&o, CN, CT, CL, e, tr, s, en, chain_lengths, chain_gold, NULL, NULL, l, de, dt, ds, dd);
}
static lk_status chain64(int32_t t, unsigned char *out) { return chain_body(t, 0, out); }
static lk_status chain32(int32_t t, unsigned char *out) { return chain_body(t, 1, out); }

static lk_status decode_body(int32_t threads, int marginals, int single, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    o.threads = threads;
    const double *e = dense_scores, *tr = dense_scores + CN * CT * CL, *s = tr + CL * CL, *en = s + CL;
    const float *e32 = dense_scores32, *tr32 = e32 + CN * CT * CL, *s32 = tr32 + CL * CL, *en32 = s32 + CL;
    if (marginals) {
        if (single) {
            float *m = (float *)out, *z = m + CN * CT * CL;
            return lk_chain_marginals_f32(&o, CN, CT, CL, e32, tr32, s32, en32, chain_lengths, m, z);
        }
        double *m = (double *)out, *z = m + CN * CT * CL;
        return lk_chain_marginals_f64(&o, CN, CT, CL, e, tr, s, en, chain_lengths, m, z);
    }
    int32_t *path = (int32_t *)out;
    if (single) {
        return lk_chain_viterbi_f32(&o, CN, CT, CL, e32, tr32, s32, en32, chain_lengths, path,
                                    (float *)(path + CN * CT));
    }
    return lk_chain_viterbi_f64(&o, CN, CT, CL, e, tr, s, en, chain_lengths, path, (double *)(path + CN * CT));
}
static lk_status viterbi64(int32_t t, unsigned char *out) { return decode_body(t, 0, 0, out); }
static lk_status viterbi32(int32_t t, unsigned char *out) { return decode_body(t, 0, 1, out); }
static lk_status marginals64(int32_t t, unsigned char *out) { return decode_body(t, 1, 0, out); }
static lk_status marginals32(int32_t t, unsigned char *out) { return decode_body(t, 1, 1, out); }

/* L-Softmax: n = 2048 rows, d = 16, k = 64: its passes cut rows into chunks of 64 (32 chunks)
 * and use min(threads, chunks) threads; the products split by 2^20 multiply-adds per thread. */
enum { XN = 2048, XD = 16, XK = 64 };

static lk_status lsoftmax_body(int32_t threads, int single, unsigned char *out) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    o.threads = threads;
    o.reduction = LK_REDUCE_MEAN;
    o.margin = 3;
    const double *x = dense_scores, *w = dense_scores + XN * XD;
    if (single) {
        const float *x32 = dense_scores32, *w32 = x32 + XN * XD;
        float *l = (float *)out, *dx = l + 1, *dw = dx + XN * XD;
        return lk_lsoftmax_f32(&o, XN, XD, XK, x32, w32, dense_gold, NULL, l, dx, dw);
    }
    double *l = (double *)out, *dx = l + 1, *dw = dx + XN * XD;
    return lk_lsoftmax_f64(&o, XN, XD, XK, x, w, dense_gold, NULL, l, dx, dw);
}
static lk_status lsoftmax64(int32_t t, unsigned char *out) { return lsoftmax_body(t, 0, out); }
static lk_status lsoftmax32(int32_t t, unsigned char *out) { return lsoftmax_body(t, 1, out); }

static void split_phase(void) {
    const size_t values = (size_t)DN * DK;
    dense_scores = random_doubles(values, 11);
    dense_scores32 = to_float(dense_scores, values);
    dense_weight = random_doubles(DN, 12);
    for (int i = 0; i < DN; i++) dense_weight[i] = fabs(dense_weight[i]);
    dense_weight32 = to_float(dense_weight, DN);
    dense_gold = malloc(DN * sizeof *dense_gold);
    list_offsets = malloc((LN + 1) * sizeof *list_offsets);
    list_gold = malloc(LN * sizeof *list_gold);
    list_cost = random_doubles((size_t)LN * LC, 13);
    chain_lengths = malloc(CN * sizeof *chain_lengths);
    chain_gold = malloc((size_t)CN * CT * sizeof *chain_gold);
    if (!dense_gold || !list_offsets || !list_gold || !chain_lengths || !chain_gold) exit(2);
    for (int i = 0; i < DN; i++) dense_gold[i] = (i * 7) % XK; /* < XK <= DK: also L-Softmax's gold */
    for (int i = 0; i <= LN; i++) list_offsets[i] = (int64_t)i * LC;
    for (int i = 0; i < LN; i++) list_gold[i] = (i * 5) % LC;
    for (size_t i = 0; i < (size_t)LN * LC; i++) list_cost[i] = fabs(list_cost[i]);
    list_cost32 = to_float(list_cost, (size_t)LN * LC);
    for (int i = 0; i < CN; i++) chain_lengths[i] = CT - (i % 4); /* 29..32: work still >= 16 * 2^17 */
    for (size_t i = 0; i < (size_t)CN * CT; i++) chain_gold[i] = (int32_t)((i * 3) % CL);

    /* The sizes against the rule, so that this phase cannot quietly run on one thread. */
    const long chain_work = (long)CN * (CT - 3) * CL * CL;
    check((long)values / PER_THREAD >= SPLIT && values / (1 << 14) >= SPLIT, "dense batch too small to split 16 ways");
    check((long)LN * LC / PER_THREAD >= SPLIT && (long)LN * LC / (1 << 14) >= SPLIT,
          "lists batch too small to split 16 ways");
    check(chain_work / PER_THREAD >= SPLIT, "chain batch too small to split 16 ways");
    check(XN / 64 >= SPLIT, "L-Softmax batch has fewer than 16 chunks of rows");
    check(XN * XD + XK * XD <= (long)values, "L-Softmax inputs fit the shared buffer");

    const size_t dense_bytes = (size_t)DN * (DK + 1) * sizeof(double);
    same_bits_at_1_2_16("lk_dense_f64 LOG, NONE", dense_log64, dense_bytes);
    same_bits_at_1_2_16("lk_dense_f64 RISK, NONE", dense_risk64, dense_bytes);
    same_bits_at_1_2_16("lk_dense_f64 SOFTMAX_MARGIN, MEAN", dense_mean64, (values + 1) * sizeof(double));
    same_bits_at_1_2_16("lk_dense_f32 SOFT_RAMP, NONE", dense_ramp32, (size_t)DN * (DK + 1) * sizeof(float));
    same_bits_at_1_2_16("lk_lists_f64 INFINITE_RAMP, SUM", lists64, (values + 1) * sizeof(double));
    same_bits_at_1_2_16("lk_lists_f32 INFINITE_RAMP, SUM", lists32, (values + 1) * sizeof(float));
    const size_t chain_values = (size_t)CN * CT * CL + CL * CL + 2 * CL + 1;
    same_bits_at_1_2_16("lk_chain_f64 LOG, MEAN", chain64, chain_values * sizeof(double));
    same_bits_at_1_2_16("lk_chain_f32 LOG, MEAN", chain32, chain_values * sizeof(float));
    const size_t paths = (size_t)CN * CT * sizeof(int32_t);
    same_bits_at_1_2_16("lk_chain_viterbi_f64", viterbi64, paths + CN * sizeof(double));
    same_bits_at_1_2_16("lk_chain_viterbi_f32", viterbi32, paths + CN * sizeof(float));
    same_bits_at_1_2_16("lk_chain_marginals_f64", marginals64, ((size_t)CN * CT * CL + CN) * sizeof(double));
    same_bits_at_1_2_16("lk_chain_marginals_f32", marginals32, ((size_t)CN * CT * CL + CN) * sizeof(float));
    const size_t lsoftmax_values = 1 + (size_t)XN * XD + (size_t)XK * XD;
    same_bits_at_1_2_16("lk_lsoftmax_f64 m = 3, MEAN", lsoftmax64, lsoftmax_values * sizeof(double));
    same_bits_at_1_2_16("lk_lsoftmax_f32 m = 3, MEAN", lsoftmax32, lsoftmax_values * sizeof(float));
}

int main(void) {
    printf("thread_load: liblosskit %s at CPU level %s\n", lk_version(), lk_cpu_level());
    serial_phase();
    concurrent_phase();
    split_phase();
    printf("thread_load: %ld passed, %ld failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
