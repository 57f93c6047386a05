"""Budgets of the fairness pillar per profile, and the user settings that may change them.

``budget(profile, options)`` returns a :class:`FairnessBudget`; ``options`` are the user's
``[tool.trustbench.fairness]`` settings (``bench_config.pillar_options("fairness")``), e.g.::

    [tool.trustbench.fairness]
    min_group_size = 50
    n_boot = 1000
    intersections = "all"
    sensitive = ["sex", "age_group"]
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from trustbench.errors import ConfigError

PROFILES = ("smoke", "standard", "full")


@dataclass(frozen=True)
class FairnessBudget:
    """What one fairness run measures and how hard.

    Attributes
    ----------
    n_boot
        Bootstrap resamples behind every interval.
    confidence
        Interval coverage (0.95: the 2.5 % and 97.5 % percentiles).
    min_group_size
        Groups with fewer test rows are flagged; disparities they define are marked unreliable.
    intersections
        ``"full"`` (each feature and all crossed), ``"all"`` (every combination), ``"none"``.
    sensitive
        Sensitive columns to use (None: all the task's sensitive columns).
    mitigation
        Whether to run the ThresholdOptimizer trade-off.
    mitigation_fit_rows
        Most training rows the ThresholdOptimizer is fitted on (a seeded subsample).
    four_fifths_threshold
        Selection-rate ratio below which the four-fifths rule is not met.
    """

    n_boot: int
    confidence: float = 0.95
    min_group_size: int = 30
    intersections: str = "full"
    sensitive: tuple[str, ...] | None = None
    mitigation: bool = True
    mitigation_fit_rows: int = 5000
    four_fifths_threshold: float = 0.8


_DEFAULTS = {
    "smoke": FairnessBudget(n_boot=100, mitigation_fit_rows=2000),
    "standard": FairnessBudget(n_boot=500),
    "full": FairnessBudget(n_boot=2000, mitigation_fit_rows=50_000),
}


def budget(profile: str, options: dict[str, Any] | None = None) -> FairnessBudget:
    """The budget of ``profile`` with the user's ``options`` applied.

    Raises
    ------
    ConfigError
        Unknown profile, unknown option, or an option value out of range.
    """
    if profile not in _DEFAULTS:
        raise ConfigError(f"unknown profile {profile!r}; accepted: {', '.join(PROFILES)}")
    b = _DEFAULTS[profile]
    if not options:
        return b
    known = {f.name for f in fields(FairnessBudget)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown [tool.trustbench.fairness] setting(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(known))}"
        )
    opts = dict(options)
    if "sensitive" in opts and opts["sensitive"] is not None:
        s = opts["sensitive"]
        opts["sensitive"] = tuple([s] if isinstance(s, str) else s)
    b = replace(b, **opts)
    if not isinstance(b.n_boot, int) or b.n_boot < 1:
        raise ConfigError(f"fairness n_boot must be a positive integer, got {b.n_boot!r}")
    if not 0.0 < float(b.confidence) < 1.0:
        raise ConfigError(f"fairness confidence must be in (0, 1), got {b.confidence!r}")
    if not isinstance(b.min_group_size, int) or b.min_group_size < 1:
        raise ConfigError(
            f"fairness min_group_size must be a positive integer, got {b.min_group_size!r}"
        )
    if b.intersections not in ("none", "full", "all"):
        raise ConfigError(
            f"fairness intersections must be 'none', 'full' or 'all', got {b.intersections!r}"
        )
    if not 0.0 < float(b.four_fifths_threshold) <= 1.0:
        raise ConfigError(
            f"fairness four_fifths_threshold must be in (0, 1], got {b.four_fifths_threshold!r}"
        )
    return b
