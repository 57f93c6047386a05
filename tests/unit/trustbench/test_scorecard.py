from __future__ import annotations

import json
import os
import stat

import pytest

from trustbench import scorecard as sc
from trustbench.errors import ScorecardError


def make_card(**run_overrides) -> sc.Scorecard:
    run = {"id": "abc12345", "started": "2026-11-23T00:00:00Z", "finished": None,
           "profile": "smoke", "division": "closed", "seed": 0, "trustbench_version": "0.1.0",
           "argv": [], "status": "valid", "status_reason": None}
    run.update(run_overrides)
    system = {"id": "amd-epyc-2c-cpu", "accelerator_model_name": "N/A",
              "accelerators_per_node": 0, "host_processor_model_name": "AMD EPYC",
              "host_processor_core_count": 2, "operating_system": "Linux", "software": {}}
    task = {"name": "digits-cnn",
            "model": {"name": "DigitsCNN", "source": "x", "parameters": 10, "sha256": "ab"},
            "dataset": {"name": "digits", "source": "y", "split": "test", "n": 450,
                        "sha256": "cd"}}
    metrics = [
        sc.Metric("utility", "accuracy", 0.9, "fraction", True, [0.85, 0.94], 450,
                  score_weight=1.0),
        sc.Metric("utility", "ece", 0.1, "fraction", False, None, 450, score_weight=1.0),
        sc.Metric("robustness", "curve", {"x": [0, 0.1], "y": [0.9, 0.5]}, "fraction", True),
    ]
    card = sc.Scorecard(run=run, system=system, task=task, metrics=metrics,
                        pillars={"utility": sc.PillarResult("measured")})
    card.pillars["utility"].score = sc.pillar_score(card.metrics, "utility")
    return card


def test_roundtrip_and_validation(tmp_path):
    card = make_card()
    path = card.write(tmp_path / "a" / "card.json")
    loaded = sc.load(path)
    assert loaded.to_dict() == card.to_dict()
    assert sc.validation_errors(json.loads(path.read_text())) == []


def test_pillar_score_formula():
    card = make_card()
    # accuracy 0.9 -> 90, ece 0.1 lower-is-better -> 90; equal weights -> 90
    assert card.pillars["utility"].score == pytest.approx(90.0)
    assert sc.pillar_score(card.metrics, "robustness") is None


def test_never_overwrite(tmp_path):
    card = make_card()
    path = card.write(tmp_path / "card.json")
    with pytest.raises(ScorecardError, match="refusing to overwrite"):
        card.write(path)
    card.write(path, replace_own=True)  # a run updating its own file


def test_atomic_write_leaves_no_temp_files(tmp_path):
    make_card().write(tmp_path / "c.json")
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_scorecards_are_readable_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        make_card().write(tmp_path / "c.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o644  # not mkstemp's 0600


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_root_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(ScorecardError, match="--bench-out"):
        make_card().write(ro / "x" / "c.json")


def test_unwritable_root_as_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ScorecardError, match="writable folder"):
        make_card().write(blocker / "c.json")


def test_corrupt_and_foreign_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScorecardError, match="not valid JSON"):
        sc.load(bad)
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ScorecardError, match="not a trustbench scorecard"):
        sc.load(foreign)
    with pytest.raises(ScorecardError, match="no such scorecard"):
        sc.load(tmp_path / "missing.json")


def test_schema_violation_is_named(tmp_path):
    d = make_card().to_dict()
    d["run"]["status"] = "great"
    d["metrics"][0].pop("unit")
    p = tmp_path / "v.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ScorecardError) as err:
        sc.load(p)
    assert "run/status" in str(err.value) and "unit" in str(err.value)


def test_duplicate_metric_names_fail_validation():
    d = make_card().to_dict()
    d["metrics"].append(dict(d["metrics"][0]))
    assert any("appears twice" in e for e in sc.validation_errors(d))


def test_metric_shapes_and_plain_values():
    import numpy as np

    m = sc.Metric("x", "y", np.float32(0.5), "u", ci=(np.float64(0.1), 0.9), n=np.int64(3))
    assert isinstance(m.value, float) and m.ci == [0.1, 0.9] and m.n == 3
    assert sc.value_shape({"rows": [{"group": "a", "value": 1}]}) == "table"
    assert sc.value_shape({"rows": ["a"], "cols": ["b"], "values": [[1]]}) == "matrix"
    with pytest.raises(ValueError, match="accepted shapes"):
        sc.Metric("x", "y", [1, 2], "u")
    with pytest.raises(ValueError, match="bool"):
        sc.Metric("x", "y", True, "u")
    assert sc.Metric("x", "y", float("nan"), "u").value is None


def test_scorecard_path_is_safe():
    p = sc.scorecard_path("results", "nvidia-h100-80gb-x1", "open-my/model", "2026-11-23T01:02:03Z",
                          "abcd")
    assert p.as_posix() == "results/nvidia-h100-80gb-x1/open-my-model/20261123T010203Z-abcd.json"


def test_shipped_schema_copy_is_identical():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    copy = repo / "results" / "schema" / "scorecard-1.json"
    assert copy.read_text() == sc.schema_path().read_text()
