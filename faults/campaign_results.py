"""What a campaign measured: :class:`CampaignResult`, per-layer :class:`LayerVulnerability`,
and how outcome codes become rates with intervals (:func:`summarise`).

Every rate is a :class:`trustbench.stats.Estimate`: a proportion of faults with its Wilson
interval at the campaign's confidence (``k`` faults of ``n``); a rate over no faults has value
nan and the interval ``(0, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trustbench.faults.base import FaultModel
from trustbench.faults.campaign_config import CampaignConfig
from trustbench.faults.campaign_plan import CampaignSites, FaultPlan
from trustbench.faults.campaign_state import CampaignState
from trustbench.faults.outcomes import CRITICAL_SDC, DUE, MASKED, SDC
from trustbench.stats import Estimate, proportion


def wilson_rate(k: int, n: int, confidence: float = 0.95) -> Estimate:
    """``k`` of ``n`` faults as a rate with its Wilson interval (``n == 0``: value nan,
    interval ``(0, 1)``, since a site no fault hit still has a row)."""
    if n == 0:
        return Estimate(float("nan"), (0.0, 1.0), 0, "wilson", float(confidence), k=0)
    return proportion(int(k), int(n), confidence, "wilson")


@dataclass
class LayerVulnerability:
    """Outcome rates of the faults that hit one site."""

    layer: str
    layer_type: str
    bits_share: float
    sdc: Estimate
    critical_sdc: Estimate
    due: Estimate
    #: Weight sites: share of the site's words that are inert on the evaluation inputs (every
    #: product they enter multiplies a zero; see :mod:`.inert`); None: not analysed.
    inert_share: float | None = None


@dataclass
class CampaignResult:
    """Outcome of a campaign.

    ``sdc`` counts every fault that changed a top-1 decision (critical ones included);
    ``critical_sdc`` those that made a correct prediction wrong; ``due`` non-finite outputs and
    exceptions; each rate is an :class:`~trustbench.stats.Estimate` (``k`` of ``n`` faults,
    Wilson interval at ``confidence``), as are the rates of ``per_layer``. Per-bit statistics
    are a matrix: rows are sites, columns bit positions. ``path`` says how much was recomputed
    per weight fault (``fx``/``declared`` chain of segments, ``full`` forward, ``hooks`` for
    activations); ``execution`` how it ran (``cuda-graphs``, ``eager`` or
    ``cuda-graphs+eager``), with the reason in ``execution_reason``. ``inert_bits_share`` is the
    share of the analysed weight bits that no output can depend on (see
    :mod:`trustbench.faults.inert`; None when nothing was analysed) and ``n_pruned`` how many
    faults of this run were decided from it without a forward pass
    (``analysed_bits``: the stored bits of the analysed sites).
    """

    target: str
    fault_model: dict[str, Any]
    distribution: str
    dtype: str
    n_faults: int
    n_inputs: int
    counts: dict[str, int]
    sdc: Estimate
    critical_sdc: Estimate
    due: Estimate
    masked: Estimate
    mean_inputs_changed: float
    per_layer: list[LayerVulnerability]
    per_bit_rows: list[str]
    per_bit_cols: list[int]
    per_bit_sdc: list[list[float | None]]
    per_bit_n: list[list[int]]
    path: str
    path_reason: str
    strict_fp32: bool
    elapsed_s: float
    faults_per_second: float
    complete: bool
    state: CampaignState
    plan: FaultPlan = field(repr=False)
    outcomes: np.ndarray = field(repr=False)
    confidence: float = 0.95
    execution: str = "eager"
    execution_reason: str = ""
    inert_bits_share: float | None = None
    analysed_bits: int = 0
    n_pruned: int = 0
    #: Faults taken from a saved state instead of measured in this call (0: none).
    resumed_from: int = 0
    #: Interval of ``mean_inputs_changed`` (see :func:`mean_changed_interval`).
    mean_inputs_changed_ci: tuple[float, float] = (float("nan"), float("nan"))

    def per_bit_series(self) -> dict[str, list]:
        """SDC rate per bit position over all sites (x: bit, y: rate, ci: Wilson)."""
        xs, ys, cis = [], [], []
        for b in self.per_bit_cols:
            sel = self.plan.bit[: len(self.outcomes)] == b
            n = int(sel.sum())
            if n == 0:
                continue
            r = wilson_rate(int(np.isin(self.outcomes[sel], (SDC, CRITICAL_SDC)).sum()), n,
                            self.confidence)
            xs.append(int(b))
            ys.append(r.value)
            cis.append(list(r.ci))
        return {"x": xs, "y": ys, "ci": cis}


def mean_changed_interval(fractions: np.ndarray, confidence: float = 0.95
                          ) -> tuple[float, float]:
    """Interval of the mean share of inputs a fault changes, over the faults.

    A percentile bootstrap over the faults (the shares are bounded and very skewed: most faults
    change nothing, so a t interval would be wrong). Where no fault changed any input the
    bootstrap collapses to a point; the bound used then is the Wilson interval of "the fault
    changed at least one input" (0 of n), which bounds the mean share from above. Fewer than two
    faults: ``(nan, nan)``.
    """
    from trustbench.stats import bootstrap_mean_interval, wilson_interval

    if len(fractions) < 2:
        return float("nan"), float("nan")
    if not fractions.any():
        return 0.0, wilson_interval(0, len(fractions), confidence)[1]
    lo, hi = bootstrap_mean_interval(fractions, confidence=confidence)
    return float(lo), float(hi)


def summarise(cfg: CampaignConfig, fm: FaultModel, plan: FaultPlan, state: CampaignState,
              sites: CampaignSites, n_inputs: int, path: str, reason: str) -> CampaignResult:
    """Turn outcome codes into rates, per-layer and per-bit statistics."""
    conf = cfg.confidence
    names, types, numel, layouts = sites.names, sites.types, sites.numel, sites.layouts
    out = np.asarray(state.outcomes, dtype=np.int8)
    n = len(out)
    site = plan.site[:n]
    bit = plan.bit[:n]
    is_sdc = (out == SDC) | (out == CRITICAL_SDC)
    counts = {"masked": int((out == MASKED).sum()), "sdc": int((out == SDC).sum()),
              "critical_sdc": int((out == CRITICAL_SDC).sum()), "due": int((out == DUE).sum())}
    total_bits = sites.bits
    per_layer = []
    for s, name in enumerate(names):
        sel = site == s
        k = int(sel.sum())
        per_layer.append(LayerVulnerability(
            name, types[s], numel[s] * layouts[s].nbits / total_bits,
            wilson_rate(int(is_sdc[sel].sum()), k, conf),
            wilson_rate(int((out[sel] == CRITICAL_SDC).sum()), k, conf),
            wilson_rate(int((out[sel] == DUE).sum()), k, conf)))
    nbits = max(lay.nbits for lay in layouts)
    cols = list(range(nbits))
    sdc_m: list[list[float | None]] = []
    n_m: list[list[int]] = []
    for s in range(len(names)):
        row_v: list[float | None] = []
        row_n: list[int] = []
        for b in cols:
            sel = (site == s) & (bit == b)
            k = int(sel.sum())
            row_n.append(k)
            row_v.append(float(is_sdc[sel].mean()) if k else None)
        sdc_m.append(row_v)
        n_m.append(row_n)
    changed = np.asarray(state.changed, dtype=np.float64)
    dtypes = sorted({lay.name for lay in layouts})
    return CampaignResult(
        target=cfg.target, fault_model=fm.describe(), distribution=cfg.distribution,
        dtype="/".join(dtypes), n_faults=n, n_inputs=n_inputs, counts=counts,
        sdc=wilson_rate(int(is_sdc.sum()), n, conf),
        critical_sdc=wilson_rate(counts["critical_sdc"], n, conf),
        due=wilson_rate(counts["due"], n, conf), masked=wilson_rate(counts["masked"], n, conf),
        mean_inputs_changed=float(changed.mean() / n_inputs) if n else float("nan"),
        mean_inputs_changed_ci=mean_changed_interval(changed / n_inputs, conf),
        per_layer=per_layer, per_bit_rows=list(names), per_bit_cols=cols, per_bit_sdc=sdc_m,
        per_bit_n=n_m, path=path, path_reason=reason, strict_fp32=cfg.strict_fp32,
        elapsed_s=state.elapsed_s, faults_per_second=(n / state.elapsed_s
                                                      if state.elapsed_s > 0 else float("nan")),
        complete=n == state.n_total, state=state, plan=plan, outcomes=out, confidence=conf)
