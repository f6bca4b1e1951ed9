/*
 * losskit.h — training losses and their gradients over raw float buffers.
 *
 * LossKit computes, per example, a training loss and its gradient with respect to the scores
 * a model produced. The math is written once in Swift; this hand-written header and the shared
 * library liblosskit.so make it callable from C, C++, Python (ctypes) and anything that can
 * call C. This header is the whole public contract: what is not declared here is not public.
 *
 * ---------------------------------------------------------------------------------------------
 * Conventions shared by every function (stated once here)
 * ---------------------------------------------------------------------------------------------
 *  - Every function returns an lk_status. LK_OK (0) is success. On any error the function
 *    writes NOTHING to its outputs and records a message for this thread, available through
 *    lk_last_error(), naming the argument and the index (e.g. "gold[17] = 1003 is outside
 *    [0, 1000)"). A successful call resets this thread's message to "". No input, however
 *    malformed, may crash the calling process.
 *  - Sizes are int64_t, labels int32_t. Every computing function comes as _f32 (float) and _f64
 *    (double) with identical semantics. Sums over the batch accumulate in double in both; sums
 *    over candidates accumulate in the input type within blocks of 32 vectors (a few hundred
 *    values) and in double across blocks, so a float32 sum's error grows with the block, not
 *    with the row (the accuracy bounds below include it).
 *  - Scores. A score of -INFINITY means "this candidate does not exist" (a mask): it never wins
 *    a max, adds nothing to a log-sum-exp or an expectation, is never the oracle, and gets a
 *    zero gradient. An example with no candidate other than masked ones is LK_ERR_DOMAIN, as is
 *    a masked gold under a loss that uses the gold score. +INFINITY anywhere in a score is
 *    LK_ERR_DOMAIN. A NaN score makes that example's loss and whole gradient row NaN (it is
 *    never silently dropped); under SUM and MEAN the total is then NaN.
 *  - Costs. c[y] = cost_scale * cost(gold, y). Costs are read only by the losses that use them
 *    (HINGE, SOFTMAX_MARGIN, RISK, RAMP, SOFT_RAMP, INFINITE_RAMP; HOPE_FEAR when its fear or a
 *    MAX/LSE hope has a non-zero scale or its hope is ORACLE; never LOG, PERCEPTRON, SQUARED,
 *    SQUENTROPY), and only for candidates that are not masked; every cost read must be finite
 *    and stay finite, in the input type, when multiplied by cost_scale and the largest term
 *    scale and added to its score (else LK_ERR_DOMAIN); cost_scale times the largest term
 *    scale must itself be finite in the input type (else LK_ERR_OPTION; chains compute in
 *    double). Costs may be negative; the ">= 0" properties of the losses below
 *    assume costs >= 0 with a zero cost for the gold.
 *  - Ties. A max over tied values picks the gold candidate if it is among them, otherwise the
 *    lowest index. The oracle (the candidate of lowest unscaled cost) breaks ties by highest
 *    score, then lowest index.
 *  - Weights. weight (NULL = all 1) multiplies each example's loss and gradient; a weight read
 *    must be finite and >= 0 (else LK_ERR_DOMAIN).
 *  - Ignored and zero-weight examples (gold == opt->ignore_label in dense rows, or weight
 *    exactly 0) are not read beyond their weight and label: their gold is not validated, they contribute exactly 0
 *    (never NaN) and get a zero gradient.
 *  - Reductions. LK_REDUCE_NONE writes loss[i] = weight[i] * loss_i for each example (0 for an
 *    ignored one). LK_REDUCE_SUM writes one total sum_i weight[i] * loss_i. LK_REDUCE_MEAN (the
 *    default) writes that total divided by the summed weight of the examples that were not
 *    ignored (LK_ERR_DOMAIN if that sum overflows); a mean over zero weight is 0 with a zero
 *    gradient, never NaN. With n = 0, SUM and MEAN write 0 to a non-NULL loss and nothing else
 *    is read. A term weight[i] * loss_i may exceed DBL_MAX (weights and losses both near it),
 *    and the total's partial sums may overflow, or meet +inf and -inf (losses of both signs),
 *    where the total or the mean does not: the total is then also summed in units of 2^-1100,
 *    and the mean as sum_i (weight[i] / summed weight) * loss_i, so that SUM and MEAN are
 *    +-INFINITY only where their true value exceeds the type's range, and NaN only where it is
 *    undefined (a NaN loss, or losses of +inf and -inf); error: a few units in the last place
 *    of the largest term.
 *  - The gradient is always the gradient of exactly what was written to loss: for SUM
 *    weight[i] * dloss_i, for MEAN that divided by the summed weight, for NONE weight[i] * dloss_i
 *    (each example's own weighted loss).
 *  - Optional outputs: loss and every gradient buffer may be NULL; that work is skipped.
 *    With n = 0 nothing is read and every pointer may be NULL.
 *  - Buffers: outputs must not overlap any input or each other (as with memcpy); a gradient
 *    cannot be computed in place of the scores. An output whose true value exceeds the largest
 *    finite value of its type (FLT_MAX, DBL_MAX) is stored as +-INFINITY.
 *  - Order of checks when several errors apply: a NULL opt (LK_ERR_NULL), then the options
 *    (LK_ERR_OPTION, LK_ERR_UNSUPPORTED; checked even when n = 0), then required pointers
 *    (LK_ERR_NULL), then sizes (LK_ERR_SIZE), then gold labels (LK_ERR_LABEL), then values
 *    (LK_ERR_DOMAIN). Each phase scans the whole batch before the next begins, so the error
 *    reported is the first one (lowest index) of the earliest phase.
 *  - Options are validated only for the losses that use them (cost_scale, reduction and threads
 *    always; label_smoothing only by LOG; square_k and square_m only by SQUARED; hope, fear,
 *    hope_scale and fear_scale only by HOPE_FEAR; angular_scale and angular_margin only by
 *    COSFACE and ARCFACE; margin and lambda only by lk_lsoftmax; cost_layout only by the losses
 *    that read costs; z_loss and softcap by every loss on dense rows, and by lk_lists_*,
 *    lk_chain_f32/f64 and lk_lsoftmax_*, which refuse a non-zero value). A NaN or infinite option
 *    value, an unknown enum value, or opt->size smaller than the first published layout
 *    (112 bytes on x86-64: lk_options up to angular_margin) is LK_ERR_OPTION.
 *  - Determinism and reentrancy: the same inputs give bit-identical outputs at any thread count;
 *    the library keeps no global mutable state (the error message is per thread), so functions
 *    may be called concurrently from many threads on different buffers.
 *
 * References used throughout:
 *  [GS10]  K. Gimpel, N. A. Smith. Softmax-Margin CRFs: Training Log-Linear Models with Cost
 *          Functions. NAACL 2010.
 *  [GS12]  K. Gimpel, N. A. Smith. Structured Ramp Loss Minimization for Machine Translation.
 *          NAACL 2012.
 *  [CS01]  K. Crammer, Y. Singer. On the Algorithmic Implementation of Multiclass Kernel-based
 *          Vector Machines. JMLR 2001.
 *  [TJHA05] I. Tsochantaridis et al. Large Margin Methods for Structured and Interdependent
 *          Output Variables. JMLR 2005.
 *  [DLSVL08] C. B. Do, Q. Le, C. H. Teo, O. Chapelle, A. Smola. Tighter Bounds for Structured
 *          Estimation. NIPS 2008.
 *  [SMTH06] D. A. Smith, J. Eisner. Minimum Risk Annealing for Training Log-Linear Models.
 *          COLING/ACL 2006.
 *  [SZVWW16] C. Szegedy et al. Rethinking the Inception Architecture (label smoothing). CVPR 2016.
 *  [HB20]  L. Hui, M. Belkin. Evaluation of Neural Architectures Trained with Square Loss vs
 *          Cross-Entropy in Classification Tasks. ICLR 2021 (arXiv 2006.07322).
 *  [HBW23] L. Hui, M. Belkin, S. Wright. Cut your Losses with Squentropy. ICML 2023.
 *  [WWZJ18] H. Wang et al. CosFace: Large Margin Cosine Loss for Deep Face Recognition. CVPR 2018.
 *  [WCLL18] F. Wang, J. Cheng, W. Liu, H. Liu. Additive Margin Softmax for Face Verification.
 *          IEEE Signal Processing Letters 2018.
 *  [DGXZ19] J. Deng, J. Guo, N. Xue, S. Zafeiriou. ArcFace: Additive Angular Margin Loss for Deep
 *          Face Recognition. CVPR 2019.
 *  [LWYY16] W. Liu, Y. Wen, Z. Yu, M. Yang. Large-Margin Softmax Loss for Convolutional Neural
 *          Networks. ICML 2016 (arXiv 1612.02295).
 *  [CND+22] A. Chowdhery et al. PaLM: Scaling Language Modeling with Pathways. arXiv 2204.02311
 *          (z-loss, section 5).
 *  [GRP+24] Gemma Team. Gemma 2: Improving Open Language Models at a Practical Size. arXiv
 *          2408.00118 (logit soft-capping).
 */
#ifndef LOSSKIT_H
#define LOSSKIT_H

#include <stddef.h> /* size_t: the caller's sizeof(lk_options) given to lk_options_init_size */
#include <stdint.h> /* int32_t, int64_t, uint16_t, uint32_t: the fixed-width types of every signature */

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
 * Version
 * ========================================================================================== */

/* The one place the version is written: lk_version(), the soname (liblosskit.so.MAJOR), the
 * installed losskit.pc and CMake package, and the Python package all take it from these lines. */
#define LK_VERSION_MAJOR 0
#define LK_VERSION_MINOR 3
#define LK_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH; compare with lk_version_number() to detect a mismatch
 * between the header a program was compiled with and the library it loaded. */
