"""lk_vocab_dense_*: dense rows whose classes are split over P processes. Here the processes are
threads of this one (the library releases the GIL; ctypes calls run concurrently) joined by an
all-reduce made of a barrier: the same three phases and the same reductions as over MPI or
torch.distributed (tests/test_vocab_parallel_torch.py and Tests/mpi run real processes).

References: lk_dense on the whole rows (itself checked against exact arithmetic, finite
differences and PyTorch elsewhere), mpmath on the same float inputs where a split could lose
digits, and finite differences of the split loss itself."""

import ctypes
import re
import threading
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest

import losskit
from losskit import _common as c
from losskit._native import lib

HEADER = Path(__file__).resolve().parents[3] / "include" / "losskit.h"

LOSSES = [("log", {}), ("log", {"label_smoothing": 0.2}), ("softmax_margin", {"cost_scale": 1.5}),
          ("hinge", {}), ("perceptron", {}), ("hope_fear", {"fear": "max", "fear_scale": 0.5}),
          ("log", {"z_loss": 1e-2, "softcap": 4.0}), ("softmax_margin", {"z_loss": 1e-2}),
          ("hinge", {"softcap": 3.0, "z_loss": 1e-3})]


def shard_bounds(k, P, uneven=False):
    """P contiguous shards covering [0, k); uneven gives the first process nothing and the last
    the most."""
    if uneven and P > 1:
        cuts = sorted({0, k} | {int(k * (r * r) / (P * P)) for r in range(1, P)})
        cuts += [k] * (P + 1 - len(cuts))
        return np.array(cuts)
    return np.linspace(0, k, P + 1).astype(int)


class AllReduce:
    """An all-reduce over P threads: each puts its buffer in, the last one in combines them, all
    read the result."""

    def __init__(self, P):
        self.P, self.barrier, self.slots = P, threading.Barrier(P), [None] * P

    def __call__(self, rank, op, a):
        self.slots[rank] = a.copy()
        self.barrier.wait()
        result = op(np.stack(self.slots), axis=0)
        self.barrier.wait()
        a[...] = result


