"""Black-box tests of the pytest plugin with pytester: run a small suite, read the scorecard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# pytester's inline runs restore sys.modules afterwards; anything a run imports for the first
# time would be imported again by the next run, and re-importing torch's C extensions crashes.
# So import what the runs need here, once.
import torch  # noqa: F401

import trustbench.builtin_tasks
import trustbench.system
import trustbench.utility  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _warm_imports(digits_task):
    """Build the task once out here, so every module the inline runs need is imported already."""
    import trustbench.gates
    import trustbench.summary  # noqa: F401
    from trustbench.system import collect_system

    collect_system("cpu")

DEMO = """
import pytest

def test_accuracy(task, record_metric):
    acc = float((task.predict(task.x_test).cpu() == task.y_test).float().mean())
    record_metric("accuracy", acc, unit="fraction", higher_is_better=True, ci=(acc - 0.01,
                  min(1.0, acc + 0.01)), n=len(task.y_test), score_weight=1.0)

def test_curve(task, record_metric):
    record_metric("curve", {"x": [0, 1], "y": [1.0, 0.5], "x_label": "eps"}, unit="fraction")

def test_check(task, record_check):
    record_check("model_deterministic", True)
"""


def _cards(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))]


def _args(pytester) -> list[str]:
    return ["--bench-task", "digits-cnn", "--bench-profile", "smoke", "--bench-out",
            str(pytester.path / "results"), "-p", "no:cacheprovider"]


def _run(pytester, *args):
    return pytester.runpytest(*_args(pytester), *args)


def test_scorecard_written(pytester):
    pytester.makepyfile(test_demo=DEMO)
    result = _run(pytester)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*trustbench scorecard*",
            "*demo*accuracy*fraction*450*",
            "pillar demo: measured score*",
            "scorecard: *digits-cnn*.json",
        ]
    )
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["status"] == "valid" and card["run"]["profile"] == "smoke"
    assert card["task"]["name"] == "digits-cnn" and card["task"]["dataset"]["n"] == 450
    names = [m["name"] for m in card["metrics"]]
    assert names == ["accuracy", "curve"]
    assert card["pillars"]["demo"]["status"] == "measured"
    assert card["pillars"]["demo"]["score"] == pytest.approx(
        100 * card["metrics"][0]["value"], abs=1e-3
    )
    assert card["checks"][0]["name"] == "model_deterministic" and card["checks"][0]["passed"]
    from trustbench.scorecard import validation_errors

    assert validation_errors(card) == []


def test_failures_skips_checks_and_gates(pytester):
    pytester.makepyfile(
        test_demo=DEMO
        + """
def test_broken(task):
    raise RuntimeError("boom")

def test_masked(task, record_check):
    record_check("gradient_masking.blackbox_beats_whitebox", False, "square 0.9 > pgd 0.1")
""",
        test_fairness="""
import pytest
def test_groups(task):
    pytest.skip("task digits-cnn has no sensitive attributes")
""",
    )
    result = _run(pytester, "--bench-gate", "demo.accuracy>=0.999", "--bench-gate", "demo.score>=1")
    result.assert_outcomes(passed=3, failed=2, skipped=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*GATE FAILED: digits-cnn: gate demo.accuracy>=0.999*"])
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["status"] == "incomplete"  # a test failed
    assert card["pillars"]["fairness"] == {
        "status": "skipped",
        "score": None,
        "reason": "task digits-cnn has no sensitive attributes",
    }
    assert card["pillars"]["demo"]["status"] == "failed"
    assert "boom" in card["pillars"]["demo"]["reason"]
    # a failed pillar has no score (a mean over what survived would mislead), so a gate on
    # its score cannot pass
    assert card["pillars"]["demo"]["score"] is None
    assert [g["passed"] for g in card["gates"]] == [False, False]
    failed = [c for c in card["checks"] if not c["passed"]]
    assert failed[0]["detail"] == "square 0.9 > pgd 0.1"


def test_duplicate_metric_names_are_an_error(pytester):
    pytester.makepyfile(test_demo=DEMO + '''
def test_again(task, record_metric):
    record_metric("accuracy", 0.5, unit="fraction")
''')
    result = _run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*metric demo.accuracy was recorded twice*"])


def test_update_scorecard_hook(pytester):
    pytester.makeconftest('''
def pytest_trustbench_update_scorecard(config, scorecard):
    scorecard.run["lab"] = "rack-7"
''')
    pytester.makepyfile(test_demo=DEMO)
    _run(pytester).assert_outcomes(passed=3)
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["lab"] == "rack-7"


def test_failed_check_marks_run_invalid(pytester):
    pytester.makepyfile(
        test_demo=DEMO
        + """
def test_masked(task, record_check):
    record_check("nonzero_gradients", False, "all input gradients are zero")
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["status"] == "invalid"
    assert "nonzero_gradients" in card["run"]["status_reason"]
    assert card["pillars"]["demo"]["status"] == "measured"


def test_interrupted_run_leaves_incomplete_scorecard(pytester):
    pytester.makepyfile(
        test_demo=DEMO
        + """
def test_zz_interrupt(task):
    raise KeyboardInterrupt
"""
    )
    # in a subprocess: an inline KeyboardInterrupt would stop the outer test session too
    result = pytester.runpytest_subprocess(*_args(pytester))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["status"] == "incomplete" and "interrupted" in card["run"]["status_reason"]
    assert [m["name"] for m in card["metrics"]] == ["accuracy", "curve"]


