"""The contract every fault model and protection keeps, as plain checks (no pytest needed).

The repository's contract test (``tests/unit/faults/test_contract.py``) runs each check on every
registered plugin, third-party ones included; a plugin author runs them on their own class::

    from trustbench.faults.contract import check_plugin
    check_plugin(MyFaultModel)          # raises AssertionError naming what broke

Each check is a function of the plugin class that raises :class:`AssertionError` with a message
saying what was promised and what happened. A plugin opts out of one check with the reason,
which the contract test reports as the skip reason::

    contract_opt_out = {"int8": "flips exponent bits; int8 words have none"}

Fault models (:data:`FAULT_CHECKS`): ``docstring`` (a class docstring; the module or class
docstring cites its source), ``example`` (a ``>>>`` example in them, which runs), ``params``
(``Params`` is a dataclass, the model builds with its defaults, ``describe()`` is JSON-plain),
one check per word layout (``fp32``, ``fp16``, ``bf16``, ``int8``: ``sample`` shapes, dtypes and
ranges, an XOR mask of the word's integer dtype that undoes itself, every mask non-zero if the
model says ``always_changes``, the same faults from the same seed) and ``campaign`` (a tiny
weight campaign runs and leaves the weights bit-identical).

Protections (:data:`PROTECTION_CHECKS`): ``docstring``, ``example``, ``params``, ``fit``
(returns the protection, ``fitted`` afterwards, the model bit-identical), ``applied`` (the
protected model runs; leaving the context removes every hook and attribute, and the model
computes bit for bit what it did before) and ``campaign`` (``evaluate_protection`` on a tiny
model gives rates and intervals in range and leaves the model bit-identical).

``opt_outs`` (every kind) checks the opt-outs themselves: known check names, each with a reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from trustbench.registry import CITATION_RE, contract_opt_outs

__all__ = [
    "CHECKS",
    "FAULT_CHECKS",
    "LAYOUTS",
    "PROTECTION_CHECKS",
    "check_plugin",
    "checks_of",
    "run_check",
]

#: The word layouts a fault model is checked on: check name -> dtype.
LAYOUTS: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8,
}

#: Faults drawn per layout check (and per tiny campaign).
N_FAULTS = 64

# A year (1950-2099), a link or a DOI: what a citation of the source looks like.

# --------------------------------------------------------------------------- shared checks


def check_opt_outs(cls: type) -> None:
    """``contract_opt_out`` names known checks of the plugin's kind, each with a reason."""
    try:
        opted = contract_opt_outs(cls)
    except Exception as exc:
        raise AssertionError(str(exc)) from None
    known = checks_of(cls)
    unknown = sorted(set(opted) - set(known))
    assert not unknown, (
        f"{_name(cls)} opts out of unknown contract check(s) {unknown}; the checks of a "
        f"{cls.kind} plugin are: {', '.join(k for k in known if k != 'opt_outs')}")
    assert "opt_outs" not in opted, f"{_name(cls)} cannot opt out of the opt_outs check"


def check_profiles(cls: type) -> None:
    """``profiles`` (if declared) is a tuple of known profile names, so the suite runs it."""
    from trustbench.faults.profiles import declared_profiles

    try:
        declared_profiles(cls)
    except Exception as exc:
        raise AssertionError(str(exc)) from None


def check_docstring(cls: type) -> None:
    """A class docstring of its own, and a citation of the source in the module's or class's."""
    own = (cls.__dict__.get("__doc__") or "").strip()
    assert own, (f"{_name(cls)} has no docstring: say in one line what the {cls.kind} does "
                 "(and in the module or class docstring the paper or source it implements)")
    text = f"{_module_doc(cls)}\n{own}"
    assert CITATION_RE.search(text), (
        f"{_name(cls)} does not cite its source: name the paper it implements (authors, "
        "year, venue, link) in its module or class docstring")


def check_example(cls: type) -> None:
    """A runnable ``>>>`` example in the module's or class's docstring; every one passes."""
    import doctest
    import io

    module = sys.modules.get(cls.__module__)
    globs = dict(vars(module)) if module is not None else {}
    globs.setdefault(cls.__name__, cls)
    finder = doctest.DocTestFinder(recurse=False)
    tests = []
    for obj in ([module] if module is not None and module.__doc__ else []) + [cls]:
        tests += [t for t in finder.find(obj, globs=globs) if t.examples]
    assert tests, (f"{_name(cls)} shows no runnable example: add a `>>>` example to its module "
                   "or class docstring")
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=out.write, clear_globs=False)
    assert runner.failures == 0, f"{_name(cls)}: its docstring example fails:\n{out.getvalue()}"


