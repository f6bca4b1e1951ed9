"""The README's "Use with ..." examples (PyTorch, JAX, XGBoost / LightGBM) run as printed (each
block on its own, in a fresh interpreter, as a reader pastes it), and print what the text beside
them says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_readme import python_blocks

HERE = Path(__file__).resolve().parent


def run(block: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, env=env,
                          check=True, timeout=300).stdout


def test_adapter_examples_run():
    blocks = python_blocks(adapters=True)
    assert len(blocks) == 3, "the README's Use with ... sections lost (or gained) an example"
    torch_block, jax_block, gbdt_block = blocks
    assert "losskit.torch" in torch_block and "losskit.jax" in jax_block
    # The CRF example prints two decoded paths, of the mask's lengths 6 and 4, each allowed by BIO.
    paths = eval(run(torch_block).strip().splitlines()[-1])  # noqa: S307 - our own README's output
    assert [len(p) for p in paths] == [6, 4]
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for p in paths:
        for a, b in zip([None] + p, p):
            # BIO: I-x only after B-x or I-x (and never first).
            assert not labels[b].startswith("I-") or (a is not None and labels[a][2:] == labels[b][2:])
    assert run(jax_block).strip() == "(4, 32, 10)"
    # XGBoost and LightGBM with a cost-sensitive softmax-margin objective learn the digits (chance
    # is 0.1; the built-in objectives reach about 0.9 in 20 rounds).
    accuracies = {line.split()[0]: float(line.split()[-1]) for line in run(gbdt_block).strip().splitlines()}
    assert set(accuracies) == {"xgboost", "lightgbm"} and min(accuracies.values()) > 0.8, accuracies
