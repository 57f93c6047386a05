"""Confidence intervals and sample sizes shared by every pillar.

What lives here:

- intervals for a proportion (an accuracy, an SDC rate, a success rate): :func:`wilson_interval`,
  :func:`clopper_pearson_interval` (exact), and :func:`proportion`, which bundles the point
  estimate, its interval and its sample size into an :class:`Estimate`;
- the difference of two proportions measured on the same units (paired), with Newcombe's
  interval: :func:`paired_difference`;
- bootstrap intervals for any statistic of one or more paired arrays: :func:`bootstrap_interval`
  (percentile or BCa) and :func:`bootstrap_mean_interval`;
- the Student t interval of a mean, :func:`mean_interval`, and latency :func:`percentiles`;
- the statistical fault-injection sample size of Leveugle et al. (DATE 2009),
  :func:`leveugle_sample_size`.

Everything is plain NumPy / the standard library; SciPy is imported inside the two functions that
need a distribution quantile it alone provides (Clopper-Pearson, Student t), so ``import
trustbench.stats`` stays cheap. Bad input raises :class:`StatsError`, a :class:`BenchError` that is
also a :class:`ValueError`.

One concern earns this module its length: the statistics every pillar's numbers rest on, in
one place so that each interval is implemented (and checked against a reference) once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from trustbench.errors import BenchError

__all__ = [
    "Estimate",
    "StatsError",
    "bootstrap_interval",
    "bootstrap_mean_interval",
    "clopper_pearson_interval",
    "leveugle_sample_size",
    "mean_interval",
    "paired_difference",
    "percentiles",
    "proportion",
    "wilson_interval",
]

#: Accepted spellings of the proportion interval methods, mapped to the canonical name.
_PROPORTION_METHODS = {
    "wilson": "wilson",
    "clopper-pearson": "clopper-pearson",
    "clopper_pearson": "clopper-pearson",
    "exact": "clopper-pearson",
}
_BOOTSTRAP_METHODS = ("percentile", "bca")

#: Most index entries one bootstrap batch may hold (rows x resamples), to bound memory.
_MAX_BATCH_ENTRIES = 4_000_000


class StatsError(BenchError, ValueError):
    """An argument to a statistics function that is not accepted (a count, a confidence level,
    a margin, an empty sample, ...)."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval and sample size.

    Attributes
    ----------
    value : float
        The point estimate (for a proportion, ``k / n``).
    ci : tuple[float, float]
        The confidence interval ``(lo, hi)``.
    n : int
        The sample size behind the estimate.
    method : str
        How the interval was computed (``"wilson"``, ``"clopper-pearson"``, ...).
    confidence : float
        The confidence level of ``ci``.
    k : int or None
        For a proportion, the count of successes (``value == k / n``); None otherwise.

    Every pillar reports "a value with an interval" as this one type: a fault campaign's SDC
    rate, a robust accuracy, a per-group fairness rate.
    """

    value: float
    ci: tuple[float, float]
    n: int
    method: str
    confidence: float = 0.95
    k: int | None = None

    @property
    def half_width(self) -> float:
        """Half the width of the interval, ``(hi - lo) / 2``."""
        return (self.ci[1] - self.ci[0]) / 2.0


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_confidence(confidence: float) -> float:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not 0.0 < float(confidence) < 1.0
    ):
        raise StatsError(
            f"confidence must be a number strictly between 0 and 1 (e.g. 0.95 for a 95 % "
            f"interval); got {confidence!r}."
        )
    return float(confidence)


def _as_count(value: Any, what: str) -> int:
    """An integer count: ints, NumPy integers and integral floats are accepted."""
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    )
    if isinstance(value, bool) or not integral:
        raise StatsError(f"{what} must be a non-negative integer count; got {value!r}.")
    out = int(value)
    if out < 0:
        raise StatsError(f"{what} must be a non-negative integer count; got {out}.")
    return out


def _check_counts(k: Any, n: Any) -> tuple[int, int]:
    n_ = _as_count(n, "n (the number of trials)")
    k_ = _as_count(k, "k (the number of successes)")
    if k_ > n_:
        raise StatsError(
            f"k (successes) cannot exceed n (trials); got k={k_}, n={n_}. Pass the number of "
            f"successes and the number of trials, 0 <= k <= n."
        )
    return k_, n_


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (1.959964 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


# --------------------------------------------------------------------------------------------
# proportions


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22(158). Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps close to
    its nominal coverage for small ``n`` and for proportions near 0 or 1.

    Parameters
    ----------
    k : int
        Number of successes, ``0 <= k <= n``.
    n : int
        Number of trials, ``n >= 0``. With ``n == 0`` nothing is known: ``(0.0, 1.0)``.
    confidence : float
        Confidence level in (0, 1).

    Returns
    -------
    tuple[float, float]
        ``(lo, hi)`` with ``0 <= lo <= k/n <= hi <= 1``; ``lo`` is exactly 0 when ``k == 0`` and
        ``hi`` exactly 1 when ``k == n``.

    Examples
    --------
    >>> lo, hi = wilson_interval(81, 263)
    >>> round(lo, 4), round(hi, 4)
    (0.2553, 0.3662)
    """
    k, n = _check_counts(k, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    z2 = z * z
    p = k / n
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo = 0.0 if k == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if k == n else min(1.0, max(p, centre + half))
    return lo, hi


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion ``k / n``.

    Clopper & Pearson (1934), "The use of confidence or fiducial limits illustrated in the case
    of the binomial", Biometrika 26(4). Its coverage is never below the nominal level (it is
    conservative); use it where a guarantee matters more than width, e.g. an SDC rate of 0/n.

    Parameters
    ----------
    k : int
        Number of successes, ``0 <= k <= n``.
    n : int
        Number of trials, ``n >= 0``. With ``n == 0`` nothing is known: ``(0.0, 1.0)``.
    confidence : float
        Confidence level in (0, 1).

    Returns
    -------
    tuple[float, float]
        ``(lo, hi)``; ``lo == 0`` when ``k == 0`` and ``hi == 1`` when ``k == n``.

    Examples
    --------
    >>> lo, hi = clopper_pearson_interval(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    k, n = _check_counts(k, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta

    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2.0, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return lo, hi


def proportion(k: int, n: int, confidence: float = 0.95, method: str = "wilson") -> Estimate:
    """A proportion ``k / n`` with its confidence interval, ready for ``record_metric``.

    Parameters
    ----------
    k : int
        Number of successes, ``0 <= k <= n``.
    n : int
        Number of trials, ``n >= 1``.
    confidence : float
        Confidence level in (0, 1).
    method : str
        ``"wilson"`` (default) or ``"clopper-pearson"`` (also ``"clopper_pearson"``,
        ``"exact"``).

    Returns
    -------
    Estimate
        ``value = k / n``, ``ci``, ``n``, ``method`` (canonical name), ``confidence``, ``k``.

    Examples
    --------
    >>> est = proportion(90, 100)
    >>> est.value, est.n, est.method
    (0.9, 100, 'wilson')
    """
    k, n = _check_counts(k, n)
    if n == 0:
        raise StatsError(
            "a proportion needs at least one trial; got n=0. Measure on a non-empty sample "
            "(the interval functions alone accept n=0 and return (0, 1))."
        )
    canonical = _PROPORTION_METHODS.get(str(method).lower())
    if canonical is None:
        raise StatsError(
            f"unknown proportion interval method {method!r}; accepted: "
            f"{', '.join(sorted(_PROPORTION_METHODS))}."
        )
    fn = wilson_interval if canonical == "wilson" else clopper_pearson_interval
    ci = fn(k, n, confidence)
    return Estimate(value=k / n, ci=ci, n=n, method=canonical, confidence=float(confidence), k=k)


def paired_difference(both: int, first_only: int, second_only: int, neither: int,
                      confidence: float = 0.95) -> Estimate:
    """Difference ``p1 - p2`` of two proportions measured on the same units, with Newcombe's
    square-and-add interval for paired data.

    Each unit (a fault run with and without a protection, an input classified before and after a
    change) is a success or not under both conditions: ``both`` units succeed under both,
    ``first_only`` under the first alone, ``second_only`` under the second alone, ``neither``
    under none. ``p1 = (both + first_only) / n`` and ``p2 = (both + second_only) / n``.

    Newcombe (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", *Statistics in Medicine* 17, 2635-2650, method 10: the
    Wilson intervals of ``p1`` and ``p2`` combined with the estimated correlation ``phi`` of the
    two (continuity-corrected as in the paper). Because the same units are compared, the
    interval is much narrower than the one for two independent samples when the outcomes agree
    on most units; with ``phi = 0`` it equals the independent-samples hybrid score interval.

    Returns
    -------
    Estimate
        ``value = p1 - p2``, ``ci`` within ``[-1, 1]``, ``n`` (units), method
        ``"newcombe-paired"``.
    """
    a = _as_count(both, "both (units counted under both conditions)")
    b = _as_count(first_only, "first_only (units counted under the first condition only)")
    c = _as_count(second_only, "second_only (units counted under the second condition only)")
    d = _as_count(neither, "neither (units counted under neither condition)")
    confidence = _check_confidence(confidence)
    n = a + b + c + d
    if n == 0:
        raise StatsError(
            "a paired difference needs at least one unit; got four zero counts. Pass the counts "
            "of units counted under both conditions, the first only, the second only, neither."
        )
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    dl1, du2 = p1 - l1, u2 - p2
    du1, dl2 = u1 - p1, p2 - l2
    lo = (p1 - p2) - math.sqrt(max(0.0, dl1 * dl1 + du2 * du2 - 2 * phi * dl1 * du2))
    hi = (p1 - p2) + math.sqrt(max(0.0, dl2 * dl2 + du1 * du1 - 2 * phi * dl2 * du1))
    return Estimate(value=p1 - p2, ci=(max(-1.0, lo), min(1.0, hi)), n=n,
                    method="newcombe-paired", confidence=confidence)


# --------------------------------------------------------------------------------------------
# bootstrap


def _as_rows(arrays: Sequence[Any]) -> tuple[list[np.ndarray], int]:
    if not arrays:
        raise StatsError(
            "bootstrap_interval needs at least one data array after the statistic, e.g. "
            "bootstrap_interval(np.mean, values)."
        )
    arrs = [np.asarray(a) for a in arrays]
    for i, a in enumerate(arrs):
        if a.ndim == 0:
            raise StatsError(
                f"data array {i} is a scalar; bootstrap_interval resamples the rows (first axis) "
                f"of 1-D or higher arrays."
            )
    lengths = {a.shape[0] for a in arrs}
    if len(lengths) != 1:
        raise StatsError(
            f"all data arrays must have the same number of rows (they are resampled jointly, "
            f"row i of each array together); got lengths {[a.shape[0] for a in arrs]}."
        )
    n = lengths.pop()
    if n == 0:
        raise StatsError("cannot bootstrap an empty sample: the data arrays have no rows.")
    return arrs, n


def _evaluate(
    statistic: Callable[..., Any],
    arrs: list[np.ndarray],
    index_batches: Iterable[np.ndarray],
    vectorized: bool,
) -> np.ndarray:
    """Values of ``statistic`` on each row of index matrices ``(m, size)``."""
    out: list[np.ndarray] = []
    for idx in index_batches:
        if vectorized:
            vals = np.asarray(statistic(*(a[idx] for a in arrs)), dtype=float).reshape(-1)
            if vals.shape[0] != idx.shape[0]:
                raise StatsError(
                    f"a vectorized statistic must return one value per resample (shape "
                    f"({idx.shape[0]},)) when given arrays of shape (resamples, rows, ...); got "
                    f"{vals.shape[0]} values. Reduce over axis 1 (e.g. x.mean(axis=1)) or pass "
                    f"vectorized=False."
                )
            out.append(vals)
        else:
            out.append(
                np.fromiter(
                    (float(statistic(*(a[row] for a in arrs))) for row in idx),
                    dtype=float,
                    count=idx.shape[0],
                )
            )
    return np.concatenate(out) if out else np.empty(0)


def _batch_size(rows: int) -> int:
    return max(1, _MAX_BATCH_ENTRIES // max(rows, 1))


def _resample_batches(rng: np.random.Generator, n: int, n_resamples: int) -> Iterable[np.ndarray]:
    step = _batch_size(n)
    for start in range(0, n_resamples, step):
        m = min(step, n_resamples - start)
        yield rng.integers(0, n, size=(m, n))


def _jackknife_batches(n: int) -> Iterable[np.ndarray]:
    step = _batch_size(n - 1)
    base = np.arange(n - 1)
    for start in range(0, n, step):
        left_out = np.arange(start, min(n, start + step))[:, None]
        # row i holds 0..n-1 without i: shift every index at or after i up by one
        yield base[None, :] + (base[None, :] >= left_out)


def bootstrap_interval(
    statistic: Callable[..., Any],
    *arrays: Any,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    method: str = "percentile",
    vectorized: bool = False,
) -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic(*arrays)``.

    Rows (the first axis) of all arrays are resampled *jointly* with replacement: resample ``b``
    takes the same row indices from every array, so paired data (labels and predictions, values
    and group labels) stay paired. Efron & Tibshirani (1993), *An Introduction to the
    Bootstrap*, ch. 13 (percentile) and 14 (BCa).

    Parameters
    ----------
    statistic : callable
        ``statistic(*arrays) -> float``. With ``vectorized=True`` it is called with arrays of
        shape ``(resamples, rows, ...)`` and must return one value per resample (reduce over
        axis 1), which is much faster for NumPy reductions.
    *arrays : array_like
        One or more arrays with the same number of rows.
    n_resamples : int
        Number of bootstrap resamples (>= 1; 1000 for a rough 95 % interval, 10000 for
        publication).
    confidence : float
        Confidence level in (0, 1).
    seed : int or None
        Seed of the NumPy ``Generator``; the same seed gives the same interval.
    method : str
        ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated; costs one
        extra evaluation per row for the jackknife).
    vectorized : bool
        Whether ``statistic`` accepts batched resamples (see above).

    Returns
    -------
    tuple[float, float]
        ``(lo, hi)``. Resamples on which the statistic is not finite (e.g. an empty group) are
        left out; if none is finite, :class:`StatsError` is raised.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(100.0)
    >>> lo, hi = bootstrap_interval(np.mean, x, n_resamples=500, seed=1)
    >>> lo < 49.5 < hi
    True
    """
    confidence = _check_confidence(confidence)
    n_resamples = _as_count(n_resamples, "n_resamples")
    if n_resamples < 1:
        raise StatsError("n_resamples must be at least 1 (1000 or more is usual).")
    method_ = str(method).lower()
    if method_ not in _BOOTSTRAP_METHODS:
        raise StatsError(
            f"unknown bootstrap method {method!r}; accepted: {', '.join(_BOOTSTRAP_METHODS)}."
        )
    arrs, n = _as_rows(arrays)
    rng = np.random.default_rng(seed)
    boot = _evaluate(statistic, arrs, _resample_batches(rng, n, n_resamples), vectorized)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        raise StatsError(
            "the statistic was not finite (NaN or inf) on any bootstrap resample; check that it "
            "is defined on a resample of the data (e.g. that no group can come out empty)."
        )
    alpha = 1.0 - confidence
    q_lo, q_hi = alpha / 2.0, 1.0 - alpha / 2.0
    if method_ == "bca":
        q_lo, q_hi = _bca_levels(statistic, arrs, n, boot, q_lo, q_hi, vectorized)
    lo, hi = np.quantile(boot, [q_lo, q_hi])
    return float(lo), float(hi)


def _bca_levels(
    statistic: Callable[..., Any],
    arrs: list[np.ndarray],
    n: int,
    boot: np.ndarray,
    q_lo: float,
    q_hi: float,
    vectorized: bool,
) -> tuple[float, float]:
    """The BCa-adjusted quantile levels (Efron 1987, JASA 82(397))."""
    if vectorized:
        theta = float(np.asarray(statistic(*(a[None, ...] for a in arrs))).reshape(-1)[0])
    else:
        theta = float(statistic(*arrs))
    nd = NormalDist()
    # bias correction: how far the bootstrap distribution sits from the estimate (ties half)
    frac = (np.count_nonzero(boot < theta) + 0.5 * np.count_nonzero(boot == theta)) / boot.size
    if not 0.0 < frac < 1.0 or n < 3:
        return q_lo, q_hi  # degenerate: BCa undefined, fall back to the percentile levels
    z0 = nd.inv_cdf(frac)
    jack = _evaluate(statistic, arrs, _jackknife_batches(n), vectorized)
    jack = jack[np.isfinite(jack)]
    d = jack.mean() - jack if jack.size else np.zeros(1)
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    accel = float(np.sum(d**3)) / denom if denom > 0 else 0.0

    def level(q: float) -> float:
        zq = nd.inv_cdf(q)
        return nd.cdf(z0 + (z0 + zq) / (1.0 - accel * (z0 + zq)))

    return level(q_lo), level(q_hi)


def bootstrap_mean_interval(
    values: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of ``values`` (vectorised).

    Parameters
    ----------
    values : array_like
        1-D sample.
    n_resamples, confidence, seed, method
        As in :func:`bootstrap_interval`.

    Returns
    -------
    tuple[float, float]
        ``(lo, hi)``.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    return bootstrap_interval(
        _mean_axis1,
        x,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        method=method,
        vectorized=True,
    )


def _mean_axis1(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


# --------------------------------------------------------------------------------------------
# means and percentiles


def _finite_sample(values: Any, what: str, minimum: int) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise StatsError(
            f"{what} must be a sequence of numbers; got {type(values).__name__}."
        ) from exc
    if x.size < minimum:
        raise StatsError(f"{what} needs at least {minimum} value(s); got {x.size}.")
    if not np.all(np.isfinite(x)):
        raise StatsError(f"{what} must be finite numbers; got NaN or inf among {x.size} values.")
    return x


def mean_interval(values: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Student t confidence interval of the mean of ``values``.

    Parameters
    ----------
    values : array_like
        At least two finite numbers (independent measurements, e.g. per-seed accuracies).
    confidence : float
        Confidence level in (0, 1).

    Returns
    -------
    tuple[float, float]
        ``mean -/+ t_{1-alpha/2, n-1} * s / sqrt(n)``; ``(mean, mean)`` for a constant sample.

    Examples
    --------
    >>> lo, hi = mean_interval([1.0, 2.0, 3.0])
    >>> round(lo, 4), round(hi, 4)
    (-0.4841, 4.4841)
    """
    confidence = _check_confidence(confidence)
    x = _finite_sample(values, "mean_interval", 2)
    m = float(x.mean())
    s = float(x.std(ddof=1))
    if s == 0.0:
        return m, m
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2.0, x.size - 1)) * s / math.sqrt(x.size)
    return m - half, m + half


