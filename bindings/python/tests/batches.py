"""Random batches for the tests: scores with masks and ties, costs in every layout, weights,
ignored rows. Plain functions of a numpy Generator (the fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Batch:
    scores: np.ndarray
    gold: np.ndarray
    cost: Optional[np.ndarray] = None
    cost_layout: Optional[str] = None
    weight: Optional[np.ndarray] = None
    ignore_label: int = -100

    def kwargs(self) -> dict:
        """The batch as keyword arguments of losskit.dense / reference_dense (minus scores,
        gold)."""
        return dict(cost=self.cost, cost_layout=self.cost_layout, weight=self.weight,
                    ignore_label=self.ignore_label)

    def astype(self, dtype) -> "Batch":
        """The same batch with every float array rounded to `dtype`."""
        conv = (lambda a: None if a is None else np.asarray(a).astype(dtype))
        return Batch(conv(self.scores), self.gold.copy(), conv(self.cost), self.cost_layout,
                     conv(self.weight), self.ignore_label)


def random_batch(rng: np.random.Generator, n: int, k: int, *, layout: str = "zero_one",
                 gold_unmasked: bool = True, mask: float = 0.0, scale: float = 3.0,
                 ties: bool = False, weighted: bool = True, ignore: float = 0.0,
                 zero_weight: float = 0.0, ignore_label: int = -100,
                 negative_costs: bool = False, offset: float = 0.0) -> Batch:
    """A random batch of n examples of k classes.

    scale      standard deviation of the scores (1e4 for the large-magnitude tests);
    ties       integer scores in [-2, 2] and integer costs in {0, 1, 2}: ties everywhere;
    mask       probability that a class is masked (-inf); every row keeps at least one class,
               and the gold stays unmasked when gold_unmasked;
    layout     "zero_one" (no cost array), "per_example" (n, k) or "class_matrix" (k, k);
    ignore     fraction of rows whose gold is ignore_label; zero_weight: rows of weight 0;
    offset     adds +offset or -offset (at random) to every score: two clusters far from 0
               whose members differ by O(scale) — large magnitudes with close competitors.
    """
    if ties:
        scores = rng.integers(-2, 3, size=(n, k)).astype(np.float64)
    else:
        scores = rng.normal(0.0, scale, size=(n, k))
    if offset:
        scores += offset * rng.choice([-1.0, 1.0], size=(n, k))
    gold = rng.integers(0, k, size=n).astype(np.int32)
    if mask > 0:
        masked = rng.random((n, k)) < mask
        for i in range(n):
            keep = gold[i] if gold_unmasked else rng.integers(0, k)
            masked[i, keep] = False
        scores[masked] = -np.inf

    cost = None
    if layout != "zero_one":
        shape = (n, k) if layout == "per_example" else (k, k)
        if ties:
            cost = rng.integers(0, 3, size=shape).astype(np.float64)
        else:
            low = -0.5 if negative_costs else 0.0
            cost = rng.uniform(low, 2.0, size=shape)
        if layout == "class_matrix" and not negative_costs:
            np.fill_diagonal(cost, 0.0)  # the usual cost matrix: 0 for the right class

    weight = None
    if weighted or zero_weight > 0:
        weight = rng.uniform(0.25, 2.0, size=n) if weighted else np.ones(n)
        weight[rng.random(n) < zero_weight] = 0.0
    if ignore > 0:
        gold[rng.random(n) < ignore] = ignore_label
    return Batch(scores, gold, cost, None if layout == "zero_one" else layout, weight,
                 ignore_label)


# ------------------------------------------------------------------------------------------
# Candidate lists (losskit.lists): flat scores and costs, offsets, one gold per list.
# ------------------------------------------------------------------------------------------

@dataclass
class ListBatch:
    scores: np.ndarray              # (total,)
    offsets: np.ndarray             # (n + 1,) int64
    gold: np.ndarray                # (n,) int32, index in the list or -1 (oracle)
    cost: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    def spans(self):
        """(a, b) of every list: example i owns a:b."""
        return [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in range(self.n)]

    def kwargs(self) -> dict:
        return dict(cost=self.cost, weight=self.weight)

    def astype(self, dtype) -> "ListBatch":
        conv = (lambda a: None if a is None else np.asarray(a).astype(dtype))
        return ListBatch(conv(self.scores), self.offsets.copy(), self.gold.copy(),
                         conv(self.cost), conv(self.weight))


def random_lists(rng: np.random.Generator, n: int, *, min_len: int = 1, max_len: int = 40,
                 costs: bool = True, oracle: float = 0.0, gold_unmasked: bool = True,
                 mask: float = 0.0, scale: float = 3.0, ties: bool = False,
                 offset: float = 0.0, negative_costs: bool = False, weighted: bool = True,
                 zero_weight: float = 0.0, empty: float = 0.0) -> ListBatch:
    """A random batch of n candidate lists of lengths in [min_len, max_len].

    costs      per-candidate costs in [0, 2) (or [-0.5, 2) with negative_costs; integers in
               {0, 1, 2} with ties) — the gold's cost is as random as the others, so c_gold != 0
               in general; False: no cost array (0/1 against the gold);
    oracle     fraction of lists whose gold is -1 (only with costs);
    mask       probability that a candidate is masked (-inf); each list keeps one candidate
               unmasked, its gold when gold_unmasked (a -1 gold needs no such care: the oracle
               is unmasked by definition);
    ties       integer scores in [-2, 2] (and integer costs): ties everywhere;
    scale, offset   as random_batch;
    zero_weight     fraction of the lists of weight 0; empty: fraction of the lists that are
               empty, with weight 0 and a gold that would be invalid (both not read).
    """
    lengths = rng.integers(min_len, max_len + 1, size=n)
    is_empty = rng.random(n) < empty
    lengths[is_empty] = 0
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    if ties:
        scores = rng.integers(-2, 3, size=total).astype(np.float64)
    else:
        scores = rng.normal(0.0, scale, size=total)
    if offset:
        scores += offset * rng.choice([-1.0, 1.0], size=total)
    gold = np.array([rng.integers(0, max(k, 1)) for k in lengths], dtype=np.int32)
    if costs:
        gold[(rng.random(n) < oracle) & ~is_empty] = -1
    if mask > 0:
        masked = rng.random(total) < mask
        for i in range(n):
            a, k = offsets[i], lengths[i]
            if k:
                keep = gold[i] if gold_unmasked and gold[i] >= 0 else rng.integers(0, k)
                masked[a + keep] = False
        scores[masked] = -np.inf
    cost = None
    if costs:
        if ties:
            cost = rng.integers(0, 3, size=total).astype(np.float64)
        else:
            cost = rng.uniform(-0.5 if negative_costs else 0.0, 2.0, size=total)
    weight = None
    if weighted or zero_weight > 0 or empty > 0:
        weight = rng.uniform(0.25, 2.0, size=n) if weighted else np.ones(n)
        weight[rng.random(n) < zero_weight] = 0.0
        weight[is_empty] = 0.0
    gold[is_empty] = 3  # outside the empty list: must not be validated (weight 0)
    return ListBatch(scores, offsets, gold, cost, weight)
