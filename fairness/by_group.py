"""Any per-sample measure, averaged by group: for other pillars' cross-pillar measures.

The robustness pillar's accuracy under attack by group, or a DP-trained model's accuracy by
group, need no second implementation of groups, missing values, small-group flags and
intervals: pass one value per sample (1/0 for correct/wrong, a loss, a confidence) and the
sensitive attributes, and get a :class:`GroupTable` whose :meth:`GroupTable.to_value` is the
scorecard's table shape ``{"rows": [{"group", "value", "ci", "n"}]}``::

    from trustbench.fairness.by_group import accuracy_by_group
    table = accuracy_by_group(task.y_test, adv_pred, task.sensitive_test, columns="colour")
    record_metric("robust_accuracy_by_group.colour", table.to_value(), unit="fraction",
                  higher_is_better=True, n=table.n)

Group means come from fairlearn's ``MetricFrame`` (``mean_prediction``), intervals from the
percentile bootstrap over fairlearn's resamples (:mod:`trustbench.fairness.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbench.fairness.bootstrap import (
    bootstrap_group_sums,
    percentile_estimate,
    percentile_interval,
    safe_divide,
)
from trustbench.fairness.errors import FairnessError
from trustbench.fairness.groups import Grouping, SensitiveGroups, build_groups
from trustbench.fairness.labels import as_label_array

if TYPE_CHECKING:
    import numpy as np

    from trustbench.stats import Estimate


@dataclass
class GroupValue:
    """One row of a :class:`GroupTable`.

    ``estimate`` is ``value`` with its percentile bootstrap interval (``n``: the group's
    rows), None without resamples.
    """

    group: str
    value: float | None
    estimate: Estimate | None
    n: int
    small: bool = False

    @property
    def ci(self) -> tuple[float, float] | None:
        """The interval of ``estimate``, None without one."""
        return self.estimate.ci if self.estimate is not None else None


@dataclass
class GroupTable:
    """A measure by group, with the gap between the best and the worst group.

    Attributes
    ----------
    metric
        What the values are (``"accuracy"``, ``"robust_accuracy"``, ...).
    grouping
        Grouping key (``"colour"`` or ``"colour-sex"``).
    rows
        One :class:`GroupValue` per group, sorted by group label.
    gap, gap_estimate
        Highest minus lowest group mean, and the same with its bootstrap interval (``n``: all
        rows; None without resamples or with one group). ``gap_ci`` reads the interval.
    worst_group
        Group with the lowest mean among groups of at least ``min_group_size`` rows
        (``higher_is_better``) or the highest (otherwise).
    n
        Rows.
    """

    metric: str
    grouping: str
    features: tuple[str, ...]
    rows: list[GroupValue]
    gap: float | None
    gap_estimate: Estimate | None
    worst_group: str | None
    n: int
    min_group_size: int
    n_boot: int
    confidence: float
    small_groups: list[str] = field(default_factory=list)

    @property
    def gap_ci(self) -> tuple[float, float] | None:
        """The interval of ``gap_estimate``, None without one."""
        return self.gap_estimate.ci if self.gap_estimate is not None else None

    def to_value(self) -> dict[str, Any]:
        """The scorecard table shape: ``{"rows": [{"group", "value", "ci", "n"}, ...]}``."""
        rows = []
        for r in self.rows:
            row: dict[str, Any] = {
                "group": r.group,
                "value": r.value,
                "ci": list(r.estimate.ci) if r.estimate is not None else None,
                "n": r.n,
            }
            if r.small:
                row["small"] = True
            rows.append(row)
        return {"rows": rows}

    def params(self) -> dict[str, Any]:
        """What a scorecard metric's ``params`` should carry about this table."""
        return {
            "grouping": self.grouping,
            "gap": self.gap,
            "gap_ci": list(self.gap_ci) if self.gap_ci else None,
            "worst_group": self.worst_group,
            "min_group_size": self.min_group_size,
            "small_groups": list(self.small_groups),
            "n_boot": self.n_boot,
            "confidence": self.confidence,
        }


def _values(values: Any) -> np.ndarray:
    import numpy as np

    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype == bool:
        arr = arr.astype(float)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
        raise FairnessError(
            f"values must be one number per sample (1-D; e.g. 1.0 correct / 0.0 wrong), got "
            f"shape {arr.shape} and dtype {arr.dtype}"
        )
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise FairnessError("values must be finite numbers (found NaN or inf)")
    return arr