#define LK_VERSION_NUMBER (LK_VERSION_MAJOR * 10000 + LK_VERSION_MINOR * 100 + LK_VERSION_PATCH)

/* "MAJOR.MINOR.PATCH" of the loaded library; a static string, never NULL. Since 0.1.0. */
const char *lk_version(void);
/* LK_VERSION_NUMBER of the loaded library. Since 0.1.0. */
int32_t lk_version_number(void);

/* The vector instruction level the library computes with on this machine: "x86-64" (the
 * baseline every x86-64 CPU runs), "avx2" (AVX2 + FMA) or "avx512" (AVX-512 F/CD/BW/DQ/VL).
 * liblosskit.so is built for the baseline and, on its first call, loads the widest build of
 * itself that the CPU supports from the folder of its real file (symlinks to liblosskit.so
 * resolved), named after that file: liblosskit-avx512.so, else liblosskit-avx2.so, else it
 * computes itself (beside an installed liblosskit.so.0.2.0: liblosskit-avx512.so.0.2.0 and
 * liblosskit-avx2.so.0.2.0). A build is loaded only if, read from the file before loading, it is
 * a complete x86-64 ELF shared object marked as a LossKit build of exactly the level its name
 * says and of this version, and, once loaded, it is not this library and reports that level and
 * version; a missing, truncated, foreign or mislabelled file (a copy of liblosskit.so, a build of
 * another level under that name, a build of another version) is passed over, never entered. The
 * environment variable LOSSKIT_ISA caps the level: "x86-64" (or "baseline"), "avx2" or "avx512";
 * any other value is ignored, and a level the CPU lacks is never used. Results agree across
 * levels within the documented float rounding. A static string, never NULL. Since 0.1.0. */
const char *lk_cpu_level(void);

/* ============================================================================================
 * Status codes — values are pinned and only ever appended.
 * ========================================================================================== */

typedef int32_t lk_status;
#define LK_OK              0 /* success */
#define LK_ERR_NULL        1 /* a required pointer is NULL */
#define LK_ERR_SIZE        2 /* a size is negative, inconsistent or overflows */
#define LK_ERR_LABEL       3 /* a gold label, index or offset is out of range */
#define LK_ERR_OPTION      4 /* an option or parameter is outside its domain */
#define LK_ERR_DOMAIN      5 /* the inputs have no defined loss (e.g. no finite candidate) */
#define LK_ERR_UNSUPPORTED 6 /* this loss is not defined on this structure */
#define LK_ERR_ALLOC       7 /* scratch memory could not be allocated */

/* The name of a status, e.g. "LK_ERR_LABEL"; "LK_ERR_UNKNOWN" for a value not listed above.
 * A static string, never NULL. Since 0.1.0. */
const char *lk_status_name(lk_status status);

/* This thread's message for its last failed call, naming the argument and the index; "" if the
 * last call succeeded or none was made. Never NULL; valid until this thread's next LossKit
 * call. Since 0.1.0. */
const char *lk_last_error(void);

/* ============================================================================================
 * Enumerations — values are pinned once published; callers use the names.
 * ========================================================================================== */

/* Losses (see lk_dense_f32 for the formula of each). */
#define LK_LOSS_LOG             1  /* log loss, cross-entropy, CRF loss */
#define LK_LOSS_PERCEPTRON      2  /* perceptron */
#define LK_LOSS_HINGE           3  /* hinge, structured SVM (margin rescaling) */
#define LK_LOSS_SOFTMAX_MARGIN  4  /* softmax-margin [GS10] */
#define LK_LOSS_RISK            5  /* risk, expected cost [SMTH06] */
#define LK_LOSS_RAMP            6  /* ramp (hope-fear) [DLSVL08, GS12] */
#define LK_LOSS_SOFT_RAMP       7  /* soft ramp [GS12] */
#define LK_LOSS_INFINITE_RAMP   8  /* infinite ramp [GS12] */
#define LK_LOSS_SQUARED         9  /* square loss [HB20] */
#define LK_LOSS_SQUENTROPY      10 /* squentropy [HBW23] */
#define LK_LOSS_HOPE_FEAR       11 /* the general form F(s + f*c) - H(s - h*c) */
#define LK_LOSS_COSFACE         12 /* additive cosine margin, AM-Softmax [WWZJ18, WCLL18]; dense rows */
#define LK_LOSS_ARCFACE         13 /* additive angular margin [DGXZ19]; dense rows */

/* Reductions over the batch. */
#define LK_REDUCE_NONE 0 /* one weighted loss per example */
#define LK_REDUCE_SUM  1 /* one total: sum_i weight[i] * loss_i */
#define LK_REDUCE_MEAN 2 /* the total divided by the summed weight of non-ignored examples */

/* Cost layouts of the dense structure. */
#define LK_COST_ZERO_ONE     0 /* c[j] = [j != gold]; the cost pointer is ignored (may be NULL) */
#define LK_COST_PER_EXAMPLE  1 /* cost is n*k, row i = example i's cost of each class */
#define LK_COST_CLASS_MATRIX 2 /* cost is k*k, row g = the cost of each class when gold is g */

/* Hope and fear terms of LK_LOSS_HOPE_FEAR. */
#define LK_TERM_GOLD   0 /* hope only: s[gold] */
#define LK_TERM_ORACLE 1 /* hope only: s[oracle], the candidate of lowest cost */
#define LK_TERM_MAX    2 /* max over candidates of the cost-augmented scores */
#define LK_TERM_LSE    3 /* log-sum-exp over candidates of the cost-augmented scores */

/* ============================================================================================
 * Options
 * ========================================================================================== */

/* Options of every computing function. Initialise with lk_options_init, then set fields by
 * name. The library reads only the first opt->size bytes and rejects a size smaller than this
 * first published layout (112 bytes on x86-64), so fields can be appended in later versions
 * without breaking callers compiled against this one; fields an older caller lacks take their
 * defaults. Initialisation never writes past the caller's struct either: see lk_options_init. */
typedef struct lk_options {
    uint32_t size;            /* sizeof(lk_options) as the caller compiled it */
    int32_t  loss;            /* LK_LOSS_* */
    int32_t  reduction;       /* LK_REDUCE_NONE | LK_REDUCE_SUM | LK_REDUCE_MEAN (default) */
    int32_t  ignore_label;    /* dense rows: a gold equal to it is ignored; default -100 */
    int32_t  cost_layout;     /* dense rows: LK_COST_ZERO_ONE (default), LK_COST_PER_EXAMPLE,
                                 LK_COST_CLASS_MATRIX */
    int32_t  threads;         /* >= 0; 0 = all cores, or $LOSSKIT_NUM_THREADS if set. Large
                                 batches are split across threads (small ones stay on the
                                 calling thread); any count gives the same bits. A pass runs
                                 on min(threads, chunks, work / 2^17) threads (at least 1),
                                 work being the values it reads (dense n*k, lists their
                                 candidates, chains sum of length*tags^2) and chunks cut at
                                 about 2^14 of them (chains: at most 64). */
    double   cost_scale;      /* alpha >= 0, finite; multiplies every cost; default 1 */
    double   label_smoothing; /* LK_LOSS_LOG only, epsilon in [0, 1); default 0 */
    double   square_k;        /* LK_LOSS_SQUARED kappa > 0, finite; default 1 */
    double   square_m;        /* LK_LOSS_SQUARED M, finite; default 1 */
    int32_t  hope;            /* LK_LOSS_HOPE_FEAR: LK_TERM_GOLD (default) | ORACLE | MAX | LSE */
    int32_t  fear;            /* LK_LOSS_HOPE_FEAR: LK_TERM_MAX | LK_TERM_LSE (default) */
    double   hope_scale;      /* LK_LOSS_HOPE_FEAR h >= 0, finite; default 0 */
    double   fear_scale;      /* LK_LOSS_HOPE_FEAR f >= 0, finite; default 1 */
    int32_t  margin;          /* lk_lsoftmax m in [1, 1000]; default 2 */
    double   lambda;          /* lk_lsoftmax blend lambda >= 0, finite; default 0 */
    double   angular_scale;   /* LK_LOSS_COSFACE/ARCFACE s > 0, finite; default 64 */
    double   angular_margin;  /* LK_LOSS_COSFACE/ARCFACE m in [0, pi]; default 0.35 for
                                 COSFACE, 0.5 for every other loss */
    /* Appended in 0.3.0 (a caller's older, 112-byte struct leaves them at their defaults). */
    double   z_loss;          /* dense rows: lambda >= 0, finite; adds lambda lse(s)^2 per
                                 example [CND+22]; default 0 (off) */
    double   softcap;         /* dense rows: c >= 0, finite; 0 (default) = off, else every
                                 score s becomes c tanh(s / c) before the loss [GRP+24] */
} lk_options;

/* Initialises the first min(size, L) bytes of *opt, where size is the caller's
 * sizeof(lk_options) and L the loaded library's: opt->loss = loss, every other field its default
 * (listed beside each field above; with the defaults, HOPE_FEAR is softmax-margin), and
 * opt->size = min(size, L), the bytes written. Nothing past them is written: a caller compiled
 * against an older, smaller lk_options keeps the memory after its struct, and the fields of a
 * caller's newer, larger struct that this library does not know are left as they were (and are
 * not read, since opt->size excludes them).
 * @return LK_OK; LK_ERR_NULL if opt is NULL; LK_ERR_OPTION if size is smaller than the first
 *         published layout (112 bytes on x86-64) or loss is not an LK_LOSS_* value (then nothing
 *         is written). Since 0.1.0. */
lk_status lk_options_init_size(lk_options *opt, int32_t loss, size_t size);

