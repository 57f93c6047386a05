"""``trustbench new fault|protection NAME`` writes a working plugin that registers (imported,
dropped into ``faults/``, or through an entry point), passes its contract and runs."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest
import torch

import trustbench.faults
from trustbench import registry
from trustbench.cli import main
from trustbench.faults import (
    FaultError,
    contract,
    evaluate_protection,
    layout_for,
    profiles,
    run_campaign,
)
from trustbench.faults.template import render_fault_template, render_protection_template

from .conftest import state_bytes


@pytest.fixture
def load(tmp_path):
    """``load(kind, name)``: render the template of ``kind`` as ``<tmp>/<name>.py`` and import
    it; everything it registered is unregistered afterwards."""
    loaded = []

    def _load(kind: str, name: str):
        render = render_fault_template if kind == "fault" else render_protection_template
        path = tmp_path / f"{name}.py"
        path.write_text(render(name))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        loaded.append((kind, name))
        spec.loader.exec_module(mod)
        return mod, registry.get(kind, name)

    yield _load
    for kind, name in loaded:
        registry.unregister(kind, name)
        sys.modules.pop(name, None)


def test_fault_template_registers_passes_its_contract_and_runs(load, tiny) -> None:
    mod, cls = load("fault", "bit_errors_test")
    assert cls is mod.BitErrorsTest and issubclass(cls, trustbench.faults.FaultModel)
    assert 'name = "bit_errors_test"' in render_fault_template("bit_errors_test")
    outcome = contract.check_plugin(cls)  # every check, none opted out
    assert set(outcome) == set(contract.FAULT_CHECKS) and not any(outcome.values())

    net, x, y = tiny
    before = state_bytes(net)
    res = run_campaign(net, x, y, fault_model="bit_errors_test", n_faults=100, seed=0,
                       fault_params={"p": 0.05})
    assert res.complete and res.n_faults == 100 and 0 <= res.sdc.value <= 1
    assert state_bytes(net) == before
    # the suite measures it in every profile, after the built-ins
    for p in profiles.PROFILES:
        assert profiles.selected_fault_models(profiles.budget(p))[-1] == "bit_errors_test"


@pytest.mark.parametrize("p", [0.01, 0.2])
def test_fault_template_draws_bit_errors_at_its_rate(load, p: float) -> None:
    """Given that a word is hit, its number of erroneous bits has mean ``m p / (1 - (1-p)^m)``
    (a binomial conditioned on at least one)."""
    _, cls = load("fault", "bit_errors_rate_test")
    lay = layout_for(torch.float32)
    payload, bit = cls(p=p).sample(4000, lay, np.random.default_rng(3))
    counts = np.array([bin(int(w)).count("1") for w in payload])
    expected = 32 * p / (1 - (1 - p) ** 32)
    assert counts.min() >= 1 and abs(counts.mean() - expected) < 0.05 * expected
    top = np.array([int(w).bit_length() - 1 for w in payload])
    assert np.array_equal(bit, top)  # booked under its most significant flipped bit
    _, bit = cls(p=p, field="exponent").sample(500, lay, np.random.default_rng(0))
    assert bit.min() >= 23 and bit.max() <= 30
    with pytest.raises(FaultError, match="strictly between 0 and 1"):
        cls(p=1.0)


def test_protection_template_registers_passes_its_contract_and_protects(load, tiny) -> None:
    mod, cls = load("protection", "clip_act_test")
    assert cls is mod.ClipActTest
    outcome = contract.check_plugin(cls)
    assert set(outcome) == set(contract.PROTECTION_CHECKS) and not any(outcome.values())
    net, x, y = tiny
    before = state_bytes(net)
    # flips of the top exponent bit make weights huge: clipped activations catch many of them
    res = evaluate_protection(net, x, y, cls(), n_faults=200, seed=4,
                              fault_params={"bit": 30})
    assert res.protected.sdc.value < res.baseline.sdc.value and res.accuracy_cost == 0.0
    assert state_bytes(net) == before
    assert "clip_act_test" in profiles.selected_protections(profiles.budget("smoke"))


def test_a_file_dropped_into_faults_registers(tmp_path, monkeypatch) -> None:
    """The faults package imports every module in its folder: a new file needs no other edit
    (here the folder is extended by a temporary one, so that the real one stays untouched)."""
    (tmp_path / "in_tree_test.py").write_text(render_fault_template("in_tree_test"))
    monkeypatch.setattr(trustbench.faults, "__path__", [*trustbench.faults.__path__,
                                                        str(tmp_path)])
    try:
        imported = registry.import_submodules("trustbench.faults")
        assert "trustbench.faults.in_tree_test" in imported
        cls = registry.get("fault", "in_tree_test")
        assert cls.__module__ == "trustbench.faults.in_tree_test"
        contract.run_check(cls, "example")
    finally:
        registry.unregister("fault", "in_tree_test")
        sys.modules.pop("trustbench.faults.in_tree_test", None)
        if hasattr(trustbench.faults, "in_tree_test"):
            delattr(trustbench.faults, "in_tree_test")


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch) -> None:
    (tmp_path / "ep_fault_test.py").write_text(render_fault_template("ep_fault_test"))
    (tmp_path / "ep_protection_test.py").write_text(
        render_protection_template("ep_protection_test"))
    dist = tmp_path / "ep_plugins_test-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugins-test\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[trustbench.faults]\nep_fault_test = ep_fault_test:EpFaultTest\n\n"
        "[trustbench.protections]\nep_protection_test = ep_protection_test:EpProtectionTest\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_discovered", set())  # discover the entry points anew
    try:
        assert "ep_fault_test" in registry.names("fault")
        assert "ep_protection_test" in registry.names("protection")
        assert registry.get("fault", "ep_fault_test").__module__ == "ep_fault_test"
        assert "ep_fault_test" in profiles.selected_fault_models(profiles.budget("standard"))
        assert "ep_protection_test" in profiles.selected_protections(profiles.budget("full"))
    finally:
        registry.unregister("fault", "ep_fault_test")
        registry.unregister("protection", "ep_protection_test")
        sys.modules.pop("ep_fault_test", None)
        sys.modules.pop("ep_protection_test", None)


def test_trustbench_new_writes_the_templates(tmp_path, capsys) -> None:
    pillar = registry.pillar_of_kind("fault")
    assert pillar is registry.pillar_of_kind("protection") and pillar.name == "faults"
    assert pillar.template("fault") is render_fault_template
    assert pillar.template("protection") is render_protection_template
    out = tmp_path / "my_fault.py"
    assert main(["new", "fault", "my_fault", "--out", str(out)]) == 0
    assert out.read_text() == render_fault_template("my_fault")
    out = tmp_path / "my_guard.py"
    assert main(["new", "protection", "my_guard", "--out", str(out)]) == 0
    assert "class MyGuard(Protection)" in out.read_text()
    assert main(["new", "fault", "My Fault", "--out", str(tmp_path / "x.py")]) == 2
    assert "not accepted" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["", "My_fault", "1st", "a__b", "fault_", "my-fault", "a b"])
@pytest.mark.parametrize("render", [render_fault_template, render_protection_template])
def test_templates_reject_bad_names(render, bad: str) -> None:
    with pytest.raises(FaultError, match="not accepted"):
        render(bad)


def test_module_path_goes_into_the_entry_point_snippet() -> None:
    src = render_fault_template("dram_errors", module="mypkg.dram")
    assert 'dram_errors = "mypkg.dram:DramErrors"' in src
    assert importlib.util.find_spec("trustbench.faults.template") is not None


def test_names_that_would_shadow_the_templates_imports_are_refused() -> None:
    from trustbench.attacks.base import AttackError
    from trustbench.attacks.template import render_attack_template
    from trustbench.faults.errors import FaultError
    from trustbench.faults.template import render_fault_template, render_protection_template

    for render, name in ((render_fault_template, "fault_error"),
                         (render_protection_template, "protection")):
        with pytest.raises(FaultError, match="imports from trustbench"):
            render(name)
    with pytest.raises(AttackError, match="imports from trustbench"):
        render_attack_template("evasion-attack")
