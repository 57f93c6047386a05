"""The attack template renders a working, registered, contract-keeping attack; profile budgets."""

from __future__ import annotations

import doctest
import importlib.util
import sys

import pytest
import torch

from trustbench import attacks, registry
from trustbench.attacks import profiles
from trustbench.attacks.base import lp_norms
from trustbench.attacks.evaluate import evaluate_attack
from trustbench.attacks.template import render_attack_template
from trustbench.errors import ConfigError


def test_template_is_a_working_plugin(tmp_path, digits_model) -> None:
    src = render_attack_template("mifgsm-test")
    assert 'name = "mifgsm-test"' in src and "class MifgsmTest(EvasionAttack)" in src
    path = tmp_path / "mifgsm_test.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("mifgsm_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mifgsm_test"] = mod
    try:
        spec.loader.exec_module(mod)
        cls = registry.get("attack", "mifgsm-test")
        assert cls is mod.MifgsmTest
        # its docstring example runs
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner()
        for t in finder.find(mod.MifgsmTest, globs={"MifgsmTest": cls}):
            runner.run(t)
        assert runner.failures == 0
        # and it is an attack worth the name: at least as strong as FGSM on the digits CNN
        model, x, y = digits_model
        mi = evaluate_attack(cls(eps=0.1, steps=5), model, x, y)
        fg = evaluate_attack(attacks.FGSM(eps=0.1), model, x, y)
        assert mi.robust_accuracy <= fg.estimate().ci[1]
        assert float(mi.perturbation_linf.max()) <= 0.1 + 1e-6
        res = cls(eps=0.5, norm="l2", steps=3)(model, x[:10], y[:10])
        assert bool((lp_norms(res.x_adv - x[:10], "l2") <= 0.5 + 1e-5).all())
    finally:
        registry.unregister("attack", "mifgsm-test")
        sys.modules.pop("mifgsm_test", None)


@pytest.mark.parametrize("bad", ["", "My Attack", "1st", "a--b", "pgd_"])
def test_template_rejects_bad_names(bad: str) -> None:
    with pytest.raises(attacks.AttackError, match="not accepted"):
        render_attack_template(bad)


def test_budgets_grow_with_profile() -> None:
    s, m, f = (profiles.budget(p) for p in ("smoke", "standard", "full"))
    assert s.n_samples <= m.n_samples <= f.n_samples
    assert s.pgd_steps <= m.pgd_steps <= f.pgd_steps
    assert not s.apgd and m.apgd and f.ensemble and f.cw_samples > 0
    with pytest.raises(ConfigError, match="smoke"):
        profiles.budget("huge")


def test_default_eps_and_sweep() -> None:
    eps = profiles.default_eps({"linf": [0.3, 0.1]}, "image")
    assert eps == {"linf": [0.1, 0.3]}
    assert profiles.headline_eps(eps, "linf") == 0.3
    assert profiles.default_eps({}, "tabular") == profiles.FALLBACK_EPS["tabular"]
    assert profiles.eps_sweep(0.3, 4) == pytest.approx([0, 0.1, 0.2, 0.3])
    assert profiles.eps_sweep(0.3, 1) == [0.3]


def test_package_docstring_examples_run() -> None:
    from trustbench.attacks import apgd, base, fgsm, pgd

    torch.manual_seed(0)
    for mod in (base, fgsm, pgd, apgd):
        res = doctest.testmod(mod, verbose=False)
        assert res.failed == 0, mod.__name__


def test_suite_settings_merge_eps_per_norm_and_check_everything() -> None:
    task_eps = {"linf": [0.1, 0.3], "l2": [1.0, 2.0]}
    eps, n = profiles.suite_settings({"eps": {"Linf": [0.2, 0.05]}}, task_eps, "image", 256)
    assert eps == {"linf": [0.05, 0.2], "l2": [1.0, 2.0]} and n == 256  # L2 kept
    eps, n = profiles.suite_settings({"eps": {"l2": 0.5}, "n_samples": 40}, None, "tabular", 9)
    assert eps == {"linf": [0.1], "l2": [0.5]} and n == 40
    bad = [
        ({"epsilon": {"linf": [0.1]}}, "unknown robustness setting"),
        ({"eps": {"l1": [0.1]}}, "unknown norm 'l1'"),
        ({"eps": {"linf": [-0.1]}}, "positive finite"),
        ({"eps": {"linf": []}}, "positive finite"),
        ({"eps": {"linf": ["a"]}}, "positive finite"),
        ({"eps": [0.1]}, "table of norm"),
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_samples": -50}, "n_samples"),
        ({"n_samples": "all"}, "n_samples"),
    ]
    for opts, match in bad:
        with pytest.raises(ConfigError, match=match):
            profiles.suite_settings(opts, task_eps, "image", 256)
