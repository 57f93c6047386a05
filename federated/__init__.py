"""The federated pillar (``trustbench.federated``): how does it train across many small devices?

What will live here: Flower ClientApp/ServerApp on two engines (in-process and Ray), flwr-datasets
partitions, device profiles and a virtual clock, robust aggregation against malicious
clients, energy per client.

Nothing is measured yet: the package declares the pillar (its settings table ``[federated]`` is
accepted) and its implementation lands with its own issue. It registers no plugins and has no
suite, so scorecards carry no federated section until then.
"""

from __future__ import annotations

from trustbench.registry import Pillar

#: The federated pillar's declaration (found through ``trustbench.pillars``).
PILLAR = Pillar(name="federated", question="how does it train across many small devices?", order=50)

__all__ = ["PILLAR"]
