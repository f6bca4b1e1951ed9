/* C-side tests of the public ABI: struct layout, version, status names, lk_options_init(_size), and
 * the per-thread lk_last_error(). Built against include/ and the release liblosskit.so only. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losskit.h"

static int failures = 0;
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* The first published layout: 112 bytes on x86-64, fields at these offsets (DESIGN.md §4.1);
 * 0.3.0 appended z_loss and softcap after them. */
static void test_layout(void) {
    CHECK(sizeof(lk_options) == 128);
    CHECK(offsetof(lk_options, z_loss) == 112);
    CHECK(offsetof(lk_options, softcap) == 120);
    CHECK(offsetof(lk_options, cost_scale) == 24);
    CHECK(offsetof(lk_options, hope) == 56);
    CHECK(offsetof(lk_options, hope_scale) == 64);
    CHECK(offsetof(lk_options, margin) == 80);
    CHECK(offsetof(lk_options, lambda) == 88);
    CHECK(offsetof(lk_options, angular_margin) == 104);
}

static void test_version(void) {
    CHECK(lk_version_number() == LK_VERSION_NUMBER);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", LK_VERSION_MAJOR, LK_VERSION_MINOR, LK_VERSION_PATCH);
    CHECK(strcmp(lk_version(), expected) == 0);
}

static void test_cpu_level(void) {
    const char *level = lk_cpu_level();
    CHECK(level != NULL);
    CHECK(strcmp(level, "x86-64") == 0 || strcmp(level, "avx2") == 0 || strcmp(level, "avx512") == 0);
}

static void test_status_names(void) {
    CHECK(strcmp(lk_status_name(LK_OK), "LK_OK") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_NULL), "LK_ERR_NULL") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_SIZE), "LK_ERR_SIZE") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_LABEL), "LK_ERR_LABEL") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_OPTION), "LK_ERR_OPTION") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_DOMAIN), "LK_ERR_DOMAIN") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_UNSUPPORTED), "LK_ERR_UNSUPPORTED") == 0);
    CHECK(strcmp(lk_status_name(LK_ERR_ALLOC), "LK_ERR_ALLOC") == 0);
    CHECK(strcmp(lk_status_name(99), "LK_ERR_UNKNOWN") == 0);
    CHECK(strcmp(lk_status_name(-1), "LK_ERR_UNKNOWN") == 0);
}

static void test_options_init(void) {
    lk_options o;
    memset(&o, 0x5a, sizeof o);
    CHECK(lk_options_init(&o, LK_LOSS_HOPE_FEAR) == LK_OK);
    CHECK(o.size == sizeof(lk_options));
    CHECK(o.loss == LK_LOSS_HOPE_FEAR);
    CHECK(o.reduction == LK_REDUCE_MEAN);
    CHECK(o.ignore_label == -100);
    CHECK(o.cost_layout == LK_COST_ZERO_ONE);
    CHECK(o.threads == 0);
    CHECK(o.cost_scale == 1.0 && o.label_smoothing == 0.0);
    CHECK(o.square_k == 1.0 && o.square_m == 1.0);
    CHECK(o.hope == LK_TERM_GOLD && o.fear == LK_TERM_LSE);
    CHECK(o.hope_scale == 0.0 && o.fear_scale == 1.0);
    CHECK(o.margin == 2 && o.lambda == 0.0);
    CHECK(o.angular_scale == 64.0);
    CHECK(lk_options_init(NULL, LK_LOSS_LOG) == LK_ERR_NULL);
    CHECK(strlen(lk_last_error()) > 0);
    lk_options before = o;
    CHECK(lk_options_init(&o, 4242) == LK_ERR_OPTION);
    CHECK(memcmp(&before, &o, sizeof o) == 0); /* untouched on error */
    CHECK(strstr(lk_last_error(), "4242") != NULL);
    CHECK(lk_options_init(&o, LK_LOSS_LOG) == LK_OK);
    CHECK(strcmp(lk_last_error(), "") == 0); /* success resets the message */
}

