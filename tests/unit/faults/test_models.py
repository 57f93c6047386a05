"""Fault models: each built-in's own semantics and the profiles they declare (the contract every
registered one keeps is tested in test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trustbench import (
    faults,  # noqa: F401  (registers the built-ins)
    registry,
)
from trustbench.errors import ConfigError
from trustbench.faults import profiles
from trustbench.faults.base import resolve
from trustbench.faults.bits import layout_for, to_native
from trustbench.faults.errors import FaultError


def test_builtins_registered():
    assert {"bitflip", "multibit", "burst", "stuck_at_0", "stuck_at_1",
            "random_value"} <= set(registry.names("fault"))


#: What each profile measured besides the headline bit flip before the models declared their
#: profiles themselves (the scorecards' ``weight_sdc_rate_by_fault_model`` rows, in order).
OLD_LISTS = {
    "smoke": [],
    "standard": ["stuck_at_1", "multibit"],
    "full": ["stuck_at_0", "stuck_at_1", "multibit", "burst", "random_value"],
}


def _builtin(names):
    return [n for n in names
            if registry.get("fault", n).__module__.startswith("trustbench.faults.")]


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_declared_profiles_reproduce_the_old_lists(profile):
    b = profiles.budget(profile)
    assert b.fault_models is None and b.protections is None
    assert _builtin(profiles.selected_fault_models(b)) == OLD_LISTS[profile]
    assert {"ranger", "weight_range"} <= set(profiles.selected_protections(b))
    assert profile in profiles.declared_profiles(registry.get("fault", "bitflip"))


def test_settings_replace_the_selection():
    b = profiles.budget("smoke", {"fault_models": ["burst", "stuck_at_0"], "protections": []})
    assert profiles.selected_fault_models(b) == ["burst", "stuck_at_0"]  # in the given order
    assert profiles.selected_protections(b) == []
    b = profiles.budget("full", {"fault_models": []})
    assert profiles.selected_fault_models(b) == []
    with pytest.raises(ConfigError, match=r"unknown fault plugin\(s\) \['bitflips'\].*bitflip"):
        profiles.budget("standard", {"fault_models": ["bitflips"]})
    with pytest.raises(ConfigError, match="must be a list of protection plugin names"):
        profiles.budget("standard", {"protections": "ranger"})


def test_a_plugin_without_a_declaration_runs_everywhere_and_bad_ones_are_refused():
    class Undeclared:
        pass

    assert profiles.declared_profiles(Undeclared) == profiles.PROFILES
    for bad in ("full", ("huge",), None):
        Undeclared.profiles = bad
        with pytest.raises(registry.RegistryError, match="tuple of profile names"):
            profiles.declared_profiles(Undeclared)


def test_bitflip_fields_and_fixed():
    lay = layout_for(torch.float32)
    rng = np.random.default_rng(0)
    _, bits = resolve("bitflip", field="mantissa").sample(500, lay, rng)
    assert bits.min() >= 0 and bits.max() <= 22
    _, bits = resolve("bitflip", field="sign").sample(10, lay, rng)
    assert set(bits.tolist()) == {31}
    payload, bits = resolve("bitflip", bit=30).sample(5, lay, rng)
    assert set(payload.tolist()) == {1 << 30}
    _, bits = resolve("bitflip").sample(4000, lay, rng)
    assert len(set(bits.tolist())) == 32  # every bit is reachable


def test_multibit_and_burst():
    lay = layout_for(torch.float32)
    rng = np.random.default_rng(0)
    payload, _ = resolve("multibit", k=3).sample(300, lay, rng)
    assert all(bin(int(p)).count("1") == 3 for p in payload)
    payload, top = resolve("burst", k=4).sample(300, lay, rng)
    for p, t in zip(payload.tolist(), top.tolist()):
        assert p == 0b1111 << (t - 3)
    with pytest.raises(FaultError, match="does not fit"):
        resolve("burst", k=9).check_layout(layout_for(torch.int8))
    with pytest.raises(FaultError, match="positive int"):
        resolve("multibit", k=0)


def test_stuck_at_semantics():
    old = torch.tensor([0b1010], dtype=torch.int32)
    pay = torch.tensor([0b0011], dtype=torch.int32)
    assert (old ^ resolve("stuck_at_0").xor_mask(old, pay)).item() == 0b1000
    assert (old ^ resolve("stuck_at_1").xor_mask(old, pay)).item() == 0b1011


def test_random_value_range():
    lay = layout_for(torch.float32)
    fm = resolve("random_value", low=-2.0, high=2.0)
    payload, bit = fm.sample(100, lay, np.random.default_rng(0))
    vals = to_native(payload, lay).view(torch.float32)
    assert bool(((vals >= -2) & (vals <= 2)).all()) and set(bit.tolist()) == {-1}
    old = torch.zeros(100).view(torch.int32)
    new = (old ^ fm.xor_mask(old, to_native(payload, lay))).view(torch.float32)
    assert torch.equal(new, vals)
    with pytest.raises(FaultError, match="low <= high"):
        resolve("random_value", low=1.0, high=0.0)


def test_bad_parameters():
    with pytest.raises(FaultError, match="parameters are: bit, field"):
        resolve("bitflip", bits=3)
    with pytest.raises(FaultError, match="unknown bit field"):
        resolve("bitflip", field="fraction")
    with pytest.raises(FaultError, match="out of range"):
        resolve("bitflip", bit=16).sample(1, layout_for(torch.float16), np.random.default_rng())
    with pytest.raises(registry.RegistryError, match="bitflip"):
        resolve("no_such_fault")
