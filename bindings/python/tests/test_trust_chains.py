"""Linear chains under hostile inputs: buffer sizes that cannot exist, path scores that
overflow double, extreme magnitudes, and losses near zero (the trust findings on lk_chain_*).

Where each expected value comes from is said at each case: a status and message from the
header's contract, closed forms, or an exact reference computed here with mpmath by
enumerating every tag path (tiny T and tags) on the exact values of the float inputs.

Cases that crashed the process before their fix run in a subprocess, so that a regression fails
the test instead of killing pytest; they call the C functions through ctypes directly with tiny
real buffers, so that reading past the sizes the call was given would really fault.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest

import losskit
from losskit import LossKitError
from losskit._native import lib

LK_ERR_SIZE, LK_ERR_DOMAIN = 2, 5
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
PRECISIONS = [np.float32, np.float64]

mpmath.mp.dps = 60


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def run_isolated(body: str) -> subprocess.CompletedProcess:
    """Runs `body` (Python, with losskit and a raw `call` helper in scope) in a fresh process
    against the same library, and returns the finished process: a crash is a non-zero
    return code, not a dead pytest."""
    prelude = textwrap.dedent("""
        import ctypes, sys
        import numpy as np
        from losskit import _native
        from losskit._common import make_options
        lib = _native.lib
        def raw(name, nargs):
            f = lib[name]           # a fresh function object: no errcheck, the status comes back
            f.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * nargs
            f.restype = ctypes.c_int32
            return f
        def addr(a):
            return None if a is None else a.ctypes.data
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        def guarded(nbytes):
            # The address of nbytes of zeros that end where an inaccessible page begins: a read
            # one byte past them faults (heap garbage could otherwise end a runaway loop early).
            page = 4096
            size = (nbytes + page - 1) // page * page + page
            base = libc.mmap(None, size, 3, 0x22, -1, 0)   # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
            assert base not in (None, ctypes.c_void_p(-1).value)
            assert libc.mprotect(base + size - page, page, 0) == 0
            return base + size - page - nbytes
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, env.get("PYTHONPATH", "")])
    env["LOSSKIT_LIBRARY"] = str(losskit._native.library_path())
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body)], env=env,
                          capture_output=True, text=True, timeout=120)


def poisoned(shape, dtype):
    """An output buffer filled with a recognisable NaN pattern (to see it untouched on error)."""
    a = np.empty(shape, dtype)
    a.view(np.uint8)[...] = 0xA5
    return a


def exact_paths(e, tr, st, en, T, tags):
    """Every path with its exact score (mpf sum of the exact float inputs)."""
    out = []
    for y in itertools.product(range(tags), repeat=T):
        s = mpmath.mpf(float(st[y[0]])) + mpmath.mpf(float(en[y[-1]]))
        for t in range(T):
            s += mpmath.mpf(float(e[t, y[t]]))
            if t:
                s += mpmath.mpf(float(tr[y[t - 1], y[t]]))
        out.append((y, s))
    return out


def exact_lse(values):
    m = max(values)
    return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in values))


def exact_chain(e, tr, gold, *, loss, cost_scale=1.0, st=None, en=None, with_transitions=False):
    """The exact loss and d_emissions (T, tags) of one sequence (every position read) under
    a Hamming cost, by enumerating the paths: the dense formulas of the header over the vector
    of path scores (s + c and s - c formed exactly), chained through the path features
    (d s(y) / d e[t, y'] = [y_t = y'], d s(y) / d tr[a, b] = #{t : (y_{t-1}, y_t) = (a, b)}).
    Max terms take the exact argmax (the cases have no ties)."""
    T, tags = e.shape
    st = np.zeros(tags) if st is None else st
    en = np.zeros(tags) if en is None else en
    paths = exact_paths(e, tr, st, en, T, tags)
    a = mpmath.mpf(cost_scale)
    cost = [a * sum(1 for t in range(T) if y[t] != gold[t]) for y, _ in paths]
    s = [v for _, v in paths]
    gi = [y for y, _ in paths].index(tuple(gold))
    K = len(s)

    def softmax(v):
        z = exact_lse(v)
        return z, [mpmath.exp(x - z) for x in v]

    def onehot(k):
        return [mpmath.mpf(1 if j == k else 0) for j in range(K)]

    def argmax(v):
        return max(range(K), key=lambda j: v[j])

    plus = [x + c for x, c in zip(s, cost)]
    minus = [x - c for x, c in zip(s, cost)]
    if loss == "log":
        z, p = softmax(s)
        L, g = z - s[gi], [p[k] - (1 if k == gi else 0) for k in range(K)]
    elif loss == "softmax_margin":
        z, p = softmax(plus)
        L, g = z - s[gi], [p[k] - (1 if k == gi else 0) for k in range(K)]
    elif loss == "soft_ramp":
        (zf, pf), (zh, ph) = softmax(plus), softmax(minus)
        L, g = zf - zh, [pf[k] - ph[k] for k in range(K)]
    elif loss == "hinge":
        k = argmax(plus)
        L, g = plus[k] - s[gi], [x - y for x, y in zip(onehot(k), onehot(gi))]
    elif loss == "ramp":
        k, j = argmax(plus), argmax(minus)
        L, g = plus[k] - minus[j], [x - y for x, y in zip(onehot(k), onehot(j))]
    elif loss == "infinite_ramp":
        k = argmax(plus)  # the oracle of a Hamming cost is the gold path (cost 0)
        L, g = plus[k] - s[gi], [x - y for x, y in zip(onehot(k), onehot(gi))]
    elif loss == "risk":
        _, p = softmax(s)
        L = mpmath.fsum(pk * ck for pk, ck in zip(p, cost))
        g = [p[k] * (cost[k] - L) for k in range(K)]
    else:
        raise ValueError(loss)
    d = [[mpmath.mpf(0)] * tags for _ in range(T)]
    d_tr = [[mpmath.mpf(0)] * tags for _ in range(tags)]
    for (y, _), gk in zip(paths, g):
        for t in range(T):
            d[t][y[t]] += gk
            if t:
                d_tr[y[t - 1]][y[t]] += gk
    return (L, d, d_tr) if with_transitions else (L, d)


def conditioning(d, e):
    """sum |dL/dx| |x| over the emissions (the other inputs are 0 in these cases)."""
    return mpmath.fsum(abs(d[t][y]) * abs(mpmath.mpf(float(e[t, y])))
                       for t in range(len(d)) for y in range(len(d[0])))


def unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


