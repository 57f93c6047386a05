"""One contract test over every registered attack: the promises of ``EvasionAttack.__call__``.

A new attack file (built-in, dropped into attacks/, or third-party through the
``trustbench.attacks`` entry points) is tested here the moment it registers: eps ball, input
range, shape/dtype/device, input and model untouched, eval mode and ``requires_grad``
restored, passes counted (:func:`trustbench.attacks.contract.check_attack`); a plugin opts out
of one check with its reason in ``contract_opt_out``.
"""

from __future__ import annotations

import importlib.util
import math

import pytest

from trustbench import attacks, registry
from trustbench.attacks.contract import check_attack


def _cases() -> list[tuple[str, str]]:
    return [(n, norm) for n, cls in registry.all_plugins("attack").items() for norm in cls.norms]


@pytest.mark.parametrize(("name", "norm"), _cases())
def test_attack_keeps_its_promises(name: str, norm: str, record_property) -> None:
    cls = registry.get("attack", name)
    if any(importlib.util.find_spec(m) is None for m in cls.requires):
        pytest.skip(f"{name} needs {cls.requires}")
    opted_out = check_attack(cls, norm)
    record_property("contract_opt_out", opted_out)


def test_opt_out_skips_exactly_the_named_check() -> None:
    class Lazy(attacks.FGSM):
        """Returns its input (Goodfellow et al. 2015, without the step): breaks
        'backward_counted' only, and says so.

        >>> Lazy(eps=0.1).name
        'lazy-contract-test'
        """

        name = "lazy-contract-test"
        contract_opt_out = {"backward_counted": "returns its input unchanged"}

        def perturb(self, model, x, y, ctx):
            return x.clone()

    try:
        assert check_attack(Lazy, "linf") == {"backward_counted": "returns its input unchanged"}
        Lazy.contract_opt_out = {}
        with pytest.raises(AssertionError, match="counted no backward"):
            check_attack(Lazy, "linf")
        Lazy.contract_opt_out = {"no-such-check": "x"}
        with pytest.raises(AssertionError, match="unknown checks"):
            check_attack(Lazy, "linf")
        Lazy.__doc__ = "Does stuff."
        Lazy.contract_opt_out = {"backward_counted": "returns its input unchanged"}
        with pytest.raises(AssertionError, match="does not cite its source"):
            check_attack(Lazy, "linf")
        Lazy.contract_opt_out = {"eps_ball": ""}
        with pytest.raises(registry.RegistryError, match="reason"):
            check_attack(Lazy, "linf")
    finally:
        registry.unregister("attack", "lazy-contract-test")


def test_registry_lists_the_builtins() -> None:
    builtins = {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "square-art", "cw-l2"}
    assert builtins | {"hopskipjump"} <= set(registry.names("attack"))
    assert math.isinf(registry.get("attack", "cw-l2").Params().eps)
