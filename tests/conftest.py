"""Shared test fixtures: an isolated reference-model cache and offline environment."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n N` already runs N processes; torch's own intra-op threads on top of them
    # oversubscribe the cores (seen: 10x slower tests on 2 cores). Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

for _k, _v in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "FLWR_TELEMETRY_ENABLED": "0",
               "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)


@pytest.fixture(scope="session", autouse=True)
def _reference_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep reference models of the tests out of the user's cache (unless CI shares one)."""
    if "TRUSTBENCH_CACHE" not in os.environ:
        os.environ["TRUSTBENCH_CACHE"] = str(tmp_path_factory.getbasetemp() / "tb-cache")


@pytest.fixture(scope="session")
def cpu_config():
    from trustbench.config import build_config

    return build_config({"bench_device": "cpu"})


@pytest.fixture(scope="session")
def digits_task(cpu_config):
    from trustbench.tasks import build_task

    return build_task("digits-cnn", cpu_config)
