"""The base class's guarantees and its errors for bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trustbench import attacks, registry
from trustbench.attacks.base import AttackContext, AttackParams, EvasionAttack, lp_norms, project
from trustbench.attacks.evaluate import ensure_deterministic, evaluate_attack
from trustbench.errors import DataError, ModelError


def _lin() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


@dataclass
class _Params(AttackParams):
    pass


class _Wild(EvasionAttack):
    """Returns a point far outside the ball and the range: the base must project it."""

    abstract = True  # not registered
    name = "wild-test"
    Params = _Params

    def perturb(self, model, x, y, ctx: AttackContext):
        return x + 10 * torch.randn(x.shape, generator=ctx.generator)


class _Vandal(_Wild):
    """Changes the model's weights in place: the base must refuse."""

    def perturb(self, model, x, y, ctx):
        with torch.no_grad():
            next(ctx.raw_model.parameters()).add_(1.0)
        return x


class _InPlace(_Wild):
    """Modifies its input in place: the base must refuse."""

    def perturb(self, model, x, y, ctx):
        x.add_(0.0)
        return x


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_base_projects_into_ball_and_range(norm: str) -> None:
    x = torch.rand(10, 1, 4, 4)
    y = torch.randint(0, 3, (10,))
    res = _Wild(eps=0.2, norm=norm)(_lin(), x, y)
    assert bool((lp_norms(res.x_adv - x, norm) <= 0.2 + 1e-6).all())
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1


def test_tabular_inputs_are_not_clipped() -> None:
    x = torch.randn(10, 16) * 3
    y = torch.randint(0, 3, (10,))
    res = _Wild(eps=0.5)(_lin(), x, y, input_range=None)
    assert float((res.x_adv - x).abs().max()) == pytest.approx(0.5)
    assert float(res.x_adv.max()) > 1


def test_base_refuses_attacks_that_change_the_model_or_the_input() -> None:
    x, y = torch.rand(4, 16), torch.randint(0, 3, (4,))
    with pytest.raises(attacks.AttackError, match="parameters"):
        _Vandal(eps=0.1)(_lin(), x, y)
    with pytest.raises(attacks.AttackError, match="input tensor"):
        _InPlace(eps=0.1)(_lin(), x, y)


@pytest.mark.parametrize("eps", [-0.1, math.nan, "0.1"])
def test_bad_eps_is_rejected(eps: object) -> None:
    with pytest.raises(attacks.AttackError, match="eps"):
        attacks.PGD(eps=eps)


def test_absurd_eps_names_the_limit() -> None:
    x, y = torch.rand(4, 16), torch.randint(0, 3, (4,))
    with pytest.raises(attacks.AttackError, match=r"absurd.*8/255"):
        attacks.PGD(eps=8)(_lin(), x, y)
    with pytest.raises(attacks.AttackError, match="absurd"):
        attacks.PGD(eps=5.0, norm="l2")(_lin(), x, y)  # > sqrt(16) = 4
    with pytest.raises(attacks.AttackError, match="inf"):
        attacks.PGD(eps=math.inf)


def test_unknown_attack_lists_registered_ones() -> None:
    with pytest.raises(registry.RegistryError, match=r"pgd.*|.*apgd-ce"):
        registry.get("attack", "pgdd")


def test_unknown_parameter_lists_the_parameters() -> None:
    with pytest.raises(attacks.AttackError, match="step_size"):
        attacks.PGD(eps=0.1, stepz=3)


def test_inputs_outside_unit_range_explain_normalisation() -> None:
    x = torch.randn(4, 16)  # normalised by mistake
    y = torch.randint(0, 3, (4,))
    with pytest.raises(DataError, match="normalisation"):
        attacks.FGSM(eps=0.1)(_lin(), x, y)


def test_bad_labels_and_shapes() -> None:
    x = torch.rand(4, 16)
    with pytest.raises(DataError, match="int64"):
        attacks.FGSM(eps=0.1)(_lin(), x, torch.zeros(4))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        attacks.FGSM(eps=0.1)(_lin(), x, torch.full((4,), 7))
    with pytest.raises(attacks.AttackError, match="norm"):
        attacks.CarliniWagnerL2(norm="linf")


def test_dlr_needs_three_classes() -> None:
    model = nn.Linear(4, 2)
    with pytest.raises(attacks.AttackError, match="3 classes"):
        attacks.APGDDLR(eps=0.1, steps=2)(model, torch.rand(3, 4), torch.zeros(3, dtype=torch.long))


class _Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + torch.randn(len(x), 3)  # random even in eval mode


def test_nondeterministic_model_is_refused() -> None:
    x, y = torch.rand(8, 16), torch.randint(0, 3, (8,))
    with pytest.raises(ModelError, match="not deterministic"):
        ensure_deterministic(_Noisy(), x)
    with pytest.raises(ModelError, match="not deterministic"):
        evaluate_attack(attacks.FGSM(eps=0.1), _Noisy(), x, y)


def test_eps_zero_returns_the_input_and_clean_accuracy() -> None:
    x, y = torch.rand(6, 16), torch.randint(0, 3, (6,))
    res = attacks.PGD(eps=0.0)(_lin(), x, y)
    assert torch.equal(res.x_adv, x)
    assert torch.equal(res.adv_correct, res.clean_correct)


def test_with_params_copies() -> None:
    a = attacks.PGD(eps=0.1, steps=7)
    b = a.with_params(eps=0.2)
    assert (b.params.eps, b.params.steps, a.params.eps) == (0.2, 7, 0.1)


@settings(max_examples=40, deadline=None)
@given(
    eps=st.floats(0.0, 2.0),
    scale=st.floats(0.0, 20.0),
    norm=st.sampled_from(["linf", "l2"]),
    seed=st.integers(0, 2**16),
)
def test_projection_never_leaves_ball_or_range(
    eps: float, scale: float, norm: str, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(5, 3, 4, generator=g)
    xa = x + scale * torch.randn(5, 3, 4, generator=g)
    out = project(xa, x, eps, norm)
    assert bool((lp_norms(out - x, norm) <= eps * (1 + 1e-5) + 1e-6).all())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
