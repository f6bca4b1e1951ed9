"""LossKit against the libraries users would otherwise pick, side by side in one process.

    python3 bench/bench.py --threads 1     (make bench runs 1 and 2 threads, one process each)

Every contender computes the loss and its gradient w.r.t. the scores of the same fresh random
normal float32 inputs, allocating its gradient as it does by default (a second LossKit row
reuses one buffer through grad_out=, as a training loop would; the speed-up column compares the
peers with the first, allocating row). Each is warmed up, then timed over --repeats calls; the table shows the
median and the min-max. Two ratios: each contender's median against the memory floor, and each
peer's median against LossKit's (how many times faster LossKit is). The floor is what a fused
pass must move, (bytes read + bytes written) / bandwidth, with the bandwidth measured in the
same run at the same thread count by a large array copy (256 MiB, beyond every cache).

Peers are optional (bench/install-peers.sh installs them from PyPI on request) and skipped when
absent: NumPy (always), PyTorch, JAX + Optax, pytorch-crf. The thread count of every contender is set once,
before any import that reads it (XLA fixes its thread pool at start-up), hence one process per
thread count.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time


def configure_threads(threads: int) -> None:
    # Before numpy / torch / jax are imported.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                               f"intra_op_parallelism_threads={threads}")
    os.environ["LOSSKIT_NUM_THREADS"] = str(threads)


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated workload names (W1, W2a, ...)")
    p.add_argument("--levels", action="store_true",
                   help="time LossKit alone at each CPU level (x86-64, avx2, avx512), one process each")
    p.add_argument("--losskit-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


args = parse()
configure_threads(args.threads)

import numpy as np  # noqa: E402

import losskit  # noqa: E402

try:
    import torch  # noqa: E402
    torch.set_num_threads(args.threads)
except ImportError:
    torch = None
try:
    import jax  # noqa: E402
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp  # noqa: E402
    import optax  # noqa: E402
except ImportError:
    jax = None


def timed(fn, repeats=args.repeats, warmup=args.warmup):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[0], samples[-1]


def copy_bandwidth(threads: int, mib: int = 256) -> float:
    """Bytes moved per second (read + write) by `threads` threads copying halves of a large
    array (np.copyto releases the GIL)."""
    src = np.ones(mib * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy():
        if threads == 1:
            np.copyto(dst, src)
            return
        workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in bounds]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    median, _, _ = timed(copy, repeats=9, warmup=2)
    return 2 * src.nbytes / median


# ------------------------------------------------------------------------------------------
# Contenders. Each maker returns a zero-argument callable computing (loss, grad), or None.
# ------------------------------------------------------------------------------------------

def losskit_dense(s, g, **kw):
    return lambda: losskit.dense(s, g, **kw)


def losskit_reusing(s, g, **kw):
    """As a training loop would call it: one gradient buffer, reused (grad_out=)."""
    out = np.empty_like(s)
    return lambda: losskit.dense(s, g, grad_out=out, **kw)


def numpy_log(s, g):
    n = len(g)
    rows = np.arange(n)

    def run():
        m = s.max(axis=1, keepdims=True)
        e = np.exp(s - m)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) + m[:, 0] - s[rows, g]))
        grad = e / total
        grad[rows, g] -= 1
        grad /= n
        return loss, grad
    return run


def numpy_hinge(s, g):
    n = len(g)
    rows = np.arange(n)

    def run():
        v = s + 1
        v[rows, g] -= 1
        a = v.argmax(axis=1)
        loss = float(np.mean(v[rows, a] - s[rows, g]))
        grad = np.zeros_like(s)
        np.add.at(grad, (rows, a), 1.0 / n)
        np.add.at(grad, (rows, g), -1.0 / n)
        return loss, grad
    return run


def numpy_squared(s, g):
    n, k = s.shape
    rows = np.arange(n)

    def run():
        d = s.copy()
        d[rows, g] -= 1
        loss = float(np.mean(np.sum(d * d, axis=1) / k))
        return loss, d * (2.0 / (n * k))
    return run


def torch_log(s, g):
    if torch is None:
        return None
    x0, y = torch.from_numpy(s), torch.from_numpy(g.astype(np.int64))

    def run():
        x = x0.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x, y)
        loss.backward()
        return loss.item(), x.grad
    return run


def torch_squared(s, g):
    if torch is None:
        return None
    x0 = torch.from_numpy(s)
    target = torch.nn.functional.one_hot(torch.from_numpy(g.astype(np.int64)), s.shape[1]).float()

    def run():
        x = x0.detach().requires_grad_(True)
        loss = torch.nn.functional.mse_loss(x, target)  # mean over n*k = mean_i (1/K) sum_j
        loss.backward()
        return loss.item(), x.grad
    return run


def jax_fn(loss_of):
    if jax is None:
        return None

    def make(s, g):
        f = jax.jit(jax.value_and_grad(lambda x, y: loss_of(x, y).mean()))
        x, y = jnp.asarray(s), jnp.asarray(g)
        return lambda: jax.block_until_ready(f(x, y))
    return make


jax_log = jax_fn(lambda x, y: optax.softmax_cross_entropy_with_integer_labels(x, y)) if jax else None
jax_hinge = jax_fn(lambda x, y: optax.losses.multiclass_hinge_loss(x, y)) if jax else None
jax_squared = jax_fn(lambda x, y: optax.squared_error(x, jax.nn.one_hot(y, x.shape[1])).mean(axis=1)) if jax else None


# ------------------------------------------------------------------------------------------
# Workloads
# ------------------------------------------------------------------------------------------

def inputs(n, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, k), dtype=np.float32), rng.integers(0, k, n).astype(np.int32)


def float64_log_reference(s, g):
    x = s.astype(np.float64)
    m = x.max(axis=1)
    return float(np.mean(np.log(np.exp(x - m[:, None]).sum(axis=1)) + m - x[np.arange(len(g)), g]))


WORKLOADS = [
    # name, title, (n, k), losskit kwargs, peers [(name, maker)]
    ("W1", "log loss", (4096, 1000), dict(loss="log"),
     [("NumPy", numpy_log), ("PyTorch", torch_log), ("JAX+Optax", jax_log)]),
    ("W2a", "log loss", (256, 32000), dict(loss="log"),
     [("NumPy", numpy_log), ("PyTorch", torch_log), ("JAX+Optax", jax_log)]),
    ("W2b", "log loss", (64, 128256), dict(loss="log"),
     [("NumPy", numpy_log), ("PyTorch", torch_log), ("JAX+Optax", jax_log)]),
    ("W3", "hinge, 0/1 cost (Crammer-Singer)", (4096, 1000), dict(loss="hinge"),
     [("NumPy", numpy_hinge), ("JAX+Optax", jax_hinge)]),
    ("W4", "square loss (kappa = M = 1)", (4096, 1000), dict(loss="squared"),
     [("NumPy", numpy_squared), ("PyTorch", torch_squared), ("JAX+Optax", jax_squared)]),
]

# ------------------------------------------------------------------------------------------
# W5: candidate lists
# ------------------------------------------------------------------------------------------

def list_inputs(n=20000, longest=200, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, longest + 1, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    scores = rng.standard_normal(total, dtype=np.float32)
    cost = rng.random(total, dtype=np.float32)  # [0, 1)
    gold = (rng.random(n) * lengths).astype(np.int32)
    return scores, offsets, gold, cost


def numpy_lists_softmax_margin(s, offsets, gold, cost):
    """The segment version with np.ufunc.reduceat: lse(s + c) - s[gold] per list, mean."""
    starts, lengths = offsets[:-1], np.diff(offsets)
    n = len(gold)
    at_gold = starts + gold

    def run():
        v = s + cost
        m = np.maximum.reduceat(v, starts)
        e = np.exp(v - np.repeat(m, lengths))
        total = np.add.reduceat(e, starts)
        loss = float(np.mean(m + np.log(total) - s[at_gold]))
        grad = e / np.repeat(total, lengths)
        grad[at_gold] -= 1
        grad /= n
        return loss, grad
    return run


def torch_lists_softmax_margin(s, offsets, gold, cost):
    """Padded to the longest list, -inf masked, autograd (the padding is prepared outside the
    timed call)."""
    if torch is None:
        return None
    lengths = np.diff(offsets)
    n, longest = len(gold), int(lengths.max())
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(s)) - np.repeat(offsets[:-1], lengths)
    padded = np.full((n, longest), -np.inf, np.float32)
    padded[rows, cols] = s
    padded_cost = np.zeros((n, longest), np.float32)
    padded_cost[rows, cols] = cost
    x0, c, y = torch.from_numpy(padded), torch.from_numpy(padded_cost), torch.from_numpy(gold.astype(np.int64))
    index = torch.arange(n)

    def run():
        x = x0.detach().requires_grad_(True)
        loss = (torch.logsumexp(x + c, dim=1) - x[index, y]).mean()
        loss.backward()
        return loss.item(), x.grad
    return run


def lists_workload(bandwidth):
    s, offsets, gold, cost = list_inputs()
    n, total = len(gold), len(s)
    moved = s.nbytes + cost.nbytes + offsets.nbytes + gold.nbytes + s.nbytes  # read 4, write grad
    floor = moved / bandwidth
    print(f"\nW5  softmax-margin over {n} candidate lists of 1-200 candidates ({total} in all), costs "
          f"in [0, 1), float32; floor {floor * 1e3:.3f} ms")
    print(f"  {'contender':26} {'median ms':>9} {'min-max ms':>19} {'x floor':>8} {'LossKit faster':>14}")
    ours = timed(lambda: losskit.lists(s, offsets, gold, cost=cost, loss="softmax_margin", threads=args.threads))
    rows = [("LossKit", ours),
            ("NumPy (reduceat segments)", timed(numpy_lists_softmax_margin(s, offsets, gold, cost))),
            ("PyTorch (padded, masked)", (lambda f: timed(f) if f else None)(torch_lists_softmax_margin(s, offsets, gold, cost)))]
    print_rows(rows, ours[0], lambda t: t / floor)
    want = numpy_lists_softmax_margin(s.astype(np.float64), offsets, gold, cost.astype(np.float64))()[0]
    got = float(losskit.lists(s, offsets, gold, cost=cost, loss="softmax_margin").loss)
    print(f"  float32 loss vs float64 reference: relative difference {abs(got - want) / abs(want):.1e}")


# ------------------------------------------------------------------------------------------
# W6: linear chains
# ------------------------------------------------------------------------------------------

try:
    import torchcrf  # pytorch-crf
except ImportError:
    torchcrf = None


def chain_inputs(n, t, tags, seed=0):
    rng = np.random.default_rng(seed)
    emissions = rng.standard_normal((n, t, tags), dtype=np.float32)
    transitions = 0.1 * rng.standard_normal((tags, tags), dtype=np.float32)
    start = 0.1 * rng.standard_normal(tags, dtype=np.float32)
    end = 0.1 * rng.standard_normal(tags, dtype=np.float32)
    gold = rng.integers(0, tags, (n, t)).astype(np.int32)
    return emissions, transitions, start, end, gold


def torchcrf_log_loss(emissions, transitions, start, end, gold):
    """pytorch-crf: the mean negative log-likelihood and its gradients (autograd)."""
    if torch is None or torchcrf is None:
        return None
    n, t, tags = emissions.shape
    crf = torchcrf.CRF(tags, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(torch.from_numpy(transitions))
        crf.start_transitions.copy_(torch.from_numpy(start))
        crf.end_transitions.copy_(torch.from_numpy(end))
    e0, y = torch.from_numpy(emissions), torch.from_numpy(gold.astype(np.int64))
    mask = torch.ones(n, t, dtype=torch.bool)

    def run():
        crf.zero_grad()
        x = e0.detach().requires_grad_(True)
        loss = -crf(x, y, mask, reduction="mean")
        loss.backward()
        return loss.item(), x.grad, crf.transitions.grad
    return run


CHAIN_LOSSES = ["perceptron", "hinge", "softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp"]


def chains_workload():
    for n, t, tags in [(64, 50, 20), (16, 200, 50)]:
        emissions, transitions, start, end, gold = chain_inputs(n, t, tags)
        lengths = np.full(n, t, np.int32)
        positions = n * t
        print(f"\nW6  CRF log loss and every gradient, {n} sequences x {t} positions x {tags} tags, float32")
        print(f"  {'contender':26} {'median ms':>9} {'min-max ms':>19} {'ns/position':>12} {'LossKit faster':>14}")

        def ours(loss="log"):
            return lambda: losskit.chain(emissions, transitions, lengths, gold, loss=loss, start=start, end=end,
                                         threads=args.threads)
        mine = timed(ours())
        peer_fn = torchcrf_log_loss(emissions, transitions, start, end, gold)
        rows = [("LossKit", mine), ("pytorch-crf", timed(peer_fn) if peer_fn else None)]
        print_rows(rows, mine[0], lambda t: t / positions * 1e9, width=12)
        if peer_fn:
            theirs = peer_fn()[0]
            got = float(losskit.chain(emissions.astype(np.float64), transitions.astype(np.float64), lengths, gold,
                                      start=start.astype(np.float64), end=end.astype(np.float64)).loss)
            print(f"  log loss: LossKit (float64) {got:.9f}, pytorch-crf (float32) {theirs:.6f}")
        print(f"  every other chain loss, against LossKit's log loss ({mine[0] * 1e3:.3f} ms):")
        for loss in CHAIN_LOSSES:
            tm = timed(ours(loss))
            print(f"    {loss:24} {fmt(tm[0])}  {fmt(tm[1])}-{fmt(tm[2]).strip():<9} {tm[0] / positions * 1e9:12.1f} {tm[0] / mine[0]:13.2f}x")


def lsoftmax_inputs(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d), np.float32), (0.05 * rng.standard_normal((k, d))).astype(np.float32),
            rng.integers(0, k, n).astype(np.int32))


def numpy_lsoftmax(x, w, gold, m):
    """L-Softmax and its gradients in NumPy (BLAS products, arccos for the angle)."""
    def run():
        n = len(gold)
        rows = np.arange(n)
        f = x @ w.T
        a, b = np.linalg.norm(w, axis=1)[gold], np.linalg.norm(x, axis=1)
        fy = f[rows, gold]
        c = np.clip(fy / (a * b), -1, 1)
        theta = np.arccos(c)
        j = np.clip(np.floor(theta * m / np.pi), 0, m - 1)
        sign = np.where(j % 2 == 0, 1.0, -1.0)
        psi = sign * np.cos(m * theta) - 2 * j
        # dpsi/dc = sign m sin(m theta) / sin(theta)
        dpsi = sign * m * np.sin(m * theta) / np.maximum(np.sin(theta), 1e-12)
        f[rows, gold] = a * b * psi
        e = np.exp(f - f.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        loss = np.mean(np.log(e.sum(1)) - np.log(e[rows, gold]))
        p[rows, gold] -= 1
        p /= n
        gy = p[rows, gold].copy()
        p[rows, gold] = gy * dpsi
        beta = (psi - c * dpsi) * gy
        d_x = p @ w + ((beta * a / b)[:, None] * x).astype(x.dtype)
        d_w = p.T @ x
        np.add.at(d_w, gold, ((beta * b / a)[:, None] * w[gold]).astype(w.dtype))
        return loss, d_x, d_w
    return run


def torch_lsoftmax(x, w, gold, m):
    """L-Softmax as a PyTorch user writes it (arccos, cos(m theta), autograd)."""
    if torch is None:
        return None
    xt, wt0, gt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gold).long()

    def run():
        xx = xt.clone().requires_grad_(True)
        ww = wt0.clone().requires_grad_(True)
        f = xx @ ww.T
        rows = torch.arange(len(gold))
        a, b = ww.norm(dim=1)[gt], xx.norm(dim=1)
        c = (f[rows, gt] / (a * b)).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(c)
        j = torch.floor(theta * m / torch.pi).clamp(0, m - 1).detach()
        psi = torch.where(j % 2 == 0, 1.0, -1.0) * torch.cos(m * theta) - 2 * j
        logits = f.scatter(1, gt[:, None], (a * b * psi)[:, None])
        loss = torch.nn.functional.cross_entropy(logits, gt)
        loss.backward()
        return loss.item(), xx.grad, ww.grad
    return run


def lsoftmax_workload():
    n, d, k, m = 256, 512, 10000, 2
    x, w, gold = lsoftmax_inputs(n, d, k)
    flops = 3 * 2 * n * d * k
    print(f"\nW7  L-Softmax (m = {m}) with d_x and d_w, {n} features x {d} dims, {k} classes, float32 "
          f"(three {n} x {d} x {k} products)")
    print(f"  {'contender':26} {'median ms':>9} {'min-max ms':>19} {'GFLOP/s':>8} {'LossKit faster':>14}")
    mine = timed(lambda: losskit.lsoftmax(x, w, gold, margin=m, threads=args.threads), repeats=7)
    peer_torch = torch_lsoftmax(x, w, gold, m)
    rows = [("LossKit", mine), ("NumPy (BLAS products)", timed(numpy_lsoftmax(x, w, gold, m), repeats=7)),
            ("PyTorch (autograd)", timed(peer_torch, repeats=7) if peer_torch else None)]
    print_rows(rows, mine[0], lambda t: flops / t / 1e9)
    ours = losskit.lsoftmax(x.astype(np.float64), w.astype(np.float64), gold, margin=m)
    theirs = numpy_lsoftmax(x.astype(np.float64), w.astype(np.float64), gold, m)()
    print(f"  float64 LossKit vs the NumPy version: loss {abs(ours.loss - theirs[0]):.1e}, "
          f"d_x {np.abs(ours.d_x - theirs[1]).max() / np.abs(theirs[1]).max():.1e}, "
          f"d_w {np.abs(ours.d_w - theirs[2]).max() / np.abs(theirs[2]).max():.1e} (relative to the largest)")


CATALOGUE = [
    ("perceptron", dict(loss="perceptron")),
    ("softmax_margin", dict(loss="softmax_margin")),
    ("risk", dict(loss="risk")),
    ("ramp", dict(loss="ramp")),
    ("soft_ramp", dict(loss="soft_ramp")),
    ("infinite_ramp", dict(loss="infinite_ramp")),
    ("squentropy", dict(loss="squentropy")),
    ("log, label smoothing 0.1", dict(loss="log", label_smoothing=0.1)),
    ("hope_fear (lse, lse)", dict(loss="hope_fear", hope="lse", fear="lse", hope_scale=1, fear_scale=1)),
]


def print_rows(rows, ours, column, width=8):
    """One line per contender: median, min-max, `column(median)` (x floor, ns/position, ...)
    and, for the peers, how many times faster LossKit's median `ours` is."""
    for label, t in rows:
        if t is None:
            print(f"  {label:26} {'(not installed)':>9}")
            continue
        speedup = "" if label.startswith("LossKit") else f"{t[0] / ours:13.2f}x"
        print(f"  {label:26} {fmt(t[0])}  {fmt(t[1])}-{fmt(t[2]).strip():<9} {column(t[0]):{width}.{1 if width > 8 else 2}f} {speedup:>14}")