def percentiles(values: Any, qs: Sequence[float] = (50, 90, 99)) -> dict[float, float]:
    """Percentiles of a sample, e.g. latency p50 / p90 / p99.

    Parameters
    ----------
    values : array_like
        Finite numbers (at least one).
    qs : sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    dict[float, float]
        ``{q: value}`` for each ``q`` in ``qs`` (linear interpolation between order statistics,
        NumPy's default).

    Examples
    --------
    >>> percentiles([1, 2, 3, 4, 5], qs=(50, 100))
    {50: 3.0, 100: 5.0}
    """
    x = _finite_sample(values, "percentiles", 1)
    qs_list = list(qs)
    for q in qs_list:
        if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 <= q <= 100:
            raise StatsError(f"percentiles must be numbers in [0, 100]; got {q!r} in {qs!r}.")
    vals = np.percentile(x, qs_list) if qs_list else []
    return {q: float(v) for q, v in zip(qs_list, vals)}


# --------------------------------------------------------------------------------------------
# sample size for statistical fault injection


def leveugle_sample_size(
    population: int | float, margin: float = 0.05, confidence: float = 0.95, p: float = 0.5
) -> int:
    """Number of faults to inject for a given error margin and confidence.

    Leveugle, Calvez, Maistri & Vanhauwaert (2009), "Statistical fault injection: quantified
    error and confidence", DATE 2009, eq. (4)::

        n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))

    with ``N`` the size of the fault population (e.g. weights x bits), ``e`` the margin of error,
    ``t`` the two-sided normal quantile for the confidence, and ``p`` the expected proportion of
    faults that cause a failure (``p = 0.5`` is the worst case, the safe choice when unknown).

    Parameters
    ----------
    population : int or float
        Size ``N`` of the fault population, ``>= 1``; ``math.inf`` for an unbounded one.
    margin : float
        Margin of error ``e`` in (0, 1), e.g. 0.01 for +/- 1 percentage point.
    confidence : float
        Confidence level in (0, 1).
    p : float
        Expected failure proportion in (0, 1).

    Returns
    -------
    int
        ``n`` rounded up, at least 1 and at most ``N``.

    Examples
    --------
    >>> leveugle_sample_size(10**12)
    385
    >>> leveugle_sample_size(10**12, margin=0.01, confidence=0.99)
    16588
    """
    confidence = _check_confidence(confidence)
    for name, value in (("margin", margin), ("p", p)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise StatsError(
                f"{name} must be a number strictly between 0 and 1; got {value!r}."
                + (
                    " (p is the expected failure proportion; 0.5 is the safe worst case.)"
                    if name == "p"
                    else " (e.g. 0.05 for a +/- 5 % margin of error.)"
                )
            )
    if isinstance(population, float) and math.isinf(population) and population > 0:
        big_n = math.inf
    else:
        big_n = _as_count(population, "population (the number of possible faults)")
        if big_n < 1:
            raise StatsError("population must be at least 1 (the number of possible faults).")
    t = _z(confidence)
    infinite = t * t * p * (1.0 - p) / (margin * margin)  # the N -> inf limit
    n = infinite if math.isinf(big_n) else big_n / (1.0 + (big_n - 1) / infinite)
    # a relative guard so that an exact integer is not bumped up by rounding error
    out = max(1, math.ceil(n * (1.0 - 1e-12)))
    return out if math.isinf(big_n) else min(int(big_n), out)
