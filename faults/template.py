"""The one-file templates of a new fault model and a new protection (``trustbench new fault
NAME``, ``trustbench new protection NAME``).

Each rendered file is a complete, working plugin to edit, and passes the contract checks of
:mod:`trustbench.faults.contract` as written: a module docstring citing the paper it implements
and how to register it, a parameter dataclass, the class with ``name``, ``Params``, the
``profiles`` it runs in and a runnable ``>>>`` example.

- fault model: random bit errors at a per-bit error rate ``p`` in the word a fault hits (the
  error model of approximate DRAM and low-voltage SRAM, Koppula et al. 2019, Stutz et al. 2021);
- protection: FT-ClipAct (Hoang et al. 2020), activations above a threshold profiled on clean
  data are zeroed.
"""

from __future__ import annotations

import keyword
import re

from trustbench.faults.errors import FaultError

__all__ = ["render_fault_template", "render_protection_template"]

_FAULT_TEMPLATE = '''"""{title}: a trustbench fault model plugin.

TODO: cite the paper this implements, with its link. As written, this file implements random
bit errors at a bit error rate: every bit of a word fails on its own with probability ``p``,
the error model of approximate DRAM and low-voltage SRAM (Koppula et al., "EDEN: Enabling
Energy-Efficient, High-Performance Deep Neural Network Inference Using Approximate DRAM",
MICRO 2019, https://arxiv.org/abs/1910.05340; Stutz et al., "Bit Error Robustness for
Energy-Efficient DNN Accelerators", MLSys 2021, https://arxiv.org/abs/2006.13977). A fault is a
word with at least one erroneous bit, so each fault flips one bit or more; per-bit statistics
book it under its most significant flipped bit.

Register it by dropping this file into trustbench's ``faults/`` folder (every module there is
imported), or from your package's pyproject.toml:

    [project.entry-points."trustbench.faults"]
    {name} = "{module}:{cls}"

Check it with ``trustbench.faults.contract.check_plugin({cls})``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustbench.faults import BitLayout, FaultError, FaultModel


@dataclass
class {cls}Params:
    """Parameters of {name}.

    Attributes
    ----------
    p
        Probability that one bit of the word is in error (0 < p < 1).
    field
        Bits that can fail: ``any`` (the whole word), ``sign``, ``exponent`` or ``mantissa``.
    """

    p: float = 0.01
    field: str = "any"


class {cls}(FaultModel):
    """{title}: each bit of the hit word flips independently with probability ``p``.

    TODO: one paragraph on the physical fault this models.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from trustbench.faults import layout_for
    >>> payload, bit = {cls}(p=0.2).sample(4, layout_for(torch.float32),
    ...                                    np.random.default_rng(0))
    >>> payload.shape, bool((payload != 0).all())
    ((4,), True)
    """

    name = "{name}"
    Params = {cls}Params
    # The benchmark profiles whose faults suite measures it (a row of the SDC rate by fault
    # model); leave out the ones where it would cost too much.
    profiles = ("smoke", "standard", "full")
    # Every fault flips at least one bit (the contract test holds the model to that).
    always_changes = True
    # A contract check that cannot apply, with the reason, e.g.
    # contract_opt_out = {{"int8": "flips exponent bits; int8 words have none"}}

    def check(self) -> None:
        p = self.params.p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p < 1.0:
            raise FaultError(f"{name}: p must be a probability strictly between 0 and 1, "
                             f"got {{p!r}}")

    def check_layout(self, layout: BitLayout) -> None:
        layout.field(self.params.field)  # raises FaultError for a field the dtype lacks

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        bits = np.asarray(layout.field(self.params.field), dtype=np.uint64)
        m, p = len(bits), float(self.params.p)
        # The word has at least one erroneous bit: the first (in field order) follows the
        # geometric distribution truncated to the field, every later bit fails on its own.
        u = rng.random(n)
        hit_any = -np.expm1(m * np.log1p(-p))
        first = np.floor(np.log1p(-u * hit_any) / np.log1p(-p)).astype(np.int64)
        first = np.minimum(first, m - 1)
        position = np.arange(m)
        flipped = (position == first[:, None]) | (
            (position > first[:, None]) & (rng.random((n, m)) < p))
        payload = np.bitwise_or.reduce(
            np.where(flipped, np.left_shift(np.uint64(1), bits), np.uint64(0)), axis=1)
        top = m - 1 - np.argmax(flipped[:, ::-1], axis=1)
        return payload.astype(np.uint64), bits[top].astype(np.int16)

    # xor_mask(old, payload) is left to the base class: the payload's bits are flipped. Return
    # another mask to model a fault that depends on the stored bits (stuck-at: payload & ~old).
'''

