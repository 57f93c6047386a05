"""Numbers and names as the report prints them, in Markdown, HTML and plot labels alike.

:func:`format_value` and :func:`format_estimate` are also what :mod:`trustbench.compare` prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

#: What the report prints for a missing value.
MISSING = "—"


def format_value(value: Any, sig: int | None = None) -> str:
    """A number with 3-4 significant digits, readable in a table.

    Integers are printed exactly; floats below 1 in magnitude get 3 significant digits, larger
    ones 4 (``sig`` overrides), very large or very small ones use exponent notation. ``None``
    (and NaN/inf) print as an em dash; non-numbers print as their string.

    >>> format_value(0.95312), format_value(12.3456), format_value(21840), format_value(None)
    ('0.953', '12.35', '21840', '—')
    """
    if value is None or isinstance(value, bool):
        return MISSING if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return MISSING
    a = abs(value)
    if a == 0.0:
        return "0"
    if a >= 1e7 or a < 1e-4:
        return f"{value:.{max((sig or 3) - 1, 1)}e}"
    if sig is None:
        sig = 3 if a < 1.0 else 4
    if a >= 10 ** sig:  # more integer digits than significant ones: no pointless exponent
        return f"{value:.0f}"
    text = f"{value:#.{sig}g}"
    if "e" in text:  # rounding pushed it over a power of ten (9999.7 -> 1.000e+04)
        return f"{value:.0f}"
    return text.rstrip(".")


def format_estimate(value: Any, ci: Sequence[Any] | None = None) -> str:
    """``value [lo, hi]``, with just enough digits that distinct numbers look distinct.

    A missing interval (or missing bound) is left out (shown as ``?``).

    >>> format_estimate(0.9531, [0.9382, 0.9647])
    '0.953 [0.938, 0.965]'
    >>> format_estimate(0.9995, [0.999, 0.9998])
    '0.9995 [0.9990, 0.9998]'
    """
    if not ci or len(ci) != 2 or all(v is None for v in ci):
        return format_value(value)
    nums = [v for v in (value, *ci) if isinstance(v, float) and math.isfinite(v)]
    texts = [format_value(v) for v in (value, *ci)]
    if len(nums) == 3 and all(not isinstance(v, bool) for v in nums):
        base = 3 if abs(value) < 1.0 else 4
        for sig in range(base, 8):
            texts = [format_value(v, sig) for v in (value, *ci)]
            if len(set(texts)) == len(set(nums)):
                break
    lo, hi = ("?" if t == MISSING else t for t in texts[1:])
    return f"{texts[0]} [{lo}, {hi}]"


def format_score(score: Any) -> str:
    """A pillar score (0-100) with one decimal, or an em dash when there is none."""
    if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
        return f"{score:.1f}"
    return MISSING


def short_hash(sha: Any, n: int = 12) -> str:
    """The first ``n`` characters of a hash, or an em dash when there is none."""
    return str(sha)[:n] if sha else MISSING


def slug(text: str) -> str:
    """``text`` made safe for a file name or an HTML anchor."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"
