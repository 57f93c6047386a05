"""The faults pillar: bit-level fault injection into weights and activations, in place on the
tensors' own device, with statistically sized campaigns and range-restriction protection.

Importing the package registers its fault models (kind ``fault``) and protections (kind
``protection``): it imports every module of its folder, so a new plugin is one file dropped here
(or a package's entry point in ``trustbench.faults`` / ``trustbench.protections``).

What lives where:

- plugins: :mod:`.base` (:class:`FaultModel`), :mod:`.bitflip`, :mod:`.stuck_at`,
  :mod:`.multibit`, :mod:`.burst`, :mod:`.random_value`; :mod:`.protection` (the
  :class:`Protection` base, Ranger's range restriction and the weight range check);
- where faults land: :mod:`.bits` (bit layouts of each dtype, integer views), :mod:`.sites`
  (weights, activations, inputs);
- campaigns: :mod:`.campaign_config` (what to inject, how many, how it runs),
  :mod:`.campaign_plan` (the faults drawn from the seed), :mod:`.campaign_state` (progress and
  the :class:`Checkpoint` protocol that resumes it), :mod:`.campaign_results` (rates as
  :class:`trustbench.stats.Estimate`, per layer and per bit), :mod:`.campaign`
  (:func:`run_campaign`);
- the engines: :mod:`.weight_engine` (one word at a time, only the suffix re-run;
  :mod:`.segments` cuts the model, :mod:`.inert` decides inert words without a forward),
  :mod:`.activation_engine` (one fault per sample, by hooks), :mod:`.graphs` (CUDA graphs),
  :mod:`.outcomes` (masked / SDC / critical SDC / DUE), :mod:`.runtime` (strict fp32, devices);
- comparisons: :mod:`.protection_evaluation` (what a protection buys and costs, paired),
  :mod:`.precision` (the same campaign on fp16/bf16/int8 copies);
- for the suite and plugin authors: :mod:`.profiles` (budgets and which plugins each profile
  runs), :mod:`.contract` (the checks every plugin keeps), :mod:`.template` (``trustbench new
  fault|protection``).
"""

from __future__ import annotations

from trustbench.faults.base import FaultModel, FaultParams
from trustbench.faults.bits import BitLayout, flip_, int_view, layout_for
from trustbench.faults.campaign import (
    CampaignConfig,
    CampaignResult,
    CampaignState,
    Checkpoint,
    run_campaign,
)
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.protection import (
    Protection,
    RangeRestriction,
    WeightRangeCheck,
    evaluate_protection,
)
from trustbench.faults.runtime import strict_fp32
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
import_submodules(__name__, PILLAR.kinds)

__all__ = [
    "PILLAR",
    "BitLayout",
    "CampaignConfig",
    "CampaignResult",
    "CampaignState",
    "Checkpoint",
    "FaultError",
    "FaultModel",
    "FaultParams",
    "IntegrityError",
    "Protection",
    "RangeRestriction",
    "WeightRangeCheck",
    "evaluate_protection",
    "flip_",
    "int_view",
    "layout_for",
    "run_campaign",
    "strict_fp32",
]