_PROTECTION_TEMPLATE = '''"""{title}: a trustbench protection plugin.

TODO: cite the paper this implements, with its link. As written, this file implements
FT-ClipAct (Hoang, Hanif & Shafique, "FT-ClipAct: Resilience Analysis of Deep Neural Networks
and Improving their Fault Tolerance using Clipped Activation", DATE 2020,
https://arxiv.org/abs/1912.00941): the largest output of each activation layer is profiled on
clean data, and an output above that threshold (a fault that made a value huge, Inf or NaN)
is read as zero.

Register it by dropping this file into trustbench's ``faults/`` folder (every module there is
imported), or from your package's pyproject.toml:

    [project.entry-points."trustbench.protections"]
    {name} = "{module}:{cls}"

Check it with ``trustbench.faults.contract.check_plugin({cls})``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from trustbench.faults import FaultError
from trustbench.faults.protection import Protection


@dataclass
class {cls}Params:
    """Parameters of {name}.

    Attributes
    ----------
    layer_types
        Class names of the modules whose outputs are clipped.
    margin
        Relative slack on each profiled threshold (0.0: the largest clean output itself).
    batch_size
        Inputs per profiling forward pass.
    """

    layer_types: tuple[str, ...] = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU")
    margin: float = 0.0
    batch_size: int = 1024


class {cls}(Protection):
    """{title}: outputs of activation layers above their clean maximum are read as zero.

    TODO: one paragraph on what the protection catches and what it costs per forward pass.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 3)).eval()
    >>> clip = {cls}().fit(net, torch.randn(64, 4))
    >>> with clip.applied(net):
    ...     out = net(torch.full((1, 4), 1e30))
    >>> bool(torch.isfinite(out).all())
    True
    """

    name = "{name}"
    Params = {cls}Params
    # The benchmark profiles whose faults suite evaluates it.
    profiles = ("smoke", "standard", "full")

    params: {cls}Params

    def __init__(self, params: {cls}Params | None = None, **kwargs) -> None:
        super().__init__(params, **kwargs)
        if not math.isfinite(self.params.margin) or self.params.margin < 0:
            raise FaultError(f"{name}: margin must be a finite number >= 0, "
                             f"got {{self.params.margin!r}}")
        # layer -> threshold (the faults suite records the layers as ``protected_layers``)
        self.bounds: dict[str, float] = {{}}

    @property
    def fitted(self) -> bool:
        return bool(self.bounds)

    def fit(self, model: nn.Module, x: torch.Tensor) -> {cls}:
        """Record the largest output of each clipped layer over the clean inputs ``x``."""
        layers = {{n: m for n, m in model.named_modules()
                  if type(m).__name__ in self.params.layer_types}}
        if not layers:
            raise FaultError(f"{name}: the model has no {{self.params.layer_types}} layers")
        peak: dict[str, torch.Tensor] = {{}}

        def make(name: str):
            def hook(_module, _inputs, out):
                if isinstance(out, torch.Tensor):
                    top = out.detach().amax()
                    peak[name] = top if name not in peak else torch.maximum(peak[name], top)
            return hook

        handles = [m.register_forward_hook(make(n)) for n, m in layers.items()]
        device = next(model.parameters()).device
        try:
            with torch.no_grad():
                for xb in x.split(self.params.batch_size):
                    model(xb.to(device))
        finally:
            for h in handles:
                h.remove()
        self.bounds = {{n: float(t) * (1.0 + self.params.margin) for n, t in peak.items()}}
        return self

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context in which every clipped layer's output above its threshold reads as zero."""
        if not self.bounds:
            raise FaultError("{name} must be fitted on clean data first (fit).")
        named = dict(model.named_modules())

        def make(threshold: float):
            def hook(_module, _inputs, out):
                if isinstance(out, torch.Tensor):  # NaN fails the comparison: zeroed too
                    return torch.where(out <= threshold, out, torch.zeros_like(out))
                return None
            return hook

        handles = []
        try:
            for name, threshold in self.bounds.items():
                if name not in named:
                    raise FaultError(f"{name} was fitted on another model: no layer {{name!r}}")
                handles.append(named[name].register_forward_hook(make(threshold)))
            yield model
        finally:
            for h in handles:
                h.remove()
'''


#: Names the rendered files import (a class of the same name would shadow them).
_IMPORTED = frozenset({"BitLayout", "FaultError", "FaultModel", "Protection", "Iterator"})


def _names(name: str, what: str) -> tuple[str, str]:
    """The class name and title of a plugin called ``name`` (validated)."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name):
        raise FaultError(
            f"{what} name {name!r} is not accepted: use lowercase letters, digits and single "
            f"underscores, starting with a letter (e.g. 'my_{what.split()[-1]}'); the name "
            "becomes part of metric names")
    cls = "".join(part.capitalize() for part in name.split("_"))
    if keyword.iskeyword(cls) or not cls.isidentifier():
        raise FaultError(f"{what} name {name!r} does not give a valid class name ({cls!r})")
    if cls in _IMPORTED or cls.removesuffix("Params") in _IMPORTED:
        raise FaultError(f"{what} name {name!r} gives the class name {cls!r}, which the file "
                         "imports from trustbench; choose another name")
    title = " ".join(part.upper() if len(part) <= 3 else part.capitalize()
                     for part in name.split("_"))
    return cls, title


def render_fault_template(name: str, module: str | None = None) -> str:
    """Source of a complete one-file fault model registered as ``name``.

    Parameters
    ----------
    name
        Registry name: lowercase letters, digits and single underscores, starting with a letter
        (``"dram_bit_errors"``); the class is its CamelCase (``DramBitErrors``).
    module
        Importable module path the file will live at (for the entry-point snippet in its
        docstring); default ``name``.

    Raises
    ------
    FaultError
        If ``name`` is not a valid plugin name.
    """
    cls, title = _names(name, "fault model")
    return _FAULT_TEMPLATE.format(name=name, cls=cls, title=title, module=module or name)


def render_protection_template(name: str, module: str | None = None) -> str:
    """Source of a complete one-file protection registered as ``name``.

    Parameters
    ----------
    name
        Registry name, as for :func:`render_fault_template` (``"clip_act"``: ``ClipAct``); its
        metrics are named ``<name>_sdc_reduction`` and so on.
    module
        Importable module path the file will live at; default ``name``.

    Raises
    ------
    FaultError
        If ``name`` is not a valid plugin name.
    """
    cls, title = _names(name, "protection")
    return _PROTECTION_TEMPLATE.format(name=name, cls=cls, title=title, module=module or name)
