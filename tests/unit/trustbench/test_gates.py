from __future__ import annotations

import pytest

from tests.unit.trustbench.test_scorecard import make_card
from trustbench.errors import ConfigError
from trustbench.gates import evaluate_gate, parse_gate


@pytest.mark.parametrize("expr,passed", [
    ("utility.accuracy>=0.9", True), ("utility.accuracy > 0.9", False),
    ("utility.ece<=0.1", True), ("utility.score>=89.9", True), ("utility.score<50", False),
])
def test_gates(expr, passed):
    gate = evaluate_gate(parse_gate(expr), make_card())
    assert gate.passed is passed and gate.expr == expr.strip()


def test_missing_metric_fails_with_reason():
    gate = evaluate_gate(parse_gate("fairness.demographic_parity_difference<=0.1"), make_card())
    assert not gate.passed and "not measured" in gate.detail


def test_non_scalar_metric_fails_with_reason():
    gate = evaluate_gate(parse_gate("robustness.curve>=0"), make_card())
    assert not gate.passed and "series" in gate.detail


@pytest.mark.parametrize("bad", ["accuracy>=0.9", "utility.accuracy=>0.9", "utility.acc >= x"])
def test_bad_gate_is_clear(bad):
    with pytest.raises(ConfigError, match="PILLAR.METRIC OP NUMBER"):
        parse_gate(bad)


def test_a_gate_on_a_pillar_skipped_for_the_task_does_not_apply():
    from trustbench.scorecard import PillarResult
    from trustbench.summary import format_summary

    card = make_card()
    card.pillars["fairness"] = PillarResult("skipped", "task digits-cnn has no sensitive "
                                            "attributes", None)
    gate = evaluate_gate(parse_gate("fairness.selection_rate_ratio>=0.8"), card)
    assert gate.passed and gate.skipped and "does not apply" in gate.detail
    assert "no sensitive attributes" in gate.detail
    card.pillars["fairness"] = PillarResult("failed", "a test failed", None)
    gate = evaluate_gate(parse_gate("fairness.selection_rate_ratio>=0.8"), card)
    assert not gate.passed and not gate.skipped
    card.gates = [evaluate_gate(parse_gate("fairness.score>=1"), card)]
    assert any("FAILED" in line for line in format_summary(card))