def test_interrupted_before_any_test_finished_still_leaves_a_scorecard(pytester):
    pytester.makepyfile(test_demo="""
def test_a_interrupt(task):
    raise KeyboardInterrupt
""")
    result = pytester.runpytest_subprocess(*_args(pytester))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["status"] == "incomplete" and "interrupted" in card["run"]["status_reason"]
    assert card["metrics"] == []
    from trustbench.scorecard import validation_errors

    assert validation_errors(card) == []


def test_existing_scorecards_are_kept(pytester):
    pytester.makepyfile(test_demo=DEMO)
    _run(pytester).assert_outcomes(passed=3)
    _run(pytester).assert_outcomes(passed=3)
    assert len(_cards(pytester.path / "results")) == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["--bench-profile", "quick"], "*invalid choice*quick*"),
        (["--bench-task", "imagenet-vit"], "*unknown task 'imagenet-vit'*Built-in tasks*"),
        (["--bench-device", "tpu"], "*unknown device 'tpu'*cpu, cuda, cuda:N*"),
        (["--bench-gate", "accuracy>1"], "*PILLAR.METRIC OP NUMBER*"),
    ],
)
def test_bad_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile(test_demo=DEMO)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_refused_up_front(pytester):
    pytester.makepyfile(test_demo=DEMO)
    result = pytester.runpytest("--bench-device", "cuda", "--bench-task", "digits-cnn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bench-device cuda was asked for, but torch sees no CUDA*"])


def test_unwritable_results_root(pytester):
    pytester.makepyfile(test_demo=DEMO)
    (pytester.path / "afile").write_text("")
    result = pytester.runpytest("--bench-out", str(pytester.path / "afile" / "sub"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*results root*is not writable*--bench-out*"])


def test_plugin_is_inert_without_task_fixture(pytester):
    pytester.makepyfile(test_plain="def test_x():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "trustbench scorecard" not in result.stdout.str()
    assert not (pytester.path / "results").exists()


USER_MODEL = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(x.flatten(1)).softmax(1)

def build():
    torch.manual_seed(0)
    return Net()

def wrong_width():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

def wrong_shape():
    return nn.Linear(10, 10)

class NaNNet(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 10), float("nan"))

def nan_model():
    return NaNNet()
"""


def test_open_division_user_model(pytester):
    pytester.makepyfile(usermodel=USER_MODEL, test_demo=DEMO)
    result = pytester.runpytest_subprocess(
        "--bench-model",
        "usermodel:build",
        "--bench-dataset",
        "digits",
        "--bench-normalize",
        "0.5/0.25",
        "--bench-out",
        str(pytester.path / "results"),
    )
    result.assert_outcomes(passed=3)
    (card,) = _cards(pytester.path / "results")
    assert card["run"]["division"] == "open"
    assert card["task"]["model"]["output_kind"] == "probs"  # detected
    assert card["task"]["model"]["normalization"] == {"mean": [0.5], "std": [0.25]}


@pytest.mark.parametrize(
    "factory,message",
    [
        ("usermodel:wrong_width", "*has 3 outputs but dataset digits has 10 classes*"),
        ("usermodel:wrong_shape", "*fails on the dataset's inputs of shape (64, 1, 8, 8)*"),
        ("nosuchmodule:build", "*cannot import module 'nosuchmodule'*"),
    ("usermodel:nan_model", "*returns NaN or Inf on clean inputs*"),
    ],
)
def test_open_division_bad_models_stop_with_a_message(pytester, factory, message):
    pytester.makepyfile(usermodel=USER_MODEL, test_demo=DEMO)
    # subprocess: the user's module must be imported fresh for each run
    result = pytester.runpytest_subprocess(
        "--bench-model",
        factory,
        "--bench-dataset",
        "digits",
        "--bench-out",
        str(pytester.path / "results"),
    )
    assert result.ret == 4
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


def test_bad_open_division_input_under_xdist_stops_with_its_message(pytester):
    pytester.makepyfile(usermodel=USER_MODEL, test_demo=DEMO)
    result = pytester.runpytest_subprocess(
        "--bench-model", "usermodel:wrong_width", "--bench-dataset", "digits",
        "--bench-out", str(pytester.path / "results"), "-n", "2", "-p", "no:cacheprovider",
    )
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*has 3 outputs but dataset digits has 10 classes*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_xdist_gives_the_same_metrics(pytester):
    pytester.makepyfile(test_demo=DEMO)
    common = ["--bench-task", "digits-cnn", "--bench-profile", "smoke", "-p", "no:cacheprovider"]
    one = pytester.runpytest_subprocess(*common, "--bench-out", str(pytester.path / "r1"))
    two = pytester.runpytest_subprocess(
        *common, "-n", "2", "--bench-out", str(pytester.path / "r2")
    )
    one.assert_outcomes(passed=3)
    two.assert_outcomes(passed=3)
    (a,) = _cards(pytester.path / "r1")
    (b,) = _cards(pytester.path / "r2")

    def key(card):
        return sorted((m["name"], json.dumps(m["value"]), m["ci"], m["n"]) for m in card["metrics"])

    assert key(a) == key(b)
    assert a["task"] == b["task"] and a["pillars"] == b["pillars"]


def test_import_is_light():
    code = (
        "import sys, trustbench, trustbench.pytest_plugin, trustbench.cli; "
        "heavy = [m for m in ('torch', 'art', 'fairlearn', 'opacus', 'flwr', 'codecarbon', "
        "'matplotlib', 'pandas') if m in sys.modules]; print(heavy); assert not heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_leaves_other_sessions_online(pytester, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    pytester.makepyfile(test_plain="import os\ndef test_x():\n"
                                   "    assert 'HF_HUB_OFFLINE' not in os.environ\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