/* lk_options_init(opt, loss) is lk_options_init_size(opt, loss, sizeof(lk_options)) with this
 * header's lk_options: the macro below, so the size is the caller's, fixed when it compiles.
 * The function of the same name (called through the library's symbol, e.g. from ctypes, or as
 * (lk_options_init)(opt, loss)) writes exactly the first published layout, 112 bytes on x86-64,
 * with opt->size = 112, in this and every later version; LK_ERR_NULL and LK_ERR_OPTION as above.
 * Since 0.1.0. */
/* Declared before the macro, so the macro does not expand here. */
lk_status lk_options_init(lk_options *opt, int32_t loss);
#define lk_options_init(opt, loss) lk_options_init_size((opt), (loss), sizeof(lk_options))

/* ============================================================================================
 * Dense rows — multiclass classification, fixed candidate sets.
 * ========================================================================================== */

/* Loss and gradient over n examples of k classes each.
 *
 * Per example with scores s (k), gold g, costs c[j] = cost_scale * cost(g, j), p = softmax(s)
 * and K = the number of unmasked classes:
 *
 *   LK_LOSS_LOG             lse(s) - s[g]                    grad p - e_g
 *     with label smoothing eps:  lse(s) - (1-eps) s[g] - (eps/K) sum_j s[j]
 *                                                            grad p - ((1-eps) e_g + eps/K)
 *                                                            (= PyTorch cross_entropy's
 *                                                            label_smoothing, unweighted) [SZVWW16]
 *   LK_LOSS_PERCEPTRON      max(s) - s[g]                    grad e_argmax - e_g
 *   LK_LOSS_HINGE           max(s + c) - s[g]                grad e_argmax(s+c) - e_g
 *                           (0/1 cost: Crammer-Singer [CS01]; margin rescaling [TJHA05])
 *   LK_LOSS_SOFTMAX_MARGIN  lse(s + c) - s[g]                grad softmax(s + c) - e_g  [GS10]
 *   LK_LOSS_RISK            R = sum_j p_j c_j                grad p_j (c_j - R)        [SMTH06]
 *   LK_LOSS_RAMP            max(s + c) - max(s - c)          grad e_argmax(s+c) - e_argmax(s-c)
 *                                                            [DLSVL08, GS12]; ignores s[g]
 *   LK_LOSS_SOFT_RAMP       lse(s + c) - lse(s - c)          grad softmax(s+c) - softmax(s-c)
 *   LK_LOSS_INFINITE_RAMP   max(s + c) - s[o]                grad e_argmax(s+c) - e_o  [GS12]
 *                           o = oracle: lowest unscaled cost, then highest score, then lowest
 *                           index (with 0/1 cost, the gold unless it is masked)
 *   LK_LOSS_SQUARED         (1/K) [kappa (s[g] - M)^2 + sum_{j != g} s[j]^2]
 *                           grad (2/K) kappa (s[g] - M) at g, (2/K) s[j] elsewhere   [HB20]
 *                           (kappa = square_k, M = square_m)
 *   LK_LOSS_SQUENTROPY      lse(s) - s[g] + (1/(K-1)) sum_{j != g} s[j]^2  (0 when K = 1)
 *                           grad p - e_g + (2/(K-1)) s[j] for j != g                  [HBW23]
 *   LK_LOSS_HOPE_FEAR       F(s + f c) - H(s - h c), F in {MAX, LSE} with scale f = fear_scale,
 *                           H in {GOLD: s[g], ORACLE: s[o], MAX, LSE} with scale h = hope_scale
 *                           (h applies to MAX and LSE only)           [GS12, DLSVL08]
 *                           grad dF - dH: a MAX term's gradient is the one-hot at its argmax,
 *                           an LSE term's the softmax of its argument, GOLD/ORACLE one-hots.
 *                           LOG = (GOLD, LSE, f = 0),
 *                           PERCEPTRON = (GOLD, MAX, f = 0), HINGE = (GOLD, MAX, 1),
 *                           SOFTMAX_MARGIN = (GOLD, LSE, 1), RAMP = (MAX h=1, MAX f=1),
 *                           SOFT_RAMP = (LSE 1, LSE 1), INFINITE_RAMP = (ORACLE, MAX 1).
 *   LK_LOSS_COSFACE         lse(z) - z[g] over the logits z[j] = S cos_j (j != g),
 *                           z[g] = S (cos_g - M)                  grad S (p_z - e_g)  [WWZJ18]
 *   LK_LOSS_ARCFACE         lse(z) - z[g] with z[g] = S cos(theta_g + M) when cos_g > cos(pi - M),
 *                           else S (cos_g - M sin M) (the usual fallback that keeps z[g]
 *                           decreasing in theta_g); z[j] = S cos_j elsewhere     [DGXZ19]
 *                           The switch (theta_g + M < pi <=> cos_g > -cos M) is decided
 *                           exactly for the float cos_g: -cos M is held in double-double
 *                           (about 2^-104), not rounded (z[g] jumps there).
 *                           grad S (p_z - e_g), times dz[g]/(S dcos_g) = cos M + cos_g sin M /
 *                           sin theta_g (1 in the fallback) at g
 *     (S = angular_scale, M = angular_margin, p_z = softmax(z).) The angular losses take
 *     COSINES as scores: the caller owns the normalisation (cos_j = <x, w_j> / (|x| |w_j|), as
 *     in the papers) and gets the gradient w.r.t. the cosines, to chain through it. A finite
 *     cosine outside [-1, 1] is clamped into it, and its gradient is 0 (the clamp's derivative,
 *     as in PyTorch); -INFINITY masks a class as for every loss. sin theta_g = sqrt(1 - cos_g^2)
 *     is floored at sqrt(2u), u the unit roundoff of the input type (its value at the largest
 *     cosine below 1), so the ArcFace gradient at cos_g = 1 is large but finite. Costs and
 *     cost_layout are not read. S (1 + M), the largest |z|, must be finite in the input type.
 *
 * Score shaping, around any of the losses above (opt->softcap, opt->z_loss; dense rows only):
 *   softcap c > 0           every score s is replaced by s' = c tanh(s / c) (Gemma 2's logit
 *                           soft-capping [GRP+24]) before the loss and the z-loss; -INFINITY (a
 *                           masked class) stays -INFINITY. The gradient is chained through it:
 *                           dL/ds = dL/ds' (1 - tanh^2(s / c)), the factor formed from
 *                           exp(-2 |s / c|) (no cancellation where tanh is near 1).
 *   z_loss lambda > 0       adds lambda lse(s')^2 to each example's loss (PaLM's z-loss [CND+22];
 *                           inside the value written to loss, weighted and reduced with it), and
 *                           2 lambda lse(s') softmax(s') to its gradient.
 *   Both apply to every loss of the list (for the angular losses, to the cosines). Costs and the
 *   oracle are read as without them. Not on candidate lists, chains or lk_lsoftmax
 *   (LK_ERR_UNSUPPORTED), nor with a Hessian (lk_dense_hessian_*: LK_ERR_UNSUPPORTED).
 *
 * Masked classes (score -INFINITY) are left out of every max, sum and count K. Every log-sum-exp
 * is computed as m + log1p(sum_{j != argmax} exp(v[j] - m)) with m = max v, so LOG with the gold
 * the argmax is log1p(sum_{j != g} exp(s[j] - s[g])) and a loss near zero keeps its digits.
 * Accuracy, against exact arithmetic on the same float inputs: the loss is within
 * 4u (|L| + sum_i |dL/dx_i| |x_i|) of its exact value (u the unit roundoff of the input type,
 * x the scores, the costs read and cost_scale), each gradient row within 4u of its own
 * conditioning, with no entry of the wrong sign above that level (checked over the regimes of
 * bindings/python/tests/test_trust_flat.py). To that end the max terms and the log-sum-exp
 * shifts take the cost-augmented score s[j] + f c[j] of their argmax in double, a log-sum-exp
 * with costs takes its exps centred on that argmax, (s[k] - s[j]) + f (c[k] - c[j]) (an exponent
 * is positive only by the input type's rounding of s + f c and is capped at 32), and RISK is
 * formed around the argmax's cost (with 0/1 costs, from the sum over the candidates but the
 * gold), so that R never exceeds the largest cost. Exps below the smallest normal number
 * underflow gradually: a near-zero loss made of subnormal terms keeps its value and gradient
 * down to the smallest normal number. Gradients that are a difference of two softmaxes
 * (SOFT_RAMP, HOPE_FEAR with LSE on both sides) carry, beyond that bound, the rounding of the
 * probabilities themselves: each entry is within a further 4u in absolute terms (measured: up
 * to 0.5u in float32); where the two distributions nearly coincide, that is most of the entry.
 * Where both terms peak on the same candidate its entry is formed from the two sums' difference.
 * Ties, costs, weights, reductions, NaN and errors: see the conventions at the top.
 * Properties: PERCEPTRON >= 0 always; with costs >= 0, HINGE, RISK, RAMP, SOFT_RAMP and
 * INFINITE_RAMP >= 0, and SOFTMAX_MARGIN >= LOG and SOFTMAX_MARGIN >= HINGE.
 *
 * @param opt     options (required); opt->loss any LK_LOSS_* of the list above.
 * @param n       number of examples, >= 0.
 * @param k       number of classes, >= 1 when n > 0.
 * @param scores  n*k, row-major; required when n > 0.
 * @param gold    n labels, each in [0, k) or equal to opt->ignore_label; required when n > 0.
 * @param cost    read per opt->cost_layout by the losses that use costs: NULL/ignored for
 *                LK_COST_ZERO_ONE, n*k for LK_COST_PER_EXAMPLE, k*k for LK_COST_CLASS_MATRIX
 *                (row = gold class); required in those two layouts when the loss reads costs.
 * @param weight  n per-example weights, finite and >= 0, or NULL (all 1).
 * @param loss    n values under LK_REDUCE_NONE, else 1; or NULL.
 * @param grad    n*k gradient w.r.t. scores (0 for ignored rows and masked classes); or NULL.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; scores or gold NULL with n > 0; cost NULL when read;
 *   LK_ERR_OPTION      opt->size too small; unknown loss, reduction, cost_layout, hope or fear;
 *                      threads < 0; cost_scale, label_smoothing, square_k, square_m,
 *                      hope_scale, fear_scale, angular_scale, angular_margin, z_loss or
 *                      softcap outside its domain (see lk_options); S (1 + M) overflowing
 *                      the input type;
 *                      cost_scale times fear_scale or hope_scale (or 1) overflowing the
 *                      input type;
 *   LK_ERR_UNSUPPORTED a loss that is not defined on dense rows;
 *   LK_ERR_SIZE        n < 0; k < 1 with n > 0; n*k (or k*k) elements overflowing the address
 *                      space in bytes (which bounds the n labels, weights and losses too),
 *                      found before anything is read;
 *   LK_ERR_LABEL       a gold outside [0, k) that is not ignore_label (weight != 0);
 *   LK_ERR_DOMAIN      +INFINITY score; a row with every class masked; a masked gold under a
 *                      loss that uses s[g] (LOG, PERCEPTRON, HINGE, SOFTMAX_MARGIN, SQUARED,
 *                      SQUENTROPY, HOPE_FEAR with GOLD hope); a non-finite cost read, or one
 *                      that overflows once scaled and added to its score; a weight that is
 *                      NaN, infinite or negative; under MEAN, a summed weight that overflows.
 * Since 0.1.0. */
