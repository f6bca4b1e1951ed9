"""Smoke test of the demo (demo/digits.py): it runs, exits 0 and prints a row for every loss."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[3] / "demo" / "digits.py"


def demo_losses():
    """The demo's own table of (label, options), so that a loss added there is checked here."""
    spec = importlib.util.spec_from_file_location("losskit_demo_digits", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines functions only; main() runs under __main__
    return module.LOSSES


def test_demo_prints_a_row_for_every_loss():
    p = subprocess.run([sys.executable, str(DEMO), "--epochs", "20"], cwd="/tmp",
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    number = r"(-?\d+\.\d+|nan|-?inf)"
    for label, _ in demo_losses():
        rows = [line for line in lines if line.startswith(label + " ")]
        assert len(rows) == 1, f"no single row for {label!r} in:\n{p.stdout}"
        m = re.fullmatch(re.escape(label) + rf"\s+{number}\s+{number}\s+{number}\s+{number}s",
                         rows[0])
        assert m, rows[0]
        final, train_acc, test_acc, _ = (float(x) for x in m.groups())
        assert math.isfinite(final), rows[0]
        assert 0.0 <= train_acc <= 1.0 and 0.0 <= test_acc <= 1.0, rows[0]
        if label.startswith("log (cross-entropy)"):
            # 20 epochs of Adam on a linear model of the digits: far above chance (0.1)
            assert test_acc > 0.5, rows[0]
