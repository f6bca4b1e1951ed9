"""An independent float64 NumPy reference of every dense-row loss of LossKit.

Written from the formulas of include/losskit.h (lk_dense_f32) and DESIGN.md §2–§3, not from the
Swift sources, so that the tests compare two implementations of one contract. It favours being
obviously right over being fast: one Python loop over the rows, one small function per term.

    reference_dense(scores, gold, loss=..., cost=..., ...) -> (loss, grad)

takes the keyword options of ``losskit.dense`` (same names, same defaults) and returns what the
library should write: an (n,) array for reduction "none", a float otherwise, and the (n, k)
gradient of exactly that loss.

Per example, with s the scores, g the gold, A the unmasked classes (s > -inf), K = |A|,
c = cost_scale * cost(g, .) and p = softmax(s) over A:

    log             lse(s) - (1-eps) s_g - (eps/K) sum_A s_j     grad p - (1-eps) e_g - eps/K on A
    perceptron      max(s) - s_g                                 e_argmax(s) - e_g
    hinge           max(s + c) - s_g                             e_argmax(s+c) - e_g
    softmax_margin  lse(s + c) - s_g                             softmax(s + c) - e_g
    risk            R = sum_A p_j c_j                            p_j (c_j - R)
    ramp            max(s + c) - max(s - c)                      e_argmax(s+c) - e_argmax(s-c)
    soft_ramp       lse(s + c) - lse(s - c)                      softmax(s+c) - softmax(s-c)
    infinite_ramp   max(s + c) - s_o                             e_argmax(s+c) - e_o
    squared         (1/K)[kappa (s_g - M)^2 + sum_{A\\g} s_j^2]   (2/K) kappa (s_g - M) at g,
                                                                 (2/K) s_j on A\\g
    squentropy      lse(s) - s_g + (1/(K-1)) sum_{A\\g} s_j^2     p - e_g + (2/(K-1)) s_j on A\\g
                    (the square term is 0 when K = 1)
    hope_fear       F(s + f c) - H(s - h c)                      dF - dH

Ties: an argmax picks the gold when it is among the tied classes, else the lowest index. The
oracle o is the class of lowest *unscaled* cost, then highest score, then lowest index.
"""

from __future__ import annotations

import math

import numpy as np

from kept import Store

# Losses whose value reads s[gold] (a masked gold is then LK_ERR_DOMAIN).
GOLD_SCORE_LOSSES = {"log", "perceptron", "hinge", "softmax_margin", "squared", "squentropy"}
# Losses that read costs (cost_scale and the cost arrays matter only for these).
COST_LOSSES = {"hinge", "softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp"}


def uses_gold_score(loss: str, hope: str | None = None) -> bool:
    if loss == "hope_fear":
        return (hope or "gold") == "gold"
    return loss in GOLD_SCORE_LOSSES


def uses_costs(loss: str, hope=None, fear=None, hope_scale=None, fear_scale=None) -> bool:
    if loss == "hope_fear":
        h = 0.0 if hope_scale is None else hope_scale
        f = 1.0 if fear_scale is None else fear_scale
        return f != 0 or (hope in ("max", "lse") and h != 0) or hope == "oracle"
    return loss in COST_LOSSES


# ------------------------------------------------------------------------------------------
# Primitives over one row; `active` is the boolean mask of unmasked classes.
# ------------------------------------------------------------------------------------------

def argmax_tie_gold(v: np.ndarray, active: np.ndarray, gold: int) -> int:
    """Index of max v over the active classes: the gold if it is tied for the max, else the
    lowest tied index."""
    m = max(v[j] for j in range(len(v)) if active[j])
    tied = [j for j in range(len(v)) if active[j] and v[j] == m]
    return gold if gold in tied else tied[0]


def max_term(v, active, gold):
    """(max v, one-hot gradient at the argmax)."""
    j = argmax_tie_gold(v, active, gold)
    grad = np.zeros(len(v))
    grad[j] = 1.0
    return float(v[j]), grad


def lse_term(v, active):
    """(log sum_A exp v, softmax(v) over A). Max-shifted, and in the log1p form
    m + log1p(sum_{j != argmax} exp(v_j - m)) so that a value near m keeps its digits."""
    idx = [j for j in range(len(v)) if active[j]]
    vals = np.array([v[j] for j in idx], dtype=np.float64)
    top = int(np.argmax(vals))
    m = vals[top]
    z = np.exp(vals - m)
    rest = float(np.sum(np.delete(z, top)))
    value = float(m + math.log1p(rest))
    grad = np.zeros(len(v))
    grad[idx] = z / (1.0 + rest)
    return value, grad


def one_hot(j, k):
    e = np.zeros(k)
    e[j] = 1.0
    return e


