"""Shared fixtures of the benchmark suites.

The ``task``, ``bench_config``, ``record_metric`` and ``record_check`` fixtures come from the
trustbench pytest plugin (``trustbench.pytest_plugin``, loaded through its entry point).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("trustbench"):
        raise pytest.UsageError(
            "the trustbench pytest plugin is not loaded: install trustbench "
            "(`pip install -e .` in the repository) before running `pytest suites/`"
        )
    from trustbench.config import apply_offline_env

    apply_offline_env()  # the benchmark never downloads unless the user set these variables


@pytest.fixture(scope="session")
def profile(bench_config):
    """The run's budget profile name: smoke, standard or full."""
    return bench_config.profile
