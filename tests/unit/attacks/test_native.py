"""FGSM, PGD and APGD on a trained digits CNN: results in bands, not merely "it ran"."""

from __future__ import annotations

import pytest
import torch

from trustbench import attacks
from trustbench.attacks.evaluate import evaluate_attack, robust_accuracy_at, worst_case
from trustbench.attacks.losses import dlr_loss, margin_loss


@pytest.fixture(scope="module")
def evals(digits_model):
    model, x, y = digits_model
    out = {}
    for key, atk in {
        "fgsm": attacks.FGSM(eps=0.1),
        "pgd": attacks.PGD(eps=0.1, steps=10),
        "pgd-noes": attacks.PGD(eps=0.1, steps=10, early_stop=False),
        "apgd-ce": attacks.APGDCE(eps=0.1, steps=20),
        "apgd-dlr": attacks.APGDDLR(eps=0.1, steps=20),
        "pgd-big": attacks.PGD(eps=0.3, steps=10),
        "pgd-l2": attacks.PGD(eps=1.0, norm="l2", steps=10),
        "fgm-l2": attacks.FGSM(eps=1.0, norm="l2"),
    }.items():
        out[key] = evaluate_attack(atk, model, x, y, batch_size=200, seed=0)
    return out


def test_clean_accuracy_band(evals) -> None:
    assert 0.9 <= evals["fgsm"].clean_accuracy <= 1.0


def test_iterative_at_least_as_strong_as_single_step(evals) -> None:
    for single, it in [("fgsm", "pgd"), ("fgm-l2", "pgd-l2")]:
        _lo, hi = evals[single].estimate().ci
        assert evals[it].robust_accuracy <= hi
    # and strictly useful here: the undefended model loses accuracy under attack
    assert evals["pgd"].robust_accuracy < evals["pgd"].clean_accuracy - 0.2


def test_apgd_in_band_of_pgd(evals) -> None:
    _lo, hi = evals["pgd"].estimate().ci
    for k in ("apgd-ce", "apgd-dlr"):
        assert evals[k].robust_accuracy <= hi
    k, _n = worst_case([evals["pgd"], evals["apgd-ce"], evals["apgd-dlr"]])
    assert k <= min(evals[a].robust_correct for a in ("pgd", "apgd-ce", "apgd-dlr"))


def test_large_eps_breaks_an_undefended_model(evals) -> None:
    assert evals["pgd-big"].robust_accuracy <= 0.02


def test_early_stop_saves_passes_without_weakening(evals) -> None:
    es, full = evals["pgd"], evals["pgd-noes"]
    lo, hi = full.estimate().ci
    assert lo <= es.robust_accuracy <= hi
    assert es.stats.backward_samples < full.stats.backward_samples
    assert full.passes_per_sample["backward"] == pytest.approx(10 * full.clean_accuracy, abs=0.01)


def test_perturbations_respect_eps(evals) -> None:
    assert float(evals["pgd"].perturbation_linf.max()) <= 0.1 + 1e-6
    assert float(evals["pgd-l2"].perturbation_l2.max()) <= 1.0 + 1e-5
    assert evals["pgd"].success_rate == pytest.approx(
        1 - evals["pgd"].robust_correct / evals["pgd"].clean_correct
    )


def test_same_seed_same_result(digits_model) -> None:
    model, x, y = digits_model
    a = attacks.PGD(eps=0.1, steps=5)
    r1 = evaluate_attack(a, model, x[:100], y[:100], seed=3)
    r2 = evaluate_attack(a, model, x[:100], y[:100], seed=3)
    assert torch.equal(r1.robust, r2.robust)
    assert torch.equal(r1.perturbation_l2, r2.perturbation_l2)


def test_restarts_never_hurt(digits_model) -> None:
    model, x, y = digits_model
    one = evaluate_attack(attacks.PGD(eps=0.07, steps=5), model, x, y, seed=0)
    three = evaluate_attack(attacks.PGD(eps=0.07, steps=5, restarts=3), model, x, y, seed=0)
    assert three.robust_correct <= one.robust_correct  # restart 1 is the same run
    assert bool((three.robust <= one.robust).all())


def test_robust_accuracy_at_for_minimal_norm_results(evals) -> None:
    e = evals["pgd-l2"]
    assert robust_accuracy_at(e, 10.0) == pytest.approx(e.robust_accuracy)
    assert robust_accuracy_at(e, 0.0) == pytest.approx(e.clean_accuracy)


def test_losses() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.5]])
    y = torch.tensor([0, 0])
    assert margin_loss(logits, y).tolist() == [-2.0, 2.0]
    d = dlr_loss(logits, y)
    assert d[0] == pytest.approx(-(3 - 1) / (3 - 0)) and d[1] == pytest.approx(2 / (2 - 0.5))
    # DLR is invariant to scaling and shifting the logits
    assert torch.allclose(dlr_loss(5 * logits + 2, y), d)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_path_matches_eager(digits_model) -> None:
    model, x, y = digits_model
    m = model.cuda()
    try:
        xc, yc = x.cuda(), y.cuda()
        g = evaluate_attack(attacks.PGD(eps=0.1, steps=10), m, xc, yc, seed=0)
        e = evaluate_attack(attacks.PGD(eps=0.1, steps=10, cuda_graph=False), m, xc, yc, seed=0)
        lo, hi = e.estimate().ci
        assert lo <= g.robust_accuracy <= hi
        assert float(g.perturbation_linf.max()) <= 0.1 + 1e-6
    finally:
        model.cpu()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "apgd-dlr"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_native_attacks_keep_promises_on_cuda(digits_model, name: str, norm: str) -> None:
    from trustbench import registry

    model, x, y = digits_model
    m = model.cuda()
    try:
        xc, yc = x[:128].cuda(), y[:128].cuda()
        before = [p.detach().clone() for p in m.parameters()]
        eps = 0.1 if norm == "linf" else 0.5
        kw = {"steps": 10} if name != "fgsm" else {}
        atk = registry.get("attack", name)(eps=eps, norm=norm, **kw)
        for _ in range(2):  # the second call replays cached CUDA graphs
            res = atk(m, xc, yc)
            assert res.x_adv.is_cuda and res.x_adv.shape == xc.shape
            assert bool((attacks.lp_norms(res.x_adv - xc, norm) <= eps * (1 + 1e-5)).all())
            assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
            with torch.no_grad():
                assert torch.equal(m(res.x_adv).argmax(1) == yc, res.adv_correct)
        assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
        assert all(p.requires_grad for p in m.parameters())
    finally:
        model.cpu()


def test_cpu_channels_last_path_matches_plain_path(digits_model) -> None:
    model, x, y = digits_model
    fast = attacks.PGD(eps=0.1, steps=5)
    plain = attacks.PGD(eps=0.1, steps=5)
    plain.channels_last_on_cpu = False
    a = evaluate_attack(fast, model, x, y, seed=0)
    b = evaluate_attack(plain, model, x, y, seed=0)
    assert fast._channels_last_ok[id(model)][1] is True  # verified and used
    assert int((a.robust != b.robust).sum()) <= 2  # float rounding may flip a borderline one
    assert a.stats.forward_samples == b.stats.forward_samples + len(x[:256])  # one check pass
