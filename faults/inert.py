"""Inert weight words: stored weights that no output can depend on, for the inputs at hand.

A word of a convolution or fully connected weight enters the forward pass only through products
``w * x``. When every input value it is ever multiplied with is zero (a 3x3 kernel's taps that
only cover zero padding, as 8 of the 9 taps of every 3x3 convolution on torchvision resnet18's
1x1 layer-4 maps at 32x32 inputs do; an input channel or feature that is zero for every
evaluation input, as a dead ReLU unit is), any *finite* value of the word gives the same products
(``±0``), so the same sums and the same outputs: a fault that leaves such a word finite is
masked, exactly, without running anything. A fault that makes it Inf or NaN is not masked
(``Inf * 0`` is NaN) and runs like any other.

The argument holds for kernels that form each product (direct, im2col/GEMM, implicit GEMM).
A transform-based convolution (Winograd, FFT) mixes the weights before multiplying, so a huge
weight can change its output in floating point. So :func:`find_inert` tests the kernel each
layer actually runs: on each call's real input it recomputes the layer with every inert word of
that call set to the largest finite magnitude, with the sign opposite to the word's (once per
input shape: the kernel a library picks depends on the shapes), and keeps the layer's inert
words only if that output equals the fault-free output exactly; otherwise nothing in the layer
is pruned (``reasons`` says why). Outputs are equal *as values*: a zero may change its sign
(``-0.0 == 0.0``), which no top-1 decision can see. Kernels that skip zero operands or padding
(some CPU kernels do) are product-wise too; they are also why a flip to Inf/NaN in an inert
word is run rather than decided: whether ``Inf * 0`` is ever formed depends on the kernel.

What reads a weight is recorded with a :class:`~torch.overrides.TorchFunctionMode` over one
forward pass per evaluation batch, matching tensors by storage (so views count). A site is
analysed only if every read of its storage is the ``weight`` argument of ``conv1d/2d/3d`` or
``linear`` (shape and dtype queries aside); a weight also read by anything else (a bias, a
weight-standardisation, a check on the host, a tied layer of another kind) is not pruned.

>>> import torch
>>> from torch import nn
>>> from trustbench.faults.inert import find_inert
>>> from trustbench.faults.sites import weight_sites
>>> net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Flatten(), nn.Linear(4, 3)).eval()
>>> found = find_inert(net, weight_sites(net), [torch.rand(8, 2, 1, 1)])
>>> found.fraction(0)  # on 1x1 inputs only the centre tap of the 3x3 kernel reads data
0.8888888888888888
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from trustbench.faults.sites import WeightSite

_CONV_FUNCS: dict[Any, int] = {torch.conv1d: 1, torch.conv2d: 2, torch.conv3d: 3,
                               F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_LINEAR_FUNCS = {F.linear, torch._C._nn.linear}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_LINEAR_ARGS = ("input", "weight", "bias")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Tensor methods and attributes that read no stored value.
_META_METHODS = frozenset({"size", "dim", "numel", "nelement", "is_contiguous", "stride",
                           "element_size", "get_device", "is_floating_point", "is_complex",
                           "data_ptr", "storage_offset", "untyped_storage", "__len__"})
_META_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "requires_grad", "is_cuda",
                         "layout", "is_sparse", "is_quantized", "is_meta", "grad_fn",
                         "is_leaf", "names", "is_mkldnn", "grad"})


@dataclass
class InertWeights:
    """Which words of each weight site are inert on the evaluation inputs.

    Attributes
    ----------
    masks
        Per site: a flat bool tensor on the site's device (True: inert), or None where the site
        was not analysed.
    reasons
        Per site: ``""`` when analysed, else why not.
    """

    masks: list[torch.Tensor | None]
    reasons: list[str]

    def fraction(self, s: int) -> float | None:
        """Share of site ``s``'s words that are inert (None: not analysed)."""
        m = self.masks[s]
        return None if m is None else int(m.sum()) / max(1, m.numel())


def _is_metadata(func: Callable) -> bool:
    name = getattr(func, "__name__", "")
    if name == "__get__":
        return getattr(getattr(func, "__self__", None), "__name__", None) in _META_ATTRS
    return name in _META_METHODS


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _tuple(v: Any, nd: int) -> tuple[int, ...]:
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * nd


