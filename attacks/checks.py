"""Validity checks of a robustness evaluation (Carlini et al. 2019; AutoAttack's flags).

Each check is a pure function returning a :class:`CheckResult`; the robustness suite records it
in the scorecard's ``checks`` and fails its test when ``passed`` is False, so an evaluation that
is itself unreliable (gradient masking, a broken attack, a randomised model) cannot produce a
quiet, flattering number.

References: Carlini et al., "On Evaluating Adversarial Robustness", 2019,
https://arxiv.org/abs/1902.06705 (checklist sections 3-5); Croce & Hein 2020 (AutoAttack's
zero-gradient, randomised-defence and black-box-beats-white-box flags).

Comparisons of accuracies use Clopper-Pearson 95 % intervals, so a check fails only when the
violation is larger than sampling noise explains.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from trustbench.attacks.geometry import lp_norms
from trustbench.attacks.losses import margin_loss
from trustbench.attacks.model_views import frozen_eval

__all__ = [
    "CheckResult",
    "check_blackbox_vs_whitebox",
    "check_deterministic",
    "check_input_gradients",
    "check_iterative_vs_single_step",
    "check_monotone_in_eps",
    "check_unbounded_eps",
]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one validity check: a dotted ``name``, ``passed``, and a readable ``detail``."""

    name: str
    passed: bool
    detail: str = ""


def _ci(k: int, n: int, confidence: float) -> tuple[float, float]:
    from trustbench.stats import clopper_pearson_interval

    return clopper_pearson_interval(k, n, confidence)


def check_deterministic(
    model: nn.Module, x: torch.Tensor, *, rtol: float = 1e-4, atol: float = 1e-5
) -> CheckResult:
    """Two eval-mode forward passes on ``x`` must agree (no dropout, no randomised defence)."""
    with frozen_eval(model), torch.no_grad():
        a, b = model(x), model(x)
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    ok = bool(torch.allclose(a, b, rtol=rtol, atol=atol))
    detail = (
        f"two forward passes on {len(x)} inputs differ by at most {diff:.3g}"
        if ok
        else f"forward pass is randomised in eval mode (max difference {diff:.3g}): attacks "
        "optimise a moving target; robust accuracy is not meaningful"
    )
    return CheckResult("robustness.model_deterministic", ok, detail)


def check_input_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_zero_fraction: float = 0.05
) -> CheckResult:
    """Input gradients of the margin loss must be non-zero for (almost) every sample.

    The margin ``max_{i != y} z_i - z_y`` is used instead of cross-entropy because its gradient
    does not vanish when softmax saturates on a confident prediction; an exactly zero gradient
    then means shattered gradients (a non-differentiable input transformation, e.g. quantisation):
    gradient-based attacks are blind and their robust accuracy overestimates the truth.
    """
    with frozen_eval(model):
        xa = x.detach().clone().requires_grad_(True)
        loss = margin_loss(model(xa), y).sum()
        if not loss.requires_grad:  # no path from the input to the output at all
            return CheckResult(
                "robustness.input_gradients_nonzero", False,
                "the model's output does not depend differentiably on its input (a .detach(), "
                "torch.no_grad(), argmax or rounding inside forward): gradient-based attacks "
                "cannot run and gradient-based robust accuracy would be meaningless")
        (g,) = torch.autograd.grad(loss, xa)
    zero = lp_norms(g, "linf") == 0
    frac = float(zero.float().mean()) if len(x) else 0.0
    ok = frac <= max_zero_fraction
    detail = f"{int(zero.sum())} of {len(x)} samples ({frac:.1%}) have an all-zero input gradient"
    if not ok:
        detail += (
            f" (more than {max_zero_fraction:.0%}): gradient masking suspected "
            "(non-differentiable preprocessing?); gradient-based robust accuracy is unreliable"
        )
    return CheckResult("robustness.input_gradients_nonzero", ok, detail)


def check_iterative_vs_single_step(
    single_k: int, iterative_k: int, n: int, *, confidence: float = 0.95, label: str = ""
) -> CheckResult:
    """An iterative attack (PGD) must leave no more robust samples than FGSM, within the interval.

    ``single_k`` / ``iterative_k`` are robust counts over the same ``n`` samples. Fails when
    PGD's robust accuracy exceeds the upper end of FGSM's interval.
    """
    lo, hi = _ci(single_k, n, confidence)
    acc_s, acc_i = single_k / n, iterative_k / n
    ok = acc_i <= hi
    detail = (
        f"{label}iterative robust accuracy {acc_i:.3f} vs single-step {acc_s:.3f} "
        f"[{lo:.3f}, {hi:.3f}]"
    )
    if not ok:
        detail += (
            ": the iterative attack is weaker than one gradient step; broken attack or "
            "gradient masking"
        )
    return CheckResult("robustness.iterative_at_least_single_step", ok, detail)


