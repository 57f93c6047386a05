"""Class labels as the fairness pillar accepts them: checked, 1-D ``int64`` NumPy arrays.

:func:`as_label_array` turns a list, NumPy array, pandas object or torch tensor of class
indices into a 1-D ``int64`` array (the audit, :mod:`.by_group` and :mod:`.mitigation` share
it); :func:`check_labels` also checks that ``y_true`` and ``y_pred`` line up with the sensitive
rows and are class indices ``0..K-1``, and infers ``K``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustbench.fairness.errors import FairnessError

if TYPE_CHECKING:
    import numpy as np


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


def check_labels(
    y_true: Any, y_pred: Any, n_rows: int, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """``y_true`` and ``y_pred`` as label arrays of ``n_rows`` rows, and the number of classes.

    Parameters
    ----------
    y_true, y_pred
        Class indices, one per row.
    n_rows
        Rows of the sensitive attributes the labels must line up with.
    num_classes
        Number of classes; None infers it (the largest label + 1, at least 2).

    Returns
    -------
    y_true, y_pred, num_classes

    Raises
    ------
    FairnessError
        Labels that are not class indices in ``[0, num_classes)``, no rows, or rows that do
        not line up.
    """
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
