"""Any per-sample measure by group, in the scorecard's table shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustbench.fairness.by_group import accuracy_by_group, metric_by_each_group, metric_by_group
from trustbench.fairness.errors import FairnessError
from trustbench.fairness.groups import build_groups
from trustbench.scorecard import Metric


def test_means_equal_groupby_and_table_shape(biased):
    y, pred, sens = biased
    t = accuracy_by_group(y, pred, sens, columns="colour", n_boot=50, seed=0)
    expected = pd.Series(y == pred).groupby(sens["colour"]).mean()
    assert [r.group for r in t.rows] == ["A", "B"]
    for r in t.rows:
        assert r.value == pytest.approx(expected[r.group], abs=1e-12)
        assert r.ci[0] <= r.value <= r.ci[1]
        assert (r.estimate.value, r.estimate.n, r.estimate.method) == (
            r.value, r.n, "percentile bootstrap")
    assert t.gap == pytest.approx(abs(expected["A"] - expected["B"]))
    assert (t.gap_estimate.value, t.gap_estimate.ci, t.gap_estimate.n) == (t.gap, t.gap_ci, t.n)
    assert t.worst_group == expected.idxmin()
    m = Metric(pillar="robustness", name="robust_accuracy_by_group.colour", value=t.to_value(),
               unit="fraction", params=t.params())
    assert m.shape == "table" and m.value["rows"][0]["n"] == int((sens["colour"] == "A").sum())


def test_intersection_default_and_each_group(biased):
    y, pred, sens = biased
    t = metric_by_group((y == pred).astype(float), sens, n_boot=0)
    assert t.grouping == "colour-sex" and len(t.rows) == 4 and t.rows[0].ci is None
    assert t.rows[0].estimate is None and t.gap_estimate is None and t.params()["gap_ci"] is None
    each = metric_by_each_group(y == pred, sens, n_boot=0)
    assert list(each) == ["colour", "sex", "colour-sex"]
    sg = build_groups(sens)
    assert metric_by_group(y == pred, sg, columns="sex", n_boot=0).grouping == "sex"


def test_small_group_is_flagged_and_not_the_worst():
    vals = np.array([1.0] * 40 + [0.5] * 40 + [0.0] * 3)
    sens = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 40 + ["c"] * 3})
    t = metric_by_group(vals, sens, n_boot=0, min_group_size=30)
    assert t.small_groups == ["c"] and t.worst_group == "b"
    assert t.to_value()["rows"][2]["small"] is True


def test_bad_values():
    sens = pd.DataFrame({"g": ["a", "b"]})
    with pytest.raises(FairnessError, match="one entry per sample"):
        metric_by_group([1.0, 0.0, 1.0], sens)
    with pytest.raises(FairnessError, match="finite"):
        metric_by_group([1.0, np.nan], sens)
    with pytest.raises(FairnessError, match="1-D"):
        metric_by_group(np.ones((2, 2)), sens)
