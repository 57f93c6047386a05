"""Disparities between groups: difference and ratio, what defines them, and their intervals.

:func:`disparity_statistics` computes every disparity from per-group rates, for the point
sample and for all bootstrap resamples at once (arrays ``(..., groups)``): a difference is
max - min over the groups, a ratio min / max, groups whose rate is undefined left out.
:func:`grouping_disparities` turns one grouping's rates into :class:`.Disparity` results:
which rate and groups define the value, the groups left out, whether the value rests on groups
of the minimum size, the value over the large groups alone, and its percentile bootstrap
interval. :func:`headline_disparities` picks each disparity's worst value over the single
sensitive features, with the interval of that worst value (the maximum or minimum over the
features in each resample).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from trustbench.fairness.bootstrap import percentile_estimate, percentile_interval, safe_divide
from trustbench.fairness.results import (
    RATIO_DISPARITIES,
    UNDEFINED_REASONS,
    Disparity,
    GroupingResult,
    finite_or_none,
)

if TYPE_CHECKING:
    import numpy as np

    from trustbench.fairness.groups import Grouping


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
    """What a reader must know about a disparity: undefined, unreliable, exclusions, bias."""
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


def grouping_disparities(
    names: tuple[str, ...],
    grouping: Grouping,
    point: dict[str, np.ndarray],
    boot_stats: dict[str, np.ndarray] | None,
    small: np.ndarray,
    min_group_size: int,
    n: int,
    binary: bool,
    confidence: float,
) -> dict[str, Disparity]:
    """The disparities ``names`` of one grouping, each with its interval and description.

    Parameters
    ----------
    names
        Disparities to build (``BINARY_DISPARITIES`` or ``MULTICLASS_DISPARITIES``).
    grouping
        The grouping (its group labels and sizes).
    point
        Per-group point rates (:func:`~trustbench.fairness.rates.point_rates`).
    boot_stats
        :func:`disparity_statistics` of every resample (``(n_boot,)`` arrays), None without
        resamples.
    small
        Per group: below ``min_group_size``.
    min_group_size
        A value defined by a smaller group is unreliable.
    n
        Rows behind every value (all groups).
    binary, confidence
        Binary task; interval coverage.
    """
    point_disp = disparity_statistics({m: v[None, ...] for m, v in point.items()}, binary)
    disparities = {}
    for name in names:
        value = finite_or_none(point_disp[name][0])
        dci = None
        if boot_stats is not None and value is not None:
            dci = percentile_interval(boot_stats[name], confidence)[0]
        comp, hi, lo, excluded, large = _describe(name, point, binary, grouping, small)
        reliable = value is not None and not any(
            grouping.sizes[g] < min_group_size for g in (hi, lo) if g is not None
        )
        disparities[name] = Disparity(
            name=name,
            value=value,
            estimate=percentile_estimate(value, dci, n, confidence),
            grouping=grouping.key,
            reliable=bool(reliable),
            high_group=hi,
            low_group=lo,
            component=comp,
            excluded=excluded,
            value_large_groups=large,
            n=n,
            note=_note(value, dci, excluded, reliable, hi, lo, grouping, min_group_size),
        )
    return disparities


def headline_disparities(
    results: list[GroupingResult],
    names: tuple[str, ...],
    boot_disp: dict[str, dict[str, np.ndarray]],
    confidence: float,
) -> dict[str, Disparity]:
    """Worst value of each disparity over the single-feature groupings, interval of the worst.

    The headline copies the worst feature's :class:`.Disparity` (its note included); its
    interval is the percentile interval of the worst value over the features in each
    resample (``boot_disp``: grouping key -> :func:`disparity_statistics` of the resamples,
    empty without resamples). No feature with the value defined: the first feature's,
    grouping ``"(none)"``.
    """
    import numpy as np

    singles = [r for r in results if len(r.features) == 1]
    out = {}
    for name in names:
        ratio = name in RATIO_DISPARITIES
        defined = [r for r in singles if r.disparities[name].value is not None]
        if not defined:
            out[name] = replace(singles[0].disparities[name], grouping="(none)")
            continue
        values = [float(r.disparities[name].value or 0.0) for r in defined]
        pick = defined[int(np.argmin(values) if ratio else np.argmax(values))]
        d = pick.disparities[name]
        estimate = d.estimate
        if boot_disp:
            stack = np.stack([boot_disp[r.key][name] for r in singles], axis=-1)
            worst = np.fmin.reduce(stack, axis=-1) if ratio else np.fmax.reduce(stack, axis=-1)
            ci = percentile_interval(worst, confidence)[0]
            estimate = percentile_estimate(d.value, ci, d.n, confidence)
        out[name] = replace(d, estimate=estimate)
    return out
