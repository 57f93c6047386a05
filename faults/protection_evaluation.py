"""What a protection buys and costs: :func:`evaluate_protection` and its paired statistics.

The same fault campaign runs without and with the protection (the same faults, drawn from the
same seed), and the clean model is timed in interleaved pairs; the SDC reductions, the
clean-accuracy cost and the latency overhead each come with an interval
(:class:`ProtectionResult`). Comparisons are paired (fault by fault, input by input) wherever
both runs measured the same units (:func:`paired_counts`,
:func:`trustbench.stats.paired_difference`), else the independent-samples hybrid score interval
(:func:`newcombe_difference`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from trustbench.faults.campaign import (
    CampaignConfig,
    CampaignResult,
    Checkpoint,
    check_eval_mode,
    run_campaign,
)
from trustbench.faults.outcomes import CRITICAL_SDC, SDC
from trustbench.faults.runtime import device_of
from trustbench.stats import bootstrap_interval, paired_difference

if TYPE_CHECKING:
    from trustbench.faults.protection import Protection

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
    baseline: CampaignResult
    protected: CampaignResult
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


def _same_faults(a: CampaignResult, b: CampaignResult) -> bool:
    """Whether both campaigns are complete and ran the same faults in the same order."""
    n = len(a.outcomes)
    if not (a.complete and b.complete and n == len(b.outcomes) and n > 0):
        return False
    pa, pb = a.plan, b.plan
    return all(np.array_equal(getattr(pa, f)[:n], getattr(pb, f)[:n])
               for f in ("site", "element", "payload", "bit"))


def _rate_reduction(base: CampaignResult, prot: CampaignResult, codes: tuple[int, ...],
                    paired: bool, rate: str) -> tuple[float, tuple[float, float]]:
    """Reduction of the rate of ``codes`` from ``base`` to ``prot`` and its interval: paired
    over the faults where both ran the same ones, else from the two Wilson intervals."""
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
                        protection: Protection, config: CampaignConfig | None = None, *,
                        x_fit: torch.Tensor | None = None,
                        baseline: CampaignResult | None = None,
                        checkpoint: Callable[[str], Checkpoint | None] | None = None,
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
    check_eval_mode(model)  # before fitting, which runs the model
    if not protection.fitted:
        protection.fit(model, x if x_fit is None else x_fit)

    def ckpt(label: str) -> Checkpoint | None:
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