def check_params(cls: type) -> None:
    """``Params`` is a dataclass; the plugin builds with its defaults; ``describe()`` is plain."""
    import json

    params = getattr(cls, "Params", None)
    assert inspect.isclass(params) and dataclasses.is_dataclass(params), (
        f"{_name(cls)}.Params must be a dataclass of its parameters (got {params!r})")
    try:
        plugin = cls()
    except Exception as exc:
        raise AssertionError(f"{_name(cls)}() fails with its default parameters (the suites "
                             f"build it so): {exc!r}") from exc
    assert isinstance(plugin.params, params), (
        f"{_name(cls)}().params is a {type(plugin.params).__name__}, not its Params")
    described = plugin.describe()
    assert isinstance(described, dict) and described.get("name") == cls.name, (
        f"{_name(cls)}.describe() must return a dict with its name, got {described!r}")
    try:
        json.dumps(described)
    except TypeError as exc:
        raise AssertionError(f"{_name(cls)}.describe() is not JSON-plain: {exc}") from None


# --------------------------------------------------------------------------- fault models


def check_layout(cls: type, layout_name: str) -> None:
    """``sample`` and ``xor_mask`` keep their promises on words of one layout."""
    from trustbench.faults import layout_for

    lay = layout_for(LAYOUTS[layout_name])
    fm = cls()
    where = f"{_name(cls)} on {lay.name} words"
    try:
        payload, bit = fm.sample(N_FAULTS, lay, np.random.default_rng(0))
    except Exception as exc:
        raise AssertionError(
            f"{where}: sample() fails ({exc!r}); if the model cannot take {lay.name} words, "
            f"opt out with contract_opt_out = {{{layout_name!r}: 'the reason'}}") from exc
    assert isinstance(payload, np.ndarray) and payload.dtype == np.uint64, (
        f"{where}: the payload must be a uint64 NumPy array, got "
        f"{type(payload).__name__} of {getattr(payload, 'dtype', '?')}")
    assert isinstance(bit, np.ndarray) and bit.dtype == np.int16, (
        f"{where}: the booked bit must be an int16 NumPy array, got "
        f"{type(bit).__name__} of {getattr(bit, 'dtype', '?')}")
    assert payload.shape == bit.shape == (N_FAULTS,), (
        f"{where}: sample({N_FAULTS}) must return arrays of shape ({N_FAULTS},), got "
        f"{payload.shape} and {bit.shape}")
    assert int(payload.max()) < (1 << lay.nbits), (
        f"{where}: a payload has bits beyond the {lay.nbits}-bit word: {hex(int(payload.max()))}")
    assert bool(((bit >= -1) & (bit < lay.nbits)).all()), (
        f"{where}: booked bits must lie in -1..{lay.nbits - 1}, got {sorted(set(bit.tolist()))}")
    old = _native(np.random.default_rng(1).integers(0, 1 << lay.nbits, N_FAULTS,
                                                    dtype=np.uint64), lay.nbits)
    old_copy = old.clone()
    mask = fm.xor_mask(old, _native(payload, lay.nbits))
    assert isinstance(mask, torch.Tensor) and mask.dtype == lay.int_dtype, (
        f"{where}: xor_mask must return a tensor of the word's integer dtype {lay.int_dtype}, "
        f"got {getattr(mask, 'dtype', type(mask).__name__)}")
    assert mask.shape == old.shape, (
        f"{where}: xor_mask must return one mask per word, shape {tuple(old.shape)}, got "
        f"{tuple(mask.shape)}")
    assert torch.equal(old, old_copy), f"{where}: xor_mask changed the words it was given"
    assert torch.equal(old ^ mask ^ mask, old), f"{where}: the XOR does not undo itself"
    if getattr(cls, "always_changes", True):
        unchanged = int((mask == 0).sum())
        assert unchanged == 0, (
            f"{where}: {unchanged} of {N_FAULTS} faults leave the word as it was, but the "
            "model declares always_changes = True (set it to False if that is intended)")
    again, again_bit = fm.sample(N_FAULTS, lay, np.random.default_rng(0))
    assert np.array_equal(again, payload) and np.array_equal(again_bit, bit), (
        f"{where}: the same seed drew other faults; draw all randomness from the given rng")
    mask_again = fm.xor_mask(old, _native(payload, lay.nbits))
    assert torch.equal(mask_again, mask), f"{where}: xor_mask is not deterministic"
    # the activation engine hands words over as (faults, 1) columns: one mask per word, in the
    # words' own shape (a mask that broadcasts or flattens would be applied to other words)
    column = old.reshape(-1, 1)
    mask_2d = fm.xor_mask(column, _native(payload, lay.nbits).reshape(-1, 1))
    assert isinstance(mask_2d, torch.Tensor) and mask_2d.shape == column.shape, (
        f"{where}: xor_mask must keep the words' shape; on words of shape "
        f"{tuple(column.shape)} it returned {tuple(getattr(mask_2d, 'shape', ()))}")
    assert torch.equal(mask_2d.reshape(-1), mask), (
        f"{where}: xor_mask gives other masks for the same words in a column")


