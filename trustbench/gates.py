"""Pass/fail gates on scorecard metrics: ``utility.accuracy>=0.9``.

A gate compares a scalar metric (``pillar.name``) or a pillar score (``pillar.score``) with a
number. A gate whose metric was not measured fails, saying so, unless its pillar was skipped for
the task with a reason (fairness on a task without sensitive attributes): then it does not apply
and is recorded as skipped.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from trustbench.errors import ConfigError
from trustbench.scorecard import Gate, Scorecard

_OPS = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_GATE_RE = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\.([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$"
)


@dataclass(frozen=True)
class GateExpr:
    pillar: str
    metric: str
    op: str
    threshold: float
    text: str


def parse_gate(text: str) -> GateExpr:
    """Parse ``pillar.metric OP number``.

    Raises
    ------
    ConfigError
        Saying what the accepted form is.
    """
    m = _GATE_RE.match(text)
    if not m:
        raise ConfigError(
            f"cannot read the gate {text!r}: a gate is PILLAR.METRIC OP NUMBER, with OP one of "
            ">=, <=, >, <, ==, !=, e.g. 'utility.accuracy>=0.9' or 'robustness.score>=40'"
        )
    try:
        threshold = float(m.group(4))
    except ValueError:
        raise ConfigError(f"gate {text!r}: {m.group(4)!r} is not a number") from None
    return GateExpr(m.group(1), m.group(2), m.group(3), threshold, text.strip())


def evaluate_gate(expr: GateExpr, card: Scorecard) -> Gate:
    """Evaluate one gate against a scorecard."""
    if expr.metric == "score":
        pillar = card.pillars.get(expr.pillar)
        value = pillar.score if pillar else None
        what = f"{expr.pillar} pillar score"
    else:
        metric = card.metric(f"{expr.pillar}.{expr.metric}")
        value = metric.value if metric is not None and metric.shape == "scalar" else None
        what = f"metric {expr.pillar}.{expr.metric}"
        if metric is not None and metric.shape != "scalar":
            return Gate(expr.text, False, f"{what} is a {metric.shape}, not a number")
    if value is None:
        pillar = card.pillars.get(expr.pillar)
        if pillar is not None and pillar.status == "skipped":
            return Gate(expr.text, True, f"does not apply: the {expr.pillar} pillar was skipped "
                        f"for this task ({pillar.reason or 'no reason given'})", skipped=True)
        return Gate(expr.text, False, f"{what} was not measured in this run")
    passed = bool(_OPS[expr.op](float(value), expr.threshold))
    return Gate(expr.text, passed, f"{what} = {value:.6g}, needs {expr.op} {expr.threshold:g}")
