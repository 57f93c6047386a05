"""Plain-text summary table of a scorecard (terminal output of pytest and the CLI)."""

from __future__ import annotations

from trustbench.scorecard import Metric, Scorecard


def format_value(m: Metric) -> str:
    """``0.953 [0.938, 0.965]`` for scalars, a short description for other shapes."""
    shape = m.shape
    if shape == "scalar":
        if m.value is None:
            return "n/a"
        text = _num(m.value)
        lo, hi = m.ci if m.ci is not None else (None, None)
        if lo is not None and hi is not None:
            text += f" [{_num(lo)}, {_num(hi)}]"
            conf = (m.params or {}).get("confidence")
            if isinstance(conf, (int, float)) and abs(conf - 0.95) > 1e-9:
                text += f" ({conf:.0%} CI)"
        return text
    if shape == "series":
        return f"series of {len(m.value.get('x', []))} points"
    if shape == "table":
        return f"table of {len(m.value.get('rows', []))} groups"
    return f"matrix {len(m.value.get('rows', []))}x{len(m.value.get('cols', []))}"


def _num(v: float) -> str:
    if isinstance(v, int) or (float(v).is_integer() and abs(v) < 1e15):
        return str(int(v))
    v = float(v)
    if abs(v) >= 1e6 or abs(v) < 1e-3:
        return f"{v:.3e}"
    return f"{v:.4g}"


def format_summary(card: Scorecard) -> list[str]:
    """Lines: a header, then pillar | metric | value [CI] | unit | n, then checks and gates."""
    run = card.run
    lines = [
        f"task {card.task.get('name')} | system {card.system.get('id')} | profile "
        f"{run.get('profile')} | division {run.get('division')} | status {run.get('status')}"
        + (f" ({run['status_reason']})" if run.get("status_reason") else ""),
    ]
    rows = [("pillar", "metric", "value [95% CI unless noted]", "unit", "n")]
    for m in card.metrics:
        rows.append((m.pillar, m.name + (" *" if m.hardware_dependent else ""), format_value(m),
                     m.unit, "" if m.n is None else str(m.n)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(m.hardware_dependent for m in card.metrics):
        lines.append("(* hardware-dependent)")
    for name, p in card.pillars.items():
        score = "" if p.score is None else f" score {p.score:.1f}/100"
        reason = f" ({p.reason})" if p.reason else ""
        lines.append(f"pillar {name}: {p.status}{score}{reason}")
    for c in card.checks:
        lines.append(f"check {c.name}: {'passed' if c.passed else 'FAILED'}"
                     + (f" ({c.detail})" if c.detail and not c.passed else ""))
    for g in card.gates:
        verdict = "skipped" if g.skipped else "passed" if g.passed else "FAILED"
        lines.append(f"gate {g.expr}: {verdict} ({g.detail})")
    return lines
