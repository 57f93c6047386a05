"""Campaign budgets per benchmark profile (smoke / standard / full).

``smoke`` (CI): 200 weight faults, so the whole faults suite runs in seconds on a CPU.
``standard``: Leveugle et al. (2009) sample sizes for a 5 % margin at 95 % confidence.
``full``: 1 % margin at 99 % confidence (about 16.6k faults per campaign), more inputs,
every precision and fault model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trustbench.errors import ConfigError


@dataclass(frozen=True)
class FaultBudget:
    """How much a profile spends on fault injection.

    Attributes
    ----------
    profile
        Profile name.
    n_faults
        Fixed faults per campaign, or None for Leveugle's size at ``margin``/``confidence``.
    margin, confidence
        Error margin and confidence of the statistical sample size (and of the intervals).
    n_inputs
        Evaluation inputs per weight fault (test set prefix).
    n_activation_faults
        Activation faults (cheap: one per sample of a batch); None: Leveugle.
    precisions
        Precisions compared.
    fault_models
        Fault models measured besides the headline single bit flip.
    resume
        Whether the suite keeps each campaign's progress in the cache folder, so a run that
        was interrupted resumes it (same task, weights, inputs, profile and seed).
    """

    profile: str
    n_faults: int | None
    margin: float
    confidence: float
    n_inputs: int
    n_activation_faults: int | None
    precisions: tuple[str, ...]
    fault_models: tuple[str, ...]
    resume: bool = True


_BUDGETS = {
    "smoke": FaultBudget("smoke", 200, 0.05, 0.95, 256, 1024, ("fp32", "bf16", "int8"), ()),
    "standard": FaultBudget("standard", None, 0.05, 0.95, 1000, None,
                            ("fp32", "fp16", "bf16", "int8"), ("stuck_at_1", "multibit")),
    "full": FaultBudget("full", None, 0.01, 0.99, 10_000, None,
                        ("fp32", "fp16", "bf16", "int8"),
                        ("stuck_at_0", "stuck_at_1", "multibit", "burst", "random_value")),
}


def budget(profile: str, options: dict[str, Any] | None = None) -> FaultBudget:
    """The :class:`FaultBudget` of ``profile`` (``smoke``, ``standard`` or ``full``).

    ``options`` (``[tool.trustbench.faults]`` in trustbench.toml) override single fields, e.g.
    ``{"n_faults": 1000}`` or ``{"precisions": ["fp32", "int8"]}``.
    """
    try:
        base = _BUDGETS[profile]
    except KeyError:
        raise ConfigError(f"unknown profile {profile!r} for the faults pillar; accepted: "
                          f"{', '.join(_BUDGETS)}.") from None
    if not options:
        return base
    fields = {f.name for f in dataclasses.fields(FaultBudget)} - {"profile"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown [tool.trustbench.faults] option(s) {unknown}; accepted: "
                          f"{', '.join(sorted(fields))}.")
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return dataclasses.replace(base, **opts)
