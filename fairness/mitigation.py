"""What mitigation would cost: fairlearn's ThresholdOptimizer on the task's own scores.

For each sensitive feature and each constraint (``equalized_odds``, ``demographic_parity``),
:func:`threshold_optimizer_tradeoff` fits fairlearn's ``ThresholdOptimizer`` (Hardt et al.
2016, "Equality of Opportunity in Supervised Learning", https://arxiv.org/abs/1610.02413) on
the model's probability of the positive class over a fitting set (held apart from the
evaluation rows), predicts the evaluation rows with group-specific, randomised thresholds, and
reports how much the targeted disparity shrinks and how much accuracy it costs, each with a
paired percentile bootstrap interval over the evaluation rows (same resamples before and
after). The interval covers the evaluation sample, not the choice of fitting rows nor the
randomised thresholds (fixed by the seed).

The model is used as it is (``prefit=True``): a small scikit-learn estimator hands the
precomputed scores to fairlearn, so nothing is retrained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbench.fairness.bootstrap import (
    PAIRED_PERCENTILE_BOOTSTRAP,
    bootstrap_cell_counts,
    percentile_estimate,
    percentile_interval,
)
from trustbench.fairness.disparities import disparity_statistics
from trustbench.fairness.errors import FairnessError
from trustbench.fairness.groups import build_groups
from trustbench.fairness.labels import as_label_array
from trustbench.fairness.rates import rates_from_counts

if TYPE_CHECKING:
    import numpy as np

    from trustbench.stats import Estimate

#: Constraint -> the disparity it targets.
CONSTRAINTS = {
    "equalized_odds": "equalized_odds_difference",
    "demographic_parity": "demographic_parity_difference",
}


@dataclass
class MitigationResult:
    """Disparity reduction and accuracy cost of one ThresholdOptimizer.

    Attributes
    ----------
    constraint
        ``"equalized_odds"`` or ``"demographic_parity"``.
    grouping
        The sensitive feature the thresholds are chosen for.
    disparity
        The targeted disparity (``equalized_odds_difference`` ...).
    before, after
        Its value with the model's own predictions and with the mitigated ones.
    reduction, reduction_estimate
        ``before - after`` (positive: fairer), and the same with its paired percentile
        bootstrap interval (``n``: the evaluation rows; None without resamples).
        ``reduction_ci`` reads the interval.
    accuracy_before, accuracy_after
        Accuracy on the evaluation rows.
    accuracy_cost, accuracy_cost_estimate
        ``accuracy_before - accuracy_after`` (positive: accuracy lost), and the same with its
        interval; ``accuracy_cost_ci`` reads the interval.
    disparities_after
        Every disparity of the mitigated predictions.
    fit_on
        Where the thresholds were fitted (``"train"`` or ``"eval-half"``).
    n_fit, n_eval
        Rows used to fit and to evaluate.
    """

    constraint: str
    grouping: str
    disparity: str
    before: float | None
    after: float | None
    reduction: float | None
    reduction_estimate: Estimate | None
    accuracy_before: float
    accuracy_after: float
    accuracy_cost: float
    accuracy_cost_estimate: Estimate | None
    disparities_after: dict[str, float | None]
    fit_on: str
    n_fit: int
    n_eval: int
    #: Groups the thresholds could not be fitted for (too few rows, one label only) -> why;
    #: their rows keep the model's own decisions.
    groups_left_out: dict[str, str] = field(default_factory=dict)

    @property
    def reduction_ci(self) -> tuple[float, float] | None:
        """The interval of ``reduction_estimate``, None without one."""
        e = self.reduction_estimate
        return e.ci if e is not None else None

    @property
    def accuracy_cost_ci(self) -> tuple[float, float] | None:
        """The interval of ``accuracy_cost_estimate``, None without one."""
        e = self.accuracy_cost_estimate
        return e.ci if e is not None else None


def _score_estimator() -> Any:
    """A fitted scikit-learn classifier whose decision function is the first input column."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class PrecomputedScores(ClassifierMixin, BaseEstimator):
        """Passes precomputed positive-class probabilities (column 0 of X) to fairlearn."""

        def fit(self, X: Any, y: Any = None) -> PrecomputedScores:
            return self

        def __sklearn_is_fitted__(self) -> bool:
            return True

        def decision_function(self, X: Any) -> np.ndarray:
            return np.asarray(X, dtype=float)[:, 0]

        def predict(self, X: Any) -> np.ndarray:
            return (self.decision_function(X) >= 0.5).astype(np.int64)

    return PrecomputedScores()


