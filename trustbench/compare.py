"""Side-by-side comparison of scorecards: :func:`compare` and its Markdown table,
:func:`format_compare`.

This is what ``trustbench compare FILE...`` calls. Rows are metrics (``pillar.name``) and pillar
scores, columns are scorecards (labelled ``<system id> · <run id, 8 chars>``).

Rules (docs: DESIGN "Divisions and profiles"):

- Scorecards of different tasks, profiles, seeds or pillar settings (``run.settings``, the
  trustbench.toml tables) are refused (:class:`ScorecardError`) unless ``allow_mixed=True``;
  then they are shown side by side but never ranked.
- Ranking: for each scalar metric with ``higher_is_better`` set, and for pillar scores, the best
  column is marked, only when all scorecards share task and profile (and division). Columns
  whose run is not ``valid`` are shown but never marked best. Ties are shown, never hidden:
  every column equal to the best is marked best, and columns whose interval overlaps the best's
  are marked "tied within CI".
- Hardware-independent metrics should agree across machines for the same weights and seed: a
  value that differs from the others beyond both their intervals and a tolerance is flagged.
- Warnings: model weights differ (sha256: hardware-independent metrics are then not expected
  to agree), test data differ, torch versions differ, division differs, a run is not valid, a
  metric's unit differs between scorecards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustbench.errors import ConfigError, ScorecardError
from trustbench.report.document import Span
from trustbench.report.formatting import format_estimate
from trustbench.report.markdown import md_escape, md_inline
from trustbench.scorecard import Metric, Scorecard, load, score_mismatches

__all__ = ["ATOL", "RTOL", "CompareResult", "MetricRow", "PillarRow", "compare", "format_compare"]

#: Default tolerance for "hardware-independent values agree": |a - b| <= ATOL + RTOL * max(|a|,|b|).
RTOL = 1e-3
ATOL = 1e-9


@dataclass
class MetricRow:
    """One metric across the compared scorecards.

    Attributes
    ----------
    key
        ``pillar.name``.
    unit, higher_is_better, hardware_dependent, shape
        From the first scorecard that has the metric (``hardware_dependent`` is true if any
        scorecard says so).
    values
        The metric of each column, or None where that scorecard lacks it.
    best
        Column indices marked best (empty when not ranked).
    tied
        Column indices not best but whose interval overlaps the best's.
    differs
        Column indices of a hardware-independent metric whose value disagrees with another
        column's beyond both intervals and the tolerance.
    note
        Why the row is not ranked, where that is not obvious (e.g. units differ).
    """

    key: str
    pillar: str
    name: str
    unit: str
    higher_is_better: bool | None
    hardware_dependent: bool
    shape: str
    values: list[Metric | None]
    best: list[int] = field(default_factory=list)
    tied: list[int] = field(default_factory=list)
    differs: list[int] = field(default_factory=list)
    note: str = ""


@dataclass
class PillarRow:
    """One pillar's status and score (0-100, higher is better) across the scorecards."""

    pillar: str
    statuses: list[str | None]
    scores: list[float | None]
    best: list[int] = field(default_factory=list)


@dataclass
class CompareResult:
    """What :func:`compare` found; :func:`format_compare` renders it as Markdown.

    Attributes
    ----------
    labels
        Column labels, ``<system id> · <run id short>`` (made unique).
    cards
        The scorecards, in the order given.
    sources
        File of each scorecard, or None for an in-memory Scorecard.
    ranked
        True when the best columns were marked (same task, profile and division).
    mixed
        True when tasks, profiles, seeds or settings differ (only with ``allow_mixed``).
    warnings
        Human-readable warnings, in the order found.
    """

    labels: list[str]
    cards: list[Scorecard]
    sources: list[Path | None]
    pillars: list[PillarRow]
    metrics: list[MetricRow]
    warnings: list[str]
    ranked: bool
    mixed: bool


def _load_all(cards: Sequence[Scorecard | str | Path]) -> tuple[list[Scorecard], list[Path | None]]:
    loaded: list[Scorecard] = []
    sources: list[Path | None] = []
    for c in cards:
        if isinstance(c, Scorecard):
            loaded.append(c)
            sources.append(None)
        else:
            loaded.append(load(c))
            sources.append(Path(c))
    return loaded, sources


