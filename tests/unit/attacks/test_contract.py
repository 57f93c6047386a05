"""One contract test over every registered attack: the promises of ``EvasionAttack.__call__``.

A new attack file (built-in or third-party through the ``trustbench.attacks`` entry points) is
tested here the moment it registers: eps ball, input range, shape/dtype/device, input and model
untouched, eval mode and ``requires_grad`` restored, passes counted.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import pytest
import torch
from torch import nn

from trustbench import attacks, registry
from trustbench.attacks.base import AttackResult, EvasionAttack, lp_norms

#: Small budgets so that every attack runs in well under a second on a tiny model.
FAST = {
    "steps": 4,
    "max_iter": 2,
    "max_eval": 10,
    "init_eval": 3,
    "init_size": 3,
    "binary_search_steps": 1,
    "restarts": 1,
    "batch_size": 16,
    "square_queries": 10,
}


def _cases() -> list[tuple[str, str]]:
    return [(n, norm) for n, cls in registry.all_plugins("attack").items() for norm in cls.norms]


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )


def _make(cls: type[EvasionAttack], norm: str, eps: float) -> EvasionAttack:
    names = {f.name for f in dataclasses.fields(cls.Params)}
    kw = {k: v for k, v in FAST.items() if k in names}
    return cls(eps=eps, norm=norm, **kw)


@pytest.mark.parametrize(("name", "norm"), _cases())
def test_attack_keeps_its_promises(name: str, norm: str) -> None:
    cls = registry.get("attack", name)
    if any(importlib.util.find_spec(m) is None for m in cls.requires):
        pytest.skip(f"{name} needs {cls.requires}")
    model = _tiny_model()
    model.train()  # the attack must switch to eval and restore train mode
    flags = [p.requires_grad for p in model.parameters()]
    before = [t.detach().clone() for t in [*model.parameters(), *model.buffers()]]
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 6, 6, generator=gen)
    x[0] = 0.0
    x[1] = 1.0  # corners of the input range
    y = torch.randint(0, 5, (12,), generator=gen)
    x_copy = x.clone()
    eps = 0.15 if norm == "linf" else 0.8
    attack = _make(cls, norm, eps)

    res = attack(model, x, y, seed=0)

    assert isinstance(res, AttackResult)
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert res.x_adv.device == x.device
    assert torch.equal(x, x_copy), "input modified"
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert bool((lp_norms(res.x_adv - x, norm) <= eps * (1 + 1e-5) + 1e-7).all())
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    after = [*model.parameters(), *model.buffers()]
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "model changed"
    assert res.clean_correct.dtype == torch.bool and res.adv_correct.shape == y.shape
    assert res.stats.forward_samples >= 2 * len(x)  # clean + verification at least
    if cls.white_box:
        assert res.stats.backward_samples >= 1
    # what the attack reports is what the model says about x_adv
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(res.x_adv).argmax(1) == y, res.adv_correct)


@pytest.mark.parametrize(("name", "norm"), _cases())
def test_attack_rejects_negative_eps(name: str, norm: str) -> None:
    cls = registry.get("attack", name)
    with pytest.raises(attacks.AttackError, match="negative"):
        cls(eps=-0.1, norm=norm)


def test_registry_lists_the_builtins() -> None:
    builtins = {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "square-art", "cw-l2"}
    assert builtins | {"hopskipjump"} <= set(registry.names("attack"))
    assert math.isinf(registry.get("attack", "cw-l2").Params().eps)
