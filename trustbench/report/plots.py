"""Plots: one matplotlib figure per non-scalar metric, chosen by the shape of its value.

- series ``{"x", "y", "x_label"?, "y_label"?, "ci"?: [[lo, hi], ...], "series"?: {label:
  {"x", "y", "ci"?}}}`` -> a line plot (CI as a shaded band, extra lines from ``"series"``);
- table ``{"rows": [{"group", "value", "ci", "n"}, ...]}`` -> horizontal bars with CI error
  bars, group sizes in the labels;
- matrix ``{"rows", "cols", "values"}`` -> a heat map with a colour bar (cells annotated when
  the matrix is small).

:func:`plot_metric` returns PNG bytes. matplotlib (and numpy) are imported inside the functions,
so importing this module stays cheap; figures are drawn on the Agg canvas directly (the caller's
pyplot backend is left untouched), and PNGs carry no timestamp or version metadata, so the same
metric gives byte-identical files.
"""

from __future__ import annotations

import io
import math
from typing import Any

from trustbench.report.formatting import format_value
from trustbench.scorecard import Metric

DPI = 110
_CELL_ANNOTATE_MAX = 80  # annotate heat-map cells when rows * cols is at most this


def _num(v: Any) -> float:
    """A plottable float: None, bools and non-numbers become NaN."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return math.nan


def _mpl_text(s: Any) -> str:
    """User text for matplotlib: no mathtext (a stray ``$`` must not fail the plot)."""
    return str(s).replace("$", r"\$")


def _ci_arrays(ci: Any, n: int) -> tuple[list[float], list[float]] | None:
    if ci is None:
        return None
    if not isinstance(ci, list) or len(ci) != n:
        raise ValueError(f"its 'ci' has {len(ci) if isinstance(ci, list) else 'no'} entries, "
                         f"expected one [lo, hi] per point ({n})")
    lo, hi = [], []
    for pair in ci:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            lo.append(_num(pair[0]))
            hi.append(_num(pair[1]))
        else:
            lo.append(math.nan)
            hi.append(math.nan)
    return lo, hi


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def _plot_series(m: Metric) -> bytes:
    v = m.value
    lines: list[tuple[str, list[Any], list[Any], Any]] = [
        (str(v.get("label") or m.name), v["x"], v["y"], v.get("ci"))
    ]
    extra = v.get("series") or {}
    if not isinstance(extra, dict):
        raise ValueError("its 'series' must map a label to {'x': [...], 'y': [...]}")
    for label, s in extra.items():
        if not isinstance(s, dict) or "x" not in s or "y" not in s:
            raise ValueError(f"its series {label!r} has no 'x' and 'y' lists")
        lines.append((str(label), s["x"], s["y"], s.get("ci")))
    categories: dict[str, int] = {}
    for _, xs, ys, _ in lines:
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("its 'x' and 'y' must be lists of the same length")
        for x in xs:
            if isinstance(x, str):
                categories.setdefault(x, len(categories))

    fig = _new_figure(6.4, 3.8)
    ax = fig.subplots()
    drawn = 0
    for label, xs, ys, ci in lines:
        xv = [float(categories[x]) if isinstance(x, str) else _num(x) for x in xs]
        yv = [_num(y) for y in ys]
        band = _ci_arrays(ci, len(xs))
        marker = "o" if len(xs) <= 40 else None
        (line,) = ax.plot(xv, yv, marker=marker, markersize=3.5, linewidth=1.6,
                          label=_mpl_text(label))
        drawn += sum(math.isfinite(a) and math.isfinite(b) for a, b in zip(xv, yv))
        if band is not None:
            ax.fill_between(xv, band[0], band[1], color=line.get_color(), alpha=0.2,
                            linewidth=0, label=_mpl_text(f"{label} (CI)"))
    if categories:
        ax.set_xticks(list(categories.values()), [_mpl_text(c) for c in categories],
                      rotation=30 if len(categories) > 4 else 0, ha="right"
                      if len(categories) > 4 else "center")
    for axis, key in (("x", "x_scale"), ("y", "y_scale")):
        if v.get(key) in ("log", "symlog"):
            getattr(ax, f"set_{axis}scale")(v[key])
    ax.set_xlabel(_mpl_text(v.get("x_label") or ""))
    ax.set_ylabel(_mpl_text(v.get("y_label") or m.unit or m.name))
    ax.set_title(_mpl_text(m.key), fontsize=10)
    ax.grid(True, alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center")
    if len(lines) > 1 or any(c is not None for *_, c in lines):
        ax.legend(fontsize=8)
    return _png(fig)


def _plot_table(m: Metric) -> bytes:
    rows = m.value["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("its 'rows' must be a list of {'group', 'value', 'ci', 'n'} objects")
    labels, vals, los, his = [], [], [], []
    for r in rows:
        label = str(r.get("group", "?"))
        if r.get("n") is not None:
            label += f" (n={r['n']})"
        labels.append(_mpl_text(label))
        val = _num(r.get("value"))
        ci = r.get("ci")
        lo, hi = ((_num(ci[0]), _num(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2
                  else (math.nan, math.nan))
        vals.append(val)
        los.append(lo)
        his.append(hi)

    height = min(14.0, max(2.2, 0.38 * len(rows) + 1.3))
    fig = _new_figure(6.4, height)
    ax = fig.subplots()
    pos = list(range(len(rows)))
    ax.barh(pos, [0.0 if math.isnan(v) else v for v in vals], height=0.6, color="#4c78a8")
    err_pos = [i for i in pos if not (math.isnan(vals[i]) or math.isnan(los[i])
                                     or math.isnan(his[i]))]
    if err_pos:
        ax.errorbar([vals[i] for i in err_pos], err_pos,
                    xerr=[[max(vals[i] - los[i], 0.0) for i in err_pos],
                          [max(his[i] - vals[i], 0.0) for i in err_pos]],
                    fmt="none", ecolor="#222222", capsize=3, linewidth=1.1)
    finite = [x for x in vals + los + his if math.isfinite(x)]
    right = max(finite, default=1.0)
    left = min(0.0, min(finite, default=0.0))
    if finite and left >= 0.0 and right <= 1.0:
        right = 1.0
    span = (right - left) or 1.0
    for i in pos:
        end = his[i] if math.isfinite(his[i]) else vals[i]
        text = format_value(vals[i]) if math.isfinite(vals[i]) else "no value"
        x = end if math.isfinite(end) else 0.0
        ax.text(x + 0.015 * span, i, text, va="center", fontsize=8)
    ax.set_xlim(left, right + 0.16 * span)
    ax.set_yticks(pos, labels)
    ax.invert_yaxis()
    ax.set_xlabel(_mpl_text(m.value.get("value_label") or m.unit or "value"))
    ax.set_title(_mpl_text(m.key), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def _plot_matrix(m: Metric) -> bytes:
    import numpy as np

    v = m.value
    rows, cols, values = v["rows"], v["cols"], v["values"]
    if not (isinstance(rows, list) and isinstance(cols, list) and isinstance(values, list)
            and len(values) == len(rows)
            and all(isinstance(r, list) and len(r) == len(cols) for r in values)):
        raise ValueError("its 'values' must be a list of len(rows) lists of len(cols) numbers")
    arr = np.array([[_num(x) for x in r] for r in values], dtype=float).reshape(
        len(rows), len(cols))
    nr, nc = arr.shape
    fig = _new_figure(min(12.0, max(4.5, 2.6 + 0.42 * nc)), min(10.0, max(2.6, 1.4 + 0.34 * nr)))
    ax = fig.subplots()
    finite = np.isfinite(arr)
    if not finite.any() or nr == 0 or nc == 0:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center")
        ax.set_title(_mpl_text(m.key), fontsize=10)
        return _png(fig)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    vmin, vmax = float(arr[finite].min()), float(arr[finite].max())
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    im = ax.imshow(np.ma.masked_invalid(arr), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(_mpl_text(m.unit or "value"))

    def ticks(n: int) -> list[int]:
        step = max(1, math.ceil(n / 32))
        return list(range(0, n, step))

    xt, yt = ticks(nc), ticks(nr)
    long_cols = any(len(str(cols[i])) > 3 for i in xt)
    ax.set_xticks(xt, [_mpl_text(cols[i]) for i in xt], rotation=45 if long_cols else 0,
                  ha="right" if long_cols else "center", fontsize=8)
    ax.set_yticks(yt, [_mpl_text(rows[i]) for i in yt], fontsize=8)
    ax.set_xlabel(_mpl_text(v.get("col_label") or v.get("x_label") or ""))
    ax.set_ylabel(_mpl_text(v.get("row_label") or v.get("y_label") or ""))
    if nr * nc <= _CELL_ANNOTATE_MAX:
        for i in range(nr):
            for j in range(nc):
                if finite[i, j]:
                    dark = (arr[i, j] - vmin) / (vmax - vmin) < 0.55
                    ax.text(j, i, f"{float(arr[i, j]):.2g}", ha="center", va="center",
                            fontsize=7, color="white" if dark else "black")
                else:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="#555555")
    ax.set_title(_mpl_text(m.key), fontsize=10)
    return _png(fig)


_PLOTTERS = {"series": _plot_series, "table": _plot_table, "matrix": _plot_matrix}


def plot_metric(m: Metric) -> bytes:
    """PNG bytes of a non-scalar metric; ValueError says what is wrong with a malformed value."""
    import matplotlib

    style: dict[str, Any] = {"svg.hashsalt": "trustbench", "font.size": 9,
                             "axes.titleweight": "bold", "figure.dpi": DPI, "savefig.dpi": DPI}
    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        try:
            return _PLOTTERS[m.shape](m)
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed {m.shape} value ({type(exc).__name__}: {exc})") from exc
