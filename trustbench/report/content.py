"""The report's content: which sections, in which order, with what text, from one scorecard.

:func:`build_document` turns a :class:`~trustbench.scorecard.Scorecard` into a
:class:`~trustbench.report.document.Doc`: the run status (with a callout when the run is not
valid, its scores were edited, or checks or gates failed), run/system/task, the pillar overview,
one section per pillar (scalar metrics as a table, each other metric with its caption, group
table and plot), checks, gates and a legend. Metrics are placed by the shape of their value,
never by pillar name, so a new pillar's report comes for free.
"""

from __future__ import annotations

from typing import Any

from trustbench.report.document import (
    BulletList,
    Callout,
    Doc,
    Heading,
    Image,
    Inline,
    Para,
    Span,
    Table,
)
from trustbench.report.formatting import (
    MISSING,
    format_estimate,
    format_score,
    format_value,
    short_hash,
    slug,
)
from trustbench.report.plots import plot_metric
from trustbench.scorecard import Metric, Scorecard, score_mismatches


def _txt(v: Any) -> str:
    return MISSING if v is None or v == "" else str(v)


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


def _summary(card: Scorecard) -> list[Inline]:
    run, system, task = card.run, card.system, card.task
    items: list[Inline] = []
    items.append([
        Span("Run: ", "b"), Span(_txt(run.get("id")), "code"),
        Span(f", started {_txt(run.get('started'))}, finished {_txt(run.get('finished'))}, "
             f"seed {_txt(run.get('seed'))}, trustbench {_txt(run.get('trustbench_version'))}"
             f", device {_txt(run.get('device'))}"),
    ])
    argv = run.get("argv")
    if isinstance(argv, list) and argv:
        items.append([Span("Command: ", "b"), Span(" ".join(map(str, argv)), "code")])
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
    items.append([Span("System: ", "b"), Span(_txt(system.get("id")), "code"),
                  Span(f"; accelerator {acc}; host {host}; OS "
                       f"{_txt(system.get('operating_system'))}")])
    for label, key in (("Jetson: ", "jetson"), ("Software: ", "software")):
        entries = system.get(key)
        if isinstance(entries, dict) and entries:
            items.append([Span(label, "b"),
                          Span(", ".join(f"{k} {v}" for k, v in entries.items()))])
    model: dict[str, Any] = task["model"] if isinstance(task.get("model"), dict) else {}
    params = model.get("parameters")
    items.append([
        Span("Model: ", "b"), Span(_txt(model.get("name"))),
        Span(f" (source {_txt(model.get('source'))}, "
             f"{f'{params:,}' if isinstance(params, int) else MISSING} parameters), sha256 "),
        Span(short_hash(model.get("sha256")), "code"),
    ])
    data: dict[str, Any] = task["dataset"] if isinstance(task.get("dataset"), dict) else {}
    n = data.get("n")
    items.append([
        Span("Dataset: ", "b"), Span(_txt(data.get("name"))),
        Span(f" (source {_txt(data.get('source'))}, split {_txt(data.get('split'))}), "
             f"n = {f'{n:,}' if isinstance(n, int) else MISSING}, sha256 "),
        Span(short_hash(data.get("sha256")), "code"),
    ])
    return items


def _pillar_order(card: Scorecard) -> list[str]:
    order = list(card.pillars)
    for m in card.metrics:
        if m.pillar not in order:
            order.append(m.pillar)
    return order


def _status_span(status: str) -> Span:
    style = {"measured": "good", "skipped": "b", "failed": "bad"}.get(status, "")
    return Span(status, style)


