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
