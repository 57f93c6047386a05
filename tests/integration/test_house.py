"""The house, end to end: only ``trustbench`` is importable from an install, a user's own
``attacks.py`` / ``faults.py`` / ``fairness.py`` / ``privacy/`` never clash with the pillars, and
plugins written by ``trustbench new`` in a separate installed package (an entry point) are
listed, contract-tested and measured by the suites with no other edit.

The third-party package is "installed" the way pip leaves one: a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` on ``sys.path``, which is all ``importlib.metadata`` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(extra_path), *filter(None, [env.get("PYTHONPATH")])])
    return env


def tb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trustbench.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env or _env(), timeout=600)


def _card(out: Path) -> dict:
    files = sorted(out.rglob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_pillar_folders_are_not_top_level_packages(tmp_path):
    code = ("import importlib.util as u; "
            "print([n for n in ('attacks', 'faults', 'fairness', 'privacy', 'federated', "
            "'carbon', 'suites') if u.find_spec(n)])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env())
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_user_modules_named_like_pillars_run_through_every_pillar(tmp_path):
    (tmp_path / "attacks.py").write_text("def my_fgsm(x):\n    return x\n")
    (tmp_path / "faults.py").write_text("FAULT_RATE = 0.0\n")
    (tmp_path / "fairness.py").write_text("def parity(a, b):\n    return a - b\n")
    (tmp_path / "privacy").mkdir()
    (tmp_path / "privacy" / "__init__.py").write_text("MARK = 'the user privacy package'\n")
    (tmp_path / "mynet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        from attacks import my_fgsm
        from fairness import parity
        from faults import FAULT_RATE
        from privacy import MARK

        assert MARK == "the user privacy package" and parity(2, 1) == 1 and FAULT_RATE == 0


        def build():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 2))
    """))
    out = tmp_path / "out"
    res = tb("run", "--bench-model", "mynet:build", "--bench-dataset", "arrests",
             "--bench-profile", "smoke", f"--bench-out={out}", "--", "-q", "-p", "no:randomly",
             cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    card = _card(out)
    assert card["run"]["status"] == "valid"
    assert {p: v["status"] for p, v in card["pillars"].items()} == {
        "utility": "measured", "robustness": "measured", "faults": "measured",
        "fairness": "measured"}


def _third_party_package(root: Path) -> Path:
    """A package ``tbplug`` with an attack and a fault model written by ``trustbench new``,
    installed on ``root`` with its entry points."""
    pkg = root / "tbplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Third-party trustbench plugins."""\n')
    assert tb("new", "attack", "tp-attack", "--out", str(pkg / "tp_attack.py"),
              cwd=root).returncode == 0
    assert tb("new", "fault", "tp_fault", "--out", str(pkg / "tp_fault.py"),
              cwd=root).returncode == 0
    info = root / "tbplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tbplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [trustbench.attacks]
        tp-attack = tbplug.tp_attack:TpAttack

        [trustbench.faults]
        tp_fault = tbplug.tp_fault
    """))
    return root


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory) -> Path:
    return _third_party_package(tmp_path_factory.mktemp("site"))


def test_third_party_plugins_are_listed(plugin_root, tmp_path):
    res = tb("list", cwd=tmp_path, env=_env(plugin_root))
    assert res.returncode == 0, res.stderr
    assert "tp-attack" in res.stdout and "tp_fault" in res.stdout
    assert "plugin failed to load" not in res.stderr


def test_third_party_plugins_pass_the_contract_tests(plugin_root, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "unit" / "attacks" / "test_contract.py"),
         str(ROOT / "tests" / "unit" / "faults" / "test_contract.py"),
         "-k", "tp-attack or tp_fault", f"--rootdir={ROOT}"],
        capture_output=True, text=True, cwd=ROOT, env=_env(plugin_root), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout.splitlines()[-1]


def test_third_party_plugins_are_measured_by_the_suites(plugin_root, tmp_path):
    out = tmp_path / "out"
    res = tb("run", "--pillar", "robustness", "--pillar", "faults", "--bench-task",
             "digits-cnn", "--bench-profile", "smoke", f"--bench-out={out}", "--", "-q",
             "-p", "no:randomly", cwd=tmp_path, env=_env(plugin_root))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    card = _card(out)
    names = {m["name"] for m in card["metrics"]}
    assert {"robust_accuracy.tp-attack.linf.0.1", "robust_accuracy.tp-attack.l2.1"} <= names
    worst = next(m for m in card["metrics"] if m["name"] == "worst_case_robust_accuracy.linf")
    assert "tp-attack" in worst["params"]["attacks"]
    blob = json.dumps([m for m in card["metrics"] if m["pillar"] == "faults"])
    assert "tp_fault" in blob
    # the run says which third-party plugins took part, so compare never ranks it against a
    # run without them
    assert card["run"]["settings"]["plugins"] == {
        "attack": {"tp-attack": "tbplug.tp_attack:TpAttack"},
        "fault": {"tp_fault": "tbplug.tp_fault:TpFault"}}


def _broken_package(root: Path) -> Path:
    """A package whose plugins are broken in every way a plugin can be: an import error, a
    built-in's name, an entry point of the wrong kind, a plan the suite cannot run."""
    pkg = root / "tbbad"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "broken.py").write_text("raise ImportError('a dependency that is not installed')\n")
    (pkg / "impostor.py").write_text(textwrap.dedent('''
        from trustbench.attacks import FGSM

        class PGD(FGSM):
            """Claims the built-in PGD's name."""

            name = "pgd"
    '''))
    (pkg / "badplan.py").write_text(textwrap.dedent('''
        from trustbench.attacks import FGSM
        from trustbench.attacks.profiles import SuitePlan

        class BadPlan(FGSM):
            """A plan setting a parameter its Params does not have."""

            name = "bad-plan"
            suite = SuitePlan(budget={"stepz": "pgd_steps"})
    '''))
    info = root / "tbbad-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tbbad\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [trustbench.attacks]
        broken = tbbad.broken
        impostor = tbbad.impostor:PGD
        wrong-kind = trustbench.faults.bitflip:BitFlip
        bad-plan = tbbad.badplan:BadPlan
    """))
    return root


def test_broken_third_party_plugins_are_named_and_the_rest_is_measured(tmp_path):
    root = _broken_package(tmp_path / "site")
    env = _env(root)
    listed = tb("list", cwd=tmp_path, env=env)
    assert listed.returncode == 0
    assert "tbbad.broken" in listed.stderr and "already registered" in listed.stderr
    # filed under the wrong kind: it registered as what it is (a fault model), with a warning
    assert "is a plugin of kind 'fault', not 'attack'" in listed.stderr
    out = tmp_path / "out"
    res = tb("run", "--pillar", "robustness", "--bench-task", "digits-cnn", "--bench-profile",
             "smoke", f"--bench-out={out}", "--", "-q", "-p", "no:randomly", cwd=tmp_path,
             env=env)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "test_registered_plugins_load_and_declare_valid_plans" in res.stdout
    for what in ("tbbad.broken", "already registered", "stepz"):
        assert what in res.stdout, what
    card = _card(out)
    assert card["run"]["status"] == "incomplete"
    assert "plugins left out of the robustness pillar" in card["pillars"]["robustness"]["reason"]
    pgd = next(m for m in card["metrics"] if m["name"] == "robust_accuracy.pgd.linf.0.1")
    assert pgd["params"]["steps"] == 10  # the built-in PGD, not the impostor
    assert not any("bad-plan" in m["name"] for m in card["metrics"])


def _faulty_package(root: Path) -> Path:
    """Fault-side plugins broken at run time: a fault model whose sampling raises, a protection
    that leaves the model in train mode, an entry point naming a class that is no plugin."""
    pkg = root / "tbfaulty"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "crashy.py").write_text(textwrap.dedent('''
        from trustbench.faults.bitflip import BitFlip

        class Crashy(BitFlip):
            """Samples nothing but an IndexError."""

            name = "crashy"

            def sample(self, *args, **kwargs):
                raise IndexError("a bug in the plugin")
    '''))
    (pkg / "trainer.py").write_text(textwrap.dedent('''
        import contextlib

        from trustbench.faults.protection import RangeRestriction

        class LeavesTrain(RangeRestriction):
            """Ranger that forgets to restore eval mode."""

            name = "leaves_train"

            @contextlib.contextmanager
            def applied(self, model):
                with super().applied(model) as m:
                    yield m
                model.train()

        class NotAPlugin:
            name = "nap"
    '''))
    info = root / "tbfaulty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tbfaulty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [trustbench.faults]
        crashy = tbfaulty.crashy:Crashy
        nap = tbfaulty.trainer:NotAPlugin

        [trustbench.protections]
        leaves_train = tbfaulty.trainer:LeavesTrain
    """))
    return root


def test_broken_fault_plugins_cost_only_themselves(tmp_path):
    env = _env(_faulty_package(tmp_path / "site"))
    (tmp_path / "trustbench.toml").write_text('[faults]\nfault_models = ["stuck_at_1", "crashy"]\n')
    out = tmp_path / "out"
    res = tb("run", "--pillar", "faults", "--bench-task", "digits-cnn", "--bench-profile",
             "smoke", f"--bench-out={out}", "--", "-q", "-p", "no:randomly", cwd=tmp_path,
             env=env)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "NotAPlugin is not a trustbench plugin" in res.stdout
    assert "protection leaves_train left modules of the model in another train/eval mode" \
        in res.stdout
    card = _card(out)
    table = next(m for m in card["metrics"] if m["name"] == "weight_sdc_rate_by_fault_model")
    assert [r["group"] for r in table["value"]["rows"]] == ["stuck_at_1"]
    assert "IndexError" in table["params"]["not_run"]["crashy"]
    names = {m["name"] for m in card["metrics"]}
    # the built-in protections measured as without the broken one
    assert {"ranger_sdc_reduction", "weight_range_sdc_reduction"} <= names
