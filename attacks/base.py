"""The evasion-attack base class, its parameters, results and cost counters.

:class:`EvasionAttack` is a template method (like torchattacks' ``Attack.__call__``): it checks
the inputs, puts the model in eval mode with its parameters frozen, runs the subclass's
:meth:`EvasionAttack.perturb`, and then *guarantees* what every attack promises, whatever the
subclass did:

- the adversarial example lies in the eps ball (L-inf or L2) around the input and in the input
  range (``[0, 1]`` for images; no clipping where ``input_range is None``, e.g. standardised
  tabular features);
- it has the input's shape, dtype and device;
- the input tensor and the model's parameters and buffers are unchanged (version counters are
  compared on every call; ``debug=True`` also compares checksums);
- forward and backward passes are counted (per call and per sample).

A new attack is one subclass with a ``name`` (it registers itself under the kind ``attack``), a
``Params`` dataclass and a ``perturb`` method; see ``docs/extending.md``.

One concern earns this module its length: the template method and the guarantees it enforces
(the model views it runs on live in :mod:`.model_views`, the eps-ball geometry in
:mod:`.geometry`).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn

from trustbench.attacks.geometry import lp_norms, per_sample, project
from trustbench.attacks.model_views import (
    ChannelsLastModel,
    CountedModel,
    ForwardGraph,
    frozen_eval,
    model_device,
    state_checksum,
    state_versions,
)
from trustbench.attacks.profiles import SuitePlan
from trustbench.errors import BenchError, ConfigError, DataError, ModelError
from trustbench.registry import Plugin

__all__ = [
    "AttackContext",
    "AttackError",
    "AttackParams",
    "AttackResult",
    "AttackStats",
    "EvasionAttack",
    "lp_norms",
    "per_sample",
    "project",
    "restart_on_robust",
]

NORMS = ("linf", "l2")


class AttackError(BenchError):
    """An attack that cannot run as configured (bad eps, unsupported norm, missing library)."""


@dataclass
class AttackParams:
    """Parameters every evasion attack has.

    Attributes
    ----------
    eps
        Radius of the threat model's ball, in input units (``8/255`` for CIFAR L-inf).
        ``math.inf`` only for minimal-norm attacks (Carlini-Wagner, HopSkipJump).
    norm
        ``"linf"`` or ``"l2"``.
    """

    eps: float = 0.0
    norm: str = "linf"


@dataclass
class AttackStats:
    """What an attack spent: model calls and samples through them, and wall time."""

    forward_calls: int = 0
    forward_samples: int = 0
    backward_calls: int = 0
    backward_samples: int = 0
    seconds: float = 0.0

    def add(self, other: AttackStats) -> None:
        """Add ``other``'s counts to these, in place."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class AttackResult:
    """What one call of an attack returns.

    Attributes
    ----------
    x_adv
        Adversarial examples, same shape/dtype/device as the input, inside the eps ball and the
        input range.
    clean_correct, adv_correct
        Bool tensors (on the input's device): model correct on ``x`` / on ``x_adv``.
    stats
        Forward/backward passes and seconds spent by this call (including the two verification
        forward passes the base class makes).
    """

    x_adv: torch.Tensor
    clean_correct: torch.Tensor
    adv_correct: torch.Tensor
    stats: AttackStats = field(default_factory=AttackStats)

    @property
    def robust(self) -> torch.Tensor:
        """Samples correct both clean and under attack."""
        return self.clean_correct & self.adv_correct

    @property
    def success(self) -> torch.Tensor:
        """Samples the attack turned from correct to wrong."""
        return self.clean_correct & ~self.adv_correct


