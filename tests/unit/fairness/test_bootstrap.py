"""The one-pass bootstrap draws fairlearn's resamples and gives fairlearn's intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustbench.fairness.bootstrap import (
    bootstrap_cell_counts,
    bootstrap_group_sums,
    percentile_interval,
    resample_indices,
    safe_divide,
)
from trustbench.fairness.rates import rates_from_counts


def test_resamples_are_pandas_sample_with_fairlearn_seeds():
    n, seed = 50, 3
    frame = pd.DataFrame({"i": np.arange(n)})
    gen = np.random.default_rng(seed)
    seeds = gen.integers(low=0, high=np.iinfo(np.uint32).max, size=5, dtype=np.uint32)
    expected = np.stack([
        frame.sample(frac=1, replace=True, random_state=s, axis=0, ignore_index=True)["i"]
        for s in seeds
    ])
    got = np.concatenate(list(resample_indices(n, 5, seed)))
    np.testing.assert_array_equal(got, expected)


def test_group_intervals_equal_metricframe_by_group_ci(biased):
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    y, pred, sens = biased
    groups, codes = np.unique(sens["colour"], return_inverse=True)
    mf = MetricFrame(
        metrics={"accuracy": accuracy_score, "selection_rate": selection_rate,
                 "true_positive_rate": true_positive_rate},
        y_true=y, y_pred=pred, sensitive_features=sens["colour"],
        n_boot=20, ci_quantiles=[0.025, 0.975], random_state=11,
    )
    (counts,) = bootstrap_cell_counts([codes * 4 + y * 2 + pred], [len(groups) * 4], 20, 11)
    rates = rates_from_counts(counts.reshape(20, len(groups), 2, 2), binary=True)
    for m in ("accuracy", "selection_rate", "true_positive_rate"):
        ours = percentile_interval(rates[m])
        for j, g in enumerate(groups):
            assert ours[j] == pytest.approx(
                (mf.by_group_ci[0][m][g], mf.by_group_ci[1][m][g]), abs=1e-12
            )
    diff = rates["selection_rate"].max(1) - rates["selection_rate"].min(1)
    lo, hi = mf.difference_ci()[0]["selection_rate"], mf.difference_ci()[1]["selection_rate"]
    assert percentile_interval(diff)[0] == pytest.approx((lo, hi), abs=1e-12)


def test_group_sums_match_counts():
    codes = np.array([0, 1, 1, 2, 0, 2])
    vals = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    c, s = bootstrap_group_sums(codes, vals, 3, 7, 0)
    (cc,) = bootstrap_cell_counts([codes * 2 + vals.astype(int)], [6], 7, 0)
    np.testing.assert_array_equal(c, cc.reshape(7, 3, 2).sum(-1))
    np.testing.assert_array_equal(s, cc.reshape(7, 3, 2)[..., 1])


def test_safe_divide_and_empty_interval():
    out = safe_divide(np.array([1.0, 0.0]), np.array([2.0, 0.0]))
    assert out[0] == 0.5 and np.isnan(out[1])
    assert percentile_interval(np.full((4, 1), np.nan)) == [None]
    assert percentile_interval(np.array([0.0, 1.0, 2.0]), 0.5)[0] == (0.5, 1.5)
