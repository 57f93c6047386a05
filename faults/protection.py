"""Protections against faults (plugin kind ``protection``) and how much they help.

A :class:`Protection` is fitted on clean data, then applied to a model as a context manager
(usually through forward hooks), so the same fault campaign can run with and without it.
:func:`evaluate_protection` runs both on the same faults and reports the SDC reduction with an
interval, the clean-accuracy cost and the latency cost.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from trustbench.faults.engine import CRITICAL_SDC, SDC, device_of
from trustbench.faults.errors import FaultError
from trustbench.faults.sites import activation_sites

from trustbench.registry import Plugin
from trustbench.stats import bootstrap_interval, paired_difference


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


#: Interleaved pairs of timed forward passes (unprotected, protected) behind the latency overhead.
LATENCY_REPS = 15

#: Bootstrap resamples of the latency pairs for the overhead's interval.
LATENCY_RESAMPLES = 2000


@dataclass
class ProtectionResult:
    """Effect of a protection on the same faults and inputs.

    Every comparison is paired: the protected campaign replays the baseline's faults one for
    one, and clean accuracy is measured on the same inputs, so the differences carry Newcombe's
    interval for paired proportions (:func:`trustbench.stats.paired_difference`), narrower than
    one for two independent samples. ``sdc_reduction`` is ``baseline.sdc - protected.sdc``
    (positive: fewer SDCs). Where the two campaigns did not run the same faults (one of them
    incomplete), the reductions fall back to the independent-samples hybrid score interval and
    ``paired`` is False.
    """

    protection: dict[str, Any]
    baseline: Any
    protected: Any
    sdc_reduction: float
    sdc_reduction_ci: tuple[float, float]
    critical_sdc_reduction: float
    clean_accuracy: float
    clean_accuracy_protected: float
    latency_s: float
    latency_protected_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: Interleaved (unprotected, protected) pairs of timed passes behind each latency.
    latency_reps: int = LATENCY_REPS
    critical_sdc_reduction_ci: tuple[float, float] = (-1.0, 1.0)
    #: Interval of ``accuracy_cost`` (paired over the evaluation inputs).
    accuracy_cost_ci: tuple[float, float] = (-1.0, 1.0)
    n_inputs: int = 0
    #: Percentile-bootstrap interval of ``latency_overhead`` over the timed pairs.
    latency_overhead_ci: tuple[float, float] = (float("nan"), float("nan"))
    #: Whether the fault outcomes were compared fault by fault.
    paired: bool = True

    @property
    def accuracy_cost(self) -> float:
        """Clean accuracy lost by protecting (positive: protected is worse)."""
        return self.clean_accuracy - self.clean_accuracy_protected

    @property
    def latency_overhead(self) -> float:
        """Relative latency increase of the protected forward pass (ratio of medians - 1)."""
        return self.latency_protected_s / self.latency_s - 1.0


def newcombe_difference(p1: float, ci1: tuple[float, float], p2: float,
                        ci2: tuple[float, float]) -> tuple[float, float]:
    """Newcombe (1998) hybrid-score interval for ``p1 - p2`` of two independent samples, from
    the two Wilson intervals."""
    d = p1 - p2
    lo = d - math.sqrt((p1 - ci1[0]) ** 2 + (ci2[1] - p2) ** 2)
    hi = d + math.sqrt((ci1[1] - p1) ** 2 + (p2 - ci2[0]) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def paired_counts(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    """``(both, first only, second only, neither)`` of two boolean arrays over the same units."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    return (int((first & second).sum()), int((first & ~second).sum()),
            int((~first & second).sum()), int((~first & ~second).sum()))


def _same_faults(a: Any, b: Any) -> bool:
    n = len(a.outcomes)
    if not (a.complete and b.complete and n == len(b.outcomes) and n > 0):
        return False
    pa, pb = a.plan, b.plan
    return all(np.array_equal(getattr(pa, f)[:n], getattr(pb, f)[:n])
               for f in ("site", "element", "payload", "bit"))