def _table_for(
    metric: str,
    vals: np.ndarray,
    grouping: Grouping,
    min_group_size: int,
    n_boot: int,
    confidence: float,
    seed: int,
    higher_is_better: bool,
) -> GroupTable:
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, mean_prediction

    mf = MetricFrame(
        metrics={"mean": mean_prediction},
        y_true=vals,
        y_pred=vals,
        sensitive_features=pd.Series(grouping.labels.astype(str), name=grouping.key),
    )
    means = mf.by_group["mean"].reindex(list(grouping.groups)).to_numpy(dtype=float)
    ng = len(grouping.groups)
    sizes = np.array([grouping.sizes[g] for g in grouping.groups])
    small = sizes < min_group_size
    cis: list[tuple[float, float] | None] = [None] * ng
    gap_ci = None
    if n_boot:
        counts, sums = bootstrap_group_sums(grouping.codes, vals, ng, n_boot, seed)
        boot_means = safe_divide(sums, counts)
        cis = percentile_interval(boot_means, confidence)
        if ng >= 2:
            gap_b = np.fmax.reduce(boot_means, axis=1) - np.fmin.reduce(boot_means, axis=1)
            gap_ci = percentile_interval(gap_b, confidence)[0]
    rows = [
        GroupValue(
            group=g,
            value=float(means[j]),
            estimate=percentile_estimate(float(means[j]), cis[j], int(sizes[j]), confidence),
            n=int(sizes[j]),
            small=bool(small[j]),
        )
        for j, g in enumerate(grouping.groups)
    ]
    gap = float(means.max() - means.min()) if ng >= 2 else None
    trusted = [r for r in rows if not r.small] or rows
    worst = (min if higher_is_better else max)(trusted, key=lambda r: float(r.value or 0.0)).group
    return GroupTable(
        metric=metric,
        grouping=grouping.key,
        features=grouping.features,
        rows=rows,
        gap=gap,
        gap_estimate=percentile_estimate(gap, gap_ci, len(vals), confidence),
        worst_group=worst,
        n=len(vals),
        min_group_size=min_group_size,
        n_boot=n_boot,
        confidence=confidence,
        small_groups=grouping.small_groups(min_group_size),
    )


def metric_by_group(
    values: Any,
    sensitive: Any,
    *,
    columns: str | Sequence[str] | None = None,
    metric: str = "value",
    min_group_size: int = 30,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
) -> GroupTable:
    """Mean of a per-sample measure by group, with bootstrap intervals.

    Parameters
    ----------
    values
        One number per sample (bool, 0/1 or any finite float), aligned with ``sensitive``.
    sensitive
        Sensitive attributes (DataFrame, named Series, dict) or a prebuilt
        :class:`~trustbench.fairness.groups.SensitiveGroups`.
    columns
        One column (its groups) or several (their intersection); default: all columns,
        intersected.
    metric
        Name of the measure, carried into the table.
    min_group_size
        Smaller groups are flagged (``small``) and not chosen as the worst group.
    n_boot, confidence, seed
        Bootstrap resamples (0: no intervals), coverage and seed.
    higher_is_better
        Direction used to pick the worst group.

    Returns
    -------
    GroupTable

    Raises
    ------
    FairnessError
        Values that are not one finite number per row, or rows that do not line up.
    SensitiveColumnError
        See :func:`~trustbench.fairness.groups.build_groups`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = metric_by_group([1, 0, 1, 1], pd.DataFrame({"sex": ["F", "F", "M", "M"]}),
    ...                     metric="accuracy", n_boot=0)
    >>> t.to_value()["rows"][0]
    {'group': 'F', 'value': 0.5, 'ci': None, 'n': 2, 'small': True}
    """
    vals = _values(values)
    if isinstance(sensitive, SensitiveGroups):
        sg = sensitive
        feats = tuple([columns] if isinstance(columns, str) else columns or sg.features)
        grouping = next((g for g in sg.groupings if g.features == feats), None)
        if grouping is None:
            raise FairnessError(
                f"the prebuilt groups have no grouping of {feats}; available: "
                f"{', '.join(g.key for g in sg.groupings)}"
            )
        min_group_size = sg.min_group_size
    else:
        sg = build_groups(sensitive, columns, intersections="full", min_group_size=min_group_size)
        grouping = sg.groupings[-1]
    if len(vals) != sg.n:
        raise FairnessError(
            f"values ({len(vals)} rows) and the sensitive attributes ({sg.n} rows) must have "
            "one entry per sample, in the same order"
        )
    if n_boot < 0:
        raise FairnessError(f"n_boot must be >= 0 (0: no intervals), got {n_boot}")
    return _table_for(metric, vals, grouping, min_group_size, n_boot, confidence, seed,
                      higher_is_better)


def metric_by_each_group(
    values: Any,
    sensitive: Any,
    *,
    columns: Sequence[str] | None = None,
    intersections: str = "full",
    metric: str = "value",
    min_group_size: int = 30,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
) -> dict[str, GroupTable]:
    """:func:`metric_by_group` for every grouping (each feature and the intersections).

    Returns
    -------
    dict
        Grouping key (``"colour"``, ``"colour-sex"``) -> :class:`GroupTable`.
    """
    vals = _values(values)
    sg = build_groups(sensitive, columns, intersections=intersections,
                      min_group_size=min_group_size)
    if len(vals) != sg.n:
        raise FairnessError(
            f"values ({len(vals)} rows) and the sensitive attributes ({sg.n} rows) must have "
            "one entry per sample, in the same order"
        )
    return {
        g.key: _table_for(metric, vals, g, min_group_size, n_boot, confidence, seed,
                          higher_is_better)
        for g in sg.groupings
    }


def accuracy_by_group(
    y_true: Any, y_pred: Any, sensitive: Any, **kwargs: Any
) -> GroupTable:
    """Accuracy by group: :func:`metric_by_group` of ``y_true == y_pred``.

    Keyword arguments are those of :func:`metric_by_group` (``metric`` defaults to
    ``"accuracy"``).
    """
    import numpy as np

    yt = as_label_array(y_true, "y_true")
    yp = as_label_array(y_pred, "y_pred")
    if len(yt) != len(yp):
        raise FairnessError(f"y_true ({len(yt)} rows) and y_pred ({len(yp)} rows) differ")
    kwargs.setdefault("metric", "accuracy")
    return metric_by_group((yt == yp).astype(np.float64), sensitive, **kwargs)