def oracle_index(s, active, unscaled_cost) -> int:
    """Lowest unscaled cost, then highest score, then lowest index (among active classes)."""
    candidates = [j for j in range(len(s)) if active[j]]
    return min(candidates, key=lambda j: (unscaled_cost[j], -s[j], j))


# ------------------------------------------------------------------------------------------
# One example.
# ------------------------------------------------------------------------------------------

def example_loss(s, g, unscaled_cost, *, loss, cost_scale=1.0, label_smoothing=0.0,
                 square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None,
                 fear_scale=None):
    """(value, grad) of one example with scores s (k,), gold g and unscaled costs (k,)."""
    s = np.asarray(s, dtype=np.float64)
    k = len(s)
    if np.isnan(s).any():
        return math.nan, np.full(k, math.nan)
    if np.isposinf(s).any():
        raise ValueError("+inf score")
    active = s > -np.inf
    K = int(active.sum())
    if K == 0:
        raise ValueError("every class masked")
    if uses_gold_score(loss, hope) and not active[g]:
        raise ValueError("masked gold")
    c = cost_scale * np.asarray(unscaled_cost, dtype=np.float64)
    # Masked classes never take part: give them -inf augmented scores (and 0 cost) so that
    # s + c and s - c stay -inf there whatever the cost.
    c = np.where(active, c, 0.0)
    e_g = one_hot(g, k)

    if loss == "log":
        eps = label_smoothing
        lse, p = lse_term(s, active)
        value = lse - (1 - eps) * s[g] - (eps / K) * float(np.sum(s[active]))
        grad = p - (1 - eps) * e_g - (eps / K) * active.astype(np.float64)
    elif loss == "perceptron":
        f, df = max_term(s, active, g)
        value, grad = f - s[g], df - e_g
    elif loss == "hinge":
        f, df = max_term(s + c, active, g)
        value, grad = f - s[g], df - e_g
    elif loss == "softmax_margin":
        f, df = lse_term(s + c, active)
        value, grad = f - s[g], df - e_g
    elif loss == "risk":
        _, p = lse_term(s, active)
        risk = float(np.sum(p[active] * c[active]))
        value, grad = risk, p * (c - risk)
    elif loss == "ramp":
        f, df = max_term(s + c, active, g)
        h, dh = max_term(s - c, active, g)
        value, grad = f - h, df - dh
    elif loss == "soft_ramp":
        f, df = lse_term(s + c, active)
        h, dh = lse_term(s - c, active)
        value, grad = f - h, df - dh
    elif loss == "infinite_ramp":
        f, df = max_term(s + c, active, g)
        o = oracle_index(s, active, unscaled_cost)
        value, grad = f - s[o], df - one_hot(o, k)
    elif loss == "squared":
        kappa, M = square_k, square_m
        others = active.copy()
        others[g] = False
        value = (kappa * (s[g] - M) ** 2 + float(np.sum(s[others] ** 2))) / K
        grad = np.zeros(k)
        grad[others] = 2.0 / K * s[others]
        grad[g] = 2.0 / K * kappa * (s[g] - M)
    elif loss == "squentropy":
        lse, p = lse_term(s, active)
        value, grad = lse - s[g], p - e_g
        if K > 1:
            others = active.copy()
            others[g] = False
            value += float(np.sum(s[others] ** 2)) / (K - 1)
            grad[others] += 2.0 / (K - 1) * s[others]
    elif loss == "hope_fear":
        hope = hope or "gold"
        fear = fear or "lse"
        h = 0.0 if hope_scale is None else hope_scale
        f = 1.0 if fear_scale is None else fear_scale
        fear_value, fear_grad = (max_term(s + f * c, active, g) if fear == "max"
                                 else lse_term(s + f * c, active))
        if hope == "gold":
            hope_value, hope_grad = s[g], e_g
        elif hope == "oracle":
            o = oracle_index(s, active, unscaled_cost)
            hope_value, hope_grad = s[o], one_hot(o, k)
        elif hope == "max":
            hope_value, hope_grad = max_term(s - h * c, active, g)
        elif hope == "lse":
            hope_value, hope_grad = lse_term(s - h * c, active)
        else:
            raise ValueError(hope)
        value, grad = fear_value - hope_value, fear_grad - hope_grad
    else:
        raise ValueError(f"unknown loss {loss!r}")
    grad = np.where(active, grad, 0.0)
    return float(value), grad


# ------------------------------------------------------------------------------------------
# A batch: costs, weights, ignore, reductions.
# ------------------------------------------------------------------------------------------

def unscaled_cost_row(i, g, k, cost, cost_layout):
    if cost_layout in (None, "zero_one"):
        return np.array([0.0 if j == g else 1.0 for j in range(k)])
    if cost_layout == "per_example":
        return np.asarray(cost[i], dtype=np.float64)
    if cost_layout == "class_matrix":
        return np.asarray(cost[g], dtype=np.float64)
    raise ValueError(cost_layout)


