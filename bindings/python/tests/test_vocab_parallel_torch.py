"""losskit.torch.vocab_parallel_cross_entropy over real processes: torch.distributed with the gloo
backend on loopback, 2 and 4 processes (torch.multiprocessing), each holding a shard of the
classes. References on the whole logits in one process: torch.nn.functional.cross_entropy
(log loss, label smoothing, ignore_index) and losskit.torch.dense (every loss)."""

import os
import socket

import numpy as np
import pytest

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
import torch.nn.functional as F

import losskit.torch as lkt

N, K = 24, 103
CASES = [("log", {}), ("log", {"label_smoothing": 0.1}), ("softmax_margin", {}), ("hinge", {}),
         ("perceptron", {}), ("log", {"z_loss": 1e-3, "softcap": 6.0})]


def data(dtype):
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(N, K, generator=g) * 4).to(dtype)
    target = torch.randint(0, K, (N,), generator=g)
    target[3] = -100
    return logits, target


def bounds(P):
    return np.linspace(0, K, P + 1).astype(int)


def worker(rank, P, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=P)
    try:
        lo, hi = bounds(P)[rank], bounds(P)[rank + 1]
        results = {}
        for dtype in (torch.float32, torch.float64):
            logits, target = data(dtype)
            for c, (loss, options) in enumerate(CASES):
                for reduction in ("mean", "none"):
                    shard = logits[:, lo:hi].clone().requires_grad_(True)
                    # k and k_offset from the all-gather of the shards' widths
                    value = lkt.vocab_parallel_cross_entropy(shard, target, loss=loss, reduction=reduction,
                                                             **options)
                    upstream = torch.linspace(0.5, 1.5, N, dtype=dtype) if reduction == "none" else None
                    (value if upstream is None else value * upstream).sum().backward()
                    key = f"{dtype}-{c}-{reduction}"
                    results[key + "-loss"] = value.detach().numpy()
                    results[key + "-grad"] = shard.grad.numpy()
            # Run to run at a fixed P: the same bits.
            shard = logits[:, lo:hi]
            a = lkt.vocab_parallel_cross_entropy(shard, target, k=K, k_offset=int(lo))
            b = lkt.vocab_parallel_cross_entropy(shard, target, k=K, k_offset=int(lo))
            results[f"{dtype}-repeat"] = np.array([a.item() == b.item()])
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **results)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("P", [2, 4])
def test_gloo_processes_match_one_process(P, tmp_path):
    tmp.spawn(worker, args=(P, free_port(), str(tmp_path)), nprocs=P, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(P)]
    b = bounds(P)
    for dtype in (torch.float32, torch.float64):
        rel = 1e-6 if dtype == torch.float32 else 4 * np.finfo(np.float64).eps
        logits, target = data(dtype)
        for c, (loss, options) in enumerate(CASES):
            for reduction in ("mean", "none"):
                key = f"{dtype}-{c}-{reduction}"
                full = logits.clone().requires_grad_(True)
                ref = lkt.dense(full, target, loss=loss, reduction=reduction, **options)
                upstream = torch.linspace(0.5, 1.5, N, dtype=dtype) if reduction == "none" else None
                (ref if upstream is None else ref * upstream).sum().backward()
                ref_loss, ref_grad = ref.detach().numpy(), full.grad.numpy()
                for r in range(P):
                    got = ranks[r][key + "-loss"]
                    assert np.array_equal(got, ranks[0][key + "-loss"]), "the processes' losses differ"
                    assert np.all(np.abs(got - ref_loss) <= rel * np.abs(ref_loss) + 1e-300), (key, r)
                    grad = ranks[r][key + "-grad"]
                    part = ref_grad[:, b[r]:b[r + 1]]
                    scale = np.max(np.abs(ref_grad), axis=1, keepdims=True)
                    assert np.all(np.abs(grad - part) <= rel * scale), (key, r)
                if loss == "log" and not options.get("z_loss"):
                    # PyTorch's own cross-entropy on the whole logits.
                    peer = F.cross_entropy(logits, target, reduction=reduction, ignore_index=-100,
                                           label_smoothing=options.get("label_smoothing", 0.0))
                    tol = 1e-5 if dtype == torch.float32 else 1e-12
                    assert np.allclose(ranks[0][key + "-loss"], peer.numpy(), rtol=tol, atol=tol)
        for r in range(P):
            assert ranks[r][f"{dtype}-repeat"].all()
