"""Fairness pillar: are errors and decisions spread evenly across groups?

For a task with sensitive attributes (``arrests-mlp``: colour, sex, age group; user data:
``--bench-sensitive``), per sensitive feature and their intersection: per-group tables with
bootstrap intervals, disparities (difference and ratio) with intervals, worst-group accuracy,
small groups and missing values flagged, and what fairlearn's ThresholdOptimizer would cost.
Binary tasks: the positive label is class 1 and *selection* is a positive prediction.

Validity checks (``record_check``) are kept for the *evaluation* (enough data per feature,
sane intervals); a finding about the model, such as failing the four-fifths rule, is a metric
(``selection_rate_ratio`` with ``passes_four_fifths`` in its params) that a gate can enforce:
``--bench-gate "fairness.selection_rate_ratio>=0.8"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from trustbench.fairness import (
    RATIO_DISPARITIES,
    Disparity,
    FairnessError,
    FairnessReport,
    evaluate_fairness,
    profiles,
)
from trustbench.fairness.groups import build_groups
from trustbench.fairness.mitigation import model_scores, threshold_optimizer_tradeoff

#: Per-group metric -> higher_is_better (None: neither; selection is a decision, not a quality).
GROUP_METRICS = {
    "accuracy": True,
    "selection_rate": None,
    "true_positive_rate": True,
    "false_positive_rate": False,
    "false_negative_rate": False,
    "precision": True,
}
#: Headline disparities that define the pillar score (with worst-group accuracy).
SCORED = {"demographic_parity_difference": 1.0, "equalized_odds_difference": 1.0}
INTERVAL = "percentile bootstrap over fairlearn's MetricFrame resamples"


@pytest.fixture(scope="module")
def fairness_budget(bench_config):
    return profiles.budget(bench_config.profile, bench_config.pillar_options("fairness"))


@pytest.fixture(scope="module")
def columns(task, bench_config, fairness_budget):
    if task.sensitive_test is None:
        pytest.skip(
            f"task {task.name} has no sensitive attributes; name the sensitive columns of your "
            "dataset with --bench-sensitive COL[,COL] or [tool.trustbench.fairness] "
            "sensitive = [...]"
        )
    available = [str(c) for c in task.sensitive_test.columns]
    chosen = list(fairness_budget.sensitive or bench_config.sensitive or available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        pytest.fail(f"sensitive column(s) {', '.join(map(repr, unknown))} are not attributes of "
                    f"task {task.name}; its sensitive attributes are: {', '.join(available)}",
                    pytrace=False)
    # a column with one group only cannot be compared: measure the others, say why
    usable = [c for c in chosen if task.sensitive_test[c].dropna().nunique() >= 2]
    if not usable:
        pytest.skip(f"no sensitive column of task {task.name} has two groups or more "
                    f"({', '.join(chosen)}): nothing to compare")
    return usable


@pytest.fixture(scope="module")
def predictions(task, columns):
    return task.predict(task.x_test).cpu().numpy().astype(np.int64)


@pytest.fixture(scope="module")
def audit(task, columns, predictions, bench_config, fairness_budget):
    b = fairness_budget
    return evaluate_fairness(
        task.y_test.numpy(),
        predictions,
        task.sensitive_test,
        columns=columns,
        num_classes=task.num_classes,
        class_names=list(task.class_names),
        intersections=b.intersections,
        min_group_size=b.min_group_size,
        n_boot=b.n_boot,
        confidence=b.confidence,
        seed=bench_config.seed,
    )


def _interval_params(report: FairnessReport) -> dict:
    return {"interval": INTERVAL, "n_boot": report.n_boot, "confidence": report.confidence,
            "seed": report.seed, "min_group_size": report.min_group_size}


def _disparity_params(d: Disparity, report: FairnessReport) -> dict:
    return {
        "grouping": d.grouping, "reliable": d.reliable, "high_group": d.high_group,
        "low_group": d.low_group, "component": d.component,
        "value_large_groups": d.value_large_groups, "excluded": d.excluded, "note": d.note,
        **_interval_params(report),
    }


def test_group_metrics(audit, record_metric, record_check):
    """Per-group tables (each feature and the intersection) with intervals."""
    for g in audit.groupings:
        base = {"grouping": g.key, "features": list(g.features), "small_groups": g.small_groups,
                **_interval_params(audit)}
        if audit.task_type == "binary":
            base["positive_label"] = 1
        for metric, hib in GROUP_METRICS.items():
            if metric not in g.groups[0].values:
                continue
            record_metric(f"{metric}_by_group.{g.key}", g.table(metric), unit="fraction",
                          higher_is_better=hib, n=audit.n, params=base)
        if g.class_names is not None:
            record_metric(f"selection_rate_by_class.{g.key}", g.class_selection_matrix(),
                          unit="fraction", n=audit.n, params=base)
    # The bootstrap machinery is sound if every trusted group's interval holds its estimate.
    outside = [
        f"{g.key}/{s.group}/{m}"
        for g in audit.groupings for s in g.groups if not s.small
        for m, e in s.estimates.items() if not e.ci[0] <= e.value <= e.ci[1]
    ]
    if audit.n_boot:
        record_check("fairness.group_intervals_contain_estimates", not outside,
                     "outside: " + ", ".join(outside[:10]) if outside else
                     "every group of at least the minimum size")
    for g in audit.groupings:
        assert sum(s.n for s in g.groups) == audit.n


@pytest.fixture(scope="module")
def large_group_audit(task, columns, predictions, audit, bench_config, fairness_budget):
    """The audit again without the rows of groups below the minimum size (any single
    feature), or None when no headline is defined by such a group: the pillar score rests on
    reliable values, while the headline metrics keep every group as fairlearn does."""
    if all(audit.headline[n].reliable for n in SCORED if audit.headline[n].value is not None):
        return None
    b = fairness_budget
    keep = np.ones(audit.n, dtype=bool)
    # the audit's own grouping of the rows (missing values, binning and all)
    for g in build_groups(task.sensitive_test, columns, intersections="none",
                          min_group_size=b.min_group_size).groupings:
        keep &= ~np.isin(g.labels, g.small_groups(b.min_group_size))
    sens = task.sensitive_test[keep].reset_index(drop=True)
    if keep.sum() < 2 * b.min_group_size:
        return None
    try:
        return evaluate_fairness(
            task.y_test.numpy()[keep], predictions[keep], sens, columns=columns,
            num_classes=task.num_classes, class_names=list(task.class_names),
            intersections="none", min_group_size=b.min_group_size, n_boot=b.n_boot,
            confidence=b.confidence, seed=bench_config.seed)
    except FairnessError:  # a feature left with one group: no reliable comparison
        return None


def test_disparities(audit, large_group_audit, record_metric, fairness_budget):
    """Disparities per grouping and, as headline, the worst single sensitive feature."""
    for name, d in audit.headline.items():
        unit = "ratio" if name in RATIO_DISPARITIES else "fraction"
        rescored = name in SCORED and large_group_audit is not None and not d.reliable
        record_metric(name, d.value, unit=unit, higher_is_better=d.higher_is_better, ci=d.ci,
                      n=d.n, params={"over": "worst single sensitive feature",
                                     **_disparity_params(d, audit)},
                      score_weight=None if rescored else SCORED.get(name))
        if rescored:
            dl = large_group_audit.headline[name]
            record_metric(f"{name}_large_groups", dl.value, unit=unit,
                          higher_is_better=dl.higher_is_better, ci=dl.ci, n=dl.n,
                          params={"over": "worst single sensitive feature, rows of groups "
                                  f"below {fairness_budget.min_group_size} left out",
                                  "why": f"the headline {name} is defined by a group below "
                                  "the minimum size: the pillar score uses this value instead",
                                  **_disparity_params(dl, large_group_audit)},
                          score_weight=SCORED.get(name))
        for g in audit.groupings:
            dg = g.disparities[name]
            record_metric(f"{name}.{g.key}", dg.value, unit=unit,
                          higher_is_better=dg.higher_is_better, ci=dg.ci, n=dg.n,
                          params=_disparity_params(dg, audit))
    # Four-fifths rule: a finding about the model, recorded as a metric a gate can enforce.
    thr = fairness_budget.four_fifths_threshold
    dpr = audit.headline["demographic_parity_ratio"]
    per_feature = {
        g.key: {"ratio": g.disparities["demographic_parity_ratio"].value,
                "passes_four_fifths": _passes(g.disparities["demographic_parity_ratio"].value, thr),
                "reliable": g.disparities["demographic_parity_ratio"].reliable}
        for g in audit.groupings
    }
    record_metric("selection_rate_ratio", dpr.value, unit="ratio", higher_is_better=True,
                  ci=dpr.ci, n=dpr.n,
                  params={"four_fifths_threshold": thr,
                          "passes_four_fifths": _passes(dpr.value, thr),
                          "ci_above_threshold": bool(dpr.ci and dpr.ci[0] >= thr),
                          "feature": dpr.grouping, "per_grouping": per_feature,
                          **_interval_params(audit)})
    for d in audit.headline.values():
        if d.value is not None and d.name not in RATIO_DISPARITIES:
            assert d.value >= 0.0


def _passes(value: float | None, threshold: float) -> bool | None:
    return None if value is None else bool(value >= threshold)


def test_worst_group_accuracy(audit, record_metric):
    """Lowest accuracy over the groups large enough to be trusted."""
    w = audit.worst_group_accuracy
    record_metric("worst_group_accuracy", w.value, unit="fraction", higher_is_better=True,
                  ci=w.ci, n=w.n, score_weight=1.0,
                  params={"grouping": w.grouping, "group": w.group,
                          "overall_accuracy": audit.overall["accuracy"],
                          "smaller_groups_below": w.smaller_groups_below,
                          **_interval_params(audit)})
    if w.value is not None and audit.overall["accuracy"] is not None:
        assert w.value <= audit.overall["accuracy"] + 1e-12


def test_group_sizes_and_missing(audit, record_metric, record_check, fairness_budget):
    """Small groups are flagged and missing sensitive values counted, never dropped."""
    record_metric("small_groups", len(audit.small_groups), unit="groups",
                  n=sum(len(g.groups) for g in audit.groupings),
                  params={"min_group_size": audit.min_group_size, "groups": audit.small_groups})
    record_metric("missing_sensitive_values", sum(audit.missing.values()), unit="rows",
                  n=audit.n, params={"per_column": audit.missing, "group_label": "(missing)"})
    inadequate = {
        g.key: {s.group: s.n for s in g.groups}
        for g in audit.single if sum(not s.small for s in g.groups) < 2
    }
    record_check(
        "fairness.each_feature_has_two_adequate_groups", not inadequate,
        f"features with fewer than two groups of >= {audit.min_group_size} rows (their "
        f"disparities cannot be estimated reliably): {inadequate}; lower min_group_size in "
        "[tool.trustbench.fairness] only knowingly" if inadequate else
        f"every feature has two or more groups of >= {audit.min_group_size} rows",
    )


def test_mitigation_tradeoff(task, columns, predictions, audit, bench_config, fairness_budget,
                             record_metric):
    """Disparity reduction and accuracy cost of ThresholdOptimizer (per feature, constraint)."""
    b = fairness_budget
    if not b.mitigation:
        pytest.skip("mitigation disabled ([tool.trustbench.fairness] mitigation = false)")
    if task.num_classes != 2:
        pytest.skip(f"ThresholdOptimizer needs a binary task; {task.name} has "
                    f"{task.num_classes} classes")
    rng = np.random.default_rng(bench_config.seed)
    y_eval = task.y_test.numpy()
    s_eval = model_scores(task, task.x_test)
    sens_eval = task.sensitive_test
    if task.sensitive_train is not None and len(task.x_train):
        idx = np.sort(rng.permutation(len(task.x_train))[: b.mitigation_fit_rows])
        s_fit = model_scores(task, task.x_train[idx])
        y_fit = task.y_train.numpy()[idx]
        sens_fit = task.sensitive_train.iloc[idx].reset_index(drop=True)
        fit_on = "train"
        pred_eval = predictions
    else:  # no training data: fit on one half of the test rows, evaluate on the other
        perm = rng.permutation(len(y_eval))
        fit, ev = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2:])
        s_fit, y_fit = s_eval[fit], y_eval[fit]
        sens_fit = sens_eval.iloc[fit].reset_index(drop=True)
        s_eval, y_eval, pred_eval = s_eval[ev], y_eval[ev], predictions[ev]
        sens_eval = sens_eval.iloc[ev].reset_index(drop=True)
        fit_on = "test-half"
    results = threshold_optimizer_tradeoff(
        s_fit, y_fit, sens_fit, s_eval, y_eval, sens_eval, y_pred_eval=pred_eval,
        columns=columns, n_boot=b.n_boot, confidence=b.confidence, seed=bench_config.seed,
        fit_on=fit_on,
    )
    common = {"method": "fairlearn ThresholdOptimizer (prefit, objective accuracy_score, "
                        "randomized thresholds)", "fit_on": fit_on,
              "interval": "paired percentile bootstrap over the evaluation rows",
              "n_boot": b.n_boot, "confidence": b.confidence, "seed": bench_config.seed}
    for constraint in ("equalized_odds", "demographic_parity"):
        rs = [r for r in results if r.constraint == constraint]
        details = {r.grouping: {"before": r.before, "after": r.after,
                                "accuracy_before": r.accuracy_before,
                                "accuracy_after": r.accuracy_after,
                                "disparities_after": r.disparities_after, "n_fit": r.n_fit,
                                **({"groups_left_out": r.groups_left_out}
                                   if r.groups_left_out else {})}
                   for r in rs}
        record_metric(f"{constraint}_mitigation_disparity_reduction_by_feature",
                      {"rows": [{"group": r.grouping, "value": r.reduction,
                                 "ci": list(r.reduction_ci) if r.reduction_ci else None,
                                 "n": r.n_eval} for r in rs]},
                      unit="fraction", n=rs[0].n_eval,
                      params={"disparity": rs[0].disparity, "per_feature": details, **common})
        record_metric(f"{constraint}_mitigation_accuracy_cost_by_feature",
                      {"rows": [{"group": r.grouping, "value": r.accuracy_cost,
                                 "ci": list(r.accuracy_cost_ci) if r.accuracy_cost_ci else None,
                                 "n": r.n_eval} for r in rs]},
                      unit="fraction", n=rs[0].n_eval, params={"per_feature": details, **common})
        # Scalars for the feature the headline disparity comes from (gate-able).
        target = rs[0].disparity
        head = audit.headline[target].grouping
        r = next((x for x in rs if x.grouping == head), rs[0])
        p = {"feature": r.grouping, "disparity": r.disparity, "before": r.before,
             "after": r.after, "accuracy_before": r.accuracy_before,
             "accuracy_after": r.accuracy_after, "n_fit": r.n_fit,
             **({"groups_left_out": r.groups_left_out} if r.groups_left_out else {}), **common}
        record_metric(f"{constraint}_mitigation_disparity_reduction", r.reduction,
                      unit="fraction", ci=r.reduction_ci, n=r.n_eval, params=p)
        record_metric(f"{constraint}_mitigation_accuracy_cost", r.accuracy_cost,
                      unit="fraction", ci=r.accuracy_cost_ci, n=r.n_eval, params=p)
    for r in results:
        assert -1.0 <= r.accuracy_cost <= 1.0
