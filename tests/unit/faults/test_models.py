"""Fault models: the contract every registered one keeps, and each one's own semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trustbench.faults.base import resolve
from trustbench.faults.bits import layout_for, to_native
from trustbench.faults.errors import FaultError

from trustbench import (
    faults,  # noqa: F401  (registers the built-ins)
    registry,
)

LAYOUTS = [layout_for(d) for d in (torch.float32, torch.float16, torch.bfloat16, torch.int8)]


def test_builtins_registered():
    assert {"bitflip", "multibit", "burst", "stuck_at_0", "stuck_at_1",
            "random_value"} <= set(registry.names("fault"))


#: The built-in fault models (a third-party plugin installed in the same environment has its
#: own tests; this project's suite must not fail because of it).
BUILTIN = [n for n in registry.names("fault")
           if registry.get("fault", n).__module__.split(".")[0] == "faults"]


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("lay", LAYOUTS, ids=lambda lay: lay.name)
def test_contract(name, lay):
    fm = registry.get("fault", name)()
    assert fm.__doc__ and type(fm).__module__.startswith("faults")
    rng = np.random.default_rng(0)
    payload, bit = fm.sample(200, lay, rng)
    assert payload.shape == bit.shape == (200,)
    assert payload.dtype == np.uint64
    assert int(payload.max()) < (1 << lay.nbits)
    assert ((bit >= -1) & (bit < lay.nbits)).all()
    old = to_native(np.random.default_rng(1).integers(0, 1 << lay.nbits, 200,
                                                      dtype=np.uint64), lay)
    mask = fm.xor_mask(old, to_native(payload, lay))
    assert mask.dtype == lay.int_dtype
    assert torch.equal(old ^ mask ^ mask, old)  # reversible by construction
    if fm.always_changes:
        assert bool((mask != 0).all())
    again = fm.sample(200, lay, np.random.default_rng(0))
    assert np.array_equal(again[0], payload)  # deterministic in the seed


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
