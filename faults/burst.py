"""Burst errors: ``k`` *adjacent* bits of one word flipped together.

Adjacent multi-cell upsets dominate multi-bit upsets in dense SRAM (Ibe et al. 2010, "Impact of
Scaling on Neutron-Induced Soft Error in SRAMs From a 250 nm to a 22 nm Design Rule", IEEE TED).
Per-bit statistics book the fault under its most significant flipped bit.

>>> from trustbench.faults.burst import BurstFlip
>>> BurstFlip(k=4).name
'burst'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustbench.faults.base import FaultModel, check_k_and_field
from trustbench.faults.bits import BitLayout
from trustbench.faults.errors import FaultError


@dataclass
class BurstFlipParams:
    """Parameters of :class:`BurstFlip`: ``k`` adjacent bits, all inside ``field``."""

    k: int = 2
    field: str = "any"


class BurstFlip(FaultModel):
    """Invert ``k`` adjacent bits, the burst's position uniform within a field."""

    name = "burst"
    Params = BurstFlipParams
    profiles = ("full",)
    order = 40

    def check(self) -> None:
        check_k_and_field(self.params.k, self.params.field, "burst length")

    def check_layout(self, layout: BitLayout) -> None:
        width = len(layout.field(self.params.field))
        if self.params.k > width:
            raise FaultError(f"a burst of k={self.params.k} bits does not fit the "
                             f"{self.params.field} field of {layout.name} ({width} bits)")

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        self.check_layout(layout)
        field = layout.field(self.params.field)
        k = self.params.k
        low = rng.integers(field[0], field[-1] - k + 2, size=n).astype(np.uint64)
        ones = np.uint64((1 << k) - 1)
        payload = np.left_shift(ones, low)
        return payload.astype(np.uint64), (low + np.uint64(k - 1)).astype(np.int16)