lk_status lk_dense_f32(const lk_options *opt, int64_t n, int64_t k,
                       const float *scores, const int32_t *gold, const float *cost,
                       const float *weight, float *loss, float *grad);
/* As lk_dense_f32, in double. Since 0.1.0. */
lk_status lk_dense_f64(const lk_options *opt, int64_t n, int64_t k,
                       const double *scores, const int32_t *gold, const double *cost,
                       const double *weight, double *loss, double *grad);

/* As lk_dense_f32, with the scores in bfloat16: each uint16_t holds the upper 16 bits of an IEEE
 * binary32 (sign, 8 exponent bits, 7 fraction bits; torch.bfloat16, ml_dtypes.bfloat16).
 * The call is lk_dense_f32 on the scores widened to float (exact): the same checks, errors,
 * messages, options (costs, softcap, z-loss, weights, reductions, threads), the same loss bits;
 * every sum in float or wider. Each row is widened into a scratch row as it is read (threads*k
 * floats, twice that with grad but no grad_f32): nothing of size n*k is allocated. No chunk of
 * short rows is screened at once: each row is widened and checked alone, then widened again to
 * be computed, and its gradient narrowed; measured 1.35 to 1.38 times lk_dense_f32's time on
 * the same values (log loss, 1 thread, 4096 x 1000, 1024 x 128256 and 4096 x 32000;
 * bench/bf16.py), while the caller's buffers take half the bytes.
 *
 * The gradient (lk_dense_f32's, in float) goes to grad_f32 as it is, and/or to grad rounded
 * once to bfloat16 (to nearest even: a relative error of at most 2^-8 beyond the float
 * gradient's own, bfloat16 keeping 8 significant bits; an entry past the largest bfloat16 by
 * half an ulp is +-INFINITY; NaN stays NaN). Either may be NULL, or both (the loss only).
 *
 * Accuracy: against lk_dense_f64 on the same (widened) scores, the loss is lk_dense_f32's
 * (measured 1.2e-8 to 2.9e-8 relative on the shapes above) and each grad entry within 2^-8
 * relative plus lk_dense_f32's error (measured at most 3.9e-3 relative; float32's 6.4e-7):
 * bindings/python/tests/test_bf16.py, bench/bf16.py.
 *
 * @param scores   n*k bfloat16, row-major; required when n > 0.
 * @param cost, weight, loss  float, as for lk_dense_f32.
 * @param grad     n*k bfloat16, or NULL.   @param grad_f32  n*k float, or NULL.
 * @return as lk_dense_f32. Since 0.3.0. */
lk_status lk_dense_bf16(const lk_options *opt, int64_t n, int64_t k,
                        const uint16_t *scores, const int32_t *gold, const float *cost,
                        const float *weight, float *loss, uint16_t *grad, float *grad_f32);

/* As lk_dense_f32, and in `hess` (n*k, or NULL) the diagonal of the Hessian of exactly what is
 * written to loss with respect to the scores, H[i, j] = d^2 loss / d scores[i, j]^2 (the
 * examples do not interact, so every other entry of the batch's Hessian is 0 but the
 * off-diagonal ones within a row, which are not computed). Weights and reductions apply as to
 * the gradient: weight[i] times the example's Hessian, divided by the summed weight under MEAN.
 * The inputs, their checks, their errors and messages are those of lk_dense_f32, whether or
 * not hess is NULL (then the call is lk_dense_f32); on error hess is not written either. The
 * gradient-boosting objectives (XGBoost, LightGBM) need this diagonal; so do diagonal
 * second-order methods.
 *
 * Per example, with p = softmax(s), q+ = softmax(s + c), q- = softmax(s - c), q_v = softmax(v)
 * (masked classes excluded; their entry is 0):
 *
 *   LK_LOSS_LOG             p (1 - p)             (with label smoothing too: its term is linear)
 *   LK_LOSS_SOFTMAX_MARGIN  q+ (1 - q+)
 *   LK_LOSS_RISK            p_j (c_j - R) (1 - 2 p_j)   (d/ds_j of the gradient p_j (c_j - R),
 *                                                         with dR/ds_j = p_j (c_j - R))
 *   LK_LOSS_SOFT_RAMP       q+ (1 - q+) - q- (1 - q-)   (may be negative: the loss is not convex)
 *   LK_LOSS_HOPE_FEAR       [fear LSE] qF (1 - qF) - [hope LSE] qH (1 - qH), qF = softmax(s + f c),
 *                           qH = softmax(s - h c); a MAX, GOLD or ORACLE term adds 0
 *   LK_LOSS_SQUARED         2 kappa / K at the gold, 2 / K at every other unmasked class
 *   LK_LOSS_SQUENTROPY      p (1 - p), plus 2 / (K - 1) at every unmasked class but the gold (K > 1)
 *   LK_LOSS_PERCEPTRON, LK_LOSS_HINGE, LK_LOSS_RAMP, LK_LOSS_INFINITE_RAMP
 *                           0: a max of scores is piecewise linear, so its Hessian is 0 almost
 *                           everywhere (it is undefined, a kink, where the argmax is tied or
 *                           changes; 0 is written there too)
 *   LK_LOSS_COSFACE, LK_LOSS_ARCFACE (w.r.t. the cosines, with z, p_z, S, M as in lk_dense_f32)
 *                           S^2 p_z (1 - p_z) off the gold; at the gold
 *                           p_z (1 - p_z) (dz[g]/dcos_g)^2 + (p_z - 1) d^2 z[g] / dcos_g^2, where
 *                           dz[g]/dcos_g = S (CosFace; ArcFace's fallback) or S (cos M + cos_g sin M
 *                           / sin theta_g), and d^2 z[g] / dcos_g^2 = 0 (CosFace; the fallback) or
 *                           S sin M / sin^3 theta_g (sin theta_g floored as for the gradient, so the
 *                           entry is large but finite at cos_g = 1); 0 for a cosine outside [-1, 1]
 *                           (the clamp is flat).
 *
 * The log-sum-exp terms' q (1 - q) is formed from the exps around the term's argmax as
 * e (((1 - e) + rest) / den) / den, den = 1 + rest the sum of the exps, never as 1 - q: an example
 * whose gold dominates (q near 1) keeps the digits of its small entry. Known limits: the
 * differences of two terms (SOFT_RAMP, HOPE_FEAR with LSE on both sides) carry the rounding of
 * each term, about u q (1 - q), which is most of the entry where the two softmaxes nearly
 * coincide; RISK's factor 1 - 2 p_j cancels near p_j = 1/2 (absolute error about u |p (c - R)|).
 * A NaN score makes the example's row NaN. Cost: the softmaxes are computed again for the
 * Hessian (one more row of scratch per thread for SOFT_RAMP, HOPE_FEAR with two LSE terms and
 * RISK), in a scalar pass: measured 2.0 to 2.7 times the time of lk_dense_f32 with its gradient
 * (n = 2048, k = 1000, one thread, AVX-512, a shared machine).
 *
 * @param hess  n*k, or NULL; 0 for ignored and zero-weight rows and for masked classes.
 * @return as lk_dense_f32. Since 0.2.0. */
lk_status lk_dense_hessian_f32(const lk_options *opt, int64_t n, int64_t k,
                               const float *scores, const int32_t *gold, const float *cost,
                               const float *weight, float *loss, float *grad, float *hess);
/* As lk_dense_hessian_f32, in double. Since 0.2.0. */
lk_status lk_dense_hessian_f64(const lk_options *opt, int64_t n, int64_t k,
                               const double *scores, const int32_t *gold, const double *cost,
                               const double *weight, double *loss, double *grad, double *hess);

/* ============================================================================================
 * Candidate lists — structured prediction over enumerated outputs (n-best, k-best).
 * ========================================================================================== */

