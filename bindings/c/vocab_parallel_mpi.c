/* The classes of a cross-entropy split across MPI ranks (vocabulary parallelism), with LossKit's
 * lk_vocab_dense_* and two MPI_Allreduce calls per step (three for a max loss such as hinge).
 *
 * Build and run (after `make lib`, with Open MPI: Debian's openmpi-bin and libopenmpi-dev):
 *   mpicc -std=c11 -Iinclude bindings/c/vocab_parallel_mpi.c -L.build/release -llosskit \
 *         -Wl,-rpath,$PWD/.build/release -lm -o vocab_parallel_mpi
 *   mpirun -np 4 ./vocab_parallel_mpi
 * (`make test-mpi` runs it on 2 and 4 ranks.)
 *
 * Every rank makes the same n x k batch (a fixed pseudo-random generator) and keeps the columns
 * of its shard, [k_offset, k_offset + k_local): as a model whose output layer is split by
 * classes would. It computes the loss of the whole rows and the gradient of its own columns,
 * then checks both against lk_dense on the whole rows (which every rank can compute here, since
 * each holds the whole batch): float32 within 1e-6 relative, float64 within 4 ulps, but for
 * softmax-margin in float64: within the dense rows' bound, 4u of the conditioning, since a split
 * forms each exp around the row's max of s + c in double rather than around the argmax's own
 * score and cost (include/losskit.h). It also prints the bytes each rank sent per step. Exits
 * non-zero on any mismatch. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "losskit.h"

static uint64_t state = 88172645463325252ull;
static double uniform(void) { /* xorshift64: the same numbers on every rank */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}

