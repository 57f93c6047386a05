"""The entry point: :func:`render_report` reads a scorecard and writes the report files.

``<out>/<stem>.md`` with its plots as PNG files in ``<out>/<stem>-plots/`` (linked by relative
path), and ``<out>/<stem>.html`` (one self-contained page). The content comes from
:mod:`trustbench.report.content`, the files from the renderers
(:mod:`trustbench.report.markdown`, :mod:`trustbench.report.html`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trustbench.errors import ConfigError, ScorecardError
from trustbench.report.content import build_document
from trustbench.report.document import Image
from trustbench.report.formatting import slug
from trustbench.report.html import to_html
from trustbench.report.markdown import to_markdown
from trustbench.scorecard import Scorecard, load, value_shape

#: Output formats :func:`render_report` accepts.
FORMATS = ("md", "html")


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
        default_stem = slug(f"{sc.task.get('name', 'task')}-{sc.run.get('id', 'run')}")
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
    doc, _ = build_document(sc, stem, with_plots)

    out = Path(out_dir)
    plots_name = f"{slug(stem)}-plots"
    result: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        if "md" in fmts:
            images = [b for b in doc.blocks if isinstance(b, Image)]
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
            md_path.write_text(to_markdown(doc, plots_name), encoding="utf-8")
            result["md"] = md_path
        if "html" in fmts:
            html_path = out / f"{stem}.html"
            html_path.write_text(to_html(doc), encoding="utf-8")
            result["html"] = html_path
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {out}: {exc.strerror or exc}. The output folder must "
            "be writable: pass another --out DIR"
        ) from exc
    return {k: result[k] for k in ("md", "html", "plots") if k in result}
