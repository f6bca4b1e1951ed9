"""Shared fixtures: a deterministic random Generator per test and a batch maker.

Every test gets its own numpy Generator seeded from its node id (crc32), so a test's inputs do
not change when other tests are added, reordered or run alone (-k), and a failure reproduces.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from batches import random_batch

BASE_SEED = 20240607


@pytest.fixture
def rng(request) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def make_batch(rng):
    """random_batch bound to this test's Generator."""
    return lambda n, k, **kw: random_batch(rng, n, k, **kw)