/* Loss and gradient over n examples, example i owning the candidates offsets[i] ..< offsets[i+1]
 * of the flat buffers (CSR layout): the setting of reranking and of structured models trained
 * on a k-best list, where each candidate y of Y(x) has its own score s[y] and cost(gold, y), and
 * lists vary in length.
 *
 * Every loss of lk_dense_f32 with the same formula, per list (K = its unmasked candidates),
 * except label smoothing and the angular losses (LK_ERR_UNSUPPORTED: dense-row notions). The gold is an index
 * inside the example's list, or -1 when the reference is not among the candidates: then the
 * oracle o — the candidate of lowest unscaled cost, then highest score, then lowest index —
 * stands in for the gold everywhere (the gold term, the tie rule), which needs costs.
 * cost = NULL means 0/1 cost against the gold. opt->ignore_label and opt->cost_layout are not
 * read. Threads share a batch by candidates, not by lists.
 *
 * @param opt      options (required).
 * @param n        number of lists, >= 0.
 * @param offsets  n + 1 offsets: offsets[0] = 0, non-decreasing; offsets[n] = total candidates.
 * @param scores   offsets[n] scores.
 * @param gold     n indices: gold[i] in [0, offsets[i+1] - offsets[i]), or -1 (oracle).
 * @param cost     offsets[n] unscaled costs, or NULL (0/1 against the gold; then no gold may be
 *                 -1). Read by the losses that read costs, and by the oracle.
 * @param weight   n per-list weights, finite and >= 0, or NULL (all 1).
 * @param loss     n values under LK_REDUCE_NONE, else 1; or NULL.
 * @param grad     offsets[n] gradient w.r.t. scores (0 for zero-weight lists and masked
 *                 candidates); or NULL.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; offsets, scores or gold NULL with n != 0; cost NULL while a
 *                      list of non-zero weight has gold -1;
 *   LK_ERR_OPTION      as lk_dense_f32 (except cost_layout, which is not read);
 *   LK_ERR_UNSUPPORTED label smoothing; COSFACE, ARCFACE;
 *   LK_ERR_SIZE        n < 0; (n + 1) * 8 bytes of offsets overflowing the address space
 *                      (found before anything is read); offsets[0] != 0; a decreasing
 *                      offset; offsets[n] candidates overflowing the address space in bytes;
 *   LK_ERR_LABEL       a gold outside its list that is not -1 (weight != 0);
 *   LK_ERR_DOMAIN      an empty list of non-zero weight and gold -1 (with any other gold, the
 *                      gold is outside the empty list: LK_ERR_LABEL, labels being checked
 *                      first); otherwise as lk_dense_f32, per list.
 * Since 0.1.0. */
lk_status lk_lists_f32(const lk_options *opt, int64_t n, const int64_t *offsets,
                       const float *scores, const int32_t *gold, const float *cost,
                       const float *weight, float *loss, float *grad);
/* As lk_lists_f32, in double. Since 0.1.0. */
lk_status lk_lists_f64(const lk_options *opt, int64_t n, const int64_t *offsets,
                       const double *scores, const int32_t *gold, const double *cost,
                       const double *weight, double *loss, double *grad);

/* As lk_lists_f32, and in `hess` (offsets[n], or NULL) the diagonal of the Hessian of exactly
 * what is written to loss with respect to the scores: per list, the formulas of
 * lk_dense_hessian_f32 (with the oracle standing in for a gold of -1), times the list's weight
 * and the reduction's factor; 0 for zero-weight lists and masked candidates. Inputs, checks,
 * errors and messages are those of lk_lists_f32 (on error hess is not written either).
 * @return as lk_lists_f32. Since 0.2.0. */
lk_status lk_lists_hessian_f32(const lk_options *opt, int64_t n, const int64_t *offsets,
                               const float *scores, const int32_t *gold, const float *cost,
                               const float *weight, float *loss, float *grad, float *hess);
/* As lk_lists_hessian_f32, in double. Since 0.2.0. */
lk_status lk_lists_hessian_f64(const lk_options *opt, int64_t n, const int64_t *offsets,
                               const double *scores, const int32_t *gold, const double *cost,
                               const double *weight, double *loss, double *grad, double *hess);

/* ============================================================================================
 * Linear chains — sequence labelling (CRF and friends).
 * ========================================================================================== */

/* Loss and gradients over n sequences of up to t_max positions, each position one of `tags`
 * tags. The candidates of sequence i (length T = lengths[i]) are all its tag paths y, scored
 *
 *   s(y) = start[y_0] + sum_{t<T} emissions[i, t, y_t] + sum_{1<=t<T} transitions[y_{t-1}, y_t]
 *          + end[y_{T-1}]
 *
 * with the cost of a path summed over its positions, c(y) = cost_scale * sum_t cost[i, t, y_t]
 * (Hamming when cost is NULL: 1 per position whose tag is not the gold's). Every loss of
 * lk_dense_f32 but SQUARED, SQUENTROPY, label smoothing and the angular losses
 * (LK_ERR_UNSUPPORTED) has the same
 * formula over this exponential candidate set, computed by dynamic programming in double,
 * O(T tags^2) per sequence: forward-backward for LSE terms (LOG is the CRF negative
 * log-likelihood), Viterbi over s + f c for MAX terms (HINGE is the structured SVM with margin
 * rescaling), a lexicographic Viterbi (lowest cost, then highest score) for the oracle, and the
 * first-order expectation semiring for RISK [LE09]. Ties: a max over tied paths is the gold
 * path if it is among them, otherwise one of them, deterministically; the oracle breaks ties
 * by highest score, then deterministically.
 *
 * -INFINITY forbids: a transition, a start or end tag, or a tag at a position (emission). A
 * sequence with no allowed path is LK_ERR_DOMAIN, as is a forbidden gold path under a loss that
 * uses the gold score. NaN anywhere in a sequence's inputs (or in transitions, start, end)
 * makes its loss and gradients NaN. A sequence of length 0 has loss 0 and gradient 0.
 *
 * Overflow bound: the programs sum finite inputs along paths in double. A sequence of length T
 * (weight != 0, no NaN) is LK_ERR_DOMAIN when
 *   B = T (max|emission| + max|transition| + cost_scale * s * max|cost|) + max|start| + max|end|
 * exceeds DBL_MAX / 8 (~2.2e307; maxima over the finite entries read, s the largest term scale,
 * max|cost| = 1 for Hamming costs, 0 when no cost is read): below it every path score, cost-
 * augmented score, log Z, expected cost and fear minus hope is finite. float32 inputs reach it
 * only through cost_scale. Viterbi and the marginals apply the same bound without costs.
 * opt->ignore_label and opt->cost_layout are not read.
 *
 * Gradients: d_emissions (n*t_max*tags; 0 at positions >= length and for zero-weight
 * sequences); d_transitions (tags*tags), d_start, d_end (tags): the shared parameters get the
 * sum over sequences of each sequence's weighted gradient (divided by the summed weight under
 * MEAN). Each gradient output is optional. Threads share a batch by work (positions * tags^2).
 * Weights up to the largest finite value are computed exactly (in units of a power of two when
 * the partial sums could overflow); an entry whose true value exceeds the largest finite value
 * is stored as +-INFINITY, never NaN.
 *
 * Accuracy: every magnitude is handled relative to each position's largest score, so huge
 * scores (an emission of 1e16 beside zeros; inputs near 1e300 within the overflow bound) leave
 * the other positions' marginals and gradients exact; cost-augmented scores keep the digits of
 * the emissions where w * cost dwarfs them. Near-zero losses keep their digits: a log-sum-exp
 * fear minus a path hope (LOG, SOFTMAX_MARGIN, HOPE_FEAR) as log1p of the other paths' mass,
 * SOFT_RAMP as (v+(gold) - v-(gold)) + log1p(A) - log1p(B) with its gold entries formed from the
 * other paths, RISK with its costs centred per position on the most likely tag (R never exceeds
 * the largest path cost; E[c | y_t] - R formed without cancelling). A path fear against a
 * log-sum-exp hope is split the same way. Gradients of a log-sum-exp term are formed against its
 * dominant path: that path's node and edge entries as minus the other paths' mass through them,
 * never as a marginal near 1 minus 1 (a chain with a single allowed path has a gradient of
 * exactly 0). MAX terms run Viterbi on rows shifted by their largest entry, so that an emission
 * of 1e300 beside 0.5 keeps the 0.5 in the comparisons. Known limits: gradients that
 * are a difference of two distributions that nearly coincide (soft ramp and log-sum-exp hope
 * and fear away from the gold, risk's p (c - R) for tags of negligible mass beside a dominant
 * one) carry rounding of the order of u times the expectations they difference; d_transitions
 * of RISK at the dominant edge likewise.
 *
 * @param opt          options (required).
 * @param n            sequences, >= 0.   @param t_max  positions per sequence in the buffers, >= 0.
 * @param tags         tags, >= 1 when n > 0.
 * @param emissions    n*t_max*tags; positions >= lengths[i] are not read.
 * @param transitions  tags*tags, [from][to]; read whenever n > 0.
 * @param start, end   tags each, or NULL (zeros); read whenever n > 0.
 * @param lengths      n lengths, each in [0, t_max].
 * @param gold         n*t_max tags, each in [0, tags) at positions < lengths[i].
 * @param cost         n*t_max*tags unscaled per-position costs, or NULL (Hamming). Read (where
 *                     the emission is not -INFINITY) by the losses that read costs.
 * @param weight       n weights, finite and >= 0, or NULL.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; emissions, transitions, lengths or gold NULL with n != 0;
 *   LK_ERR_OPTION      as lk_dense_f32;
 *   LK_ERR_UNSUPPORTED SQUARED, SQUENTROPY, label smoothing, COSFACE, ARCFACE;
 *   LK_ERR_SIZE        n, t_max or tags negative; tags = 0 with n > 0; a length outside
 *                      [0, t_max] (weight != 0); a buffer whose byte size overflows int64 —
 *                      lengths and weight/loss (n), gold (n*t_max), emissions, cost and
 *                      d_emissions (n*t_max*tags), transitions and d_transitions (tags^2 doubles'
 *                      worth) — checked before anything is read, n = 0 included;
 *   LK_ERR_LABEL       a gold tag outside [0, tags) at a position < length (weight != 0);
 *   LK_ERR_DOMAIN      +INFINITY in emissions, transitions, start or end; a non-finite cost
 *                      read, or one overflowing once scaled; a sequence with no allowed path;
 *                      a sequence over the overflow bound above;
 *                      a forbidden gold path (losses that use the gold score); a bad weight.
 * [LE09] Z. Li, J. Eisner. First- and Second-Order Expectation Semirings with Applications to
 *        Minimum-Risk Training on Translation Forests. EMNLP 2009. Since 0.1.0. */
