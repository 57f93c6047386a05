"""Native Square Attack against the libraries' (same model, data, eps and queries, CPU).

The native attack must not be weaker than torchattacks' ``Square`` (a port of AutoAttack's
reference code) or ART's ``SquareAttack`` beyond a statistical margin: its robust accuracy must
not exceed the upper end of the library's Clopper-Pearson interval. Each library is skipped
with its reason when it is not installed.
"""

from __future__ import annotations

import pytest
import torch

from tests.unit.attacks.conftest import train_digits_cnn
from trustbench import attacks
from trustbench.attacks.evaluate import evaluate_attack
from trustbench.stats import clopper_pearson_interval


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return train_digits_cnn()


def _robust_count(model, x, y, adv) -> int:
    with torch.no_grad():
        return int(((model(x).argmax(1) == y) & (model(adv).argmax(1) == y)).sum())


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.5)])
def test_native_square_as_strong_as_torchattacks(digits, norm: str, eps: float) -> None:
    torchattacks = pytest.importorskip("torchattacks", reason="the cross-check needs torchattacks")
    model, x, y = digits
    queries = 300
    native = evaluate_attack(
        attacks.SquareAttack(eps=eps, norm=norm, max_iter=queries), model, x, y, batch_size=400
    )
    # torchattacks makes n_queries iterations after its initial query
    ta = torchattacks.Square(
        model, norm="Linf" if norm == "linf" else "L2", eps=eps, n_queries=queries - 1, seed=0
    )
    adv = ta(x, y)
    k_ta = _robust_count(model, x, y, adv)
    n = len(x)
    _lo, hi = clopper_pearson_interval(k_ta, n)
    assert native.robust_accuracy <= hi, (native.robust_accuracy, k_ta / n)
    # both attack something: a broken native attack would sit near the clean accuracy
    assert native.robust_accuracy < native.clean_accuracy - 0.15
    assert k_ta / n < native.clean_accuracy - 0.15


def test_native_square_as_strong_as_art(digits) -> None:
    pytest.importorskip("art", reason="the cross-check needs ART")
    model, x, y = digits
    x, y = x[:200], y[:200]
    queries = 200
    native = evaluate_attack(attacks.SquareAttack(eps=0.1, max_iter=queries), model, x, y)
    # ART's max_iter counts the iterations after its initial query
    art = evaluate_attack(attacks.ARTSquareAttack(eps=0.1, max_iter=queries - 1), model, x, y)
    _lo, hi = art.estimate().ci
    assert native.robust_accuracy <= hi, (native.robust_accuracy, art.robust_accuracy)
    assert native.robust_accuracy < native.clean_accuracy - 0.15
    assert art.attack == "square-art" and native.attack == "square"
    # the native attack spends its queries only on samples still correctly classified
    assert native.passes_per_sample["forward"] <= queries + 3
