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
