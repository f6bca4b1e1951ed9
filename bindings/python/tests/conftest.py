"""Shared fixtures: a deterministic random Generator per test and a batch maker.

Every test gets its own numpy Generator seeded from its node id (crc32), so a test's inputs do
not change when other tests are added, reordered or run alone (-k), and a failure reproduces.
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

import reference
from batches import random_batch

BASE_SEED = 20240607

# `make test` sets LOSSKIT_STRICT=1: there a skipped test is a check not made (a peer not
# installed, a build not made), so it is reported as a failure. Run by hand, skips stay skips.
STRICT = os.environ.get("LOSSKIT_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under LOSSKIT_STRICT=1 (make test), which allows no skip: {reason}"


@pytest.fixture(scope="session", autouse=True)
def numpy_reference_results(request):
    """reference.py's results, kept in pytest's cache folder between runs (kept.Store)."""
    with reference.RESULTS.kept_between_runs(request.config):
        yield


@pytest.fixture
def rng(request) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def make_batch(rng):
    """random_batch bound to this test's Generator."""
    return lambda n, k, **kw: random_batch(rng, n, k, **kw)


# --- the accuracy suite (test_accuracy.py) ---------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("losskit accuracy")
    group.addoption("--accuracy-large", action="store_true",
                    help="test_accuracy.py: more random draws, chains of T = 4, rows of 128256 "
                         "classes (same as LOSSKIT_ACCURACY=large)")
    group.addoption("--accuracy-table", action="store_true",
                    help="test_accuracy.py: print the table of max error/bound ratios after the run")


def pytest_configure(config):
    if config.getoption("--accuracy-large"):
        os.environ["LOSSKIT_ACCURACY"] = "large"  # read when test_accuracy.py is imported


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    module = sys.modules.get("test_accuracy")
    if not config.getoption("--accuracy-table") or module is None or not module.RESULTS:
        return
    terminalreporter.write_sep("=", "accuracy: max error / bound per cell (<= 1 passes)")
    terminalreporter.write_line(module.table(module.RESULTS))
