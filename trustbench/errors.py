"""The exceptions the harness raises for bad input: one paragraph that says what was wrong
and what is accepted. The pytest plugin and the CLI print them without a traceback."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every trustbench error meant for the user (bad input, not a bug)."""


class ConfigError(BenchError):
    """An option, profile, device or configuration file value that is not accepted."""


class DataError(BenchError):
    """A dataset that cannot be found, read, or that does not fit the task."""


class ModelError(BenchError):
    """A model factory, weights file or model output that does not fit."""


class ScorecardError(BenchError):
    """A scorecard file that is missing, corrupt, foreign or invalid, or cannot be written."""
