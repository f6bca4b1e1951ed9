"""bfloat16 against float32: time and accuracy of lk_dense_bf16 (and, with --linear, of
lk_linear_bf16) beside the float32 entry points on the same values.

Shapes: W1 (log loss, 4096 x 1000 dense rows) and the W8 logits (1024 x 128256, 4096 x 32000)
as dense rows; with --linear, the W8 fused linear shapes. Scores are float32 values rounded to
bfloat16 once, so that both calls see the same numbers: the float32 call reads them widened.
Measured, each a median over --repeats calls after one warm-up, at --threads threads:

  time      loss + gradient, bfloat16 (gradient in bfloat16) and float32; their ratio
  accuracy  against the float64 call on the same (widened) values: the loss's relative error and
            the largest relative error of a gradient entry (|g| > 1e-30), for both; for the fused
            linear layer, d_x's and d_w's largest error over their largest entry (normwise: single
            entries of d_w are sums that cancel)

Usage: python3 bench/bf16.py [--shapes 4096x1000,1024x128256,4096x32000]
       [--linear 1024x1024x128256,4096x512x32000] [--threads 1] [--repeats 5]
Ratios and medians are reported; no threshold is asserted (this machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))


def median_time(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def errors(got, ref):
    loss = abs(float(got.loss) - float(ref.loss)) / abs(float(ref.loss))
    g = np.asarray(got.grad, dtype=np.float64)
    big = np.abs(ref.grad) > 1e-30
    grad = float((np.abs(g - ref.grad)[big] / np.abs(ref.grad[big])).max())
    return loss, grad


def dense(n: int, k: int, threads: int, repeats: int) -> None:
    import ml_dtypes
    import losskit

    rng = np.random.default_rng(0)
    s16 = (rng.standard_normal((n, k), dtype=np.float32) * 2).astype(ml_dtypes.bfloat16)
    s32 = s16.astype(np.float32)
    gold = rng.integers(0, k, n).astype(np.int32)
    g16 = np.empty((n, k), dtype=ml_dtypes.bfloat16)
    g32 = np.empty((n, k), dtype=np.float32)
    t16 = median_time(lambda: losskit.dense(s16, gold, threads=threads, grad_out=g16), repeats)
    t32 = median_time(lambda: losskit.dense(s32, gold, threads=threads, grad_out=g32), repeats)
    ref = losskit.dense(s32.astype(np.float64), gold, threads=threads)
    e16 = errors(losskit.dense(s16, gold, threads=threads), ref)
    e32 = errors(losskit.dense(s32, gold, threads=threads), ref)
    print(f"dense log loss {n} x {k}, {threads} thread(s): bf16 {t16:.4f} s, f32 {t32:.4f} s "
          f"(bf16 / f32 = {t16 / t32:.2f}); bytes read + written: bf16 {4 * n * k / 1e6:.0f} MB, "
          f"f32 {8 * n * k / 1e6:.0f} MB")
    print(f"  vs float64: bf16 loss {e16[0]:.1e}, gradient {e16[1]:.1e}; "
          f"f32 loss {e32[0]:.1e}, gradient {e32[1]:.1e} (relative, largest entry)")


def linear(n: int, d: int, k: int, threads: int, repeats: int) -> None:
    import ml_dtypes
    import losskit

    rng = np.random.default_rng(0)
    x16 = rng.standard_normal((n, d), dtype=np.float32).astype(ml_dtypes.bfloat16)
    w16 = (rng.standard_normal((k, d), dtype=np.float32) / np.sqrt(d)).astype(ml_dtypes.bfloat16)
    x32, w32 = x16.astype(np.float32), w16.astype(np.float32)
    gold = rng.integers(0, k, n).astype(np.int32)
    t16 = median_time(lambda: losskit.linear(x16, w16, gold, threads=threads), repeats)
    t32 = median_time(lambda: losskit.linear(x32, w32, gold, threads=threads), repeats)
    ref = losskit.linear(x32.astype(np.float64), w32.astype(np.float64), gold, threads=threads)
    got16 = losskit.linear(x16, w16, gold, threads=threads)
    got32 = losskit.linear(x32, w32, gold, threads=threads)

    def normwise(got, name):
        e = getattr(ref, name)
        return float(np.abs(np.asarray(getattr(got, name), dtype=np.float64) - e).max() / np.abs(e).max())

    print(f"linear log loss n {n}, d {d}, k {k}, {threads} thread(s): bf16 {t16:.2f} s, f32 {t32:.2f} s "
          f"(bf16 / f32 = {t16 / t32:.2f})")
    print(f"  vs float64 (normwise): bf16 loss {abs(float(got16.loss) - ref.loss) / ref.loss:.1e}, "
          f"d_x {normwise(got16, 'd_x'):.1e}, d_w {normwise(got16, 'd_w'):.1e}; f32 loss "
          f"{abs(float(got32.loss) - ref.loss) / ref.loss:.1e}, d_x {normwise(got32, 'd_x'):.1e}, "
          f"d_w {normwise(got32, 'd_w'):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x1000,1024x128256,4096x32000")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--linear", default="",
                        help="fused linear shapes n x d x k, e.g. 1024x1024x128256,4096x512x32000")
    args = parser.parse_args()
    import losskit
    print(f"losskit {losskit.__version__} ({losskit.cpu_level()}), numpy {np.__version__}")
    for shape in filter(None, args.shapes.split(",")):
        n, k = (int(v) for v in shape.split("x"))
        dense(n, k, args.threads, args.repeats)
    for shape in filter(None, args.linear.split(",")):
        n, d, k = (int(v) for v in shape.split("x"))
        linear(n, d, k, args.threads, args.repeats)


if __name__ == "__main__":
    main()
