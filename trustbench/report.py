"""Markdown and HTML reports with plots, rendered from one scorecard file alone.

:func:`render_report` is what ``trustbench report FILE [--out DIR] [--format md,html]`` calls.
It writes ``<out>/<stem>.md`` (plots as PNG files in ``<out>/<stem>-plots/``, linked by
relative path) and ``<out>/<stem>.html`` (one self-contained page: inline CSS, plots embedded
as base64 PNG data URIs, no external resource).

Metrics are rendered by the *shape* of their value, never by pillar name, so a new pillar's
report comes for free:

- scalar -> a row in the pillar's table: value ``[CI]``, unit, n, direction, hardware marker;
- series ``{"x", "y", "x_label"?, "y_label"?, "ci"?: [[lo, hi], ...], "series"?: {label:
  {"x", "y", "ci"?}}}`` -> a line plot (CI as a shaded band, extra lines from ``"series"``);
- table ``{"rows": [{"group", "value", "ci", "n"}, ...]}`` -> horizontal bars with CI error
  bars, group sizes in the labels (plus the numbers as a table);
- matrix ``{"rows", "cols", "values"}`` -> a heat map with a colour bar (cells annotated when
  the matrix is small).

Every string taken from the scorecard (model names are user input) is escaped for the output
format. matplotlib is imported lazily, through the Agg canvas directly (the caller's pyplot
backend is left untouched), and PNGs carry no timestamp or version metadata, so rendering the
same scorecard twice gives byte-identical files.

The formatting helpers :func:`format_value` and :func:`format_estimate` are shared with
:mod:`trustbench.compare`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from trustbench.errors import ConfigError, ScorecardError
from trustbench.scorecard import Metric, Scorecard, load, value_shape

__all__ = ["FORMATS", "format_estimate", "format_value", "render_report"]

#: Output formats :func:`render_report` accepts.
FORMATS = ("md", "html")

DPI = 110
_CELL_ANNOTATE_MAX = 80  # annotate heat-map cells when rows * cols is at most this
_MISSING = "—"


# --------------------------------------------------------------------------- numbers


def format_value(value: Any, sig: int | None = None) -> str:
    """A number with 3-4 significant digits, readable in a table.

    Integers are printed exactly; floats below 1 in magnitude get 3 significant digits, larger
    ones 4 (``sig`` overrides), very large or very small ones use exponent notation. ``None``
    (and NaN/inf) print as an em dash; non-numbers print as their string.

    >>> format_value(0.95312), format_value(12.3456), format_value(21840), format_value(None)
    ('0.953', '12.35', '21840', '—')
    """
    if value is None or isinstance(value, bool):
        return _MISSING if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return _MISSING
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
    lo, hi = ("?" if t == _MISSING else t for t in texts[1:])
    return f"{texts[0]} [{lo}, {hi}]"


def _fmt_score(score: Any) -> str:
    if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
        return f"{score:.1f}"
    return _MISSING


def _short(sha: Any, n: int = 12) -> str:
    return str(sha)[:n] if sha else _MISSING


# --------------------------------------------------------------------------- document model
# One small document tree rendered twice (Markdown, HTML), so both outputs say the same thing.


@dataclass
class _Span:
    """Inline text; ``style``: "" (plain), "b" (bold), "code", "good"/"bad" (bold, coloured),
    "own" (text the report itself wrote, e.g. a number with its interval)."""

    text: str
    style: str = ""


_Inline = str | _Span | list[_Span]


@dataclass
class _Heading:
    level: int
    text: _Inline
    anchor: str = ""


@dataclass
class _Para:
    text: _Inline


@dataclass
class _Callout:
    kind: str  # "bad" | "warn" | "good"
    text: _Inline


@dataclass
class _List:
    items: list[_Inline]


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[_Inline]]


@dataclass
class _Image:
    filename: str
    png: bytes
    alt: str
    caption: _Inline


@dataclass
class _Doc:
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def _spans(text: _Inline) -> list[_Span]:
    if isinstance(text, str):
        return [_Span(text)]
    return [text] if isinstance(text, _Span) else text


_MD_SPECIAL = re.compile(r"([\\`*\[\]|<>#~])")


# A code span shows its text literally (safe), but a backtick or a pipe would end it or the table
# cell, and text that looks like an HTML tag is escaped anyway so that no raw tag ever appears.
_MD_UNSAFE_CODE = re.compile(r"[`|\n]|<[A-Za-z/!?]")


def _md_escape(text: str, keep: str = "") -> str:
    """Escape Markdown syntax and raw HTML in text from the scorecard; one line only.

    Characters in ``keep`` are left alone (only for text the report itself formatted).
    """
    text = re.sub(r"\s+", " ", str(text)).replace("&", "&amp;")

    def sub(m: re.Match[str]) -> str:
        c = m.group(1)
        if c in keep:
            return c
        return {"<": "&lt;", ">": "&gt;"}.get(c, "\\" + c)

    return _MD_SPECIAL.sub(sub, text)


def _md_inline(text: _Inline) -> str:
    out = []
    for s in _spans(text):
        if not s.text:
            continue
        if s.style == "code" and not _MD_UNSAFE_CODE.search(s.text):
            out.append(f"`{' '.join(s.text.split())}`")
        elif s.style in ("b", "good", "bad"):
            # emphasis must not start or end with a space (CommonMark flanking rules)
            core = s.text.strip()
            lead = " " if s.text[:1].isspace() else ""
            trail = " " if s.text[-1:].isspace() else ""
            out.append(f"{lead}**{_md_escape(core)}**{trail}" if core else " ")
        elif s.style == "own":  # our own text: brackets of intervals stay readable
            out.append(_md_escape(s.text, keep="[]"))
        else:
            out.append(_md_escape(s.text))
    return "".join(out)


def _md_table(headers: list[str], rows: list[list[_Inline]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h, keep="[]") for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_inline(c) for c in row) + " |")
    return "\n".join(lines)


def _to_markdown(doc: _Doc, plots_rel: str) -> str:
    parts = [f"# {_md_escape(doc.title)}"]
    for b in doc.blocks:
        if isinstance(b, _Heading):
            parts.append("#" * b.level + " " + _md_inline(b.text))
        elif isinstance(b, _Para):
            parts.append(_md_inline(b.text))
        elif isinstance(b, _Callout):
            mark = {"bad": "⚠ ", "warn": "⚠ ", "good": ""}[b.kind]
            parts.append("> " + mark + _md_inline(b.text))
        elif isinstance(b, _List):
            parts.append("\n".join("- " + _md_inline(i) for i in b.items))
        elif isinstance(b, _Table):
            parts.append(_md_table(b.headers, b.rows))
        elif isinstance(b, _Image):
            link = quote(f"{plots_rel}/{b.filename}")
            parts.append(f"![{_md_escape(b.alt)}]({link})\n\n*{_md_inline(b.caption)}*")
    return "\n\n".join(parts) + "\n"


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1f24;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.3em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfcfd}
code{background:#f3f4f6;padding:.1em .3em;border-radius:3px;font-size:.9em}
.good{color:#1a7f37}.bad{color:#cf222e}
.callout{padding:.7em 1em;border-radius:6px;margin:1em 0;border:1px solid}
.callout.bad{background:#ffebe9;border-color:#ff8182;color:#82071e;font-size:1.1em}
.callout.warn{background:#fff8c5;border-color:#d4a72c;color:#4d2d00}
.callout.good{background:#dafbe1;border-color:#4ac26b;color:#0f5323}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.88em;color:#57606a}
"""