def _reference_dense(scores, gold, *, loss="log", cost=None, cost_layout=None, weight=None,
                    reduction="mean", cost_scale=1.0, ignore_label=-100, label_smoothing=0.0,
                    square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None,
                    fear_scale=None, threads=0, with_grad=True):
    """What lk_dense_f64 should return, with the keyword options of losskit.dense."""
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold)
    n, k = scores.shape
    if cost is not None and cost_layout is None:
        cost_layout = "per_example" if np.shape(cost) == (n, k) else "class_matrix"
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    per_example = np.zeros(n)
    grad = np.zeros((n, k))
    total_weight = 0.0  # the mean's denominator: weight of the examples not ignored
    for i in range(n):
        g = int(gold[i])
        if g == ignore_label:
            continue
        total_weight += w[i]
        if w[i] == 0:
            continue  # not read beyond its weight: contributes exactly 0
        value, d = example_loss(
            scores[i], g, unscaled_cost_row(i, g, k, cost, cost_layout), loss=loss,
            cost_scale=cost_scale, label_smoothing=label_smoothing, square_k=square_k,
            square_m=square_m, hope=hope, fear=fear, hope_scale=hope_scale,
            fear_scale=fear_scale)
        per_example[i] = w[i] * value
        grad[i] = w[i] * d
    if reduction == "none":
        out = per_example
    elif reduction == "sum":
        out = float(np.sum(per_example))
    elif reduction == "mean":
        if total_weight == 0:
            out, grad = 0.0, np.zeros((n, k))
        else:
            out = float(np.sum(per_example)) / total_weight
            grad = grad / total_weight
    else:
        raise ValueError(reduction)
    return out, (grad if with_grad else None)


# ------------------------------------------------------------------------------------------
# The registry of loss configurations that drives the comparisons (scikit-learn's test_loss.py
# habit): every entry gets the same battery. Adding a loss or an option = adding a row here.
# ------------------------------------------------------------------------------------------

class LossCase:
    """One loss configuration: an id for the test name and the keyword options of dense()."""

    def __init__(self, id: str, **options):
        self.id = id
        self.options = options
        self.loss = options["loss"]
        self.uses_gold = uses_gold_score(self.loss, options.get("hope"))
        self.uses_costs = uses_costs(self.loss, options.get("hope"), options.get("fear"),
                                     options.get("hope_scale"), options.get("fear_scale"))

    def __repr__(self):
        return self.id


HOPES = ("gold", "oracle", "max", "lse")
FEARS = ("max", "lse")

CASES = [
    LossCase("log", loss="log"),
    LossCase("log-smoothing-0.1", loss="log", label_smoothing=0.1),
    LossCase("log-smoothing-0.6", loss="log", label_smoothing=0.6),
    LossCase("perceptron", loss="perceptron"),
    LossCase("hinge", loss="hinge"),
    LossCase("hinge-scale-2.5", loss="hinge", cost_scale=2.5),
    LossCase("softmax_margin", loss="softmax_margin"),
    LossCase("softmax_margin-scale-0.5", loss="softmax_margin", cost_scale=0.5),
    LossCase("risk", loss="risk"),
    LossCase("risk-scale-3", loss="risk", cost_scale=3.0),
    LossCase("ramp", loss="ramp"),
    LossCase("ramp-scale-0.5", loss="ramp", cost_scale=0.5),
    LossCase("soft_ramp", loss="soft_ramp"),
    LossCase("soft_ramp-scale-2", loss="soft_ramp", cost_scale=2.0),
    LossCase("infinite_ramp", loss="infinite_ramp"),
    # cost_scale 0: the augmented max is max(s), but the oracle still uses the unscaled cost.
    LossCase("infinite_ramp-scale-0", loss="infinite_ramp", cost_scale=0.0),
    LossCase("squared", loss="squared"),
    LossCase("squared-k3-m-0.5", loss="squared", square_k=3.0, square_m=-0.5),
    LossCase("squentropy", loss="squentropy"),
    LossCase("hope_fear-defaults", loss="hope_fear"),
] + [
    LossCase(f"hope_fear-{hope}-{fear}", loss="hope_fear", hope=hope, fear=fear,
             hope_scale=0.7, fear_scale=1.3)
    for hope in HOPES for fear in FEARS
] + [
    LossCase("hope_fear-max0-max0-scale-2", loss="hope_fear", hope="max", fear="max",
             hope_scale=0.0, fear_scale=0.0, cost_scale=2.0),
    LossCase("hope_fear-lse2-lse0.5-scale-1.5", loss="hope_fear", hope="lse", fear="lse",
             hope_scale=2.0, fear_scale=0.5, cost_scale=1.5),
]

