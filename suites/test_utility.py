"""Utility pillar: how accurate, how well calibrated, how big, how fast?

Accuracy and calibration are hardware-independent (same weights, same data -> same value);
latency and throughput are hardware-dependent and follow MLPerf's SingleStream and Offline
scenarios.
"""

from __future__ import annotations

import pytest
import torch

from trustbench import models, stats, utility


@pytest.fixture(scope="module")
def predictions(task):
    logits = task.logits(task.x_test).float().cpu()
    if not torch.isfinite(logits).all():
        pytest.fail(f"task {task.name}: the model returns NaN/Inf on clean test inputs",
                    pytrace=False)
    return logits


def test_accuracy(task, predictions, record_metric):
    y = task.y_test
    correct = predictions.argmax(1) == y
    k, n = int(correct.sum()), len(y)
    est = stats.proportion(k, n)
    record_metric("accuracy", est.value, unit="fraction", higher_is_better=True, ci=est.ci, n=n,
                  params={"interval": "wilson", "confidence": 0.95}, score_weight=1.0)
    rows = []
    for c, cname in enumerate(task.class_names):
        mask = y == c
        nc = int(mask.sum())
        kc = int(correct[mask].sum())
        e = stats.proportion(kc, nc) if nc else None
        rows.append({"group": cname, "value": e.value if e else None,
                     "ci": list(e.ci) if e else None, "n": nc})
    record_metric("per_class_accuracy", {"rows": rows}, unit="fraction", higher_is_better=True,
                  n=n, params={"interval": "wilson"})
    assert 0.0 <= est.value <= 1.0


def test_calibration(task, predictions, profile, bench_config, record_metric):
    probs = predictions.softmax(1)
    y = task.y_test
    ece = utility.expected_calibration_error(probs, y)
    b = utility.budget(profile)
    lo, hi = stats.bootstrap_interval(
        lambda p, t: utility.expected_calibration_error(torch.as_tensor(p), torch.as_tensor(t)),
        probs.numpy(), y.numpy(), n_resamples=b["ece_boot"], seed=bench_config.seed)
    record_metric("expected_calibration_error", ece, unit="fraction", higher_is_better=False,
                  ci=(lo, hi), n=len(y),
                  params={"bins": 15, "interval": "bootstrap percentile",
                          "resamples": b["ece_boot"]})
    per_sample = torch.nn.functional.cross_entropy(predictions, y, reduction="none")
    nll = per_sample.mean().item()
    record_metric("negative_log_likelihood", nll, unit="nats/sample", higher_is_better=False,
                  ci=stats.bootstrap_mean_interval(per_sample.double().numpy(),
                                                   seed=bench_config.seed),
                  n=len(y), params={"interval": "bootstrap percentile over the samples"})
    assert 0.0 <= ece <= 1.0


def test_size(task, record_metric):
    record_metric("parameters", models.count_parameters(task.raw_model), unit="count")
    record_metric("model_size", models.model_size_bytes(task.raw_model), unit="bytes",
                  higher_is_better=False)


def test_single_stream_latency(task, profile, record_metric):
    b = utility.budget(profile)
    res = utility.single_stream_latency(task.model, task.x_test, task.device,
                                        b["latency_queries"])
    for q, v in res.percentiles_ms.items():
        record_metric(f"single_stream_latency_{q}", v, unit="ms", higher_is_better=False,
                      ci=res.intervals_ms[q], n=res.n_queries, hardware_dependent=True,
                      params={"scenario": "SingleStream", "batch_size": 1,
                              "interval": "order statistics",
                              "threads": torch.get_num_threads()})
    assert res.percentiles_ms["p50"] <= res.percentiles_ms["p99"]


def test_offline_throughput(task, profile, record_metric):
    b = utility.budget(profile)
    res = utility.offline_throughput(task.model, task.x_test, task.device, b["batch_sizes"],
                                     b["throughput_seconds"])
    record_metric("offline_throughput", res.best_samples_per_s, unit="samples/s",
                  higher_is_better=True, ci=res.best_interval, n=res.repeats,
                  hardware_dependent=True,
                  params={"scenario": "Offline", "best_batch_size": res.best_batch_size,
                          "interval": "t over repeated runs"})
    bs = sorted(res.per_batch)
    record_metric("throughput_by_batch_size",
                  {"x": bs, "y": [res.per_batch[k] for k in bs], "x_label": "batch size",
                   "y_label": "samples/s"},
                  unit="samples/s", higher_is_better=True, hardware_dependent=True)
    assert res.best_samples_per_s > 0