def build_document(card: Scorecard, stem: str, with_plots: bool) -> tuple[Doc, int]:
    """The report's document tree, and how many plots it holds."""
    task_name = _txt(card.task.get("name"))
    system_id = _txt(card.system.get("id"))
    doc = Doc(f"trustbench report: {task_name} on {system_id}")
    status = str(card.run.get("status") or "unknown")
    doc.add(Para([
        Span("Task "), Span(task_name, "code"), Span(" · system "), Span(system_id, "code"),
        Span(" · profile "), Span(_txt(card.run.get("profile")), "b"),
        Span(" · division "), Span(_txt(card.run.get("division")), "b"),
        Span(" · run status "), Span(status.upper(), "good" if status == "valid" else "bad"),
    ]))
    if status != "valid":
        reason = card.run.get("status_reason") or "no reason recorded"
        doc.add(Callout("bad", [
            Span(f"This run is {status.upper()}: ", "b"), Span(str(reason)),
            Span(". Its numbers are not a valid benchmark result."),
        ]))
    if score_mismatches(card):
        doc.add(Callout("bad", [
            Span("Edited scores: ", "b"),
            Span("the stored pillar scores differ from those the metrics give; run "
                 "`trustbench validate` on the file. The pillar overview below shows the "
                 "stored values."),
        ]))
    failed_checks = [c for c in card.checks if not c.passed]
    failed_gates = [g for g in card.gates if not g.passed]
    if failed_checks or failed_gates:
        doc.add(Callout("warn", (
            f"{len(failed_checks)} of {len(card.checks)} checks failed, "
            f"{len(failed_gates)} of {len(card.gates)} gates failed (see below)."
        )))

    doc.add(Heading(2, "Run, system and task"), BulletList(_summary(card)))

    order = _pillar_order(card)
    overview = []
    for p in order:
        pr = card.pillars.get(p)
        overview.append([
            Span(p, "b"), [_status_span(pr.status)] if pr else MISSING,
            format_score(pr.score) if pr else MISSING,
            _txt(pr.reason) if pr and pr.reason else "",
        ])
    doc.add(Heading(2, "Pillars"))
    if overview:
        doc.add(Table(["pillar", "status", "score (0-100)", "reason"], overview))
    else:
        doc.add(Para("No pillar was measured."))

    n_plots = 0
    for p in order:
        pr = card.pillars.get(p)
        metrics = [m for m in card.metrics if m.pillar == p]
        head: list[Span] = [Span(p)]
        if pr is not None:
            head.append(Span(f" — {pr.status}"))
            if pr.score is not None:
                head.append(Span(f", score {format_score(pr.score)}"))
        doc.add(Heading(2, head, anchor=f"pillar-{slug(p)}"))
        if pr is not None and pr.reason:
            doc.add(Para([Span("Reason: ", "b"), Span(pr.reason)]))
        if not metrics:
            doc.add(Para("No metrics recorded."))
            continue
        scalars = [m for m in metrics if m.shape == "scalar"]
        if scalars:
            with_params = any(m.params for m in scalars)
            headers = ["metric", "value [CI]", "unit", "n", "better", "hardware-dependent"]
            if with_params:
                headers.append("params")
            rows = []
            for m in scalars:
                row: list[Inline] = [
                    [Span(m.name, "code")], Span(format_estimate(m.value, m.ci), "own"),
                    m.unit or "",
                    _txt(m.n), _direction(m), "yes (hw)" if m.hardware_dependent else "no",
                ]
                if with_params:
                    row.append(_params_text(m.params))
                rows.append(row)
            doc.add(Table(headers, rows))
        for m in metrics:
            if m.shape == "scalar":
                continue
            n_plots += _add_plot(doc, m, stem, n_plots, with_plots)

    doc.add(Heading(2, "Checks"))
    if card.checks:
        doc.add(Table(["result", "pillar", "check", "detail"], [
            [[Span("PASS", "good") if c.passed else Span("FAIL", "bad")], c.pillar or "",
             [Span(c.name, "code")], c.detail or ""]
            for c in card.checks
        ]))
    else:
        doc.add(Para("No checks recorded."))
    doc.add(Heading(2, "Gates"))
    if card.gates:
        doc.add(Table(["result", "gate", "detail"], [
            [[Span("SKIP", "b") if g.skipped else Span("PASS", "good") if g.passed
              else Span("FAIL", "bad")],
             [Span(g.expr, "code")], g.detail or ""]
            for g in card.gates
        ]))
    else:
        doc.add(Para("No gates set."))
    doc.add(Para([Span(
        "Legend: value [CI] is the estimate with its confidence interval; hardware-dependent "
        "metrics (hw) change with the machine, the others should not for the same weights and "
        "seed. Rendered by trustbench.report from a scorecard of schema ", "own"),
        Span(card.schema, "code"), Span(".")]))
    return doc, n_plots


def _add_plot(doc: Doc, m: Metric, stem: str, index: int, with_plots: bool) -> int:
    """Add one non-scalar metric (heading, caption, plot); returns 1 if a plot was drawn."""
    doc.add(Heading(3, [Span(m.name, "code"), Span(f" ({m.shape})")]))
    bits = [Span(f"unit {m.unit or MISSING}")]
    if m.n is not None:
        bits.append(Span(f"n = {m.n}"))
    if m.higher_is_better is not None:
        bits.append(Span(_direction(m) + " is better"))
    if m.ci is not None:
        lo, hi = (format_value(b) for b in m.ci)
        bits.append(Span(f"overall CI [{lo}, {hi}]", "own"))
    if m.hardware_dependent:
        bits.append(Span("hardware-dependent (hw)"))
    if m.params:
        bits.append(Span(_params_text(m.params)))
    caption: list[Span] = [Span(f"{m.key}: ")]
    for i, bit in enumerate(bits):
        caption += [Span("; ")] * (i > 0) + [bit]
    if m.shape == "table" and isinstance(m.value.get("rows"), list):
        rows = [r for r in m.value["rows"] if isinstance(r, dict)]
        doc.add(Table(["group", "value [CI]", "n"], [
            [_txt(r.get("group")), Span(format_estimate(r.get("value"), r.get("ci")), "own"),
             _txt(r.get("n"))]
            for r in rows
        ]))
    if not with_plots:
        doc.add(Para([Span("Plot not drawn: ", "b"), Span("matplotlib is not installed.")]))
        return 0
    try:
        png = plot_metric(m)
    except ValueError as exc:
        doc.add(Para([Span("Plot not drawn: ", "b"), Span(f"{m.key}: {exc}")]))
        return 0
    name = f"{index + 1:02d}-{slug(m.pillar)}-{slug(m.name)}.png"
    doc.add(Image(name, png, f"{m.key} ({m.shape})", caption))
    return 1

