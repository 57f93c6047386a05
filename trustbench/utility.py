"""The utility pillar's measures: accuracy, calibration, size, and MLPerf-style performance
(SingleStream latency percentiles, Offline throughput at the best batch size).

Functions return plain dataclasses; ``suites/test_utility.py`` turns them into metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from trustbench.registry import Pillar

#: The utility pillar, the core's own (found through ``trustbench.pillars`` like the others).
PILLAR = Pillar(name="utility", question="how accurate, how fast, how big?", order=0)

PROFILE_BUDGETS: dict[str, dict[str, Any]] = {
    # latency queries follow MLPerf's SingleStream minimum of 1024 queries from `standard` on;
    # smoke keeps CI fast and says so in the metric's n.
    "smoke": {"latency_queries": 128, "throughput_seconds": 0.3, "ece_boot": 100,
              "batch_sizes": (1, 16, 128)},
    "standard": {"latency_queries": 1024, "throughput_seconds": 1.0, "ece_boot": 500,
                 "batch_sizes": (1, 8, 32, 128, 512)},
    "full": {"latency_queries": 4096, "throughput_seconds": 3.0, "ece_boot": 2000,
             "batch_sizes": (1, 8, 32, 128, 512, 2048)},
}


def budget(profile: str) -> dict[str, Any]:
    return PROFILE_BUDGETS[profile]


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017): sum_b |B|/n |acc(B) - conf(B)|."""
    conf, pred = probs.max(dim=1)
    correct = (pred == y).double()
    conf = conf.double()
    bins = torch.clamp((conf * n_bins).long(), max=n_bins - 1)
    n = len(y)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        k = int(mask.sum())
        if k:
            ece += k / n * abs(float(correct[mask].mean()) - float(conf[mask].mean()))
    return ece


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def quantile_interval(sorted_values: list[float], q: float, confidence: float = 0.95
                      ) -> tuple[float, float]:
    """Distribution-free CI of the q-quantile from order statistics (binomial bounds)."""
    from scipy.stats import binom

    n = len(sorted_values)
    alpha = 1 - confidence
    lo_i = int(binom.ppf(alpha / 2, n, q))
    hi_i = int(binom.ppf(1 - alpha / 2, n, q))
    lo_i = min(max(lo_i - 1, 0), n - 1)
    hi_i = min(max(hi_i, 0), n - 1)
    return sorted_values[lo_i], sorted_values[hi_i]


@dataclass
class LatencyResult:
    """SingleStream: one sample per query, queries back to back (MLPerf's scenario)."""

    percentiles_ms: dict[str, float]
    intervals_ms: dict[str, tuple[float, float]]
    n_queries: int
    mean_ms: float


def single_stream_latency(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                          n_queries: int, warmup: int = 10) -> LatencyResult:
    """Time ``n_queries`` single-sample forward passes, cycling through ``x``."""
    samples = [x[i % len(x)].unsqueeze(0).to(device) for i in range(min(len(x), n_queries))]
    times = []
    with torch.inference_mode():
        for i in range(warmup):
            model(samples[i % len(samples)])
        _sync(device)
        for i in range(n_queries):
            s = samples[i % len(samples)]
            t0 = time.perf_counter()
            model(s)
            _sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    pct, ints = {}, {}
    for q in (50, 90, 99):
        k = max(0, min(len(times) - 1, math.ceil(q / 100 * len(times)) - 1))
        pct[f"p{q}"] = times[k]
        ints[f"p{q}"] = quantile_interval(times, q / 100)
    return LatencyResult(pct, ints, n_queries, sum(times) / len(times))


@dataclass
class ThroughputResult:
    """Offline: all samples available at once; samples/s at each tried batch size."""

    best_batch_size: int
    best_samples_per_s: float
    best_interval: tuple[float, float]
    per_batch: dict[int, float] = field(default_factory=dict)
    repeats: int = 0


def offline_throughput(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                       batch_sizes: tuple[int, ...], seconds: float) -> ThroughputResult:
    """Samples/s per batch size, each measured for about ``seconds`` in repeated timed runs.

    The interval of the best batch size is a t-interval over its repeated runs.
    """
    from trustbench.stats import mean_interval

    per_batch: dict[int, float] = {}
    runs: dict[int, list[float]] = {}
    with torch.inference_mode():
        for bs in batch_sizes:
            reps = (x.repeat((bs + len(x) - 1) // len(x), *([1] * (x.ndim - 1)))
                    if bs > len(x) else x)
            xb = reps[:bs].to(device)
            try:
                model(xb)
                _sync(device)
            except torch.OutOfMemoryError:
                break
            rates: list[float] = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline or len(rates) < 3:
                t0 = time.perf_counter()
                iters = 0
                while iters < 1 or time.perf_counter() - t0 < seconds / 10:
                    model(xb)
                    iters += 1
                _sync(device)
                rates.append(iters * bs / (time.perf_counter() - t0))
            runs[bs] = rates
            per_batch[bs] = sorted(rates)[len(rates) // 2]
    best = max(per_batch, key=lambda b: per_batch[b])
    lo, hi = mean_interval(runs[best])
    return ThroughputResult(best, per_batch[best], (lo, hi), per_batch, len(runs[best]))