def split(scores, gold, P, *, cost=None, uneven=False, **options):
    """losskit.vocab_parallel on P threads; (loss of rank 0, the ranks' losses, the gradient
    columns put together). Every rank's exception is raised (the first), after all have ended."""
    n, k = scores.shape
    bounds = shard_bounds(k, P, uneven)
    reduce = AllReduce(P)
    results, errors = [None] * P, [None] * P

    def run(r):
        lo, hi = bounds[r], bounds[r + 1]
        shard_cost = None if cost is None else np.ascontiguousarray(cost[:, lo:hi])
        try:
            results[r] = losskit.vocab_parallel(
                np.ascontiguousarray(scores[:, lo:hi]), gold, k=k, k_offset=int(lo), cost=shard_cost,
                all_reduce_max=lambda a: reduce(r, np.max, a), all_reduce_sum=lambda a: reduce(r, np.sum, a),
                **options)
        except Exception as e:  # noqa: BLE001 - re-raised below, after every rank ended
            errors[r] = e

    threads = [threading.Thread(target=run, args=(r,)) for r in range(P)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a rank is still waiting in a reduction"
    if any(e is not None for e in errors):
        assert all(e is not None for e in errors), f"only some ranks failed: {errors}"
        raise errors[0]
    grads = [r.grad for r in results]
    grad = None if grads[0] is None else np.concatenate(grads, axis=1)
    return results[0].loss, [r.loss for r in results], grad


def batch(dtype, n=12, k=29, seed=0, masked=True):
    rng = np.random.default_rng(seed)
    s = (rng.normal(size=(n, k)) * 3).astype(dtype)
    g = rng.integers(0, k, n).astype(np.int32)
    if masked:
        for i in range(0, n, 3):
            j = (g[i] + 1 + i) % k
            s[i, j] = -np.inf
    return s, g


def close(a, b, dtype):
    """float32: 1e-6 relative (the issue's bound); float64: 4 ulps of the larger."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if dtype == np.float32:
        return np.allclose(a, b, rtol=1e-6, atol=1e-7)
    scale = np.maximum(np.abs(a), np.abs(b))
    return bool(np.all(np.abs(a - b) <= 4 * np.finfo(np.float64).eps * np.maximum(scale, 1e-300)))


def grad_close(a, b, dtype):
    """Each gradient row within 1e-6 (float32) or 4 ulps (float64) of its largest entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rel = 1e-6 if dtype == np.float32 else 4 * np.finfo(np.float64).eps
    scale = np.max(np.abs(b), axis=1, keepdims=True) if b.size else 0
    return bool(np.all(np.abs(a - b) <= rel * scale))


def test_header_constants():
    text = HEADER.read_text()
    assert int(re.search(r"#define LK_VOCAB_MAXIMA\s+(\d+)", text).group(1)) == losskit._vocab.VOCAB_MAXIMA
    assert int(re.search(r"#define LK_VOCAB_SUMS\s+(\d+)", text).group(1)) == losskit._vocab.VOCAB_SUMS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss,options", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equals_dense_on_whole_rows(dtype, loss, options, reduction):
    s, g = batch(dtype)
    g[4] = -100  # ignored
    w = np.linspace(0.0, 2.0, len(g)).astype(dtype)  # the first weight is 0
    ref = losskit.dense(s, g, loss=loss, weight=w, reduction=reduction, **options)
    for P in (1, 2, 3, 4):
        for uneven in (False, True):
            value, values, grad = split(s, g, P, uneven=uneven, loss=loss, weight=w, reduction=reduction, **options)
            assert close(value, ref.loss, dtype), (P, uneven, value, ref.loss)
            assert all(np.array_equal(v, values[0]) for v in values), "the ranks' losses differ"
            assert grad_close(grad, ref.grad, dtype), (P, uneven)
            assert np.all(grad[4] == 0) and np.all(grad[0] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["per_example", "class_matrix"])
@pytest.mark.parametrize("loss", ["softmax_margin", "hinge"])
def test_cost_layouts(dtype, layout, loss):
    s, g = batch(dtype, k=13, seed=3)
    n, k = s.shape
    rng = np.random.default_rng(4)
    cost = rng.uniform(0, 2, size=(n, k) if layout == "per_example" else (k, k)).astype(dtype)
    ref = losskit.dense(s, g, loss=loss, cost=cost, cost_layout=layout, cost_scale=0.75)
    for P in (2, 3):
        value, _, grad = split(s, g, P, loss=loss, cost=cost, cost_layout=layout, cost_scale=0.75)
        assert close(value, ref.loss, dtype)
        assert grad_close(grad, ref.grad, dtype)


@pytest.mark.parametrize("loss", ["hinge", "perceptron"])
def test_ties_across_processes_follow_the_ties_rule(loss):
    """All-zero scores: every class ties. The max's gradient goes to the gold (hinge: the gold is
    not among the cost-augmented maxima; perceptron: it is) or to the lowest index, as on one
    process, although the tied classes sit on every process."""
    s = np.zeros((4, 12))
    g = np.array([0, 5, 11, 7], dtype=np.int32)
    ref = losskit.dense(s, g, loss=loss, reduction="sum")
    for P in (2, 3, 4):
        value, _, grad = split(s, g, P, loss=loss, reduction="sum")
        assert value == ref.loss
        assert np.array_equal(grad, ref.grad), P
    # hinge's one-hot sits at the lowest class that is not the gold; perceptron's gradient is 0.
    assert ref.grad[0, 1] == 1 and ref.grad[1, 0] == 1 if loss == "hinge" else not ref.grad.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_loss_near_zero_keeps_its_digits(dtype):
    """The gold dominates: lse - s[g] = log1p(sum of tiny exps). The exact 1 of the max is counted
    apart on its process, so the others' sums (from other processes) keep their digits."""
    k = 9
    s = np.zeros((2, k), dtype=dtype)
    s[0, 7] = 40   # the gold on the last process
    s[1, 0] = 30   # the gold on the first, a tie of the others elsewhere
    g = np.array([7, 0], dtype=np.int32)
    for P in (1, 2, 3):
        value, _, grad = split(s, g, P, reduction="none")
        with mp.workdps(50):
            for i in range(2):
                exact = mp.log(mp.fsum(mp.exp(mp.mpf(float(v)) - mp.mpf(float(s[i, g[i]]))) for v in s[i]))
                assert abs(value[i] - float(exact)) <= 4 * np.finfo(dtype).eps * float(exact), (P, i)
                gold_grad = float(mp.exp(-exact) - 1)  # p_g - 1 = exp(-loss) - 1
                assert abs(grad[i, g[i]] - gold_grad) <= 4 * np.finfo(dtype).eps * abs(gold_grad)


def test_softmax_margin_near_zero_within_the_conditioning():
    """With costs, a split forms each exp around the row's max of s + c in double (one process
    centres on the argmax's own score and cost): the loss stays within the dense rows' bound,
    4u (|L| + sum |dL/dx| |x|), of exact arithmetic on the same inputs."""
    k = 11
    s = np.random.default_rng(2).uniform(-4, 4, size=(1, k))
    s[0, 6] = 60.0
    g = np.array([6], dtype=np.int32)
    u = np.finfo(np.float64).eps / 2
    for P in (2, 3, 4):
        value, _, grad = split(s, g, P, loss="softmax_margin", cost_scale=1.0, reduction="sum")
        with mp.workdps(50):
            v = [mp.mpf(float(x)) + (0 if j == 6 else 1) for j, x in enumerate(s[0])]
            top = max(v)
            exact = top + mp.log(mp.fsum(mp.exp(x - top) for x in v)) - mp.mpf(float(s[0, 6]))
        conditioning = abs(value) + np.sum(np.abs(grad[0]) * (np.abs(s[0]) + 1))
        assert abs(value - float(exact)) <= 4 * u * conditioning, (P, value, float(exact))


@pytest.mark.parametrize("loss,options", LOSSES)
def test_gradient_is_the_split_losss_finite_difference(loss, options):
    """Central differences of the split loss itself (P = 3, float64), away from the max losses'
    kinks (distinct, well separated scores)."""
    rng = np.random.default_rng(7)
    n, k = 3, 10
    s = rng.permutation(n * k).reshape(n, k).astype(np.float64) * 0.37
    g = np.array([2, 9, 4], dtype=np.int32)
    _, _, grad = split(s, g, 3, loss=loss, reduction="sum", **options)
    h = 1e-6
    for i in range(n):
        for j in range(k):
            up, down = s.copy(), s.copy()
            up[i, j] += h
            down[i, j] -= h
            fd = (split(up, g, 3, loss=loss, reduction="sum", with_grad=False, **options)[0]
                  - split(down, g, 3, loss=loss, reduction="sum", with_grad=False, **options)[0]) / (2 * h)
            assert abs(fd - grad[i, j]) <= 1e-6 * max(1.0, abs(fd)), (i, j, fd, grad[i, j])


def test_same_bits_run_to_run():
    s, g = batch(np.float32, n=64, k=1000, seed=11)
    first = split(s, g, 4, loss="softmax_margin", z_loss=1e-3)
    for _ in range(3):
        again = split(s, g, 4, loss="softmax_margin", z_loss=1e-3)
        assert first[0].tobytes() == again[0].tobytes() and first[2].tobytes() == again[2].tobytes()


@pytest.mark.parametrize("bad,where,status", [
    (np.inf, (2, 17), "LK_ERR_DOMAIN"),  # +inf in the last shard
    ("mask-gold", (1, None), "LK_ERR_DOMAIN"),
    ("mask-row", (3, None), "LK_ERR_DOMAIN"),
])
def test_a_bad_value_in_one_shard_fails_every_process(bad, where, status):
    s, g = batch(np.float64, n=5, k=20, masked=False)
    i, j = where
    if bad == "mask-gold":
        s[i, g[i]] = -np.inf
        j = int(g[i])
    elif bad == "mask-row":
        s[i, :] = -np.inf
    else:
        s[i, j] = bad
    for P in (1, 2, 4):
        with pytest.raises(losskit.LossKitError) as e:
            split(s, g, P)
        assert e.value.name == status
        text = str(e.value)
        # (a row masked whole has a masked gold: that is what is named)
        assert f"scores[{i}, {j if j is not None else ''}" in text, text
    # The whole rows on one process: the same status.
    with pytest.raises(losskit.LossKitError) as e:
        losskit.dense(s, g)
    assert e.value.name == status


def test_a_nan_score_makes_its_row_nan_on_every_process():
    s, g = batch(np.float32, n=4, k=16, masked=False)
    s[2, 13] = np.nan
    ref = losskit.dense(s, g, reduction="none")
    value, values, grad = split(s, g, 4, reduction="none")
    assert np.isnan(value[2]) and np.isnan(ref.loss[2])
    assert np.all(np.isnan(grad[2])) and np.all(np.isnan(ref.grad[2]))
    assert np.allclose(np.delete(value, 2), np.delete(ref.loss, 2), rtol=1e-6)
    assert all(np.isnan(v[2]) for v in values)


def call(phase=1, n=2, k=4, k_offset=0, k_local=4, loss="log", scores=True, maxima=True, sums=True,
         argmax=False, opt=None):
    """One raw phase call through ctypes; (status, message)."""
    opt = opt or c.make_options(loss=loss, reduction="mean", cost_scale=1.0, threads=0)
    rows, columns = min(max(n, 0), 4), min(max(k_local, 0), 4)  # small real buffers for huge sizes
    s = np.zeros((rows, columns)) if scores else None
    g = np.zeros(rows, dtype=np.int32)
    mx = np.zeros((rows, 3)) if maxima else None
    sm = np.zeros((rows, 7)) if sums else None
    am = np.zeros(rows) if argmax else None
    out, grad = np.zeros(max(rows, 1)), np.zeros((rows, columns))
    a = c.address
    try:
        lib.lk_vocab_dense_f64(ctypes.byref(opt), phase, n, k, k_offset, k_local, a(s), a(g), None, None,
                               a(mx), a(sm), a(am), a(out), a(grad))
        return "LK_OK", ""
    except losskit.LossKitError as e:
        return e.name, str(e)


@pytest.mark.parametrize("arguments,status,words", [
    (dict(phase=0), "LK_ERR_OPTION", "phase = 0"),
    (dict(phase=4), "LK_ERR_OPTION", "phase = 4"),
    (dict(loss="risk"), "LK_ERR_UNSUPPORTED", "lk_vocab_dense"),
    (dict(k_offset=2, k_local=3), "LK_ERR_SIZE", "k_offset + k_local"),
    (dict(k_offset=-1), "LK_ERR_SIZE", "k_offset"),
    (dict(k_local=-1), "LK_ERR_SIZE", "k_local"),
    (dict(n=2 ** 62, k=4, k_local=0), "LK_ERR_SIZE", "LK_VOCAB_MAXIMA"),
    (dict(scores=False), "LK_ERR_NULL", "scores"),
    (dict(maxima=False), "LK_ERR_NULL", "maxima"),
    (dict(phase=2, sums=False), "LK_ERR_NULL", "sums"),
    (dict(phase=2, loss="hinge"), "LK_ERR_NULL", "argmax"),
])
def test_bad_arguments_are_refused_before_anything_is_written(arguments, status, words):
    got, message = call(**arguments)
    assert got == status, message
    assert words in message, message


def test_garbage_stats_are_refused_not_trusted():
    opt = c.make_options(loss="hinge", reduction="sum", cost_scale=1.0, threads=0)
    s = np.zeros((1, 4))
    g = np.zeros(1, dtype=np.int32)
    out, grad = np.full(1, 7.0), np.full((1, 4), 7.0)
    a = c.address
    good = [0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0]  # hinge: no exp sums; 4 unmasked classes
    cases = [([0.0, 0.0, -1.0], [0.0], good, "maxima[0, 2]"), ([0.0, 0.0, np.nan], [0.0], good, "maxima[0, 2]"),
             ([0.0, 0.0, 0.0], [0.5], good, "argmax[0]"), ([0.0, 0.0, 0.0], [-4.0], good, "argmax[0]"),
             ([0.0, 0.0, 0.0], [-np.inf], good, "argmax[0]"), ([-np.inf, 0.0, 0.0], [0.0], good, "every class masked"),
             ([0.0, np.inf, 0.0], [0.0], good, "maxima[0, 1]"),
             ([0.0, 0.0, 0.0], [0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "sums[0, 4]"),
             ([0.0, 0.0, 0.0], [0.0], [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0], "sums[0, 4]"),
             ([0.0, 0.0, 0.0], [0.0], [0.5, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0], "sums[0, 0]"),
             ([0.0, 0.0, 0.0], [0.0], [0.0, 0.0, np.inf, 0.0, 4.0, 0.0, 0.0], "sums[0, 2]")]
    for mx, am, sm, words in cases:
        mx, am, sm = np.array([mx]), np.array(am), np.array([sm])
        with pytest.raises(losskit.LossKitError) as e:
            lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 4, 0, 4, a(s), a(g), None, None, a(mx),
                                   a(sm), a(am), a(out), a(grad))
        assert words in str(e.value)
        assert out[0] == 7.0 and np.all(grad == 7.0), "an output was written on error"
    # Found by fuzzing: a flag that is no whole number (1e-310) let garbage sums through (a NaN
    # loss); a row flagged NaN (1) with an argmax key of -inf trapped converting the key.
    with pytest.raises(losskit.LossKitError, match=r"maxima\[0, 2\]"):
        lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 4, 0, 4, a(s), a(g), None, None,
                               a(np.array([[0.0, 0.0, 1e-310]])), a(np.array([good])), a(np.zeros(1)), a(out), a(grad))
    lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 4, 0, 4, a(s), a(g), None, None,
                           a(np.array([[0.0, 0.0, 1.0]])), a(np.array([good])), a(np.array([-np.inf])), a(out), a(grad))
    assert np.isnan(out[0]) and np.all(np.isnan(grad))
    out[0], grad[...] = 7.0, 7.0
    # The log loss counts the exact 1s of its log-sum-exp: at least one, at most k.
    opt = c.make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
    for ones in (0.0, 4.5, 5.0):
        with pytest.raises(losskit.LossKitError, match=r"sums\[0, 1\]"):
            lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 4, 0, 4, a(s), a(g), None, None,
                                   a(np.zeros((1, 3))), a(np.array([[3.0, ones, 0, 0, 4, 0, 0]])), None,
                                   a(out), a(grad))


