"""The CLI end to end: run the real utility suite, then validate, report and compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def tb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trustbench.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("results")
    for _ in range(2):
        res = tb("run", "--pillar", "utility", "--bench-task", "digits-cnn", "--bench-profile",
                 "smoke", "--bench-out", str(out), "--", "-q", cwd=out)
        assert res.returncode == 0, res.stdout + res.stderr
    files = sorted(out.rglob("*.json"))
    assert len(files) == 2
    return files


def test_run_writes_valid_scorecards(cards):
    res = tb("validate", *map(str, cards))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": valid") == 2
    card = json.loads(cards[0].read_text())
    names = {m["name"] for m in card["metrics"]}
    assert {"accuracy", "expected_calibration_error", "single_stream_latency_p99",
            "offline_throughput", "parameters", "model_size"} <= names
    acc = next(m for m in card["metrics"] if m["name"] == "accuracy")
    assert 0.95 <= acc["value"] <= 1 and acc["ci"][0] < acc["value"] < acc["ci"][1]
    assert acc["n"] == 450 and not acc["hardware_dependent"]
    lat = next(m for m in card["metrics"] if m["name"] == "single_stream_latency_p50")
    assert lat["hardware_dependent"] and lat["n"] == 128


def test_validate_detects_tampered_score(cards, tmp_path):
    card = json.loads(cards[0].read_text())
    card["pillars"]["utility"]["score"] = 12.0
    p = tmp_path / "tampered.json"
    p.write_text(json.dumps(card))
    res = tb("validate", str(p))
    assert res.returncode == 1 and "recomputed" in res.stdout


def test_report_and_compare(cards, tmp_path):
    res = tb("report", str(cards[0]), "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    html = next(tmp_path.glob("*.html")).read_text()
    assert "data:image/png;base64," in html and "accuracy" in html
    res = tb("compare", *map(str, cards))
    assert res.returncode == 0, res.stderr
    assert "utility.accuracy" in res.stdout


@pytest.mark.parametrize("command", ["validate", "report", "compare"])
def test_corrupt_and_foreign_files(command, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    res = tb(command, str(bad))
    assert res.returncode == 2 and "not valid JSON" in res.stderr
    assert "Traceback" not in res.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"machine_info": {}}')
    res = tb(command, str(foreign))
    if command == "validate":  # readable but not a scorecard: invalid (1), said on stdout
        assert res.returncode == 1 and "not a trustbench scorecard" in res.stdout
    else:
        assert res.returncode == 2 and "not a trustbench scorecard" in res.stderr


def test_validate_checks_every_file_and_the_shape_of_values(cards, tmp_path):
    import re

    good = cards[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    data = json.loads(good.read_text())
    data["metrics"][0]["value"] = {"x": [0.1, 0.2], "y": [0.5]}
    short = tmp_path / "short.json"
    short.write_text(json.dumps(data))
    nan = tmp_path / "nan.json"
    nan.write_text(re.sub(r'"value": [0-9.eE+-]+', '"value": NaN', good.read_text(), count=1))
    res = tb("validate", str(bad), str(short), str(nan), str(good))
    assert res.returncode == 2
    assert f"{bad}: UNREADABLE" in res.stdout and f"{good}: valid" in res.stdout  # all checked
    assert f"{short}: INVALID" in res.stdout and "the same length" in res.stdout
    assert "literal NaN" in res.stderr
    res = tb("validate", str(short), str(good))
    assert res.returncode == 1  # invalid, but every file could be read


def test_list_and_system():
    res = tb("list")
    assert res.returncode == 0 and "mnist5k-cnn" in res.stdout and "arrests-mlp" in res.stdout
    res = tb("system")
    info = json.loads(res.stdout)
    assert info["id"] and "host_processor_model_name" in info


def test_run_unknown_pillar():
    res = tb("run", "--pillar", "vibes")
    assert res.returncode == 2 and "no suite for pillar 'vibes'" in res.stderr


def test_new_attack_writes_a_working_plugin(tmp_path):
    res = tb("new", "attack", "my-attack", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    path = tmp_path / "my_attack.py"
    assert "class MyAttack" in path.read_text()
    again = tb("new", "attack", "my-attack", cwd=tmp_path)
    assert again.returncode == 2 and "not overwriting" in again.stderr
    res = tb("new", "meter", "x", cwd=tmp_path)
    assert res.returncode == 2 and "accepted kinds are: attack, fault, protection" in res.stderr
    for kind in ("fault", "protection"):  # the kinds the faults pillar declares templates for
        res = tb("new", kind, f"my_{kind}", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert f'name = "my_{kind}"' in (tmp_path / f"my_{kind}.py").read_text()
