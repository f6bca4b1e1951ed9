"""losskit.torch: LossKit's losses as PyTorch autograd functions and modules.

    >>> import torch, losskit.torch as lkt
    >>> scores = torch.randn(8, 5, requires_grad=True)
    >>> lkt.dense(scores, torch.randint(0, 5, (8,)), loss="softmax_margin").backward()

Importing this module imports torch; ``import losskit`` never does.

Design: each function is a ``torch.autograd.Function`` whose forward calls the NumPy API
(losskit.dense, lists, chain, lsoftmax) on the tensors' own memory and keeps the gradient that
the library computed in the same pass; backward multiplies it by the upstream gradient. So one
library call serves forward and backward, and nothing is computed when no input needs a
gradient (evaluation, ``torch.no_grad()``).

Conventions:
  - Tensors must be on the CPU (LossKit computes on the CPU); a CUDA tensor is a ValueError.
    Contiguous CPU tensors are read in place (``Tensor.numpy()``), others are made contiguous.
  - float64 is computed in double, float32 in float; float16 and bfloat16 are computed in
    float32, and the loss and gradient are returned in the input's dtype. Dense rows read
    bfloat16 scores in place (lk_dense_bf16: no float32 copy); their gradient is kept in float32
    and rounded once to bfloat16 after the upstream gradient is applied.
  - reduction "mean" and "sum" return a scalar, "none" one loss per example; each composes with
    autograd under any upstream gradient. For "none" the gradient of example i is scaled by its
    own upstream entry g_i. Parameters shared by the examples (a chain's transitions, start and
    end; L-Softmax's class weights) need sum_i g_i dL_i/dtheta, which the library gives only
    for weights >= 0: when the g_i are not all equal, backward calls the library twice more
    under reduction "sum", once over the examples with g_i > 0 (weight w_i g_i) and once over
    those with g_i < 0 (weight w_i |g_i|), and subtracts the second (examples with g_i = 0 are
    skipped, each other example is computed once).
  - Only the scores (emissions, transitions, start, end; x and the class weights) are
    differentiated; gold, cost and weight are data, and a cost or weight that requires grad
    is a ValueError rather than a silently zero gradient.
  - Double backward is not supported.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import nn

from . import _chains, _dense, _lists, _lsoftmax, _vocab

__all__ = ["dense", "lists", "chain", "lsoftmax", "DenseLoss", "ListsLoss", "ChainLoss", "LSoftmax",
           "CRF", "Constraints", "allowed_transitions", "transition_constraints",
           "vocab_parallel_cross_entropy"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_REDUCTIONS = ("mean", "sum", "none")


def _array(t, name: str):
    """A CPU tensor's data as a NumPy array, in place when it is contiguous (float16 and
    bfloat16 as float32); None stays None; anything else goes through np.asarray."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        return np.asarray(t)
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}: LossKit computes on the CPU; move the inputs "
                         "with .cpu() (the loss and its gradient come back on the CPU)")
    t = t.detach()
    if t.dtype in _LOW_PRECISION:
        t = t.float()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


def _bfloat16_bits(t, name: str) -> np.ndarray:
    """A CPU bfloat16 tensor's bits as a uint16 NumPy array, in place when it is contiguous."""
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}: LossKit computes on the CPU; move the inputs "
                         "with .cpu() (the loss and its gradient come back on the CPU)")
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.view(torch.int16).numpy().view(np.uint16)


def _data(t, name: str):
    """_array for an input that is not differentiated (gold, cost, weight, lengths)."""
    return _array(t, name)


def _not_differentiated(**inputs) -> None:
    """A ValueError for a data input (cost, weight) that requires grad: its gradient would
    otherwise be silently zero."""
    if torch.is_grad_enabled():
        for name, t in inputs.items():
            if isinstance(t, torch.Tensor) and t.requires_grad:
                raise ValueError(f"{name} requires grad, but LossKit differentiates only the scores: "
                                 f"pass {name}.detach()")