/* The three phases with the caller's reductions. Returns an lk_status; every rank returns the same. */
static lk_status vocab_f64(const lk_options *opt, int64_t n, int64_t k, int64_t k_offset, int64_t k_local,
                           const double *scores, const int32_t *gold, double *maxima, double *sums,
                           double *argmax, double *loss, double *grad, long *bytes) {
    lk_status s = lk_vocab_dense_f64(opt, 1, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima,
                                     NULL, NULL, NULL, NULL);
    if (s != LK_OK) return s;
    MPI_Allreduce(MPI_IN_PLACE, maxima, (int)(n * LK_VOCAB_MAXIMA), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    s = lk_vocab_dense_f64(opt, 2, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima, sums, argmax,
                           NULL, NULL);
    if (s != LK_OK) return s;
    MPI_Allreduce(MPI_IN_PLACE, sums, (int)(n * LK_VOCAB_SUMS), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    *bytes = (long)(n * (LK_VOCAB_MAXIMA + LK_VOCAB_SUMS) * sizeof(double));
    if (argmax) {
        MPI_Allreduce(MPI_IN_PLACE, argmax, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        *bytes += (long)(n * sizeof(double));
    }
    return lk_vocab_dense_f64(opt, 3, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima, sums, argmax,
                              loss, grad);
}

static lk_status vocab_f32(const lk_options *opt, int64_t n, int64_t k, int64_t k_offset, int64_t k_local,
                           const float *scores, const int32_t *gold, double *maxima, double *sums,
                           double *argmax, float *loss, float *grad) {
    lk_status s = lk_vocab_dense_f32(opt, 1, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima,
                                     NULL, NULL, NULL, NULL);
    if (s != LK_OK) return s;
    MPI_Allreduce(MPI_IN_PLACE, maxima, (int)(n * LK_VOCAB_MAXIMA), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    s = lk_vocab_dense_f32(opt, 2, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima, sums, argmax,
                           NULL, NULL);
    if (s != LK_OK) return s;
    MPI_Allreduce(MPI_IN_PLACE, sums, (int)(n * LK_VOCAB_SUMS), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (argmax) MPI_Allreduce(MPI_IN_PLACE, argmax, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return lk_vocab_dense_f32(opt, 3, n, k, k_offset, k_local, scores, gold, NULL, NULL, maxima, sums, argmax,
                              loss, grad);
}

/* |a - b| <= rel * scale, scale the largest |b| of the row (or of the value). */
static int far(double a, double b, double rel, double scale) { return !(fabs(a - b) <= rel * scale); }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    enum { n = 64, k = 1001 };
    const int64_t k_offset = (int64_t)k * rank / P, k_local = (int64_t)k * (rank + 1) / P - k_offset;

    double *full = malloc(sizeof(double) * n * k), *shard = malloc(sizeof(double) * n * k_local);
    float *full32 = malloc(sizeof(float) * n * k), *shard32 = malloc(sizeof(float) * n * k_local);
    double *grad = malloc(sizeof(double) * n * k_local), *ref = malloc(sizeof(double) * n * k);
    float *grad32 = malloc(sizeof(float) * n * k_local), *ref32 = malloc(sizeof(float) * n * k);
    double *maxima = malloc(sizeof(double) * n * LK_VOCAB_MAXIMA), *sums = malloc(sizeof(double) * n * LK_VOCAB_SUMS);
    double argmax[n];
    int32_t gold[n];
    for (int i = 0; i < n; i++) {
        gold[i] = (int32_t)(uniform() * k);
        for (int j = 0; j < k; j++) full[i * k + j] = 8.0 * (uniform() - 0.5);
    }
    gold[5] = -100; /* ignored (opt.ignore_label) */
    for (int j = 0; j < k; j++) full[7 * k + j] = 0.0; /* a row of ties across every rank */
    full[9 * k + gold[9]] = 60.0;                        /* a loss near 1e-23: its digits must survive */
    for (int e = 0; e < n * k; e++) full32[e] = (float)full[e];
    for (int i = 0; i < n; i++)
        for (int64_t c = 0; c < k_local; c++) {
            shard[i * k_local + c] = full[i * k + k_offset + c];
            shard32[i * k_local + c] = full32[i * k + k_offset + c];
        }

    const int32_t losses[] = {LK_LOSS_LOG, LK_LOSS_SOFTMAX_MARGIN, LK_LOSS_HINGE, LK_LOSS_PERCEPTRON};
    const char *names[] = {"log", "softmax-margin", "hinge", "perceptron"};
    int bad = 0;
    for (int l = 0; l < 4; l++) {
        lk_options opt;
        lk_options_init(&opt, losses[l]);
        opt.reduction = LK_REDUCE_NONE;
        if (l == 0) opt.label_smoothing = 0.1;
        int max_fear = losses[l] == LK_LOSS_HINGE || losses[l] == LK_LOSS_PERCEPTRON;
        double loss[n], ref_loss[n];
        float loss32[n], ref_loss32[n];
        long bytes = 0;
        lk_status s = vocab_f64(&opt, n, k, k_offset, k_local, shard, gold, maxima, sums, max_fear ? argmax : NULL,
                                loss, grad, &bytes);
        lk_status s32 = vocab_f32(&opt, n, k, k_offset, k_local, shard32, gold, maxima, sums,
                                  max_fear ? argmax : NULL, loss32, grad32);
        if (s != LK_OK || s32 != LK_OK) {
            fprintf(stderr, "rank %d %s: %s: %s\n", rank, names[l], lk_status_name(s ? s : s32), lk_last_error());
            bad = 1;
            continue;
        }
        if (lk_dense_f64(&opt, n, k, full, gold, NULL, NULL, ref_loss, ref) != LK_OK ||
            lk_dense_f32(&opt, n, k, full32, gold, NULL, NULL, ref_loss32, ref32) != LK_OK) {
            fprintf(stderr, "rank %d: lk_dense: %s\n", rank, lk_last_error());
            bad = 1;
            continue;
        }
        double worst = 0, worst32 = 0;
        const double u = 1.1102230246251565e-16;
        for (int i = 0; i < n; i++) {
            /* scale: the row's largest gradient entry; conditioning: sum |dL/dx| |x| over the scores
             * and the scaled costs, and the largest |x| (softmax-margin's bounds). */
            double scale = 0, scale32 = 0, conditioning = 0, largest = 0;
            for (int j = 0; j < k; j++) {
                scale = fmax(scale, fabs(ref[i * k + j]));
                scale32 = fmax(scale32, fabs((double)ref32[i * k + j]));
                conditioning += fabs(ref[i * k + j]) * (fabs(full[i * k + j]) + opt.cost_scale);
                largest = fmax(largest, fabs(full[i * k + j]) + opt.cost_scale);
            }
            if (losses[l] == LK_LOSS_SOFTMAX_MARGIN) {
                bad |= far(loss[i], ref_loss[i], 2 * 4 * u, fabs(ref_loss[i]) + conditioning);
                scale *= 1 + largest;
            } else {
                bad |= far(loss[i], ref_loss[i], 4 * 2 * u, fabs(ref_loss[i]));
            }
            bad |= far(loss32[i], ref_loss32[i], 1e-6, fabs(ref_loss32[i]));
            for (int64_t c = 0; c < k_local; c++) {
                double a = grad[i * k_local + c], b = ref[i * k + k_offset + c];
                double a32 = grad32[i * k_local + c], b32 = ref32[i * k + k_offset + c];
                bad |= far(a, b, 4 * 2 * u, scale);
                bad |= far(a32, b32, 1e-6, scale32);
                if (scale > 0) worst = fmax(worst, fabs(a - b) / scale);
                if (scale32 > 0) worst32 = fmax(worst32, fabs(a32 - b32) / scale32);
            }
        }
        printf("rank %d/%d %-14s columns [%4lld, %4lld): loss[9] = %.17g (one process: %.17g), "
               "largest gradient difference %.2g (f64) %.2g (f32) of the row's scale; sent %ld bytes "
               "(%.0f doubles per row)\n",
               rank, P, names[l], (long long)k_offset, (long long)(k_offset + k_local), loss[9], ref_loss[9], worst,
               worst32, bytes, (double)bytes / (n * sizeof(double)));
    }
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) printf("%s on %d ranks\n", any ? "MISMATCH" : "all equal to one process", P);
    free(full); free(shard); free(full32); free(shard32); free(grad); free(ref); free(grad32); free(ref32);
    free(maxima); free(sums);
    MPI_Finalize();
    return any;
}
