"""Running an attack over a dataset: robust accuracy with intervals, per-sample outcomes, cost.

:func:`evaluate_attack` batches the data, runs one attack, and returns a
:class:`RobustEvaluation` (counts, Clopper-Pearson interval, per-sample flags kept on the CPU so
that ensembles and validity checks can combine attacks sample by sample, perturbation norms,
forward/backward passes). :func:`worst_case` combines evaluations of the same samples into the
ensemble's worst case per sample (AutoAttack's protocol).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trustbench.attacks.base import AttackStats, EvasionAttack
from trustbench.attacks.geometry import lp_norms
from trustbench.attacks.model_views import frozen_eval, seeded_generator
from trustbench.errors import ConfigError, DataError, ModelError
from trustbench.stats import Estimate, proportion

__all__ = [
    "RobustEvaluation",
    "ensure_deterministic",
    "evaluate_attack",
    "robust_accuracy_at",
    "worst_case",
]


@dataclass
class RobustEvaluation:
    """One attack at one (norm, eps) over ``n`` samples.

    Attributes
    ----------
    attack, norm, eps, params
        What ran (``params`` is the attack's parameter dataclass as a dict).
    clean, robust
        Per-sample bool tensors (CPU): correct on the clean input / correct on clean *and*
        adversarial input.
    perturbation_l2, perturbation_linf
        Per-sample norms of ``x_adv - x`` (CPU float).
    stats
        Forward/backward passes and seconds over all batches.
    """

    attack: str
    norm: str
    eps: float
    clean: torch.Tensor
    robust: torch.Tensor
    perturbation_l2: torch.Tensor
    perturbation_linf: torch.Tensor
    stats: AttackStats = field(default_factory=AttackStats)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples attacked."""
        return int(self.clean.numel())

    @property
    def clean_correct(self) -> int:
        """Samples classified correctly without attack."""
        return int(self.clean.sum())

    @property
    def robust_correct(self) -> int:
        """Samples still classified correctly under attack."""
        return int(self.robust.sum())

    @property
    def robust_accuracy(self) -> float:
        """Fraction of all samples correct under attack."""
        return self.robust_correct / self.n if self.n else math.nan

    @property
    def clean_accuracy(self) -> float:
        """Fraction of all samples correct without attack."""
        return self.clean_correct / self.n if self.n else math.nan

    @property
    def success(self) -> torch.Tensor:
        """Per sample: correct when clean, wrong under attack."""
        return self.clean & ~self.robust

    @property
    def success_rate(self) -> float:
        """Fooled among the samples that were correct without attack."""
        c = self.clean_correct
        return int(self.success.sum()) / c if c else math.nan

    def estimate(self, confidence: float = 0.95) -> Estimate:
        """The robust accuracy with its Clopper-Pearson interval and n."""
        if not self.n:
            return Estimate(math.nan, (0.0, 1.0), 0, "clopper-pearson", confidence, k=0)
        return proportion(self.robust_correct, self.n, confidence, "clopper-pearson")

    @property
    def passes_per_sample(self) -> dict[str, float]:
        """Forward and backward passes spent per attacked sample."""
        n = max(self.n, 1)
        return {
            "forward": self.stats.forward_samples / n,
            "backward": self.stats.backward_samples / n,
        }


def ensure_deterministic(
    model: nn.Module, x: torch.Tensor, *, rtol: float = 1e-4, atol: float = 1e-5
) -> None:
    """Raise :class:`ModelError` if two eval-mode forward passes on ``x`` disagree.

    Attacks and their robust accuracy mean nothing on a randomised forward pass (dropout left
    on, a randomised defence): the attack optimises a moving target and the number changes run
    to run. Such models need Expectation-over-Transformation attacks, which trustbench does not
    implement.
    """
    with frozen_eval(model), torch.no_grad():
        a, b = model(x), model(x)
    if not torch.allclose(a, b, rtol=rtol, atol=atol):
        diff = float((a - b).abs().max())
        raise ModelError(
            f"the model's forward pass is not deterministic in eval mode: two passes on the same "
            f"inputs differ by up to {diff:.3g}. Adversarial robust accuracy is only meaningful "
            "for a deterministic model: turn off dropout or other randomness in eval mode "
            "(model.eval() must disable it), or evaluate the randomised defence with an "
            "Expectation-over-Transformation attack outside trustbench."
        )


def evaluate_attack(
    attack: EvasionAttack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 256,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    device: torch.device | str | None = None,
    seed: int = 0,
    check_determinism: bool = True,
) -> RobustEvaluation:
    """Run ``attack`` on ``(x, y)`` in batches; return counts, per-sample flags and cost.

    Parameters
    ----------
    attack
        An attack instance (its ``params`` fix norm and eps).
    model
        Input space in, logits out.
    x, y
        Samples (any device; moved batch by batch to ``device``).
    batch_size
        Samples per attack call.
    input_range
        Passed to the attack (None for unbounded tabular inputs).
    device
        Where to attack; default: the model's device.
    seed
        Seeds the attack's random generator (one generator for the whole run).
    check_determinism
        Raise :class:`ModelError` first if the model's forward pass is not deterministic.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise DataError(f"x and y must be torch tensors (convert NumPy arrays with "
                        f"torch.as_tensor); got {type(x).__name__} and {type(y).__name__}")
    device, gen = seeded_generator(model, x, device, seed)
    clean, robust, l2, linf = [], [], [], []
    stats = AttackStats()
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, non_blocking=True)
        yb = y[i : i + batch_size].to(device, non_blocking=True)
        if i == 0 and check_determinism and len(xb):
            ensure_deterministic(model, xb[: min(len(xb), 64)])
        res = attack(model, xb, yb, input_range=input_range, generator=gen)
        delta = res.x_adv - xb
        clean.append(res.clean_correct.cpu())
        robust.append(res.robust.cpu())
        l2.append(lp_norms(delta, "l2").cpu())
        linf.append(lp_norms(delta, "linf").cpu())
        stats.add(res.stats)
    empty_b = torch.zeros(0, dtype=torch.bool)
    empty_f = torch.zeros(0)
    from dataclasses import asdict

    return RobustEvaluation(
        attack=attack.name,
        norm=attack.params.norm,
        eps=float(attack.params.eps),
        clean=torch.cat(clean) if clean else empty_b,
        robust=torch.cat(robust) if robust else empty_b,
        perturbation_l2=torch.cat(l2) if l2 else empty_f,
        perturbation_linf=torch.cat(linf) if linf else empty_f,
        stats=stats,
        params=asdict(attack.params),
    )


def worst_case(evaluations: list[RobustEvaluation]) -> tuple[int, int]:
    """Robust count and n of the per-sample worst case over attacks on the *same* samples.

    A sample counts as robust only if every attack failed on it (AutoAttack's ensemble rule).
    """
    if not evaluations:
        raise ConfigError("worst_case needs at least one evaluation")
    n = evaluations[0].n
    if any(e.n != n for e in evaluations):
        raise ConfigError("worst_case: evaluations cover different numbers of samples")
    robust = evaluations[0].robust.clone()
    for e in evaluations[1:]:
        robust &= e.robust
    return int(robust.sum()), n


def robust_accuracy_at(evaluation: RobustEvaluation, eps: float, norm: str = "l2") -> float:
    """Robust accuracy of a minimal-norm attack's result (CW, HopSkipJump) at radius ``eps``.

    A sample is broken at ``eps`` if the attack fooled it with a perturbation of norm <= eps.
    """
    norms = evaluation.perturbation_l2 if norm == "l2" else evaluation.perturbation_linf
    broken = evaluation.success & (norms <= eps * (1 + 1e-6))
    return float((evaluation.clean & ~broken).sum()) / max(evaluation.n, 1)
