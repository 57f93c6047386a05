"""The base class of every fault model (plugin kind ``fault``) and its parameter dataclass.

A fault model decides *what happens to one stored word* when a fault hits it. It does so in two
steps, so that the engine can keep every injection a reversible XOR:

1. :meth:`FaultModel.sample` draws, on the host, one *payload* per fault (a bit pattern, as an
   unsigned integer) and the bit position the fault is booked under in per-bit statistics;
2. :meth:`FaultModel.xor_mask` turns the payload and the word's current bits (on the device)
   into the XOR mask that is applied, and later applied again to undo the fault.

A new fault model is one file: subclass :class:`FaultModel`, set ``name``, declare ``Params``
(a dataclass) and override those two methods (see :mod:`trustbench.faults.bitflip`). Its class
attributes say where the faults suite runs it (``profiles``, ``order``), whether every fault
changes the word (``always_changes``) and which contract checks do not apply to it, with the
reason (``contract_opt_out``, see :mod:`trustbench.faults.contract`). ``trustbench new fault
NAME`` writes such a file (:mod:`trustbench.faults.template`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from trustbench.faults.bits import BitLayout
from trustbench.faults.errors import FaultError
from trustbench.faults.profiles import PROFILES
from trustbench.registry import Plugin


@dataclass
class FaultParams:
    """Parameters of a fault model without any."""


class FaultModel(Plugin, kind="fault"):
    """Base of all fault models.

    Parameters
    ----------
    params
        An instance of the subclass's ``Params`` dataclass; or leave it out and pass its
        fields as keyword arguments.

    Attributes
    ----------
    profiles
        The benchmark profiles in which the faults suite measures this model with its default
        parameters (a row of ``weight_sdc_rate_by_fault_model``); the user's ``fault_models``
        setting under ``[faults]`` replaces the selection. Default: every profile.
    order
        Position of its row in that table (ties go by name); built-ins use 0-50.
    always_changes
        True when every fault changes the word (the contract test holds it to that).
    contract_opt_out
        ``{"check": "reason"}``: contract checks that do not apply (e.g. ``"int8"`` for a
        model of exponent bits), each with the reason the contract test reports.
    """

    Params: ClassVar[type] = FaultParams
    profiles: ClassVar[tuple[str, ...]] = PROFILES
    order: ClassVar[int] = 100
    #: True when the fault always changes the word (used by the contract test).
    always_changes: ClassVar[bool] = True
    contract_opt_out: ClassVar[dict[str, str]] = {}

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        if params is None:
            try:
                params = self.Params(**kwargs)
            except TypeError:
                fields = ", ".join(f.name for f in dataclasses.fields(self.Params)) or "(none)"
                raise FaultError(
                    f"fault model {self.name!r} got unknown parameters {sorted(kwargs)}; "
                    f"its parameters are: {fields}."
                ) from None
        elif kwargs:
            raise FaultError("pass either a params dataclass or keyword arguments, not both")
        if not isinstance(params, self.Params):
            raise FaultError(
                f"fault model {self.name!r} expects params of type {self.Params.__name__}, "
                f"got {type(params).__name__}"
            )
        self.params = params
        self.check()

    def check(self) -> None:
        """Validate parameters that need no layout (override to add checks)."""

    def check_layout(self, layout: BitLayout) -> None:
        """Validate the parameters against a dtype's layout (bit indices in range, ...)."""

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` faults for words of ``layout``.

        Returns
        -------
        payload : numpy.ndarray of uint64, shape (n,)
            One bit pattern per fault (what :meth:`xor_mask` receives, in native form).
        bit : numpy.ndarray of int16, shape (n,)
            Bit position each fault is booked under in per-bit statistics (``-1``: none).
        """
        raise NotImplementedError

    def xor_mask(self, old: torch.Tensor, payload: torch.Tensor) -> torch.Tensor:
        """XOR mask to apply, from the words' current bits and the payload (same int dtype).

        The default is a pure flip of the payload's bits.
        """
        return payload

    def describe(self) -> dict[str, Any]:
        """Name and parameters, JSON-plain (for results and fingerprints)."""
        return {"name": self.name, **dataclasses.asdict(self.params)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.params).items())
        return f"{type(self).__name__}({args})"


def check_k_and_field(k: Any, field: str, what: str) -> None:
    """Validate the ``k`` and ``field`` parameters shared by multi-bit fault models."""
    from trustbench.faults.bits import FIELDS
    from trustbench.faults.errors import FaultError

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise FaultError(f"k ({what}) must be a positive int, got {k!r}")
    if field not in (*FIELDS, "all"):
        raise FaultError(f"unknown bit field {field!r}; accepted: {', '.join(FIELDS)}")


def bits_to_payload(bits: np.ndarray) -> np.ndarray:
    """Single bit positions -> one-hot uint64 payloads."""
    return np.left_shift(np.uint64(1), bits.astype(np.uint64))


def choose_bits(layout: BitLayout, field: str, bit: int | None, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``n`` bit positions: ``bit`` if fixed, else uniform over ``field``'s bits."""
    if bit is not None:
        layout.check_bit(bit)
        return np.full(n, int(bit), dtype=np.int16)
    candidates = np.asarray(layout.field(field), dtype=np.int16)
    return candidates[rng.integers(0, len(candidates), size=n)]


def resolve(fault_model: FaultModel | str, **kwargs: Any) -> FaultModel:
    """A fault model instance from an instance or a registered name (plus parameters)."""
    if isinstance(fault_model, FaultModel):
        return fault_model
    from trustbench import registry

    cls = registry.get("fault", fault_model)
    return cls(**kwargs)
