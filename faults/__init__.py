"""The faults pillar: bit-level fault injection into weights and activations, in place on the
tensors' own device, with statistically sized campaigns and range-restriction protection.

Importing the package registers its fault models (kind ``fault``) and protections (kind
``protection``).
"""

from __future__ import annotations

from trustbench.faults.base import FaultModel, FaultParams
from trustbench.faults.bits import BitLayout, flip_, int_view, layout_for
from trustbench.faults.campaign import (
    CampaignConfig,
    CampaignResult,
    CampaignState,
    Rate,
    run_campaign,
)
from trustbench.faults.engine import strict_fp32
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.protection import (
    Protection,
    RangeRestriction,
    WeightRangeCheck,
    evaluate_protection,
)

from trustbench.registry import Pillar, import_submodules

#: What the faults pillar brings to the harness (found through ``trustbench.pillars``).
PILLAR = Pillar(
    name="faults",
    question="does it survive bit flips in memory (weights, activations, inputs)?",
    kinds=("fault", "protection"),
    templates={"fault": "trustbench.faults.template:render_fault_template",
               "protection": "trustbench.faults.template:render_protection_template"},
    order=20,
)

# Every module of the package registers its plugins: a new fault model is one file dropped here.
import_submodules(__name__)

__all__ = [
    "PILLAR",
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