/* A caller compiled against a larger, future layout passes a bigger size: accepted. A size
 * below the first layout is rejected before anything else is read. */
static void test_options_size(void) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    float s[2] = {0.0f, 1.0f}, loss = -7.0f;
    int32_t g[1] = {1};
    o.size = 200;
    CHECK(lk_dense_f32(&o, 1, 2, s, g, NULL, NULL, &loss, NULL) == LK_OK);
    CHECK(fabs(loss - log1p(exp(-1.0))) < 1e-6);
    o.size = 111;
    loss = -7.0f;
    CHECK(lk_dense_f32(&o, 1, 2, s, g, NULL, NULL, &loss, NULL) == LK_ERR_OPTION);
    CHECK(loss == -7.0f);
}

/* Initialisation never writes past the caller's struct. A program compiled against the first
 * layout owns exactly 112 bytes; the canary after them must survive lk_options_init_size with
 * that size and the lk_options_init function (not the macro), on the heap and on the stack. A
 * program compiled against a larger, later layout gets the library's bytes and opt->size = the
 * library's size, its tail untouched (and not read: opt->size excludes it). */
enum { FIRST_LAYOUT = 112, CANARY = 0xA5 };

static int bytes_are(const unsigned char *p, size_t count, unsigned char value) {
    for (size_t i = 0; i < count; i++) {
        if (p[i] != value) return 0;
    }
    return 1;
}

static void test_options_init_size(void) {
    unsigned char *heap = malloc(FIRST_LAYOUT + 64);
    CHECK(heap != NULL);
    if (!heap) return;
    lk_options *old = (lk_options *)heap;
    memset(heap, CANARY, FIRST_LAYOUT + 64);
    CHECK(lk_options_init_size(old, LK_LOSS_HINGE, FIRST_LAYOUT) == LK_OK);
    CHECK(bytes_are(heap + FIRST_LAYOUT, 64, CANARY));
    uint32_t size;
    int32_t loss;
    double angular_margin;
    memcpy(&size, heap, sizeof size);
    memcpy(&loss, heap + 4, sizeof loss);
    memcpy(&angular_margin, heap + 104, sizeof angular_margin); /* the first layout's last field */
    CHECK(size == FIRST_LAYOUT && loss == LK_LOSS_HINGE && angular_margin == 0.5);
    memset(heap, CANARY, FIRST_LAYOUT + 64);
    CHECK((lk_options_init)(old, LK_LOSS_COSFACE) == LK_OK);
    CHECK(bytes_are(heap + FIRST_LAYOUT, 64, CANARY));
    memcpy(&size, heap, sizeof size);
    memcpy(&angular_margin, heap + 104, sizeof angular_margin);
    CHECK(size == FIRST_LAYOUT && angular_margin == 0.35);
    free(heap);

    /* The same on the stack, the overwrite the finding was about. */
    struct { lk_options opt; unsigned char canary[64]; } frame;
    memset(&frame, CANARY, sizeof frame);
    CHECK(lk_options_init_size(&frame.opt, LK_LOSS_LOG, FIRST_LAYOUT) == LK_OK);
    CHECK(bytes_are(frame.canary, sizeof frame.canary, CANARY) && frame.opt.size == FIRST_LAYOUT);

    /* A later, larger caller layout: the library writes its own size and leaves the rest. */
    union { lk_options opt; unsigned char bytes[FIRST_LAYOUT + 48]; } newer;
    memset(&newer, CANARY, sizeof newer);
    CHECK(lk_options_init_size(&newer.opt, LK_LOSS_RISK, sizeof newer) == LK_OK);
    CHECK(newer.opt.size == sizeof(lk_options) && newer.opt.loss == LK_LOSS_RISK);
    CHECK(bytes_are(newer.bytes + sizeof(lk_options), sizeof newer - sizeof(lk_options), CANARY));
    memset(&newer, CANARY, sizeof newer);
    CHECK(lk_options_init_size(&newer.opt, LK_LOSS_LOG, (size_t)-1) == LK_OK); /* a huge size_t */
    CHECK(newer.opt.size == sizeof(lk_options));
    CHECK(bytes_are(newer.bytes + sizeof(lk_options), sizeof newer - sizeof(lk_options), CANARY));

    /* Smaller than the first layout, a NULL opt, an unknown loss: an error and nothing written. */
    memset(&newer, CANARY, sizeof newer);
    CHECK(lk_options_init_size(&newer.opt, LK_LOSS_LOG, FIRST_LAYOUT - 1) == LK_ERR_OPTION);
    CHECK(strstr(lk_last_error(), "size = 111") != NULL);
    CHECK(lk_options_init_size(&newer.opt, LK_LOSS_LOG, 0) == LK_ERR_OPTION);
    CHECK(lk_options_init_size(&newer.opt, 4242, FIRST_LAYOUT) == LK_ERR_OPTION);
    CHECK(strstr(lk_last_error(), "4242") != NULL);
    CHECK(bytes_are(newer.bytes, sizeof newer, CANARY));
    CHECK(lk_options_init_size(NULL, LK_LOSS_LOG, FIRST_LAYOUT) == LK_ERR_NULL);
    CHECK(strstr(lk_last_error(), "opt") != NULL);
    /* The header's lk_options_init is the sized call with this program's sizeof. */
    CHECK(lk_options_init(&newer.opt, LK_LOSS_LOG) == LK_OK && newer.opt.size == sizeof(lk_options));
    CHECK(strcmp(lk_last_error(), "") == 0);
}

