"""Random value: the whole word replaced by a value drawn uniformly from ``[low, high]``.

This is the default error model of PyTorchFI (Mahmoud et al. 2020, "PyTorchFI: A Runtime
Perturbation Tool for DNNs", DSN-W), kept for comparison with it. The new value is rounded to
the tensor's dtype (for int8: an integer in ``[max(low, -128), min(high, 127)]``); the fault is
still applied as an XOR of old and new bits, so it is reversed exactly.

>>> from trustbench.faults.random_value import RandomValue
>>> RandomValue(low=-2.0, high=2.0).params.high
2.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trustbench.faults.base import FaultModel
from trustbench.faults.bits import BitLayout, to_unsigned
from trustbench.faults.errors import FaultError


@dataclass
class RandomValueParams:
    """Parameters of :class:`RandomValue`: the new value is uniform in ``[low, high]``."""

    low: float = -1.0
    high: float = 1.0


class RandomValue(FaultModel):
    """Replace the word by a uniformly random value."""

    name = "random_value"
    Params = RandomValueParams
    profiles = ("full",)
    order = 50
    always_changes = False

    def check(self) -> None:
        lo, hi = self.params.low, self.params.high
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise FaultError(f"random_value needs finite low <= high, got [{lo}, {hi}]")

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if layout.dtype == torch.int8:
            lo = max(-128, int(np.ceil(self.params.low)))
            hi = min(127, int(np.floor(self.params.high)))
            if lo > hi:
                raise FaultError(f"[{self.params.low}, {self.params.high}] holds no int8 value")
            values = torch.from_numpy(rng.integers(lo, hi + 1, size=n).astype(np.int8))
        else:
            vals = rng.uniform(self.params.low, self.params.high, size=n)
            values = torch.from_numpy(vals).to(layout.dtype)
        words = to_unsigned(values.view(layout.int_dtype), layout)
        return words, np.full(n, -1, dtype=np.int16)

    def xor_mask(self, old: torch.Tensor, payload: torch.Tensor) -> torch.Tensor:
        return old ^ payload
