"""ThresholdOptimizer trade-off on precomputed scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustbench.fairness.errors import FairnessError
from trustbench.fairness.mitigation import threshold_optimizer_tradeoff


def _scores(n, rng):
    sens = pd.DataFrame({"colour": rng.choice(["A", "B"], n, p=[0.6, 0.4])})
    y = (rng.random(n) < 0.6).astype(np.int64)
    shift = np.where(sens["colour"] == "B", -0.25, 0.0)  # group B scored lower
    s = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.2, n) + shift, 0, 1)
    return s, y, sens


def test_mitigation_reduces_the_targeted_disparity():
    rng = np.random.default_rng(0)
    fit = _scores(3000, rng)
    ev = _scores(2000, rng)
    res = threshold_optimizer_tradeoff(*fit, *ev, n_boot=50, seed=0)
    assert [(r.constraint, r.grouping) for r in res] == [
        ("equalized_odds", "colour"), ("demographic_parity", "colour")]
    for r in res:
        assert r.before > 0.15  # the shift makes group B's rates clearly lower
        assert r.after < r.before / 3
        assert r.reduction == pytest.approx(r.before - r.after)
        assert r.reduction_ci[0] <= r.reduction <= r.reduction_ci[1] and r.reduction_ci[0] > 0
        for est, value in ((r.reduction_estimate, r.reduction),
                           (r.accuracy_cost_estimate, r.accuracy_cost)):
            assert (est.value, est.n, est.method) == (value, 2000, "paired percentile bootstrap")
        assert r.accuracy_cost == pytest.approx(r.accuracy_before - r.accuracy_after)
        lo, hi = r.accuracy_cost_ci
        assert lo <= r.accuracy_cost <= hi
        assert r.disparities_after[r.disparity] == pytest.approx(r.after)
        assert (r.n_fit, r.n_eval, r.fit_on) == (3000, 2000, "train")


def test_bad_inputs():
    rng = np.random.default_rng(1)
    s, y, sens = _scores(200, rng)
    with pytest.raises(FairnessError, match="unknown mitigation constraint"):
        threshold_optimizer_tradeoff(s, y, sens, s, y, sens, constraints=["equal_pay"])
    with pytest.raises(FairnessError, match="binary"):
        threshold_optimizer_tradeoff(s, y + 1, sens, s, y, sens, n_boot=0)
    with pytest.raises(FairnessError, match="line up"):
        threshold_optimizer_tradeoff(s[:-1], y, sens, s, y, sens, n_boot=0)
    other = sens.copy()
    other.loc[:5, "colour"] = "C"
    # a group the fitting rows lack keeps the model's decisions and is named
    (res, *_) = threshold_optimizer_tradeoff(s, y, sens, s, y, other, n_boot=0,
                                             constraints=["demographic_parity"],
                                             columns=["colour"])
    assert res.groups_left_out == {"C": "not in the fitting rows"}
    assert res.reduction_estimate is None and res.accuracy_cost_ci is None  # n_boot=0
    one_label = sens.copy()
    one_label.loc[:1, "colour"] = "D"
    y1 = y.copy()
    y1[:2] = 1
    (res, *_) = threshold_optimizer_tradeoff(s, y1, one_label, s, y1, one_label, n_boot=0,
                                             constraints=["demographic_parity"],
                                             columns=["colour"])
    assert res.groups_left_out == {"D": "only label 1 in its 2 fitting row(s)"}
    assert res.n_fit == len(y1) - 2
    lonely = sens.copy()
    lonely["colour"] = ["A"] * (len(s) - 1) + ["B"]
    with pytest.raises(FairnessError, match="fewer than two groups"):
        threshold_optimizer_tradeoff(s, y, lonely, s, y, lonely, n_boot=0, columns=["colour"])