/* lk_last_error() is per thread: a failure on one thread is not seen by another. */
struct thread_result { int status; char message[256]; };

static void *fail_in_thread(void *arg) {
    struct thread_result *r = arg;
    float s[2] = {0.0f, 1.0f};
    int32_t g[1] = {9};
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    r->status = lk_dense_f32(&o, 1, 2, s, g, NULL, NULL, NULL, NULL);
    snprintf(r->message, sizeof r->message, "%s", lk_last_error());
    return NULL;
}

static void test_thread_local_error(void) {
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG); /* succeeds: this thread's message is "" */
    struct thread_result r = {0, ""};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fail_in_thread, &r) == 0);
    pthread_join(t, NULL);
    CHECK(r.status == LK_ERR_LABEL);
    CHECK(strstr(r.message, "gold[0] = 9") != NULL);
    CHECK(strcmp(lk_last_error(), "") == 0);
}

/* L-Softmax from C: x = (1, 0), w = rows (cos t, sin t) and (0, 1) with t = 0.3, gold 0, m = 2:
 * the gold's logit is psi(t) = cos(2t) (t < pi/2), the other logit 0, so the loss is
 * log(1 + exp(0 - cos(2t))); with m = 1 it is log(1 + exp(-cos t)). And a bad margin fails. */
static void test_lsoftmax(void) {
    const double t = 0.3;
    float x[2] = {1.0f, 0.0f}, w[4] = {(float)cos(t), (float)sin(t), 0.0f, 1.0f};
    float loss = -7.0f, dx[2], dw[4];
    int32_t g[1] = {0};
    lk_options o;
    lk_options_init(&o, LK_LOSS_LOG);
    CHECK(o.margin == 2);
    CHECK(lk_lsoftmax_f32(&o, 1, 2, 2, x, w, g, NULL, &loss, dx, dw) == LK_OK);
    CHECK(fabs(loss - log1p(exp(-cos(2 * t)))) < 1e-6);
    o.margin = 1;
    CHECK(lk_lsoftmax_f32(&o, 1, 2, 2, x, w, g, NULL, &loss, NULL, NULL) == LK_OK);
    CHECK(fabs(loss - log1p(exp(-cos(t)))) < 1e-6);
    o.margin = 0;
    loss = -7.0f;
    CHECK(lk_lsoftmax_f32(&o, 1, 2, 2, x, w, g, NULL, &loss, dx, dw) == LK_ERR_OPTION);
    CHECK(loss == -7.0f && strstr(lk_last_error(), "margin") != NULL);
}

