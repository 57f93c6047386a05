"""Tests of trustbench.compare: refusal of mixed tasks/profiles, warnings, flags, best marking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trustbench.compare import compare, format_compare
from trustbench.errors import ConfigError, ScorecardError
from trustbench.scorecard import Metric, PillarResult, Scorecard


def card(system_id: str = "cpu-epyc-2c", run_id: str = "r1aaaaaaaaaa", *, task: str = "digits-cnn",
         profile: str = "smoke", division: str = "closed", sha: str = "ab" * 32,
         torch: str = "2.14.1", status: str = "valid", accuracy: float | None = 0.95,
         accuracy_ci: list[float] | None = None, latency: float = 2.0, score: float | None = None,
         extra: list[Metric] | None = None) -> Scorecard:
    """A small scorecard of the digits-cnn task; the keyword arguments vary what compare checks."""
    metrics = [
        Metric("utility", "accuracy", accuracy, "fraction", higher_is_better=True,
               ci=accuracy_ci, n=360, score_weight=1.0),
        Metric("utility", "latency_ms", latency, "ms", higher_is_better=False,
               hardware_dependent=True, n=200),
        Metric("utility", "parameters", 5418, "count"),
        Metric("robustness", "robust_accuracy_vs_eps",
               {"x": [0.0, 0.1, 0.3], "y": [0.95, 0.4, 0.02], "x_label": "eps"}, "fraction"),
        *(extra or []),
    ]
    return Scorecard(
        run={"id": run_id, "started": "2026-11-20T10:00:00Z", "profile": profile,
             "division": division, "seed": 0, "trustbench_version": "0.1.0", "status": status,
             "status_reason": None if status == "valid" else "interrupted", "device": "cpu"},
        system={"id": system_id, "accelerator_model_name": "none", "accelerators_per_node": 0,
                "host_processor_model_name": "AMD EPYC", "host_processor_core_count": 2,
                "operating_system": "Linux", "software": {"torch": torch}},
        task={"name": task,
              "model": {"name": task, "source": "builtin", "parameters": 5418, "sha256": sha},
              "dataset": {"name": "digits", "source": "embedded", "split": "test", "n": 360,
                          "sha256": "cd" * 32}},
        metrics=metrics,
        pillars={"utility": PillarResult(
            "measured", score=score if score is not None
            else None if accuracy is None else 100 * accuracy),
                 "privacy": PillarResult("skipped", reason="opacus is not installed")},
    )


def row(result: Any, key: str) -> Any:
    return next(r for r in result.metrics if r.key == key)


def test_compare_files_marks_best_per_direction_and_pillar_score(tmp_path: Path) -> None:
    a = card("cpu-epyc-2c", "aaaaaaaa1111", accuracy=0.95, latency=2.0, score=95.0)
    b = card("gpu-h100", "bbbbbbbb2222", accuracy=0.97, latency=0.4, score=97.0, torch="2.14.1")
    paths = [a.write(tmp_path / "a.json"), b.write(tmp_path / "b.json")]
    result = compare([str(paths[0]), b])
    assert result.sources == [paths[0], None]
    result = compare(paths)
    assert result.labels == ["cpu-epyc-2c · aaaaaaaa", "gpu-h100 · bbbbbbbb"]
    assert result.ranked and not result.mixed and result.sources == paths
    assert row(result, "utility.accuracy").best == [1]  # higher is better
    assert row(result, "utility.latency_ms").best == [1]  # lower is better
    assert row(result, "utility.parameters").best == []  # no direction: never ranked
    assert row(result, "robustness.robust_accuracy_vs_eps").best == []
    assert next(p for p in result.pillars if p.pillar == "utility").best == [1]
    assert next(p for p in result.pillars if p.pillar == "privacy").best == []
    md = format_compare(result)
    assert "| `utility.accuracy` | fraction | ↑ |  | 0.950 ≠ | **0.970** (best) ≠ |" in md
    assert "| `utility.latency_ms` | ms | ↓ | hw | 2.000 | **0.400** (best) |" in md
    assert "| utility | 95.0 | **97.0** (best) |" in md
    assert "| privacy | skipped | skipped |" in md
    assert "series, 3 points" in md
    assert "| | cpu-epyc-2c · aaaaaaaa | gpu-h100 · bbbbbbbb |" in md


def test_refuses_different_tasks_or_profiles_unless_mixed_allowed() -> None:
    with pytest.raises(ScorecardError, match=r"different tasks, profiles.*'arrests-mlp'"):
        compare([card(), card(run_id="r2", task="arrests-mlp")])
    with pytest.raises(ScorecardError, match=r"profile 'standard'.*allow_mixed"):
        compare([card(), card(run_id="r2", profile="standard")])
    result = compare([card(accuracy=0.5), card(run_id="r2", profile="standard", accuracy=0.9)],
                     allow_mixed=True)
    assert result.mixed and not result.ranked
    assert all(not r.best and not r.tied for r in result.metrics)
    assert all(not p.best for p in result.pillars)
    md = format_compare(result)
    assert "(best)" not in md.split("Legend")[0]
    assert "Not ranked: tasks, profiles, seeds or settings differ." in md


def test_refuses_different_seeds_or_pillar_settings() -> None:
    other_seed = card(run_id="r2")
    other_seed.run["seed"] = 1
    with pytest.raises(ScorecardError, match=r"seed 0.*seed 1"):
        compare([card(), other_seed])
    tuned = card(run_id="r3")
    tuned.run["settings"] = {"faults": {"n_faults": 50}}
    with pytest.raises(ScorecardError, match=r"settings \{\"faults\": \{\"n_faults\": 50\}\}"):
        compare([card(), tuned])
    result = compare([card(), tuned], allow_mixed=True)
    assert not result.ranked
    md = format_compare(result)
    assert "| seed | 0 | 0 |" in md and '"n_faults": 50' in md


def test_warns_when_weights_torch_or_division_differ() -> None:
    result = compare([card(), card("other", "r2", sha="ef" * 32, torch="2.4.0",
                                   division="open")])
    text = " ".join(result.warnings)
    assert "weights differ (model sha256 abababababab vs efefefefefef): hardware-independent " \
           "metrics are not comparable" in text
    assert "torch versions differ (2.14.1, 2.4.0)" in text
    assert "divisions differ" in text and not result.ranked
    md = format_compare(result)
    assert "> ⚠ weights differ" in md


def test_hardware_independent_values_flagged_beyond_ci_and_tolerance() -> None:
    same = compare([card(accuracy=0.95), card("gpu", "r2", accuracy=0.9505)])
    assert row(same, "utility.accuracy").differs == []  # within rtol 1e-3
    overlapping = compare([card(accuracy=0.95, accuracy_ci=[0.92, 0.97]),
                           card("gpu", "r2", accuracy=0.94, accuracy_ci=[0.91, 0.96])])
    assert row(overlapping, "utility.accuracy").differs == []
    apart = compare([card(accuracy=0.95, accuracy_ci=[0.93, 0.97]),
                     card("gpu", "r2", accuracy=0.80, accuracy_ci=[0.76, 0.84]),
                     card("gpu", "r3", accuracy=0.951)])
    assert row(apart, "utility.accuracy").differs == [0, 1, 2]
    # hardware-dependent metrics are expected to differ and are never flagged
    assert row(apart, "utility.latency_ms").differs == []
    hw = compare([card(latency=1.0), card("gpu", "r2", latency=9.0)])
    assert row(hw, "utility.latency_ms").differs == [] and row(hw, "utility.latency_ms").best == [0]


def test_ties_are_shown_not_hidden() -> None:
    exact = compare([card(accuracy=0.95), card("gpu", "r2", accuracy=0.95)])
    assert row(exact, "utility.accuracy").best == [0, 1]
    close = compare([card(accuracy=0.95, accuracy_ci=[0.93, 0.97]),
                     card("gpu", "r2", accuracy=0.94, accuracy_ci=[0.92, 0.96]),
                     card("jetson", "r3", accuracy=0.80, accuracy_ci=[0.76, 0.84])])
    acc = row(close, "utility.accuracy")
    assert acc.best == [0] and acc.tied == [1]
    assert "0.940 [0.920, 0.960] (tied)" in format_compare(close)


def test_invalid_runs_and_missing_values_are_never_best() -> None:
    result = compare([card(accuracy=0.9), card("gpu", "r2", accuracy=0.99, status="incomplete"),
                      card("cpu2", "r3", accuracy=None)])
    assert row(result, "utility.accuracy").best == [0]
    assert any("incomplete (interrupted)" in w for w in result.warnings)
    assert "| 0.990 ≠ | — |" in format_compare(result)  # not bold: the incomplete run


def test_metric_missing_in_one_card_and_unit_mismatch() -> None:
    extra_a = [Metric("faults", "sdc_rate", 0.01, "fraction", higher_is_better=False)]
    extra_b = [Metric("faults", "sdc_rate", 1.0, "percent", higher_is_better=False),
               Metric("carbon", "joules_per_inference", 0.002, "J", higher_is_better=False,
                      hardware_dependent=True)]
    result = compare([card(extra=extra_a), card("gpu", "r2", extra=extra_b)])
    sdc = row(result, "faults.sdc_rate")
    assert sdc.note.startswith("units differ") and sdc.best == [] and sdc.differs == []
    joules = row(result, "carbon.joules_per_inference")
    assert joules.values[0] is None and joules.best == [1]
    assert any("units differ" in w for w in result.warnings)


def test_labels_unique_and_escaped() -> None:
    result = compare([card("<script>x</script>", "same"), card("<script>x</script>", "same")])
    assert result.labels[0] != result.labels[1]
    md = format_compare(result)
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_bad_input_raises(tmp_path: Path) -> None:
    good = card().write(tmp_path / "good.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "trustbench.scorecard/1", "run": ', encoding="utf-8")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"benchmarks": [], "machine_info": {}}), encoding="utf-8")
    with pytest.raises(ScorecardError, match="is not valid JSON"):
        compare([good, corrupt])
    with pytest.raises(ScorecardError, match="not a trustbench scorecard"):
        compare([foreign, good])
    with pytest.raises(ConfigError, match="nothing to compare"):
        compare([])


def test_single_scorecard_is_shown_unranked() -> None:
    result = compare([card()])
    assert not result.ranked and "Not ranked: a single scorecard." in format_compare(result)


def test_a_card_with_edited_scores_is_never_marked_best() -> None:
    edited = card(run_id="r2", accuracy=0.99, score=100.0)  # stored score: not what it gives
    result = compare([card(accuracy=0.5, score=50.0), edited])
    assert any("stored pillar scores differ" in w for w in result.warnings)
    assert all(1 not in p.best for p in result.pillars)
    assert all(1 not in r.best for r in result.metrics)
