"""Single bit flip: the classic soft-error model (one stored bit inverted).

Reference: Li et al. (2017), "Understanding Error Propagation in Deep Learning Neural Network
(DNN) Accelerators and Applications", SC'17; the bit is chosen uniformly over all bits of the
word, fixed, or uniformly within the sign, exponent or mantissa field.

>>> import numpy as np
>>> from trustbench.faults.bitflip import BitFlip
>>> from trustbench.faults.bits import layout_for
>>> import torch
>>> payload, bit = BitFlip(field="exponent").sample(3, layout_for(torch.float32),
...                                                  np.random.default_rng(0))
>>> bool(((bit >= 23) & (bit <= 30)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustbench.faults.base import FaultModel, bits_to_payload, choose_bits
from trustbench.faults.bits import FIELDS, BitLayout
from trustbench.faults.errors import FaultError


@dataclass
class BitFlipParams:
    """Parameters of :class:`BitFlip`.

    Attributes
    ----------
    bit
        Fixed bit position (0 = least significant), or None to draw it.
    field
        Field to draw the bit from: ``any``, ``sign``, ``exponent``, ``mantissa``.
    """

    bit: int | None = None
    field: str = "any"


class BitFlip(FaultModel):
    """Invert one bit of the stored word."""

    name = "bitflip"
    Params = BitFlipParams
    # The headline model: the weight campaign of every profile (not a row of the table).
    profiles = ("smoke", "standard", "full")
    order = 0

    def check(self) -> None:
        if self.params.field not in (*FIELDS, "all"):
            raise FaultError(f"unknown bit field {self.params.field!r}; accepted: "
                             f"{', '.join(FIELDS)}")
        if self.params.bit is not None and (
            isinstance(self.params.bit, bool) or not isinstance(self.params.bit, int)
            or self.params.bit < 0
        ):
            raise FaultError(f"bit must be a non-negative int or None, got {self.params.bit!r}")

    def check_layout(self, layout: BitLayout) -> None:
        if self.params.bit is not None:
            layout.check_bit(self.params.bit)
        else:
            layout.field(self.params.field)

    def sample(self, n: int, layout: BitLayout,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        bits = choose_bits(layout, self.params.field, self.params.bit, n, rng)
        return bits_to_payload(bits), bits
