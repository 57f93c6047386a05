"""The contract every attack plugin keeps, as plain checks a plugin author can run anywhere.

:func:`check_attack` runs one attack class on a tiny model and checks the promises of
:meth:`EvasionAttack.__call__ <trustbench.attacks.base.EvasionAttack.__call__>` and of the
plugin kind (a docstring, a ``Params`` dataclass, a sound suite plan); it raises
``AssertionError`` naming the broken promise. trustbench's own tests run it over every
registered attack, third-party ones included; a plugin package can call it in its tests::

    from trustbench.attacks.contract import check_attack
    check_attack(MyAttack, "linf")

A plugin that cannot keep one check says so, with its reason, in ``contract_opt_out``
(e.g. ``{"backward_counted": "estimates gradients from queries"}``); :data:`CHECKS` names the
checks.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import torch
from torch import nn

from trustbench.attacks.base import AttackError, AttackParams, AttackResult, EvasionAttack
from trustbench.attacks.geometry import lp_norms
from trustbench.attacks.profiles import SuitePlan
from trustbench.registry import CITATION_RE, contract_opt_outs, names

__all__ = ["CHECKS", "FAST", "check_attack", "declaration_problem", "fast_instance"]

#: Check name -> the promise it checks.
CHECKS: dict[str, str] = {
    "declaration": "a Params dataclass subclassing AttackParams, norms, a SuitePlan",
    "docstring": "a docstring of its own that cites its source (year, link or DOI, in the "
                 "class's or the module's docstring) and shows a >>> example",
    "result_type": "returns an AttackResult with x_adv of the input's shape, dtype and device",
    "input_untouched": "the input tensor is not modified",
    "input_range": "x_adv stays in the input range",
    "eps_ball": "x_adv stays in the eps ball of its norm",
    "modes_restored": "train mode and requires_grad flags are restored",
    "model_untouched": "parameters and buffers are unchanged",
    "forward_counted": "forward passes are counted (clean and verification at least)",
    "backward_counted": "a white-box attack counts its backward passes",
    "reports_match_model": "adv_correct is what the model says about x_adv",
    "negative_eps": "a negative eps is refused with AttackError",
}

#: Small budgets so that every attack runs in well under a second on a tiny model.
FAST: dict[str, Any] = {
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


def declaration_problem(cls: Any) -> str | None:
    """What makes ``cls`` unusable as an attack plugin by the robustness suite (None: nothing):
    not an :class:`EvasionAttack`, a ``Params`` that is no dataclass of :class:`AttackParams`,
    bad ``norms``, or a ``suite`` plan that is no :class:`SuitePlan`, sets parameters its
    ``Params`` lacks or names unregistered attacks. The contract asserts it; the suite leaves
    such a plugin out and names it."""
    if not (isinstance(cls, type) and issubclass(cls, EvasionAttack)):
        return f"{cls!r} is not an EvasionAttack subclass"
    params = cls.Params
    if not (isinstance(params, type) and issubclass(params, AttackParams)):
        return "Params must be a dataclass subclassing AttackParams"
    if "__dataclass_fields__" not in vars(params) and params is not AttackParams:
        return (f"its Params class {params.__name__} is not decorated with @dataclass (its "
                "fields would not be parameters)")
    if not cls.norms or not set(cls.norms) <= {"linf", "l2"}:
        return f"norms must be a non-empty subset of ('linf', 'l2'), got {cls.norms!r}"
    plan = getattr(cls, "suite", None)
    if not isinstance(plan, SuitePlan):
        return f"its suite plan must be a SuitePlan, got {plan!r}"
    fields = {f.name for f in dataclasses.fields(params)}
    unknown = sorted(set(plan.budget) - fields)
    if unknown:
        return (f"its SuitePlan sets parameters {unknown} that its Params does not have "
                f"({', '.join(sorted(fields))})")
    missing = sorted(set(plan.stronger_than) - set(names("attack")))
    if missing:
        return f"its SuitePlan's stronger_than names attacks that are not registered: {missing}"
    return None


def fast_instance(cls: type[EvasionAttack], norm: str, eps: float) -> EvasionAttack:
    """``cls`` at (norm, eps) with the :data:`FAST` budgets its ``Params`` has."""
    names = {f.name for f in dataclasses.fields(cls.Params)}
    return cls(eps=eps, norm=norm, **{k: v for k, v in FAST.items() if k in names})


def _tiny_model(classes: int) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, classes),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def check_attack(cls: type[EvasionAttack], norm: str) -> dict[str, str]:
    """Check that attack class ``cls`` keeps the contract at ``norm``.

    Returns
    -------
    dict
        The checks it opted out of, name -> reason (``contract_opt_out``).

    Raises
    ------
    AssertionError
        Naming the first broken promise.
    """
    skip = contract_opt_outs(cls)
    unknown = sorted(set(skip) - set(CHECKS))
    assert not unknown, (f"{cls.__name__}.contract_opt_out names unknown checks {unknown}; "
                         f"the checks are: {', '.join(CHECKS)}")

    def want(check: str) -> bool:
        return check not in skip

    name = getattr(cls, "name", cls.__name__)
    if want("docstring"):
        own = (vars(cls).get("__doc__") or "").strip()
        assert own, f"attack {name!r} has no docstring (cite its paper, show a >>> example)"
        text = f"{getattr(sys.modules.get(cls.__module__), '__doc__', '') or ''}\n{own}"
        assert CITATION_RE.search(text), (
            f"attack {name!r} does not cite its source: name the paper it implements (authors, "
            "year, venue, link) in its class or module docstring")
        assert ">>>" in text, f"attack {name!r} shows no runnable >>> example in its docstring"
    if want("declaration"):
        problem = declaration_problem(cls)
        assert problem is None, f"attack {name!r}: {problem}"
    classes = max(5, int(getattr(cls, "min_classes", 2)))
    model = _tiny_model(classes)
    model.train()  # the attack must switch to eval and restore train mode
    flags = [p.requires_grad for p in model.parameters()]
    before = [t.detach().clone() for t in [*model.parameters(), *model.buffers()]]
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 6, 6, generator=gen)
    x[0] = 0.0
    x[1] = 1.0  # corners of the input range
    y = torch.randint(0, classes, (12,), generator=gen)
    x_copy = x.clone()
    eps = 0.15 if norm == "linf" else 0.8
    res = fast_instance(cls, norm, eps)(model, x, y, seed=0)

    if want("result_type"):
        assert isinstance(res, AttackResult), f"attack {name!r} returned {type(res).__name__}"
        assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype, (
            f"attack {name!r}: x_adv has shape/dtype {tuple(res.x_adv.shape)}/{res.x_adv.dtype}")
        assert res.x_adv.device == x.device, f"attack {name!r}: x_adv moved device"
        assert res.clean_correct.dtype == torch.bool and res.adv_correct.shape == y.shape
    if want("input_untouched"):
        assert torch.equal(x, x_copy), f"attack {name!r} modified its input"
    if want("input_range"):
        assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0, (
            f"attack {name!r}: x_adv leaves the input range [0, 1]")
    if want("eps_ball"):
        assert bool((lp_norms(res.x_adv - x, norm) <= eps * (1 + 1e-5) + 1e-7).all()), (
            f"attack {name!r}: x_adv leaves the {norm} ball of radius {eps}")
    if want("modes_restored"):
        assert model.training and all(m.training for m in model.modules()), (
            f"attack {name!r}: train mode not restored")
        assert [p.requires_grad for p in model.parameters()] == flags, (
            f"attack {name!r}: requires_grad flags not restored")
    if want("model_untouched"):
        after = [*model.parameters(), *model.buffers()]
        assert all(torch.equal(a, b) for a, b in zip(before, after)), (
            f"attack {name!r} changed the model's parameters or buffers")
    if want("forward_counted"):
        assert res.stats.forward_samples >= 2 * len(x), (
            f"attack {name!r}: {res.stats.forward_samples} forward samples counted for "
            f"{len(x)} inputs (clean + verification at least)")
    if want("backward_counted") and cls.white_box:
        assert res.stats.backward_samples >= 1, (
            f"attack {name!r} is white-box but counted no backward pass")
    if want("reports_match_model"):
        with torch.no_grad():
            model.eval()
            assert torch.equal(model(res.x_adv).argmax(1) == y, res.adv_correct), (
                f"attack {name!r}: adv_correct disagrees with the model on x_adv")
    if want("negative_eps"):
        try:
            cls(eps=-0.1, norm=norm)
        except AttackError as exc:
            assert "negative" in str(exc), f"attack {name!r}: unclear error {exc}"
        else:
            raise AssertionError(f"attack {name!r} accepted eps = -0.1")
    return skip