def test_empty_shards_and_empty_batch():
    s, g = batch(np.float64, n=3, k=5, masked=False)
    ref = losskit.dense(s, g)
    # Seven processes over five classes: two hold nothing (scores NULL through a (3, 0) array).
    value, _, grad = split(s, g, 7)
    assert close(value, ref.loss, np.float64) and grad_close(grad, ref.grad, np.float64)
    value, _, grad = split(np.zeros((0, 5)), np.zeros(0, np.int32), 2)
    assert value == 0 and grad.shape == (0, 5)


# Found in review ------------------------------------------------------------------------------

def test_argmax_is_not_written_by_a_log_sum_exp_fear():
    """The header says argmax is not used by these losses: a buffer passed anyway is left alone."""
    opt = c.make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
    s, g, a = np.zeros((2, 4)), np.zeros(2, dtype=np.int32), c.address
    maxima, sums, argmax = np.zeros((2, 3)), np.zeros((2, 7)), np.array([42.0, 42.0])
    lib.lk_vocab_dense_f64(ctypes.byref(opt), 1, 2, 4, 0, 4, a(s), a(g), None, None, a(maxima), None, None, None, None)
    lib.lk_vocab_dense_f64(ctypes.byref(opt), 2, 2, 4, 0, 4, a(s), a(g), None, None, a(maxima), a(sums), a(argmax),
                           None, None)
    assert np.array_equal(argmax, [42.0, 42.0])


