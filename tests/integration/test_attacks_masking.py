"""A deliberately gradient-masked model must be flagged by every check that can see it.

The model quantises its input (``round(4x) / 4``), whose gradient is zero almost everywhere:
gradient-based attacks are blind and report a flattering robust accuracy. The checks must catch
it: zero input gradients, an eps covering the whole input range that does not break it, and a
black-box attack (the native Square Attack) that beats the white-box one.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustbench import attacks
from trustbench.attacks import checks
from trustbench.attacks.evaluate import evaluate_attack


class Quantize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


@pytest.fixture(scope="module")
def models():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):  # full-batch, ~0.5 s
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[:1400]), y[:1400]).backward()
        opt.step()
    net.eval()
    return net, nn.Sequential(Quantize(), net).eval(), x[1400:1550], y[1400:1550]


def test_checks_pass_on_the_plain_model(models) -> None:
    net, _, x, y = models
    assert checks.check_input_gradients(net, x, y).passed
    big = evaluate_attack(attacks.PGD(eps=1.0), net, x, y)
    assert checks.check_unbounded_eps(big.robust_correct, big.n, 1.0).passed


def test_masked_model_is_flagged(models) -> None:
    _, masked, x, y = models
    assert checks.check_deterministic(masked, x).passed  # masking is not randomness
    assert not checks.check_input_gradients(masked, x, y).passed
    big = evaluate_attack(attacks.PGD(eps=1.0), masked, x, y)
    assert not checks.check_unbounded_eps(big.robust_correct, big.n, 1.0).passed
    # with the substitution bound too: other digits exist within reach, so still flagged
    pred = masked(x).argmax(1)
    breakable = checks.substitution_breakable(x, y, x, pred, 1.0)
    assert breakable.float().mean() > 0.9
    assert not checks.check_unbounded_eps(big.robust_correct, big.n, 1.0, robust=big.robust,
                                          breakable=breakable).passed


def test_constant_model_is_not_called_masked(models) -> None:
    """A model that predicts one class everywhere cannot be broken by any attack; that is a
    degenerate model, not gradient masking."""
    _, _, x, y = models

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            out = self.lin(inp.flatten(1)) * 1e-3
            return out + torch.nn.functional.one_hot(torch.tensor(3), 10).float() * 10

    const = Constant().eval()
    big = evaluate_attack(attacks.PGD(eps=1.0), const, x, y)
    assert big.robust_correct == int((y == 3).sum()) > 0
    assert not checks.check_unbounded_eps(big.robust_correct, big.n, 1.0).passed
    breakable = checks.substitution_breakable(x, y, x, const(x).argmax(1), 1.0)
    r = checks.check_unbounded_eps(big.robust_correct, big.n, 1.0, robust=big.robust,
                                   breakable=breakable)
    assert r.passed and "no input of another predicted class" in r.detail


def test_blackbox_beats_whitebox_on_masked_model(models) -> None:
    net, masked, x, y = models
    for model, flagged in ((masked, True), (net, False)):
        wb = evaluate_attack(attacks.PGD(eps=0.1, steps=10), model, x, y)
        bb = evaluate_attack(attacks.SquareAttack(eps=0.1, max_iter=200), model, x, y)
        r = checks.check_blackbox_vs_whitebox(bb.robust_correct, wb.robust_correct, wb.n)
        assert r.passed is not flagged, r.detail
