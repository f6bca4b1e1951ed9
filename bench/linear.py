"""W8: the fused linear layer + cross-entropy (losskit.linear) against PyTorch and NumPy.

Loss and every gradient (d_x, d_w) of the mean cross-entropy of x @ w.T, float32, for the
shapes of the issue (n tokens, d features, k classes). Each measurement runs in a fresh
subprocess: the inputs are made, the peak resident memory is reset (/proc/self/clear_refs),
then one warm-up call and `--repeats` timed calls; peak extra memory = the peak resident set
over those calls minus the resident set before them (the inputs and the libraries loaded) and
minus the gradients d_x and d_w every library returns. Libraries:

  losskit   losskit.linear: the logits tile by tile, never n x k (4 products)
  lk-3prod  LossKit's own three products of the same shapes (losskit.lsoftmax with margin 1:
            the log loss with the logits stored), the yardstick of the issue's 1.4x target
  torch     x @ w.T, F.cross_entropy, backward() (3 products, the n x k logits and their
            gradient stored)
  numpy     the same by hand on NumPy's BLAS (logits, softmax, two products)

Usage: python3 bench/linear.py [--shapes 1024x1024x128256,4096x512x32000] [--threads 1,2]
       [--repeats 3] [--libs losskit,lk-3prod,torch,numpy]
Ratios and medians are reported; no threshold is asserted (this machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB: VmRSS (resident now), VmHWM (the peak since reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def worker(lib: str, n: int, d: int, k: int, threads: int, repeats: int) -> dict:
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, d)) * 0.05).astype(np.float32)
    w = (rng.normal(size=(k, d)) * 0.05).astype(np.float32)
    g = rng.integers(0, k, n)
    if lib in ("losskit", "lk-3prod"):
        import losskit

        if lib == "losskit":
            def call():
                r = losskit.linear(x, w, g, threads=threads)
                return float(r.loss)
        else:
            def call():
                r = losskit.lsoftmax(x, w, g, margin=1, threads=threads)
                return float(r.loss)
    elif lib == "torch":
        import torch

        torch.set_num_threads(threads)
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(w, requires_grad=True)
        tg = torch.tensor(g)

        def call():
            tx.grad = None
            tw.grad = None
            value = torch.nn.functional.cross_entropy(tx @ tw.T, tg)
            value.backward()
            return float(value.detach())
    else:
        def call():
            z = x @ w.T
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            total = z.sum(axis=1, keepdims=True)
            value = float(np.mean(np.log(total[:, 0]) - np.log(z[np.arange(n), g])))
            z /= total
            z[np.arange(n), g] -= 1
            z /= n
            _ = z @ w, z.T @ x
            return value

    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    value = call()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    outputs = (n * d + k * d) * 4 / 2 ** 20  # d_x and d_w, which every library returns
    return {"lib": lib, "times": times, "peak_extra_mib": (status_kib("VmHWM") - before) / 1024 - outputs, "loss": value}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="1024x1024x128256,4096x512x32000")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--libs", default="losskit,lk-3prod,torch,numpy")
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        lib, n, d, k, threads, repeats = a.worker
        print(json.dumps(worker(lib, int(n), int(d), int(k), int(threads), int(repeats))))
        return
    for shape in a.shapes.split(","):
        n, d, k = (int(v) for v in shape.split("x"))
        logits_mib = n * k * 4 / 2 ** 20
        for threads in (int(t) for t in a.threads.split(",")):
            print(f"\nW8 n={n} d={d} k={k} float32, {threads} thread(s); the logits alone: {logits_mib:.0f} MiB")
            results = {}
            for lib in a.libs.split(","):
                out = subprocess.run([sys.executable, __file__, "--worker", lib, str(n), str(d), str(k),
                                      str(threads), str(a.repeats)], capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"  {lib:9s} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[lib] = r
                print(f"  {lib:9s} median {statistics.median(r['times']):8.3f} s  (min {min(r['times']):.3f}, "
                      f"{len(r['times'])} runs)  peak extra {r['peak_extra_mib']:8.1f} MiB  loss {r['loss']:.6f}",
                      flush=True)
            if "losskit" in results:
                mine = statistics.median(results["losskit"]["times"])
                for other in ("torch", "lk-3prod", "numpy"):
                    if other in results:
                        print(f"  losskit / {other}: {mine / statistics.median(results[other]['times']):.2f}")
                print(f"  losskit peak extra / logits: 1/{logits_mib / max(results['losskit']['peak_extra_mib'], 1e-9):.0f}")


if __name__ == "__main__":
    main()
