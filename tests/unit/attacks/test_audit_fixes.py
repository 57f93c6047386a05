"""Regressions from an adversarial audit of the robustness pillar: PGD restarts never undo a
success, models without input gradients, seeded ART, corruption modes, parameter types."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from trustbench import attacks, registry
from trustbench.attacks import checks
from trustbench.attacks.art_adapters import seeded_art
from trustbench.attacks.corruptions import evaluate_corruptions
from trustbench.errors import BenchError, ConfigError, DataError, ModelError


@pytest.mark.parametrize("early_stop", [True, False])
@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.5)])
def test_more_pgd_restarts_never_make_a_broken_sample_robust(digits_model, early_stop, norm,
                                                             eps):
    model, x, y = digits_model
    x, y = x[:150], y[:150]
    runs = {r: attacks.PGD(eps=eps, norm=norm, steps=5, restarts=r, early_stop=early_stop)(
        model, x, y, input_range=(0.0, 1.0), seed=0) for r in (1, 3)}
    one, three = runs[1].robust, runs[3].robust
    assert not (three & ~one).any()  # every sample broken with 1 restart stays broken
    assert int(three.sum()) <= int(one.sum())


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.round(x.flatten(1) * 4).detach() / 4)


def test_a_model_without_input_gradients_is_named_not_crashed(digits_model):
    _, x, y = digits_model
    net = Detached().eval()
    for atk in (attacks.FGSM(eps=0.1), attacks.PGD(eps=0.1, steps=3)):
        with pytest.raises(ModelError, match="needs input gradients"):
            atk(net, x[:8], y[:8], input_range=(0.0, 1.0))
    res = checks.check_input_gradients(net, x[:8], y[:8])
    assert not res.passed and "differentiably" in res.detail


def test_art_randomness_is_seeded_and_restored():
    np.random.seed(123)
    random.seed(123)
    before = (np.random.get_state()[1][:4].tolist(), random.getstate())
    draws = []
    for _ in range(2):
        with seeded_art(7):
            draws.append((np.random.RandomState().rand(3).tolist(),
                          np.random.RandomState().rand(3).tolist(),
                          np.random.rand(2).tolist(), random.random()))
    assert draws[0] == draws[1]
    assert draws[0][0] != draws[0][1]  # each unseeded RandomState gets its own seed
    assert (np.random.get_state()[1][:4].tolist(), random.getstate()) == before
    assert np.random.RandomState is np.random.mtrand.RandomState


def test_corruptions_restore_each_submodules_mode_and_check_their_input(digits_model):
    model, x, y = digits_model
    net = nn.Sequential(nn.BatchNorm2d(1), model).train()
    net[0].eval()  # frozen BN inside a model in train mode
    modes = [m.training for m in net.modules()]
    evaluate_corruptions(net, x[:16], y[:16], names=["brightness"], severities=(1,))
    assert [m.training for m in net.modules()] == modes
    bad = [
        (dict(severities=()), ConfigError), (dict(severities=(True,)), ConfigError),
        (dict(batch_size=0), ConfigError),
    ]
    for kw, err in bad:
        with pytest.raises(err):
            evaluate_corruptions(model, x[:4], y[:4], names=["brightness"], **kw)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        evaluate_corruptions(model, x[:4] * 3, y[:4], names=["brightness"])
    with pytest.raises(DataError, match="non-empty"):
        evaluate_corruptions(model, x[:0], y[:0], names=["brightness"])
    brightness = registry.get("corruption", "brightness")()
    with pytest.raises(ConfigError, match="integer 1-5"):
        brightness(x[:2], 2.0)


@pytest.mark.parametrize("make, match", [
    (lambda: attacks.PGD(eps=0.1, steps=2.0), "steps must be an integer"),
    (lambda: attacks.PGD(eps=0.1, restarts="3"), "restarts must be an integer"),
    (lambda: attacks.PGD(eps=0.1, bogus=1), "parameters are"),
    (lambda: attacks.PGD(eps=0.1).with_params(bogus=1), "parameters are"),
])
def test_attack_parameters_of_the_wrong_type_are_named(make, match):
    with pytest.raises(BenchError, match=match):
        make()


def test_eps_may_be_a_numpy_or_tensor_scalar_and_inputs_must_be_finite(digits_model):
    model, x, y = digits_model
    assert attacks.PGD(eps=np.float32(0.25)).params.eps == pytest.approx(0.25)
    assert attacks.PGD(eps=torch.tensor(0.25)).params.eps == pytest.approx(0.25)
    xn = x[:4].clone()
    xn[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        attacks.FGSM(eps=0.1)(model, xn, y[:4], input_range=(0.0, 1.0))
    for bad in ((0.0, float("nan")), (0.0, 1.0, 2.0), (1.0, 0.0)):
        with pytest.raises(ConfigError, match="input_range"):
            attacks.FGSM(eps=0.1)(model, x[:4], y[:4], input_range=bad)
