"""Multiple-bit upsets: ``k`` distinct random bits of one word flipped together.

Reference: Sangchoolie, Pattabiraman & Karlsson (2017), "One Bit is (Not) Enough: An Empirical
Study of the Impact of Single and Multiple Bit-Flip Errors", DSN'17. Per-bit statistics book
the fault under its most significant flipped bit.

>>> from trustbench.faults.multibit import MultiBitFlip
>>> MultiBitFlip(k=3).params.k
3
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustbench.faults.base import FaultModel, check_k_and_field
from trustbench.faults.bits import BitLayout
from trustbench.faults.errors import FaultError


@dataclass
class MultiBitFlipParams:
    """Parameters of :class:`MultiBitFlip`: ``k`` bits, drawn without replacement from ``field``."""

    k: int = 2
    field: str = "any"


class MultiBitFlip(FaultModel):
    """Invert ``k`` distinct bits chosen uniformly within a field of the word."""

    name = "multibit"
    Params = MultiBitFlipParams
    profiles = ("standard", "full")
    order = 30

    def check(self) -> None:
        check_k_and_field(self.params.k, self.params.field, "bits per fault")

    def check_layout(self, layout: BitLayout) -> None:
        width = len(layout.field(self.params.field))
        if self.params.k > width:
            raise FaultError(f"cannot flip k={self.params.k} distinct bits in the "
                             f"{self.params.field} field of {layout.name} ({width} bits)")

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        self.check_layout(layout)
        cand = np.asarray(layout.field(self.params.field), dtype=np.uint64)
        order = np.argsort(rng.random((n, len(cand))), axis=1)[:, : self.params.k]
        chosen = cand[order]
        payload = np.bitwise_or.reduce(np.left_shift(np.uint64(1), chosen), axis=1)
        return payload.astype(np.uint64), chosen.max(axis=1).astype(np.int16)