def check_monotone_in_eps(
    eps: Sequence[float],
    robust_k: Sequence[int],
    n: int,
    *,
    confidence: float = 0.95,
    label: str = "",
) -> CheckResult:
    """Robust accuracy must not increase with eps (beyond the interval of the smaller eps)."""
    order = sorted(range(len(eps)), key=lambda i: eps[i])
    bad = []
    for a, b in itertools.pairwise(order):
        _, hi = _ci(robust_k[a], n, confidence)
        if robust_k[b] / n > hi:
            bad.append(
                f"eps {eps[a]:g} -> {eps[b]:g}: {robust_k[a] / n:.3f} -> "
                f"{robust_k[b] / n:.3f} (upper bound {hi:.3f})"
            )
    ok = not bad
    curve = ", ".join(f"{eps[i]:g}: {robust_k[i] / n:.3f}" for i in order)
    detail = f"{label}robust accuracy by eps: {curve}"
    if bad:
        detail += "; increases with eps: " + "; ".join(bad) + " (attack not converging)"
    return CheckResult("robustness.monotone_in_eps", ok, detail)


def substitution_breakable(
    x: torch.Tensor, y: torch.Tensor, pool_x: torch.Tensor, pool_pred: torch.Tensor, eps: float
) -> torch.Tensor:
    """Which samples an attacker could break by *substituting* an existing input.

    Sample ``i`` is breakable when some input of the pool lies within L-inf distance ``eps``
    of ``x[i]`` and the model predicts a class other than ``y[i]`` for it: the attack could
    simply return that input. Returns a bool tensor over the samples (on ``x``'s device).
    """
    flat = x.reshape(len(x), -1)
    pool = pool_x.reshape(len(pool_x), -1).to(flat)
    other = pool_pred.to(y.device)[None, :] != y[:, None]
    out = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for i in range(0, len(x), 256):  # chunks keep the distance matrix small
        d = (flat[i : i + 256, None, :] - pool[None, :, :]).abs().amax(-1)
        out[i : i + 256] = ((d <= eps) & other[i : i + 256]).any(1)
    return out


def check_unbounded_eps(
    robust_k: int,
    n: int,
    eps: float,
    *,
    max_accuracy: float = 0.01,
    label: str = "",
    robust: torch.Tensor | None = None,
    breakable: torch.Tensor | None = None,
) -> CheckResult:
    """At an eps that covers the whole input range, robust accuracy must be <= 1 %.

    Every input is reachable then, so any correctly classified sample left means the attack,
    not the model, failed (Carlini et al. 2019, section 5.5). With ``robust`` (per sample,
    robust under the attack) and ``breakable`` (from :func:`substitution_breakable`), only the
    samples a substitution of an existing input would break count against the attack: a model
    that predicts one class everywhere within reach (an untrained or degenerate model) cannot
    be broken by any attack, and that is not gradient masking.
    """
    acc = robust_k / n if n else 0.0
    detail = (
        f"{label}robust accuracy {acc:.3f} ({robust_k}/{n}) at eps {eps:g}, which covers the "
        "whole input range"
    )
    missed = robust_k  # robust samples that count against the attack
    if robust is not None and breakable is not None:
        missed = int((robust.cpu() & breakable.cpu()).sum())
        detail += (f"; {missed} robust sample(s) could be broken by substituting an existing "
                   "input predicted as another class")
        if robust_k - missed:
            detail += (f"; {robust_k - missed} robust sample(s) have no input of another "
                       "predicted class within reach (the model's prediction is constant there)")
    ok = missed / n <= max_accuracy if n else True
    detail += f" (must be <= {max_accuracy:.0%} of {n})"
    if not ok:
        detail += ": the attack cannot reach inputs that exist; gradient masking suspected"
    return CheckResult("robustness.unbounded_eps_breaks_all", ok, detail)


def check_blackbox_vs_whitebox(
    blackbox_k: int, whitebox_k: int, n: int, *, confidence: float = 0.95, label: str = ""
) -> CheckResult:
    """A black-box attack must not beat the (best) white-box attack beyond the interval.

    ``whitebox_k`` is the robust count of the strongest white-box attack (or their per-sample
    worst case) on the same ``n`` samples. If the gradient-free attack finds clearly more
    adversarial examples, the gradients mislead: gradient masking suspected.
    """
    lo, hi = _ci(whitebox_k, n, confidence)
    acc_b, acc_w = blackbox_k / n, whitebox_k / n
    ok = acc_b >= lo
    detail = (
        f"{label}black-box robust accuracy {acc_b:.3f} vs white-box {acc_w:.3f} "
        f"[{lo:.3f}, {hi:.3f}]"
    )
    if not ok:
        detail += ": gradient masking suspected (black-box beats white-box)"
    return CheckResult("robustness.blackbox_not_stronger", ok, detail)