@pytest.mark.parametrize("k", [2 ** 50 + 1, 3074457345618258603, 2 ** 62])
def test_a_k_whose_class_indices_doubles_cannot_carry_is_refused(k):
    """k above 2^50: the flag 2 + 3 j + kind overflowed Int (a trap) near 3.07e18, and class
    indices lose exactness in doubles above 2^53."""
    opt = c.make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0)
    s, g, a = np.array([[np.inf]]), np.zeros(1, dtype=np.int32), c.address
    maxima = np.zeros((1, 3))
    with pytest.raises(losskit.LossKitError) as e:
        lib.lk_vocab_dense_f64(ctypes.byref(opt), 1, 1, k, k - 1, 1, a(s), a(g), None, None, a(maxima),
                               None, None, None, None)
    assert e.value.name == "LK_ERR_SIZE" and "2^50" in str(e.value)


@pytest.mark.parametrize("case", ["cost_scale 0", "NaN score and cost"])
def test_costs_are_read_as_lk_dense_reads_them(case):
    """A bad cost is LK_ERR_DOMAIN as on one process: also under cost_scale = 0 (the split read
    no cost then), and on a column whose score is NaN (the split reported the NaN row instead)."""
    s, g = batch(np.float64, n=3, k=8, masked=False)
    cost = np.ones((3, 8))
    options = {"loss": "hinge", "cost": cost, "cost_layout": "per_example"}
    if case == "cost_scale 0":
        cost[1, 6] = np.nan
        options["cost_scale"] = 0.0
    else:
        cost[1, 6] = np.nan
        s[1, 6] = np.nan
    with pytest.raises(losskit.LossKitError) as one:
        losskit.dense(s, g, **options)
    for P in (1, 3):
        with pytest.raises(losskit.LossKitError) as e:
            split(s, g, P, **options)
        assert e.value.name == one.value.name == "LK_ERR_DOMAIN"
        assert "scores[1, 6]" in str(e.value)