def _scores(values: Any, what: str) -> np.ndarray:
    import numpy as np

    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise FairnessError(
            f"{what} must be one finite score per row (the model's probability of class 1), "
            f"got shape {arr.shape}"
        )
    return arr


def model_scores(task: Any, x: Any) -> np.ndarray:
    """Probability of class 1 under ``task``'s model for the rows of ``x`` (NumPy, CPU)."""
    import torch

    if int(task.num_classes) != 2:
        raise FairnessError(
            f"threshold mitigation needs a binary task; {task.name} has {task.num_classes} classes"
        )
    logits = task.logits(x)
    return torch.softmax(logits.float(), dim=1)[:, 1].detach().cpu().numpy()


def threshold_optimizer_tradeoff(
    scores_fit: Any,
    y_fit: Any,
    sensitive_fit: Any,
    scores_eval: Any,
    y_eval: Any,
    sensitive_eval: Any,
    *,
    y_pred_eval: Any = None,
    columns: Sequence[str] | None = None,
    constraints: Sequence[str] = ("equalized_odds", "demographic_parity"),
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    fit_on: str = "train",
) -> list[MitigationResult]:
    """Fit a ThresholdOptimizer per sensitive feature and constraint; measure the trade-off.

    Parameters
    ----------
    scores_fit, y_fit, sensitive_fit
        Positive-class probabilities, 0/1 labels and sensitive attributes of the fitting rows.
    scores_eval, y_eval, sensitive_eval
        The same for the evaluation rows (disjoint from the fitting rows).
    y_pred_eval
        The model's own predictions on the evaluation rows (default: ``scores_eval >= 0.5``).
    columns
        Sensitive features to mitigate for, one at a time (default: all).
    constraints
        Any of ``"equalized_odds"``, ``"demographic_parity"``.
    n_boot, confidence, seed
        Paired bootstrap over the evaluation rows; ``seed`` also fixes the randomised
        thresholds.
    fit_on
        Recorded in the result: where the fitting rows come from.

    Returns
    -------
    list of MitigationResult
        One per (feature, constraint).

    Raises
    ------
    FairnessError
        Non-binary labels, misaligned rows, an unknown constraint, or fewer than two groups
        that can be fitted. Groups that cannot be fitted (absent from the fitting rows, or with
        one label only there) keep the model's decisions and are named in
        ``groups_left_out``.
    """
    import numpy as np
    from fairlearn.postprocessing import ThresholdOptimizer

    unknown = [c for c in constraints if c not in CONSTRAINTS]
    if unknown:
        raise FairnessError(
            f"unknown mitigation constraint(s) {unknown}; accepted: {', '.join(CONSTRAINTS)}"
        )
    s_fit = _scores(scores_fit, "scores_fit")
    s_ev = _scores(scores_eval, "scores_eval")
    yf = as_label_array(y_fit, "y_fit")
    ye = as_label_array(y_eval, "y_eval")
    yp = (s_ev >= 0.5).astype(np.int64) if y_pred_eval is None else as_label_array(
        y_pred_eval, "y_pred_eval"
    )
    for arr, what in ((yf, "y_fit"), (ye, "y_eval"), (yp, "y_pred_eval")):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise FairnessError(f"{what} must be binary 0/1 labels (1 = positive) for mitigation")
    g_fit = build_groups(sensitive_fit, columns, intersections="none")
    g_ev = build_groups(sensitive_eval, columns, intersections="none")
    if not (len(s_fit) == len(yf) == g_fit.n):
        raise FairnessError(
            f"fitting rows do not line up: {len(s_fit)} scores, {len(yf)} labels, {g_fit.n} "
            "sensitive rows"
        )
    if not (len(s_ev) == len(ye) == len(yp) == g_ev.n):
        raise FairnessError(
            f"evaluation rows do not line up: {len(s_ev)} scores, {len(ye)} labels, "
            f"{len(yp)} predictions, {g_ev.n} sensitive rows"
        )

    results = []
    for grouping in g_ev.groupings:
        feat = grouping.features[0]
        fit_labels = g_fit.grouping(grouping.key).labels.astype(str)
        ev_labels = grouping.labels.astype(str)
        # ThresholdOptimizer needs every group it thresholds in the fitting rows with both
        # labels; a group that is not (a handful of rows) keeps the model's own decisions
        left_out: dict[str, str] = {}
        for g in sorted({str(v) for v in grouping.groups} | set(fit_labels.tolist())):
            ys = yf[fit_labels == g]
            if ys.size == 0:
                left_out[g] = "not in the fitting rows"
            elif ys.min() == ys.max():
                left_out[g] = f"only label {int(ys[0])} in its {ys.size} fitting row(s)"
        fit_rows = ~np.isin(fit_labels, list(left_out))
        ev_rows = ~np.isin(ev_labels, list(left_out))
        if len(set(fit_labels[fit_rows])) < 2:
            raise FairnessError(
                f"mitigation for {feat!r}: fewer than two groups have both labels in the "
                f"fitting rows ({'; '.join(f'{g}: {r}' for g, r in left_out.items())}); "
                "fit on data that covers the groups")
        k = len(grouping.groups)
        for constraint in constraints:
            opt = ThresholdOptimizer(
                estimator=_score_estimator(),
                constraints=constraint,
                objective="accuracy_score",
                prefit=True,
                predict_method="decision_function",
            )
            try:
                opt.fit(s_fit[fit_rows, None], yf[fit_rows],
                        sensitive_features=fit_labels[fit_rows])
            except ValueError as exc:
                raise FairnessError(
                    f"fairlearn's ThresholdOptimizer ({constraint}, {feat!r}) could not be "
                    f"fitted: {exc}. Each group needs both labels in the fitting rows"
                ) from exc
            mitigated = yp.copy()
            if ev_rows.any():
                mitigated[ev_rows] = np.asarray(
                    opt.predict(s_ev[ev_rows, None], sensitive_features=ev_labels[ev_rows],
                                random_state=seed),
                    dtype=np.int64,
                )
            res = _measure(constraint, grouping.key, grouping.codes, k, ye, yp, mitigated,
                           n_boot, confidence, seed, fit_on, int(fit_rows.sum()))
            res.groups_left_out = dict(left_out)
            results.append(res)
    return results


