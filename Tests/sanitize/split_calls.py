"""Calls that really split across threads, for the sanitizer runs (make test-sanitize).

The library runs a call on one thread below 2^17 elements of work per extra thread
(Parallel.elementsPerThread), so most test batches never start a worker; under TSan that
would leave the parallel paths unchecked. Each call here has at least 2^19 elements of work,
made at threads = 2 and 4, and compared bit for bit with threads = 1. That the calls split was
checked once by counting the threads they start (strace -f: 99 clone calls for this script).
Run: python3 Tests/sanitize/split_calls.py (losskit importable).
"""
import numpy as np

import losskit


def same(a, b, what):
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or np.ndim(x):
            assert np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True), (what, name)
        else:
            assert x == y or (x != x and y != y), (what, name)


def main():
    rng = np.random.default_rng(7)
    n, k = 4096, 128                       # 2^19 scores
    scores = rng.standard_normal((n, k)).astype(np.float32)
    gold = rng.integers(0, k, n).astype(np.int32)
    offsets = np.arange(0, n * k + 1, k, dtype=np.int64)
    emissions = rng.standard_normal((512, 64, 16))  # 512 * 64 * 16^2 = 2^23 work
    transitions = rng.standard_normal((16, 16))
    lengths = rng.integers(0, 65, 512).astype(np.int32)
    tags = rng.integers(0, 16, (512, 64)).astype(np.int32)
    x = rng.standard_normal((2048, 64))
    w = rng.standard_normal((256, 64))     # 2048 * 256 = 2^19 logits
    gx = rng.integers(0, 256, 2048).astype(np.int32)
    calls = {
        "dense": lambda t: losskit.dense(scores, gold, loss="softmax_margin", threads=t),
        "lists": lambda t: losskit.lists(scores.ravel(), offsets, gold, loss="soft_ramp", threads=t),
        "chain": lambda t: losskit.chain(emissions, transitions, lengths, tags, threads=t),
        "viterbi": lambda t: losskit.viterbi(emissions, transitions, lengths, threads=t),
        "marginals": lambda t: losskit.marginals(emissions, transitions, lengths, threads=t),
        "lsoftmax": lambda t: losskit.lsoftmax(x, w, gx, margin=3, threads=t),
    }
    for what, call in calls.items():
        one = call(1)
        for t in (2, 4):
            same(one, call(t), f"{what} threads={t}")
        print(f"{what}: threads 1, 2, 4 bit-identical")


if __name__ == "__main__":
    main()
