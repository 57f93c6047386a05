"""Stuck-at faults: one bit forced to 0 (``stuck_at_0``) or to 1 (``stuck_at_1``).

Permanent-fault model of manufacturing defects and wear-out (e.g. Reagen et al. 2018,
"Ares: A framework for quantifying the resilience of deep neural networks", DAC'18). A
stuck-at fault on a bit that already holds the stuck value changes nothing (it is masked).

>>> import torch
>>> from trustbench.faults.stuck_at import StuckAt1
>>> old = torch.tensor([0b0101], dtype=torch.int32)
>>> StuckAt1(bit=0).xor_mask(old, torch.tensor([1], dtype=torch.int32)).item()  # already 1
0
"""

from __future__ import annotations

import torch

from trustbench.faults.bitflip import BitFlip, BitFlipParams


class StuckAt0(BitFlip):
    """Force one bit to 0 (the XOR mask is the payload bit where the word holds a 1)."""

    name = "stuck_at_0"
    Params = BitFlipParams
    profiles = ("full",)
    order = 10
    always_changes = False

    def xor_mask(self, old: torch.Tensor, payload: torch.Tensor) -> torch.Tensor:
        return payload & old


class StuckAt1(BitFlip):
    """Force one bit to 1 (the XOR mask is the payload bit where the word holds a 0)."""

    name = "stuck_at_1"
    Params = BitFlipParams
    profiles = ("standard", "full")
    order = 20
    always_changes = False

    def xor_mask(self, old: torch.Tensor, payload: torch.Tensor) -> torch.Tensor:
        return payload & ~old