def _track(*inputs) -> bool:
    """Whether autograd will want a gradient: grad mode is on (forward runs with it off, so this
    is decided before apply) and some differentiable input requires grad."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs)


def _reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {list(_REDUCTIONS)}")
    return reduction


def _loss_tensor(value, dtype) -> torch.Tensor:
    """The library's loss (a NumPy scalar or (n,) array) as a tensor of the input's dtype."""
    return torch.from_numpy(np.asarray(value)).to(dtype)


def _grad(array, like: torch.Tensor) -> torch.Tensor:
    """A gradient from the library as a tensor of like's dtype (no copy when it matches)."""
    return torch.from_numpy(array).to(like.dtype)


def _scaled(grad: torch.Tensor, g: torch.Tensor, reduction: str, dtype) -> torch.Tensor:
    """grad times the upstream gradient: a scalar for "mean"/"sum", example i's entry on its
    rows (the leading axis) for "none"."""
    g = g.to(grad.dtype)
    if reduction == "none":
        g = g.reshape((-1,) + (1,) * (grad.dim() - 1))
    return (grad * g).to(dtype)


def _signed_sum(g: np.ndarray, weight, call):
    """sum_i g_i dL_i/dtheta of the shared parameters from calls under reduction "sum" with
    weights >= 0: call(index, weights) returns the shared gradients of the examples `index`
    weighted by `weights`; the g_i < 0 group is subtracted."""
    w = np.ones(g.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    total = None
    for sign, index in ((1.0, np.flatnonzero(g > 0)), (-1.0, np.flatnonzero(g < 0))):
        if index.size == 0:
            continue
        parts = call(index, w[index] * np.abs(g[index]))
        parts = [None if p is None else sign * p.astype(np.float64) for p in parts]
        total = parts if total is None else [None if a is None else a + b for a, b in zip(total, parts)]
    return total


# ------------------------------------------------------------------------------------------------
# Dense rows and candidate lists
# ------------------------------------------------------------------------------------------------

class _DenseFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, gold, cost, weight, reduction, options, track):
        need = track and ctx.needs_input_grad[0]
        if scores.dtype == torch.bfloat16:
            # lk_dense_bf16 on the bits (no float32 copy of the scores); the gradient in float32,
            # rounded once to bfloat16 after the upstream gradient is applied (backward).
            r = _dense.dense(_bfloat16_bits(scores, "scores"), _data(gold, "gold"), cost=_data(cost, "cost"),
                             weight=_data(weight, "weight"), reduction=reduction, with_grad=need,
                             dtype="bfloat16", grad_dtype="float32" if need else None, **options)
        else:
            r = _dense.dense(_array(scores, "scores"), _data(gold, "gold"), cost=_data(cost, "cost"),
                             weight=_data(weight, "weight"), reduction=reduction, with_grad=need,
                             **options)
        ctx.reduction, ctx.dtype = reduction, scores.dtype
        ctx.grad = torch.from_numpy(r.grad) if need else None
        return _loss_tensor(r.loss, scores.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        return _scaled(ctx.grad, g, ctx.reduction, ctx.dtype), None, None, None, None, None, None


class _ListsFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, offsets, gold, cost, weight, reduction, options, track):
        need = track and ctx.needs_input_grad[0]
        r = _lists.lists(_array(scores, "scores"), _data(offsets, "offsets"), _data(gold, "gold"),
                         cost=_data(cost, "cost"), weight=_data(weight, "weight"),
                         reduction=reduction, with_grad=need, **options)
        ctx.reduction, ctx.dtype = reduction, scores.dtype
        ctx.grad = torch.from_numpy(r.grad) if need else None
        if need and reduction == "none":
            ctx.offsets = np.asarray(_data(offsets, "offsets"), dtype=np.int64)
        return _loss_tensor(r.loss, scores.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        if ctx.reduction == "none":
            # Candidate j of list i gets g_i: repeat each g_i over its list's length.
            counts = torch.from_numpy(np.diff(ctx.offsets))
            g = torch.repeat_interleave(g.to(ctx.grad.dtype), counts)
            return (ctx.grad * g).to(ctx.dtype), None, None, None, None, None, None, None
        return _scaled(ctx.grad, g, ctx.reduction, ctx.dtype), None, None, None, None, None, None, None


def dense(scores, gold, *, loss="log", reduction="mean", cost=None, weight=None, **options):
    """losskit.dense as a differentiable function of ``scores`` (n, k): the loss ("mean"/"sum": a
    scalar; "none": (n,)). ``options`` are losskit.dense's (cost_layout, cost_scale,
    ignore_label, label_smoothing, square_k, square_m, hope, fear, hope_scale, fear_scale,
    angular_scale, angular_margin, threads)."""
    options["loss"] = loss
    _not_differentiated(cost=cost, weight=weight)
    return _DenseFunction.apply(scores, gold, cost, weight, _reduction(reduction), options, _track(scores))


def lists(scores, offsets, gold, *, loss="log", reduction="mean", cost=None, weight=None, **options):
    """losskit.lists as a differentiable function of the flat candidate ``scores`` (total,);
    ``offsets`` (n + 1,) delimit the lists. ``options`` as in losskit.lists."""
    options["loss"] = loss
    _not_differentiated(cost=cost, weight=weight)
    return _ListsFunction.apply(scores, offsets, gold, cost, weight, _reduction(reduction), options,
                                _track(scores))


class _VocabParallelFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, weight, reduction, k, k_offset, group, options, track):
        import torch.distributed as dist

        def reducer(op):
            def reduce(a):
                dist.all_reduce(torch.from_numpy(a), op=op, group=group)  # in place, on a's memory
            return reduce

        need = track and ctx.needs_input_grad[0]
        r = _vocab.vocab_parallel(_array(logits, "logits"), _data(target, "target"), k=k, k_offset=k_offset,
                                  all_reduce_max=reducer(dist.ReduceOp.MAX),
                                  all_reduce_sum=reducer(dist.ReduceOp.SUM), weight=_data(weight, "weight"),
                                  reduction=reduction, with_grad=need, **options)
        ctx.reduction, ctx.dtype = reduction, logits.dtype
        ctx.grad = torch.from_numpy(r.grad) if need else None
        return _loss_tensor(r.loss, logits.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        # Each process's columns only: no communication.
        return (_scaled(ctx.grad, g, ctx.reduction, ctx.dtype),) + (None,) * 8


def vocab_parallel_cross_entropy(logits, target, *, group=None, k=None, k_offset=None, loss="log",
                                 reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None,
                                 z_loss=0.0, softcap=None, **options):
    """Cross-entropy (or another gold-hope dense loss) over logits whose classes are split across
    the processes of a torch.distributed group (Megatron-LM's vocab_parallel_cross_entropy, on the
    CPU): ``logits`` (n, k_local) are this process's columns [k_offset, k_offset + k_local) of
    the (n, k) logits; ``target`` (n,) holds global classes. Returns the loss of the whole rows (the
    same on every process); backward writes the gradient of this process's columns, with no
    communication. The forward makes two all-reduces of a few float64 values per row (MAX, then
    SUM; one more MAX for "hinge" / "perceptron"), see losskit.vocab_parallel.

    k and k_offset default to the processes' shards in rank order (an all-gather of each
    process's k_local, once per call, when either is not given). ``loss`` is "log" (default),
    "softmax_margin", "hinge", "perceptron" or "hope_fear" (hope "gold"); ignore_index,
    label_smoothing, weight (per example, the same on every process), z_loss and softcap as in
    losskit.torch.dense; other options (cost, cost_layout, cost_scale, threads, ...) as in
    losskit.vocab_parallel. Every process of the group must call it with the same target and
    options."""
    import torch.distributed as dist

    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (n, k_local), got shape {tuple(logits.shape)}")
    if k is None or k_offset is None:
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size(group))]
        dist.all_gather(sizes, torch.tensor([logits.shape[1]], dtype=torch.int64), group=group)
        sizes = [int(t) for t in sizes]
        rank = dist.get_rank(group)
        k = sum(sizes) if k is None else k
        k_offset = sum(sizes[:rank]) if k_offset is None else k_offset
    options.update(loss=loss, ignore_label=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss,
                   softcap=softcap)
    _not_differentiated(weight=weight, cost=options.get("cost"))
    if isinstance(options.get("cost"), torch.Tensor):
        options["cost"] = _data(options["cost"], "cost")
    return _VocabParallelFunction.apply(logits, target, weight, _reduction(reduction), int(k), int(k_offset), group,
                                        options, _track(logits))