def fmt(seconds):
    return f"{seconds * 1e3:8.3f}"


def levels():
    """What each CPU-level build gains: LossKit's median per workload at every level the CPU
    runs (LOSSKIT_ISA caps the level; it is read once per process, hence a process per level)."""
    import subprocess
    top = losskit.cpu_level()
    names = ["x86-64", "avx2", "avx512"][: ["x86-64", "avx2", "avx512"].index(top) + 1]
    results = {}
    for level in names:
        out = subprocess.run([sys.executable, __file__, "--losskit-only", f"--threads={args.threads}",
                              f"--repeats={args.repeats}"],
                             env={**os.environ, "LOSSKIT_ISA": level}, capture_output=True, text=True,
                             check=True).stdout
        results[level] = dict(line.split("=") for line in out.split())
    print(f"\nLossKit at each CPU level, {args.threads} thread(s): median ms (speed-up over x86-64)")
    print(f"  {'workload':28}" + "".join(f"{n:>18}" for n in names))
    for key in results[names[0]]:
        base = float(results[names[0]][key])
        cells = "".join(f"{float(results[n][key]):10.3f} ({base / float(results[n][key]):4.2f}x)" for n in names)
        print(f"  {key:28}{cells}")


def losskit_only():
    for name, _, (n, k), kw, _ in WORKLOADS:
        s, g = inputs(n, k)
        print(f"{name}:{kw['loss']}={timed(losskit_dense(s, g, threads=args.threads, **kw))[0] * 1e3:.4f}")
    s, g = inputs(4096, 1000)
    for label, kw in CATALOGUE[:3]:
        print(f"W1-shape:{label.replace(' ', '_')}={timed(losskit_dense(s, g, threads=args.threads, **kw))[0] * 1e3:.4f}")


