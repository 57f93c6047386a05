"""Validity checks: pure functions on counts, and a gradient-masked model that must be flagged."""

from __future__ import annotations

import torch
from torch import nn

from trustbench import attacks
from trustbench.attacks import checks
from trustbench.attacks.evaluate import evaluate_attack


class Quantize(nn.Module):
    """``round(4x) / 4``: a non-differentiable input transformation (zero gradient a.e.)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


def test_iterative_vs_single_step_counts() -> None:
    assert checks.check_iterative_vs_single_step(50, 40, 100).passed
    assert checks.check_iterative_vs_single_step(50, 55, 100).passed  # within the interval
    r = checks.check_iterative_vs_single_step(20, 60, 100)
    assert not r.passed and "weaker" in r.detail


def test_monotone_in_eps() -> None:
    assert checks.check_monotone_in_eps([0, 0.1, 0.2], [90, 60, 30], 100).passed
    assert checks.check_monotone_in_eps([0.2, 0, 0.1], [30, 90, 62], 100).passed  # any order
    r = checks.check_monotone_in_eps([0, 0.1, 0.2], [90, 30, 70], 100)
    assert not r.passed and "0.1 -> 0.2" in r.detail


def test_unbounded_eps() -> None:
    assert checks.check_unbounded_eps(1, 200, 1.0).passed
    assert not checks.check_unbounded_eps(10, 200, 1.0).passed


def test_blackbox_vs_whitebox() -> None:
    assert checks.check_blackbox_vs_whitebox(45, 40, 200).passed
    assert checks.check_blackbox_vs_whitebox(38, 40, 200).passed
    r = checks.check_blackbox_vs_whitebox(10, 80, 200)
    assert not r.passed and "gradient masking" in r.detail


def test_check_names_are_stable() -> None:
    assert checks.check_unbounded_eps(0, 10, 1.0).name == "robustness.unbounded_eps_breaks_all"


class _Dropout(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.dropout(x.flatten(1), 0.5, training=True)[:, :3]


def test_deterministic_check_flags_randomness(digits_model) -> None:
    model, x, _y = digits_model
    assert checks.check_deterministic(model, x[:50]).passed
    assert not checks.check_deterministic(_Dropout(), x[:50]).passed


def test_gradient_masked_model_is_flagged(digits_model) -> None:
    """A quantised-input model hides its gradients; the checks must say so."""
    model, x, y = digits_model
    masked = nn.Sequential(Quantize(), model).eval()
    x, y = x[:200], y[:200]
    grad = checks.check_input_gradients(masked, x, y)
    assert not grad.passed and "gradient masking" in grad.detail
    assert checks.check_input_gradients(model, x, y).passed

    big = evaluate_attack(attacks.PGD(eps=1.0, steps=10), masked, x, y)
    unb = checks.check_unbounded_eps(big.robust_correct, big.n, 1.0)
    assert not unb.passed
    ok = evaluate_attack(attacks.PGD(eps=1.0, steps=10), model, x, y)
    assert checks.check_unbounded_eps(ok.robust_correct, ok.n, 1.0).passed
