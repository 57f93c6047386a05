"""The privacy pillar (``trustbench.privacy``):
what does it leak about its training data; what does DP cost?

What will live here:
DP-SGD on Opacus (any model made compatible, with fast per-sample clipping registered
through Opacus's own extension points), membership inference (LOSS, LiRA, RMIA) with
intervals, and a one-run privacy audit checked against the accountant.

Nothing is measured yet: the package declares the pillar (its settings table ``[privacy]`` is
accepted) and its implementation lands with its own issue. It registers no plugins and has no
suite, so scorecards carry no privacy section until then.
"""

from __future__ import annotations

from trustbench.registry import Pillar

#: The privacy pillar's declaration (found through ``trustbench.pillars``).
PILLAR = Pillar(
    name="privacy",
    question="what does it leak about its training data; what does DP cost?",
    order=40,
)

__all__ = ["PILLAR"]