# ---------------------------------------------------------------------------------------------
# Buffer sizes that cannot exist (LK_ERR_SIZE before anything is read)
# ---------------------------------------------------------------------------------------------

# n with t_max = 0: no product n * t_max * tags overflows, but lengths (n int32) has no byte
# size (2^62 * 4 and INT64_MAX * 4 overflow int64). Before the fix, lengths[] was read far past
# the 1-element buffer (SIGSEGV). Expected: LK_ERR_SIZE naming lengths, outputs untouched.
HUGE_N = [2**62, 2**63 - 1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("entry", ["chain", "viterbi", "marginals"])
def test_huge_n_with_zero_t_max_is_a_size_error(entry, dtype):
    suffix = "f32" if dtype == "float32" else "f64"
    proc = run_isolated(f"""
        dt = np.{dtype}
        opt = make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
        for n in {HUGE_N}:
            e = np.zeros(1, dt); tr = np.zeros(1, dt)
            lengths = guarded(4)   # one length, 0 (= t_max), then a page that faults
            gold = np.zeros(1, np.int32)
            if "{entry}" == "chain":
                outs = [np.frombuffer(bytes([0xA5] * 8), dtype=dt).copy() for _ in range(5)]
                before = [o.tobytes() for o in outs]
                f = raw("lk_chain_{suffix}", 13)
                status = f(ctypes.addressof(opt), n, 0, 1, addr(e), addr(tr), None, None, lengths,
                           addr(gold), None, None, *[addr(o) for o in outs])
            else:
                path = np.full(2, -7, np.int32)
                vals = np.frombuffer(bytes([0xA5] * 16), dtype=dt).copy()
                outs = [path, vals]
                before = [o.tobytes() for o in outs]
                f = raw("lk_chain_{entry}_{suffix}", 7)
                status = f(ctypes.addressof(opt), n, 0, 1, addr(e), addr(tr), None, None, lengths,
                           addr(path), addr(vals))
            message = lib.lk_last_error().decode()
            assert status == 2, (n, status, message)
            assert "lengths" in message and "overflow" in message, message
            assert [o.tobytes() for o in outs] == before
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.returncode, proc.stdout, proc.stderr[-2000:])


# n = 0, t_max = 0, tags = 3037000499: tags^2 fits int64 but tags^2 * 8 bytes does not. Before
# the fix the empty batch zeroed tags^2 entries of a 4-element d_transitions (SIGSEGV).
# Expected: LK_ERR_SIZE naming the transitions, nothing written.
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_empty_batch_with_overflowing_tags_squared_is_a_size_error(dtype):
    suffix = "f32" if dtype == "float32" else "f64"
    proc = run_isolated(f"""
        dt = np.{dtype}
        opt = make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
        outs = [np.frombuffer(bytes([0xA5] * 32), dtype=dt).copy() for _ in range(4)]
        loss = np.frombuffer(bytes([0xA5] * 8), dtype=dt).copy()
        before = [o.tobytes() for o in outs + [loss]]
        f = raw("lk_chain_{suffix}", 13)
        status = f(ctypes.addressof(opt), 0, 0, 3037000499, None, None, None, None, None, None, None, None,
                   addr(loss), *[addr(o) for o in outs])
        message = lib.lk_last_error().decode()
        assert status == 2, (status, message)
        assert "transitions" in message, message
        assert [o.tobytes() for o in outs + [loss]] == before
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.returncode, proc.stdout, proc.stderr[-2000:])


# t_max huge with n = 1 and tags = 1: the buffers exist as sizes (2^59 * 8 bytes), the one
# length read is 2; the working tables must be sized by the lengths read, not by t_max (before,
# 9 * t_max * stride overflowed Int: a trap). Expected: the plain log loss of one 2-position,
# 1-tag sequence, 0, computed on a 2-element emission buffer.
def test_huge_t_max_sizes_tables_by_the_lengths_read():
    proc = run_isolated("""
        opt = make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
        e = np.array([0.5, -0.25] + [0.0] * 6)
        tr = np.zeros(1); lengths = np.array([2], np.int32); gold = np.zeros(8, np.int32)
        loss = np.full(1, np.nan)
        f = raw("lk_chain_f64", 13)
        status = f(ctypes.addressof(opt), 1, 2**59, 1, addr(e), addr(tr), None, None, addr(lengths),
                   addr(gold), None, None, addr(loss), None, None, None, None)
        assert status == 0, (status, lib.lk_last_error())
        assert loss[0] == 0.0, loss
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.returncode, proc.stdout, proc.stderr[-2000:])


# ---------------------------------------------------------------------------------------------
# Path scores that overflow double, and NaN (a status or a NaN loss, never a signal)
# ---------------------------------------------------------------------------------------------

# Two emissions of -1e308 on the only allowed path (tag 1 is forbidden at both positions):
# every input is finite, but every path's score is -inf in double. Before the fix the oracle of
# INFINITE_RAMP / HOPE_FEAR(oracle, max) found no path and read a stale one (SIGSEGV, or NaN
# with LK_OK). Expected (header, overflow bound): LK_ERR_DOMAIN naming sequence 0, outputs
# untouched.
@pytest.mark.parametrize("options", [dict(loss="infinite_ramp"),
                                     dict(loss="hope_fear", hope="oracle", fear="max")])
def test_oracle_hope_on_overflowing_path_is_a_domain_error(options):
    proc = run_isolated(f"""
        opt = make_options(reduction="sum", cost_scale=1.0, threads=0, **{options!r})
        e = np.array([-1e308, -np.inf, -1e308, -np.inf]); tr = np.zeros(4)
        lengths = np.array([2], np.int32); gold = np.array([1, 1], np.int32)
        outs = [np.frombuffer(bytes([0xA5] * (8 * k)), dtype=np.float64).copy() for k in (1, 4, 4, 2, 2)]
        before = [o.tobytes() for o in outs]
        f = raw("lk_chain_f64", 13)
        status = f(ctypes.addressof(opt), 1, 2, 2, addr(e), addr(tr), None, None, addr(lengths), addr(gold),
                   None, None, *[addr(o) for o in outs])
        message = lib.lk_last_error().decode()
        assert status == 5, (status, message)
        assert "sequence 0" in message and "overflow" in message, message
        assert [o.tobytes() for o in outs] == before
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.returncode, proc.stdout, proc.stderr[-2000:])


OVERFLOWING_LOSSES = ["log", "perceptron", "hinge", "softmax_margin", "risk", "ramp", "soft_ramp",
                      "infinite_ramp"]


def call_error(fn):
    with pytest.raises(LossKitError) as info:
        fn()
    return info.value


# Every loss, float64: emissions of +1e308 at both positions (a path score of 2e308) — and the
# same sums reached through cost_scale in float32 (emissions 1e30, cost_scale 1e308: every
# cost-augmented path overflows). Expected: LK_ERR_DOMAIN naming the sequence, outputs
# untouched (before: NaN or inf losses with LK_OK).
@pytest.mark.parametrize("loss", OVERFLOWING_LOSSES)
def test_overflowing_path_sums_are_domain_errors(loss):
    e = np.array([[[1e308, 0.0], [1e308, 0.0]]])
    err = call_error(lambda: losskit.chain(e, np.zeros((2, 2)), [2], [[0, 1]], loss=loss))
    assert err.status == LK_ERR_DOMAIN and "sequence 0" in str(err), err
    if loss in ("log", "perceptron"):
        return  # no cost read: the float32 case needs one
    e32 = np.full((1, 2, 2), 1e30, np.float32)
    err = call_error(lambda: losskit.chain(e32, np.zeros((2, 2), np.float32), [2], [[0, 1]], loss=loss,
                                           cost_scale=1e308))
    assert err.status == LK_ERR_DOMAIN and "sequence 0" in str(err), err


def test_overflowing_path_sums_outputs_untouched():
    opt = losskit._common.make_options(loss="log", reduction="none", cost_scale=1.0, threads=0)
    e = np.array([1.0, 2.0, 1e308, 1e308]); tr = np.zeros(1)
    lengths = np.array([2, 2], np.int32); gold = np.zeros(4, np.int32)
    outs = [poisoned(k, np.float64) for k in (2, 4, 1, 1, 1)]
    before = [o.tobytes() for o in outs]
    with pytest.raises(LossKitError) as info:
        lib.lk_chain_f64(ctypes.byref(opt), 2, 2, 1, e.ctypes.data, tr.ctypes.data, None, None,
                         lengths.ctypes.data, gold.ctypes.data, None, None, *[o.ctypes.data for o in outs])
    assert info.value.status == LK_ERR_DOMAIN and "sequence 1" in str(info.value)
    assert [o.tobytes() for o in outs] == before


# Viterbi and the marginals: a best path of 2e308 (before: score inf / log Z inf, NaN marginals
# with LK_OK). Expected: LK_ERR_DOMAIN naming the sequence.
@pytest.mark.parametrize("fn", [losskit.viterbi, losskit.marginals])
def test_overflowing_decoding_is_a_domain_error(fn):
    e = np.array([[[0.0, 0.0], [0.0, 0.0]], [[1e308, 0.0], [1e308, 0.0]]])
    err = call_error(lambda: fn(e, np.zeros((2, 2)), [2, 2]))
    assert err.status == LK_ERR_DOMAIN and "sequence 1" in str(err), err


# Large inputs that pass the bound still compute: emissions of 5e306 on a 3-position,
# 1-tag chain (B = 1.5e307 < DBL_MAX / 8): one path, log loss 0 exactly, Viterbi score 1.5e307
# (the exact sum rounded once, here exact in double).
def test_large_but_bounded_path_sums_compute():
    e = np.full((1, 3, 1), 5e306)
    r = losskit.chain(e, np.zeros((1, 1)), [3], [[0, 0, 0]], reduction="sum")
    assert r.loss == 0.0 and np.all(r.d_emissions == 0)
    assert losskit.viterbi(e, np.zeros((1, 1)), [3]).score[0] == 1.5e307


# NaN in an emission or a transition, with an oracle hope: the header's NaN rule (the
# sequence's loss and gradients NaN, LK_OK) — never a signal.
@pytest.mark.parametrize("where", ["emission", "transition"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_nan_with_an_oracle_hope_is_a_nan_loss(where, dtype):
    e = np.zeros((1, 2, 2), dtype); tr = np.zeros((2, 2), dtype)
    e[0, 0, 1] = -np.inf
    (e if where == "emission" else tr)[(0, 1, 0) if where == "emission" else (0, 0)] = np.nan
    for opts in (dict(loss="infinite_ramp"), dict(loss="hope_fear", hope="oracle", fear="max")):
        r = losskit.chain(e, tr, [2], [[1, 0]], reduction="sum", **opts)
        assert np.isnan(r.loss) and np.all(np.isnan(r.d_emissions)) and np.all(np.isnan(r.d_transitions))


# ---------------------------------------------------------------------------------------------
# Accuracy against exact arithmetic (the target: loss error <= 4u (|L| + sum |dL/dx| |x|), each
# gradient entry within 4u (|g| + sum_j |d g / d x_j| |x_j|), no entry of the wrong sign above
# its rounding level)
# ---------------------------------------------------------------------------------------------

def exact_hessian_rows(e, gold, *, loss, cost_scale=1.0):
    """sum_j |d^2 L / d e_i d e_j| |e_j| for every emission i (the gradient's conditioning), for
    the log-sum-exp losses: the Hessian of lse over the path features is their covariance under
    its softmax (log, softmax_margin: Cov_p; soft_ramp: Cov_fear - Cov_hope)."""
    T, tags = e.shape
    paths = exact_paths(e, np.zeros((tags, tags)), np.zeros(tags), np.zeros(tags), T, tags)
    a = mpmath.mpf(cost_scale)
    cost = [a * sum(1 for t in range(T) if y[t] != gold[t]) for y, _ in paths]
    feats = [[1 if y[t] == k else 0 for t in range(T) for k in range(tags)] for y, _ in paths]

    def cov(values):
        z = exact_lse(values)
        p = [mpmath.exp(v - z) for v in values]
        m = [mpmath.fsum(pk * f[i] for pk, f in zip(p, feats)) for i in range(T * tags)]
        return [[mpmath.fsum(pk * f[i] * f[j] for pk, f in zip(p, feats)) - m[i] * m[j]
                 for j in range(T * tags)] for i in range(T * tags)]

    s = [v for _, v in paths]
    if loss == "log":
        H = cov(s)
    elif loss == "softmax_margin":
        H = cov([x + c for x, c in zip(s, cost)])
    elif loss == "soft_ramp":
        F, G = cov([x + c for x, c in zip(s, cost)]), cov([x - c for x, c in zip(s, cost)])
        H = [[F[i][j] - G[i][j] for j in range(T * tags)] for i in range(T * tags)]
    else:
        raise ValueError(loss)
    x = [abs(mpmath.mpf(float(v))) for v in e.reshape(-1)]
    return [mpmath.fsum(abs(H[i][j]) * x[j] for j in range(T * tags)) for i in range(T * tags)]


def assert_accurate(result, e, gold, *, loss, dtype, cost_scale=1.0, hessian=True):
    """The library's loss and d_emissions of one sequence (reduction sum, weight 1) against the
    exact values, within the target."""
    u = unit_roundoff(dtype)
    L, d = exact_chain(e.astype(np.float64), np.zeros((e.shape[1],) * 2), gold, loss=loss,
                       cost_scale=cost_scale)
    bound = 4 * u * (abs(L) + conditioning(d, e))
    err = abs(mpmath.mpf(float(result.loss)) - L)
    assert err <= bound, f"loss {float(result.loss)!r} vs exact {mpmath.nstr(L, 17)}: error {mpmath.nstr(err, 3)} > {mpmath.nstr(bound, 3)}"
    if not hessian:
        return
    rows = exact_hessian_rows(e.astype(np.float64), gold, loss=loss, cost_scale=cost_scale)
    T, tags = e.shape
    for t in range(T):
        for y in range(tags):
            g = d[t][y]
            got = mpmath.mpf(float(result.d_emissions[0, t, y]))
            # The rounding of the entry itself (half an ulp in the output type) comes on top.
            level = 4 * u * (abs(g) + rows[t * tags + y])
            assert abs(got - g) <= level + u * abs(g), f"d_emissions[{t}, {y}] = {float(got)!r} vs exact {mpmath.nstr(g, 17)}"
            if abs(g) > level:
                assert got * g > 0, f"d_emissions[{t}, {y}] = {float(got)!r} has the wrong sign (exact {mpmath.nstr(g, 5)})"


# One sequence of 3 tags, T = 3, gold [0, 1, 2], emission 35 on the gold tags and 0 elsewhere,
# zero transitions: the soft ramp is 8.89e-15 exactly (mpmath over the 27 paths); the plain
# difference of the two log Z gave 1.42e-14 (60 % off). Expected: within the target.
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_soft_ramp_near_zero_keeps_its_digits(dtype):
    e = np.zeros((1, 3, 3), dtype)
    for t in range(3):
        e[0, t, t] = 35
    r = losskit.chain(e, np.zeros((3, 3), dtype), [3], [[0, 1, 2]], loss="soft_ramp", reduction="sum")
    assert_accurate(r, e[0], [0, 1, 2], loss="soft_ramp", dtype=dtype)


# Near-zero regimes of every lse loss: the gold ahead by 20 to 40 at each position (values 0 and
# +-1 elsewhere), 2 and 3 tags, T = 3; exact values by enumeration.
@pytest.mark.parametrize("loss", ["log", "softmax_margin", "soft_ramp"])
@pytest.mark.parametrize("lead", [20.0, 30.0, 40.0])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_lse_losses_near_zero_are_accurate(loss, lead, dtype):
    rng = np.random.default_rng(int(lead) * 7 + len(loss))
    e = rng.choice([-1.0, 0.0, 1.0], size=(3, 3)).astype(dtype)
    gold = [2, 0, 1]
    for t, g in enumerate(gold):
        e[t, g] = lead
    r = losskit.chain(e[None], np.zeros((3, 3), dtype), [3], [gold], loss=loss, reduction="sum")
    assert_accurate(r, e, gold, loss=loss, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Extreme magnitudes
# ---------------------------------------------------------------------------------------------

# One float32 emission of 1e15 or 1e16 at position 0 (tags 2, T 2, zero transitions; with and
# without a forbidden transition, which sends the computation to log space): position 1 is
# symmetric, so its marginals are exactly {0.5, 0.5} and the log-loss gradient there (gold
# [0, 0]) is {-0.5, 0.5}; position 0 has marginals {1, e^-1e16} = {1, 0} in any float. Closed
# form. Before: {1, 1} and {-1, 1} (5 % off already at 1e15).
@pytest.mark.parametrize("big", [1e15, 1e16])
@pytest.mark.parametrize("forbid", [False, True])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_one_huge_emission_keeps_the_other_positions_exact(big, forbid, dtype):
    e = np.zeros((1, 2, 2), dtype)
    e[0, 0, 0] = big
    tr = np.zeros((2, 2), dtype)
    if forbid:
        tr[1, 0] = -np.inf  # a transition no likely path uses
    m = losskit.marginals(e, tr, [2])
    np.testing.assert_array_equal(m.marginals[0], np.array([[1, 0], [0.5, 0.5]], dtype))
    r = losskit.chain(e, tr, [2], [[0, 0]], reduction="sum")
    np.testing.assert_array_equal(r.d_emissions[0], np.array([[0, 0], [-0.5, 0.5]], dtype))
    assert r.loss == dtype(np.log(2))  # log(1 + 1 + (paths through e^-1e16)) rounded


# float64 inputs near 1e300 (T = 3, B = 3e300 within the bound): emissions 1e300 except
# e[1, 1] = -1e300, and the same with transition 0 -> 1 forbidden. Exact by enumeration: the
# paths through e[1, 0] are the only ones of weight, equally likely, so the marginals are
# {0.5, 0.5}, {1, 0}, {0.5, 0.5} (forbidden: {0.5, 0.5}, {1, 0}, {1, 0}), the log loss of the
# gold [0, 0, 0] is log 4 (log 2), and log Z is 3e300 rounded. Before: NaN or {1, 1} marginals.
@pytest.mark.parametrize("forbid", [False, True])
def test_inputs_near_1e300_compute(forbid):
    e = np.array([[[1e300, 1e300], [1e300, -1e300], [1e300, 1e300]]])
    tr = np.zeros((2, 2))
    if forbid:
        tr[0, 1] = -np.inf
    m = losskit.marginals(e, tr, [3])
    last = [1.0, 0.0] if forbid else [0.5, 0.5]
    np.testing.assert_array_equal(m.marginals[0], [[0.5, 0.5], [1.0, 0.0], last])
    paths = exact_paths(e[0], tr, np.zeros(2), np.zeros(2), 3, 2)
    assert m.log_z[0] == float(exact_lse([s for _, s in paths if s > -mpmath.inf]))
    r = losskit.chain(e, tr, [3], [[0, 0, 0]], reduction="sum")
    assert abs(r.loss - np.log(2 if forbid else 4)) <= 4e-16 * np.log(4)
    assert np.all(np.isfinite(r.d_emissions)) and np.all(np.isfinite(r.d_transitions))


# Example weights of 1e308 (float64) and FLT_MAX (float32), reduction sum: the gradient is the
# weight times the unweighted one (linear in the weight), so each entry is w * g with g from
# the NumPy reference (chain_reference, enumeration over the paths, weight 1); entries whose
# true value exceeds the largest finite number are +-inf with the sign of g (the header's rule).
# Before: NaN in d_transitions, where a positive and a negative partial sum overflowed.
@pytest.mark.parametrize("loss", ["log", "softmax_margin", "soft_ramp", "hinge", "risk"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_huge_weights_scale_the_gradient(loss, dtype):
    from chain_reference import reference_chain
    rng = np.random.default_rng(11)
    big = np.finfo(dtype).max if dtype == np.float32 else 1e308
    for T, tags in [(5, 1), (9, 3)]:
        e = rng.normal(size=(1, T, tags)).astype(dtype)
        tr = rng.normal(size=(tags, tags)).astype(dtype)
        gold = rng.integers(0, tags, size=(1, T))
        r = losskit.chain(e, tr, [T], gold, loss=loss, weight=np.array([big], dtype), reduction="sum")
        _, *ref = reference_chain(e.astype(np.float64), tr.astype(np.float64), [T], gold, loss=loss,
                                  reduction="sum")
        with np.errstate(over="ignore"):  # exact values above the largest float are meant to be inf
            for got, g in zip(r[1:], ref):
                assert not np.isnan(got).any()
                exact = np.float64(big) * g  # may overflow to +-inf: so does the stored value
                finite = np.abs(g) * float(big) < float(np.finfo(dtype).max) * (1 - 1e-6)
                scale = float(big) * max(1.0, float(np.abs(g).max()))
                tol = 64 * float(np.finfo(dtype).eps) * scale  # the reference is float64 enumeration
                assert np.all(np.abs(got[finite].astype(np.float64) - exact[finite]) <= tol)
                over = ~finite & (np.abs(g) * float(big) > float(np.finfo(dtype).max) * (1 + 1e-6))
                assert np.all(np.isinf(got[over]) & (np.sign(got[over]) == np.sign(g[over])))


# ---------------------------------------------------------------------------------------------
# Risk (expected Hamming cost) where one path dominates
# ---------------------------------------------------------------------------------------------

def risk_cases():
    """(emissions (T, tags), gold): the dense defect's row as a 1-position chain (gold 2; the
    mass sits on tag 3, of cost 1: R = 1 - tiny), the gold 40 above the rest, and seeded
    random chains whose scores spread 10 to 60 (a dominant path that is not the gold)."""
    cases = [(np.array([[-0.9, 5.2, -50.1, 24.9]]), [2])]
    e = np.zeros((3, 3))
    e[[0, 1, 2], [0, 1, 2]] = 40.0
    cases.append((e, [0, 1, 2]))
    rng = np.random.default_rng(20)
    for _ in range(40):
        T, tags = int(rng.integers(1, 4)), int(rng.integers(2, 4))
        cases.append((rng.normal(size=(T, tags)) * rng.choice([10, 30, 60]), list(rng.integers(0, tags, T))))
    return cases


# Expected (mpmath over every path, 400 digits: R = 1 - p is exact only with enough of them):
# the loss within the target, R at most the largest path cost (T), and no gradient entry of
# the wrong sign where its exact value exceeds the row's level 4u (sum_row |g|) (1 + max |e|).
# Before: R = 1.0000000000000002 on the first case, and entries of either sign at 1e-16 where
# the exact ones were below 1e-18 (E[c | y_t] - R cancelling near the dominant path's cost).
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_risk_where_one_path_dominates(dtype):
    u = unit_roundoff(dtype)
    with mpmath.workdps(400):
        for e, gold in risk_cases():
            e = e.astype(dtype)
            T, tags = e.shape
            r = losskit.chain(e[None], np.zeros((tags, tags), dtype), [T], [gold], loss="risk", reduction="sum")
            L, d = exact_chain(e.astype(np.float64), np.zeros((tags, tags)), gold, loss="risk")
            bound = 4 * u * (abs(L) + conditioning(d, e)) + float(np.finfo(dtype).smallest_subnormal)
            assert abs(mpmath.mpf(float(r.loss)) - L) <= bound, (e, gold, float(r.loss), L)
            assert r.loss <= T
            for t in range(T):
                level = 4 * u * mpmath.fsum(abs(g) for g in d[t]) * (1 + float(np.abs(e[t]).max()))
                level = max(level, float(np.finfo(dtype).smallest_subnormal))  # below: stored as 0
                for y in range(tags):
                    if abs(d[t][y]) > level:
                        assert float(r.d_emissions[0, t, y]) * d[t][y] > 0, (e, gold, t, y, r.d_emissions[0, t, y], d[t][y])


# float32 chains with cost_scale 1e38 (Hamming costs; the sums stay far below DBL_MAX). Exact
# reference: mpmath over the 81 paths, s + c formed exactly. Where 1e38 c dwarfs the emissions,
# their differences still decide among the paths of equal cost, so the gradients are those of
# the exact arithmetic to float32 rounding (each row's entries are marginals or one-hots of
# magnitude <= 1); the loss, 4e38, is above FLT_MAX: +inf (the header's rule). Before: the
# log-space programs returned rows of +-1 or 0.5 where marginals were expected.
@pytest.mark.parametrize("loss", ["hinge", "softmax_margin", "soft_ramp", "ramp", "infinite_ramp", "risk"])
def test_float32_cost_scale_1e38(loss):
    rng = np.random.default_rng(3)
    e = rng.normal(size=(1, 4, 3)).astype(np.float32)
    tr = rng.normal(size=(3, 3)).astype(np.float32)
    gold = [0, 1, 2, 0]
    r = losskit.chain(e, tr, [4], [gold], loss=loss, cost_scale=1e38, reduction="sum")
    L, d, d_tr = exact_chain(e[0].astype(np.float64), tr.astype(np.float64), gold, loss=loss, cost_scale=1e38,
                             with_transitions=True)
    # 4e38 exceeds FLT_MAX: the stored loss is +inf, as the exact value rounded to float32.
    with np.errstate(over="ignore"):
        assert r.loss == np.float32(float(L)) or abs(float(r.loss) - float(L)) <= 1e-6 * abs(float(L))
    for got, want in ((r.d_emissions[0], d), (r.d_transitions, d_tr)):
        want = np.array([[float(x) for x in row] for row in want])
        assert np.all(np.isfinite(got))
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=4 * 2**-24 * scale * 4)


# Every loss in three regimes — standard normal scores, wide ones (|s| ~ 90), the gold ahead by
# 20 to 60 — with random transitions, T <= 3, tags <= 3: the loss within the target against
# mpmath over every path (the conditioning counts the transitions too). Before: soft ramp at
# |s| ~ 90 was 30 times over (the difference of two log Z near 300), hinge and infinite ramp
# just over (two path sums of the shared positions).
@pytest.mark.parametrize("regime", ["normal", "wide", "lead"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_losses_within_the_target(regime, dtype):
    rng = np.random.default_rng({"normal": 1, "wide": 2, "lead": 3}[regime])
    u = unit_roundoff(dtype)
    for _ in range(12):
        T, tags = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        e = rng.normal(size=(T, tags)) * (90 if regime == "wide" else 1)
        gold = [int(g) for g in rng.integers(0, tags, T)]
        if regime == "lead":
            for t, g in enumerate(gold):
                e[t, g] += rng.uniform(20, 60)
        e, tr = e.astype(dtype), rng.normal(size=(tags, tags)).astype(dtype)
        for loss in ["log", "softmax_margin", "soft_ramp", "hinge", "ramp", "infinite_ramp", "risk"]:
            r = losskit.chain(e[None], tr, [T], [gold], loss=loss, reduction="sum")
            with mpmath.workdps(200):
                L, d, d_tr = exact_chain(e.astype(np.float64), tr.astype(np.float64), gold, loss=loss,
                                         with_transitions=True)
                cond = conditioning(d, e) + mpmath.fsum(abs(d_tr[a][b]) * abs(mpmath.mpf(float(tr[a, b])))
                                                        for a in range(tags) for b in range(tags))
                bound = 4 * u * (abs(L) + cond) + float(np.finfo(dtype).smallest_subnormal)
                assert abs(mpmath.mpf(float(r.loss)) - L) <= bound, (loss, e, tr, gold, float(r.loss), L)


# Found by a random-input run: transitions near 1e16 (past the scaled programs' margin, so log
# space) with a start score of 1e50..1e300. Before: log loss +inf, soft ramp NaN with LK_OK,
# marginals that summed to 2 at a position (alpha + beta near 1e300 rounded away the 1e16
# differences; log1p(exp(1e16)) overflowed). Expected: marginals summing to 1 at every
# position (closed form), and the log loss within the target against mpmath over every path
# (conditioning over emissions, transitions and start).
@pytest.mark.parametrize("big_start", [1e50, 1e300])
def test_huge_transitions_and_start_in_log_space(big_start):
    e = np.array([[[-10.5, -1e38], [13.4, 4.5], [2.2, 13.9], [21.6, 11.8]]])
    tr = np.array([[-9.0, 1e16], [-16.8, -85.8]])
    st = np.array([7.5, big_start])
    gold = [1, 1, 1, 1]
    m = losskit.marginals(e, tr, [4], start=st)
    np.testing.assert_allclose(m.marginals[0].sum(axis=1), 1.0, rtol=0, atol=4e-16)
    for loss in ["log", "soft_ramp", "hinge"]:
        r = losskit.chain(e, tr, [4], [gold], start=st, loss=loss, reduction="sum")
        assert np.isfinite(r.loss) and all(np.all(np.isfinite(g)) for g in r[1:])
    r = losskit.chain(e, tr, [4], [gold], start=st, loss="log", reduction="sum")
    with mpmath.workdps(400):
        L, d, d_tr = exact_chain(e[0], tr, gold, loss="log", st=st, with_transitions=True)
        cond = (conditioning(d, e[0]) + mpmath.fsum(abs(d[0][y]) * abs(mpmath.mpf(st[y])) for y in range(2))
                + mpmath.fsum(abs(d_tr[a][b]) * abs(mpmath.mpf(tr[a, b])) for a in range(2) for b in range(2)))
        assert abs(mpmath.mpf(float(r.loss)) - L) <= 4 * 2**-53 * (abs(L) + cond)


# ---------------------------------------------------------------------------------------------
# Gradients where one path dominates, a single allowed path, max terms at extreme magnitudes
# ---------------------------------------------------------------------------------------------
# The losses by their terms (DESIGN.md §1): F - H, each term over v = s + w c (Hamming cost times
# cost_scale), w = +fear_scale for the fear, -hope_scale for the hope.
TERMS = {
    "log": (("lse", 0.0), ("gold", 0.0)),
    "softmax_margin": (("lse", 1.0), ("gold", 0.0)),
    "perceptron": (("max", 0.0), ("gold", 0.0)),
    "hinge": (("max", 1.0), ("gold", 0.0)),
    "ramp": (("max", 1.0), ("max", -1.0)),
    "infinite_ramp": (("max", 1.0), ("gold", 0.0)),  # the oracle of a Hamming cost is the gold
    "hf_lse_max": (("max", 1.0), ("lse", -1.0)),
    "hf_max_lse": (("lse", 1.0), ("max", -1.0)),
    "hf_oracle_lse": (("lse", 1.0), ("gold", 0.0)),
    "soft_ramp": (("lse", 1.0), ("lse", -1.0)),
    "hf_lse_lse": (("lse", 1.0), ("lse", -0.5)),
}
HF_OPTIONS = {
    "hf_lse_max": dict(loss="hope_fear", hope="lse", hope_scale=1.0, fear="max", fear_scale=1.0),
    "hf_max_lse": dict(loss="hope_fear", hope="max", hope_scale=1.0, fear="lse", fear_scale=1.0),
    "hf_oracle_lse": dict(loss="hope_fear", hope="oracle", hope_scale=0.0, fear="lse", fear_scale=1.0),
    "hf_lse_lse": dict(loss="hope_fear", hope="lse", hope_scale=0.5, fear="lse", fear_scale=1.0),
}


def exact_terms(e, tr, st, en, gold, loss, cost_scale=1.0, costs=None):
    """Exact F - H and its gradients (d_emissions, d_transitions, d_start, d_end) by enumerating
    every path (masked tags: score -inf, weight 0). Max terms take the exact argmax (no ties).
    costs: T x tags unscaled per-position costs, or None (Hamming)."""
    T, tags = e.shape
    paths = exact_paths(e, tr, st, en, T, tags)
    if costs is None:
        costs = [[float(y != gold[t]) for y in range(tags)] for t in range(T)]
    cost = [mpmath.mpf(cost_scale) * mpmath.fsum(mpmath.mpf(float(costs[t][y[t]])) for t in range(T))
            for y, _ in paths]
    gi = [y for y, _ in paths].index(tuple(gold))

    def term(kind, w):
        v = [s + w * c if s != -mpmath.inf else s for (_, s), c in zip(paths, cost)]
        if kind == "gold":
            return v[gi], [mpmath.mpf(k == gi) for k in range(len(v))]
        if kind == "max":
            k = max(range(len(v)), key=lambda j: v[j])
            return v[k], [mpmath.mpf(j == k) for j in range(len(v))]
        z = exact_lse([x for x in v if x != -mpmath.inf])
        return z, [mpmath.exp(x - z) if x != -mpmath.inf else mpmath.mpf(0) for x in v]

    (f, pf), (h, ph) = (term(*t) for t in TERMS[loss])
    g = [a - b for a, b in zip(pf, ph)]
    d = np.full((T, tags), mpmath.mpf(0), dtype=object)
    d_tr = np.full((tags, tags), mpmath.mpf(0), dtype=object)
    d_st, d_en = np.full(tags, mpmath.mpf(0), dtype=object), np.full(tags, mpmath.mpf(0), dtype=object)
    for (y, _), gk in zip(paths, g):
        d_st[y[0]] += gk
        d_en[y[-1]] += gk
        for t in range(T):
            d[t, y[t]] += gk
            if t:
                d_tr[y[t - 1], y[t]] += gk
    return f - h, [d, d_tr, d_st, d_en]


def chain_terms(e, tr, st, en, gold, loss, cost_scale=1.0, costs=None):
    options = HF_OPTIONS.get(loss, {"loss": loss})
    return losskit.chain(e[None], tr, [e.shape[0]], [gold], start=st, end=en, cost_scale=cost_scale,
                         cost=None if costs is None else costs[None], reduction="sum", **options)


def assert_terms_accurate(r, e, tr, st, en, gold, loss, dtype, cost_scale=1.0, grad_rtol=None, costs=None):
    """Loss within 4u (|L| + sum |dL/dx| |x|) of the exact value; every gradient entry within
    grad_rtol (default 8u) of its exact value, relative (signs included), or below the output
    type's smallest normal number where the exact entry underflows there."""
    u = unit_roundoff(dtype)
    with mpmath.workdps(1000):  # scores of 1e300 keep 700 digits below the point
        L, grads = exact_terms(*(x.astype(np.float64) for x in (e, tr, st, en)), gold, loss, cost_scale, costs)
        inputs = [e, tr, st, en]
        cond = mpmath.fsum(abs(g) * abs(mpmath.mpf(float(x))) for gs, xs in zip(grads, inputs)
                           for g, x in zip(gs.ravel(), xs.ravel()) if g != 0)
        err = abs(mpmath.mpf(float(r.loss)) - L)
        assert err <= 4 * u * (abs(L) + cond), (loss, float(r.loss), mpmath.nstr(L, 17))
        rtol = 8 * u if grad_rtol is None else grad_rtol
        got = [r.d_emissions[0], r.d_transitions, r.d_start, r.d_end]
        for name, gs, xs in zip(["d_emissions", "d_transitions", "d_start", "d_end"], grads, got):
            for i, (g, x) in enumerate(zip(gs.ravel(), np.asarray(xs).ravel())):
                x = mpmath.mpf(float(x))
                floor = float(np.finfo(dtype).tiny)
                assert abs(x - g) <= rtol * abs(g) + floor, (loss, name, i, float(x), mpmath.nstr(g, 17))


# T = 3, 3 tags, emission 35 on the gold tags [0, 1, 2] (or a lead of 30 on gold [2, 0, 1] with
# the others +-1 and random transitions), 0 elsewhere: every path but the gold has weight below
# e^-30, and the gradient entries of the gold's tags and edges are minus the other paths' mass
# through them (exact: mpmath over the 27 paths). Before: d_transitions[0][1] of the log loss
# was -2.5535e-15 against -2.5220e-15 (the gold edge's marginal near 1, minus 1).
@pytest.mark.parametrize("loss", ["log", "softmax_margin", "hf_max_lse", "hf_oracle_lse", "hf_lse_max"])
@pytest.mark.parametrize("case", ["diagonal", "lead"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_gradients_near_zero_loss_keep_their_digits(loss, case, dtype):
    rng = np.random.default_rng(17)
    if case == "diagonal":
        e, gold, tr = np.zeros((3, 3)), [0, 1, 2], np.zeros((3, 3))
        for t in range(3):
            e[t, t] = 35
    else:
        e, gold = rng.choice([-1.0, 0.0, 1.0], size=(3, 3)), [2, 0, 1]
        tr = rng.normal(size=(3, 3)) * 0.5
        for t, g in enumerate(gold):
            e[t, g] = 30
    e, tr = e.astype(dtype), tr.astype(dtype)
    st, en = np.zeros(3, dtype), np.zeros(3, dtype)
    r = chain_terms(e, tr, st, en, gold, loss)
    # The entries near e^-30 depend on the inputs through factors ~ 35 x 3: their conditioning.
    assert_terms_accurate(r, e, tr, st, en, gold, loss, dtype, grad_rtol=4 * unit_roundoff(dtype) * 400)


# Every tag but one per position masked by -inf emissions: one allowed path, the gold, so every
# marginal is exactly 1 and every gradient exactly 0, the loss exactly 0 (closed form). Before:
# d_transitions had -1.1e-16 on the path's edges (a marginal near 1 summed, then 1 taken away).
@pytest.mark.parametrize("loss", ["log", "softmax_margin", "hf_lse_max", "hf_max_lse", "hf_oracle_lse"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_single_allowed_path_has_zero_gradient(loss, dtype):
    # The accuracy suite's masked case, then random ones.
    cases = [(np.array([[-1.0960915088653564, -np.inf, -np.inf], [-np.inf, -np.inf, -1.3275797367095947],
                        [-np.inf, -2.1079349517822266, -np.inf]]),
              np.array([[0.7929164171218872, 1.3386738300323486, -0.2703857123851776],
                        [-0.11067485064268112, -0.16969819366931915, 0.38972681760787964],
                        [0.10185077041387558, -0.3771490752696991, -0.9744839072227478]]),
              np.array([-0.18786823749542236, 0.3488103747367859, -0.093666672706604]),
              np.array([0.5831847190856934, 0.45959699153900146, 0.6892813444137573]), [0, 2, 1])]
    rng = np.random.default_rng(5)
    for _ in range(8):
        T = int(rng.integers(2, 5))
        gold = [int(g) for g in rng.integers(0, 3, T)]
        e = np.full((T, 3), -np.inf)
        for t, g in enumerate(gold):
            e[t, g] = rng.normal()
        cases.append((e, rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3), gold))
    for e, tr, st, en, gold in cases:
        e, tr, st, en = (x.astype(dtype) for x in (e, tr, st, en))
        r = chain_terms(e, tr, st, en, gold, loss)
        assert r.loss == 0, (loss, e, tr, st, en, float(r.loss))
        for g in r[1:]:
            assert np.all(g == 0), (loss, e, tr, st, en, g)


# Costs of 0 (or tiny) under a cost_scale near DBL_MAX: the path-score bound admits them, and
# every c = cost_scale * cost stays finite. The found input of the long fuzz run (float32 soft
# ramp, one tag, one position, cost {0}, cost_scale = DBL_MAX) returned LK_OK with a NaN loss: the
# split form of two log-sum-exp terms (and of a path term against a log-sum-exp) weighed the
# path's cost by (a - b) cost_scale = 2 DBL_MAX = inf before meeting the cost 0. Exact: mpmath
# over the paths (zero costs: F - H of the plain scores; costs 1e-300: c up to 5.4e8).
@pytest.mark.parametrize("loss", ["soft_ramp", "hf_lse_lse", "hf_max_lse", "hf_lse_max", "softmax_margin", "ramp"])
@pytest.mark.parametrize("costs", ["zero", "tiny"])
@pytest.mark.parametrize("cost_scale", [sys.float_info.max, 1e308])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_zero_or_tiny_costs_under_a_huge_cost_scale(loss, costs, cost_scale, dtype):
    one = chain_terms(*(np.array(x, dtype) for x in ([[-25.0]], [[-13.0]], [0.0], [-1.25])), [0], loss,
                      cost_scale=cost_scale, costs=np.zeros((1, 1), dtype))
    assert one.loss == 0 and all(np.all(g == 0) for g in one[1:]), (loss, float(one.loss))
    rng = np.random.default_rng(23)
    e, tr, st, en = (rng.normal(size=shape).astype(dtype) for shape in ((3, 3), (3, 3), 3, 3))
    gold = [0, 2, 1]
    c = np.zeros((3, 3)) if costs == "zero" else rng.integers(0, 4, size=(3, 3)) * 1e-300
    c = c.astype(dtype)  # float32: 1e-300 rounds to 0
    r = chain_terms(e, tr, st, en, gold, loss, cost_scale=cost_scale, costs=c)
    assert_terms_accurate(r, e, tr, st, en, gold, loss, dtype, cost_scale=cost_scale, costs=c.astype(np.float64))


# Max terms at extreme magnitudes: emissions [[1e300, -1e300], [0.5, -0.25]] (float64; float32:
# [[1e16, 0], [0.5, -0.25]]), gold [0, 1], zero transitions, start and end: the best path is
# [0, 0], ahead of the gold by exactly 0.75 (mpmath over the 4 paths). Before: Viterbi summed
# 1e300 + 0.5, lost the 0.5, took the gold: perceptron 0 with wrong-sign gradients.
@pytest.mark.parametrize("loss", ["perceptron", "hinge", "ramp", "infinite_ramp", "hf_lse_max"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_max_terms_at_extreme_magnitudes(loss, dtype):
    big = 1e300 if dtype == np.float64 else 1e16
    e = np.array([[big, -big if dtype == np.float64 else 0.0], [0.5, -0.25]], dtype)
    z = np.zeros(2, dtype)
    r = chain_terms(e, np.zeros((2, 2), dtype), z, z, [0, 1], loss)
    assert_terms_accurate(r, e, np.zeros((2, 2), dtype), z, z, [0, 1], loss, dtype)


# A log-sum-exp against a path term whose path is not the log-sum-exp's dominant one: cost_scale
# 1000 (the accuracy suite's case), T = 3, 3 tags, gold [0, 2, 1]: the fear's path [2, 0, 2] and
# the hope's mass on the gold share the edge (0, 2), whose exact entry is a difference of two
# masses near 1 (below 1e-300; mpmath over the 27 paths). Before: -2.2e-16, the wrong sign.
@pytest.mark.parametrize("loss", ["hf_lse_max", "hf_max_lse", "softmax_margin"])
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_lse_against_a_path_other_than_its_dominant_one(loss, dtype):
    e = np.array([[-1.0438834428787231, 0.30390414595603943, 1.2742319107055664],
                  [1.3896089792251587, -0.25254684686660767, 0.9956815838813782],
                  [-1.2549883127212524, -0.4436921775341034, 0.24243314564228058]], dtype)
    tr = np.array([[0.3908153772354126, -1.0474539995193481, 0.318710058927536],
                   [-0.08318504691123962, -0.34559887647628784, 0.00022474875731859356],
                   [0.4125947654247284, -0.5100021362304688, 0.18372812867164612]], dtype)
    st = np.array([-0.9288480877876282, 0.41815173625946045, 0.08747676014900208], dtype)
    en = np.array([-0.0395081527531147, 0.559449315071106, 0.39939409494400024], dtype)
    r = chain_terms(e, tr, st, en, [0, 2, 1], loss, cost_scale=1000.0)
    assert_terms_accurate(r, e, tr, st, en, [0, 2, 1], loss, dtype, cost_scale=1000.0,
                          grad_rtol=4 * unit_roundoff(dtype) * 100)


# Decoding at extreme magnitudes: emissions [[1e300, -1e300], [-0.25, 0.5]] (float32: 1e16 and
# 0 at position 0), zero transitions: the best path is [0, 1], its score 1e300 + 0.5 (closed
# form; the float sum rounds to 1e300). Before: 1e300 - 0.25 and 1e300 + 0.5 compared equal and
# the tie went to [0, 0].
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_viterbi_at_extreme_magnitudes(dtype):
    big, low = (1e300, -1e300) if dtype == np.float64 else (1e16, 0.0)
    e = np.array([[[big, low], [-0.25, 0.5]]], dtype)
    r = losskit.viterbi(e, np.zeros((2, 2), dtype), [2])
    assert list(r.path[0]) == [0, 1]
    with mpmath.workdps(1000):
        exact = mpmath.mpf(float(e[0, 0, 0])) + mpmath.mpf(0.5)
        assert abs(mpmath.mpf(float(r.score[0])) - exact) <= unit_roundoff(dtype) * abs(exact)