def _labels(cards: list[Scorecard]) -> list[str]:
    labels = [f"{c.system.get('id', '?')} · {str(c.run.get('id', '?'))[:8]}" for c in cards]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    counter: dict[str, int] = {}
    out = []
    for lab in labels:
        if seen[lab] > 1:
            counter[lab] = counter.get(lab, 0) + 1
            lab = f"{lab} #{counter[lab]}"
        out.append(lab)
    return out


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _scalar(m: Metric | None) -> float | None:
    if m is None or m.shape != "scalar" or m.value is None:
        return None
    v = float(m.value)
    return v if math.isfinite(v) else None


def _interval(m: Metric) -> tuple[float, float] | None:
    lo_raw, hi_raw = m.ci if m.ci is not None else (None, None)
    if lo_raw is None or hi_raw is None:
        return None
    lo, hi = float(lo_raw), float(hi_raw)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _agree(a: Metric, b: Metric, rtol: float, atol: float) -> bool:
    """True when two scalar values agree within tolerance or their intervals overlap."""
    va, vb = _scalar(a), _scalar(b)
    if va is None or vb is None:
        return True
    if abs(va - vb) <= atol + rtol * max(abs(va), abs(vb)):
        return True
    ia, ib = _interval(a), _interval(b)
    return ia is not None and ib is not None and ia[0] <= ib[1] and ib[0] <= ia[1]


def _overlap(a: Metric, b: Metric) -> bool:
    ia, ib = _interval(a), _interval(b)
    return ia is not None and ib is not None and ia[0] <= ib[1] and ib[0] <= ia[1]


def _mark_best(row: MetricRow, ms: list[Metric | None], rankable: list[int]) -> None:
    """Mark the best valid columns of a scalar row, and those tied with them within CI."""
    vals: dict[int, float] = {}
    for i in rankable:
        mi = ms[i]
        v = _scalar(mi)
        if mi is not None and v is not None:
            vals[i] = v
    if not vals:
        return
    top = max(vals.values()) if row.higher_is_better else min(vals.values())
    row.best = [i for i, v in vals.items() if v == top]
    best_metrics = [m for b in row.best if (m := ms[b]) is not None]
    row.tied = [i for i in vals if i not in row.best
                and any(_overlap(ms[i], b) for b in best_metrics)]  # type: ignore[arg-type]


