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
same scorecard twice gives byte-identical files. The report reads scorecards only: it imports
no pillar package.

Where things live:

- :mod:`~trustbench.report.render`: :func:`render_report`, the entry point (reads the
  scorecard, writes the files);
- :mod:`~trustbench.report.content`: which sections, in which order, with what text;
- :mod:`~trustbench.report.document`: the document model (spans, headings, tables, images)
  that both renderers walk;
- :mod:`~trustbench.report.markdown` and :mod:`~trustbench.report.html`: the renderers;
- :mod:`~trustbench.report.plots`: matplotlib figures by value shape (series, table, matrix);
- :mod:`~trustbench.report.formatting`: numbers and names as printed. :func:`format_value` and
  :func:`format_estimate` are shared with :mod:`trustbench.compare`.
"""

from __future__ import annotations

from trustbench.report.formatting import format_estimate, format_value
from trustbench.report.render import FORMATS, render_report

__all__ = ["FORMATS", "format_estimate", "format_value", "render_report"]
