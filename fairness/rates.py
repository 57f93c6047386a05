"""Per-group rates: from fairlearn's ``MetricFrame`` (point estimates) and from confusion counts.

The point estimate of every per-group rate is fairlearn's (:func:`metric_frame_by_group`);
:func:`rates_from_counts` computes the same rates as divisions of confusion counts
``cm[..., group, true, pred]``, for the point sample and, vectorised, for every bootstrap
resample at once. The counts also say where a rate is *undefined* (a zero denominator: a
group without positive labels has no true positive rate), which :func:`point_rates` applies
to fairlearn's values (fairlearn reports 0 there).

Binary tasks: the positive label is class 1 and *selection* means a positive prediction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustbench.fairness.bootstrap import safe_divide
from trustbench.fairness.results import BINARY_METRICS, MULTICLASS_METRICS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trustbench.fairness.groups import Grouping


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


def metric_frame_by_group(
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


def point_rates(
    by_group: pd.DataFrame, cm: np.ndarray, grouping: Grouping, binary: bool, k: int
) -> dict[str, np.ndarray]:
    """Per-group point rates (arrays over the groups): fairlearn's values, NaN where undefined.

    Parameters
    ----------
    by_group
        fairlearn's ``MetricFrame.by_group`` (:func:`metric_frame_by_group`).
    cm
        The grouping's confusion counts ``(groups, true, pred)``; a rate whose denominator is
        zero there is undefined (NaN) whatever fairlearn says (0).
    grouping
        Gives the group order.
    binary, k
        Binary task; number of classes (multi-class: ``class_selection`` is ``(groups, k)``).
    """
    import numpy as np

    count_rates = rates_from_counts(cm, binary)
    groups = list(grouping.groups)
    point: dict[str, np.ndarray] = {}
    for m in BINARY_METRICS if binary else MULTICLASS_METRICS:
        fl = by_group[m].reindex(groups).to_numpy(dtype=float)
        point[m] = np.where(np.isfinite(count_rates[m]), fl, np.nan)
    if not binary:
        point["class_selection"] = np.stack(
            [by_group[f"class_{c}"].reindex(groups).to_numpy(dtype=float) for c in range(k)],
            axis=1,
        )
    return point
