"""Fairness pillar: are errors and decisions spread evenly across groups?

Built on fairlearn (``MetricFrame``, ``ThresholdOptimizer``); this package assembles the audit
a reviewer wants in a report: per-group numbers with intervals for each sensitive feature and
their intersections, disparities as difference and ratio, small groups flagged (never dropped),
missing sensitive values as their own group, and what mitigation would cost.

Modules
-------
groups      group labels from sensitive columns (features alone and intersected)
labels      y_true / y_pred checked into class-index arrays
metrics     the audit (:func:`evaluate_fairness`): per-group metrics, disparities, worst group
rates       per-group rates from fairlearn's MetricFrame and from confusion counts
disparities difference and ratio over groups, what defines them, headline, intervals
results     the audit's result types (:class:`FairnessReport`, :class:`Disparity`, ...)
bootstrap   fairlearn's bootstrap resamples, counted in one pass (percentile intervals)
mitigation  ThresholdOptimizer trade-off: disparity reduction and accuracy cost
by_group    any per-sample measure by group, for other pillars (:func:`metric_by_group`)
profiles    budgets per profile and user settings (:func:`budget`)
errors      FairnessError, SensitiveColumnError

A value that has an interval travels as a :class:`trustbench.stats.Estimate` (method
``"percentile bootstrap"``; mitigation: ``"paired percentile bootstrap"``).
The package registers no plugins (no entry-point group) and imports fairlearn lazily.
"""

from __future__ import annotations

from trustbench.fairness.by_group import (
    GroupTable,
    GroupValue,
    accuracy_by_group,
    metric_by_each_group,
    metric_by_group,
)
from trustbench.fairness.errors import FairnessError, SensitiveColumnError
from trustbench.fairness.groups import MISSING_GROUP, build_groups
from trustbench.fairness.metrics import evaluate_fairness
from trustbench.fairness.mitigation import MitigationResult, threshold_optimizer_tradeoff
from trustbench.fairness.profiles import FairnessBudget, budget
from trustbench.fairness.results import (
    RATIO_DISPARITIES,
    Disparity,
    FairnessReport,
    GroupingResult,
    GroupStats,
    WorstGroup,
)
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
    "RATIO_DISPARITIES",
    "Disparity",
    "FairnessBudget",
    "FairnessError",
    "FairnessReport",
    "GroupStats",
    "GroupTable",
    "GroupValue",
    "GroupingResult",
    "MitigationResult",
    "SensitiveColumnError",
    "WorstGroup",
    "accuracy_by_group",
    "budget",
    "build_groups",
    "evaluate_fairness",
    "metric_by_each_group",
    "metric_by_group",
    "threshold_optimizer_tradeoff",
]