lk_status lk_chain_f32(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                       const float *emissions, const float *transitions, const float *start,
                       const float *end, const int32_t *lengths, const int32_t *gold,
                       const float *cost, const float *weight, float *loss,
                       float *d_emissions, float *d_transitions, float *d_start, float *d_end);
/* As lk_chain_f32, in double. Since 0.1.0. */
lk_status lk_chain_f64(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                       const double *emissions, const double *transitions, const double *start,
                       const double *end, const int32_t *lengths, const int32_t *gold,
                       const double *cost, const double *weight, double *loss,
                       double *d_emissions, double *d_transitions, double *d_start, double *d_end);

/* Decoding: the best path of each sequence (Viterbi) and its score. opt may be NULL (defaults);
 * otherwise its size is checked and only opt->threads is read. path (n*t_max, required when
 * n != 0) gets -1 at positions >= length; score (n) is optional. Ties go to the lowest tags. A
 * sequence of length 0 has score 0 and an all -1 path; a NaN input makes its score NaN (and its
 * path all -1).
 * @return LK_OK; LK_ERR_NULL, LK_ERR_OPTION, LK_ERR_SIZE as lk_chain_f32 (path NULL with
 *         n != 0 is LK_ERR_NULL; path and score sized n*t_max and n); LK_ERR_DOMAIN for
 *         +INFINITY in a score read, a sequence with no allowed path, or one over the overflow
 *         bound of lk_chain_f32 (without costs). Since 0.1.0. */
lk_status lk_chain_viterbi_f32(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                               const float *emissions, const float *transitions,
                               const float *start, const float *end, const int32_t *lengths,
                               int32_t *path, float *score);
lk_status lk_chain_viterbi_f64(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                               const double *emissions, const double *transitions,
                               const double *start, const double *end, const int32_t *lengths,
                               int32_t *path, double *score);

/* Posteriors: marginals[i, t, y] = p(y_t = y) under p(y) = exp(s(y)) / Z (n*t_max*tags,
 * required when n != 0; 0 at positions >= length) and log Z (n, optional). opt as for Viterbi.
 * A sequence of length 0 has log Z 0 and zero marginals; a NaN input makes its log Z and
 * marginals NaN. Errors as lk_chain_viterbi_f32. Since 0.1.0. */
lk_status lk_chain_marginals_f32(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                                 const float *emissions, const float *transitions,
                                 const float *start, const float *end, const int32_t *lengths,
                                 float *marginals, float *log_z);
lk_status lk_chain_marginals_f64(const lk_options *opt, int64_t n, int64_t t_max, int64_t tags,
                                 const double *emissions, const double *transitions,
                                 const double *start, const double *end, const int32_t *lengths,
                                 double *marginals, double *log_z);

/* ============================================================================================
 * L-Softmax — features and class weights (the fused "linear layer + loss" form).
 * ========================================================================================== */

/* Large-Margin Softmax [LWYY16] over n feature rows x_i (d each) and k class weight rows w_j
 * (d each): the log loss over the logits f_j = w_j . x_i, except that the gold's logit is
 *
 *   f~_y = (lambda f_y + |w_y| |x_i| psi(theta_y)) / (1 + lambda),   cos theta_y = f_y / (|w_y| |x_i|)
 *   psi(theta) = (-1)^j cos(m theta) - 2j  for theta in [j pi/m, (j+1) pi/m], j = 0 .. m-1
 *
 *   loss_i = lse(f~) - f~_y           (f~_j = f_j for j != y)
 *
 * psi is continuous and decreasing on [0, pi] (psi(0) = 1, psi(pi) = 1 - 2m) and with m = 1 is
 * cos theta: m = 1 is exactly the log loss on x w^T, for any lambda. lambda anneals the margin
 * in: large lambda is close to the log loss, lambda = 0 the full margin (m = margin).
 * When |x_i| or |w_y| is 0 the angle is undefined: the gold's logit is then the plain f_y (= 0)
 * with the plain gradient, and never NaN.
 *
 * Accuracy. For m >= 2 the gold's logit is computed from the inputs in double, not from the
 * rounded logit f_y: the norms like a careful nrm2 (rescaled by a power of two when the sum of
 * squares would overflow or lose digits to underflow, so rows of 1e-300 or of float32
 * subnormals keep every digit), theta = 2 atan2(|x/|x| - w/|w||, |x/|x| + w/|w||) from the
 * chords between the unit vectors (accurate to a few ulps at every angle, where arccos of a
 * rounded cos theta is not near 0 and pi; where |cos theta| <= 1/2 the chords are skipped and
 * theta = atan2(sqrt((1 - c)(1 + c)), c), as accurate there), then cos(m theta) and
 * sin(m theta) (libm). So a loss near zero (theta near 0) keeps its digits at every margin.
 * (The Chebyshev polynomial T_m of the rounded cos theta is not used for the value: it loses
 * about m^2 u near theta = 0, which the accuracy bound below does not allow.) Where |psi'| > 16
 * the gold's gradient terms are formed around that short chord (not as psi' w_y + (psi - cos theta psi') |w_y|/|x_i|
 * x_i, two terms of size m^2 |w_y| that cancel when theta is small), in float64 with the unit
 * vectors to about u^2. Measured against exact arithmetic on the same float inputs
 * (bindings/python/tests/test_trust_angular.py), the loss is within 4u (|L| + sum |dL/dz| |z|)
 * over every input z (u the unit roundoff of the input type) and each gradient row within 4u of
 * its own conditioning, with standard-normal inputs, losses near zero (m = 1 .. 4, 10, 50,
 * 1000), norms down to 1e-310 and float32 subnormal components. That gradient bound is
 * normwise: d_x and d_w are matrix products (sum_j G_ij w_j, sum_i G_ij x_i), so an entry that
 * cancels keeps the rounding of its terms; measured entry by entry against that entry's own
 * conditioning, up to 1.7 times the bound (m = 4, float64, standard-normal inputs;
 * bindings/python/tests/test_accuracy.py). float32 logits are dot products
 * accumulated in float32 (below); with long rows (d in the thousands) their error can exceed
 * that bound.
 *
 * Gradients: with G = dloss/df~ (p - e_y, times the weight and the reduction's factor),
 *   d_x_i = sum_j G_ij w_j + G_iy [(alpha - 1) w_y + beta |w_y|/|x_i| x_i]
 *   d_w_j = sum_i G_ij x_i + sum_{i: y_i = j} G_ij [(alpha - 1) x_i + beta |x_i|/|w_j| w_j]
 * with alpha = (lambda + psi')/(1 + lambda), beta = (psi - cos theta_y psi')/(1 + lambda) and
 * psi' = dpsi/dcos theta = (-1)^j m U_{m-1}(cos theta_y) (U: Chebyshev of the second kind).
 * Large weights: when a row's weight (times the reduction's factor) is large enough that the
 * products' partial sums could overflow the input type (within about 2^-3 of FLT_MAX / DBL_MAX,
 * counting max |w|, max |x_i| and the gold's terms), G is computed in units of a power of two
 * 2^-s (per row for d_x, one common unit for d_w) and the outputs are scaled back exactly when
 * stored: no inf - inf = NaN from finite input, and an output whose true value exceeds the
 * input type's range is +-INFINITY. Other inputs keep their bits (s = 0); when s > 0, entries
 * far below the largest ones of their product may lose digits to underflow (absolute error
 * about u times the largest). The weighted loss may overflow to +INFINITY, never NaN.
 *
 * Cost: three products of n*k*d multiply-adds (the logits and the two gradients), blocked and
 * vectorised, accumulated in the input type within a row and in double across lanes (float32:
 * the usual error of a length-d dot product, ~sqrt(d) ulps); n*k exps; for m >= 2, one pass of
 * O(d) in double over each row x_i and its gold's w_y (|x_i| and x_i . w_y), a second where
 * |cos theta_y| > 1/2 (the chords), and where |psi'| > 16 (margins above 4 at small angles) two
 * more for the chord form of the gradient, four in float64 (refined unit vectors, see Accuracy;
 * about 1.5 to 2 times the time of a float64 call at m = 8, d = 256, k = 64 with every angle
 * small, measured on a loaded machine; float32 about the same as without);
 * scratch of n*k values of the input type plus O(k + n + d). Ignored and zero-weight rows of x
 * are not read and cost nothing.
 * opt->loss is not read (initialise with LK_LOSS_LOG); opt->ignore_label, weights, reductions,
 * threads and the conventions at the top apply as for dense rows, with x and w the score-like
 * inputs: +-INFINITY in a row of x that is read, or anywhere in w, is LK_ERR_DOMAIN, and a NaN
 * makes the losses it reaches NaN (a NaN in w reaches every example). A logit that overflows the
 * input type is LK_ERR_DOMAIN, as are a gold's logit (lambda f_y + |w_y| |x_i| psi) / (1 + lambda)
 * that overflows it (|psi| <= 2m - 1, so it may overflow where f_y does not, or the other way
 * round) and a logit whose float partial sums overflow although no input is NaN (e.g. float32
 * 1e20 * 1e20 - 1e20 * 1e20); the message names the example and the class.
 *
 * @param opt     options (required): margin m in [1, 1000], lambda >= 0 finite, reduction,
 *                ignore_label, threads.
 * @param n       number of examples, >= 0.
 * @param d       feature dimension, >= 1 when n > 0.
 * @param k       number of classes, >= 1 when n > 0.
 * @param x       n*d features, row-major; required when n > 0.
 * @param w       k*d class weights, row-major; required when n > 0.
 * @param gold    n labels in [0, k) or equal to opt->ignore_label; required when n > 0.
 * @param weight  n per-example weights, finite and >= 0, or NULL (all 1).
 * @param loss    n values under LK_REDUCE_NONE, else 1; or NULL.
 * @param d_x     n*d gradient w.r.t. x (0 for ignored and zero-weight rows); or NULL.
 * @param d_w     k*d gradient w.r.t. w; or NULL. With n = 0 (and k, d >= 0) it is set to 0.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; x, w or gold NULL with n > 0;
 *   LK_ERR_OPTION      opt->size too small; unknown reduction; threads < 0; margin outside
 *                      [1, 1000]; lambda negative, infinite or NaN;
 *   LK_ERR_SIZE        n, d or k negative; d or k of 0 with n > 0; a buffer whose size in bytes
 *                      overflows int64: n*4 (gold), n*sizeof (weight, loss), n*d (x, d_x), k*d
 *                      (w, d_w; checked also when n = 0, as d_w is written) or n*k (the
 *                      logits' scratch); checked before anything is read;
 *   LK_ERR_LABEL       a gold outside [0, k) that is not ignore_label (weight != 0);
 *   LK_ERR_DOMAIN      +-INFINITY in x (a row read) or w; a logit or a gold's logit that
 *                      overflows the input type, or a logit whose partial sums overflow; a
 *                      weight NaN, infinite or negative; under MEAN, a summed weight that
 *                      overflows;
 *   LK_ERR_ALLOC       the scratch could not be allocated.
 * Since 0.1.0. */
