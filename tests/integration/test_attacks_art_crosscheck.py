"""Native attacks against IBM ART's on the same model, data and eps (CPU, a few seconds).

Native PGD's robust accuracy must lie in the Clopper-Pearson interval of ART's
``ProjectedGradientDescent`` (and vice versa); FGSM, which has no randomness, must agree with
ART's ``FastGradientMethod`` sample by sample.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustbench import attacks
from trustbench.attacks.evaluate import evaluate_attack

art = pytest.importorskip("art")


def _digits_cnn() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        p = torch.randperm(1400)
        for i in range(0, 1400, 128):
            idx = p[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval(), x[1400:], y[1400:]


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, x, y = _digits_cnn()
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    return model, clf, x, y


def _art_robust(clf, x, y, adv) -> np.ndarray:
    clean = clf.predict(x.numpy()).argmax(1) == y.numpy()
    return clean & (clf.predict(adv).argmax(1) == y.numpy())


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.75)])
def test_native_pgd_within_interval_of_art_pgd(setup, norm: str, eps: float) -> None:
    from art.attacks.evasion import ProjectedGradientDescent

    from trustbench.stats import clopper_pearson_interval

    model, clf, x, y = setup
    steps = 10
    np.random.seed(0)
    art_pgd = ProjectedGradientDescent(
        clf,
        norm=np.inf if norm == "linf" else 2,
        eps=eps,
        eps_step=2.5 * eps / steps,
        max_iter=steps,
        num_random_init=1,
        batch_size=400,
        verbose=False,
    )
    adv = art_pgd.generate(x=x.numpy(), y=y.numpy())
    k_art = int(_art_robust(clf, x, y, adv).sum())
    n = len(x)
    native = evaluate_attack(
        attacks.PGD(eps=eps, norm=norm, steps=steps), model, x, y, batch_size=400
    )
    lo, hi = clopper_pearson_interval(k_art, n)
    assert lo <= native.robust_accuracy <= hi, (native.robust_accuracy, k_art / n)
    nlo, nhi = native.estimate().ci
    assert nlo <= k_art / n <= nhi
    # a meaningful comparison: the attack does something on this model
    assert native.robust_accuracy < native.clean_accuracy - 0.1


def test_native_ensemble_within_interval_of_art_autoattack(setup) -> None:
    """Native APGD-CE + APGD-DLR worst case vs ART's AutoAttack (APGD-CE, APGD-DLR, Square)."""
    from trustbench.attacks.evaluate import worst_case
    from trustbench.stats import clopper_pearson_interval

    model, _, x, y = setup
    x, y = x[:150], y[:150]
    aa = evaluate_attack(
        attacks.ARTAutoAttack(eps=0.1, max_iter=20, square_queries=200), model, x, y
    )
    ce = evaluate_attack(attacks.APGDCE(eps=0.1, steps=20), model, x, y)
    dlr = evaluate_attack(attacks.APGDDLR(eps=0.1, steps=20), model, x, y)
    k, n = worst_case([ce, dlr])
    lo, hi = clopper_pearson_interval(aa.robust_correct, n)
    assert lo <= k / n <= hi, (k / n, aa.robust_accuracy)
    assert float(aa.perturbation_linf.max()) <= 0.1 + 1e-6


def test_native_fgsm_matches_art_sample_by_sample(setup) -> None:
    from art.attacks.evasion import FastGradientMethod

    model, clf, x, y = setup
    adv = FastGradientMethod(clf, norm=np.inf, eps=0.1, batch_size=400).generate(
        x=x.numpy(), y=y.numpy()
    )
    res = attacks.FGSM(eps=0.1)(model, x, y)
    diff = np.abs(res.x_adv.numpy() - adv)
    # identical except where a gradient component is ~0 and its sign flips with float noise
    assert float((diff > 1e-5).mean()) < 0.01
    art_rob = _art_robust(clf, x, y, adv)
    agree = float((res.robust.numpy() == art_rob).mean())
    assert agree >= 0.99
