"""Protections against faults (plugin kind ``protection``): the base class and the built-ins.

A :class:`Protection` is fitted on clean data, then applied to a model as a context manager
(usually through forward hooks), so the same fault campaign can run with and without it.
:func:`evaluate_protection` (in :mod:`.protection_evaluation`, importable from here too) runs
both on the same faults and reports the SDC reduction with an interval, the clean-accuracy cost
and the latency cost.

Built in:

- :class:`RangeRestriction` ("Ranger"; Chen et al. 2021, "A Low-cost Fault Corrector for Deep
  Neural Networks through Range Restriction", DSN'21): per-layer activation bounds are profiled
  on clean data and outputs are clamped to them, so a flipped exponent bit cannot push an
  activation to 1e38;
- :class:`WeightRangeCheck` (``weight_range``): the weight-side counterpart, a range check of the
  stored weights at every use: each Conv/Linear weight word whose magnitude exceeds the largest
  magnitude of its layer's fault-free weights (or that is Inf/NaN) is read as zero (or clamped),
  the cheap plausibility check that motivates Hong et al. 2019 ("Terminal Brain Damage",
  USENIX Security: most damaging flips are exponent flips that make a weight huge). The stored
  words are not changed; the check runs on every forward pass.

>>> import torch
>>> from torch import nn
>>> from trustbench.faults.protection import RangeRestriction
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
>>> ranger = RangeRestriction().fit(net, torch.randn(64, 4))
>>> with ranger.applied(net):
...     out = net(torch.full((1, 4), 1e30))
>>> bool(torch.isfinite(out).all())
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from trustbench.faults.errors import FaultError
from trustbench.faults.protection_evaluation import (
    LATENCY_REPS,
    LATENCY_RESAMPLES,
    ProtectionResult,
    evaluate_protection,
    newcombe_difference,
    paired_counts,
)
from trustbench.faults.runtime import device_of
from trustbench.faults.sites import activation_sites
from trustbench.registry import Plugin

__all__ = [
    "LATENCY_REPS",
    "LATENCY_RESAMPLES",
    "RANGER_LAYER_TYPES",
    "Protection",
    "ProtectionResult",
    "RangeRestriction",
    "RangeRestrictionParams",
    "WeightRangeCheck",
    "WeightRangeCheckParams",
    "evaluate_protection",
    "newcombe_difference",
    "paired_counts",
]


class Protection(Plugin, kind="protection"):
    """Base of protections: ``fit(model, x)`` on clean data, then ``with p.applied(model):``."""

    Params: ClassVar[type] = dict

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        """``params`` (an instance of the subclass's ``Params`` dataclass), or its fields as
        keyword arguments."""
        try:
            self.params = params or self.Params(**kwargs)
        except TypeError:
            names = [f.name for f in dataclasses.fields(self.Params)]
            raise FaultError(f"{self.name} parameters are: {names}") from None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has profiled a model (protections without a profile: True)."""
        return True

    def fit(self, model: nn.Module, x: torch.Tensor) -> Protection:
        """Profile the clean model (returns self)."""
        return self

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context in which ``model`` runs protected."""
        raise NotImplementedError
        yield model  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        """Name and parameters, JSON-plain."""
        params = getattr(self, "params", None)
        return {"name": self.name, **(dataclasses.asdict(params) if params else {})}


def _check_margin(name: str, margin: Any) -> None:
    if (isinstance(margin, bool) or not isinstance(margin, (int, float))
            or not math.isfinite(margin) or margin < 0):
        raise FaultError(f"{name} margin must be a finite number >= 0 (relative slack on the "
                         f"clean range; 0: the clean range itself), got {margin!r}")


#: Activation-function and pooling modules whose outputs Ranger bounds by default.
RANGER_LAYER_TYPES: tuple[str, ...] = (
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "Hardtanh",
    "MaxPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
)


@dataclass
class RangeRestrictionParams:
    """Parameters of :class:`RangeRestriction`.

    Attributes
    ----------
    layer_types
        Modules whose outputs are bounded; None: activation functions and pooling
        (:data:`RANGER_LAYER_TYPES`), or convolutions/linear layers if the model has none.
    margin
        Relative slack added to the profiled range (0.0: the exact clean min/max).
    batch_size
        Inputs per profiling forward pass.
    """

    layer_types: tuple[str, ...] | None = None
    margin: float = 0.0
    batch_size: int = 1024


class RangeRestriction(Protection):
    """Clamp each bounded layer's output to the range seen on clean data (Ranger)."""

    name = "ranger"
    Params = RangeRestrictionParams

    params: RangeRestrictionParams

    def __init__(self, params: RangeRestrictionParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        _check_margin("ranger", self.params.margin)
        b = self.params.batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise FaultError(f"ranger batch_size must be a positive integer, got {b!r}")
        self.bounds: dict[str, tuple[float, float]] = {}
        self._modules: dict[str, nn.Module] = {}

    @property
    def fitted(self) -> bool:
        return bool(self.bounds)

    def fit(self, model: nn.Module, x: torch.Tensor) -> RangeRestriction:
        """Record per-layer min/max of the bounded outputs over ``x``."""
        types = self.params.layer_types
        if types is None:
            present = {type(m).__name__ for m in model.modules()}
            types = tuple(t for t in RANGER_LAYER_TYPES if t in present) or None
        sites = activation_sites(model, types)
        lo: dict[str, float] = {s.name: math.inf for s in sites}
        hi: dict[str, float] = {s.name: -math.inf for s in sites}
        mins: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
        maxs: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}

        def make(name: str):
            def hook(_m, _i, out):
                if isinstance(out, torch.Tensor):
                    mins[name].append(out.detach().amin())
                    maxs[name].append(out.detach().amax())
            return hook

        handles = [s.module.register_forward_hook(make(s.name)) for s in sites]
        device = device_of(model)
        try:
            with torch.no_grad():
                for xb in x.split(self.params.batch_size):
                    model(xb.to(device))
        finally:
            for h in handles:
                h.remove()
        for s in sites:
            if mins[s.name]:
                lo[s.name] = float(torch.stack(mins[s.name]).amin())
                hi[s.name] = float(torch.stack(maxs[s.name]).amax())
        slack = {k: self.params.margin * (hi[k] - lo[k]) for k in lo}
        self.bounds = {k: (lo[k] - slack[k], hi[k] + slack[k]) for k in lo
                       if math.isfinite(lo[k])}
        self._modules = {s.name: s.module for s in sites if s.name in self.bounds}
        return self

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        if not self.bounds:
            raise FaultError("RangeRestriction must be fitted on clean data first (fit).")
        named = dict(model.named_modules())
        handles = []

        def make(lo: float, hi: float):
            def hook(_m, _i, out):
                return out.clamp(lo, hi) if isinstance(out, torch.Tensor) else None
            return hook

        try:
            for name, (lo, hi) in self.bounds.items():
                if name not in named:
                    raise FaultError(f"RangeRestriction was fitted on another model: no layer "
                                     f"{name!r} here.")
                handles.append(named[name].register_forward_hook(make(lo, hi)))
            yield model
        finally:
            for h in handles:
                h.remove()



@dataclass
class WeightRangeCheckParams:
    """Parameters of :class:`WeightRangeCheck`.

    Attributes
    ----------
    layer_types
        Layers whose ``weight`` is checked (default: Conv and Linear layers,
        :data:`trustbench.faults.sites.DEFAULT_LAYER_TYPES`).
    margin
        Relative slack on each layer's bound (0.0: the largest clean magnitude itself).
    mode
        ``"zero"``: an out-of-range or non-finite word is read as 0; ``"clamp"``: it is clamped
        to the bound with its sign (a NaN stays NaN).
    """

    layer_types: tuple[str, ...] | None = None
    margin: float = 0.0
    mode: str = "zero"


class WeightRangeCheck(Protection):
    """Read each Conv/Linear weight through a range check against its clean magnitude bound.

    ``fit`` records, per layer, the largest magnitude of the (fault-free) weights; ``applied``
    makes every forward pass of those layers use ``where(|w| <= bound, w, 0)`` (``mode="zero"``)
    or ``clamp(w, -bound, bound)`` instead of the stored ``w``, through a pre-hook that swaps the
    checked tensor in for the call and a hook that puts the parameter back. The stored words
    are untouched, so a fault injected into them is still there, and is caught at every use.
    ``x`` is not needed to fit (the bound comes from the weights), but accepted for the common
    interface.
    """

    name = "weight_range"
    Params = WeightRangeCheckParams

    params: WeightRangeCheckParams

    def __init__(self, params: WeightRangeCheckParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        if self.params.mode not in ("zero", "clamp"):
            raise FaultError(f"weight_range mode must be 'zero' or 'clamp', got "
                             f"{self.params.mode!r}")
        _check_margin("weight_range", self.params.margin)
        self.bounds: dict[str, float] = {}
        #: Layers whose weight the model reads without calling them (not protected).
        self.unprotected: list[str] = []

    @property
    def fitted(self) -> bool:
        return bool(self.bounds)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "unprotected": list(self.unprotected)}

    def fit(self, model: nn.Module, x: torch.Tensor | None = None) -> WeightRangeCheck:
        """Record each checked layer's largest clean weight magnitude.

        With ``x``, one forward pass finds the layers the model never calls (whose weight it
        reads some other way, e.g. ``F.linear(h, self.qkv.weight)`` in torchvision's Swin): the
        check runs in a layer's own call, so those are left unprotected and listed in
        ``unprotected`` (and in :meth:`describe`).
        """
        from trustbench.faults.sites import weight_sites

        sites = weight_sites(model, self.params.layer_types, r"^weight$",
                             include_buffers=False)
        called: set[str] | None = None
        if x is not None:
            called = set()
            named = dict(model.named_modules())

            def make(name: str):
                def pre(_m: nn.Module, _args: tuple) -> None:
                    called.add(name)  # type: ignore[union-attr]
                return pre

            handles = [named[s.module].register_forward_pre_hook(make(s.module))
                       for s in sites]
            device = device_of(model)
            try:
                with torch.no_grad():
                    model(x[:1].to(device))
            finally:
                for h in handles:
                    h.remove()
        self.bounds = {}
        self.unprotected = []
        for s in sites:
            if not s.tensor.is_floating_point():
                continue
            if called is not None and s.module not in called:
                self.unprotected.append(s.module)
                continue
            bound = float(s.tensor.detach().abs().amax())
            if not math.isfinite(bound):
                raise FaultError(f"weight_range: layer {s.module!r} already holds a "
                                 "non-finite weight; fit on a fault-free model.")
            self.bounds[s.module] = bound * (1.0 + self.params.margin)
        if not self.bounds:
            raise FaultError("weight_range: no floating-point Conv/Linear weights to check.")
        return self

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        if not self.bounds:
            raise FaultError("WeightRangeCheck must be fitted first (fit).")
        named = dict(model.named_modules())
        zero = self.params.mode == "zero"
        handles = []

        def make(bound: float):
            def pre(m: nn.Module, _args: tuple) -> None:
                w = m._parameters["weight"]
                assert w is not None
                checked = (torch.where(w.abs() <= bound, w, torch.zeros((), dtype=w.dtype,
                                                                         device=w.device))
                           if zero else w.clamp(-bound, bound))
                # a stack, not a parameter: nested checks each push and pop, and the last pop
                # puts the stored parameter back
                m.__dict__.setdefault("_trustbench_weights", []).append(w)
                m._parameters["weight"] = checked  # type: ignore[assignment]

            def post(m: nn.Module, _args: tuple, _out: Any) -> None:
                stack = m.__dict__["_trustbench_weights"]
                last = stack.pop()
                m._parameters["weight"] = stack[0] if stack else last  # the stored parameter
                if not stack:
                    del m.__dict__["_trustbench_weights"]
            return pre, post

        try:
            for name, bound in self.bounds.items():
                module = named.get(name)
                if module is None or not isinstance(module._parameters.get("weight"),
                                                    torch.Tensor):
                    raise FaultError(f"WeightRangeCheck was fitted on another model: no layer "
                                     f"{name!r} with a weight here.")
                pre, post = make(bound)
                handles.append(module.register_forward_pre_hook(pre))
                handles.append(module.register_forward_hook(post, always_call=True))
            yield model
        finally:
            for h in handles:
                h.remove()
