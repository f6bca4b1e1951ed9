"""Exact-arithmetic references for the accuracy suite (test_accuracy.py), in mpmath.

Every reference is computed from the EXACT values of the float inputs the library was given
(mpf(float(x)) of each float32/float64 number; cost_scale and the other double options likewise),
at DPS = 60 significant digits (the brief asks for 50; the extra ten absorb the finite
differences below). Nothing here reads a library output.

The metric (the accuracy target). u is the unit roundoff of the input type (2^-24 for
float32, 2^-53 for float64), x the vector of every real input the loss reads: the scores (or
emissions, transitions, start, end; cosines; L-Softmax's x and w), the SCALED costs as they enter
each term (f*alpha*c in the fear, h*alpha*c in the hope, alpha*c in risk: each a separate input,
since a backward-stable evaluation may round each product on its own), the example weight, and
the real options the formula reads (label smoothing eps, square_k, square_m, the angular s and m,
L-Softmax's lambda). Then, per example,

    |L_lib - L| <= 4u (|L| + sum_j |dL/dx_j| |x_j|) + tiny

and per gradient entry i (the componentwise form of "each gradient row against its own
conditioning"; H_ij = dg_i/dx_j is the exact Jacobian of the gradient, i.e. the Hessian row of L
when x_j is a score)

    |g_lib_i - g_i| <= 4u (|g_i| + sum_j |H_ij| |x_j|) + tiny.

`tiny` is the smallest NORMAL number of the output type: the contract promises digits "down to
the smallest normal number", so an exact result in the subnormal range may come back flushed.
The ratio reported is error / bound (<= 1 passes). Why componentwise: the bound is what a
backward-stable evaluation (the computed value is the exact value at inputs perturbed by a few u
relative, then rounded) meets entry by entry, and it is what a user of a small gradient entry
(a rare class, a near-zero loss) needs; a normwise row bound would hide exactly the defects the
suite is for (p_g - 1 formed as a difference, a wrong-signed tiny entry). Sign rule: an entry
whose exact |g_i| exceeds the row's rounding level (the largest entry bound of the row) must
come back with the exact sign.

Conditioning numbers are measured, not derived per loss: sum_j |dF/dx_j| |x_j| from one-sided
finite differences in mpmath (step 1e-25 |x_j|, exact zeros and masked inputs skipped since they
contribute 0). For the loss the larger of the two one-sided slopes is taken (at a tie of a max
term the loss has a kink; a rounding of x_j may go either way), for a gradient entry the smaller
one (a max term's gradient is piecewise constant; at an exact tie one side jumps, and the tie
rule of the contract fixes which side the library must take, so the jump is not conditioning).
The closed form for the log/softmax-margin losses on rows of 32000+ classes (where finite
differences over every input would cost k^2) is the same quantity written out:
dL/dx_j = p_j - [j = g], H_ij = p_i ([i = j] - p_j).

Cancellation-free forms keep the references exact where the library is tested hardest: a
log-sum-exp is m + log1p(rest) with rest = sum_{y != argmax} exp(v_y - m), and its gradient
minus the one-hot at its argmax is sum_y p_y (phi(y) - phi(a)) (phi: the features of a candidate),
so "fear minus hope" gradients near zero subtract exact one-hots before any rounding.
"""

from __future__ import annotations

import functools
import itertools
import math

import mpmath
from mpmath import mpf

from kept import Store

DPS = 60
STEP = mpf(10) ** -25
NINF = mpf("-inf")

U = {"f32": mpf(2) ** -24, "f64": mpf(2) ** -53}
TINY = {"f32": mpf(2) ** -126, "f64": mpf(2) ** -1022}
FMAX = {"f32": mpf((2 - mpf(2) ** -23) * mpf(2) ** 127), "f64": mpf(1.7976931348623157e308)}


# References are pure functions of their (float) arguments and of this file: they are memoised
# here and kept across runs in pytest's cache folder (kept.Store: test_accuracy.py and
# test_trust_flat.py load and save them), so that the CPU levels of `make test` and later runs
# compute each once. The file's name carries a hash of this source, so an edit here never reads
# old references.
STORE = Store("references", __file__)
SOURCE_HASH = STORE.source_hash