lk_status lk_lsoftmax_f32(const lk_options *opt, int64_t n, int64_t d, int64_t k,
                          const float *x, const float *w, const int32_t *gold,
                          const float *weight, float *loss, float *d_x, float *d_w);
/* As lk_lsoftmax_f32, in double. Since 0.1.0. */
lk_status lk_lsoftmax_f64(const lk_options *opt, int64_t n, int64_t d, int64_t k,
                          const double *x, const double *w, const int32_t *gold,
                          const double *weight, double *loss, double *d_x, double *d_w);

/* ============================================================================================
 * Fused linear layer + loss — large vocabularies and label sets.
 * ========================================================================================== */

/* The dense loss of the logits z = x w^T + b (z_ij = x_i . w_j + b_j), and its gradients with
 * respect to x, w and b, without storing the n*k logits: lk_dense_f32 on z, computed tile by tile.
 *
 * Losses: those of lk_dense_f32 whose hope is the gold score: LK_LOSS_LOG (with
 * label_smoothing), LK_LOSS_SOFTMAX_MARGIN, LK_LOSS_HINGE, LK_LOSS_PERCEPTRON and
 * LK_LOSS_HOPE_FEAR with hope = LK_TERM_GOLD; costs per opt->cost_layout as for dense rows;
 * opt->softcap and opt->z_loss apply to z as on dense rows (s' = c tanh(z / c), + lambda
 * lse(s')^2); weights, ignore_label, reductions and threads as for dense rows. Every other loss
 * is LK_ERR_UNSUPPORTED.
 *
 * How: classes in tiles of 256, every row against one tile at a time, tiles in order. A first
 * pass keeps each row's running max, sum of exps (the fear's and, apart when the fear has costs
 * or is a max, the z-loss's), gold logit and mean logit; a second computes each tile again
 * and turns it into G = dloss/dz, then d_x += G w_tile, d_w[tile] = G^T x, d_b[tile] = the
 * column sums of G. Four products of n*k*d multiply-adds (the logits twice), 2 n*k exps (plus
 * n*k per pass for a softcap, and n*k more when the z-loss is apart), and no n*k scratch:
 * extra memory (n + d) * 256 values of the input type for a tile's logits and a tile of w
 * transposed, the products' packs (128 KiB per thread), O(n) doubles, and when some rows are
 * ignored or of weight 0, n*d values more (the rows read, copied together) and n*d more for
 * their d_x when d_x is wanted. Same bits at any thread count: threads own runs of rows (at
 * least 64) in the first pass and for d_x, and runs of a tile's classes for d_w and d_b, each
 * output summed in an order that depends on the shapes only (d_w and d_b over the rows in
 * order).
 *
 * Accuracy: the logits are products accumulated in the input type (float32: the usual error of
 * a length-d dot product); from them on, the loss and G are formed in double as for dense rows
 * (a log-sum-exp as max + log1p(sum of the others' exps), the gold's entry p - 1 as
 * -rest / (1 + rest) where the gold is the argmax), but the exps are not centred per candidate
 * as lk_dense's are: bindings/python/tests/test_linear.py measures the results against exact
 * arithmetic on the same float inputs.
 *
 * Large weights: G is formed in units of a power of two 2^-s when a bound of the products'
 * partial sums, (largest coefficient) (2 + 2 eps + 2 lambda max |lse|) max(|x|, |w|, |b|, 1)
 * max(d, k) n (taken in exponents, so that the bound itself cannot overflow), comes within 2^-3
 * of the input type's range; the gradients are scaled back exactly when stored (+-INFINITY where
 * they overflow; s = 0 and the same bits otherwise). Where s > 0, the rows of coefficients far
 * below the largest may lose digits to underflow (absolute error about u times the largest).
 *
 * @param opt     options (required).
 * @param n       examples, >= 0.   @param d  features, >= 1 when n > 0.   @param k  classes, >= 1
 *                when n > 0.
 * @param x       n*d features, row-major; required when n > 0. Rows of ignored or zero-weight
 *                examples are not read.
 * @param w       k*d class weights, row-major; required when n > 0.
 * @param bias    k biases, or NULL (none).
 * @param gold    n labels in [0, k) or equal to opt->ignore_label; required when n > 0.
 * @param cost    per opt->cost_layout, as for lk_dense_f32 (n*k or k*k), when the loss reads costs.
 * @param weight  n per-example weights, finite and >= 0, or NULL (all 1).
 * @param loss    n values under LK_REDUCE_NONE, else 1; or NULL.
 * @param d_x     n*d gradient w.r.t. x (0 for rows not read); or NULL.
 * @param d_w     k*d gradient w.r.t. w; or NULL.   @param d_b  k gradient w.r.t. bias; or NULL.
 *                With n = 0, d_w and d_b are set to 0.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; x, w or gold NULL with n > 0; cost NULL when read;
 *   LK_ERR_OPTION      as lk_dense_f32;
 *   LK_ERR_UNSUPPORTED a loss whose hope is not the gold score (see above);
 *   LK_ERR_SIZE        n, d or k negative; d or k of 0 with n > 0; n*d, k*d, k (bias, d_b), n
 *                      (or the cost's n*k or k*k) elements overflowing the address space in
 *                      bytes, found before anything is read or written (d_w and d_b of an empty
 *                      batch too);
 *   LK_ERR_LABEL       a gold outside [0, k) that is not ignore_label (weight != 0);
 *   LK_ERR_DOMAIN      a NaN or infinite value in a row of x read, in w or in bias; a logit
 *                      x_i . w_j + b_j that overflows the input type, or whose float partial
 *                      sums do, or whose cost-augmented value (plus the fear's scale times the
 *                      scaled cost) does (the message names the example and the class);
 *                      a cost read that is not finite or overflows once scaled; a weight NaN,
 *                      infinite or negative; under MEAN, a summed weight that overflows;
 *   LK_ERR_ALLOC       the scratch could not be allocated.
 * Since 0.3.0. */
lk_status lk_linear_f32(const lk_options *opt, int64_t n, int64_t d, int64_t k,
                        const float *x, const float *w, const float *bias, const int32_t *gold,
                        const float *cost, const float *weight, float *loss,
                        float *d_x, float *d_w, float *d_b);
/* As lk_linear_f32, in double. Since 0.3.0. */
lk_status lk_linear_f64(const lk_options *opt, int64_t n, int64_t d, int64_t k,
                        const double *x, const double *w, const double *bias, const int32_t *gold,
                        const double *cost, const double *weight, double *loss,
                        double *d_x, double *d_w, double *d_b);

/* As lk_linear_f32, with x and w in bfloat16 (lk_dense_bf16's format): lk_linear_f32 on them
 * widened to float (exact), with the same checks, errors, options and loss bits. Beyond
 * lk_linear_f32's scratch, the rows of x read are widened at once (n*d floats) and w a class
 * tile at a time (256*d floats), and d_x (n*d floats) and a tile of d_w (256*d floats) are
 * formed in float before they are narrowed when no float buffer is given for them: nothing of
 * size k*d or n*k is allocated.
 *
 * d_x and d_w (lk_linear_f32's, in float) go to d_x_f32 and d_w_f32 as they are, and/or to d_x
 * and d_w rounded once to bfloat16 (to nearest even: 2^-8 relative beyond the float gradient's
 * own error); each pair's buffers may be NULL, one or both. bias, cost, weight, loss and d_b are
 * float.
 *
 * @param x        n*d bfloat16, row-major; required when n > 0.
 * @param w        k*d bfloat16, row-major; required when n > 0.
 * @param d_x      n*d bfloat16, or NULL.   @param d_x_f32  n*d float, or NULL.
 * @param d_w      k*d bfloat16, or NULL.   @param d_w_f32  k*d float, or NULL.
 * @return as lk_linear_f32. Since 0.3.0. */
