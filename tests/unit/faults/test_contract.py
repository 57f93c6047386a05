"""One contract test over every registered fault model and protection, third-party ones
included (the checks live in :mod:`trustbench.faults.contract`), and tests that the checks
catch the mistakes they are there for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from trustbench import registry
from trustbench.faults import FaultModel, Protection, contract
from trustbench.registry import contract_opt_outs


def _cases(kind: str) -> list:
    return [pytest.param(name, check, id=f"{name}-{check}")
            for name, cls in registry.all_plugins(kind).items()
            for check in contract.checks_of(cls)]


def _run(kind: str, name: str, check: str) -> None:
    cls = registry.get(kind, name)
    if check != "opt_outs":
        try:
            reason = contract_opt_outs(cls).get(check)
        except registry.RegistryError:
            reason = None  # malformed: the opt_outs check reports it
        if reason:
            pytest.skip(f"{kind} {name} opts out of the {check} check: {reason}")
    contract.run_check(cls, check)


@pytest.mark.parametrize(("name", "check"), _cases("fault"))
def test_fault_model_keeps_its_contract(name: str, check: str) -> None:
    _run("fault", name, check)


@pytest.mark.parametrize(("name", "check"), _cases("protection"))
def test_protection_keeps_its_contract(name: str, check: str) -> None:
    _run("protection", name, check)


def test_every_builtin_is_covered() -> None:
    faults = {n for n, _ in (p.values for p in _cases("fault"))}
    assert {"bitflip", "multibit", "burst", "stuck_at_0", "stuck_at_1", "random_value"} <= faults
    protections = {n for n, _ in (p.values for p in _cases("protection"))}
    assert {"ranger", "weight_range"} <= protections
    assert contract.checks_of(registry.get("fault", "bitflip")) == [
        "opt_outs", "profiles", "docstring", "example", "params", "fp32", "fp16", "bf16",
        "int8", "campaign"]


def test_a_profiles_typo_is_caught_by_the_contract() -> None:
    bad = type("Typo", (registry.get("fault", "bitflip"),), {"profiles": ("smoke", "standart")})
    with pytest.raises(AssertionError, match="profile"):
        contract.check_profiles(bad)
    with pytest.raises(AssertionError, match="profile"):
        contract.check_profiles(type("Str", (bad,), {"profiles": "smoke"}))


# --------------------------------------------------------------------------- the checks bite
# The classes below get their ``name`` after the class statement, so they never register.


@dataclasses.dataclass
class _NoParams:
    """No parameters."""


class _ExponentPair(FaultModel):  # the fault model docs/extending.md used to show
    Params = _NoParams

    def sample(self, n, layout, rng):
        low = layout.field("exponent")[0]
        return (np.full(n, (1 << low) | (1 << (low + 1)), dtype=np.uint64),
                np.full(n, low, dtype=np.int16))


_ExponentPair.name = "exponent_pair_test"


def test_undocumented_model_and_int8_without_opt_out_fail() -> None:
    with pytest.raises(AssertionError, match="has no docstring"):
        contract.run_check(_ExponentPair, "docstring")
    with pytest.raises(AssertionError, match="shows no runnable example"):
        contract.run_check(_ExponentPair, "example")
    with pytest.raises(AssertionError, match=r"int8.*opt out with contract_opt_out"):
        contract.run_check(_ExponentPair, "int8")
    contract.run_check(_ExponentPair, "fp32")
    with pytest.raises(AssertionError, match="breaks its contract") as info:
        contract.check_plugin(_ExponentPair)
    assert "docstring:" in str(info.value) and "int8:" in str(info.value)
    assert "fp16:" not in str(info.value)


def test_opt_out_skips_the_check_with_its_reason() -> None:
    class Documented(_ExponentPair):
        """Two exponent bits flipped (Ibe et al. 2010, adjacent multi-cell upsets).

        >>> Documented().params
        _NoParams()
        """

        contract_opt_out = {"int8": "flips exponent bits; int8 words have none",
                            "campaign": "not the point of this test"}

    Documented.name = "documented_test"
    outcome = contract.check_plugin(Documented)
    assert outcome["int8"] == "flips exponent bits; int8 words have none"
    assert outcome["fp32"] is None and outcome["example"] is None

    Documented.contract_opt_out = {"int9": "typo"}
    with pytest.raises(AssertionError, match=r"unknown contract check\(s\) \['int9'\]"):
        contract.run_check(Documented, "opt_outs")
    Documented.contract_opt_out = {"int8": "  "}
    with pytest.raises(AssertionError, match="reason"):
        contract.run_check(Documented, "opt_outs")


class _Sloppy(FaultModel):
    """A model with every mistake of a sampler (Li et al. 2017 would not approve).

    >>> 1 + 1
    2
    """

    Params = _NoParams
    mode = "ok"

    def sample(self, n, layout, rng):
        bits = rng.integers(0, layout.nbits, size=n)
        if self.mode == "global_rng":
            bits = np.random.default_rng().integers(0, layout.nbits, size=n)
        payload = np.left_shift(np.uint64(1), bits.astype(np.uint64))
        if self.mode == "zero":
            payload[::2] = 0
        if self.mode == "wide":
            payload[0] = np.uint64(1) << np.uint64(layout.nbits)
        if self.mode == "int64_bits":
            return payload, bits
        return payload, bits.astype(np.int16)

    def xor_mask(self, old, payload):
        return payload.to(torch.int64) if self.mode == "int64_mask" else payload


_Sloppy.name = "sloppy_test"


@pytest.mark.parametrize(("mode", "match"), [
    ("global_rng", "same seed drew other faults"),
    ("zero", "always_changes = True"),
    ("wide", "bits beyond"),
    ("int64_bits", "int16 NumPy array"),
    ("int64_mask", "integer dtype"),
])
def test_sampler_mistakes_are_caught(mode: str, match: str, monkeypatch) -> None:
    monkeypatch.setattr(_Sloppy, "mode", mode)
    with pytest.raises(AssertionError, match=match):
        contract.run_check(_Sloppy, "fp16")


def test_honest_model_passes_and_masked_faults_need_always_changes_false(monkeypatch) -> None:
    contract.run_check(_Sloppy, "bf16")
    monkeypatch.setattr(_Sloppy, "mode", "zero")
    monkeypatch.setattr(_Sloppy, "always_changes", False)
    contract.run_check(_Sloppy, "bf16")


class _LeakyGuard(Protection):
    """Leaves a hook behind (Chen et al. 2021 would not approve).

    >>> _LeakyGuard().fitted
    True
    """

    Params = _NoParams
    leak = "hook"

    def applied(self, model):
        import contextlib

        @contextlib.contextmanager
        def ctx():
            layer = next(m for m in model.modules() if isinstance(m, torch.nn.ReLU))
            handle = layer.register_forward_hook(lambda _m, _i, out: out.clamp(max=1e6))
            if self.leak == "attribute":
                layer.stale = True
            yield model
            if self.leak != "hook":
                handle.remove()
        return ctx()


_LeakyGuard.name = "leaky_guard_test"


@pytest.mark.parametrize("leak", ["hook", "attribute"])
def test_protection_leaving_hooks_or_attributes_fails(leak: str, monkeypatch) -> None:
    monkeypatch.setattr(_LeakyGuard, "leak", leak)
    contract.run_check(_LeakyGuard, "fit")
    with pytest.raises(AssertionError, match="left on the model"):
        contract.run_check(_LeakyGuard, "applied")
    monkeypatch.setattr(_LeakyGuard, "leak", "none")
    contract.run_check(_LeakyGuard, "applied")


def test_not_a_faults_plugin() -> None:
    with pytest.raises(TypeError, match="not a fault model or protection"):
        contract.checks_of(int)
    with pytest.raises(KeyError, match="no contract check 'fp64'"):
        contract.run_check(_Sloppy, "fp64")