def compare(
    cards: Sequence[Scorecard | str | Path],
    *,
    allow_mixed: bool = False,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> CompareResult:
    """Compare scorecards metric by metric and pillar by pillar.

    Parameters
    ----------
    cards
        Scorecard files (read and validated with :func:`trustbench.scorecard.load`) or
        :class:`~trustbench.scorecard.Scorecard` objects; the column order.
    allow_mixed
        Show scorecards of different tasks or profiles side by side (never ranked) instead of
        refusing them.
    rtol, atol
        Tolerance within which hardware-independent values count as equal even when they have
        no interval (or their intervals do not overlap).

    Returns
    -------
    CompareResult
        Rows, best markings, flags and warnings; render with :func:`format_compare`.

    Raises
    ------
    trustbench.errors.ScorecardError
        If a file is not a valid scorecard, or the tasks or profiles differ and
        ``allow_mixed`` is false.
    trustbench.errors.ConfigError
        If ``cards`` is empty.
    """
    if not cards:
        raise ConfigError("nothing to compare: give one or more scorecard files")
    loaded, sources = _load_all(cards)
    labels = _labels(loaded)
    warnings: list[str] = []

    tasks = [c.task.get("name") for c in loaded]
    profiles = [c.run.get("profile") for c in loaded]
    seeds = [c.run.get("seed") for c in loaded]
    settings = [c.run.get("settings") or {} for c in loaded]
    mixed = any(len(_distinct(v)) > 1 for v in (tasks, profiles, seeds, settings))
    if mixed and not allow_mixed:
        listing = "; ".join(f"{lab}: task {t!r}, profile {p!r}, seed {sd!r}"
                            + (f", settings {json.dumps(st, sort_keys=True)}" if st else "")
                            for lab, t, p, sd, st in zip(labels, tasks, profiles, seeds,
                                                         settings))
        raise ScorecardError(
            "refusing to compare scorecards of different tasks, profiles, seeds or pillar "
            "settings (" + listing + "): their numbers come from different models, data, "
            "samples or budgets and cannot be ranked. Compare scorecards of one task, profile, "
            "seed and settings, or pass allow_mixed=True (--allow-mixed) to show them side by "
            "side without ranking"
        )
    if mixed:
        warnings.append("tasks, profiles, seeds or pillar settings differ: shown side by side, "
                        "not ranked")
    ranked = not mixed and len(loaded) > 1
    divisions = _distinct([c.run.get("division") for c in loaded])
    if len(divisions) > 1:
        warnings.append(f"divisions differ ({', '.join(map(str, divisions))}): closed and open "
                        "results are not ranked against each other")
        ranked = False

    shas = _distinct([(c.task.get("model") or {}).get("sha256") for c in loaded])
    if len(shas) > 1:
        warnings.append("weights differ (model sha256 "
                        + " vs ".join(str(s)[:12] for s in shas)
                        + "): hardware-independent metrics are not comparable")
    data_shas = _distinct([(c.task.get("dataset") or {}).get("sha256") for c in loaded])
    if len(data_shas) > 1:
        warnings.append("test data differ (dataset sha256 "
                        + " vs ".join(str(s)[:12] for s in data_shas) + ")")
    torches = _distinct([(c.system.get("software") or {}).get("torch") for c in loaded])
    if len(torches) > 1:
        warnings.append(f"torch versions differ ({', '.join(map(str, torches))}): "
                        "hardware-independent metrics may move within tolerance")
    edited = [i for i, c in enumerate(loaded) if score_mismatches(c)]
    rankable = [i for i, c in enumerate(loaded)
                if c.run.get("status") == "valid" and i not in edited]
    for i, c in enumerate(loaded):
        if c.run.get("status") != "valid":
            reason = c.run.get("status_reason") or "no reason recorded"
            warnings.append(f"{labels[i]} is {c.run.get('status')} ({reason}): shown, "
                            "never marked best")
        if i in edited:
            warnings.append(f"{labels[i]}: its stored pillar scores differ from those its "
                            "metrics give (the file was edited; `trustbench validate` says "
                            "which): shown, never marked best")

    # pillars
    pillar_names: list[str] = []
    for c in loaded:
        for p in list(c.pillars) + [m.pillar for m in c.metrics]:
            if p not in pillar_names:
                pillar_names.append(p)
    pillar_rows = []
    for p in pillar_names:
        prs = [c.pillars.get(p) for c in loaded]
        scores = [pr.score if pr else None for pr in prs]
        prow = PillarRow(p, [pr.status if pr else None for pr in prs], scores)
        if ranked:
            valid = {i: float(s) for i in rankable if (s := scores[i]) is not None}
            if valid:
                top = max(valid.values())
                prow.best = [i for i, s in valid.items() if s == top]
        pillar_rows.append(prow)

    # metrics
    keys: list[str] = []
    for c in loaded:
        for m in c.metrics:
            if m.key not in keys:
                keys.append(m.key)
    rows = []
    for key in keys:
        ms = [c.metric(key) for c in loaded]
        present = [m for m in ms if m is not None]
        first = present[0]
        row = MetricRow(
            key=key, pillar=first.pillar, name=first.name, unit=first.unit,
            higher_is_better=first.higher_is_better,
            hardware_dependent=any(m.hardware_dependent for m in present),
            shape=first.shape, values=ms,
        )
        units = _distinct([m.unit for m in present])
        shapes = _distinct([m.shape for m in present])
        directions = _distinct([m.higher_is_better for m in present])
        if len(units) > 1:
            row.note = "units differ: " + ", ".join(map(str, units))
            warnings.append(f"{key}: units differ between scorecards ({', '.join(units)})")
        elif len(shapes) > 1:
            row.note = "shapes differ: " + ", ".join(shapes)
        elif len(directions) > 1:
            row.note = "higher_is_better differs"
        consistent = not row.note and row.shape == "scalar"
        if consistent and not row.hardware_dependent:
            for i, mi in enumerate(ms):
                if mi is None or _scalar(mi) is None:
                    continue
                if any(mj is not None and j != i and not _agree(mi, mj, rtol, atol)
                       for j, mj in enumerate(ms)):
                    row.differs.append(i)
        if ranked and consistent and row.higher_is_better is not None:
            _mark_best(row, ms, rankable)
        rows.append(row)

    return CompareResult(labels=labels, cards=loaded, sources=sources, pillars=pillar_rows,
                         metrics=rows, warnings=warnings, ranked=ranked, mixed=mixed)


# --------------------------------------------------------------------------- Markdown


def _md(text: Any) -> str:
    return md_escape("" if text is None else str(text))


def _cell(m: Metric | None) -> str:
    if m is None:
        return "—"
    if m.shape == "scalar":
        return md_escape(format_estimate(m.value, m.ci), keep="[]")
    v = m.value
    if m.shape == "series":
        return f"series, {len(v.get('x') or [])} points"
    if m.shape == "table":
        return f"table, {len(v.get('rows') or [])} groups"
    return f"matrix {len(v.get('rows') or [])}×{len(v.get('cols') or [])}"


def format_compare(result: CompareResult) -> str:
    """The comparison as Markdown: warnings, the scorecards, pillar scores, then metrics.

    Best values are bold and marked ``(best)``; values statistically tied with the best are
    marked ``(tied)``; hardware-independent values that disagree are marked ``≠``; the ``hw``
    column marks hardware-dependent metrics.
    """
    labels = [_md(lab) for lab in result.labels]
    out: list[str] = ["## trustbench compare", ""]
    for w in result.warnings:
        out.append(f"> ⚠ {_md(w)}")
    if result.warnings:
        out.append("")
    if not result.ranked:
        why = ("tasks, profiles, seeds or settings differ" if result.mixed else
               "a single scorecard" if len(result.cards) == 1 else "divisions differ")
        out += [f"Not ranked: {why}.", ""]

    out += ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    fields = [
        ("task", lambda c: c.task.get("name")),
        ("profile", lambda c: c.run.get("profile")),
        ("seed", lambda c: c.run.get("seed")),
        ("settings", lambda c: json.dumps(c.run.get("settings") or {}, sort_keys=True)),
        ("division", lambda c: c.run.get("division")),
        ("run status", lambda c: c.run.get("status")),
        ("model sha256", lambda c: str((c.task.get("model") or {}).get("sha256", ""))[:12]),
        ("accelerator", lambda c: c.system.get("accelerator_model_name")),
        ("host", lambda c: c.system.get("host_processor_model_name")),
        ("torch", lambda c: (c.system.get("software") or {}).get("torch")),
        ("started", lambda c: c.run.get("started")),
    ]
    for name, get in fields:
        out.append(f"| {name} | " + " | ".join(_md(get(c)) or "—" for c in result.cards) + " |")
    out.append("")

    out += ["### Pillar scores (0-100)", "",
            "| pillar | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for pr in result.pillars:
        cells = []
        for i, (status, score) in enumerate(zip(pr.statuses, pr.scores)):
            if status is None:
                cells.append("—")
            elif score is None:
                cells.append(_md(status))
            else:
                text = f"{score:.1f}"
                cells.append(f"**{text}** (best)" if i in pr.best else text)
        out.append(f"| {_md(pr.pillar)} | " + " | ".join(cells) + " |")
    out.append("")

    out += ["### Metrics", "",
            "| metric | unit | better | hw | " + " | ".join(labels) + " |",
            "|---|---|---|---|" + "---|" * len(labels)]
    for row in result.metrics:
        cells = []
        for i, m in enumerate(row.values):
            text = _cell(m)
            if i in row.best:
                text = f"**{text}** (best)"
            elif i in row.tied:
                text += " (tied)"
            if i in row.differs:
                text += " ≠"
            cells.append(text)
        better = {True: "↑", False: "↓"}.get(row.higher_is_better, "")  # type: ignore[arg-type]
        name = md_inline([Span(row.key, "code")])
        unit = _md(row.unit) + (f" ({_md(row.note)})" if row.note else "")
        hw = "hw" if row.hardware_dependent else ""
        out.append(f"| {name} | {unit} | {better} | {hw} | " + " | ".join(cells) + " |")
    out += ["", "Legend: value [CI]; **bold** (best) is the best valid column (only for one "
            "task and profile); (tied) overlaps the best's interval; ≠ marks a "
            "hardware-independent value that disagrees with another column beyond both "
            "intervals and the tolerance; hw marks hardware-dependent metrics."]
    return "\n".join(out) + "\n"

