"""The fairness audit: group metrics, disparities and worst-group accuracy, with intervals.

:func:`evaluate_fairness` is the pillar's measurement: given labels, predictions and sensitive
attributes it returns a :class:`~trustbench.fairness.results.FairnessReport` with, for every
grouping (each feature alone and their intersections, see :mod:`trustbench.fairness.groups`):

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

This module runs the steps; the pieces live by concern: :mod:`.labels` (input labels),
:mod:`.rates` (per-group rates), :mod:`.disparities` (difference, ratio, headline and their
intervals), :mod:`.results` (the result types). Their public names stay importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustbench.fairness.bootstrap import (
    bootstrap_cell_counts,
    percentile_estimate,
    percentile_interval,
)
from trustbench.fairness.disparities import (
    disparity_statistics,
    grouping_disparities,
    headline_disparities,
)
from trustbench.fairness.errors import FairnessError
from trustbench.fairness.groups import Grouping, SensitiveGroups, build_groups
from trustbench.fairness.labels import as_label_array, check_labels
from trustbench.fairness.rates import metric_frame_by_group, point_rates, rates_from_counts
from trustbench.fairness.results import (
    BINARY_DISPARITIES,
    BINARY_METRICS,
    MULTICLASS_DISPARITIES,
    MULTICLASS_METRICS,
    RATIO_DISPARITIES,
    UNDEFINED_REASONS,
    Disparity,
    FairnessReport,
    GroupingResult,
    GroupStats,
    WorstGroup,
    finite_or_none,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BINARY_DISPARITIES",
    "BINARY_METRICS",
    "MULTICLASS_DISPARITIES",
    "MULTICLASS_METRICS",
    "RATIO_DISPARITIES",
    "UNDEFINED_REASONS",
    "Disparity",
    "FairnessReport",
    "GroupStats",
    "GroupingResult",
    "WorstGroup",
    "as_label_array",
    "disparity_statistics",
    "evaluate_fairness",
    "rates_from_counts",
]


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
    yt, yp, k = check_labels(y_true, y_pred, sg.n, num_classes)
    binary = k == 2
    if n_boot < 0:
        raise FairnessError(f"n_boot must be >= 0 (0: no intervals), got {n_boot}")
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    disparity_names = BINARY_DISPARITIES if binary else MULTICLASS_DISPARITIES

    # One cell per (group, true label, predicted label); every grouping is counted over the
    # same resamples, so the headline can take the worst feature within each resample.
    cells = [g.codes * k * k + yt * k + yp for g in sg.groupings]
    n_cells = [len(g.groups) * k * k for g in sg.groupings]
    boot = bootstrap_cell_counts(cells, n_cells, n_boot, seed) if n_boot else []

    results: list[GroupingResult] = []
    boot_disp: dict[str, dict[str, np.ndarray]] = {}
    boot_acc: dict[str, np.ndarray] = {}
    overall: dict[str, float | None] = {}
    for gi, grouping in enumerate(sg.groupings):
        n_groups = len(grouping.groups)
        by_group, ov = metric_frame_by_group(
            yt, yp, grouping.labels.astype(str), grouping.key, binary, k
        )
        if gi == 0:
            overall = {
                m: finite_or_none(ov[m]) for m in (BINARY_METRICS if binary else MULTICLASS_METRICS)
            }
        cm = np.bincount(cells[gi], minlength=n_cells[gi]).reshape(n_groups, k, k)
        point = point_rates(by_group, cm, grouping, binary, k)
        b_rates: dict[str, np.ndarray] = {}
        if boot:
            b_rates = rates_from_counts(boot[gi].reshape(n_boot, n_groups, k, k), binary)
            boot_disp[grouping.key] = disparity_statistics(b_rates, binary)
            boot_acc[grouping.key] = b_rates["accuracy"]
        sizes = np.array([grouping.sizes[g] for g in grouping.groups])
        small = sizes < sg.min_group_size
        results.append(
            GroupingResult(
                key=grouping.key,
                features=grouping.features,
                groups=_group_stats(grouping, point, b_rates, sizes, small, binary, confidence),
                disparities=grouping_disparities(
                    disparity_names, grouping, point, boot_disp.get(grouping.key), small,
                    sg.min_group_size, sg.n, binary, confidence,
                ),
                small_groups=grouping.small_groups(sg.min_group_size),
                class_names=None if binary else names,
            )
        )

    return FairnessReport(
        task_type="binary" if binary else "multiclass",
        num_classes=k,
        n=sg.n,
        overall=overall,
        groupings=results,
        headline=headline_disparities(results, disparity_names, boot_disp, confidence),
        worst_group_accuracy=_worst_group(results, boot_acc, confidence),
        missing=dict(sg.missing),
        small_groups=[{"grouping": a, "group": b, "n": c} for a, b, c in sg.small_groups()],
        n_boot=int(n_boot),
        confidence=float(confidence),
        seed=int(seed),
        min_group_size=sg.min_group_size,
        notes=list(sg.notes),
    )


def _group_stats(
    grouping: Grouping,
    point: dict[str, np.ndarray],
    boot_rates: dict[str, np.ndarray],
    sizes: np.ndarray,
    small: np.ndarray,
    binary: bool,
    confidence: float,
) -> list[GroupStats]:
    """One :class:`GroupStats` per group: point rates, their intervals, undefined reasons.

    ``boot_rates`` are :func:`rates_from_counts` of every resample (``(n_boot, groups)``
    arrays), empty without resamples.
    """
    metrics = [m for m in point if m != "class_selection"]
    group_cis = {
        m: percentile_interval(boot_rates[m], confidence) if boot_rates else [None] * len(sizes)
        for m in metrics
    }
    stats = []
    for j, label in enumerate(grouping.groups):
        n = int(sizes[j])
        values = {m: finite_or_none(point[m][j]) for m in metrics}
        undefined = {
            m: UNDEFINED_REASONS[m] for m, v in values.items() if v is None and m in
            UNDEFINED_REASONS
        }
        estimates = {}
        for m, v in values.items():
            est = percentile_estimate(v, group_cis[m][j], n, confidence)
            if est is not None:
                estimates[m] = est
        stats.append(
            GroupStats(
                group=label,
                n=n,
                small=bool(small[j]),
                values=values,
                estimates=estimates,
                undefined=undefined,
                class_selection_rates=None if binary else [
                    float(x) for x in point["class_selection"][j]
                ],
            )
        )
    return stats


def _worst_group(
    results: list[GroupingResult],
    boot_acc: dict[str, np.ndarray],
    confidence: float,
) -> WorstGroup:
    """Lowest accuracy over the groups (all groupings) of at least the minimum size.

    Its interval is the percentile interval of the minimum over those groups in each resample
    (``boot_acc``: grouping key -> ``(n_boot, groups)`` accuracies, empty without resamples).
    """
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
    return WorstGroup(
        value=value,
        estimate=percentile_estimate(value, ci, g.n, confidence),
        grouping=r.key,
        group=g.group,
        n=g.n,
        smaller_groups_below=below,
    )
