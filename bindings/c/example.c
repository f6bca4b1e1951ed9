/* A C program that uses LossKit through include/losskit.h and liblosskit.so alone.
 *
 * Build (after `make lib`), from the repository root:
 *   cc -std=c11 -Iinclude bindings/c/example.c -L.build/release -llosskit \
 *      -Wl,-rpath,$PWD/.build/release -lm -o example && ./example
 *
 * It computes the log loss (cross-entropy) and the softmax-margin loss of a batch of two
 * examples with their gradients, checks the first against its closed form, and shows how a
 * bad label is reported. Exits non-zero if anything is off, so the test suite runs it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "losskit.h"

int main(void) {
    if (lk_version_number() != LK_VERSION_NUMBER) {
        fprintf(stderr, "header %d but library %s\n", LK_VERSION_NUMBER, lk_version());
        return 1;
    }
    /* Two examples, three classes, row-major; gold classes 1 and 0. */
    const float scores[2 * 3] = {0.0f, 2.0f, 1.0f, /* */ 3.0f, 3.0f, -1.0f};
    const int32_t gold[2] = {1, 0};
    float loss = 0.0f, grad[2 * 3];

    lk_options opt;
    lk_options_init(&opt, LK_LOSS_LOG); /* mean reduction, 0/1 costs, no weights */
    lk_status status = lk_dense_f32(&opt, 2, 3, scores, gold, NULL, NULL, &loss, grad);
    if (status != LK_OK) {
        fprintf(stderr, "%s: %s\n", lk_status_name(status), lk_last_error());
        return 1;
    }
    /* Closed form: mean of lse(row) - s[gold]. */
    double expected = 0.5 * (log(1.0 + exp(2.0) + exp(1.0)) - 2.0 +
                             log(exp(3.0) + exp(3.0) + exp(-1.0)) - 3.0);
    printf("log loss        %.7f (closed form %.7f)\n", loss, expected);
    printf("gradient row 0  % .5f % .5f % .5f\n", grad[0], grad[1], grad[2]);
    if (fabs(loss - expected) > 1e-6) return 1;

    /* Softmax-margin: log-sum-exp of the scores plus the 0/1 cost, minus the gold score. */
    lk_options_init(&opt, LK_LOSS_SOFTMAX_MARGIN);
    opt.reduction = LK_REDUCE_NONE;
    float per_example[2];
    status = lk_dense_f32(&opt, 2, 3, scores, gold, NULL, NULL, per_example, grad);
    if (status != LK_OK) return 1;
    printf("softmax-margin  %.7f %.7f\n", per_example[0], per_example[1]);

    /* A label outside [0, k): an error status, a message, and the outputs left untouched. */
    const int32_t bad_gold[2] = {1, 7};
    loss = -1.0f;
    status = lk_dense_f32(&opt, 2, 3, scores, bad_gold, NULL, NULL, &loss, NULL);
    printf("bad label       %s: %s\n", lk_status_name(status), lk_last_error());
    if (status != LK_ERR_LABEL || loss != -1.0f || strlen(lk_last_error()) == 0) return 1;
    return 0;
}