def _html_inline(text: _Inline) -> str:
    out = []
    for s in _spans(text):
        t = html.escape(s.text, quote=True)
        if s.style == "b":
            out.append(f"<strong>{t}</strong>")
        elif s.style == "code":
            out.append(f"<code>{t}</code>")
        elif s.style in ("good", "bad"):
            out.append(f'<strong class="{s.style}">{t}</strong>')
        else:
            out.append(t)
    return "".join(out)


def _to_html(doc: _Doc) -> str:
    esc = html.escape
    body = [f"<h1>{esc(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, _Heading):
            anchor = f' id="{esc(b.anchor)}"' if b.anchor else ""
            body.append(f"<h{b.level}{anchor}>{_html_inline(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            body.append(f"<p>{_html_inline(b.text)}</p>")
        elif isinstance(b, _Callout):
            body.append(f'<div class="callout {b.kind}">{_html_inline(b.text)}</div>')
        elif isinstance(b, _List):
            items = "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(b, _Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in b.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, _Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{esc(b.alt, quote=True)}">'
                f"<figcaption>{_html_inline(b.caption)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- plots


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


def _plot(m: Metric) -> bytes:
    """PNG bytes of a non-scalar metric; ValueError says what is wrong with a malformed value."""
    import matplotlib

    style: dict[str, Any] = {"svg.hashsalt": "trustbench", "font.size": 9,
                             "axes.titleweight": "bold", "figure.dpi": DPI, "savefig.dpi": DPI}
    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        try:
            return _PLOTTERS[m.shape](m)
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed {m.shape} value ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- content


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def _txt(v: Any) -> str:
    return _MISSING if v is None or v == "" else str(v)


def _params_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    parts = []
    for k, v in params.items():
        s = f"{v:.6g}" if isinstance(v, float) else str(v)
        parts.append(f"{k}={s if len(s) <= 40 else s[:37] + '...'}")
    return ", ".join(parts)


def _direction(m: Metric) -> str:
    return {True: "↑ higher", False: "↓ lower"}.get(m.higher_is_better, "")  # type: ignore[arg-type]


def _summary(card: Scorecard) -> list[_Inline]:
    run, system, task = card.run, card.system, card.task
    items: list[_Inline] = []
    items.append([
        _Span("Run: ", "b"), _Span(_txt(run.get("id")), "code"),
        _Span(f", started {_txt(run.get('started'))}, finished {_txt(run.get('finished'))}, "
              f"seed {_txt(run.get('seed'))}, trustbench {_txt(run.get('trustbench_version'))}"
              f", device {_txt(run.get('device'))}"),
    ])
    argv = run.get("argv")
    if isinstance(argv, list) and argv:
        items.append([_Span("Command: ", "b"), _Span(" ".join(map(str, argv)), "code")])
    acc = _txt(system.get("accelerator_model_name"))
    per_node = system.get("accelerators_per_node")
    if isinstance(per_node, int) and per_node > 0:
        acc += f" × {per_node}"
    if system.get("accelerator_memory_capacity"):
        acc += f" ({system['accelerator_memory_capacity']})"
    for extra in ("driver", "cuda"):
        if system.get(extra):
            acc += f", {extra} {system[extra]}"
    host = _txt(system.get("host_processor_model_name"))
    if system.get("host_processor_core_count") is not None:
        host += f" ({system['host_processor_core_count']} cores)"
    if system.get("host_memory_capacity"):
        host += f", {system['host_memory_capacity']} memory"
    items.append([_Span("System: ", "b"), _Span(_txt(system.get("id")), "code"),
                  _Span(f"; accelerator {acc}; host {host}; OS "
                        f"{_txt(system.get('operating_system'))}")])
    for label, key in (("Jetson: ", "jetson"), ("Software: ", "software")):
        entries = system.get(key)
        if isinstance(entries, dict) and entries:
            items.append([_Span(label, "b"),
                          _Span(", ".join(f"{k} {v}" for k, v in entries.items()))])
    model: dict[str, Any] = task["model"] if isinstance(task.get("model"), dict) else {}
    params = model.get("parameters")
    items.append([
        _Span("Model: ", "b"), _Span(_txt(model.get("name"))),
        _Span(f" (source {_txt(model.get('source'))}, "
              f"{f'{params:,}' if isinstance(params, int) else _MISSING} parameters), sha256 "),
        _Span(_short(model.get("sha256")), "code"),
    ])
    data: dict[str, Any] = task["dataset"] if isinstance(task.get("dataset"), dict) else {}
    n = data.get("n")
    items.append([
        _Span("Dataset: ", "b"), _Span(_txt(data.get("name"))),
        _Span(f" (source {_txt(data.get('source'))}, split {_txt(data.get('split'))}), "
              f"n = {f'{n:,}' if isinstance(n, int) else _MISSING}, sha256 "),
        _Span(_short(data.get("sha256")), "code"),
    ])
    return items


def _pillar_order(card: Scorecard) -> list[str]:
    order = list(card.pillars)
    for m in card.metrics:
        if m.pillar not in order:
            order.append(m.pillar)
    return order


def _status_span(status: str) -> _Span:
    style = {"measured": "good", "skipped": "b", "failed": "bad"}.get(status, "")
    return _Span(status, style)


def _build(card: Scorecard, stem: str, with_plots: bool) -> tuple[_Doc, int]:
    """The report's document tree, and how many plots it holds."""
    task_name = _txt(card.task.get("name"))
    system_id = _txt(card.system.get("id"))
    doc = _Doc(f"trustbench report: {task_name} on {system_id}")
    status = str(card.run.get("status") or "unknown")
    doc.add(_Para([
        _Span("Task "), _Span(task_name, "code"), _Span(" · system "), _Span(system_id, "code"),
        _Span(" · profile "), _Span(_txt(card.run.get("profile")), "b"),
        _Span(" · division "), _Span(_txt(card.run.get("division")), "b"),
        _Span(" · run status "), _Span(status.upper(), "good" if status == "valid" else "bad"),
    ]))
    if status != "valid":
        reason = card.run.get("status_reason") or "no reason recorded"
        doc.add(_Callout("bad", [
            _Span(f"This run is {status.upper()}: ", "b"), _Span(str(reason)),
            _Span(". Its numbers are not a valid benchmark result."),
        ]))
    from trustbench.scorecard import score_mismatches

    if score_mismatches(card):
        doc.add(_Callout("bad", [
            _Span("Edited scores: ", "b"),
            _Span("the stored pillar scores differ from those the metrics give; run "
                  "`trustbench validate` on the file. The pillar overview below shows the "
                  "stored values."),
        ]))
    failed_checks = [c for c in card.checks if not c.passed]
    failed_gates = [g for g in card.gates if not g.passed]
    if failed_checks or failed_gates:
        doc.add(_Callout("warn", (
            f"{len(failed_checks)} of {len(card.checks)} checks failed, "
            f"{len(failed_gates)} of {len(card.gates)} gates failed (see below)."
        )))

    doc.add(_Heading(2, "Run, system and task"), _List(_summary(card)))

    order = _pillar_order(card)
    overview = []
    for p in order:
        pr = card.pillars.get(p)
        overview.append([
            _Span(p, "b"), [_status_span(pr.status)] if pr else _MISSING,
            _fmt_score(pr.score) if pr else _MISSING,
            _txt(pr.reason) if pr and pr.reason else "",
        ])
    doc.add(_Heading(2, "Pillars"))
    if overview:
        doc.add(_Table(["pillar", "status", "score (0-100)", "reason"], overview))
    else:
        doc.add(_Para("No pillar was measured."))

    n_plots = 0
    for p in order:
        pr = card.pillars.get(p)
        metrics = [m for m in card.metrics if m.pillar == p]
        head: list[_Span] = [_Span(p)]
        if pr is not None:
            head.append(_Span(f" — {pr.status}"))
            if pr.score is not None:
                head.append(_Span(f", score {_fmt_score(pr.score)}"))
        doc.add(_Heading(2, head, anchor=f"pillar-{_slug(p)}"))
        if pr is not None and pr.reason:
            doc.add(_Para([_Span("Reason: ", "b"), _Span(pr.reason)]))
        if not metrics:
            doc.add(_Para("No metrics recorded."))
            continue
        scalars = [m for m in metrics if m.shape == "scalar"]
        if scalars:
            with_params = any(m.params for m in scalars)
            headers = ["metric", "value [CI]", "unit", "n", "better", "hardware-dependent"]
            if with_params:
                headers.append("params")
            rows = []
            for m in scalars:
                row: list[_Inline] = [
                    [_Span(m.name, "code")], _Span(format_estimate(m.value, m.ci), "own"),
                    m.unit or "",
                    _txt(m.n), _direction(m), "yes (hw)" if m.hardware_dependent else "no",
                ]
                if with_params:
                    row.append(_params_text(m.params))
                rows.append(row)
            doc.add(_Table(headers, rows))
        for m in metrics:
            if m.shape == "scalar":
                continue
            n_plots += _add_plot(doc, m, stem, n_plots, with_plots)

    doc.add(_Heading(2, "Checks"))
    if card.checks:
        doc.add(_Table(["result", "pillar", "check", "detail"], [
            [[_Span("PASS", "good") if c.passed else _Span("FAIL", "bad")], c.pillar or "",
             [_Span(c.name, "code")], c.detail or ""]
            for c in card.checks
        ]))
    else:
        doc.add(_Para("No checks recorded."))
    doc.add(_Heading(2, "Gates"))
    if card.gates:
        doc.add(_Table(["result", "gate", "detail"], [
            [[_Span("SKIP", "b") if g.skipped else _Span("PASS", "good") if g.passed
              else _Span("FAIL", "bad")],
             [_Span(g.expr, "code")], g.detail or ""]
            for g in card.gates
        ]))
    else:
        doc.add(_Para("No gates set."))
    doc.add(_Para([_Span(
        "Legend: value [CI] is the estimate with its confidence interval; hardware-dependent "
        "metrics (hw) change with the machine, the others should not for the same weights and "
        "seed. Rendered by trustbench.report from a scorecard of schema ", "own"),
        _Span(card.schema, "code"), _Span(".")]))
    return doc, n_plots


def _add_plot(doc: _Doc, m: Metric, stem: str, index: int, with_plots: bool) -> int:
    """Add one non-scalar metric (heading, caption, plot); returns 1 if a plot was drawn."""
    doc.add(_Heading(3, [_Span(m.name, "code"), _Span(f" ({m.shape})")]))
    bits = [_Span(f"unit {m.unit or _MISSING}")]
    if m.n is not None:
        bits.append(_Span(f"n = {m.n}"))
    if m.higher_is_better is not None:
        bits.append(_Span(_direction(m) + " is better"))
    if m.ci is not None:
        lo, hi = (format_value(b) for b in m.ci)
        bits.append(_Span(f"overall CI [{lo}, {hi}]", "own"))
    if m.hardware_dependent:
        bits.append(_Span("hardware-dependent (hw)"))
    if m.params:
        bits.append(_Span(_params_text(m.params)))
    caption: list[_Span] = [_Span(f"{m.key}: ")]
    for i, bit in enumerate(bits):
        caption += [_Span("; ")] * (i > 0) + [bit]
    if m.shape == "table" and isinstance(m.value.get("rows"), list):
        rows = [r for r in m.value["rows"] if isinstance(r, dict)]
        doc.add(_Table(["group", "value [CI]", "n"], [
            [_txt(r.get("group")), _Span(format_estimate(r.get("value"), r.get("ci")), "own"),
             _txt(r.get("n"))]
            for r in rows
        ]))
    if not with_plots:
        doc.add(_Para([_Span("Plot not drawn: ", "b"), _Span("matplotlib is not installed.")]))
        return 0
    try:
        png = _plot(m)
    except ValueError as exc:
        doc.add(_Para([_Span("Plot not drawn: ", "b"), _Span(f"{m.key}: {exc}")]))
        return 0
    name = f"{index + 1:02d}-{_slug(m.pillar)}-{_slug(m.name)}.png"
    doc.add(_Image(name, png, f"{m.key} ({m.shape})", caption))
    return 1


# --------------------------------------------------------------------------- entry point


def _formats(formats: str | Iterable[str]) -> list[str]:
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = []
    for f in (str(x).strip().lower() for x in items):
        if f and f not in out:
            out.append(f)
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError(
            f"unknown report format(s) {bad or items!r}: accepted formats are "
            f"{', '.join(FORMATS)} (several may be given, e.g. 'md,html')"
        )
    return out


def render_report(
    card: Scorecard | str | Path,
    out_dir: str | Path,
    *,
    formats: str | Iterable[str] = FORMATS,
    stem: str | None = None,
) -> dict[str, Path]:
    """Render a scorecard as a Markdown and/or a self-contained HTML report with plots.

    Parameters
    ----------
    card
        A scorecard file (read and validated with :func:`trustbench.scorecard.load`) or a
        :class:`~trustbench.scorecard.Scorecard` object.
    out_dir
        Folder to write into (created if needed). Existing reports of the same stem are
        replaced: a report is derived data, the scorecard stays the truth.
    formats
        ``"md"`` and/or ``"html"``, as an iterable or a comma-separated string (``"md,html"``).
    stem
        Base name of the outputs; defaults to the scorecard file's stem, or
        ``<task>-<run id>`` for a Scorecard object.

    Returns
    -------
    dict[str, Path]
        ``{"md": <out>/<stem>.md, "html": <out>/<stem>.html}`` for the formats asked for, plus
        ``"plots": <out>/<stem>-plots`` when the Markdown report has plot files.

    Raises
    ------
    trustbench.errors.ScorecardError
        If the file is missing, not JSON, not a trustbench scorecard, or fails the schema.
    trustbench.errors.ConfigError
        If a format is not one of :data:`FORMATS`, or ``out_dir`` cannot be written.

    Examples
    --------
    >>> paths = render_report("results/sys/digits-cnn/20260101T000000Z-ab12.json",
    ...                       "reports")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['html', 'md', 'plots']
    """
    fmts = _formats(formats)
    if isinstance(card, Scorecard):
        sc = card
        default_stem = _slug(f"{sc.task.get('name', 'task')}-{sc.run.get('id', 'run')}")
    else:
        sc = load(card)
        default_stem = Path(card).stem
    stem = stem or default_stem
    for m in sc.metrics:  # a Scorecard built in memory may have been changed after construction
        try:
            value_shape(m.value)
        except ValueError as exc:
            raise ScorecardError(f"metric {m.key}: {exc}") from None

    try:
        import matplotlib  # noqa: F401

        with_plots = True
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        with_plots = False
    doc, _ = _build(sc, stem, with_plots)

    out = Path(out_dir)
    plots_name = f"{_slug(stem)}-plots"
    result: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        if "md" in fmts:
            images = [b for b in doc.blocks if isinstance(b, _Image)]
            plot_dir = out / plots_name
            if images or plot_dir.is_dir():
                plot_dir.mkdir(exist_ok=True)
                keep = {b.filename for b in images}
                for old in plot_dir.glob("*.png"):  # plots of an earlier rendering
                    if old.name not in keep:
                        old.unlink()
                for b in images:
                    (plot_dir / b.filename).write_bytes(b.png)
                if images:
                    result["plots"] = plot_dir
            md_path = out / f"{stem}.md"
            md_path.write_text(_to_markdown(doc, plots_name), encoding="utf-8")
            result["md"] = md_path
        if "html" in fmts:
            html_path = out / f"{stem}.html"
            html_path.write_text(_to_html(doc), encoding="utf-8")
            result["html"] = html_path
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {out}: {exc.strerror or exc}. The output folder must "
            "be writable: pass another --out DIR"
        ) from exc
    return {k: result[k] for k in ("md", "html", "plots") if k in result}
