/* The fuzz harness's own checks, made to fail: each case below runs one of them in a child
 * process on inputs whose answer is known, and the child must abort (a finding) exactly when
 * the case says so. A check that could never fire would let the fuzzer pass what it exists to
 * catch. Built and run by `make test-fuzz`. */
#include "fuzz_losskit.c"

#include <sys/wait.h>

typedef struct {
    const char *what;
    int loss, layout, entry, lists;
    double s[2], c[2];
    int32_t gold;
    long double weight;
    double got;
    int flagged; /* expected */
    double cost_scale; /* 0: the default, 1 */
    int short_cost;    /* pass a 1-byte cost buffer (a loss that reads no costs must not read it) */
    double smoothing;  /* label_smoothing (LK_LOSS_LOG) */
} Case;

int main(void) {
    const double M = DBL_MAX;
    const Case cases[] = {
        /* max(s + c) - s_1 = 0.3M + 0.6M = 0.9M, stored as +inf: a finding */
        {"hinge, gold hope, 0.9 DBL_MAX as INFINITY", LK_LOSS_HINGE, LK_COST_PER_EXAMPLE, E_DENSE64, 0,
         {0.6 * M, -0.6 * M}, {-0.3 * M, 0}, 1, 1.0L, INFINITY, 1, 0, 0, 0},
        /* weight 2: the true loss 1.8 DBL_MAX is beyond double: +inf is right */
        {"hinge, weight 2, 1.8 DBL_MAX as INFINITY", LK_LOSS_HINGE, LK_COST_PER_EXAMPLE, E_DENSE64, 0,
         {0.6 * M, -0.6 * M}, {-0.3 * M, 0}, 1, 2.0L, INFINITY, 0, 0, 0, 0},
        /* max(s + c) - max(s - c) = 0.85M - 0.2M = 0.65M on a list, stored as +inf: a finding */
        {"ramp on a list, 0.65 DBL_MAX as INFINITY", LK_LOSS_RAMP, 0, E_LISTS64, 1,
         {-0.05 * M, 0.4 * M}, {0.9 * M, 0.2 * M}, 0, 1.0L, INFINITY, 1, 0, 0, 0},
        /* the same loss returned finite: nothing to flag */
        {"ramp on a list, finite", LK_LOSS_RAMP, 0, E_LISTS64, 1,
         {-0.05 * M, 0.4 * M}, {0.9 * M, 0.2 * M}, 0, 1.0L, 1.1685e308, 0, 0, 0, 0},
        /* soft ramp, 0/1 costs, cost_scale 1e5 beside a score of FLT_MAX: F - H is about 2e5,
         * times the weight 1e308 beyond double: +inf is right (formed at the scores' size, the
         * costs would vanish below the ulp of 3.4e38 and F - H would look like 0) */
        {"soft ramp, 0/1 costs under a huge score, weight 1e308, INFINITY", LK_LOSS_SOFT_RAMP, LK_COST_ZERO_ONE,
         E_DENSE64, 0, {-25, 3.4028234663852886e38}, {0, 0}, 0, 1e308L, INFINITY, 0, 1e5, 0, 0},
        /* the same with weight 1: the loss is about 2e5, stored as +inf: a finding */
        {"soft ramp, 0/1 costs under a huge score, weight 1, INFINITY", LK_LOSS_SOFT_RAMP, LK_COST_ZERO_ONE,
         E_DENSE64, 0, {-25, 3.4028234663852886e38}, {0, 0}, 0, 1.0L, INFINITY, 1, 1e5, 0, 0},
        /* perceptron reads no costs: a cost buffer of one byte under LK_COST_PER_EXAMPLE is not
         * read (ASan would report it); max(s) - s_0 = 1, stored as +inf: a finding */
        {"perceptron, a short cost buffer it does not read", LK_LOSS_PERCEPTRON, LK_COST_PER_EXAMPLE, E_DENSE64, 0,
         {1, 2}, {0, 0}, 0, 1.0L, INFINITY, 1, 0, 1, 0},
        /* perceptron on a list whose gold is -1: the oracle (lowest cost: candidate 1) stands in,
         * so the costs are read; max(s) - s_1 = 33, times 1e307 beyond double: +inf is right */
        {"perceptron on a list, gold -1, the oracle by cost, INFINITY", LK_LOSS_PERCEPTRON, 0, E_LISTS64, 1,
         {24.25, -8.75}, {0.99999988, -25}, -1, 1e307L, INFINITY, 0, 0, 0, 0},
        /* the log loss with label smoothing 0.2 over two scores of 0.9 DBL_MAX: the loss is ln 2,
         * but their sum overflows double (lk_dense returned -inf before b7de0b5): a finding */
        {"log, label smoothing, a sum of scores beyond double, -INFINITY", LK_LOSS_LOG, 0, E_DENSE64, 0,
         {0.9 * M, 0.9 * M}, {0, 0}, 0, 1.0L, -INFINITY, 1, 0, 0, 0.2},
        /* the same loss returned finite: nothing to flag */
        {"log, label smoothing, finite", LK_LOSS_LOG, 0, E_DENSE64, 0,
         {0.9 * M, 0.9 * M}, {0, 0}, 0, 1.0L, 0.6931471805599453, 0, 0, 0, 0.2},
        /* label smoothing 0.5 over {DBL_MAX, -DBL_MAX}: lse - s_0 = 0, and 0.5 (s_0 - 0) = DBL_MAX / 2:
         * finite, stored as +inf: a finding */
        {"log, label smoothing, DBL_MAX / 2 as INFINITY", LK_LOSS_LOG, 0, E_DENSE64, 0,
         {M, -M}, {0, 0}, 0, 1.0L, INFINITY, 1, 0, 0, 0.5},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *t = &cases[i];
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            unsetenv("LK_FUZZ_LOG"); /* a finding aborts */
            freopen("/dev/null", "w", stderr);
            lk_options o;
            lk_options_init(&o, t->loss);
            o.reduction = LK_REDUCE_NONE;
            o.cost_layout = t->layout;
            if (t->cost_scale != 0) o.cost_scale = t->cost_scale;
            o.label_smoothing = t->smoothing;
            /* as check_finite_losses passes them: no cost rows under 0/1 costs on dense rows */
            const void *cost = !t->lists && t->layout == LK_COST_ZERO_ONE ? NULL : t->c;
            if (t->short_cost) cost = malloc(1);
            check_finite_example(t->entry, &o, F64, 0, t->s, 0, 2, cost, 0, t->gold, t->weight, t->got);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int flagged = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        int ok = t->flagged ? flagged : clean;
        printf("%s: %s (%s)\n", ok ? "ok" : "FAIL", t->what, flagged ? "flagged" : clean ? "not flagged" : "died");
        failures += !ok;
    }
    return failures != 0;
}