def memo(maxsize=None):
    def wrap(fn):
        @functools.wraps(fn)
        def cached(*args):
            key = (fn.__name__,) + args
            if key not in STORE:
                STORE[key] = fn(*args)
            return STORE[key]
        return cached
    return wrap


def load_store(folder, mode="default") -> None:
    """Reads the references of `mode` ("default" or "large": the large run's long rows would make
    the default run's file ten times larger)."""
    STORE.load(folder, mode)


def save_store(folder, mode="default") -> None:
    STORE.save(folder, mode)


def kept_between_runs(config, mode="default"):
    return STORE.kept_between_runs(config, mode)


def ex(x) -> mpf:
    """The exact value of a float input."""
    return mpf(float(x))


def finite(x) -> bool:
    return mpmath.isfinite(x)


# ------------------------------------------------------------------------------------------
# Finite-difference conditioning
# ------------------------------------------------------------------------------------------

def conditioned(fn, x):
    """fn(x) -> (L, g, flag) at DPS digits; returns (L, g, flag, condL, condG) where condL =
    sum_j |dL/dx_j| |x_j| and condG[i] = sum_j |dg_i/dx_j| |x_j| (see the module docstring)."""
    mags = [abs(v) for v in x if v != 0 and finite(v)]
    # Enough digits that sums of inputs of very different magnitudes are exact.
    extra = int(mpmath.log10(max(mags) / min(mags))) if mags else 0
    with mpmath.workdps(DPS + min(extra, 700)):
        L0, g0, flag = fn(x)
        condL = mpf(0)
        condG = [mpf(0)] * len(g0)
        for j, xj in enumerate(x):
            if xj == 0 or not finite(xj):
                continue
            h = abs(xj) * STEP
            xp = list(x)
            xp[j] = xj + h
            xm = list(x)
            xm[j] = xj - h
            Lp, gp, _ = fn(xp)
            Lm, gm, _ = fn(xm)
            ax = abs(xj)
            condL += max(abs(Lp - L0), abs(L0 - Lm)) / h * ax
            for i in range(len(g0)):
                if not finite(g0[i]):
                    continue
                condG[i] += min(abs(gp[i] - g0[i]), abs(g0[i] - gm[i])) / h * ax
        return L0, g0, flag, condL, condG


# ------------------------------------------------------------------------------------------
# Candidate sets: dense rows, lists and chains (enumerated paths) share one engine
# ------------------------------------------------------------------------------------------

def _argmax(v, gold):
    """The tie rule: the gold if it is among the tied maxima, else the lowest index."""
    m = max(v)
    tied = [y for y, vy in enumerate(v) if vy == m]
    return (gold if gold in tied else tied[0]), len(tied) > 1 and gold not in tied


def _lse(v, gold):
    a, _ = _argmax(v, gold)
    m = v[a]
    e = [mpmath.exp(vy - m) if vy != NINF else mpf(0) for vy in v]
    e[a] = mpf(0)
    rest = mpmath.fsum(e)
    z = 1 + rest
    p = [ey / z for ey in e]
    p[a] = 1 / z  # its "minus one" never enters: the dense part uses phi(y) - phi(a)
    return (m, mpmath.log1p(rest)), a, p


def _diff(x, y):
    """(mx + tx) - (my + ty) for values kept as (shift, tail) pairs: the shifts are sums of
    inputs and subtract without loss, so a difference near zero keeps its digits."""
    return (x[0] - y[0]) + (x[1] - y[1])


def _dense_part(cands, p, a, nfeat):
    """sum_y p_y (phi(y) - phi(a)) over the features: the gradient of an lse term minus the
    one-hot phi(a), with no cancellation against it (a feature's terms are summed by fsum)."""
    acc = [[] for _ in range(nfeat)]
    pa = cands[a]
    for y, py in enumerate(p):
        if y == a or py == 0:
            continue
        phi = cands[y]
        for f, cnt in phi.items():
            diff = cnt - pa.get(f, 0)
            if diff:
                acc[f].append(py if diff == 1 else py * diff)
        for f, cnt in pa.items():
            if f not in phi:
                acc[f].append(-py if cnt == 1 else -py * cnt)
    return [mpmath.fsum(t) if t else mpf(0) for t in acc]