def _conv_pads(padding: Any, nd: int, kernel: tuple[int, ...],
               dilation: tuple[int, ...]) -> list[tuple[int, int]]:
    """(before, after) zero padding per spatial dimension, as the convolution applies it."""
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":  # torch pads the extra element at the end
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in _tuple(padding, nd)]


def conv_reads(x: torch.Tensor, weight_shape: Sequence[int], stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1) -> torch.Tensor:
    """Which words of a convolution weight multiply at least one nonzero input value.

    Parameters
    ----------
    x
        The convolution's input, ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.
    weight_shape
        ``(C_out, C_in / groups, *kernel)``.
    stride, padding, dilation, groups
        As for :func:`torch.nn.functional.conv2d` (padding may be ``"same"`` or ``"valid"``).

    Returns
    -------
    torch.Tensor
        Bool, ``weight_shape``, on ``x``'s device.
    """
    nd = len(weight_shape) - 2
    kernel = tuple(int(k) for k in weight_shape[2:])
    st, dl = _tuple(stride, nd), _tuple(dilation, nd)
    pads = _conv_pads(padding, nd, kernel, dl)
    nz = x != 0
    if nz.dim() == nd + 2:
        nz = nz.any(dim=0)
    flat_pad = [p for pair in reversed(pads) for p in pair]
    nz = F.pad(nz.to(torch.uint8), flat_pad)  # (C, *padded spatial), padding reads zeros
    c_in = nz.shape[0]
    out = [(nz.shape[1 + i] - dl[i] * (kernel[i] - 1) - 1) // st[i] + 1 for i in range(nd)]
    reads = torch.zeros((c_in, *kernel), dtype=torch.bool, device=x.device)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                       for t, d, o, s in zip(tap, dl, out, st))
        reads[(slice(None), *tap)] = nz[(slice(None), *window)].reshape(c_in, -1).any(dim=1)
    c_out = int(weight_shape[0])
    per_group = reads.view(groups, c_in // groups, *kernel)
    return per_group.repeat_interleave(c_out // groups, dim=0)


def linear_reads(x: torch.Tensor, weight_shape: Sequence[int]) -> torch.Tensor:
    """Which words of a linear weight ``(out, in)`` multiply at least one nonzero input."""
    nz = (x != 0).reshape(-1, x.shape[-1]).any(dim=0)
    return nz.unsqueeze(0).expand(int(weight_shape[0]), -1).clone()


def _leaves(v: Any) -> Iterator[Any]:
    """The non-container values inside nested lists, tuples and dicts."""
    if isinstance(v, (list, tuple)):
        for item in v:
            yield from _leaves(item)
    elif isinstance(v, dict):
        for item in v.values():
            yield from _leaves(item)
    else:
        yield v


class _Recorder(TorchFunctionMode):
    """Records, per site, what reads its storage, and runs the kernel probes."""

    def __init__(self, sites: Sequence[WeightSite]) -> None:
        super().__init__()
        self.sites = list(sites)
        self.by_ptr = {s.tensor.untyped_storage().data_ptr(): i for i, s in enumerate(sites)}
        self.reads: list[torch.Tensor | None] = [None] * len(sites)
        self.reasons: list[str] = [""] * len(sites)
        self.used = [False] * len(sites)
        self.probed: set[tuple] = set()

    def _site_of(self, t: Any) -> int | None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return None
        try:
            return self.by_ptr.get(t.untyped_storage().data_ptr())
        except (RuntimeError, NotImplementedError):
            return None

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _is_metadata(func):
            return out
        hits = [(k, i) for k, v in [*enumerate(args), *kwargs.items()]
                if (i := self._site_of(v)) is not None]
        # a weight inside a list or dict argument (torch.stack, torch.cat, _foreach_*) is read
        # by something this analysis does not model
        nested = {i for v in [*args, *kwargs.values()] if isinstance(v, (list, tuple, dict))
                  for leaf in _leaves(v) if (i := self._site_of(leaf)) is not None}
        for i in nested:
            self.used[i] = True
            if not self.reasons[i]:
                self.reasons[i] = (f"also read by {getattr(func, '__name__', repr(func))} "
                                   "(inside a list or dict argument)")
        if not hits:
            return out
        nd = _CONV_FUNCS.get(func)
        is_linear = func in _LINEAR_FUNCS
        names = _CONV_ARGS if nd else _LINEAR_ARGS
        bound = _bind(names, args, kwargs) if (nd or is_linear) else {}
        weight = bound.get("weight")
        for key, i in hits:
            self.used[i] = True
            if self.reasons[i]:
                continue
            at_weight = bool(nd or is_linear) and key in (1, "weight")
            if not at_weight or weight is not self.sites[i].tensor:
                how = "through a view or copy" if at_weight else \
                    "not as a convolution/linear weight"
                self.reasons[i] = (f"also read by {getattr(func, '__name__', repr(func))} "
                                   f"({how})")
                continue
            self._record(i, func, bound, out, nd)
        return out

    def _record(self, i: int, func: Callable, bound: dict[str, Any], out: Any,
                nd: int | None) -> None:
        w = self.sites[i].tensor
        x = bound["input"]
        if w.dtype not in _FLOATS or not isinstance(out, torch.Tensor):
            self.reasons[i] = f"dtype {w.dtype} is not analysed (floating-point weights only)"
            return
        if nd:
            reads = conv_reads(x, w.shape, bound.get("stride", 1), bound.get("padding", 0),
                               bound.get("dilation", 1), int(bound.get("groups", 1)))
        else:
            reads = linear_reads(x, w.shape)
        inert = ~reads
        shape_key = (i, tuple(x.shape), x.dtype)  # one probe per kernel choice, not per batch
        if shape_key not in self.probed and bool(inert.any()):
            self.probed.add(shape_key)
            big = torch.full((), torch.finfo(w.dtype).max, dtype=w.dtype, device=w.device)
            probe = torch.where(inert, torch.copysign(big, w).neg_(), w)
            if not torch.equal(func(**{**bound, "weight": probe}), out):
                self.reasons[i] = ("the layer's kernel does not form each product (a huge "
                                   "weight that multiplies only zeros changed its output: "
                                   "a transform-based convolution?)")
                return
        prev = self.reads[i]
        self.reads[i] = reads if prev is None else (prev | reads)

@torch.no_grad()
def find_inert(model: nn.Module, sites: Sequence[WeightSite],
               batches: Sequence[torch.Tensor]) -> InertWeights:
    """Find the inert words of ``sites`` over the evaluation ``batches`` (see the module doc).

    Runs ``model`` once per batch (the batches as the campaign runs them, so that the probed
    kernels are the ones the campaign uses) under the caller's precision settings.
    """
    rec = _Recorder(sites)
    with rec:
        for xb in batches:
            model(xb)
    masks: list[torch.Tensor | None] = []
    reasons: list[str] = []
    for i in range(len(rec.sites)):
        reads = rec.reads[i]
        if not rec.used[i]:
            masks.append(None)
            reasons.append("not read in the forward pass")
        elif rec.reasons[i] or reads is None:
            masks.append(None)
            reasons.append(rec.reasons[i] or "not analysed")
        else:
            masks.append((~reads).reshape(-1))
            reasons.append("")
    return InertWeights(masks, reasons)


def inert_faults(inert: InertWeights, flats: Sequence[torch.Tensor], dtypes: Sequence[Any],
                 site: Any, element: Any, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per fault (in the order of ``site``), whether it hits an inert word and leaves it finite.

    ``masks`` are the per-site XOR masks in the order of that site's faults (as
    :meth:`.engine.WeightFaultEngine.xor_masks` returns them); ``flats`` the sites' integer
    views; ``dtypes`` their float dtypes. Returns a bool tensor on the host.
    """
    site = np.asarray(site)
    result = torch.zeros(len(site), dtype=torch.bool)
    parts, where = [], []
    for s, m in enumerate(inert.masks):
        sel = np.flatnonzero(site == s)
        if m is None or len(sel) == 0:
            continue
        idx = torch.from_numpy(np.asarray(element)[sel].astype(np.int64)).to(m.device)
        new = (flats[s].index_select(0, idx) ^ masks[s]).view(dtypes[s])
        parts.append(m.index_select(0, idx) & torch.isfinite(new))
        where.append(torch.from_numpy(sel))
    if parts:
        result[torch.cat(where)] = torch.cat(parts).cpu()  # one transfer per chunk
    return result
