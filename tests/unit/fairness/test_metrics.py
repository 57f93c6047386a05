"""Group metrics and disparities equal fairlearn's; undefined rates, small groups, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbench.fairness.errors import FairnessError
from trustbench.fairness.metrics import evaluate_fairness
from trustbench.scorecard import value_shape

from .conftest import make_biased


def test_group_metrics_equal_metricframe(biased):
    from fairlearn.metrics import (
        MetricFrame,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    y, pred, sens = biased
    report = evaluate_fairness(y, pred, sens, n_boot=0)
    fns = {"accuracy": accuracy_score, "selection_rate": selection_rate,
           "true_positive_rate": true_positive_rate, "false_positive_rate": false_positive_rate,
           "false_negative_rate": false_negative_rate, "precision": precision_score}
    # Single features and fairlearn's own multi-column intersection.
    for key, sf in (("colour", sens["colour"]), ("sex", sens["sex"]),
                    ("colour-sex", sens[["colour", "sex"]])):
        mf = MetricFrame(metrics=fns, y_true=y, y_pred=pred, sensitive_features=sf)
        g = report.grouping(key)
        for stats in g.groups:
            idx = tuple(stats.group.split(" & ")) if "-" in key else stats.group
            for m in fns:
                assert stats.values[m] == pytest.approx(mf.by_group.loc[idx, m], abs=1e-12)
            assert stats.n == int((sf == idx).all(axis=1).sum() if "-" in key
                                  else (sf == idx).sum())
    for m in fns:
        assert report.overall[m] == pytest.approx(mf.overall[m], abs=1e-12)


def test_disparities_equal_fairlearn_functions(biased):
    import fairlearn.metrics as flm

    y, pred, sens = biased
    report = evaluate_fairness(y, pred, sens, n_boot=0)
    for key, sf in (("colour", sens["colour"]), ("colour-sex", sens[["colour", "sex"]])):
        d = report.grouping(key).disparities
        for name in ("demographic_parity_difference", "demographic_parity_ratio",
                     "equalized_odds_difference", "equalized_odds_ratio",
                     "equal_opportunity_difference"):
            expected = getattr(flm, name)(y, pred, sensitive_features=sf)
            assert d[name].value == pytest.approx(expected, abs=1e-12), name
        mf = flm.MetricFrame(metrics=lambda a, b: float(np.mean(a == b)), y_true=y, y_pred=pred,
                             sensitive_features=sf)
        assert d["accuracy_gap"].value == pytest.approx(mf.difference(), abs=1e-12)


def test_bias_is_found_with_intervals(biased):
    y, pred, sens = biased
    r = evaluate_fairness(y, pred, sens, n_boot=200, seed=1)
    dp = r.headline["demographic_parity_difference"]
    assert dp.grouping == "colour" and dp.low_group == "B"
    assert 0.08 < dp.value < 0.2  # the built-in gap lowers B's selection by ~0.2 * 0.55
    assert dp.ci[0] <= dp.value <= dp.ci[1] and dp.ci[0] > 0.02
    assert dp.reliable
    ratio = r.headline["demographic_parity_ratio"]
    assert 0.6 < ratio.value < 0.9 and ratio.higher_is_better
    w = r.worst_group_accuracy
    assert w.value <= r.overall["accuracy"] and w.ci[0] <= w.value <= w.ci[1]


def test_values_with_intervals_are_estimates(biased):
    from trustbench.stats import Estimate

    y, pred, sens = biased
    r = evaluate_fairness(y, pred, sens, n_boot=40, seed=2, confidence=0.9)
    dp = r.headline["demographic_parity_difference"]
    assert isinstance(dp.estimate, Estimate)
    assert (dp.estimate.value, dp.estimate.ci, dp.estimate.n) == (dp.value, dp.ci, r.n)
    assert (dp.estimate.method, dp.estimate.confidence) == ("percentile bootstrap", 0.9)
    g = r.grouping("colour").stats("B")
    est = g.estimates["selection_rate"]
    assert (est.value, est.ci, est.n, est.method) == (
        g.values["selection_rate"], g.ci["selection_rate"], g.n, "percentile bootstrap")
    assert set(g.ci) == set(g.values)
    row = r.grouping("colour").table("selection_rate")["rows"][1]
    assert row == {"group": "B", "value": est.value, "ci": list(est.ci), "n": g.n}
    w = r.worst_group_accuracy
    assert (w.estimate.value, w.estimate.ci, w.estimate.n) == (w.value, w.ci, w.n)
    # no resamples: values without intervals, so no estimates
    r0 = evaluate_fairness(y, pred, sens, n_boot=0)
    assert r0.headline["accuracy_gap"].estimate is None and r0.headline["accuracy_gap"].ci is None
    assert all(not s.estimates for g in r0.groupings for s in g.groups)
    assert r0.worst_group_accuracy.estimate is None


def test_names_stay_importable_from_the_old_module_path():
    import trustbench.fairness as package
    from trustbench.fairness import metrics, results

    for name in ("FairnessReport", "Disparity", "GroupStats", "GroupingResult", "WorstGroup",
                 "RATIO_DISPARITIES"):
        assert getattr(metrics, name) is getattr(results, name) is getattr(package, name)
    from trustbench.fairness.disparities import disparity_statistics
    from trustbench.fairness.labels import as_label_array
    from trustbench.fairness.rates import rates_from_counts

    assert metrics.rates_from_counts is rates_from_counts
    assert metrics.disparity_statistics is disparity_statistics
    assert metrics.as_label_array is as_label_array


def test_seeded_and_reproducible(biased):
    y, pred, sens = biased
    a = evaluate_fairness(y, pred, sens, n_boot=30, seed=5).headline
    b = evaluate_fairness(y, pred, sens, n_boot=30, seed=5).headline
    c = evaluate_fairness(y, pred, sens, n_boot=30, seed=6).headline
    assert a["accuracy_gap"].ci == b["accuracy_gap"].ci != c["accuracy_gap"].ci


def test_group_without_positives_is_undefined_not_zero():
    y = np.array([1, 0, 1, 0] * 10 + [0] * 10)
    pred = np.array([1, 0, 0, 0] * 10 + [1] * 5 + [0] * 5)
    sens = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 10})
    r = evaluate_fairness(y, pred, sens, n_boot=20, min_group_size=5)
    b = r.grouping("g").stats("b")
    assert b.values["true_positive_rate"] is None
    assert b.values["false_negative_rate"] is None
    assert "no positive labels" in b.undefined["true_positive_rate"]
    assert b.ci["true_positive_rate"] is None and "true_positive_rate" not in b.estimates
    assert b.values["false_positive_rate"] == 0.5
    eod = r.grouping("g").disparities["equal_opportunity_difference"]
    assert eod.value is None and "b" in eod.excluded
    eo = r.grouping("g").disparities["equalized_odds_difference"]
    assert eo.value == pytest.approx(0.5) and eo.component == "false_positive_rate"
    table = r.grouping("g").table("true_positive_rate")
    assert value_shape(table) == "table"
    assert table["rows"][1]["value"] is None and "undefined" in table["rows"][1]


def test_small_groups_make_disparities_unreliable():
    y, pred, sens = make_biased(n=400, seed=2)
    sens.loc[:4, "colour"] = "C"  # a 5-row group
    r = evaluate_fairness(y, pred, sens, n_boot=0, min_group_size=30)
    g = r.grouping("colour")
    assert g.small_groups == ["C"] and g.stats("C").small
    assert any(s["group"] == "C" for s in r.small_groups)
    d = g.disparities["accuracy_gap"]
    if "C" in (d.high_group, d.low_group):
        assert not d.reliable and "below the minimum size" in d.note
    assert d.value_large_groups is not None  # A vs B still compared
    assert any(s.group == "C" for s in g.groups)  # flagged, never dropped


def test_missing_sensitive_values_reported():
    y, pred, sens = make_biased(n=300, seed=3)
    sens.loc[:9, "sex"] = None
    r = evaluate_fairness(y, pred, sens, n_boot=0)
    assert r.missing == {"colour": 0, "sex": 10}
    assert r.grouping("sex").stats("(missing)").n == 10


def test_multiclass_per_class_selection_rates():
    from fairlearn.metrics import MetricFrame, selection_rate

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    sens = pd.DataFrame({"g": rng.choice(["a", "b"], n)})
    r = evaluate_fairness(y, pred, sens, num_classes=3, class_names=["x", "y", "z"], n_boot=20)
    assert r.task_type == "multiclass"
    g = r.grouping("g")
    mat = g.class_selection_matrix()
    assert value_shape(mat) == "matrix" and mat["cols"] == ["x", "y", "z"]
    for c in range(3):
        mf = MetricFrame(metrics=lambda a, b, c=c: selection_rate(a, b, pos_label=c),
                         y_true=y, y_pred=pred, sensitive_features=sens["g"])
        for j, grp in enumerate(mat["rows"]):
            assert mat["values"][j][c] == pytest.approx(mf.by_group[grp], abs=1e-12)
    dpd = g.disparities["demographic_parity_difference"].value
    assert dpd == pytest.approx(max(
        abs(mat["values"][0][c] - mat["values"][1][c]) for c in range(3)))
    assert "equalized_odds_difference" not in g.disparities


@pytest.mark.parametrize(("y", "pred", "match"), [
    ([0, 1, 1], [0, 1], "one entry per evaluated sample"),
    ([0.5, 1, 0, 1], [0, 1, 0, 1], "integer class indices"),
    ([0, 1, 2, 1], [0, 1, 0, 1], r"class indices in \[0, 2\)"),
    ([[0, 1], [1, 0], [0, 0], [1, 1]], [0, 1, 0, 1], "1-D"),
])
def test_bad_labels(y, pred, match):
    sens = pd.DataFrame({"g": ["a", "b", "a", "b"]})
    with pytest.raises(FairnessError, match=match):
        evaluate_fairness(y, pred, sens, num_classes=2, n_boot=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), gap=st.floats(0.0, 0.5))
def test_group_intervals_contain_estimates(seed, gap):
    y, pred, sens = make_biased(n=300, seed=seed, gap=gap)
    r = evaluate_fairness(y, pred, sens, n_boot=40, seed=seed, intersections="none")
    for g in r.groupings:
        for s in g.groups:
            for m, v in s.values.items():
                if v is not None and s.ci[m] is not None:
                    lo, hi = s.ci[m]
                    assert lo - 1e-12 <= v <= hi + 1e-12 or s.small