def check_campaign(cls: type) -> None:
    """A tiny weight campaign with the model runs and leaves the weights bit-identical."""
    from trustbench.faults import run_campaign

    model, x, y = _tiny()
    before = _state(model)
    try:
        res = run_campaign(model, x, y, target="weights", n_faults=N_FAULTS, seed=0,
                           fault_model=cls())
    except Exception as exc:
        raise AssertionError(f"{_name(cls)}: a weight campaign on a tiny fp32 CNN fails: "
                             f"{exc!r}") from exc
    assert _state(model) == before, f"{_name(cls)}: the weights changed during a campaign"
    assert res.complete and res.n_faults == N_FAULTS, (
        f"{_name(cls)}: the campaign ran {res.n_faults} of {N_FAULTS} faults")
    for rate in (res.sdc, res.critical_sdc, res.due):
        assert 0.0 <= rate.value <= 1.0 and rate.ci[0] <= rate.value <= rate.ci[1], (
            f"{_name(cls)}: a rate out of range: {rate}")


def _layout_check(layout_name: str) -> Callable[[type], None]:
    def check(cls: type) -> None:
        check_layout(cls, layout_name)

    check.__name__ = f"check_{layout_name}"
    check.__doc__ = f"{check_layout.__doc__} ({layout_name})"
    return check


#: Check name -> check function of a fault model class.
FAULT_CHECKS: dict[str, Callable[[type], None]] = {
    "opt_outs": check_opt_outs,
    "profiles": check_profiles,
    "docstring": check_docstring,
    "example": check_example,
    "params": check_params,
    **{name: _layout_check(name) for name in LAYOUTS},
    "campaign": check_campaign,
}


# --------------------------------------------------------------------------- protections


def check_fit(cls: type) -> None:
    """``fit`` returns the protection, which is ``fitted``; the model is left as it was."""
    model, x, _ = _tiny()
    before, hooks, mode = _state(model), _hooks(model), model.training
    prot = cls()
    fitted = prot.fit(model, x)
    assert fitted is prot, f"{_name(cls)}.fit() must return the protection itself"
    assert prot.fitted, f"{_name(cls)}.fitted is False after fit()"
    assert _state(model) == before, f"{_name(cls)}.fit() changed the model's parameters"
    assert _hooks(model) == hooks, f"{_name(cls)}.fit() left hooks or attributes on the model"
    assert model.training == mode, f"{_name(cls)}.fit() changed the model's train/eval mode"


def check_applied(cls: type) -> None:
    """The protected model runs; leaving ``applied`` restores the model bit for bit."""
    model, x, _ = _tiny()
    prot = cls().fit(model, x)
    before, hooks = _state(model), _hooks(model)
    modes = [m.training for m in model.modules()]
    with torch.no_grad():
        clean = model(x)
        with prot.applied(model) as protected:
            out = (protected if isinstance(protected, nn.Module) else model)(x)
        after = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == clean.shape, (
        f"{_name(cls)}: the protected model returns {getattr(out, 'shape', out)!r}, not "
        f"logits of shape {tuple(clean.shape)}")
    assert bool(torch.isfinite(out).all()), (
        f"{_name(cls)}: the protected model's output on clean inputs is not finite")
    assert _hooks(model) == hooks, (
        f"{_name(cls)}: hooks or attributes are left on the model after `applied` exits")
    assert _state(model) == before, f"{_name(cls)}: the model's parameters changed"
    assert [m.training for m in model.modules()] == modes, (
        f"{_name(cls)}: train/eval modes of the model's modules changed after `applied` exits")
    assert torch.equal(after, clean), (
        f"{_name(cls)}: after `applied` exits the model computes other outputs than before")


def check_protection_campaign(cls: type) -> None:
    """``evaluate_protection`` on a tiny model: results in range, the model left as it was."""
    from trustbench.faults import evaluate_protection

    model, x, y = _tiny()
    before = _state(model)
    try:
        res = evaluate_protection(model, x, y, cls(), n_faults=N_FAULTS, seed=0)
    except Exception as exc:
        raise AssertionError(f"{_name(cls)}: evaluate_protection on a tiny fp32 CNN fails: "
                             f"{exc!r}") from exc
    assert _state(model) == before, f"{_name(cls)}: the model changed during the evaluation"
    assert res.protected.n_faults == res.baseline.n_faults == N_FAULTS, (
        f"{_name(cls)}: the protected campaign ran {res.protected.n_faults} faults, the "
        f"baseline {res.baseline.n_faults}; expected {N_FAULTS} each")
    for what, value, ci in (("sdc_reduction", res.sdc_reduction, res.sdc_reduction_ci),
                            ("critical_sdc_reduction", res.critical_sdc_reduction,
                             res.critical_sdc_reduction_ci),
                            ("accuracy_cost", res.accuracy_cost, res.accuracy_cost_ci)):
        assert -1.0 <= ci[0] <= value <= ci[1] <= 1.0, (
            f"{_name(cls)}: {what} {value} is outside its interval {ci} or [-1, 1]")


