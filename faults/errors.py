"""Errors of the faults pillar: bad fault-model parameters, sites, dtypes and campaign sizes."""

from __future__ import annotations

from trustbench.errors import BenchError


class FaultError(BenchError, ValueError):
    """A fault model, injection site, dtype or campaign setting that is not accepted."""


class IntegrityError(BenchError, RuntimeError):
    """The weights were not bit-identical after a campaign (a bug, never expected)."""