def main():
    if args.losskit_only:
        return losskit_only()
    if args.levels:
        return levels()
    only = set(filter(None, args.only.split(",")))
    bandwidth = copy_bandwidth(args.threads)
    print(f"LossKit {losskit.version()} ({losskit.cpu_level()}), NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__}" if torch else ", PyTorch absent")
          + (f", JAX {jax.__version__} + Optax {optax.__version__}" if jax else ", JAX absent")
          + f"; {args.threads} thread(s); copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write)")
    header = f"  {'contender':26} {'median ms':>9} {'min-max ms':>19} {'x floor':>8} {'LossKit faster':>14}"

    lk_medians = {}
    for name, title, (n, k), kw, peers in WORKLOADS:
        if only and name not in only:
            continue
        s, g = inputs(n, k)
        floor = 2 * s.nbytes / bandwidth  # read the scores once, write the gradient once
        print(f"\n{name}  {title}, {n} x {k} float32, loss + gradient; floor {floor * 1e3:.3f} ms")
        print(header)
        ours = timed(losskit_dense(s, g, threads=args.threads, **kw))
        lk_medians[name] = ours[0]
        rows = [("LossKit", ours),
                ("LossKit, grad_out reused", timed(losskit_reusing(s, g, threads=args.threads, **kw)))]
        for peer, make in peers:
            fn = make(s, g) if make else None
            rows.append((peer, timed(fn) if fn else None))
        print_rows(rows, ours[0], lambda t: t / floor)
        if kw.get("loss") == "log":
            got = float(losskit.dense(s, g, threads=args.threads).loss)
            want = float64_log_reference(s, g)
            print(f"  float32 loss vs float64 reference: relative difference {abs(got - want) / abs(want):.1e}")

    if not only or "W5" in only:
        lists_workload(bandwidth)

    if not only or "W6" in only:
        chains_workload()

    if not only or "W7" in only:
        lsoftmax_workload()

    if not only or "catalogue" in only:
        n, k = 4096, 1000
        s, g = inputs(n, k)
        floor = 2 * s.nbytes / bandwidth
        base = lk_medians.get("W1") or timed(losskit_dense(s, g, loss="log", threads=args.threads))[0]
        print(f"\nEvery other loss on W1's shape ({n} x {k}), against LossKit's own log loss "
              f"({base * 1e3:.3f} ms); floor {floor * 1e3:.3f} ms")
        print(f"  {'loss':26} {'median ms':>9} {'min-max ms':>19} {'x floor':>8} {'x log loss':>14}")
        for label, kw in CATALOGUE:
            t = timed(losskit_dense(s, g, threads=args.threads, **kw))
            print(f"  {label:26} {fmt(t[0])}  {fmt(t[1])}-{fmt(t[2]).strip():<9} {t[0] / floor:8.2f} {t[0] / base:13.2f}x")


if __name__ == "__main__":
    main()