def _measure(
    constraint: str,
    key: str,
    codes: np.ndarray,
    k: int,
    y: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    n_boot: int,
    confidence: float,
    seed: int,
    fit_on: str,
    n_fit: int,
) -> MitigationResult:
    import numpy as np

    name = CONSTRAINTS[constraint]
    cells = [codes * 4 + y * 2 + before, codes * 4 + y * 2 + after]
    point = [
        np.bincount(c, minlength=4 * k).reshape(1, k, 2, 2) for c in cells
    ]
    d_before, d_after = (disparity_statistics(rates_from_counts(p, True), True) for p in point)
    acc_b = float(np.mean(before == y))
    acc_a = float(np.mean(after == y))
    vb = float(d_before[name][0])
    va = float(d_after[name][0])
    red_ci = cost_ci = None
    if n_boot:
        cb, ca = bootstrap_cell_counts(cells, [4 * k, 4 * k], n_boot, seed)
        cb = cb.reshape(n_boot, k, 2, 2)
        ca = ca.reshape(n_boot, k, 2, 2)
        db = disparity_statistics(rates_from_counts(cb, True), True)[name]
        da = disparity_statistics(rates_from_counts(ca, True), True)[name]
        red_ci = percentile_interval(db - da, confidence)[0]
        n_b = cb.sum(axis=(1, 2, 3))
        acc_bb = (cb[..., 0, 0] + cb[..., 1, 1]).sum(-1) / n_b
        acc_ab = (ca[..., 0, 0] + ca[..., 1, 1]).sum(-1) / n_b
        cost_ci = percentile_interval(acc_bb - acc_ab, confidence)[0]

    def fin(v: float) -> float | None:
        return v if np.isfinite(v) else None

    # Whether a disparity is defined depends on the labels alone (which groups have positives,
    # negatives, rows), never on the predictions, and every resample draws from the same rows:
    # an undefined reduction has no interval either, so nothing is lost by keeping intervals
    # only with defined values.
    reduction = fin(vb - va)
    cost = acc_b - acc_a
    return MitigationResult(
        constraint=constraint,
        grouping=key,
        disparity=name,
        before=fin(vb),
        after=fin(va),
        reduction=reduction,
        reduction_estimate=percentile_estimate(
            reduction, red_ci, len(y), confidence, PAIRED_PERCENTILE_BOOTSTRAP
        ),
        accuracy_before=acc_b,
        accuracy_after=acc_a,
        accuracy_cost=cost,
        accuracy_cost_estimate=percentile_estimate(
            cost, cost_ci, len(y), confidence, PAIRED_PERCENTILE_BOOTSTRAP
        ),
        disparities_after={m: fin(float(v[0])) for m, v in d_after.items()},
        fit_on=fit_on,
        n_fit=n_fit,
        n_eval=len(y),
    )