class DenseLoss(nn.Module):
    """A LossKit loss over class scores as a module: ``DenseLoss("hinge")(scores, gold)``.
    Keyword options as losskit.dense; cost (per-example or class matrix) and weight may be given
    to the constructor (fixed) or to forward (per batch)."""

    def __init__(self, loss: str = "log", *, reduction: str = "mean", cost=None, **options):
        super().__init__()
        self.loss, self.reduction, self.cost, self.options = loss, _reduction(reduction), cost, options

    def forward(self, scores, gold, *, cost=None, weight=None):
        return dense(scores, gold, loss=self.loss, reduction=self.reduction,
                     cost=self.cost if cost is None else cost, weight=weight, **self.options)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, reduction={self.reduction!r}"


class ListsLoss(nn.Module):
    """A LossKit loss over candidate lists as a module: forward(scores, offsets, gold, cost=,
    weight=)."""

    def __init__(self, loss: str = "log", *, reduction: str = "mean", **options):
        super().__init__()
        self.loss, self.reduction, self.options = loss, _reduction(reduction), options

    def forward(self, scores, offsets, gold, *, cost=None, weight=None):
        return lists(scores, offsets, gold, loss=self.loss, reduction=self.reduction, cost=cost,
                     weight=weight, **self.options)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, reduction={self.reduction!r}"


