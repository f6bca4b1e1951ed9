/* Resident memory stays flat over many calls of every entry point (make test-sanitize).
 *
 * Per entry point: 1000 warm-up calls, then CALLS calls (default 10^5) alternating a valid call
 * with a failing one (the failing path builds this thread's error message), with the resident
 * set size read from /proc/self/statm before and after. Then 1000 short-lived threads each make
 * one failing call, for the per-thread message. A growth above LIMIT_KB (default 1024) fails:
 * 10^5 calls that leaked even 16 bytes each would show 1.6 MB.
 *   usage: rss_flat [calls] [limit_kb]      (link against the library under test) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "losskit.h"

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        perror("/proc/self/statm");
        exit(2);
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Small inputs shared by the calls: 4 examples of 5 classes; 2 sequences of 3 positions over
 * 3 tags; L-Softmax with d = 3. */
static float sf[20], cf[20], ef[18], tf[9], xf[12], wf[15], gf[20], lf[4], df[18], dtf[9], dsf[3], def_[3];
static double sd[20], cd[20], ed[18], td[9], xd[12], wd[15], gd[20], ld[4], dd[18], dtd[9], dsd[3], ded[3];
static int32_t gold[4] = {0, 1, 4, 2}, lengths[2] = {3, 2}, tgold[6] = {0, 1, 2, 2, 1, 0}, path[6];
static int32_t bad_gold[4] = {0, 1, 9, 2};
static int64_t offsets[5] = {0, 5, 10, 15, 20};

static lk_status call(int entry, int valid) {
    lk_options o;
    lk_options_init(&o, valid ? LK_LOSS_SOFTMAX_MARGIN : LK_LOSS_RISK);
    if (!valid) o.cost_scale = -1; /* an option error: the failing path */
    const int32_t *g = valid ? gold : bad_gold;
    switch (entry) {
    case 0: return lk_dense_f32(&o, 4, 5, sf, g, NULL, NULL, lf, gf);
    case 1: return lk_dense_f64(&o, 4, 5, sd, g, NULL, NULL, ld, gd);
    case 2: return lk_lists_f32(&o, 4, offsets, sf, g, cf, NULL, lf, gf);
    case 3: return lk_lists_f64(&o, 4, offsets, sd, g, cd, NULL, ld, gd);
    case 4: return lk_chain_f32(&o, 2, 3, 3, ef, tf, NULL, NULL, lengths, tgold, NULL, NULL, lf, df, dtf, dsf, def_);
    case 5: return lk_chain_f64(&o, 2, 3, 3, ed, td, NULL, NULL, lengths, tgold, NULL, NULL, ld, dd, dtd, dsd, ded);
    case 6: return lk_chain_viterbi_f32(valid ? NULL : &o, 2, 3, valid ? 3 : -3, ef, tf, NULL, NULL, lengths, path, lf);
    case 7: return lk_chain_viterbi_f64(valid ? NULL : &o, 2, 3, valid ? 3 : -3, ed, td, NULL, NULL, lengths, path, ld);
    case 8: return lk_chain_marginals_f32(NULL, 2, 3, valid ? 3 : -3, ef, tf, NULL, NULL, lengths, df, lf);
    case 9: return lk_chain_marginals_f64(NULL, 2, 3, valid ? 3 : -3, ed, td, NULL, NULL, lengths, dd, ld);
    case 10:
        lk_options_init(&o, LK_LOSS_LOG);
        o.margin = valid ? 3 : 0;
        return lk_lsoftmax_f32(&o, 4, 3, 5, xf, wf, gold, NULL, lf, df, gf);
    case 11:
        lk_options_init(&o, LK_LOSS_LOG);
        o.margin = valid ? 3 : 0;
        return lk_lsoftmax_f64(&o, 4, 3, 5, xd, wd, gold, NULL, ld, dd, gd);
    case 12: return lk_options_init(&o, valid ? LK_LOSS_LOG : 99);
    default:
        (void)lk_status_name(valid ? LK_OK : 12345);
        (void)lk_version();
        (void)lk_cpu_level();
        return lk_last_error()[0] == 0 || !valid ? LK_OK : LK_ERR_DOMAIN;
    }
}

static const char *names[] = {
    "lk_dense_f32", "lk_dense_f64", "lk_lists_f32", "lk_lists_f64", "lk_chain_f32", "lk_chain_f64",
    "lk_chain_viterbi_f32", "lk_chain_viterbi_f64", "lk_chain_marginals_f32", "lk_chain_marginals_f64",
    "lk_lsoftmax_f32", "lk_lsoftmax_f64", "lk_options_init", "lk_status_name+version+last_error",
};

static void *one_failing_call(void *arg) {
    (void)arg;
    if (call(0, 0) == LK_OK) abort();
    return NULL;
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 100000, limit = argc > 2 ? atol(argv[2]) : 1024;
    for (int i = 0; i < 20; i++) {
        sf[i] = (float)(i % 7) - 3.0f, sd[i] = sf[i], cf[i] = (float)(i % 3), cd[i] = cf[i];
        gf[i] = 0, gd[i] = 0;
    }
    for (int i = 0; i < 18; i++) ef[i] = (float)(i % 5) * 0.5f, ed[i] = ef[i];
    for (int i = 0; i < 9; i++) tf[i] = (float)(i % 4) * 0.25f, td[i] = tf[i];
    for (int i = 0; i < 12; i++) xf[i] = (float)(i % 5) - 2.0f, xd[i] = xf[i];
    for (int i = 0; i < 15; i++) wf[i] = (float)(i % 3) - 0.5f, wd[i] = wf[i];
    int failures = 0;
    for (int e = 0; e < 14; e++) {
        for (int i = 0; i < 1000; i++) call(e, i & 1);
        if (call(e, 1) != LK_OK || (e < 13 && call(e, 0) == LK_OK)) {
            fprintf(stderr, "%s: the valid call failed or the failing one succeeded (%s)\n", names[e], lk_last_error());
            return 2;
        }
        long before = rss_kb();
        for (long i = 0; i < calls; i++) call(e, (int)(i & 1));
        long after = rss_kb();
        int bad = after - before > limit;
        failures += bad;
        printf("%-34s %ld calls: RSS %ld kB -> %ld kB (%+ld kB)%s\n", names[e], calls, before, after, after - before,
               bad ? "  GREW" : "");
    }
    long before = rss_kb();
    for (int i = 0; i < 1000; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, one_failing_call, NULL) != 0 || pthread_join(t, NULL) != 0) return 2;
    }
    long after = rss_kb();
    int bad = after - before > limit;
    failures += bad;
    printf("%-34s 1000 threads: RSS %ld kB -> %ld kB (%+ld kB)%s\n", "failing call per thread", before, after,
           after - before, bad ? "  GREW" : "");
    return failures ? 1 : 0;
}
