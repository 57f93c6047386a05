"""Bootstrap resampling for group metrics: fairlearn's resamples, counted in one pass.

fairlearn's ``MetricFrame(n_boot=B, ci_quantiles=q, random_state=seed)`` draws ``B`` row
resamples and recomputes every metric with pandas ``groupby`` for each one: about 50 ms per
resample for six metrics and one grouping on 1,300 rows, so 2,000 resamples of several groupings
take minutes. This module draws *the same resamples* (the same seeds, the same
``RandomState.choice`` calls as fairlearn's ``generate_bootstrap_samples``) and turns them into
confusion counts per group with one ``bincount`` per chunk of resamples, from which every rate is
a division. Percentiles use ``numpy.nanquantile`` with fairlearn's (linear) interpolation, so the
intervals equal ``MetricFrame.by_group_ci`` (tested) while costing milliseconds.

One deliberate difference: a rate whose denominator is zero in a resample (no positive labels
in a group, say) is *undefined* (NaN, left out of the percentiles) here, where scikit-learn's
confusion matrix, and so fairlearn, report 0.

:func:`percentile_estimate` bundles a point estimate with its percentile interval into the
one :class:`~trustbench.stats.Estimate` type every pillar uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from trustbench.stats import Estimate

#: Most row indices held in memory at once (resamples x rows).
_CHUNK_ELEMENTS = 4_000_000
#: ``Estimate.method`` of the percentile bootstrap intervals of this package.
PERCENTILE_BOOTSTRAP = "percentile bootstrap"
#: ``Estimate.method`` of a difference bootstrapped on the same resamples before and after.
PAIRED_PERCENTILE_BOOTSTRAP = "paired percentile bootstrap"


def resample_seeds(n_boot: int, seed: int) -> np.ndarray:
    """Per-resample seeds exactly as fairlearn derives them from an integer ``random_state``."""
    import numpy as np

    generator = np.random.default_rng(seed=int(seed))
    return generator.integers(
        low=0, high=np.iinfo(np.uint32).max, size=int(n_boot), dtype=np.uint32
    )


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of the bootstrap resamples, in chunks of shape ``(b, n)``.

    Resample ``i`` is ``RandomState(seeds[i]).choice(n, size=n, replace=True)``: what
    ``pandas.DataFrame.sample(frac=1, replace=True, random_state=seeds[i])`` draws inside
    fairlearn.
    """
    import numpy as np

    seeds = resample_seeds(n_boot, seed)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, len(seeds), step):
        chunk = seeds[start : start + step]
        yield np.stack(
            [np.random.RandomState(s).choice(n, size=n, replace=True) for s in chunk]
        )


def bootstrap_cell_counts(
    cells: Sequence[np.ndarray], n_cells: Sequence[int], n_boot: int, seed: int
) -> list[np.ndarray]:
    """Counts of each cell in each resample, for several cell labelings of the same rows.

    Parameters
    ----------
    cells
        One ``int`` array per labeling, a cell id in ``[0, n_cells[k])`` for every row (e.g.
        ``group * 4 + y_true * 2 + y_pred``). All share the same resamples.
    n_cells
        Number of cells of each labeling.
    n_boot, seed
        Number of resamples and the integer seed (fairlearn's ``random_state``).

    Returns
    -------
    list of numpy.ndarray
        ``(n_boot, n_cells[k])`` int64 counts per labeling.
    """
    import numpy as np

    if not cells:
        return []
    n = len(cells[0])
    out = [np.empty((int(n_boot), int(c)), dtype=np.int64) for c in n_cells]
    done = 0
    for idx in resample_indices(n, n_boot, seed):
        b = idx.shape[0]
        offsets = np.arange(b, dtype=np.int64)[:, None]
        for k, (cell, c) in enumerate(zip(cells, n_cells)):
            flat = (cell[idx] + offsets * c).ravel()
            out[k][done : done + b] = np.bincount(flat, minlength=b * c).reshape(b, c)
        done += b
    return out


def percentile_interval(
    samples: np.ndarray, confidence: float = 0.95
) -> list[tuple[float, float] | None]:
    """Percentile interval of each column of ``samples`` (``(n_boot, k)``), NaNs left out.

    A column with no finite sample gets None. Interpolation is numpy's default (linear),
    as in fairlearn's ``ci_quantiles``.
    """
    import numpy as np

    samples = np.asarray(samples, dtype=float)
    if samples.ndim == 1:
        samples = samples[:, None]
    alpha = (1.0 - confidence) / 2.0
    result: list[tuple[float, float] | None] = []
    for j in range(samples.shape[1]):
        col = samples[:, j]
        col = col[np.isfinite(col)]
        if col.size == 0:
            result.append(None)
            continue
        lo, hi = np.quantile(col, [alpha, 1.0 - alpha])
        result.append((float(lo), float(hi)))
    return result


def percentile_estimate(
    value: float | None,
    ci: tuple[float, float] | None,
    n: int,
    confidence: float,
    method: str = PERCENTILE_BOOTSTRAP,
) -> Estimate | None:
    """``value`` with its interval ``ci`` (from :func:`percentile_interval`) as an Estimate.

    None where there is no interval: no resamples (``n_boot=0``), an undefined value, or a
    statistic undefined in every resample. The numbers are stored as they are.

    Parameters
    ----------
    value
        The point estimate.
    ci
        Its percentile interval.
    n
        Rows behind the value.
    confidence
        The interval's coverage.
    method
        :data:`PERCENTILE_BOOTSTRAP` or :data:`PAIRED_PERCENTILE_BOOTSTRAP`.
    """
    from trustbench.stats import Estimate

    if value is None or ci is None:
        return None
    return Estimate(value=value, ci=ci, n=int(n), method=method, confidence=float(confidence))


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (undefined, never a division by zero)."""
    import numpy as np

    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def bootstrap_group_sums(
    codes: np.ndarray, values: np.ndarray, n_groups: int, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and sums of ``values`` per group in each resample (fairlearn's resamples).

    Returns
    -------
    counts, sums
        ``(n_boot, n_groups)`` arrays; a group mean is ``sums / counts``.
    """
    import numpy as np

    n = len(codes)
    counts = np.empty((int(n_boot), int(n_groups)), dtype=np.int64)
    sums = np.empty((int(n_boot), int(n_groups)), dtype=float)
    done = 0
    for idx in resample_indices(n, n_boot, seed):
        b = idx.shape[0]
        flat = (codes[idx] + np.arange(b, dtype=np.int64)[:, None] * n_groups).ravel()
        size = b * n_groups
        counts[done : done + b] = np.bincount(flat, minlength=size).reshape(b, n_groups)
        sums[done : done + b] = np.bincount(
            flat, weights=values[idx].ravel(), minlength=size
        ).reshape(b, n_groups)
        done += b
    return counts, sums