class Problem:
    """A candidate set: cands[y] = {feature: count} (s(y) = sum theta_f * count), psi[y] = the cost
    indices a candidate's cost sums over, cu[y] = its unscaled cost (fixed; it only picks the
    oracle), gold (index, or -1 = the oracle stands in)."""

    def __init__(self, cands, psi, cu, gold, nfeat, ncost):
        self.cands, self.psi, self.cu, self.gold = cands, psi, cu, gold
        self.nfeat, self.ncost = nfeat, ncost


def oracle(cu, s):
    act = [y for y in range(len(s)) if s[y] != NINF]
    return min(act, key=lambda y: (cu[y], -s[y], y))


def cset_eval(loss, P: Problem, x):
    """The loss (a recipe of terms, as include/losskit.h writes it) and its gradient w.r.t. the
    score features, at inputs x = theta (nfeat) + CF + CH + CR (ncost each) + [w, eps, kappa, M,
    hope scale, fear scale are folded into CF/CH]. loss is a dict: name, and for hope_fear the
    terms. Returns (L, grad, ambiguous) where ambiguous says a max term had a tie without the
    gold (the contract then lets a chain pick any tied path)."""
    nf, nc = P.nfeat, P.ncost
    theta = x[:nf]
    CF = x[nf:nf + nc]
    CH = x[nf + nc:nf + 2 * nc]
    CR = x[nf + 2 * nc:nf + 3 * nc]
    w, eps, kappa, Msq = x[nf + 3 * nc:nf + 3 * nc + 4]
    cands = P.cands
    s = []
    for phi in cands:
        terms = [theta[f] if cnt == 1 else theta[f] * cnt for f, cnt in phi.items()]
        s.append(NINF if NINF in terms else mpmath.fsum(terms))
    act = [y for y in range(len(s)) if s[y] != NINF]
    gold = P.gold if P.gold >= 0 else oracle(P.cu, s)
    name = loss["name"]
    amb = False

    def cost(C, y):
        return mpmath.fsum(C[i] for i in P.psi[y])

    def term(kind, sign):
        """(value, onehot candidate or None, dense part or None) of one term."""
        nonlocal amb
        if kind == "gold":
            return (s[gold], 0), gold, None
        if kind == "oracle":
            o = oracle(P.cu, s)
            return (s[o], 0), o, None
        if sign > 0:
            v = [s[y] + cost(CF, y) if s[y] != NINF else NINF for y in range(len(s))]
        elif sign < 0:
            v = [s[y] - cost(CH, y) if s[y] != NINF else NINF for y in range(len(s))]
        else:
            v = s
        if kind == "max":
            a, tie = _argmax(v, gold)
            amb = amb or tie
            return (v[a], 0), a, None
        val, a, p = _lse(v, gold)
        return val, a, _dense_part(cands, p, a, nf)

    grad = [mpf(0)] * nf
    if name == "risk":
        with mpmath.workdps(DPS + 60):
            val, a, p = _lse(s, gold)
            z = 1 / p[a]
            p = [py if y != a else 1 / z for y, py in enumerate(p)]
            R = mpmath.fsum(p[y] * cost(CR, y) for y in act)
            for y in act:
                r = p[y] * (cost(CR, y) - R)
                for f, cnt in cands[y].items():
                    grad[f] += r * cnt
            L = +R
        grad = [+g for g in grad]
    elif name in ("squared", "squentropy"):
        K = len(act)
        if name == "squared":
            L = kappa * (s[gold] - Msq) ** 2 + mpmath.fsum(s[y] ** 2 for y in act if y != gold)
            L /= K
            for y in act:
                (f,) = cands[y].keys()
                grad[f] = 2 * (kappa * (s[y] - Msq) if y == gold else s[y]) / K
        else:
            val, a, d = term("lse", 0)
            L = _diff(val, (s[gold], 0))
            grad = d
            if a != gold:  # the one-hots cancel exactly when they coincide
                for f, cnt in cands[a].items():
                    grad[f] += cnt
                for f, cnt in cands[gold].items():
                    grad[f] -= cnt
            if K > 1:
                L += mpmath.fsum(s[y] ** 2 for y in act if y != gold) / (K - 1)
                for y in act:
                    if y != gold:
                        (f,) = cands[y].keys()
                        grad[f] += 2 * s[y] / (K - 1)
    else:
        fear, hope = {
            "log": ("lse0", "gold"), "perceptron": ("max0", "gold"), "hinge": ("max", "gold"),
            "softmax_margin": ("lse", "gold"), "ramp": ("max", "max"), "soft_ramp": ("lse", "lse"),
            "infinite_ramp": ("max", "oracle"),
        }.get(name, (loss.get("fear"), loss.get("hope")))
        fk, fs = (fear[:-1], 0) if fear.endswith("0") else (fear, 1)
        vF, aF, dF = term(fk, fs)
        vH, aH, dH = term(hope, -1)
        L = _diff(vF, vH)
        if dF:
            grad = [g + d for g, d in zip(grad, dF)]
        if dH:
            grad = [g - d for g, d in zip(grad, dH)]
        if aF != aH:  # the two one-hots cancel exactly when they coincide
            for f, cnt in cands[aF].items():
                grad[f] += cnt
            for f, cnt in cands[aH].items():
                grad[f] -= cnt
        if name == "log" and eps != 0:
            K = len(act)
            L += eps * s[gold] - eps / K * mpmath.fsum(s[y] for y in act)
            for f, cnt in cands[gold].items():
                grad[f] += eps * cnt
            for y in act:
                for f, cnt in cands[y].items():
                    grad[f] -= eps / K * cnt
    return w * L, [w * g for g in grad], amb