#: Check name -> check function of a protection class.
PROTECTION_CHECKS: dict[str, Callable[[type], None]] = {
    "opt_outs": check_opt_outs,
    "profiles": check_profiles,
    "docstring": check_docstring,
    "example": check_example,
    "params": check_params,
    "fit": check_fit,
    "applied": check_applied,
    "campaign": check_protection_campaign,
}

#: Plugin kind -> its checks.
CHECKS: dict[str, dict[str, Callable[[type], None]]] = {
    "fault": FAULT_CHECKS, "protection": PROTECTION_CHECKS,
}


# --------------------------------------------------------------------------- running them


def checks_of(cls: type) -> list[str]:
    """Names of the contract checks of ``cls``'s kind (``fault`` or ``protection``)."""
    kind = getattr(cls, "kind", "")
    if kind not in CHECKS:
        raise TypeError(f"{_name(cls)} is not a fault model or protection (kind {kind!r}); "
                        f"the faults contract covers the kinds {', '.join(CHECKS)}")
    return list(CHECKS[kind])


def run_check(cls: type, check: str) -> None:
    """Run one check on ``cls`` (whether or not it opted out of it)."""
    checks = CHECKS.get(getattr(cls, "kind", ""), {})
    if check not in checks:
        raise KeyError(f"no contract check {check!r} for {_name(cls)}; its checks are: "
                       f"{', '.join(checks_of(cls))}")
    checks[check](cls)


def check_plugin(cls: type) -> dict[str, str | None]:
    """Run every contract check on ``cls``, except those it opted out of.

    Returns
    -------
    dict
        Check name -> None (passed) or the opt-out reason (not run).

    Raises
    ------
    AssertionError
        Naming every check that failed, with its message.
    """
    names = checks_of(cls)
    check_opt_outs(cls)
    opted = contract_opt_outs(cls)
    outcome: dict[str, str | None] = {}
    failures = []
    for check in names:
        if check in opted:
            outcome[check] = opted[check]
            continue
        try:
            run_check(cls, check)
        except AssertionError as exc:
            failures.append(f"{check}: {exc}")
        except Exception as exc:  # a check that cannot even run is a broken promise too
            failures.append(f"{check}: {type(exc).__name__}: {exc}")
        outcome[check] = None
    if failures:
        raise AssertionError(f"{_name(cls)} breaks its contract:\n" + "\n".join(failures))
    return outcome


# --------------------------------------------------------------------------- helpers


def _name(cls: type) -> str:
    return f"{getattr(cls, 'kind', 'plugin')} {getattr(cls, 'name', '') or cls.__qualname__!r}"


def _module_doc(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    return (getattr(module, "__doc__", None) or "") if module is not None else ""


def _native(words: np.ndarray, nbits: int) -> torch.Tensor:
    """Unsigned bit patterns -> tensor of the signed integer dtype of ``nbits``-bit words."""
    mask = np.uint64((1 << nbits) - 1)
    arr = (np.asarray(words, dtype=np.uint64) & mask).astype(f"uint{nbits}")
    return torch.from_numpy(np.ascontiguousarray(arr.view(f"int{nbits}")))


class _TinyCNN(nn.Module):
    """Conv -> ReLU -> max pool -> Linear -> ReLU -> Linear on 1x6x6 inputs, 4 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(27, 8)
        self.act2 = nn.ReLU()
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.conv(x))).flatten(1)
        return self.fc2(self.act2(self.fc1(h)))


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded tiny CNN in eval mode, 32 inputs and labels (its own predictions, 1 in 4
    shifted so that some are wrong)."""
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _TinyCNN().eval()
    x = torch.rand(32, 1, 6, 6, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::4] = (y[::4] + 1) % 4
    return model, x, y


def _state(model: nn.Module) -> dict[str, bytes]:
    """Exact bytes of every parameter and buffer."""
    return {k: v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            for k, v in model.state_dict().items()}


def _hooks(model: nn.Module) -> dict[str, Any]:
    """Every module's hooks and instance attributes (what a protection must leave behind)."""
    snap: dict[str, Any] = {}
    for name, m in model.named_modules():
        snap[name] = (sorted(m.__dict__),
                      {k: sorted(v) for k, v in vars(m).items()
                       if "hook" in k and isinstance(v, dict)},
                      [(k, id(p)) for k, p in m._parameters.items()])
    from torch.nn.modules import module as _m

    snap[""] = (snap.get(""), len(_m._global_forward_hooks),
                len(_m._global_forward_pre_hooks))
    return snap
