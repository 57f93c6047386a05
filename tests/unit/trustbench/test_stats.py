"""Tests of trustbench.stats: known values, independent references (SciPy's own implementations
and hand-computed formulas), input validation, and interval laws as hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbench.errors import BenchError
from trustbench.stats import (
    Estimate,
    StatsError,
    bootstrap_interval,
    bootstrap_mean_interval,
    clopper_pearson_interval,
    leveugle_sample_size,
    mean_interval,
    paired_difference,
    percentiles,
    proportion,
    wilson_interval,
)

# --------------------------------------------------------------------------------------------
# Wilson


def test_wilson_known_value_81_of_263() -> None:
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.25529, abs=5e-5)
    assert hi == pytest.approx(0.36621, abs=5e-5)


def test_wilson_matches_hand_formula_at_99_percent() -> None:
    k, n, z = 7, 40, 2.5758293035489004
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(k, n, 0.99) == pytest.approx((centre - half, centre + half), abs=1e-12)


@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (0, 20), (3, 20), (10, 20), (19, 20), (20, 20), (1, 1000), (500, 1000)]
)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.999])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    from scipy.stats import binomtest

    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_wilson_edges_are_exact() -> None:
    assert wilson_interval(0, 50)[0] == 0.0
    assert wilson_interval(50, 50)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # the Wilson upper bound for 0/n at 95 % is z^2 / (n + z^2)
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 50)[1] == pytest.approx(z2 / (50 + z2), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Clopper-Pearson


def test_clopper_pearson_table_values() -> None:
    # classic table values: 0/10 -> upper 0.3085; 10/10 -> lower 0.6915; 5/10 -> (0.1871, 0.8129)
    assert clopper_pearson_interval(0, 10) == (0.0, pytest.approx(0.30850, abs=5e-5))
    assert clopper_pearson_interval(10, 10) == (pytest.approx(0.69150, abs=5e-5), 1.0)
    assert clopper_pearson_interval(5, 10) == pytest.approx((0.18709, 0.81291), abs=5e-5)


def test_clopper_pearson_zero_successes_has_closed_form() -> None:
    # for k = 0 the exact upper bound solves (1 - p)^n = alpha / 2
    for n in (1, 7, 100, 5000):
        hi = clopper_pearson_interval(0, n, 0.95)[1]
        assert hi == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)


@pytest.mark.parametrize(("k", "n"), [(1, 3), (4, 37), (99, 100), (250, 1000)])
def test_clopper_pearson_matches_scipy_exact(k: int, n: int) -> None:
    from scipy.stats import binomtest

    ref = binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
    assert clopper_pearson_interval(k, n, 0.9) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_clopper_pearson_is_wider_than_wilson() -> None:
    for k, n in [(0, 30), (3, 30), (15, 30), (29, 30)]:
        w = wilson_interval(k, n)
        c = clopper_pearson_interval(k, n)
        assert c[1] - c[0] > w[1] - w[0]


# --------------------------------------------------------------------------------------------
# proportion / Estimate


def test_proportion_bundles_value_ci_and_n() -> None:
    est = proportion(90, 100)
    assert isinstance(est, Estimate)
    assert est.value == 0.9
    assert est.n == 100
    assert est.method == "wilson"
    assert est.ci == wilson_interval(90, 100)
    assert est.half_width == pytest.approx((est.ci[1] - est.ci[0]) / 2)
    exact = proportion(90, 100, 0.99, method="exact")
    assert exact.method == "clopper-pearson"
    assert exact.ci == clopper_pearson_interval(90, 100, 0.99)
    assert exact.confidence == 0.99
    assert proportion(np.int64(3), np.int64(4)).value == 0.75


def test_proportion_rejects_unknown_method_and_empty_sample() -> None:
    with pytest.raises(StatsError, match="wilson"):
        proportion(1, 2, method="wald")
    with pytest.raises(StatsError, match="at least one trial"):
        proportion(0, 0)


# --------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("fn", [wilson_interval, clopper_pearson_interval, proportion])
@pytest.mark.parametrize(
    ("k", "n", "confidence", "match"),
    [
        (5, 4, 0.95, "cannot exceed"),
        (-1, 4, 0.95, "non-negative"),
        (1, -4, 0.95, "non-negative"),
        (1.5, 4, 0.95, "integer"),
        (True, 4, 0.95, "integer"),
        (1, 4, 0.0, "between 0 and 1"),
        (1, 4, 1.0, "between 0 and 1"),
        (1, 4, 95, "between 0 and 1"),
        (1, 4, float("nan"), "between 0 and 1"),
    ],
)
def test_proportion_input_validation(fn, k, n, confidence, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatsError, match=match) as info:
        fn(k, n, confidence)
    assert isinstance(info.value, BenchError)
    assert isinstance(info.value, ValueError)


def test_integral_floats_are_accepted_as_counts() -> None:
    assert wilson_interval(3.0, 10.0) == wilson_interval(3, 10)


# --------------------------------------------------------------------------------------------
# hypothesis properties of the proportion intervals

counts = st.integers(min_value=0, max_value=10_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
levels = st.floats(min_value=0.5, max_value=0.999)


@settings(max_examples=150, deadline=None)
@given(kn=counts, confidence=levels)
def test_intervals_contain_estimate_and_lie_in_unit_interval(
    kn: tuple[int, int], confidence: float
) -> None:
    k, n = kn
    for fn in (wilson_interval, clopper_pearson_interval):
        lo, hi = fn(k, n, confidence)
        assert 0.0 <= lo <= hi <= 1.0
        if n:
            assert lo <= k / n <= hi


@settings(max_examples=60, deadline=None)
@given(
    p=st.floats(min_value=0.0, max_value=1.0),
    n=st.integers(min_value=5, max_value=2_000),
    confidence=levels,
)
def test_intervals_narrow_as_n_grows(p: float, n: int, confidence: float) -> None:
    # the same observed proportion with 4x the trials gives a strictly narrower interval
    k = round(p * n)
    for fn in (wilson_interval, clopper_pearson_interval):
        lo1, hi1 = fn(k, n, confidence)
        lo4, hi4 = fn(4 * k, 4 * n, confidence)
        assert hi4 - lo4 < hi1 - lo1


@settings(max_examples=60, deadline=None)
@given(kn=counts, c1=levels, c2=levels)
def test_higher_confidence_gives_wider_interval(kn: tuple[int, int], c1: float, c2: float) -> None:
    k, n = kn
    lo_c, hi_c = min(c1, c2), max(c1, c2)
    for fn in (wilson_interval, clopper_pearson_interval):
        a = fn(k, n, lo_c)
        b = fn(k, n, hi_c)
        assert b[0] <= a[0] + 1e-12
        assert b[1] >= a[1] - 1e-12


def test_wilson_coverage_is_near_nominal() -> None:
    # exact coverage of the 95 % Wilson interval for p=0.3, n=50, summed over the binomial pmf
    from scipy.stats import binom

    n, p = 50, 0.3
    cover = sum(
        binom.pmf(k, n, p)
        for k in range(n + 1)
        if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1]
    )
    assert 0.93 <= cover <= 0.97
    cp_cover = sum(
        binom.pmf(k, n, p)
        for k in range(n + 1)
        if clopper_pearson_interval(k, n)[0] <= p <= clopper_pearson_interval(k, n)[1]
    )
    assert cp_cover >= 0.95


# --------------------------------------------------------------------------------------------
# paired difference (Newcombe 1998, method 10)


def test_paired_difference_published_examples() -> None:
    # Fagerland, Lydersen & Laake (2014), "Recommended tests and confidence intervals for paired
    # binomial proportions", Statistics in Medicine 33: Newcombe's square-and-add interval.
    # Bentur et al. (2009): rows (before) x columns (after) = [[1, 1], [7, 12]]
    est = paired_difference(1, 1, 7, 12)
    assert est.value == pytest.approx(-6 / 21)
    assert est.ci == pytest.approx((-0.5069, -0.0256), abs=5e-5)
    # Cavo et al. (2012): [[59, 6], [16, 80]]
    est = paired_difference(59, 6, 16, 80)
    assert est.value == pytest.approx(-10 / 161)
    assert est.ci == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    assert est.n == 161 and est.method == "newcombe-paired"


def test_paired_difference_without_correlation_is_the_independent_hybrid_interval() -> None:
    # a*d - b*c in [0, n/2]: phi = 0, so the interval is Newcombe's independent hybrid score one
    a, b, c, d = 10, 10, 10, 10
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n)
    l2, u2 = wilson_interval(a + c, n)
    lo = p1 - p2 - math.hypot(p1 - l1, u2 - p2)
    hi = p1 - p2 + math.hypot(u1 - p1, p2 - l2)
    assert paired_difference(a, b, c, d).ci == pytest.approx((lo, hi))


def test_paired_difference_is_narrower_when_outcomes_agree_and_antisymmetric() -> None:
    agree = paired_difference(40, 20, 0, 140)  # the second condition only removes successes
    independent = paired_difference(12, 48, 28, 112)  # same marginals, no correlation
    assert agree.value == pytest.approx(independent.value) == pytest.approx(0.1)
    assert agree.ci[1] - agree.ci[0] < 0.8 * (independent.ci[1] - independent.ci[0])
    assert agree.ci[0] > 0
    swapped = paired_difference(40, 0, 20, 140)
    assert swapped.ci == pytest.approx((-agree.ci[1], -agree.ci[0]))


def test_paired_difference_exact_coverage_is_near_nominal() -> None:
    # exact coverage over every table of n = 40 pairs under a correlated multinomial
    from scipy.special import gammaln

    n, probs = 40, np.array([0.3, 0.15, 0.05, 0.5])
    truth = probs[1] - probs[2]
    cover = 0.0
    for a in range(n + 1):
        for b in range(n + 1 - a):
            for c in range(n + 1 - a - b):
                d = n - a - b - c
                counts = np.array([a, b, c, d])
                logp = gammaln(n + 1) - gammaln(counts + 1).sum() + (counts * np.log(probs)).sum()
                lo, hi = paired_difference(a, b, c, d).ci
                if lo <= truth <= hi:
                    cover += math.exp(logp)
    assert 0.935 <= cover <= 0.975


@pytest.mark.parametrize("args, match", [
    ((0, 0, 0, 0), "at least one unit"),
    ((-1, 2, 3, 4), "non-negative integer"),
    ((1.5, 2, 3, 4), "non-negative integer"),
    ((True, 2, 3, 4), "non-negative integer"),
])
def test_paired_difference_validation(args, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatsError, match=match):
        paired_difference(*args)
    with pytest.raises(StatsError, match="confidence"):
        paired_difference(1, 2, 3, 4, confidence=1.0)


# --------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_mean_agrees_with_t_interval_on_normal_data() -> None:
    x = np.random.default_rng(3).normal(10.0, 2.0, size=400)
    lo, hi = bootstrap_mean_interval(x, n_resamples=2000)
    t_lo, t_hi = mean_interval(x)
    width = t_hi - t_lo
    assert lo == pytest.approx(t_lo, abs=0.1 * width)
    assert hi == pytest.approx(t_hi, abs=0.1 * width)


def test_bootstrap_is_seeded_and_seed_matters() -> None:
    x = np.random.default_rng(0).exponential(size=60)
    a = bootstrap_interval(np.mean, x, n_resamples=300, seed=7)
    b = bootstrap_interval(np.mean, x, n_resamples=300, seed=7)
    c = bootstrap_interval(np.mean, x, n_resamples=300, seed=8)
    assert a == b
    assert a != c


def test_bootstrap_vectorized_equals_loop() -> None:
    x = np.random.default_rng(1).normal(size=80)
    loop = bootstrap_interval(np.mean, x, n_resamples=500, seed=2)
    vec = bootstrap_interval(lambda v: v.mean(axis=1), x, n_resamples=500, seed=2, vectorized=True)
    assert loop == pytest.approx(vec, rel=1e-12)
    assert bootstrap_mean_interval(x, n_resamples=500, seed=2) == pytest.approx(vec, rel=1e-12)


def test_bootstrap_resamples_rows_jointly() -> None:
    # y is an exact copy of x: a joint resample keeps their difference at exactly 0
    x = np.random.default_rng(4).normal(size=50)
    lo, hi = bootstrap_interval(lambda a, b: np.mean(a - b), x, x.copy(), n_resamples=200)
    assert lo == hi == 0.0
    # paired accuracy: rows of (labels, predictions) must stay together
    y_true = np.array([0, 1] * 50)
    y_pred = y_true.copy()
    y_pred[:20] = 1 - y_pred[:20]  # accuracy 0.8
    lo, hi = bootstrap_interval(lambda t, p: np.mean(t == p), y_true, y_pred, n_resamples=500)
    assert lo < 0.8 < hi
    assert lo > 0.68 and hi < 0.9


def test_bootstrap_accuracy_interval_close_to_wilson() -> None:
    correct = np.zeros(400, dtype=bool)
    correct[:300] = True
    lo, hi = bootstrap_interval(
        lambda c: c.mean(axis=1), correct, n_resamples=4000, vectorized=True
    )
    w_lo, w_hi = wilson_interval(300, 400)
    assert lo == pytest.approx(w_lo, abs=0.01)
    assert hi == pytest.approx(w_hi, abs=0.01)


def test_bootstrap_multidimensional_rows() -> None:
    x = np.random.default_rng(5).normal(size=(40, 3))
    lo, hi = bootstrap_interval(lambda a: a[:, 0].mean(), x, n_resamples=200)
    assert lo < x[:, 0].mean() < hi


def test_bca_matches_scipy_on_skewed_data() -> None:
    from scipy.stats import bootstrap

    x = np.random.default_rng(0).exponential(size=50)
    ours = bootstrap_mean_interval(x, n_resamples=20_000, method="bca")
    ref = bootstrap((x,), np.mean, n_resamples=20_000, method="BCa", random_state=1)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)
    # on right-skewed data BCa shifts the interval up relative to the percentile one
    pct = bootstrap_mean_interval(x, n_resamples=20_000)
    assert ours[0] > pct[0] and ours[1] > pct[1]


def test_bca_loop_equals_vectorized() -> None:
    x = np.random.default_rng(9).gamma(2.0, size=30)
    loop = bootstrap_interval(np.mean, x, n_resamples=400, method="bca", seed=3)
    vec = bootstrap_interval(
        lambda v: v.mean(axis=1), x, n_resamples=400, method="BCa", seed=3, vectorized=True
    )
    assert loop == pytest.approx(vec, rel=1e-9)


def test_bootstrap_drops_non_finite_resamples_and_fails_if_all_are() -> None:
    x = np.arange(20.0)

    def sometimes_nan(v: np.ndarray) -> float:
        return float("nan") if v[0] < 2 else float(v.mean())

    lo, hi = bootstrap_interval(sometimes_nan, x, n_resamples=300)
    assert np.isfinite(lo) and np.isfinite(hi)
    with pytest.raises(StatsError, match="not finite"):
        bootstrap_interval(lambda v: float("nan"), x, n_resamples=20)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {}, "at least one data array"),
        (([1.0, 2.0], [1.0]), {}, "same number of rows"),
        (([],), {}, "empty"),
        ((3.0,), {}, "scalar"),
        (([1.0, 2.0],), {"n_resamples": 0}, "at least 1"),
        (([1.0, 2.0],), {"confidence": 1.5}, "between 0 and 1"),
        (([1.0, 2.0],), {"method": "basic"}, "percentile"),
    ],
)
def test_bootstrap_validation(args, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatsError, match=match):
        bootstrap_interval(np.mean, *args, **kwargs)


def test_vectorized_statistic_with_wrong_shape_is_reported() -> None:
    with pytest.raises(StatsError, match="one value per resample"):
        bootstrap_interval(np.mean, np.arange(10.0), n_resamples=10, vectorized=True)


def test_bootstrap_large_sample_is_batched_and_fast() -> None:
    # 50k rows x 200 resamples = 10M indices: must be split into batches, not one huge matrix
    x = np.random.default_rng(0).normal(size=50_000)
    lo, hi = bootstrap_mean_interval(x, n_resamples=200)
    assert lo < x.mean() < hi
    assert hi - lo < 0.03


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=2, max_size=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_bootstrap_mean_interval_within_sample_range(values: list[float], seed: int) -> None:
    lo, hi = bootstrap_mean_interval(values, n_resamples=100, seed=seed)
    assert min(values) - 1e-9 <= lo <= hi <= max(values) + 1e-9


# --------------------------------------------------------------------------------------------
# mean_interval and percentiles


def test_mean_interval_known_value() -> None:
    # mean 2, s 1, n 3, t_{0.975, 2} = 4.302653
    lo, hi = mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half), abs=1e-9)
    assert mean_interval([5.0, 5.0, 5.0]) == (5.0, 5.0)


def test_mean_interval_validation() -> None:
    with pytest.raises(StatsError, match="at least 2"):
        mean_interval([1.0])
    with pytest.raises(StatsError, match="finite"):
        mean_interval([1.0, float("nan")])
    with pytest.raises(StatsError, match="between 0 and 1"):
        mean_interval([1.0, 2.0], confidence=-0.1)


def test_percentiles_latency() -> None:
    latencies = np.arange(1, 101, dtype=float)  # 1..100 ms
    p = percentiles(latencies)
    assert list(p) == [50, 90, 99]
    assert p[50] == pytest.approx(50.5)
    assert p[90] == pytest.approx(90.1)
    assert p[99] == pytest.approx(99.01)
    assert percentiles([3.0], qs=(0, 100)) == {0: 3.0, 100: 3.0}


@pytest.mark.parametrize(
    ("values", "qs", "match"),
    [
        ([], (50,), "at least 1"),
        ([1.0], (101,), r"\[0, 100\]"),
        ([1.0], (-1,), r"\[0, 100\]"),
        ([float("inf")], (50,), "finite"),
        (["a"], (50,), "numbers"),
    ],
)
def test_percentiles_validation(values, qs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatsError, match=match):
        percentiles(values, qs)


# --------------------------------------------------------------------------------------------
# Leveugle sample size


def test_leveugle_large_population_limits() -> None:
    # N -> inf: n = t^2 p (1-p) / e^2; 1.96^2 / 4 / 0.05^2 = 384.15 -> 385
    assert leveugle_sample_size(10**12) == 385
    assert leveugle_sample_size(math.inf) == 385
    # 99 %, 1 %: 2.5758^2 / 4 / 1e-4 = 16587.2 -> 16588
    assert leveugle_sample_size(10**12, margin=0.01, confidence=0.99) == 16588
    # with N = 1e9 the finite-population correction takes off the fraction: 16586.97 -> 16587
    assert leveugle_sample_size(10**9, margin=0.01, confidence=0.99) == 16587


def test_leveugle_matches_hand_computation_for_finite_populations() -> None:
    t = 1.959963984540054
    for big_n, e, p in [(1000, 0.05, 0.5), (21_840 * 32, 0.01, 0.5), (500, 0.03, 0.1)]:
        n = big_n / (1 + e * e * (big_n - 1) / (t * t * p * (1 - p)))
        assert leveugle_sample_size(big_n, e, 0.95, p) == math.ceil(n)
    assert leveugle_sample_size(1000) == 278  # 1000 / (1 + 999 / 384.146) = 277.7
    # a LeNet's 21,840 weights x 32 bits at 1 % / 99 %: about 16,200 of 698,880 faults
    assert 16_000 < leveugle_sample_size(21_840 * 32, 0.01, 0.99) < 16_588


def test_leveugle_small_populations_and_monotonicity() -> None:
    assert leveugle_sample_size(1) == 1
    assert leveugle_sample_size(10) == 10  # the whole population, rounded up to N
    sizes = [leveugle_sample_size(n) for n in (10, 100, 1000, 10_000, 10**6)]
    assert sizes == sorted(sizes)
    assert leveugle_sample_size(10**6, p=0.1) < leveugle_sample_size(10**6, p=0.5)
    assert leveugle_sample_size(10**6, margin=0.01) > leveugle_sample_size(10**6, margin=0.05)


@settings(max_examples=100, deadline=None)
@given(
    population=st.integers(min_value=1, max_value=10**15),
    margin=st.floats(min_value=1e-3, max_value=0.5),
    confidence=st.floats(min_value=0.5, max_value=0.9999),
)
def test_leveugle_bounded_by_population_and_infinite_limit(
    population: int, margin: float, confidence: float
) -> None:
    n = leveugle_sample_size(population, margin, confidence)
    assert 1 <= n <= population
    assert n <= leveugle_sample_size(math.inf, margin, confidence)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population": 0}, "at least 1"),
        ({"population": -5}, "non-negative"),
        ({"population": 10.5}, "integer"),
        ({"population": 100, "margin": 0}, "margin"),
        ({"population": 100, "margin": 1.0}, "margin"),
        ({"population": 100, "confidence": 1.0}, "confidence"),
        ({"population": 100, "p": 0.0}, "failure proportion"),
        ({"population": 100, "p": 1.0}, "failure proportion"),
    ],
)
def test_leveugle_validation(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatsError, match=match):
        leveugle_sample_size(**kwargs)


def test_docstring_examples_run() -> None:
    import doctest

    import trustbench.stats

    result = doctest.testmod(trustbench.stats, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 7
    assert result.failed == 0