# --- dense rows and lists -----------------------------------------------------------------

def dense_problem(k, gold, cu):
    cands = [{j: 1} for j in range(k)]
    psi = [[j] for j in range(k)]
    return Problem(cands, psi, cu, gold, k, k)


def row_inputs(loss, scores, costs, alpha, w, eps=0.0, kappa=1.0, msq=1.0):
    """x for cset_eval: scores, then f*alpha*c, h*alpha*c, alpha*c (zeros where a loss does not
    read them: those inputs then do not count), w, eps, kappa, M. costs: the unscaled cost of
    every candidate (the 0/1 costs written out when the library gets none)."""
    name = loss["name"]
    f = h = r = mpf(0)
    a = ex(alpha)
    if name in ("hinge", "softmax_margin", "ramp", "soft_ramp", "infinite_ramp"):
        f = a
    if name in ("ramp", "soft_ramp"):
        h = a
    if name == "risk":
        r = a
    if name == "hope_fear":
        f = a * ex(loss.get("fear_scale", 1.0))
        if loss.get("hope") in ("max", "lse"):
            h = a * ex(loss.get("hope_scale", 0.0))
    s = [ex(v) for v in scores]
    c = [ex(v) for v in costs]
    x = s + [f * ci if sj != NINF else mpf(0) for ci, sj in zip(c, s)]
    x += [h * ci if sj != NINF else mpf(0) for ci, sj in zip(c, s)]
    x += [r * ci if sj != NINF else mpf(0) for ci, sj in zip(c, s)]
    squared = name == "squared"
    x += [ex(w), ex(eps), ex(kappa) if squared else mpf(0), ex(msq) if squared else mpf(0)]
    return x


@memo()
def _dense_cached(loss_items, scores, costs, gold, alpha, w, eps, kappa, msq):
    loss = dict(loss_items)
    k = len(scores)
    P = dense_problem(k, gold, [ex(c) for c in costs])
    x = row_inputs(loss, scores, costs, alpha, w, eps, kappa, msq)
    return conditioned(lambda xx: cset_eval(loss, P, xx), x)


