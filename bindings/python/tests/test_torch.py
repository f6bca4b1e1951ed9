"""losskit.torch: autograd against finite differences (torch.autograd.gradcheck, float64), against
PyTorch's own cross-entropy and pytorch-crf, the tagging-scheme constraints against hand-written
tables, and short training runs.

torch and pytorch-crf come from make setup-peers (make test runs it): a missing one fails here.
gradcheck compares the backward of each function with central differences (eps 1e-6) of its
forward in float64; inputs are continuous random values, so no max is tied within eps and the
piecewise-linear losses are differentiable where they are probed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchcrf

import losskit
import losskit.torch as lkt

# One intra-op thread: the models here are tiny, and on a loaded 2-core machine torch's thread
# pool contending with LossKit's costs more than it gains.
torch.set_num_threads(1)

F64 = torch.float64
REDUCTIONS = ("mean", "sum", "none")
COST_LOSSES = ("hinge", "softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp", "hope_fear")
# Every dense loss with options that exercise it (hope/fear: log-sum-exp terms with costs).
DENSE_CASES = {
    "log": {}, "log_smoothed": dict(loss="log", label_smoothing=0.2), "perceptron": {}, "hinge": {},
    "softmax_margin": dict(cost_scale=0.7), "risk": {}, "ramp": {}, "soft_ramp": {}, "infinite_ramp": {},
    "squared": dict(square_k=2.0, square_m=3.0), "squentropy": {},
    "hope_fear": dict(hope="lse", fear="lse", hope_scale=1.0, fear_scale=1.0),
    "cosface": {}, "arcface": {},
}
CHAIN_LOSSES = ("log", "perceptron", "hinge", "softmax_margin", "risk", "ramp", "soft_ramp",
                "infinite_ramp", "hope_fear")


def dense_inputs(name, n=6, k=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    options = dict(DENSE_CASES[name])
    loss = options.pop("loss", name)
    if loss in ("cosface", "arcface"):  # cosines, away from +-1 where arccos is not differentiable
        s = torch.rand(n, k, generator=gen, dtype=F64) * 1.6 - 0.8
        options.update(angular_scale=4.0)
    else:
        s = torch.randn(n, k, generator=gen, dtype=F64) * 2
    gold = torch.randint(0, k, (n,), generator=gen)
    if loss in COST_LOSSES:
        cost = torch.rand(n, k, generator=gen, dtype=F64) * 2
        cost[torch.arange(n), gold] = 0
        options["cost"] = cost
    return s.requires_grad_(), gold, loss, options


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(DENSE_CASES))
def test_dense_gradcheck(name, reduction):
    s, gold, loss, options = dense_inputs(name)
    weight = torch.rand(s.shape[0], dtype=F64) + 0.5
    f = lambda s: lkt.dense(s, gold, loss=loss, reduction=reduction, weight=weight, **options)  # noqa: E731
    assert torch.autograd.gradcheck(f, (s,))
    if reduction == "none":  # a signed upstream gradient through a later op
        up = torch.randn(s.shape[0], dtype=F64)
        assert torch.autograd.gradcheck(lambda s: (f(s) * up).sum(), (s,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["log", "hinge", "softmax_margin", "risk", "soft_ramp", "squentropy"])
def test_lists_gradcheck(loss, reduction):
    gen = torch.Generator().manual_seed(1)
    offsets = torch.tensor([0, 3, 3 + 5, 3 + 5 + 1, 3 + 5 + 1 + 4])
    s = (torch.randn(int(offsets[-1]), generator=gen, dtype=F64) * 2).requires_grad_()
    gold = torch.tensor([2, 0, 0, 3])
    cost = torch.rand(s.shape[0], generator=gen, dtype=F64)
    cost[offsets[:-1] + gold] = 0
    f = lambda s: lkt.lists(s, offsets, gold, loss=loss, reduction=reduction, cost=cost)  # noqa: E731
    assert torch.autograd.gradcheck(f, (s,))
    if reduction == "none":
        up = torch.tensor([0.5, -2.0, 1.5, -0.25], dtype=F64)
        assert torch.autograd.gradcheck(lambda s: (f(s) * up).sum(), (s,))


def chain_inputs(seed=2, n=4, t=5, tags=3):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=gen, dtype=F64).requires_grad_()  # noqa: E731
    lengths = torch.tensor([5, 3, 1, 4][:n])
    gold = torch.randint(0, tags, (n, t), generator=gen)
    return r(n, t, tags), r(tags, tags), r(tags), r(tags), lengths, gold


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", CHAIN_LOSSES)
def test_chain_gradcheck(loss, reduction):
    em, tr, st, en, lengths, gold = chain_inputs()
    options = dict(hope="lse", fear="lse", hope_scale=1.0, fear_scale=1.0) if loss == "hope_fear" else {}
    weight = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=F64)

    def f(em, tr, st, en):
        return lkt.chain(em, tr, lengths, gold, start=st, end=en, loss=loss, reduction=reduction,
                         weight=weight, **options)
    assert torch.autograd.gradcheck(f, (em, tr, st, en))
    if reduction == "none":
        # Random signed upstream gradients: the shared parameters need sum_i g_i dL_i/dtheta.
        for seed in range(3):
            gen = torch.Generator().manual_seed(seed)
            signs = torch.tensor([1.0, -1.0, 1.0, -1.0])[torch.randperm(4, generator=gen)]
            up = (torch.rand(4, generator=gen, dtype=F64) * 3 + 0.1) * signs
            assert torch.autograd.gradcheck(lambda *a: (f(*a) * up).sum(), (em, tr, st, en))
        # One sequence with g = 0, the others equal: both shortcuts of backward.
        for up in (torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=F64), torch.full((4,), -0.5, dtype=F64)):
            assert torch.autograd.gradcheck(lambda *a: (f(*a) * up).sum(), (em, tr, st, en))


def test_chain_none_signed_matches_per_sequence_sum():
    # sum_i g_i dL_i/dtheta built one sequence at a time (reduction "sum" over a single sequence).
    em, tr, st, en, lengths, gold = chain_inputs(seed=5)
    up = torch.tensor([1.5, -2.0, 0.0, -0.5], dtype=F64)
    got = torch.autograd.grad(lkt.chain(em, tr, lengths, gold, start=st, end=en, reduction="none"),
                              (em, tr, st, en), up)
    want = [torch.zeros_like(x) for x in (em, tr, st, en)]
    for i in range(4):
        li = lkt.chain(em[i:i + 1], tr, lengths[i:i + 1], gold[i:i + 1], start=st, end=en, reduction="sum")
        for w, d in zip(want, torch.autograd.grad(li * up[i], (em, tr, st, en))):
            w += d
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_lsoftmax_gradcheck(reduction):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, generator=gen, dtype=F64).requires_grad_()
    w = torch.randn(5, 4, generator=gen, dtype=F64).requires_grad_()
    gold = torch.randint(0, 5, (6,), generator=gen)
    f = lambda x, w: lkt.lsoftmax(x, w, gold, margin=3, lam=0.5, reduction=reduction)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w))
    if reduction == "none":
        up = torch.randn(6, generator=gen, dtype=F64)
        assert torch.autograd.gradcheck(lambda x, w: (f(x, w) * up).sum(), (x, w))


def test_lsoftmax_module_owns_the_class_weights():
    torch.manual_seed(0)
    layer = lkt.LSoftmax(4, 3, margin=2).double()
    x = torch.randn(8, 4, dtype=F64)
    gold = torch.randint(0, 3, (8,))
    layer(x, gold).backward()
    want = losskit.lsoftmax(x.numpy(), layer.weight.detach().numpy(), gold.numpy(), margin=2)
    np.testing.assert_allclose(layer.weight.grad.numpy(), want.d_w, rtol=1e-14)
    assert layer.logits(x).shape == (8, 3)


# ------------------------------------------------------------------------------------------------
# Conventions: dtypes, copies, no_grad, CPU, data inputs
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes(dtype):
    torch.manual_seed(0)
    s = torch.randn(16, 7).to(dtype).requires_grad_()
    gold = torch.randint(0, 7, (16,))
    value = lkt.dense(s, gold, loss="log")
    value.backward()
    assert value.dtype == dtype and s.grad.dtype == dtype
    want = losskit.dense(s.detach().float().numpy(), gold.numpy(), loss="log")  # float32
    tol = {torch.float32: 0, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    np.testing.assert_allclose(s.grad.float().numpy(), want.grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(float(value.detach()), want.loss, rtol=tol)


def test_cpu_tensors_are_read_in_place(monkeypatch):
    seen = {}
    original = losskit.torch._dense.dense

    def spy(scores, gold, **kw):
        seen["scores"], seen["with_grad"] = scores, kw["with_grad"]
        return original(scores, gold, **kw)
    monkeypatch.setattr(losskit.torch._dense, "dense", spy)
    s = torch.randn(4, 3, requires_grad=True)
    lkt.dense(s, torch.tensor([0, 1, 2, 0])).backward()
    assert np.shares_memory(seen["scores"], s.detach().numpy()) and seen["with_grad"]
    # A transposed (non-contiguous) tensor is made contiguous, with the same values.
    t = torch.randn(3, 4).T.requires_grad_()
    lkt.dense(t, torch.tensor([0, 1, 2, 0])).backward()
    np.testing.assert_array_equal(seen["scores"], t.detach().numpy())
    # No gradient is computed when none is needed.
    with torch.no_grad():
        lkt.dense(s, torch.tensor([0, 1, 2, 0]))
    assert seen["with_grad"] is False
    lkt.dense(s.detach(), torch.tensor([0, 1, 2, 0]))
    assert seen["with_grad"] is False


def test_non_cpu_tensor_is_a_clear_error():
    s = torch.empty(4, 3, device="meta")
    with pytest.raises(ValueError, match="LossKit computes on the CPU"):
        lkt.dense(s, torch.tensor([0, 1, 2, 0]))


def test_weight_that_requires_grad_is_an_error():
    s = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="weight requires grad"):
        lkt.dense(s, torch.tensor([0, 1, 2, 0]), weight=torch.ones(4, requires_grad=True))


def test_import_losskit_does_not_import_torch():
    code = "import sys, losskit; losskit.dense([[0.0, 1.0]], [1]); print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ------------------------------------------------------------------------------------------------
# Against PyTorch's cross-entropy
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["plain", "label_smoothing", "class_weights", "ignore_index"])
def test_log_vs_cross_entropy(case, reduction):
    gen = torch.Generator().manual_seed(4)
    s = (torch.randn(32, 7, generator=gen, dtype=F64) * 3).requires_grad_()
    gold = torch.randint(0, 7, (32,), generator=gen)
    ours, theirs = {}, {}
    if case == "label_smoothing":
        ours["label_smoothing"] = theirs["label_smoothing"] = 0.15
    elif case == "class_weights":  # PyTorch's class weight cw[y_i] is LossKit's example weight
        cw = torch.rand(7, generator=gen, dtype=F64) + 0.2
        theirs["weight"], ours["weight"] = cw, cw[gold]
    elif case == "ignore_index":
        gold[::3] = -100
        theirs["ignore_index"] = ours["ignore_label"] = -100
    up = torch.randn(32, dtype=F64) if reduction == "none" else torch.tensor(1.7, dtype=F64)
    got = lkt.dense(s, gold, loss="log", reduction=reduction, **ours)
    (d_got,) = torch.autograd.grad(got, s, up)
    want = torch.nn.functional.cross_entropy(s, gold, reduction=reduction, **theirs)
    (d_want,) = torch.autograd.grad(want, s, up)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d_got, d_want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# CRF against pytorch-crf
# ------------------------------------------------------------------------------------------------

def twin_crfs(tags, batch_first, seed=0):
    torch.manual_seed(seed)
    theirs = torchcrf.CRF(tags, batch_first=batch_first).double()
    for p in theirs.parameters():  # away from pytorch-crf's small initial values
        torch.nn.init.normal_(p, 0, 1)
    ours = lkt.CRF(tags, batch_first=batch_first).double()
    with torch.no_grad():
        ours.transitions.copy_(theirs.transitions)
        ours.start_transitions.copy_(theirs.start_transitions)
        ours.end_transitions.copy_(theirs.end_transitions)
    return ours, theirs


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean", "token_mean", "none"])
def test_crf_vs_pytorch_crf(batch_first, reduction):
    n, t, tags = 6, 9, 5
    ours, theirs = twin_crfs(tags, batch_first)
    em = torch.randn(n, t, tags, dtype=F64) * 2
    gold = torch.randint(0, tags, (n, t))
    lengths = torch.tensor([9, 4, 1, 7, 9, 2])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    if not batch_first:
        em, gold, mask = em.transpose(0, 1).contiguous(), gold.T.contiguous(), mask.T.contiguous()
    em_a, em_b = em.clone().requires_grad_(), em.clone().requires_grad_()
    got = ours(em_a, gold, mask, reduction=reduction)
    want = theirs(em_b, gold, mask, reduction=reduction)
    torch.testing.assert_close(got, -want, rtol=1e-12, atol=1e-12)  # pytorch-crf: the log-likelihood
    up = torch.randn(n, dtype=F64) if reduction == "none" else torch.tensor(1.0, dtype=F64)
    params_a = [em_a, ours.transitions, ours.start_transitions, ours.end_transitions]
    params_b = [em_b, theirs.transitions, theirs.start_transitions, theirs.end_transitions]
    for a, b in zip(torch.autograd.grad(got, params_a, up), torch.autograd.grad(-want, params_b, up)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert ours.decode(em, mask) == theirs.decode(em, mask)


def test_crf_marginals_are_the_gradient_of_log_z():
    # d(-log-likelihood)/d emissions = marginals - onehot(gold), computed by pytorch-crf's autograd.
    ours, theirs = twin_crfs(4, True, seed=1)
    em = torch.randn(3, 6, 4, dtype=F64, requires_grad=True)
    gold = torch.randint(0, 4, (3, 6))
    lengths = torch.tensor([6, 2, 5])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    (d,) = torch.autograd.grad(-theirs(em, gold, mask), em)
    onehot = torch.nn.functional.one_hot(gold, 4).to(F64) * mask[..., None]
    torch.testing.assert_close(ours.marginals(em.detach(), lengths=lengths), d + onehot, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Constraints
# ------------------------------------------------------------------------------------------------

def table(text):
    """A hand-written table: one row per 'from' label, '1' allowed, '.' forbidden."""
    return torch.tensor([[c == "1" for c in row.split()[1]] for row in text.strip().splitlines()])


LABELS = {
    "BIO": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "IOB1": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "BIOUL": ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"],
    "BMES": ["B-A", "M-A", "E-A", "S-A", "B-B", "M-B", "E-B", "S-B"],
}
# Rows: from; columns: to, in the order of LABELS. Start and end as one row each.
TABLES = {
    "BIO": ("""
        O     11.1.
        B-PER 1111.
        I-PER 1111.
        B-LOC 11.11
        I-LOC 11.11
    """, "11.1.", "11111"),
    "IOB1": ("""
        O     1.1.1
        B-PER 111.1
        I-PER 111.1
        B-LOC 1.111
        I-LOC 1.111
    """, "1.1.1", "11111"),
    "BIOUL": ("""
        O     11..11..1
        B-PER ..11.....
        I-PER ..11.....
        L-PER 11..11..1
        U-PER 11..11..1
        B-LOC ......11.
        I-LOC ......11.
        L-LOC 11..11..1
        U-LOC 11..11..1
    """, "11..11..1", "1..11..11"),
    "BMES": ("""
        B-A .11.....
        M-A .11.....
        E-A 1..11..1
        S-A 1..11..1
        B-B .....11.
        M-B .....11.
        E-B 1..11..1
        S-B 1..11..1
    """, "1..11..1", "..11..11"),
}


@pytest.mark.parametrize("scheme", sorted(TABLES))
def test_allowed_transitions_tables(scheme):
    transitions, start, end = TABLES[scheme]
    got = lkt.allowed_transitions(scheme, LABELS[scheme])
    assert torch.equal(got.transitions, table(transitions))
    assert torch.equal(got.start, torch.tensor([c == "1" for c in start]))
    assert torch.equal(got.end, torch.tensor([c == "1" for c in end]))
    # The dict form (AllenNLP's {id: label}) and the -inf/0 form say the same.
    as_dict = lkt.allowed_transitions(scheme, dict(enumerate(LABELS[scheme])))
    assert all(torch.equal(a, b) for a, b in zip(as_dict, got))
    scores = lkt.transition_constraints(scheme, LABELS[scheme], dtype=F64)
    for s, a in zip(scores, got):
        assert torch.equal(torch.isneginf(s), ~a) and bool((s[a] == 0).all())


def test_unknown_scheme_or_label_is_an_error():
    with pytest.raises(ValueError, match="scheme"):
        lkt.allowed_transitions("BILOU2", ["O"])
    with pytest.raises(ValueError, match=r"labels\[1\] = 'X-PER'"):
        lkt.allowed_transitions("BIO", ["O", "X-PER"])


def forbidden_steps(paths, allowed):
    bad = 0
    for p in paths:
        if p:
            bad += int(not allowed.start[p[0]]) + int(not allowed.end[p[-1]])
            bad += sum(int(not allowed.transitions[a, b]) for a, b in zip(p, p[1:]))
    return bad


def bio_data(n, t, gen):
    """Random BIO sequences over PER and LOC, and the tag ids."""
    labels = LABELS["BIO"]
    seqs = []
    for _ in range(n):
        seq, prev = [], "O"
        for _ in range(t):
            choice = int(torch.randint(0, 3, (1,), generator=gen))
            if choice == 0 or prev == "O" and choice == 2:
                tag = "O"
            elif choice == 1:
                tag = "B-" + ("PER" if torch.rand(1, generator=gen) < 0.5 else "LOC")
            else:
                tag = "I-" + prev[2:]
            seq.append(labels.index(tag))
            prev = tag
        seqs.append(seq)
    return torch.tensor(seqs)


def test_crf_trained_with_bio_constraints_never_decodes_a_forbidden_transition():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    allowed = lkt.allowed_transitions("BIO", LABELS["BIO"])
    crf = lkt.CRF(5, batch_first=True, constraints=allowed)
    gold = bio_data(32, 12, gen)
    feats = torch.nn.functional.one_hot(gold, 5).float() + torch.randn(32, 12, 5, generator=gen) * 1.5
    proj = torch.nn.Linear(5, 5)
    opt = torch.optim.Adam(list(crf.parameters()) + list(proj.parameters()), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        crf(proj(feats), gold, reduction="mean").backward()
        opt.step()
    assert torch.isfinite(crf.transitions).all()
    # Decoding noise (emissions that, taken position by position, would break the scheme).
    noise = torch.randn(64, 12, 5, generator=gen) * 5
    assert forbidden_steps(noise.argmax(-1).tolist(), allowed) > 0  # the test can fail
    assert forbidden_steps(crf.decode(noise), allowed) == 0
    assert forbidden_steps(crf.decode(proj(feats).detach()), allowed) == 0


# ------------------------------------------------------------------------------------------------
# Short training runs
# ------------------------------------------------------------------------------------------------

def test_tagger_with_crf_learns():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    vocab, tags, n, t = 30, 5, 64, 10
    words = torch.randint(0, vocab, (n, t), generator=gen)
    word_tag = torch.randint(0, tags, (vocab,), generator=gen)
    gold = word_tag[words]
    gold[:, 1:] = torch.where(torch.rand(n, t - 1, generator=gen) < 0.3, (gold[:, :-1] + 1) % tags, gold[:, 1:])
    lengths = torch.randint(3, t + 1, (n,), generator=gen)
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, 16), torch.nn.Linear(16, tags))
    crf = lkt.CRF(tags, batch_first=True)
    opt = torch.optim.Adam(list(model.parameters()) + list(crf.parameters()), lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = crf(model(words), gold, lengths=lengths, reduction="mean")
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    paths = crf.decode(model(words).detach(), lengths=lengths)
    right = sum(int((torch.tensor(p) == gold[i, :len(p)]).sum()) for i, p in enumerate(paths))
    assert right / int(lengths.sum()) > 0.8  # chance: 1 / 5


@pytest.mark.parametrize("name", sorted(DENSE_CASES))
def test_mlp_learns_with_every_dense_loss(name):
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    k, n = 4, 256
    centers = torch.randn(k, 8, generator=gen) * 2
    y = torch.randint(0, k, (n,), generator=gen)
    x = centers[y] + torch.randn(n, 8, generator=gen)
    options = dict(DENSE_CASES[name])
    loss = options.pop("loss", name)
    angular = loss in ("cosface", "arcface")
    body = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    head = torch.nn.Linear(16, k, bias=not angular)
    if angular:  # cosines between normalised features and class weights
        options.update(angular_scale=8.0, angular_margin=0.2)
        scores_of = lambda f: torch.nn.functional.linear(  # noqa: E731
            torch.nn.functional.normalize(f), torch.nn.functional.normalize(head.weight))
    else:
        scores_of = head
    criterion = lkt.DenseLoss(loss, **options)
    opt = torch.optim.Adam(list(body.parameters()) + list(head.parameters()), lr=0.01)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        value = criterion(scores_of(body(x)), y)
        value.backward()
        opt.step()
        losses.append(float(value.detach()))
    assert losses[-1] < losses[0]
    accuracy = float((scores_of(body(x)).argmax(1) == y).float().mean())
    assert accuracy > 0.6, accuracy  # chance: 1 / 4