lk_status lk_linear_bf16(const lk_options *opt, int64_t n, int64_t d, int64_t k,
                         const uint16_t *x, const uint16_t *w, const float *bias, const int32_t *gold,
                         const float *cost, const float *weight, float *loss,
                         uint16_t *d_x, uint16_t *d_w, float *d_b, float *d_x_f32, float *d_w_f32);

/* ============================================================================================
 * Vocabulary-parallel dense rows — classes split across processes.
 * ========================================================================================== */

/* Per row, the values phase 1 writes to maxima (reduced with MAX) and phase 2 to sums (reduced
 * with SUM). Since 0.3.0. */
#define LK_VOCAB_MAXIMA 3
#define LK_VOCAB_SUMS   7

/* The dense loss of n rows of k classes whose classes are split across P processes (tensor /
 * vocabulary parallelism, as Megatron-LM's vocab_parallel_cross_entropy): each process holds
 * the columns [k_offset, k_offset + k_local) of the n*k scores (and of the costs), and every
 * process gets the loss of lk_dense_f32 on the whole rows and the gradient of its own columns.
 * The library does no communication: the caller runs three phases on every process, with its
 * own all-reduces (MPI_Allreduce, torch.distributed.all_reduce, NCCL, ...) between them:
 *
 *   phase 1  writes maxima (n*LK_VOCAB_MAXIMA doubles)   ->  all-reduce maxima with MAX
 *   phase 2  reads the reduced maxima, writes sums (n*LK_VOCAB_SUMS doubles), and for a max fear
 *            (HINGE, PERCEPTRON, HOPE_FEAR with fear = LK_TERM_MAX) argmax (n doubles)
 *                                                     ->  all-reduce sums with SUM, argmax with MAX
 *   phase 3  reads the reduced maxima, sums and argmax; writes loss (the same on every process)
 *            and grad (n*k_local: the gradient of this process's columns). No communication in
 *            the backward pass.
 *
 * Per row: maxima = {max of v = s' + f c over the columns (the fear's argument), max of s' (the
 * z-loss's log-sum-exp, when it is apart from the fear), a flag (below)}; sums = {sum of the exps
 * exp(v - M) that are not exactly 1, the count of those that are (M and its exact ties), s'[g]
 * on the process that owns g (0 elsewhere), sum of s' / k over the unmasked classes, the count of
 * unmasked classes, and the same two exp sums for s' - max s'}; argmax = 1 where the gold reaches
 * the max, else -j for the lowest class j that does, else -INFINITY. Counting the exact 1s apart
 * keeps the digits of a loss near zero (the log-sum-exp is M + log1p(the others + (ties - 1))),
 * and the argmax key reproduces the ties rule (the gold, else the lowest index). Exchanged per
 * row and step: 3 doubles (MAX), 7 (SUM), and 1 more (MAX) for a max fear.
 *
 * Losses: those of lk_linear_f32 (LK_LOSS_LOG with label_smoothing, SOFTMAX_MARGIN, HINGE,
 * PERCEPTRON, HOPE_FEAR with hope = LK_TERM_GOLD), with masks (-INFINITY), costs, softcap,
 * z_loss, weights, ignore_label, reductions and threads as for lk_dense_f32; anything else is
 * LK_ERR_UNSUPPORTED. Costs: cost holds this process's columns of the dense layout:
 * n*k_local for LK_COST_PER_EXAMPLE, k*k_local (every gold row) for LK_COST_CLASS_MATRIX.
 *
 * Errors without deadlock: every process must take part in every reduction, so phases 1 and 2
 * return an error only for what every process sees alike (options, phase, n, k, labels, weights,
 * the maxima and sums they read) or for a mistake in the process's own arguments (a NULL
 * pointer, k_offset and k_local, the byte sizes of its own buffers: check these before the first
 * phase, since the other processes would then wait in a reduction); they allocate nothing. A bad
 * value in its own columns (+INFINITY, a masked gold under these gold-hope losses, a cost that is
 * not finite or overflows once scaled and added to its score; costs are read as by lk_dense,
 * for every candidate that is not masked, whatever cost_scale) is written into the flag
 * (maxima[i, 2] = 2 + 3 j + kind for global class j), and phase 3 returns LK_ERR_DOMAIN on every
 * process, naming the row and the class (the highest such class of the lowest such row). A NaN
 * score sets the flag to 1: that row's loss and gradient are NaN on every process. A row with
 * every class masked (in every process) is LK_ERR_DOMAIN in phase 3. Phase 3 also refuses
 * statistics phases 1 and 2 cannot produce (a maximum, gold score or mean beyond the type's
 * range, negative or infinite exp sums, counts that are not whole numbers in [1, k]), so that
 * no garbage becomes a NaN.
 *
 * How, and at what cost: rows without costs or softcap (LOG, its label smoothing and z-loss,
 * PERCEPTRON) run on the vector kernels of lk_dense, their exps in the input type: phase 1 one
 * read of the columns, phases 2 and 3 one exp each per score (lk_dense makes one pass in all;
 * measured 2.0x its time at P = 1, n = 1024, k = 32000, bench/vocab_parallel.py). The others
 * (costs, softcap, HINGE) run a scalar loop in double, about 10x slower. No scratch beyond O(n)
 * doubles.
 *
 * Accuracy: the results match lk_dense_f32/_f64 on the whole rows: LOG, PERCEPTRON and HINGE
 * within 1e-6 (float32) and 4 ulps (float64) of the row's scale; with costs (SOFTMAX_MARGIN),
 * where one process centres each exp on the argmax's own score and cost and a split centres it
 * on the row's max of s + c in double, within the dense rows' bound, 4u of the conditioning.
 * Measured against lk_dense and exact arithmetic by bindings/python/tests/test_vocab_parallel.py
 * for P = 1, 2, 3, 4 and 7 (threads standing in for processes), by
 * test_vocab_parallel_torch.py over gloo on 2 and 4 processes, and by
 * bindings/c/vocab_parallel_mpi.c over Open MPI on 2 and 4 ranks. The same bits from run to run
 * at a fixed P when the caller's reductions are deterministic (a MAX always is; a SUM over P
 * processes is whatever the engine's is).
 *
 * @param opt      options (required).
 * @param phase    1, 2 or 3 (else LK_ERR_OPTION).
 * @param n        rows, >= 0.   @param k  classes of a whole row, >= 1 when n > 0.
 * @param k_offset the first class of this process's columns, >= 0.
 * @param k_local  this process's classes, >= 0, with k_offset + k_local <= k (a process may hold
 *                 none; the shards of the P processes must cover [0, k) exactly once).
 * @param scores   n*k_local, row-major; required when n > 0 and k_local > 0.
 * @param gold     n global labels in [0, k) or equal to opt->ignore_label; required when n > 0.
 * @param cost     this process's columns of the costs (above), when the loss reads costs (phases
 *                 1 and 2, and 3 with grad).
 * @param weight   n per-example weights, finite and >= 0, or NULL (all 1); the same on every
 *                 process.
 * @param maxima   n*LK_VOCAB_MAXIMA; written in phase 1, read (reduced) in 2 and 3; required.
 * @param sums     n*LK_VOCAB_SUMS; written in phase 2, read (reduced) in 3; required in 2 and 3.
 * @param argmax   n; written in phase 2, read (reduced) in 3; required in 2 and 3 by a max fear,
 *                 else neither read nor written.
 * @param loss     phase 3: n values under LK_REDUCE_NONE, else 1; or NULL.
 * @param grad     phase 3: n*k_local, the gradient w.r.t. this process's scores (0 for rows not
 *                 read and masked classes); or NULL.
 * @return LK_OK;
 *   LK_ERR_NULL        opt NULL; a required pointer NULL (above);
 *   LK_ERR_OPTION      as lk_dense_f32; phase not 1, 2 or 3 (before LK_ERR_UNSUPPORTED);
 *   LK_ERR_UNSUPPORTED a loss whose hope is not the gold score;
 *   LK_ERR_SIZE        n, k, k_offset or k_local negative; k above 2^50 (class indices travel in
 *                      doubles); k_offset + k_local > k; k = 0 with n > 0; n*k_local, n*LK_VOCAB_MAXIMA, n*LK_VOCAB_SUMS (or the cost's
 *                      n*k_local, k*k_local) elements overflowing the address space in bytes;
 *   LK_ERR_LABEL       a gold outside [0, k) that is not ignore_label (weight != 0);
 *   LK_ERR_DOMAIN      a weight NaN, infinite or negative; under MEAN, a summed weight that
 *                      overflows; in phases 2 and 3, a flag that is not one phase 1 writes; in
 *                      phase 3, a bad value in any process's columns (the flag above), a row
 *                      with every class masked, maxima, sums or an argmax key that phases 1
 *                      and 2 cannot write (above);
 *   LK_ERR_ALLOC       phase 3's O(n) scratch could not be allocated.
 * Since 0.3.0. */
lk_status lk_vocab_dense_f32(const lk_options *opt, int32_t phase, int64_t n, int64_t k,
                             int64_t k_offset, int64_t k_local, const float *scores,
                             const int32_t *gold, const float *cost, const float *weight,
                             double *maxima, double *sums, double *argmax, float *loss,
                             float *grad);
/* As lk_vocab_dense_f32, in double. Since 0.3.0. */
lk_status lk_vocab_dense_f64(const lk_options *opt, int32_t phase, int64_t n, int64_t k,
                             int64_t k_offset, int64_t k_local, const double *scores,
                             const int32_t *gold, const double *cost, const double *weight,
                             double *maxima, double *sums, double *argmax, double *loss,
                             double *grad);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LOSSKIT_H */
