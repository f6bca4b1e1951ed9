"""W9: the cross-entropy over classes split across processes (losskit.vocab_parallel) against one
process.

Float32 logits of n rows and k classes (the W8 shapes' logits), the mean log loss and its
gradient, 1 thread per process. Measured, each a median over --repeats steps after one warm-up:

  one process   losskit.dense on the whole (n, k) logits; losskit.vocab_parallel with P = 1
                (the three phases, reductions that do nothing); PyTorch's F.cross_entropy with
                backward() on the same logits
  P processes   torch.distributed (gloo, loopback) via losskit.torch.vocab_parallel_cross_entropy's
                reductions: each process holds k / P columns; the step's time, the library's own
                part (the step minus the time inside the all-reduces), and the bytes each process
                hands to the all-reduces per step

Over MPI, bindings/c/vocab_parallel_mpi.c (make test-mpi) prints the bytes each rank sends per step.

Usage: python3 bench/vocab_parallel.py [--shapes 1024x128256,4096x32000] [--processes 2]
       [--repeats 5]
Ratios and medians are reported; no threshold is asserted (this machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))


def make(n: int, k: int):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, k), dtype=np.float32) * 2,
            rng.integers(0, k, n).astype(np.int32))


def median_time(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def one_process(n: int, k: int, repeats: int) -> dict:
    import losskit
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    s, g = make(n, k)
    nothing = lambda a: None  # noqa: E731
    out = {
        "dense": median_time(lambda: losskit.dense(s, g, threads=1), repeats),
        "vocab P=1": median_time(lambda: losskit.vocab_parallel(s, g, k=k, k_offset=0, threads=1,
                                                                all_reduce_max=nothing, all_reduce_sum=nothing),
                                 repeats),
    }
    logits, target = torch.from_numpy(s), torch.from_numpy(g.astype(np.int64))

    def torch_step():
        x = logits.clone().requires_grad_(True)
        F.cross_entropy(x, target).backward()

    out["torch"] = median_time(torch_step, repeats)
    return out


def worker(rank: int, P: int, port: int, n: int, k: int, repeats: int, queue) -> None:
    import torch
    import torch.distributed as dist

    import losskit

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=P)
    s, g = make(n, k)
    lo, hi = k * rank // P, k * (rank + 1) // P
    shard = np.ascontiguousarray(s[:, lo:hi])
    spent = {"reduce": 0.0, "bytes": 0}

    def reducer(op):
        def reduce(a):
            t = time.perf_counter()
            dist.all_reduce(torch.from_numpy(a), op=op)
            spent["reduce"] += time.perf_counter() - t
            spent["bytes"] += a.nbytes
        return reduce

    steps, own = [], []
    for r in range(repeats + 1):
        dist.barrier()
        spent.update(reduce=0.0, bytes=0)
        t = time.perf_counter()
        losskit.vocab_parallel(shard, g, k=k, k_offset=lo, threads=1, all_reduce_max=reducer(dist.ReduceOp.MAX),
                               all_reduce_sum=reducer(dist.ReduceOp.SUM))
        total = time.perf_counter() - t
        if r:  # the first is the warm-up
            steps.append(total)
            own.append(total - spent["reduce"])
    queue.put((rank, statistics.median(steps), statistics.median(own), spent["bytes"]))
    dist.destroy_process_group()


def processes(n: int, k: int, P: int, repeats: int) -> dict:
    import torch.multiprocessing as tmp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = tmp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, P, port, n, k, repeats, queue)) for r in range(P)]
    for p in procs:
        p.start()
    results = sorted(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return {"step": max(r[1] for r in results), "own": max(r[2] for r in results), "bytes": results[0][3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1024x128256,4096x32000")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"W9: float32 logits, mean log loss + gradient, 1 thread per process, medians of {args.repeats}")
    print(f"{'n x k':>14} | {'dense':>7} {'vocab P=1':>9} {'torch':>7} | {'P':>2} {'step':>7} {'own':>7} "
          f"{'own/P=1':>7} {'bytes sent':>10} {'per row':>7} | {'logits bytes':>12}")
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        one = one_process(n, k, args.repeats)
        many = processes(n, k, args.processes, args.repeats)
        print(f"{n:>6} x {k:<6} | {one['dense']:7.3f} {one['vocab P=1']:9.3f} {one['torch']:7.3f} | "
              f"{args.processes:>2} {many['step']:7.3f} {many['own']:7.3f} {many['own'] / one['vocab P=1']:7.2f} "
              f"{many['bytes']:>10} {many['bytes'] / n:7.0f} | {n * k * 4:>12}")


if __name__ == "__main__":
    main()