/* CosFace from C, two classes: log(1 + exp(s c1 - s (c0 - m))). */
static void test_cosface(void) {
    double c[2] = {0.7, 0.2}, loss;
    int32_t g[1] = {0};
    lk_options o;
    CHECK(lk_options_init(&o, LK_LOSS_COSFACE) == LK_OK);
    CHECK(o.angular_margin == 0.35 && o.angular_scale == 64.0);
    o.angular_scale = 10.0;
    CHECK(lk_dense_f64(&o, 1, 2, c, g, NULL, NULL, &loss, NULL) == LK_OK);
    CHECK(fabs(loss - log1p(exp(10.0 * 0.2 - 10.0 * (0.7 - 0.35)))) < 1e-14);
}

/* The Hessian's diagonal from C: the log loss's p (1 - p) in both types, candidate lists, and the
 * output-untouched rule on an error (the same status and message as lk_dense). */
static void test_hessian(void) {
    double s[3] = {0.0, log(3.0), 1.0}, loss, grad[3], hess[3];
    int32_t g[1] = {1};
    lk_options o;
    CHECK(lk_options_init(&o, LK_LOSS_LOG) == LK_OK);
    CHECK(lk_dense_hessian_f64(&o, 1, 3, s, g, NULL, NULL, &loss, grad, hess) == LK_OK);
    double z = 1.0 + 3.0 + exp(1.0);
    double p[3] = {1.0 / z, 3.0 / z, exp(1.0) / z};
    for (int j = 0; j < 3; j++) CHECK(fabs(hess[j] - p[j] * (1.0 - p[j])) < 1e-15);
    float s32[3] = {0.0f, (float)log(3.0), 1.0f}, hess32[3];
    CHECK(lk_dense_hessian_f32(&o, 1, 3, s32, g, NULL, NULL, NULL, NULL, hess32) == LK_OK);
    for (int j = 0; j < 3; j++) CHECK(fabs(hess32[j] - p[j] * (1.0 - p[j])) < 1e-6);
    int64_t offsets[2] = {0, 3};
    double hl[3];
    CHECK(lk_lists_hessian_f64(&o, 1, offsets, s, g, NULL, NULL, NULL, NULL, hl) == LK_OK);
    for (int j = 0; j < 3; j++) CHECK(hl[j] == hess[j]);
    /* The max-based losses: 0. */
    o.loss = LK_LOSS_HINGE;
    CHECK(lk_dense_hessian_f64(&o, 1, 3, s, g, NULL, NULL, NULL, NULL, hess) == LK_OK);
    CHECK(hess[0] == 0 && hess[1] == 0 && hess[2] == 0);
    /* A bad label: LK_ERR_LABEL with lk_dense's message, nothing written. */
    int32_t bad[1] = {3};
    char message[256];
    CHECK(lk_dense_f64(&o, 1, 3, s, bad, NULL, NULL, &loss, grad) == LK_ERR_LABEL);
    snprintf(message, sizeof message, "%s", lk_last_error());
    loss = grad[0] = hess[0] = hess[1] = hess[2] = -7.0;
    CHECK(lk_dense_hessian_f64(&o, 1, 3, s, bad, NULL, NULL, &loss, grad, hess) == LK_ERR_LABEL);
    CHECK(strcmp(message, lk_last_error()) == 0);
    CHECK(loss == -7.0 && grad[0] == -7.0 && hess[0] == -7.0 && hess[1] == -7.0 && hess[2] == -7.0);
    CHECK(lk_lists_hessian_f64(&o, 1, offsets, s, bad, NULL, NULL, &loss, grad, hess) == LK_ERR_LABEL);
    CHECK(hess[0] == -7.0 && hess[2] == -7.0);
}

int main(void) {
    test_layout();
    test_version();
    test_cpu_level();
    test_status_names();
    test_options_init();
    test_options_size();
    test_options_init_size();
    test_thread_local_error();
    test_lsoftmax();
    test_cosface();
    test_hessian();
    if (failures) {
        fprintf(stderr, "c_tests: %d check(s) failed\n", failures);
        return 1;
    }
    printf("c_tests: all checks passed\n");
    return 0;
}