# ------------------------------------------------------------------------------------------------
# Linear chains
# ------------------------------------------------------------------------------------------------

class _ChainFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emissions, transitions, start, end, lengths, gold, cost, weight, reduction, options, track):
        need = track and any(ctx.needs_input_grad[:4])
        args = dict(emissions=_array(emissions, "emissions"), transitions=_array(transitions, "transitions"),
                    start=_array(start, "start"), end=_array(end, "end"), lengths=_data(lengths, "lengths"),
                    gold=_data(gold, "gold"), cost=_data(cost, "cost"), weight=_data(weight, "weight"))
        r = _chains.chain(args["emissions"], args["transitions"], args["lengths"], args["gold"],
                          start=args["start"], end=args["end"], cost=args["cost"], weight=args["weight"],
                          reduction=reduction, with_grad=need, **options)
        ctx.reduction, ctx.options = reduction, options
        ctx.inputs = (emissions, transitions, start, end)
        ctx.grads = r[1:] if need else None
        if need and reduction == "none" and any(ctx.needs_input_grad[1:4]):
            ctx.args = args  # for the shared parameters under unequal upstream gradients
        return _loss_tensor(r.loss, emissions.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        d_em, d_tr, d_st, d_en = ctx.grads
        emissions, transitions, start, end = ctx.inputs
        out = [None] * 11
        if ctx.needs_input_grad[0]:
            out[0] = _scaled(torch.from_numpy(d_em), g, ctx.reduction, emissions.dtype)
        shared = [d_tr, d_st, d_en]
        if any(ctx.needs_input_grad[1:4]):
            gn = g.detach().to(torch.float64).numpy()
            if ctx.reduction != "none" or (gn.size and np.all(gn == gn.flat[0])):
                c = float(gn.flat[0]) if gn.size else 0.0
                shared = [c * x.astype(np.float64) for x in shared]
            else:
                shared = _chain_signed(ctx.args, ctx.options, gn)
            for j, (t, d) in enumerate(zip((transitions, start, end), shared), start=1):
                if ctx.needs_input_grad[j]:
                    out[j] = torch.from_numpy(np.asarray(d)).to(t.dtype)
        return tuple(out)


def _chain_signed(args: dict, options: dict, g: np.ndarray):
    """sum_i g_i dL_i/d(transitions, start, end) for signed g (see _signed_sum)."""
    def call(index, weights):
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        r = _chains.chain(pick(args["emissions"]), args["transitions"], pick(args["lengths"]),
                          pick(args["gold"]), start=args["start"], end=args["end"],
                          cost=pick(args["cost"]), weight=weights, reduction="sum", **options)
        return r.d_transitions, r.d_start, r.d_end
    total = _signed_sum(g, args["weight"], call)
    if total is None:  # every g_i = 0
        tags = args["transitions"].shape[0]
        total = [np.zeros((tags, tags)), np.zeros(tags), np.zeros(tags)]
    return total


def chain(emissions, transitions, lengths, gold, *, start=None, end=None, loss="log", reduction="mean",
          cost=None, weight=None, **options):
    """losskit.chain as a differentiable function of emissions (n, t_max, tags), transitions
    (tags, tags) and the optional start, end (tags,): the loss (loss="log" is the CRF negative
    log-likelihood). ``options`` as in losskit.chain (cost_scale, hope, fear, hope_scale,
    fear_scale, threads)."""
    options["loss"] = loss
    _not_differentiated(cost=cost, weight=weight)
    return _ChainFunction.apply(emissions, transitions, start, end, lengths, gold, cost, weight,
                                _reduction(reduction), options, _track(emissions, transitions, start, end))


class ChainLoss(nn.Module):
    """A LossKit chain loss as a module over given transitions: forward(emissions, transitions,
    lengths, gold, start=, end=, cost=, weight=). The CRF module owns its transitions."""

    def __init__(self, loss: str = "log", *, reduction: str = "mean", **options):
        super().__init__()
        self.loss, self.reduction, self.options = loss, _reduction(reduction), options

    def forward(self, emissions, transitions, lengths, gold, *, start=None, end=None, cost=None, weight=None):
        return chain(emissions, transitions, lengths, gold, start=start, end=end, loss=self.loss,
                     reduction=self.reduction, cost=cost, weight=weight, **self.options)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, reduction={self.reduction!r}"


# ------------------------------------------------------------------------------------------------
# L-Softmax
# ------------------------------------------------------------------------------------------------

class _LSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, gold, weight, reduction, options, track):
        need = track and any(ctx.needs_input_grad[:2])
        xa, wa, ga, wt = _array(x, "x"), _array(w, "w"), _data(gold, "gold"), _data(weight, "weight")
        r = _lsoftmax.lsoftmax(xa, wa, ga, weight=wt, reduction=reduction, with_grad=need, **options)
        ctx.reduction, ctx.options, ctx.inputs = reduction, options, (x, w)
        ctx.grads = (r.d_x, r.d_w) if need else None
        if need and reduction == "none" and ctx.needs_input_grad[1]:
            ctx.args = (xa, wa, ga, wt)
        return _loss_tensor(r.loss, x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        d_x, d_w = ctx.grads
        x, w = ctx.inputs
        out = [None] * 7
        if ctx.needs_input_grad[0]:
            out[0] = _scaled(torch.from_numpy(d_x), g, ctx.reduction, x.dtype)
        if ctx.needs_input_grad[1]:
            gn = g.detach().to(torch.float64).numpy()
            if ctx.reduction != "none" or (gn.size and np.all(gn == gn.flat[0])):
                d = (float(gn.flat[0]) if gn.size else 0.0) * d_w.astype(np.float64)
            else:
                xa, wa, ga, wt = ctx.args

                def call(index, weights):
                    r = _lsoftmax.lsoftmax(xa[index], wa, ga[index], weight=weights, reduction="sum",
                                           **ctx.options)
                    return (r.d_w,)
                total = _signed_sum(gn, wt, call)
                d = np.zeros(wa.shape) if total is None else total[0]
            out[1] = torch.from_numpy(np.asarray(d)).to(w.dtype)
        return tuple(out)


def lsoftmax(x, w, gold, *, margin=2, lam=0.0, reduction="mean", weight=None, ignore_label=-100, threads=0):
    """losskit.lsoftmax as a differentiable function of the features x (n, d) and the class
    weights w (k, d)."""
    options = dict(margin=margin, lam=lam, ignore_label=ignore_label, threads=threads)
    _not_differentiated(weight=weight)
    return _LSoftmaxFunction.apply(x, w, gold, weight, _reduction(reduction), options, _track(x, w))


class LSoftmax(nn.Module):
    """L-Softmax [Liu et al. 2016] as the last layer of a classifier: it owns the class weights
    (``self.weight``, (num_classes, in_features), laid out as nn.Linear's weight, so a trained
    nn.Linear's weight can be copied in) and returns the loss. ``lam`` may be changed between
    steps (anneal it from large to 0). forward(x, gold, weight=None): ``weight`` there is the
    per-example weight, as everywhere in LossKit. ``logits(x)`` gives x @ weight.T for
    prediction (the margin applies only in training)."""

    def __init__(self, in_features: int, num_classes: int, *, margin: int = 2, lam: float = 0.0,
                 reduction: str = "mean", ignore_label: int = -100, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features, dtype=dtype))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's initialisation
        self.margin, self.lam, self.reduction, self.ignore_label = margin, lam, _reduction(reduction), ignore_label

    def forward(self, x, gold, weight=None):
        return lsoftmax(x, self.weight, gold, margin=self.margin, lam=self.lam, reduction=self.reduction,
                        weight=weight, ignore_label=self.ignore_label)

    def logits(self, x):
        return x @ self.weight.T

    def extra_repr(self) -> str:
        k, d = self.weight.shape
        return f"in_features={d}, num_classes={k}, margin={self.margin}, lam={self.lam}"