def test_statistics_that_no_phase_writes_give_no_nan():
    """Review: a mean of 1e308 (times k / K: beyond double) passed the checks, and the smoothing's
    -inf met the z-loss's +inf: a NaN loss with LK_OK. The mean, the gold and the maxima are now
    bounded by the type's largest value."""
    opt = c.make_options(loss="log", reduction="none", cost_scale=1.0, threads=0, label_smoothing=0.1, z_loss=1.0)
    s, g, a = np.zeros((1, 2)), np.zeros(1, dtype=np.int32), c.address
    out, grad = np.full(1, 7.0), np.full((1, 2), 7.0)
    with pytest.raises(losskit.LossKitError, match=r"sums\[0, 3\]"):
        lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 2, 0, 2, a(s), a(g), None, None,
                               a(np.array([[1e308, 1e308, 0.0]])), a(np.array([[0.0, 1, 0, 1e308, 1, 0, 0]])), None,
                               a(out), a(grad))
    assert out[0] == 7.0
    # Within the bounds, the row's loss is a number (or +-inf), never NaN.
    rng = np.random.default_rng(5)
    for _ in range(2000):
        big = rng.choice([0.0, 1.0, -1.0, 1e308, -1e308, 1.7e308, -1.7e308, 3.0])
        mx = np.array([[abs(big), abs(big), 0.0]])
        sm = np.array([[rng.choice([0.0, 0.5, 1e300]), rng.choice([1.0, 2.0]), rng.choice([big, -big, 0.0]),
                        rng.choice([big, -big, 0.0]) / 2, 2.0, 0.0, 0.0]])
        try:
            lib.lk_vocab_dense_f64(ctypes.byref(opt), 3, 1, 2, 0, 2, a(s), a(g), None, None, a(mx), a(sm), None,
                                   a(out), a(grad))
        except losskit.LossKitError:
            continue
        assert not np.isnan(out[0]) and not np.isnan(grad).any(), (mx, sm, out, grad)