def dense_reference(loss: dict, scores, costs, gold, alpha, w=1.0, eps=0.0, kappa=1.0, msq=1.0):
    """(L, grad, ambiguous, condL, condG) of one row (or list): scores and costs as floats."""
    return _dense_cached(tuple(sorted(loss.items())), tuple(float(v) for v in scores),
                         tuple(float(v) for v in costs), int(gold), float(alpha), float(w),
                         float(eps), float(kappa), float(msq))


def big_row_reference(scores, costs, gold, alpha, w=1.0):
    return _big_row(tuple(map(float, scores)), tuple(map(float, costs)), int(gold), float(alpha),
                    float(w))


@memo()
def _big_row(scores, costs, gold, alpha, w):
    """Closed form for lse(s + alpha c) - s_g (log loss when alpha c = 0) on one long row:
    (L, grad, False, condL, condG) with the conditioning of the module docstring."""
    with mpmath.workdps(DPS):
        s = [ex(v) for v in scores]
        c = [ex(alpha) * ex(v) for v in costs]
        v = [a + b for a, b in zip(s, c)]
        val, a, p = _lse(v, gold)
        W = ex(w)
        L = _diff(val, (s[gold], 0))
        # dL/ds_j = p_j - [j = g], dL/dc_j = p_j; g_i = p_i - [i = g] (w.r.t. s and to c alike).
        g = list(p)
        if a == gold:
            g[gold] = -mpmath.fsum(p[j] for j in range(len(p)) if j != a)
        else:
            g[gold] -= 1
        ax = [abs(si) + abs(ci) for si, ci in zip(s, c)]
        A = mpmath.fsum(pj * axj for pj, axj in zip(p, ax))
        condL = mpmath.fsum(abs(gj) * abs(sj) + pj * abs(cj) for gj, pj, sj, cj in zip(g, p, s, c))
        condL = W * condL + abs(W * L)
        # sum_j |H_ij| |x_j| = p_i ((1 - p_i) ax_i + A - p_i ax_i), plus the weight's |g_i|.
        condG = [W * (pi * ((1 - pi) * axi + A - pi * axi)) + abs(W * gi)
                 for pi, axi, gi in zip(p, ax, g)]
        return W * L, [W * gi for gi in g], False, condL, condG


# --- chains by enumerating paths ----------------------------------------------------------

def chain_problem(T, tags, gold_path, cost_u):
    """Paths in itertools.product order. Features: emission (t, y) -> t*tags + y, transition
    (a, b) -> T*tags + a*tags + b, start y, end y after them. Cost index (t, y) -> t*tags + y."""
    E = T * tags
    tr0, st0, en0 = E, E + tags * tags, E + tags * tags + tags
    cands, psi, cu = [], [], []
    gold = -1
    for idx, y in enumerate(itertools.product(range(tags), repeat=T)):
        phi = {}
        for t in range(T):
            phi[t * tags + y[t]] = phi.get(t * tags + y[t], 0) + 1
            if t:
                f = tr0 + y[t - 1] * tags + y[t]
                phi[f] = phi.get(f, 0) + 1
        phi[st0 + y[0]] = phi.get(st0 + y[0], 0) + 1
        phi[en0 + y[-1]] = phi.get(en0 + y[-1], 0) + 1
        cands.append(phi)
        psi.append([t * tags + y[t] for t in range(T)])
        cu.append(mpmath.fsum(cost_u[t * tags + y[t]] for t in range(T)))
        if list(y) == list(gold_path):
            gold = idx
    return Problem(cands, psi, cu, gold, en0 + tags, E)


@memo()
def _chain_cached(loss_items, T, tags, emissions, transitions, start, end, gold_path, costs,
                  alpha, w):
    loss = dict(loss_items)
    P = chain_problem(T, tags, gold_path, [ex(c) for c in costs])
    theta = [ex(v) for v in emissions + transitions + start + end]
    x = row_inputs(loss, [0.0] * (T * tags), costs, alpha, w)
    # row_inputs zeroes the costs of masked candidates; here a cost is masked with its emission.
    nc = T * tags
    for i in range(nc):
        if ex(emissions[i]) == NINF:
            for blk in (1, 2, 3):
                x[blk * nc + i] = mpf(0)
    x = theta + x[nc:]
    return conditioned(lambda xx: cset_eval(loss, P, xx), x)


