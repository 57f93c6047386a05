"""The faults pillar: bit-level fault injection into weights and activations, in place on the
tensors' own device, with statistically sized campaigns and range-restriction protection.

Importing the package registers its fault models (kind ``fault``) and protections (kind
``protection``).
"""

from __future__ import annotations

from faults import bitflip, burst, multibit, protection, random_value, stuck_at  # noqa: F401
from faults.base import FaultModel, FaultParams
from faults.bits import BitLayout, flip_, int_view, layout_for
from faults.campaign import CampaignConfig, CampaignResult, CampaignState, Rate, run_campaign
from faults.engine import strict_fp32
from faults.errors import FaultError, IntegrityError
from faults.protection import (
    Protection,
    RangeRestriction,
    WeightRangeCheck,
    evaluate_protection,
)

__all__ = [
    "BitLayout",
    "CampaignConfig",
    "CampaignResult",
    "CampaignState",
    "FaultError",
    "FaultModel",
    "FaultParams",
    "IntegrityError",
    "Protection",
    "RangeRestriction",
    "Rate",
    "WeightRangeCheck",
    "evaluate_protection",
    "flip_",
    "int_view",
    "layout_for",
    "run_campaign",
    "strict_fp32",
]