# ------------------------------------------------------------------------------------------------
# Tagging-scheme constraints
# ------------------------------------------------------------------------------------------------

class Constraints(NamedTuple):
    """What a tagging scheme allows: transitions[i, j] (tag i followed by tag j), start[j] (a
    sequence may begin with j), end[i] (a sequence may end with i); bool tensors."""

    transitions: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor


# The scheme's tags, and its rules on (tag, entity) pairs; an entity is the label without its
# first letter ("B-PER" -> "B", "-PER"; "O" -> "O", ""). The rules are AllenNLP's
# (allennlp.modules.conditional_random_field.allowed_transitions).
_SCHEMES = {
    # BIO: I-x continues B-x or I-x; anything may be followed by O or B-x.
    "BIO": (("B", "I", "O"), ("O", "B"), ("O", "B", "I")),
    # IOB1: B-x only separates two adjacent entities of type x; a span starts with I-x.
    "IOB1": (("B", "I", "O"), ("O", "I"), ("O", "B", "I")),
    # BIOUL: B-x (I-x)* L-x spans and single-token U-x.
    "BIOUL": (("B", "I", "O", "U", "L"), ("O", "B", "U"), ("O", "L", "U")),
    # BMES: B-x (M-x)* E-x spans and single S-x; no outside tag.
    "BMES": (("B", "M", "E", "S"), ("B", "S"), ("E", "S")),
}