def chain_reference(loss: dict, emissions, transitions, start, end, gold_path, costs, alpha,
                    w=1.0):
    """One sequence (T = its length, every input a flat float tuple) -> (L, grad, ambiguous,
    condL, condG); grad = d_emissions (T*tags), d_transitions, d_start, d_end, concatenated."""
    T = len(gold_path)
    tags = len(start)
    f = lambda a: tuple(float(v) for v in a)  # noqa: E731
    return _chain_cached(tuple(sorted(loss.items())), T, tags, f(emissions), f(transitions),
                         f(start), f(end), tuple(int(g) for g in gold_path), f(costs),
                         float(alpha), float(w))


# ------------------------------------------------------------------------------------------
# Angular losses (dense rows of cosines)
# ------------------------------------------------------------------------------------------

def _angular_eval(name, gold, prec, x):
    k = len(x) - 3
    cs, S, M, w = x[:k], x[k], x[k + 1], x[k + 2]
    z = [S * c if c != NINF else NINF for c in cs]
    cg = cs[gold]
    dz = 1
    if name == "cosface":
        z[gold] = S * (cg - M)
    else:
        sin_t = mpmath.sqrt(1 - cg * cg)
        if cg > mpmath.cos(mpmath.pi - M):
            z[gold] = S * (cg * mpmath.cos(M) - sin_t * mpmath.sin(M))
            floor = mpmath.sqrt(2 * U[prec])
            dz = mpmath.cos(M) + cg * mpmath.sin(M) / max(sin_t, floor)
        else:
            z[gold] = S * (cg - M * mpmath.sin(M))
    val, a, p = _lse(z, gold)
    L = _diff(val, (z[gold], 0))
    cands = [{j: 1} for j in range(k)]
    g = _dense_part(cands, p, a, k)  # p - e_a
    if a != gold:
        g[a] += 1
        g[gold] -= 1
    g = [S * gj for gj in g]
    g[gold] *= dz
    return w * L, [w * gj for gj in g], False


@memo()
def angular_reference(name, cosines, gold, S, M, prec, w=1.0):
    x = [ex(c) for c in cosines] + [ex(S), ex(M), ex(w)]
    return conditioned(lambda xx: _angular_eval(name, gold, prec, xx), x)


# ------------------------------------------------------------------------------------------
# L-Softmax (one example: x (d), W (k, d)); gradient w.r.t. x and W derived here by hand
# ------------------------------------------------------------------------------------------

def _cheb(m, c):
    """T_m(c) and U_{m-1}(c)."""
    t0, t1 = mpf(1), c
    u0, u1 = mpf(0), mpf(1)  # U_{-1}, U_0
    for _ in range(m - 1):
        t0, t1 = t1, 2 * c * t1 - t0
        u0, u1 = u1, 2 * c * u1 - u0
    return (t1 if m >= 1 else t0), u1


def _lsoftmax_eval(m, k, d, gold, x):
    xv = x[:d]
    W = [x[d + j * d:d + (j + 1) * d] for j in range(k)]
    lam, wt = x[d + k * d], x[d + k * d + 1]
    f = [mpmath.fsum(a * b for a, b in zip(Wj, xv)) for Wj in W]
    nx = mpmath.sqrt(mpmath.fsum(a * a for a in xv))
    Wy = W[gold]
    nw = mpmath.sqrt(mpmath.fsum(a * a for a in Wy))
    dfx = list(Wy)  # d f~_y / d x
    dfw = list(xv)  # d f~_y / d W_y
    ft = list(f)
    if nx != 0 and nw != 0:
        c = min(max(f[gold] / (nw * nx), mpf(-1)), mpf(1))
        j = 0
        while j < m - 1 and c < mpmath.cos((j + 1) * mpmath.pi / m):
            j += 1
        Tm, Um1 = _cheb(m, c)
        sgn = -1 if j % 2 else 1
        psi = sgn * Tm - 2 * j
        dpsi = sgn * m * Um1
        ft[gold] = (lam * f[gold] + nw * nx * psi) / (1 + lam)
        # psi(c(x, W_y)) |W_y| |x|: d/dx = |W_y| psi x/|x| + |W_y||x| psi' (W_y/(|W_y||x|) - c x/|x|^2)
        dfx = [(lam * wy + nw * psi * xi / nx + dpsi * (wy - c * nw * xi / nx)) / (1 + lam)
               for wy, xi in zip(Wy, xv)]
        dfw = [(lam * xi + nx * psi * wy / nw + dpsi * (xi - c * nx * wy / nw)) / (1 + lam)
               for wy, xi in zip(Wy, xv)]
    val, a, p = _lse(ft, gold)
    L = _diff(val, (ft[gold], 0))
    G = _dense_part([{j: 1} for j in range(k)], p, a, k)
    if a != gold:
        G[a] += 1
        G[gold] -= 1
    gx = [mpmath.fsum(G[j] * (W[j][i] if j != gold else dfx[i]) for j in range(k)) for i in range(d)]
    gw = []
    for j in range(k):
        gw += [G[j] * (dfw[i] if j == gold else xv[i]) for i in range(d)]
    return wt * L, [wt * v for v in gx + gw], False


