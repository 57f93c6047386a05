"""Fairness pillar: are errors and decisions spread evenly across groups?

Built on fairlearn (``MetricFrame``, ``ThresholdOptimizer``); this package assembles the audit
a reviewer wants in a report: per-group numbers with intervals for each sensitive feature and
their intersections, disparities as difference and ratio, small groups flagged (never dropped),
missing sensitive values as their own group, and what mitigation would cost.

Modules
-------
groups      group labels from sensitive columns (features alone and intersected)
metrics     per-group metrics, disparities, worst-group accuracy (:func:`evaluate_fairness`)
bootstrap   fairlearn's bootstrap resamples, counted in one pass (percentile intervals)
mitigation  ThresholdOptimizer trade-off: disparity reduction and accuracy cost
by_group    any per-sample measure by group, for other pillars (:func:`metric_by_group`)
profiles    budgets per profile and user settings (:func:`budget`)
errors      FairnessError, SensitiveColumnError

The package registers no plugins (no entry-point group) and imports fairlearn lazily.
"""

from __future__ import annotations

from trustbench.fairness.by_group import (
    GroupTable,
    accuracy_by_group,
    metric_by_each_group,
    metric_by_group,
)
from trustbench.fairness.errors import FairnessError, SensitiveColumnError
from trustbench.fairness.groups import MISSING_GROUP, build_groups
from trustbench.fairness.metrics import FairnessReport, evaluate_fairness
from trustbench.fairness.mitigation import threshold_optimizer_tradeoff
from trustbench.fairness.profiles import FairnessBudget, budget

from trustbench.registry import Pillar

#: What the fairness pillar brings to the harness (found through ``trustbench.pillars``).
PILLAR = Pillar(
    name="fairness",
    question="are errors and decisions spread evenly across groups?",
    order=30,
)

__all__ = [
    "MISSING_GROUP",
    "PILLAR",
    "FairnessBudget",
    "FairnessError",
    "FairnessReport",
    "GroupTable",
    "SensitiveColumnError",
    "accuracy_by_group",
    "budget",
    "build_groups",
    "evaluate_fairness",
    "metric_by_each_group",
    "metric_by_group",
    "threshold_optimizer_tradeoff",
]
