"""Group metrics, disparities and worst-group accuracy, with bootstrap intervals.

:func:`evaluate_fairness` is the pillar's measurement: given labels, predictions and sensitive
attributes it returns a :class:`FairnessReport` with, for every grouping (each feature alone
and their intersections, see :mod:`trustbench.fairness.groups`):

- per group: accuracy, selection rate, true/false positive rate, false negative rate,
  precision and size (binary tasks; the positive label is class 1 and *selection* means a
  positive prediction); accuracy and per-class selection rates (multi-class tasks);
- disparities: demographic parity difference and ratio, equalized odds difference and ratio,
  equal opportunity difference, accuracy gap (multi-class: demographic parity over classes
  and accuracy gap);
- worst-group accuracy over the groups large enough to be trusted.

Point estimates come from fairlearn's ``MetricFrame`` and equal it (tested). Intervals are
percentile bootstrap intervals over fairlearn's own resamples (:mod:`.bootstrap`).
A rate whose denominator is zero (a group with no positive labels has no true positive
rate) is None with the reason, and the group is left out of the disparities built on that
rate; fairlearn would report 0 there. Groups smaller than ``min_group_size`` are kept and
flagged, and every disparity they define is marked unreliable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbench.fairness.bootstrap import bootstrap_cell_counts, percentile_interval, safe_divide
from trustbench.fairness.errors import FairnessError
from trustbench.fairness.groups import Grouping, SensitiveGroups, build_groups

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

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
    ci
        Metric name -> bootstrap interval, None where there is none.
    undefined
        Metric name -> why it is undefined.
    class_selection_rates
        Multi-class tasks: the share of the group predicted as each class.
    """

    group: str
    n: int
    small: bool
    values: dict[str, float | None]
    ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    class_selection_rates: list[float] | None = None


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
    ci
        Percentile bootstrap interval of the same statistic.
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
    ci: tuple[float, float] | None
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
            ci = g.ci.get(metric)
            row: dict[str, Any] = {
                "group": g.group,
                "value": g.values[metric],
                "ci": list(ci) if ci is not None else None,
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

    ``smaller_groups_below`` lists the small groups whose accuracy is lower still: flagged,
    not hidden.
    """

    value: float | None
    ci: tuple[float, float] | None
    grouping: str | None
    group: str | None
    n: int
    smaller_groups_below: list[dict[str, Any]] = field(default_factory=list)


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


# --------------------------------------------------------------------------- inputs


def as_label_array(values: Any, what: str) -> np.ndarray:
    """A 1-D int64 NumPy array from a list, NumPy array, pandas object or torch tensor."""
    import numpy as np

    if hasattr(values, "detach"):  # torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise FairnessError(f"{what} must be one label per row (1-D), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise FairnessError(
                f"{what} must be integer class indices 0..K-1 (binary: 0/1 with 1 the positive "
                f"label), got dtype {arr.dtype}"
            )
    return arr.astype(np.int64, copy=False)


def _check_inputs(
    y_true: Any, y_pred: Any, n_rows: int, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    yt = as_label_array(y_true, "y_true")
    yp = as_label_array(y_pred, "y_pred")
    if len(yt) != len(yp) or len(yt) != n_rows:
        raise FairnessError(
            f"y_true ({len(yt)} rows), y_pred ({len(yp)} rows) and the sensitive attributes "
            f"({n_rows} rows) must have one entry per evaluated sample, in the same order"
        )
    if len(yt) == 0:
        raise FairnessError("no rows to evaluate: y_true, y_pred and sensitive are empty")
    top = int(max(yt.max(), yp.max()))
    k = int(num_classes) if num_classes is not None else max(2, top + 1)
    if min(yt.min(), yp.min()) < 0 or top >= k:
        raise FairnessError(
            f"labels must be class indices in [0, {k}); found values from "
            f"{int(min(yt.min(), yp.min()))} to {top}"
        )
    return yt, yp, k


# --------------------------------------------------------------------------- rates


def rates_from_counts(cm: np.ndarray, binary: bool) -> dict[str, np.ndarray]:
    """Per-group rates from confusion counts ``cm[..., group, true, pred]``.

    Undefined rates (zero denominators, absent groups) are NaN.
    """
    import numpy as np

    n = cm.sum(axis=(-2, -1))
    correct = np.trace(cm, axis1=-2, axis2=-1)
    out = {"accuracy": safe_divide(correct, n)}
    if binary:
        pos = cm[..., 1, :].sum(-1)
        neg = cm[..., 0, :].sum(-1)
        pred_pos = cm[..., :, 1].sum(-1)
        out["selection_rate"] = safe_divide(pred_pos, n)
        out["true_positive_rate"] = safe_divide(cm[..., 1, 1], pos)
        out["false_positive_rate"] = safe_divide(cm[..., 0, 1], neg)
        out["false_negative_rate"] = safe_divide(cm[..., 1, 0], pos)
        out["precision"] = safe_divide(cm[..., 1, 1], pred_pos)
    else:
        out["class_selection"] = safe_divide(cm.sum(axis=-2), n[..., None])
    return out


def _range(v: np.ndarray) -> np.ndarray:
    """max - min over the last axis, NaNs left out (NaN when fewer than two finite)."""
    import numpy as np

    finite = np.isfinite(v).sum(-1)
    r = np.fmax.reduce(v, axis=-1) - np.fmin.reduce(v, axis=-1)
    return np.where(finite >= 2, r, np.nan)


def _ratio(v: np.ndarray) -> np.ndarray:
    """min / max over the last axis, NaNs left out (NaN when fewer than two finite or max 0)."""
    import numpy as np

    finite = np.isfinite(v).sum(-1)
    r = safe_divide(np.fmin.reduce(v, axis=-1), np.fmax.reduce(v, axis=-1))
    return np.where(finite >= 2, r, np.nan)


def disparity_statistics(rates: dict[str, np.ndarray], binary: bool) -> dict[str, np.ndarray]:
    """Every disparity from per-group rates (arrays ``(..., G)``; multi-class ``(..., G, K)``)."""
    import numpy as np

    if binary:
        sel = rates["selection_rate"]
        tpr = rates["true_positive_rate"]
        fpr = rates["false_positive_rate"]
        return {
            "demographic_parity_difference": _range(sel),
            "demographic_parity_ratio": _ratio(sel),
            "equalized_odds_difference": np.fmax(_range(tpr), _range(fpr)),
            "equalized_odds_ratio": np.fmin(_ratio(tpr), _ratio(fpr)),
            "equal_opportunity_difference": _range(tpr),
            "accuracy_gap": _range(rates["accuracy"]),
        }
    cls = np.moveaxis(rates["class_selection"], -1, -2)  # (..., K, G)
    return {
        "demographic_parity_difference": np.fmax.reduce(_range(cls), axis=-1),
        "demographic_parity_ratio": np.fmin.reduce(_ratio(cls), axis=-1),
        "accuracy_gap": _range(rates["accuracy"]),
    }


def _component_rates(name: str, rates: dict[str, np.ndarray], binary: bool
                     ) -> list[tuple[str, np.ndarray]]:
    """The per-group rate vectors (1-D, over groups) a disparity is built from."""
    if name.startswith("demographic_parity"):
        if binary:
            return [("selection_rate", rates["selection_rate"])]
        cls = rates["class_selection"]
        return [(f"selection_rate[class {k}]", cls[:, k]) for k in range(cls.shape[1])]
    if name.startswith("equalized_odds"):
        return [
            ("true_positive_rate", rates["true_positive_rate"]),
            ("false_positive_rate", rates["false_positive_rate"]),
        ]
    if name == "equal_opportunity_difference":
        return [("true_positive_rate", rates["true_positive_rate"])]
    return [("accuracy", rates["accuracy"])]


def _describe(
    name: str,
    rates: dict[str, np.ndarray],
    binary: bool,
    grouping: Grouping,
    small: np.ndarray,
) -> tuple[str, str | None, str | None, dict[str, str], float | None]:
    """Which rate and groups define a disparity; excluded groups; value over large groups."""
    import numpy as np

    ratio = name in RATIO_DISPARITIES
    best: tuple[str, str | None, str | None] = ("", None, None)
    best_stat: float | None = None
    excluded: dict[str, str] = {}
    large_vals: list[float] = []
    for comp, v in _component_rates(name, rates, binary):
        finite = np.isfinite(v)
        for gi in np.flatnonzero(~finite):
            base = comp.split("[")[0]
            excluded.setdefault(grouping.groups[gi], UNDEFINED_REASONS.get(base, "undefined"))
        if finite.sum() < 2:
            continue
        hi = int(np.nanargmax(v))
        lo = int(np.nanargmin(v))
        stat = float(_ratio(v[None, :])[0] if ratio else _range(v[None, :])[0])
        if np.isfinite(stat) and (
            best_stat is None or (stat < best_stat if ratio else stat > best_stat)
        ):
            best_stat = stat
            best = (comp, grouping.groups[hi], grouping.groups[lo])
        vl = v[finite & ~small]
        if vl.size >= 2:
            lv = float(_ratio(vl[None, :])[0] if ratio else _range(vl[None, :])[0])
            if np.isfinite(lv):
                large_vals.append(lv)
    if large_vals:
        large = min(large_vals) if ratio else max(large_vals)
    else:
        large = None
    return best[0], best[1], best[2], excluded, large


def _metric_frame_by_group(
    yt: np.ndarray, yp: np.ndarray, labels: np.ndarray, name: str, binary: bool, k: int
) -> tuple[pd.DataFrame, pd.Series]:
    """fairlearn's per-group and overall values for one grouping."""
    import functools

    import numpy as np
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    metrics: dict[str, Any] = {"accuracy": accuracy_score}
    if binary:
        metrics.update(
            selection_rate=selection_rate,
            true_positive_rate=functools.partial(true_positive_rate, pos_label=1),
            false_positive_rate=functools.partial(false_positive_rate, pos_label=1),
            false_negative_rate=functools.partial(false_negative_rate, pos_label=1),
            precision=functools.partial(precision_score, zero_division=np.nan),
        )
    else:
        for c in range(k):
            metrics[f"class_{c}"] = functools.partial(selection_rate, pos_label=c)
    mf = MetricFrame(
        metrics=metrics,
        y_true=yt,
        y_pred=yp,
        sensitive_features=pd.Series(labels, name=name),
    )
    return mf.by_group, mf.overall


def _none(x: float) -> float | None:
    import math

    return float(x) if x is not None and math.isfinite(float(x)) else None


# --------------------------------------------------------------------------- main entry


def evaluate_fairness(
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    *,
    columns: list[str] | None = None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    intersections: str = "full",
    min_group_size: int = 30,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> FairnessReport:
    """Group metrics, disparities and worst-group accuracy with bootstrap intervals.

    Parameters
    ----------
    y_true, y_pred
        Class indices, one per row (binary: 1 is the positive label).
    sensitive
        Sensitive attributes aligned with the rows (DataFrame, named Series, dict), or a
        :class:`~trustbench.fairness.groups.SensitiveGroups` already built.
    columns, intersections, min_group_size
        Passed to :func:`~trustbench.fairness.groups.build_groups` (ignored for a prebuilt one).
    num_classes
        Number of classes (default: inferred, at least 2). Two means binary metrics.
    class_names
        Names of the classes for multi-class tables.
    n_boot
        Bootstrap resamples (0: no intervals).
    confidence
        Interval coverage.
    seed
        Seed of the resamples (fairlearn's ``random_state``).

    Returns
    -------
    FairnessReport

    Raises
    ------
    FairnessError
        Labels that are not class indices, or rows that do not line up.
    SensitiveColumnError
        See :func:`~trustbench.fairness.groups.build_groups`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> sex = pd.DataFrame({"sex": rng.choice(["F", "M"], 400)})
    >>> y = rng.integers(0, 2, 400)
    >>> r = evaluate_fairness(y, y, sex, n_boot=50)
    >>> r.headline["accuracy_gap"].value
    0.0
    """
    import numpy as np

    if isinstance(sensitive, SensitiveGroups):
        sg = sensitive
    else:
        sg = build_groups(
            sensitive, columns, intersections=intersections, min_group_size=min_group_size
        )
    yt, yp, k = _check_inputs(y_true, y_pred, sg.n, num_classes)
    binary = k == 2
    if n_boot < 0:
        raise FairnessError(f"n_boot must be >= 0 (0: no intervals), got {n_boot}")
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    disparity_names = BINARY_DISPARITIES if binary else MULTICLASS_DISPARITIES

    # Bootstrap counts of every grouping over the same resamples.
    cells = [g.codes * k * k + yt * k + yp for g in sg.groupings]
    n_cells = [len(g.groups) * k * k for g in sg.groupings]
    boot = bootstrap_cell_counts(cells, n_cells, n_boot, seed) if n_boot else []

    results: list[GroupingResult] = []
    boot_disp: dict[str, dict[str, np.ndarray]] = {}
    boot_acc: dict[str, np.ndarray] = {}
    overall: dict[str, float | None] = {}
    for gi, grouping in enumerate(sg.groupings):
        by_group, ov = _metric_frame_by_group(
            yt, yp, grouping.labels.astype(str), grouping.key, binary, k
        )
        if gi == 0:
            overall = {
                m: _none(ov[m]) for m in (BINARY_METRICS if binary else MULTICLASS_METRICS)
            }
        n_g = np.array([grouping.sizes[g] for g in grouping.groups])
        small = n_g < sg.min_group_size
        cm = np.bincount(cells[gi], minlength=n_cells[gi]).reshape(len(grouping.groups), k, k)
        count_rates = rates_from_counts(cm, binary)
        # fairlearn's values; where a denominator is zero, undefined (fairlearn says 0).
        point: dict[str, np.ndarray] = {}
        for m in BINARY_METRICS if binary else MULTICLASS_METRICS:
            fl = by_group[m].reindex(list(grouping.groups)).to_numpy(dtype=float)
            point[m] = np.where(np.isfinite(count_rates[m]), fl, np.nan)
        if not binary:
            point["class_selection"] = np.stack(
                [by_group[f"class_{c}"].reindex(list(grouping.groups)).to_numpy(dtype=float)
                 for c in range(k)],
                axis=1,
            )
        if boot:
            bc = boot[gi].reshape(n_boot, len(grouping.groups), k, k)
            b_rates = rates_from_counts(bc, binary)
            boot_disp[grouping.key] = disparity_statistics(b_rates, binary)
            boot_acc[grouping.key] = b_rates["accuracy"]
        else:
            b_rates = {}
        group_cis = {
            m: percentile_interval(b_rates[m], confidence) if boot else [None] * len(n_g)
            for m in point
            if m != "class_selection"
        }
        stats = []
        for j, label in enumerate(grouping.groups):
            values = {m: _none(point[m][j]) for m in point if m != "class_selection"}
            undefined = {
                m: UNDEFINED_REASONS[m] for m, v in values.items() if v is None and m in
                UNDEFINED_REASONS
            }
            ci = {m: (group_cis[m][j] if values[m] is not None else None) for m in values}
            stats.append(
                GroupStats(
                    group=label,
                    n=int(n_g[j]),
                    small=bool(small[j]),
                    values=values,
                    ci=ci,
                    undefined=undefined,
                    class_selection_rates=None if binary else [
                        float(x) for x in point["class_selection"][j]
                    ],
                )
            )
        point_disp = disparity_statistics({m: v[None, ...] for m, v in point.items()}, binary)
        disparities = {}
        for name in disparity_names:
            value = _none(point_disp[name][0])
            dci = None
            if boot and value is not None:
                dci = percentile_interval(boot_disp[grouping.key][name], confidence)[0]
            comp, hi, lo, excluded, large = _describe(name, point, binary, grouping, small)
            reliable = value is not None and not any(
                grouping.sizes[g] < sg.min_group_size for g in (hi, lo) if g is not None
            )
            disparities[name] = Disparity(
                name=name,
                value=value,
                ci=dci,
                grouping=grouping.key,
                reliable=bool(reliable),
                high_group=hi,
                low_group=lo,
                component=comp,
                excluded=excluded,
                value_large_groups=large,
                n=sg.n,
                note=_note(value, dci, excluded, reliable, hi, lo, grouping, sg.min_group_size),
            )
        results.append(
            GroupingResult(
                key=grouping.key,
                features=grouping.features,
                groups=stats,
                disparities=disparities,
                small_groups=grouping.small_groups(sg.min_group_size),
                class_names=None if binary else names,
            )
        )

    headline = _headline(results, disparity_names, boot_disp, confidence, sg)
    worst = _worst_group(results, boot_acc, confidence, sg.min_group_size)
    return FairnessReport(
        task_type="binary" if binary else "multiclass",
        num_classes=k,
        n=sg.n,
        overall=overall,
        groupings=results,
        headline=headline,
        worst_group_accuracy=worst,
        missing=dict(sg.missing),
        small_groups=[{"grouping": a, "group": b, "n": c} for a, b, c in sg.small_groups()],
        n_boot=int(n_boot),
        confidence=float(confidence),
        seed=int(seed),
        min_group_size=sg.min_group_size,
        notes=list(sg.notes),
    )


def _note(
    value: float | None,
    ci: tuple[float, float] | None,
    excluded: dict[str, str],
    reliable: bool,
    hi: str | None,
    lo: str | None,
    grouping: Grouping,
    min_size: int,
) -> str:
    parts = []
    if value is None:
        parts.append("undefined: fewer than two groups have the rate defined")
    if value is not None and not reliable:
        smalls = [g for g in (hi, lo) if g is not None and grouping.sizes[g] < min_size]
        parts.append(
            "unreliable: defined by group(s) below the minimum size "
            + ", ".join(f"{g!r} (n={grouping.sizes[g]})" for g in smalls)
        )
    if excluded:
        parts.append(
            "left out: " + "; ".join(f"{g!r} ({why})" for g, why in sorted(excluded.items()))
        )
    if value is not None and ci is not None and not ci[0] <= value <= ci[1]:
        parts.append(
            "the percentile interval excludes the estimate: a max-min statistic over groups "
            "is biased upward when groups are close"
        )
    return "; ".join(parts)


def _headline(
    results: list[GroupingResult],
    names: tuple[str, ...],
    boot_disp: dict[str, dict[str, np.ndarray]],
    confidence: float,
    sg: SensitiveGroups,
) -> dict[str, Disparity]:
    """Worst value of each disparity over the single-feature groupings, interval of the worst."""
    import numpy as np

    singles = [r for r in results if len(r.features) == 1]
    out = {}
    for name in names:
        ratio = name in RATIO_DISPARITIES
        defined = [r for r in singles if r.disparities[name].value is not None]
        if not defined:
            d0 = singles[0].disparities[name]
            out[name] = Disparity(**{**d0.__dict__, "grouping": "(none)"})
            continue
        values = [float(r.disparities[name].value or 0.0) for r in defined]
        pick = defined[int(np.argmin(values) if ratio else np.argmax(values))]
        d = pick.disparities[name]
        ci = d.ci
        if boot_disp:
            stack = np.stack([boot_disp[r.key][name] for r in singles], axis=-1)
            worst = np.fmin.reduce(stack, axis=-1) if ratio else np.fmax.reduce(stack, axis=-1)
            ci = percentile_interval(worst, confidence)[0]
        out[name] = Disparity(**{**d.__dict__, "ci": ci})
    return out


def _worst_group(
    results: list[GroupingResult],
    boot_acc: dict[str, np.ndarray],
    confidence: float,
    min_size: int,
) -> WorstGroup:
    import numpy as np

    candidates = [
        (r, j, g)
        for r in results
        for j, g in enumerate(r.groups)
        if not g.small and g.values["accuracy"] is not None
    ]
    if not candidates:
        return WorstGroup(None, None, None, None, 0, [])
    r, _, g = min(candidates, key=lambda c: float(c[2].values["accuracy"] or 0.0))
    value = float(g.values["accuracy"] or 0.0)
    ci = None
    if boot_acc:
        cols = [boot_acc[rr.key][:, jj] for rr, jj, _ in candidates]
        ci = percentile_interval(np.fmin.reduce(np.stack(cols, axis=-1), axis=-1), confidence)[0]
    below = [
        {"grouping": rr.key, "group": gg.group, "n": gg.n, "accuracy": gg.values["accuracy"]}
        for rr in results
        for gg in rr.groups
        if gg.small and gg.values["accuracy"] is not None and float(gg.values["accuracy"]) < value
    ]
    return WorstGroup(value, ci, r.key, g.group, g.n, below)
