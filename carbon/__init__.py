"""The carbon pillar (``trustbench.carbon``):
how many joules and grams of CO2e per inference and per training run?

What will live here:
energy meters with declared tiers (Zeus: NVML, RAPL, Jetson INA3221; codecarbon's
model), MLPerf-style scenarios that record contention, grams of CO2e per region.

Nothing is measured yet: the package declares the pillar (its settings table ``[carbon]`` is
accepted) and its implementation lands with its own issue. It registers no plugins and has no
suite, so scorecards carry no carbon section until then.
"""

from __future__ import annotations

from trustbench.registry import Pillar

#: The carbon pillar's declaration (found through ``trustbench.pillars``).
PILLAR = Pillar(
    name="carbon",
    question="how many joules and grams of CO2e per inference and per training run?",
    order=60,
)

__all__ = ["PILLAR"]