def _rate_reduction(base: Any, prot: Any, codes: tuple[int, ...], paired: bool,
                    rate: str) -> tuple[float, tuple[float, float]]:
    if paired:
        est = paired_difference(*paired_counts(np.isin(base.outcomes, codes),
                                               np.isin(prot.outcomes, codes)),
                                confidence=base.confidence)
        return est.value, est.ci
    b, p = getattr(base, rate), getattr(prot, rate)
    return b.value - p.value, newcombe_difference(b.value, b.ci, p.value, p.ci)


def _paired_latency(model: nn.Module, x: torch.Tensor, protection: Protection,
                    reps: int = LATENCY_REPS) -> tuple[np.ndarray, np.ndarray]:
    """``reps`` interleaved timings (seconds) of the forward pass without and with the
    protection, after one warm-up pass of each, so drifts (clocks, other load) hit both alike."""
    cuda = x.device.type == "cuda"

    def timed() -> float:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    base, prot = np.empty(reps), np.empty(reps)
    with torch.no_grad():
        model(x)
        with protection.applied(model):
            model(x)
        for r in range(reps):
            base[r] = timed()
            with protection.applied(model):
                prot[r] = timed()
    return base, prot


def _overhead(base: np.ndarray, prot: np.ndarray) -> float:
    return float(np.median(prot) / np.median(base) - 1.0)


def evaluate_protection(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        protection: Protection, config: Any = None, *,
                        x_fit: torch.Tensor | None = None, baseline: Any = None,
                        checkpoint: Callable[[str], Any] | None = None,
                        **overrides: Any) -> ProtectionResult:
    """Run the same campaign without and with ``protection``; compare.

    Parameters
    ----------
    model, x, y
        As for :func:`trustbench.faults.campaign.run_campaign`.
    protection
        A protection; fitted here on ``x_fit`` (default ``x``) unless already fitted.
    config, overrides
        Campaign configuration (the same faults are drawn for both runs).
    baseline
        An already computed unprotected result of the same configuration (saves a run).
    checkpoint
        ``checkpoint(label)`` gives the :class:`.campaign.Checkpoint` of the campaign
        labelled ``"baseline"`` or ``"protected"`` (their fingerprints are equal: forward hooks
        are not part of them, so their states must be kept apart).
    """
    from trustbench.faults.campaign import check_eval_mode, run_campaign

    check_eval_mode(model)  # before fitting, which runs the model
    if not protection.fitted:
        protection.fit(model, x if x_fit is None else x_fit)
    def ckpt(label: str) -> Any:
        return None if checkpoint is None else checkpoint(label)

    if baseline is None:
        baseline = run_campaign(model, x, y, config, checkpoint=ckpt("baseline"), **overrides)
    with protection.applied(model):
        protected = run_campaign(model, x, y, config, checkpoint=ckpt("protected"),
                                 **overrides)
    device = device_of(model)
    xd, yd = x.to(device), y.to(device)
    with torch.no_grad():
        correct = (model(xd).argmax(1) == yd).cpu().numpy()
        with protection.applied(model):
            correct_p = (model(xd).argmax(1) == yd).cpu().numpy()
    conf = baseline.confidence  # every interval at the campaign's level
    t_base, t_prot = _paired_latency(model, xd, protection)
    lat_ci = bootstrap_interval(_overhead, t_base, t_prot, n_resamples=LATENCY_RESAMPLES,
                                confidence=conf)
    acc = paired_difference(*paired_counts(correct, correct_p), confidence=conf)
    paired = _same_faults(baseline, protected)
    sdc, sdc_ci = _rate_reduction(baseline, protected, (SDC, CRITICAL_SDC), paired, "sdc")
    crit, crit_ci = _rate_reduction(baseline, protected, (CRITICAL_SDC,), paired, "critical_sdc")
    return ProtectionResult(
        protection=protection.describe(), baseline=baseline, protected=protected,
        sdc_reduction=sdc, sdc_reduction_ci=sdc_ci,
        critical_sdc_reduction=crit, critical_sdc_reduction_ci=crit_ci,
        clean_accuracy=float(correct.mean()), clean_accuracy_protected=float(correct_p.mean()),
        accuracy_cost_ci=acc.ci, n_inputs=len(correct),
        latency_s=float(np.median(t_base)), latency_protected_s=float(np.median(t_prot)),
        latency_overhead_ci=lat_ci, paired=paired)
