"""Per-call overhead of the Python API on small inputs: median microseconds per call.

    python3 bench/overhead.py [--calls 20000] [--repeats 7] [--path bindings/python]

Small inputs make the library's own work a few microseconds, so the time is mostly what the
binding does around the call (argument checks, option building, ctypes conversion, the result).
Each row times `calls` calls in a loop, `repeats` times, and prints the median (and the min) of
the per-call time, one thread (threads=1: no thread start-up in the library, whose small inputs
stay on the calling thread anyway). The row "library alone" calls lk_dense_f32 itself through
ctypes with every argument prepared beforehand: the dense rows minus it are the binding's
overhead. The last row is PyTorch's F.cross_entropy forward + backward on the same 64 x 10
scores, when torch is installed. --path times another copy of the package (say, an older
commit's bindings/python) against the same library. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
losskit = None  # imported in main(), from --path


def per_call_us(fn, calls: int, repeats: int) -> tuple[float, float]:
    """(median, min) over `repeats` runs of the mean time of one call, in microseconds."""
    for _ in range(min(calls, 1000)):  # warm up: caches, lazily built tables
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs), min(runs)


def rows(rng):
    """(label, zero-argument callable) for every timed case."""
    s = rng.standard_normal((64, 10)).astype(np.float32)
    g = rng.integers(0, 10, 64).astype(np.int64)
    g32 = g.astype(np.int32)
    buf = np.empty_like(s)
    from losskit import _common, _native
    opt = _common.make_options(loss="log", reduction="mean", cost_scale=1.0, threads=1)
    out = np.empty(1, np.float32)
    args = [ctypes.byref(opt), 64, 10] + [_common.address(a) for a in (s, g32)] + [None, None] + \
        [_common.address(a) for a in (out, buf)]
    lk_dense_f32 = _native.lib.lk_dense_f32
    yield "dense 64x10 f32 log: library alone (prepared arguments)", lambda: lk_dense_f32(*args)
    yield "dense 64x10 f32 log, int64 gold", lambda: losskit.dense(s, g, threads=1)
    yield "dense 64x10 f32 log, int32 gold, grad_out", \
        lambda: losskit.dense(s, g32, threads=1, grad_out=buf)
    yield "dense 64x10 f32 log, float32 gold", \
        lambda: losskit.dense(s, g.astype(np.float32), threads=1)
    cost = rng.random((10, 10)).astype(np.float32)
    yield "dense 64x10 f32 softmax_margin, class matrix", \
        lambda: losskit.dense(s, g, loss="softmax_margin", cost=cost, threads=1)
    s64 = s.astype(np.float64)
    yield "dense 64x10 f64 log", lambda: losskit.dense(s64, g, threads=1)

    lengths = rng.integers(1, 9, 16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = rng.standard_normal(offsets[-1]).astype(np.float32)
    gold = (rng.random(16) * lengths).astype(np.int64)
    yield f"lists 16 lists ({offsets[-1]} candidates) f32 log", \
        lambda: losskit.lists(flat, offsets, gold, threads=1)

    n, t_max, tags = 4, 8, 5
    e = rng.standard_normal((n, t_max, tags)).astype(np.float32)
    tr = rng.standard_normal((tags, tags)).astype(np.float32)
    ln = np.full(n, t_max)
    gc = rng.integers(0, tags, (n, t_max))
    yield "chain 4x8x5 f32 log", lambda: losskit.chain(e, tr, ln, gc, threads=1)

    x = rng.standard_normal((64, 16)).astype(np.float32)
    w = rng.standard_normal((10, 16)).astype(np.float32)
    yield "lsoftmax 64x16, 10 classes f32", lambda: losskit.lsoftmax(x, w, g, threads=1)

    try:
        import torch
        import torch.nn.functional as F
    except (ImportError, OSError):  # OSError: a partial install (being installed right now)
        print("(PyTorch not installed: no F.cross_entropy rows)")
        return
    torch.set_num_threads(1)
    ts = torch.from_numpy(s)
    tg = torch.from_numpy(g)

    def torch_step():
        x = ts.detach().requires_grad_()
        F.cross_entropy(x, tg).backward()
        return x.grad

    yield "torch F.cross_entropy 64x10 f32 forward + backward", torch_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--path", default=str(HERE.parent / "bindings" / "python"),
                        help="the folder holding the losskit package to time (default: this "
                             "checkout's)")
    args = parser.parse_args()
    os.environ.setdefault("LOSSKIT_NUM_THREADS", "1")
    sys.path.insert(0, args.path)
    global losskit
    import losskit
    print(f"losskit {losskit.__version__} ({losskit.library_path()}, {losskit.cpu_level()}), "
          f"NumPy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"{'case':58} {'median us':>10} {'min us':>8}")
    for label, fn in rows(np.random.default_rng(0)):
        try:
            median, low = per_call_us(fn, args.calls, args.repeats)
        except (ValueError, TypeError) as error:  # an older losskit without that feature
            print(f"{label:58} {'-':>10} {'-':>8}  ({type(error).__name__}: {error})")
            continue
        print(f"{label:58} {median:10.2f} {low:8.2f}")


if __name__ == "__main__":
    main()
