from __future__ import annotations

import pytest

from trustbench import registry
from trustbench.errors import BenchError


class _Base(registry.Plugin, kind="unit-test-kind"):
    """A kind used only by these tests."""


def test_subclass_with_name_registers_and_duplicates_are_rejected():
    class Alpha(_Base):
        name = "alpha"

    try:
        assert registry.get("unit-test-kind", "alpha") is Alpha
        assert "alpha" in registry.names("unit-test-kind")
        with pytest.raises(registry.RegistryError, match="already registered"):

            class Other(_Base):
                name = "alpha"

        registry.register("unit-test-kind", "alpha", Alpha)  # same object: fine
    finally:
        registry.unregister("unit-test-kind", "alpha")


def test_force_replaces():
    class A(_Base):
        name = "forced"

    class Replacement:
        pass

    try:
        registry.register("unit-test-kind", "forced", Replacement, force=True)
        assert registry.get("unit-test-kind", "forced") is Replacement
    finally:
        registry.unregister("unit-test-kind", "forced")


def test_unknown_name_lists_registered():
    class B(_Base):
        name = "beta"

    try:
        with pytest.raises(BenchError) as err:
            registry.get("unit-test-kind", "gamma")
        msg = str(err.value)
        assert "beta" in msg and "trustbench.unit-test-kinds" in msg
    finally:
        registry.unregister("unit-test-kind", "beta")


def test_abstract_and_nameless_classes_are_not_registered():
    class Middle(_Base):
        abstract = True
        name = "middle"

    assert "middle" not in registry.names("unit-test-kind")


def test_entry_point_group_name():
    assert registry.entry_point_group("attack") == "trustbench.attacks"
    assert registry.entry_point_group("fault") == "trustbench.faults"


def test_empty_name_rejected():
    with pytest.raises(registry.RegistryError):
        registry.register("unit-test-kind", "", object())


def test_pillars_come_from_the_pillar_packages_in_order():
    pillars = registry.pillars()
    assert list(pillars)[:4] == ["utility", "robustness", "faults", "fairness"]
    assert {"privacy", "federated", "carbon"} <= set(pillars)
    assert pillars["robustness"].kinds == ("attack", "corruption")
    assert registry.pillar_of_kind("fault").name == "faults"
    assert registry.pillar_of_kind("no-such-kind") is None
    # the kinds the core knows are exactly those the pillars declare (+ any registered)
    assert {"attack", "corruption", "fault", "protection"} <= set(registry.kinds())
    render = pillars["robustness"].template("attack")
    assert 'name = "x-y"' in render("x-y")
    with pytest.raises(registry.RegistryError, match="no template"):
        pillars["fairness"].template("attack")


def test_import_submodules_registers_every_module_of_a_package(tmp_path, monkeypatch):
    pkg = tmp_path / "tbtestpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text(
        "from tests.unit.trustbench.test_registry import _Base\n"
        "class One(_Base):\n    name = 'pkg-one'\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert registry.import_submodules("tbtestpkg") == ["tbtestpkg.one"]
        assert registry.get("unit-test-kind", "pkg-one").__name__ == "One"
    finally:
        registry.unregister("unit-test-kind", "pkg-one")


def test_contract_opt_outs_need_a_reason():
    class Fine:
        contract_opt_out = {"int8": "flips exponent bits; int8 words have none"}

    class NoReason:
        contract_opt_out = {"int8": "  "}

    class NotADict:
        contract_opt_out = ["int8"]

    assert registry.contract_opt_outs(Fine) == {"int8": "flips exponent bits; int8 words have none"}
    assert registry.contract_opt_outs(object) == {}
    for bad in (NoReason, NotADict):
        with pytest.raises(registry.RegistryError, match="reason"):
            registry.contract_opt_outs(bad)


def test_builtin_tasks_are_found_through_their_entry_point_group():
    import importlib.metadata

    groups = {ep.value for ep in importlib.metadata.entry_points(group="trustbench.tasks")}
    assert "trustbench.builtin_tasks" in groups
    from trustbench.tasks import task_names

    assert {"digits-cnn", "mnist5k-cnn", "arrests-mlp"} <= set(task_names())
