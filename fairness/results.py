"""What a fairness audit returns: the result types and the names of what they hold.

:class:`FairnessReport` (one audit) holds a :class:`GroupingResult` per grouping, each with a
:class:`GroupStats` per group and a :class:`Disparity` per disparity, the headline disparities
and the :class:`WorstGroup`. A value that has an interval travels with it, its sample size,
method and confidence as one :class:`trustbench.stats.Estimate` (``estimate``/``estimates``;
None where there is no interval: ``n_boot=0``, an undefined value); ``ci`` reads the interval
back as a tuple. Undefined values are None, with the reason.

:meth:`GroupingResult.table` and :meth:`GroupingResult.class_selection_matrix` convert to the
scorecard's table and matrix shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbench.fairness.errors import FairnessError

if TYPE_CHECKING:
    from trustbench.stats import Estimate

#: Per-group metrics of binary tasks, in report order.
BINARY_METRICS = (
    "accuracy",
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "precision",
)
#: Per-group metrics of multi-class tasks (plus per-class selection rates).
MULTICLASS_METRICS = ("accuracy",)
#: Disparities of binary tasks.
BINARY_DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "accuracy_gap",
)
#: Disparities of multi-class tasks.
MULTICLASS_DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "accuracy_gap",
)
#: Why a rate can be undefined in a group.
UNDEFINED_REASONS = {
    "true_positive_rate": "no positive labels (y=1) in this group",
    "false_negative_rate": "no positive labels (y=1) in this group",
    "false_positive_rate": "no negative labels (y=0) in this group",
    "precision": "no positive predictions in this group",
}
#: Ratios (lower is worse); everything else here is a difference or a gap (higher is worse).
RATIO_DISPARITIES = frozenset({"demographic_parity_ratio", "equalized_odds_ratio"})


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, None where it is undefined (NaN, infinite or None)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class GroupStats:
    """Metrics of one group.

    Attributes
    ----------
    group
        Group label (``"Black"``, ``"Black & Female"``, ``"(missing)"``).
    n
        Rows in the group.
    small
        True when ``n`` is below the minimum group size (numbers shown, not trusted).
    values
        Metric name -> value, None where undefined.
    estimates
        Metric name -> the value with its bootstrap interval (``n`` the group's rows), for
        the metrics that have an interval.
    undefined
        Metric name -> why it is undefined.
    class_selection_rates
        Multi-class tasks: the share of the group predicted as each class.
    """

    group: str
    n: int
    small: bool
    values: dict[str, float | None]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    class_selection_rates: list[float] | None = None

    @property
    def ci(self) -> dict[str, tuple[float, float] | None]:
        """Metric name -> interval, None where there is none (every metric of ``values``)."""
        return {
            m: (self.estimates[m].ci if m in self.estimates else None) for m in self.values
        }


@dataclass
class Disparity:
    """A between-group disparity of one grouping (or the worst over the single features).

    Attributes
    ----------
    name
        ``demographic_parity_difference``, ``equalized_odds_ratio``, ...
    value
        Difference (max - min over groups) or ratio (min / max), None when fewer than two
        groups have the rate defined.
    estimate
        ``value`` with the percentile bootstrap interval of the same statistic (``n``: all
        rows); None without an interval.
    grouping
        The grouping key (``"colour"``); for a headline, the feature that attains the worst value.
    reliable
        False when a group that defines the value (highest or lowest) is below the minimum size.
    high_group, low_group
        The groups with the highest and the lowest rate behind the value.
    component
        The rate the value comes from (equalized odds: the TPR or FPR part).
    excluded
        Groups left out because the rate is undefined there -> reason.
    value_large_groups
        The same statistic over the groups of at least the minimum size only.
    n
        Rows behind the value (all groups).
    note
        Anything a reader must know (interval excluding the estimate, exclusions).
    """

    name: str
    value: float | None
    estimate: Estimate | None
    grouping: str
    reliable: bool
    high_group: str | None
    low_group: str | None
    component: str
    excluded: dict[str, str]
    value_large_groups: float | None
    n: int
    note: str = ""

    @property
    def ci(self) -> tuple[float, float] | None:
        """The interval of ``estimate``, None without one."""
        return self.estimate.ci if self.estimate is not None else None

    @property
    def higher_is_better(self) -> bool:
        return self.name in RATIO_DISPARITIES


@dataclass
class GroupingResult:
    """Everything measured for one grouping."""

    key: str
    features: tuple[str, ...]
    groups: list[GroupStats]
    disparities: dict[str, Disparity]
    small_groups: list[str]
    class_names: list[str] | None = None

    def stats(self, group: str) -> GroupStats:
        for g in self.groups:
            if g.group == group:
                return g
        raise FairnessError(
            f"no group {group!r} in grouping {self.key!r}; groups: "
            f"{', '.join(g.group for g in self.groups)}"
        )

    def table(self, metric: str) -> dict[str, Any]:
        """``metric`` by group in the scorecard's table shape ``{"rows": [...]}``.

        Undefined values are None; each row also says whether the group is small and why a
        value is undefined.
        """
        rows = []
        for g in self.groups:
            if metric not in g.values:
                raise FairnessError(
                    f"no per-group metric {metric!r}; available: {', '.join(g.values)}"
                )
            est = g.estimates.get(metric)
            row: dict[str, Any] = {
                "group": g.group,
                "value": g.values[metric],
                "ci": list(est.ci) if est is not None else None,
                "n": g.n,
            }
            if g.small:
                row["small"] = True
            if metric in g.undefined:
                row["undefined"] = g.undefined[metric]
            rows.append(row)
        return {"rows": rows}

    def class_selection_matrix(self) -> dict[str, Any] | None:
        """Multi-class tasks: selection rate per group (rows) and class (cols), matrix shape."""
        if self.class_names is None:
            return None
        return {
            "rows": [g.group for g in self.groups],
            "cols": list(self.class_names),
            "values": [list(g.class_selection_rates or []) for g in self.groups],
        }


@dataclass
class WorstGroup:
    """Lowest accuracy over the groups (all groupings) of at least the minimum size.

    ``estimate`` is the value with the percentile bootstrap interval of the minimum over those
    groups (``n``: the worst group's rows); None without an interval.
    ``smaller_groups_below`` lists the small groups whose accuracy is lower still: flagged,
    not hidden.
    """

    value: float | None
    estimate: Estimate | None
    grouping: str | None
    group: str | None
    n: int
    smaller_groups_below: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ci(self) -> tuple[float, float] | None:
        """The interval of ``estimate``, None without one."""
        return self.estimate.ci if self.estimate is not None else None


@dataclass
class FairnessReport:
    """The fairness audit of one set of predictions.

    Attributes
    ----------
    task_type
        ``"binary"`` or ``"multiclass"``.
    num_classes, n
        Classes and evaluated rows.
    overall
        Metrics over all rows.
    groupings
        One :class:`GroupingResult` per grouping, single features first.
    headline
        Each disparity's worst value over the single-feature groupings (the pillar's summary),
        with a bootstrap interval of that worst value.
    worst_group_accuracy
        See :class:`WorstGroup`.
    missing
        Missing sensitive values per column (their own group).
    small_groups
        ``{"grouping", "group", "n"}`` of every flagged group.
    n_boot, confidence, seed
        Bootstrap resamples, interval coverage and the resamples' seed.
    min_group_size
        Groups with fewer rows are flagged.
    notes
        What building the groups had to say (missing values that form their own group).
    """

    task_type: str
    num_classes: int
    n: int
    overall: dict[str, float | None]
    groupings: list[GroupingResult]
    headline: dict[str, Disparity]
    worst_group_accuracy: WorstGroup
    missing: dict[str, int]
    small_groups: list[dict[str, Any]]
    n_boot: int
    confidence: float
    seed: int
    min_group_size: int
    notes: list[str] = field(default_factory=list)

    def grouping(self, key: str) -> GroupingResult:
        for g in self.groupings:
            if g.key == key:
                return g
        raise FairnessError(
            f"no grouping {key!r}; groupings: {', '.join(g.key for g in self.groupings)}"
        )

    @property
    def single(self) -> list[GroupingResult]:
        return [g for g in self.groupings if len(g.features) == 1]