@memo()
def lsoftmax_reference(m, x, W, gold, lam, w=1.0):
    """x: d floats, W: k*d floats (flat). (L, [d_x..., d_w...], False, condL, condG)."""
    d = len(x)
    k = len(W) // d
    xx = [ex(v) for v in x] + [ex(v) for v in W] + [ex(lam), ex(w)]
    return conditioned(lambda z: _lsoftmax_eval(m, k, d, gold, z), xx)


# ------------------------------------------------------------------------------------------
# The metric
# ------------------------------------------------------------------------------------------

def _err(computed, exact, prec):
    """|computed - exact| (inf for NaN or a wrong infinity); an exact value beyond the type's
    largest finite number must come back as the infinity of its sign."""
    c = float(computed)
    if math.isnan(c):
        return mpmath.inf
    if abs(exact) > FMAX[prec] * (1 + U[prec]):
        return mpf(0) if math.isinf(c) and (c > 0) == (exact > 0) else mpmath.inf
    if math.isinf(c):
        return mpmath.inf
    return abs(mpf(c) - exact)


def _ratio(err, bound):
    if err == 0:
        return 0.0
    if bound == 0 or err == mpmath.inf:
        return math.inf
    return float(err / bound)


def score(prec, L_lib, g_lib, ref, compare_grad=True, extra=0.0):
    """(loss ratio, gradient ratio, wrong signs, worst entry, row-norm gradient ratio) of one
    example against its reference (L, g, ambiguous, condL, condG). The last is for information
    only (not asserted): max_i |error_i| / (4u (max_i |g_i| + max_i condG_i) + tiny), the normwise
    reading of "each row against its own conditioning", which forgives an entry whose own
    conditioning is far below the row's."""
    L, g, amb, condL, condG = ref
    u, tiny = U[prec], TINY[prec]
    rL = _ratio(_err(L_lib, L, prec), 4 * u * (abs(L) + condL) + tiny)
    if g_lib is None or not compare_grad or amb:
        return rL, 0.0, 0, None, 0.0
    # `extra`: an absolute allowance per gradient entry that include/losskit.h documents for a
    # loss whose gradient is a difference of two softmaxes (the rounding of the probabilities).
    bounds = [4 * u * (abs(gi) + ci) + tiny + extra for gi, ci in zip(g, condG)]
    level = max(bounds)
    rG, worst, signs, emax = 0.0, None, 0, mpf(0)
    for i, (gl, gi, b) in enumerate(zip(g_lib, g, bounds)):
        e = _err(gl, gi, prec)
        emax = max(emax, e)
        r = _ratio(e, b)
        if r > rG:
            rG, worst = r, i
        gl = float(gl)
        if abs(gi) > level and (math.isnan(gl) or gl * gi < 0 or (gl == 0)):
            signs += 1
    finite_g = [abs(gi) for gi in g if finite(gi)] or [mpf(0)]
    rN = _ratio(emax, 4 * u * (max(finite_g) + max(condG)) + tiny)
    return rL, rG, signs, worst, rN
