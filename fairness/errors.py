"""Errors of the fairness pillar: sensitive columns that cannot define groups, and group
metrics asked of data that cannot give them. All are :class:`trustbench.errors.BenchError`
subclasses, so the plugin and the CLI print them as one paragraph without a traceback."""

from __future__ import annotations

from trustbench.errors import BenchError


class FairnessError(BenchError):
    """Bad input to the fairness pillar (sensitive columns, labels, predictions)."""


class SensitiveColumnError(FairnessError):
    """A sensitive column that does not exist, or that cannot split the data into groups."""
