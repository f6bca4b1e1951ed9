"""The README's Python examples run as printed, and compute what the text beside them says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[3] / "README.md"


def python_blocks(adapters: bool) -> list:
    """The README's ```python blocks: those of the "## Use with ..." section (PyTorch, JAX: they
    need the peers of make setup-peers) when adapters is True, the others (NumPy only) when not."""
    blocks = []
    for section in re.split(r"^(?=## )", README.read_text(), flags=re.M):
        if section.startswith("## Use with") == adapters:
            blocks += re.findall(r"```python\n(.*?)```", section, re.S)
    return blocks


def readme_namespace():
    blocks = python_blocks(adapters=False)
    assert len(blocks) >= 2, "the README lost its Python examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def test_readme_examples_run_and_agree_with_hand_computation(capsys):
    ns = readme_namespace()
    assert "LK_ERR_LABEL" in capsys.readouterr().out  # the dense example's error message

    # The chain examples: Viterbi paths stop at each length; marginals sum to 1 inside them.
    path, lengths, mu, em = ns["path"], ns["lengths"], ns["mu"], ns["em"]
    for i, length in enumerate(lengths):
        assert (path[i, length:] == -1).all() and (path[i, :length] >= 0).all()
        np.testing.assert_allclose(mu[i, :length].sum(-1), 1.0, rtol=1e-12)
    # With zero transitions the best path takes each position's best emission.
    np.testing.assert_array_equal(path[0], em[0].argmax(-1))

    # The lists example's risk, by hand: the mean over lists of sum_y softmax(s)_y c_y.
    scores, offsets, cost = ns["scores"], ns["offsets"], ns["cost"]
    ns2 = dict(ns)
    exec("import losskit\nr = losskit.lists(scores, offsets, gold, loss='risk', cost=cost)", ns2)
    risks = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        s = scores[a:b].astype(np.float64)
        p = np.exp(s - s.max()); p /= p.sum()
        risks.append(float(p @ cost[a:b]))
    np.testing.assert_allclose(ns2["r"].loss, np.mean(risks), rtol=1e-6)