def _follows(scheme: str, a: str, ea: str, b: str, eb: str) -> bool:
    """Whether tag b (entity eb) may follow tag a (entity ea) under the scheme."""
    same = ea == eb
    if scheme == "BIO":
        return b in ("O", "B") or (b == "I" and a in ("B", "I") and same)
    if scheme == "IOB1":
        return b in ("O", "I") or (b == "B" and a in ("B", "I") and same)
    if scheme == "BIOUL":
        return (a in ("O", "L", "U") and b in ("O", "B", "U")) or (a in ("B", "I") and b in ("I", "L") and same)
    # BMES
    return (a in ("E", "S") and b in ("B", "S")) or (a in ("B", "M") and b in ("M", "E") and same)


def allowed_transitions(scheme: str, labels) -> Constraints:
    """The transitions, first tags and last tags a tagging scheme allows, as bool tensors.

    Args:
      scheme: "BIO", "IOB1", "BIOUL" or "BMES" (AllenNLP's semantics).
      labels: the label of each tag id, a sequence ("O", "B-PER", "I-PER", ...) or a dict
        {tag id: label}. A label's first letter is its tag, the rest its entity type.

    Returns:
      Constraints(transitions (L, L), start (L,), end (L,)), True where allowed.
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {sorted(_SCHEMES)}")
    if isinstance(labels, dict):
        if sorted(labels) != list(range(len(labels))):
            raise ValueError(f"labels must map the tag ids 0..{len(labels) - 1}, got keys {sorted(labels)}")
        labels = [labels[i] for i in range(len(labels))]
    tags, starts, ends = _SCHEMES[scheme]
    parts = []
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label or label[0] not in tags:
            raise ValueError(f"labels[{i}] = {label!r} does not start with a tag of {scheme} {tags}")
        parts.append((label[0], label[1:]))
    n = len(parts)
    transitions = torch.tensor([[_follows(scheme, a, ea, b, eb) for (b, eb) in parts] for (a, ea) in parts],
                               dtype=torch.bool).reshape(n, n)
    start = torch.tensor([a in starts for a, _ in parts], dtype=torch.bool)
    end = torch.tensor([a in ends for a, _ in parts], dtype=torch.bool)
    return Constraints(transitions, start, end)


def transition_constraints(scheme: str, labels, dtype=torch.float32) -> Constraints:
    """allowed_transitions as scores to add: 0 where allowed, -inf where forbidden (LossKit reads
    -inf as a forbidden transition, first or last tag)."""
    allowed = allowed_transitions(scheme, labels)
    return Constraints(*[torch.zeros(a.shape, dtype=dtype).masked_fill(~a, float("-inf")) for a in allowed])


# ------------------------------------------------------------------------------------------------
# CRF
# ------------------------------------------------------------------------------------------------

class CRF(nn.Module):
    """A linear-chain CRF layer in the shape of pytorch-crf's ``torchcrf.CRF`` (and AllenNLP's
    ConditionalRandomField), computed by LossKit.

    Parameters (as pytorch-crf): ``transitions`` (num_tags, num_tags) [from, to],
    ``start_transitions`` and ``end_transitions`` (num_tags,), initialised uniformly in
    [-0.1, 0.1].

    Differences from pytorch-crf:
      - forward returns the LOSS; with loss="log" (the default) that is the negative
        log-likelihood, so ``loss = crf(emissions, tags, mask)`` replaces pytorch-crf's
        ``loss = -crf(emissions, tags, mask)``. Any chain loss of LossKit may be chosen
        ("hinge", "softmax_margin", "risk", ... with their options).
      - a length-0 sequence is allowed (loss 0); a mask must be a prefix (ones then zeros), and
        ``lengths=`` may be given instead of a mask.

    Args:
      num_tags: the number of tags.
      batch_first: as pytorch-crf: False means (seq_len, batch, num_tags) emissions and
        (seq_len, batch) tags and mask; True means (batch, seq_len, ...).
      loss: the chain loss ("log", "perceptron", "hinge", "softmax_margin", "risk", "ramp",
        "soft_ramp", "infinite_ramp", "hope_fear"); ``options`` are its losskit.chain options.
      constraints: None, or a Constraints (allowed_transitions(scheme, labels)): forbidden
        transitions, first and last tags get -inf in training and decoding, as AllenNLP's
        ``constraints``; they never receive a gradient.
      include_start_end_transitions: False drops the start and end parameters (AllenNLP's flag).
    """

    def __init__(self, num_tags: int, batch_first: bool = False, *, loss: str = "log",
                 constraints: Optional[Constraints] = None, include_start_end_transitions: bool = True,
                 **options):
        if num_tags <= 0:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        super().__init__()
        self.num_tags, self.batch_first, self.loss, self.options = num_tags, batch_first, loss, options
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        if include_start_end_transitions:
            self.start_transitions = nn.Parameter(torch.empty(num_tags))
            self.end_transitions = nn.Parameter(torch.empty(num_tags))
        else:
            self.start_transitions = self.end_transitions = None
        bias = None
        if constraints is not None:
            allowed = Constraints(*[torch.as_tensor(a, dtype=torch.bool) for a in constraints])
            shapes = [tuple(a.shape) for a in allowed]
            if shapes != [(num_tags, num_tags), (num_tags,), (num_tags,)]:
                raise ValueError(f"constraints must have shapes ({num_tags}, {num_tags}), ({num_tags},), "
                                 f"({num_tags},), got {shapes}")
            bias = [torch.zeros(a.shape).masked_fill(~a, float("-inf")) for a in allowed]
        for name, b in zip(("transitions", "start", "end"), bias or (None,) * 3):
            self.register_buffer(f"_{name}_bias", b)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.transitions, self.start_transitions, self.end_transitions):
            if p is not None:
                nn.init.uniform_(p, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, batch_first={self.batch_first}, loss={self.loss!r}"

    def _scores(self):
        """(transitions, start, end) as the library sees them: constraints added (-inf)."""
        out = []
        for p, bias in ((self.transitions, self._transitions_bias), (self.start_transitions, self._start_bias),
                        (self.end_transitions, self._end_bias)):
            if bias is not None:
                p = bias.to(self.transitions.dtype) if p is None else p + bias.to(p.dtype)
            out.append(p)
        return out

    def _batch(self, emissions, tags=None, mask=None, lengths=None):
        """emissions (n, t, tags) batch-first, tags (n, t), lengths (n,) int32."""
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions must be 3-D with {self.num_tags} tags last, got shape "
                             f"{tuple(emissions.shape)}")
        if not self.batch_first:
            emissions = emissions.transpose(0, 1)
            tags = None if tags is None else tags.transpose(0, 1)
            mask = None if mask is None else mask.transpose(0, 1)
        n, t = emissions.shape[:2]
        if tags is not None and tuple(tags.shape) != (n, t):
            raise ValueError(f"tags must have the emissions' first two dimensions, got {tuple(tags.shape)}")
        if mask is not None and lengths is not None:
            raise ValueError("give mask or lengths, not both")
        if mask is not None:
            if tuple(mask.shape) != (n, t):
                raise ValueError(f"mask must have the emissions' first two dimensions, got {tuple(mask.shape)}")
            mask = mask.to(torch.bool)
            lengths = mask.sum(1)
            if not torch.equal(mask, torch.arange(t, device=mask.device)[None, :] < lengths[:, None]):
                raise ValueError("mask must be a prefix in each sequence (ones, then zeros)")
        elif lengths is None:
            lengths = torch.full((n,), t)
        lengths = _data(lengths, "lengths").astype(np.int32, copy=False)
        return emissions, tags, lengths

    def forward(self, emissions, tags, mask=None, reduction: str = "sum", *, lengths=None, cost=None,
                weight=None):
        """The loss of the gold tags (loss="log": the negative log-likelihood).

        reduction: "sum" (pytorch-crf's default), "mean" (over sequences, or their weight),
        "token_mean" (the sum over the number of tokens) or "none" ((batch,) losses).
        cost: (batch, seq_len, num_tags) per-position costs for the cost-aware losses, laid out
        batch-first (default: Hamming); weight: (batch,) sequence weights.
        """
        if reduction not in ("none", "sum", "mean", "token_mean"):
            raise ValueError(f"reduction={reduction!r} is not one of ['none', 'sum', 'mean', 'token_mean']")
        em, tg, ln = self._batch(emissions, tags, mask, lengths)
        tr, st, en = self._scores()
        value = chain(em, tr, ln, tg, start=st, end=en, loss=self.loss,
                      reduction="sum" if reduction == "token_mean" else reduction, cost=cost, weight=weight,
                      **self.options)
        if reduction == "token_mean":
            value = value / max(int(ln.sum()), 1)
        return value

    def decode(self, emissions, mask=None, *, lengths=None) -> list:
        """The best tag path of each sequence (Viterbi), as pytorch-crf: a list of lists of tag ids."""
        em, _, ln = self._batch(emissions, None, mask, lengths)
        tr, st, en = (None if x is None else _array(x, name) for x, name in
                      zip(self._scores(), ("transitions", "start", "end")))
        path = _chains.viterbi(_array(em, "emissions"), tr, ln, start=st, end=en).path
        return [row[:k].tolist() for row, k in zip(path, ln)]

    def marginals(self, emissions, mask=None, *, lengths=None) -> torch.Tensor:
        """p(y_t = y) of every position and tag, laid out as the emissions (0 past each length);
        not differentiable."""
        em, _, ln = self._batch(emissions, None, mask, lengths)
        tr, st, en = (None if x is None else _array(x, name) for x, name in
                      zip(self._scores(), ("transitions", "start", "end")))
        mu = torch.from_numpy(_chains.marginals(_array(em, "emissions"), tr, ln, start=st, end=en).marginals)
        mu = mu.to(emissions.dtype)
        return mu if self.batch_first else mu.transpose(0, 1)