@dataclass
class AttackContext:
    """What ``perturb`` gets besides model and data.

    Attributes
    ----------
    input_range
        ``(lo, hi)`` to clip to, or None (no clipping).
    generator
        Random generator on the inputs' device (random starts, black-box sampling).
    clean_logits
        Logits of the unperturbed inputs (already computed by the base class).
    stats
        Counters; the model passed to ``perturb`` counts itself, code that bypasses it (e.g. a
        CUDA graph replay) adds its passes here.
    raw_model
        The model itself (without the counting wrapper), e.g. for CUDA graph capture.
    """

    input_range: tuple[float, float] | None
    generator: torch.Generator
    clean_logits: torch.Tensor
    stats: AttackStats
    raw_model: nn.Module

    def clip(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` clipped to the input range (unchanged where there is none)."""
        r = self.input_range
        return t if r is None else t.clamp(r[0], r[1])


def restart_on_robust(
    x: torch.Tensor,
    y: torch.Tensor,
    ctx: AttackContext,
    restarts: int,
    single_run: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """Up to ``restarts`` runs of ``single_run(x_sub, y_sub) -> (examples, fooled)``, each on
    the samples still correctly classified (clean, then after the earlier runs); samples never
    attacked keep their input."""
    robust = ctx.clean_logits.argmax(1) == y
    out = x.clone()
    for _ in range(restarts):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        adv, fooled = single_run(x[idx], y[idx])
        out[idx] = adv
        robust[idx[fooled]] = False
    return out


class EvasionAttack(Plugin, kind="attack"):
    """Base of evasion attacks: ``attack(model, x, y) -> AttackResult``.

    Subclasses set ``name``, ``Params`` (a dataclass subclassing :class:`AttackParams`) and
    implement :meth:`perturb`. Class attributes describe what the attack is:

    - ``norms``: the norms it supports;
    - ``white_box``: needs gradients (False for score- or decision-based black-box attacks);
    - ``minimal_norm``: finds the smallest perturbation it can (CW, HopSkipJump) and accepts
      ``eps=math.inf``;
    - ``min_classes``: fewest classes it works with (3 for the DLR loss);
    - ``requires``: importable modules it needs (``("art",)`` for the ART adapters);
    - ``suite``: how the robustness suite runs it (:class:`~trustbench.attacks.profiles.SuitePlan`:
      the profiles it runs in, its per-profile parameters, whether it joins the worst case);
      by default every profile, every default eps, and the worst case.

    Parameters
    ----------
    params
        A ``Params`` instance; or give its fields as keyword arguments.
    debug
        Also compare parameter checksums (not only version counters) before and after.

    Examples
    --------
    >>> import torch
    >>> from trustbench import registry
    >>> from trustbench import attacks  # registers the built-in attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> pgd = registry.get("attack", "pgd")(eps=0.1, norm="linf", steps=5)
    >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    >>> res = pgd(model, x, y)
    >>> bool(((res.x_adv - x).abs() <= 0.1 + 1e-6).all())
    True
    """

    abstract = True
    Params: ClassVar[type[AttackParams]] = AttackParams
    norms: ClassVar[tuple[str, ...]] = NORMS
    white_box: ClassVar[bool] = True
    minimal_norm: ClassVar[bool] = False
    min_classes: ClassVar[int] = 2
    requires: ClassVar[tuple[str, ...]] = ()
    suite: ClassVar[SuitePlan] = SuitePlan()
    #: Run convolutional models with channels-last weights on the CPU (verified per model).
    channels_last_on_cpu: ClassVar[bool] = True

    def __init__(self, params: AttackParams | None = None, *, debug: bool = False, **kwargs: Any):
        if params is None:
            try:
                params = self.Params(**kwargs)
            except TypeError as exc:
                names = ", ".join(f.name for f in fields(self.Params))
                raise AttackError(
                    f"attack {self.name!r}: {exc}. Its parameters are: {names}."
                ) from None
        elif kwargs:
            try:
                params = replace(params, **kwargs)
            except TypeError as exc:
                names = ", ".join(f.name for f in fields(self.Params))
                raise AttackError(
                    f"attack {self.name!r}: {exc}. Its parameters are: {names}."
                ) from None
        if not isinstance(params, self.Params):
            raise AttackError(
                f"attack {self.name!r} takes {self.Params.__name__}, got {type(params).__name__}"
            )
        eps = params.eps
        if isinstance(eps, torch.Tensor) and eps.numel() == 1:
            eps = eps.item()
        if isinstance(eps, numbers.Real) and not isinstance(eps, (bool, int, float)):
            eps = float(eps)  # NumPy scalars
        if eps is not params.eps:
            params = replace(params, eps=eps)
        self.params = params
        self.debug = debug
        self._forward_graphs: dict[tuple[Any, ...], ForwardGraph | None] = {}
        self._channels_last_ok: dict[int, tuple[nn.Module, bool]] = {}
        self._validate_params()

    # -- parameters ------------------------------------------------------------------------

    def _validate_params(self) -> None:
        p = self.params
        for f in fields(p):  # integer settings (steps, restarts, queries, ...) must be integers
            v, kind = getattr(p, f.name), str(f.type).replace(" ", "")
            if kind in ("int", "int|None") and not (
                    (v is None and kind == "int|None")
                    or (isinstance(v, int) and not isinstance(v, bool))):
                raise AttackError(f"attack {self.name!r}: {f.name} must be an integer"
                                  f"{' or None' if kind == 'int|None' else ''}, got {v!r}.")
        if p.norm not in self.norms:
            raise AttackError(
                f"attack {self.name!r} does not support norm {p.norm!r}; it supports "
                f"{', '.join(self.norms)}."
            )
        eps = p.eps
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or math.isnan(eps):
            raise AttackError(f"attack {self.name!r}: eps must be a number, got {eps!r}.")
        if eps < 0:
            raise AttackError(
                f"attack {self.name!r}: eps={eps} is negative. eps is the radius of the "
                "perturbation ball in input units and must be >= 0 (e.g. 0.3 for MNIST L-inf, "
                "8/255 for CIFAR-10 L-inf, 0.5 for CIFAR-10 L2)."
            )
        if math.isinf(eps) and not self.minimal_norm:
            raise AttackError(
                f"attack {self.name!r}: eps=inf is accepted only by minimal-norm attacks "
                "(cw-l2, hopskipjump); give a finite radius."
            )

    def with_params(self, **changes: Any) -> EvasionAttack:
        """A copy of this attack with some parameters changed (e.g. ``eps`` in a sweep)."""
        return type(self)(self.params, debug=self.debug, **changes)

    def _check_eps_scale(self, x: torch.Tensor, input_range: tuple[float, float] | None) -> None:
        eps, norm = self.params.eps, self.params.norm
        if math.isinf(eps):
            return
        dim = int(x[0].numel()) if len(x) else 1
        if input_range is not None:
            width = input_range[1] - input_range[0]
            limit = width if norm == "linf" else width * math.sqrt(dim)
            what = f"the width of the input range {input_range}"
        else:
            limit = 100.0 if norm == "linf" else 100.0 * math.sqrt(dim)
            what = "100 standardised units per feature"
        if eps > limit * (1 + 1e-6):
            hint = f" Did you mean {eps:g}/255 = {eps / 255:.4f}?" if eps >= 1 else ""
            raise AttackError(
                f"attack {self.name!r}: eps={eps:g} ({norm}) is absurd: it exceeds {what} "
                f"(largest meaningful {norm} eps here: {limit:.4g}).{hint}"
            )

    # -- the template method ---------------------------------------------------------------

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        input_range: tuple[float, float] | None = (0.0, 1.0),
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> AttackResult:
        """Attack ``model`` on ``(x, y)``.

        Parameters
        ----------
        model
            Input space in, logits out (``Task.model``).
        x
            Float tensor ``(N, ...)`` on the model's device, inside ``input_range``.
        y
            Int64 labels ``(N,)`` on the same device.
        input_range
            ``(lo, hi)`` the inputs live in (and adversarial examples are clipped to), or None
            for unbounded inputs (standardised tabular features).
        generator, seed
            Randomness (random starts, black-box sampling): a ``torch.Generator`` on ``x``'s
            device, or a seed for a fresh one (default 0).

        Returns
        -------
        AttackResult
        """
        self._check_inputs(model, x, y, input_range)
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(0 if seed is None else seed)
        stats = AttackStats()
        t0 = time.perf_counter()
        versions = state_versions(model)
        x_version = x._version
        sums = state_checksum(model) if self.debug else None
        x_in = x.detach()
        y = y.detach()
        with frozen_eval(model):
            clean_logits = self._logits(model, x_in, stats)
            self._check_labels(y, clean_logits)
            self._check_values(x_in, y, clean_logits.shape[1], input_range)
            if self.white_box and len(x_in) and self.params.eps > 0:
                self._check_differentiable(model, x_in)
            counted = CountedModel(self._fast_model(model, x_in, clean_logits, stats), stats)
            ctx = AttackContext(input_range, generator, clean_logits, stats, model)
            if len(x_in) and self.params.eps > 0:
                x_adv = self.perturb(counted, x_in, y, ctx)
                if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
                    raise AttackError(
                        f"attack {self.name!r} returned "
                        f"{getattr(x_adv, 'shape', type(x_adv))}, expected shape {tuple(x.shape)}"
                    )
                x_adv = x_adv.detach().to(device=x.device, dtype=x.dtype)
                x_adv = torch.where(torch.isfinite(x_adv), x_adv, x_in)
                x_adv = project(x_adv, x_in, self.params.eps, self.params.norm, input_range)
                adv_logits = self._logits(model, x_adv, stats)
            else:
                x_adv, adv_logits = x_in.clone(), clean_logits
        if x._version != x_version:
            raise AttackError(f"attack {self.name!r} modified its input tensor in place")
        if state_versions(model) != versions or (
            sums is not None
            and any(not torch.equal(a, b) for a, b in zip(sums, state_checksum(model)))
        ):
            raise AttackError(f"attack {self.name!r} modified the model's parameters or buffers")
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        stats.seconds = time.perf_counter() - t0
        return AttackResult(
            x_adv=x_adv,
            clean_correct=clean_logits.argmax(1) == y,
            adv_correct=adv_logits.argmax(1) == y,
            stats=stats,
        )

    def _fast_model(
        self, model: nn.Module, x: torch.Tensor, clean_logits: torch.Tensor, stats: AttackStats
    ) -> nn.Module:
        """The model to attack: on the CPU, a channels-last view of a conv net if it agrees."""
        if (
            x.is_cuda
            or x.dim() != 4
            or not len(x)
            or not self.channels_last_on_cpu
            or not any(p.dim() == 4 for p in model.parameters())
        ):
            return model
        known = self._channels_last_ok.get(id(model))
        if known is not None and not known[1]:
            return model
        try:
            fast = ChannelsLastModel(model)
            if known is None:  # verify once per model: same logits as the model itself
                with torch.no_grad():
                    test = fast(x)
                stats.forward_calls += 1
                stats.forward_samples += len(x)
                ok = bool(torch.allclose(test, clean_logits, rtol=1e-4, atol=1e-4))
                self._channels_last_ok[id(model)] = (model, ok)
                if not ok:
                    return model
        except Exception:  # functional_call cannot run this model: use it as it is
            self._channels_last_ok[id(model)] = (model, False)
            return model
        return fast

    def _logits(self, model: nn.Module, x: torch.Tensor, stats: AttackStats) -> torch.Tensor:
        """No-grad logits for the clean and the verification pass (a CUDA graph on CUDA)."""
        stats.forward_calls += 1
        stats.forward_samples += int(x.shape[0])
        if x.is_cuda and len(x):
            key = (id(model), tuple(x.shape), x.dtype, x.device)
            if key not in self._forward_graphs:
                while len(self._forward_graphs) >= 4:  # bound the private memory pools
                    self._forward_graphs.pop(next(iter(self._forward_graphs)))
                try:
                    self._forward_graphs[key] = ForwardGraph(model, x)
                except RuntimeError:  # not capturable (host syncs, dynamic control flow)
                    self._forward_graphs[key] = None
            g = self._forward_graphs[key]
            if g is not None:
                return g(x)
        with torch.no_grad():
            return model(x)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        """Return adversarial examples for ``(x, y)``; the base class projects and verifies.

        ``model`` is in eval mode with frozen parameters and counts its own passes.
        """
        raise NotImplementedError

    # -- input checks ----------------------------------------------------------------------

    def _check_inputs(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        input_range: tuple[float, float] | None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ModelError(f"attack {self.name!r} needs a torch.nn.Module, got {type(model)}")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise DataError(
                f"attack {self.name!r}: inputs must be a floating-point torch.Tensor, got "
                f"{getattr(x, 'dtype', type(x))}"
            )
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
            raise DataError(
                f"attack {self.name!r}: labels must be an int64 tensor of shape "
                f"({x.shape[0]},), got {getattr(y, 'dtype', type(y))} "
                f"{tuple(getattr(y, 'shape', ()))}"
            )
        device = model_device(model, x.device)
        if x.device != device or y.device != device:
            raise DataError(
                f"attack {self.name!r}: inputs on {x.device} and labels on {y.device}, but the "
                f"model is on {device}; move them with .to({str(device)!r}) first."
            )
        if input_range is not None and not (
                isinstance(input_range, (tuple, list)) and len(input_range) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v) for v in input_range)
                and input_range[0] < input_range[1]):
            raise ConfigError(f"input_range must be (lo, hi) with finite lo < hi, or None for "
                              f"unbounded inputs; got {input_range!r}")
        self._check_eps_scale(x, input_range)

    def _check_differentiable(self, model: nn.Module, x: torch.Tensor) -> None:
        """One input through the model with gradients on: white-box attacks need its output
        to depend differentiably on the input."""
        with torch.enable_grad():
            out = model(x[:1].clone().requires_grad_(True))
        if not (isinstance(out, torch.Tensor) and out.requires_grad):
            raise ModelError(
                f"attack {self.name!r} needs input gradients, but the model's output does not "
                "depend differentiably on its input (a .detach(), torch.no_grad(), argmax or "
                "rounding inside forward). Use a black-box attack (square, hopskipjump) or make "
                "forward differentiable (e.g. a straight-through estimator for quantisation)."
            )

    def _check_labels(self, y: torch.Tensor, logits: torch.Tensor) -> None:
        if not isinstance(logits, torch.Tensor):
            raise ModelError(
                f"attack {self.name!r}: the model returned a {type(logits).__name__}; expected "
                f"a logits tensor of shape ({y.shape[0]}, num_classes). Wrap it so that forward "
                "returns the logits (e.g. the 'logits' entry of a dict output)."
            )
        if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
            raise ModelError(
                f"attack {self.name!r}: the model returned shape {tuple(logits.shape)}; "
                f"expected logits of shape ({y.shape[0]}, num_classes)"
            )
        k = logits.shape[1]
        if k < self.min_classes:
            raise AttackError(
                f"attack {self.name!r} needs at least {self.min_classes} classes; the model "
                f"has {k}."
            )

    def _check_values(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        k: int,
        input_range: tuple[float, float] | None,
    ) -> None:
        """Input range and label range, with one device synchronisation for both."""
        if not x.numel():
            return
        lo_hi = torch.aminmax(x.detach())
        bad_y = ((y < 0) | (y >= k)).any().to(x.dtype)
        lo, hi, bad = torch.stack([lo_hi[0], lo_hi[1], bad_y]).tolist()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise DataError(f"attack {self.name!r}: the inputs contain NaN or infinite values; "
                            "attack finite inputs only.")
        if bad:
            raise DataError(f"attack {self.name!r}: labels must lie in [0, {k}), got {y.unique()}")
        if input_range is not None and (lo < input_range[0] - 1e-6 or hi > input_range[1] + 1e-6):
            raise DataError(
                f"attack {self.name!r}: inputs span [{lo:.3g}, {hi:.3g}], outside the input "
                f"range {tuple(input_range)}. Attacks perturb the task's input space (pixels "
                "in [0, 1]) so that eps means the same for every model: if your model "
                "expects normalised inputs, put the normalisation inside the model (a task's "
                "`normalization` {mean, std} is wrapped in front of the model for you) and "
                "feed unnormalised inputs. For unbounded inputs (standardised tabular "
                "features) pass input_range=None."
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"