# The presets as (hope, hope_scale, fear, fear_scale) of the general form (DESIGN.md §2).
PRESETS = {
    "log": ("gold", None, "lse", 0.0),
    "perceptron": ("gold", None, "max", 0.0),
    "hinge": ("gold", None, "max", 1.0),
    "softmax_margin": ("gold", None, "lse", 1.0),
    "ramp": ("max", 1.0, "max", 1.0),
    "soft_ramp": ("lse", 1.0, "lse", 1.0),
    "infinite_ramp": ("oracle", None, "max", 1.0),
}


# ------------------------------------------------------------------------------------------
# Candidate lists (lk_lists_f64): the same per-example losses over lists of varying length.
# ------------------------------------------------------------------------------------------

def _reference_lists(scores, offsets, gold, *, loss="log", cost=None, weight=None,
                    reduction="mean", cost_scale=1.0, square_k=1.0, square_m=1.0, hope=None,
                    fear=None, hope_scale=None, fear_scale=None, threads=0, with_grad=True):
    """What lk_lists_f64 should return, with the keyword options of losskit.lists.

    From include/losskit.h (lk_lists_f32): example i owns the candidates offsets[i]:offsets[i+1];
    its unscaled costs are cost[offsets[i]:offsets[i+1]], or 0/1 against the gold when cost is
    None. A gold of -1 is replaced by the oracle o (oracle_index: lowest unscaled cost, then
    highest score, then lowest index, among the unmasked candidates), which then plays the gold
    everywhere — the gold term and the argmax tie rule — so the example is exactly the dense
    example with gold o. Zero-weight lists are not read (their gold, scores and costs may be
    anything, the list may be empty). The mean divides by the summed weight of all lists (lists
    have no ignore_label). Inputs the library must reject raise ValueError here.
    """
    scores = np.asarray(scores, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    gold = np.asarray(gold)
    n = len(offsets) - 1
    total = int(offsets[-1])
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    per_example = np.zeros(n)
    grad = np.zeros(total)
    for i in range(n):
        if w[i] == 0:
            continue  # not read beyond its weight: contributes exactly 0
        a, b = int(offsets[i]), int(offsets[i + 1])
        s = scores[a:b]
        k = b - a
        g = int(gold[i])
        if k == 0:
            raise ValueError(f"example {i}: empty list with weight {w[i]}")
        if not (g == -1 or 0 <= g < k):
            raise ValueError(f"example {i}: gold {g} outside [0, {k})")
        if cost is None:
            if g == -1:
                raise ValueError(f"example {i}: gold -1 needs costs")
            unscaled = np.array([0.0 if j == g else 1.0 for j in range(k)])
        else:
            unscaled = np.asarray(cost[a:b], dtype=np.float64)
        if g == -1 and not np.isnan(s).any():
            active = s > -np.inf
            if not active.any():
                raise ValueError(f"example {i}: every candidate masked")
            g = oracle_index(s, active, unscaled)
        value, d = example_loss(
            s, max(g, 0), unscaled, loss=loss, cost_scale=cost_scale, square_k=square_k,
            square_m=square_m, hope=hope, fear=fear, hope_scale=hope_scale,
            fear_scale=fear_scale)
        per_example[i] = w[i] * value
        grad[a:b] = w[i] * d
    if reduction == "none":
        out = per_example
    elif reduction == "sum":
        out = float(np.sum(per_example))
    elif reduction == "mean":
        denom = float(np.sum(w))
        if denom == 0:
            out, grad = 0.0, np.zeros(total)
        else:
            out = float(np.sum(per_example)) / denom
            grad = grad / denom
    else:
        raise ValueError(reduction)
    return out, (grad if with_grad else None)


def reduction_factors(gold, weight, reduction, ignore_label=-100):
    """Per-example multiplier of the unweighted loss under `reduction` (DESIGN.md §3): the weight
    (1 when None), 0 for ignored examples, divided by the summed weight of the examples that are
    not ignored under "mean" (all 0 when that sum is 0)."""
    n = len(gold)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    live = np.asarray(gold) != ignore_label
    f = np.where(live, w, 0.0)
    if reduction == "mean":
        denom = w[live].sum()
        f = f / denom if denom > 0 else np.zeros(n)
    return f


# The reference is a pure function of its arguments and of this file, and its loop over the rows
# is slow: its results are kept between runs (tests/conftest.py loads and saves them), so that
# the CPU levels of `make test` and later runs compute each once.
RESULTS = Store("numpy-reference", __file__)
reference_dense = RESULTS.memoised_by_digest(_reference_dense)
reference_lists = RESULTS.memoised_by_digest(_reference_lists)
