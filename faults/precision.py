"""Copies of a model in other precisions, and fault campaigns compared across them.

``fp32``, ``fp16`` and ``bf16`` copies cast parameters, buffers and inputs (outputs come back as
fp32 logits); the ``int8`` copy stores every Linear and Conv1d/2d/3d weight as real int8
(symmetric, per-output-channel scale) in a ``weight_q`` buffer and dequantises it in the forward
pass, so a bit flip hits the int8 word itself (two's complement), not an emulation of it. Tied
layers stay tied; weight layers it cannot convert (transposed convolutions, subclasses with
their own forward) stay in fp32 and are listed in the copy's ``kept_float``.

>>> import torch
>>> from torch import nn
>>> from trustbench.faults.precision import to_precision
>>> q = to_precision(nn.Sequential(nn.Linear(4, 2)), "int8")
>>> q.net[0].weight_q.dtype
torch.int8
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustbench.faults.campaign import CampaignConfig, CampaignResult, Checkpoint, run_campaign
from trustbench.faults.errors import FaultError
from trustbench.faults.runtime import device_of

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _quantise(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = tuple(range(1, w.dim()))
    scale = (w.detach().abs().amax(dim=dims, keepdim=True) / 127.0).clamp_min(1e-12)
    q = torch.round(w.detach() / scale).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.float()


class QuantLinear(nn.Module):
    """Linear layer with int8 weights (``weight_q``) and a per-output-row fp32 ``scale``."""

    def __init__(self, lin: nn.Linear) -> None:
        super().__init__()
        q, s = _quantise(lin.weight)
        self.register_buffer("weight_q", q)
        self.register_buffer("scale", s)
        self.bias = None if lin.bias is None else nn.Parameter(lin.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (for models that read ``layer.weight`` themselves)."""
        return self.weight_q.float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class QuantConv(nn.Module):
    """Conv1d/2d/3d with int8 weights (``weight_q``) and a per-output-channel fp32 ``scale``.

    The original layer is kept without its weight and does the convolution, so its stride,
    dilation, groups, ``padding="same"`` and padding modes (reflect, replicate, circular) all
    carry over.
    """

    def __init__(self, conv: nn.Conv1d | nn.Conv2d | nn.Conv3d) -> None:
        super().__init__()
        q, s = _quantise(conv.weight)
        self.register_buffer("weight_q", q)
        self.register_buffer("scale", s)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        conv = copy.copy(conv)
        conv._parameters = {}  # the int8 words replace the weight; the bias lives here
        # not a submodule: it would be a second activation site with the same output
        object.__setattr__(self, "_conv", conv)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (for models that read ``layer.weight`` themselves)."""
        return self.weight_q.float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv._conv_forward(x, self.weight, self.bias)


#: Kept for code that imported the 2-D name.
QuantConv2d = QuantConv


class CastModel(nn.Module):
    """Runs ``net`` in ``dtype``: inputs cast in, fp32 logits out.

    ``kept_float`` (int8 copies): the weight layers left in floating point, with why.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.kept_float: dict[str, str] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _swap_int8(module: nn.Module, done: dict[int, nn.Module], kept: dict[str, str],
               prefix: str = "") -> None:
    """Replace every Linear and Conv1d/2d/3d below ``module`` by its int8 version; a module
    that appears several times (tied) gets one shared replacement."""
    for name, child in list(module._modules.items()):  # named_children() skips repeats
        if child is None:
            continue
        path = f"{prefix}{name}"
        if id(child) in done:
            setattr(module, name, done[id(child)])
        elif type(child) is nn.Linear or type(child) in _CONVS:
            q = QuantLinear(child) if type(child) is nn.Linear else QuantConv(child)
            done[id(child)] = q
            setattr(module, name, q)
        else:
            if isinstance(child, (nn.Linear, *_CONVS)) and type(child).forward not in (
                    nn.Linear.forward, *(c.forward for c in _CONVS)):
                kept[path] = (f"{type(child).__name__} has its own forward; an int8 copy would "
                              "drop it")
            elif isinstance(child, nn.modules.conv._ConvTransposeNd):
                kept[path] = f"{type(child).__name__} is not quantised"
            _swap_int8(child, done, kept, f"{path}.")


def to_precision(model: nn.Module, precision: str) -> nn.Module:
    """A deep copy of ``model`` in ``precision`` (``fp32``, ``fp16``, ``bf16``, ``int8``).

    Raises
    ------
    FaultError
        Unknown precision.
    """
    if precision not in PRECISIONS:
        raise FaultError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
    net = copy.deepcopy(model).eval()
    if precision == "int8":
        kept: dict[str, str] = {}
        _swap_int8(net, {}, kept)
        cast = CastModel(net, torch.float32).eval()
        cast.kept_float = kept
        return cast
    return CastModel(net.to(_DTYPES[precision]), _DTYPES[precision]).eval()


@dataclass
class PrecisionResult:
    """One precision's campaign result and clean accuracy."""

    precision: str
    clean_accuracy: float
    result: CampaignResult
    #: Weight layers of an int8 copy left in floating point, with why.
    kept_float: dict[str, str] = dataclasses.field(default_factory=dict)


def compare_precisions(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       precisions: tuple[str, ...] = PRECISIONS,
                       config: CampaignConfig | None = None,
                       checkpoint: Callable[[str], Checkpoint | None] | None = None,
                       **overrides: Any) -> list[PrecisionResult]:
    """Run the same campaign configuration on a copy of ``model`` per precision.

    Faults are drawn per copy with the same seed (the fault population differs: 16-bit words
    have half the bits, int8 copies have int8 weights), bit-uniform over the stored bits.
    ``checkpoint(precision)``, if given, is the :class:`.campaign.Checkpoint` of that
    precision's campaign.
    """
    cfg = CampaignConfig.with_overrides(config, overrides)
    if cfg.pattern is None and cfg.target == "weights":  # the int8 copies' words too
        cfg = dataclasses.replace(cfg, pattern=r"^weight(_q)?$")
    out = []
    for p in precisions:
        m = to_precision(model, p)
        device = device_of(model)
        m.to(device)
        with torch.no_grad():
            acc = float((m(x.to(device)).argmax(1) == y.to(device)).float().mean())
        out.append(PrecisionResult(p, acc, run_campaign(
            m, x, y, cfg, checkpoint=None if checkpoint is None else checkpoint(p)),
            dict(getattr(m, "kept_float", {}))))
    return out
