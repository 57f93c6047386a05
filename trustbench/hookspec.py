"""Hooks that other pytest plugins (or a conftest.py) can implement to extend the scorecard,
like pytest-benchmark's ``pytest_benchmark_update_json``."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_trustbench_update_scorecard(config: pytest.Config, scorecard: Any) -> None:
    """Change a task's :class:`~trustbench.scorecard.Scorecard` before its final write.

    Called once per task at the end of the session, on the controller. Add fields under
    ``scorecard.run`` or ``scorecard.system`` (e.g. a lab's rack id), or append metrics; the
    result must still pass the schema.
    """
