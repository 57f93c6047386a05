"""Groups from sensitive columns: each feature alone and their intersections.

:func:`build_groups` turns a table of sensitive attributes (one row per test sample) into
:class:`Grouping` objects, one per *grouping* (``colour``, ``sex``, ``colour-sex``, ...). Each
grouping labels every row with its group. Missing values are a group of their own,
``"(missing)"``, counted and reported, never dropped. Groups smaller than the minimum group size
are *flagged* (:meth:`Grouping.small_groups`); the metrics keep them and mark what they touch as
unreliable.

A sensitive column that does not exist, that has a single group, or so many distinct values
that it must be a continuous number (bin it first) is a :class:`SensitiveColumnError`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbench.fairness.errors import SensitiveColumnError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Label of the group of rows whose sensitive value is missing (NaN/None).
MISSING_GROUP = "(missing)"
#: Separator of the parts of an intersectional group label: ``"Black & Female"``.
INTERSECTION_SEP = " & "
#: Which intersections :func:`build_groups` forms.
INTERSECTION_MODES = ("none", "full", "all")
#: A column with more distinct values than this is treated as continuous (an error).
DEFAULT_MAX_GROUPS = 100


@dataclass(frozen=True)
class Grouping:
    """One way of splitting the rows into groups (one feature, or an intersection of several).

    Attributes
    ----------
    key
        Name safe for metric names: the features joined by ``-`` (``"colour-sex"``).
    features
        The sensitive columns this grouping is made of.
    groups
        Group labels: a categorical column's category order, else sorted, ``"(missing)"``
        last; intersections read ``"Black & Female"`` and sort feature by feature.
    codes
        ``int64`` array, one per row: the index of the row's group in ``groups``.
    sizes
        Rows per group.
    """

    key: str
    features: tuple[str, ...]
    groups: tuple[str, ...]
    codes: np.ndarray
    sizes: dict[str, int]

    @property
    def is_intersection(self) -> bool:
        return len(self.features) > 1

    @property
    def labels(self) -> np.ndarray:
        """Group label of every row (object array of str)."""
        import numpy as np

        return np.asarray(self.groups, dtype=object)[self.codes]

    def small_groups(self, min_group_size: int) -> list[str]:
        """Groups with fewer than ``min_group_size`` rows (sorted by label)."""
        return [g for g in self.groups if self.sizes[g] < min_group_size]


@dataclass(frozen=True)
class SensitiveGroups:
    """All groupings of one table of sensitive attributes.

    Attributes
    ----------
    features
        The sensitive columns used, in the order given.
    frame
        The columns as string labels, missing values replaced by ``"(missing)"``.
    groupings
        Each feature alone first, then the intersections.
    missing
        Missing values per column (0 where none); their rows form the ``"(missing)"`` group.
    min_group_size
        Groups smaller than this are flagged and what they touch is marked unreliable.
    """

    features: tuple[str, ...]
    frame: pd.DataFrame
    groupings: tuple[Grouping, ...]
    missing: dict[str, int]
    min_group_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def single(self) -> tuple[Grouping, ...]:
        """The groupings made of one feature each."""
        return tuple(g for g in self.groupings if not g.is_intersection)

    def grouping(self, key: str) -> Grouping:
        for g in self.groupings:
            if g.key == key:
                return g
        raise SensitiveColumnError(
            f"no grouping {key!r}; the groupings are: {', '.join(g.key for g in self.groupings)}"
        )

    def small_groups(self) -> list[tuple[str, str, int]]:
        """``(grouping key, group, size)`` of every group below the minimum size."""
        return [
            (g.key, grp, g.sizes[grp])
            for g in self.groupings
            for grp in g.small_groups(self.min_group_size)
        ]


def metric_key(features: Sequence[str]) -> str:
    """The name of a grouping as it appears in metric names: ``colour-sex``."""
    parts = [re.sub(r"[^A-Za-z0-9_.]+", "_", str(f)).strip("_") or "feature" for f in features]
    return "-".join(parts)


def as_frame(sensitive: Any) -> pd.DataFrame:
    """Accept a DataFrame, a named Series or a mapping of column -> values; return a DataFrame.

    Raises
    ------
    SensitiveColumnError
        For anything else, or a table with no columns or no rows.
    """
    import numpy as np
    import pandas as pd

    if isinstance(sensitive, pd.DataFrame):
        frame = sensitive
    elif isinstance(sensitive, pd.Series):
        frame = sensitive.to_frame(name=sensitive.name if sensitive.name is not None else "group")
    elif isinstance(sensitive, Mapping):
        frame = pd.DataFrame({str(k): np.asarray(v) for k, v in sensitive.items()})
    else:
        raise SensitiveColumnError(
            f"sensitive attributes must be a pandas DataFrame (one column per attribute, one row "
            f"per sample), a named Series or a dict of column -> values, not "
            f"{type(sensitive).__name__}"
        )
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise SensitiveColumnError(
            f"the sensitive-attribute table is empty ({frame.shape[0]} rows, {frame.shape[1]} "
            "columns); it needs at least one column and one row per evaluated sample"
        )
    return frame.reset_index(drop=True)


def _labels(column: pd.Series) -> tuple[pd.Series, int]:
    """String labels of a column with missing values as ``"(missing)"``; and their count."""
    missing = column.isna()
    labels = column.astype(object).where(~missing, MISSING_GROUP).map(str)
    return labels, int(missing.sum())


def build_groups(
    sensitive: Any,
    columns: Sequence[str] | None = None,
    *,
    intersections: str = "full",
    min_group_size: int = 30,
    max_groups: int = DEFAULT_MAX_GROUPS,
) -> SensitiveGroups:
    """Group labels for each sensitive feature and their intersections.

    Parameters
    ----------
    sensitive
        Sensitive attributes, one row per sample (DataFrame, named Series or dict).
    columns
        Columns to use (default: all, in table order).
    intersections
        ``"full"`` (default): each feature alone and all of them crossed; ``"all"``: every
        combination of two or more features; ``"none"``: each feature alone.
    min_group_size
        Groups with fewer rows are flagged (never dropped).
    max_groups
        A column with more distinct values is taken to be continuous and rejected (bin it).

    Returns
    -------
    SensitiveGroups

    Raises
    ------
    SensitiveColumnError
        Unknown column (the message lists the columns), a column with only one group, a column
        with more than ``max_groups`` values, or an unknown ``intersections`` mode.

    Examples
    --------
    >>> import pandas as pd
    >>> sg = build_groups(pd.DataFrame({"sex": ["F", "M", None, "M"], "age": [1, 2, 1, 2]}),
    ...                   min_group_size=2)
    >>> [g.key for g in sg.groupings]
    ['sex', 'age', 'sex-age']
    >>> sg.missing
    {'sex': 1, 'age': 0}
    >>> sg.grouping("sex").groups
    ('F', 'M', '(missing)')
    """
    import numpy as np
    import pandas as pd

    if intersections not in INTERSECTION_MODES:
        raise SensitiveColumnError(
            f"unknown intersections mode {intersections!r}; accepted: "
            f"{', '.join(INTERSECTION_MODES)}"
        )
    if int(min_group_size) < 1:
        raise SensitiveColumnError(f"min_group_size must be >= 1, got {min_group_size!r}")
    frame = as_frame(sensitive)
    available = [str(c) for c in frame.columns]
    frame.columns = available
    if columns is None:
        columns = available
    elif isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise SensitiveColumnError(
            f"no sensitive column chosen; the table has the columns: {', '.join(available)}"
        )
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise SensitiveColumnError(
            f"sensitive column(s) {', '.join(map(repr, unknown))} not found; the sensitive "
            f"attributes have the columns: {', '.join(available) or '(none)'}. Name existing "
            "columns with --bench-sensitive or [tool.trustbench.fairness] sensitive = [...]"
        )
    if len(set(columns)) != len(columns):
        raise SensitiveColumnError(f"sensitive columns repeated: {columns}")

    clean: dict[str, pd.Series] = {}
    missing: dict[str, int] = {}
    notes: list[str] = []
    for col in columns:
        labels, n_missing = _labels(frame[col])
        present = sorted(set(labels[labels != MISSING_GROUP]))
        if len(present) < 2:
            what = f"only the group {present[0]!r}" if present else "no values at all"
            raise SensitiveColumnError(
                f"sensitive column {col!r} has {what}"
                + (f" (plus {n_missing} missing values)" if n_missing and present else "")
                + "; a fairness comparison needs at least two groups. Drop the column or "
                "evaluate on data that contains more than one group"
            )
        if len(present) > max_groups:
            raise SensitiveColumnError(
                f"sensitive column {col!r} has {len(present)} distinct values (more than "
                f"{max_groups}); it looks continuous. Bin it into a few groups first (e.g. age "
                "into '<25', '25-44', '45+')"
            )
        if n_missing:
            notes.append(
                f"column {col!r}: {n_missing} missing values form their own group "
                f"{MISSING_GROUP!r}"
            )
        clean[col] = labels
        missing[col] = n_missing
    cleaned = pd.DataFrame(clean)

    combos: list[tuple[str, ...]] = [(c,) for c in columns]
    if len(columns) > 1:
        if intersections == "full":
            combos.append(tuple(columns))
        elif intersections == "all":
            for r in range(2, len(columns) + 1):
                combos.extend(itertools.combinations(columns, r))

    # Group order: a categorical column's category order, else sorted; "(missing)" last.
    ranks: dict[str, np.ndarray] = {}
    orders: dict[str, list[str]] = {}
    for col in columns:
        seen = set(clean[col])
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            order = [str(c) for c in frame[col].cat.categories if str(c) in seen]
            order += sorted(seen - set(order) - {MISSING_GROUP})
        else:
            order = sorted(seen - {MISSING_GROUP})
        if MISSING_GROUP in seen:
            order.append(MISSING_GROUP)
        orders[col] = order
        ranks[col] = cleaned[col].map({g: i for i, g in enumerate(order)}).to_numpy(np.int64)

    groupings = []
    for feats in combos:
        combined = np.zeros(len(cleaned), dtype=np.int64)
        for col in feats:  # mixed-radix code: sorts like the tuple of per-feature ranks
            combined = combined * len(orders[col]) + ranks[col]
        uniq, codes = np.unique(combined, return_inverse=True)
        groups = []
        for code in uniq:
            parts = []
            for col in reversed(feats):
                code, r = divmod(int(code), len(orders[col]))
                parts.append(orders[col][r])
            groups.append(INTERSECTION_SEP.join(reversed(parts)))
        counts = np.bincount(codes, minlength=len(groups))
        groupings.append(
            Grouping(
                key=metric_key(feats),
                features=tuple(feats),
                groups=tuple(groups),
                codes=codes.astype(np.int64).reshape(-1),
                sizes={g: int(c) for g, c in zip(groups, counts)},
            )
        )
    return SensitiveGroups(
        features=tuple(columns),
        frame=cleaned,
        groupings=tuple(groupings),
        missing=missing,
        min_group_size=int(min_group_size),
        notes=notes,
    )
