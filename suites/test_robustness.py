"""Robustness pillar: does the model survive adversarial and corrupted inputs, and is the
evaluation itself trustworthy?

Adversarial robustness: robust accuracy per (attack, norm, eps) with Clopper-Pearson intervals,
the per-sample worst case over all attacks at the headline eps (the score), the curve against
eps, attack success rates and the passes spent. Natural robustness: common corruptions (image
tasks). Validity checks (Carlini et al. 2019; AutoAttack's flags) are recorded in the scorecard
and fail their test when violated: a run whose evaluation is unreliable is not a valid run.

What runs in each profile is :func:`trustbench.attacks.profiles.budget`; default eps per
task come from :func:`trustbench.attacks.profiles.task_eps`. Settings in
``[tool.trustbench.robustness]``: ``n_samples`` (int), ``eps`` ({"linf": [...], "l2": [...]}).
"""

from __future__ import annotations

import importlib.util
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from trustbench.attacks import checks, profiles
from trustbench.attacks.evaluate import RobustEvaluation, evaluate_attack, robust_accuracy_at

from trustbench import attacks, registry
from trustbench.stats import clopper_pearson_interval

NORMS = ("linf", "l2")
#: Score weights: worst-case robust accuracy at the headline eps per norm, corruption accuracy.
WEIGHT_LINF, WEIGHT_L2, WEIGHT_CORRUPTION = 0.35, 0.35, 0.3


@dataclass
class Ctx:
    """Everything the tests of one task share: data subset, budgets, memoised evaluations."""

    task: Any
    budget: profiles.RobustnessBudget
    eps: dict[str, list[float]]
    x: torch.Tensor
    y: torch.Tensor
    seed: int
    evals: dict[tuple[Any, ...], RobustEvaluation] = field(default_factory=dict)

    @property
    def input_range(self) -> tuple[float, float] | None:
        return self.task.input_range

    def run(
        self, name: str, norm: str, eps: float, n: int | None = None, **params: Any
    ) -> RobustEvaluation:
        """Evaluate attack ``name`` at (norm, eps) on the first ``n`` samples (memoised)."""
        n = len(self.x) if n is None else min(n, len(self.x))
        key = (name, norm, float(eps), n, tuple(sorted(params.items())))
        if key not in self.evals:
            atk = registry.get("attack", name)(eps=eps, norm=norm, **params)
            self.evals[key] = evaluate_attack(
                atk,
                self.task.model,
                self.x[:n],
                self.y[:n],
                batch_size=self.budget.batch_size,
                input_range=self.input_range,
                device=self.task.device,
                seed=self.seed,
            )
        return self.evals[key]

    def pgd(self, norm: str, eps: float) -> RobustEvaluation:
        b = self.budget
        return self.run("pgd", norm, eps, steps=b.pgd_steps, restarts=b.pgd_restarts)

    def apgd(self, loss: str, norm: str, eps: float) -> RobustEvaluation:
        b = self.budget
        return self.run(f"apgd-{loss}", norm, eps, steps=b.apgd_steps, restarts=b.apgd_restarts)

    def square(self, norm: str, eps: float) -> RobustEvaluation:
        b = self.budget
        return self.run("square", norm, eps, n=b.blackbox_samples, max_iter=b.square_queries)

    @property
    def dlr_ok(self) -> bool:
        return self.task.num_classes >= 3


@pytest.fixture(scope="module")
def ctx(task, bench_config) -> Ctx:
    b = profiles.budget(bench_config.profile)
    eps, n = profiles.suite_settings(bench_config.pillar_options("robustness"),
                                     profiles.task_eps(task), task.modality, b.n_samples)
    gen = torch.Generator().manual_seed(bench_config.seed)
    perm = torch.randperm(len(task.x_test), generator=gen)[:n]
    return Ctx(task, b, eps, task.x_test[perm], task.y_test[perm], bench_config.seed)


def _headline(ctx: Ctx, norm: str) -> float:
    if norm not in ctx.eps:
        pytest.skip(f"task {ctx.task.name} declares no {norm} eps")
    return profiles.headline_eps(ctx.eps, norm)


def metric_id(name: str, *parts: Any) -> str:
    """A metric name unique within the scorecard, e.g. ``robust_accuracy.pgd.linf.0.1``.

    Gates and ``trustbench compare`` address metrics by ``pillar.name``, so every measured
    (attack, norm, eps) gets its own name; the same values stay in ``params``.
    """
    tags = [f"{p:.4g}" if isinstance(p, float) else str(p) for p in parts]
    return ".".join([name, *tags])


def _record_eval(record_metric, e: RobustEvaluation, **extra: Any) -> None:
    lo, hi = e.interval()
    params = {
        "attack": e.attack,
        "norm": e.norm,
        "eps": e.eps,
        "interval": "clopper-pearson",
        **{k: v for k, v in e.params.items() if k not in ("eps", "norm")},
        **extra,
    }
    record_metric(
        metric_id("robust_accuracy", e.attack, e.norm, e.eps),
        e.robust_accuracy,
        unit="fraction",
        higher_is_better=True,
        ci=(lo, hi),
        n=e.n,
        params=params,
    )
    if e.clean_correct:
        k = int(e.success.sum())
        record_metric(
            metric_id("attack_success_rate", e.attack, e.norm, e.eps),
            e.success_rate,
            unit="fraction",
            higher_is_better=False,
            ci=clopper_pearson_interval(k, e.clean_correct),
            n=e.clean_correct,
            params={"attack": e.attack, "norm": e.norm, "eps": e.eps},
        )
    pps = e.passes_per_sample
    record_metric(
        metric_id("attack_passes_per_sample", e.attack, e.norm, e.eps),
        pps["forward"] + pps["backward"],
        unit="passes/sample",
        higher_is_better=False,
        n=e.n,
        params={"attack": e.attack, "norm": e.norm, "eps": e.eps, **pps},
    )


# ------------------------------------------------------------------ validity of the set-up


def test_model_deterministic(ctx, record_check):
    """Two eval-mode forward passes agree (no dropout or randomised defence left on)."""
    x = ctx.x[:256].to(ctx.task.device)
    r = checks.check_deterministic(ctx.task.model, x)
    record_check(r.name, r.passed, r.detail)


def test_input_gradients_nonzero(ctx, record_check):
    """Input gradients exist: no shattered gradients from non-differentiable preprocessing."""
    x = ctx.x[:256].to(ctx.task.device)
    y = ctx.y[:256].to(ctx.task.device)
    r = checks.check_input_gradients(ctx.task.model, x, y)
    record_check(r.name, r.passed, r.detail)


def test_clean_accuracy(ctx, record_metric):
    """Accuracy on the attacked subset (the ceiling of every robust accuracy)."""
    e = ctx.run("fgsm", "linf", 0.0)
    k, n = e.clean_correct, e.n
    record_metric(
        "clean_accuracy",
        k / n,
        unit="fraction",
        higher_is_better=True,
        ci=clopper_pearson_interval(k, n),
        n=n,
        params={"subset": "seeded permutation of the test split"},
    )
    assert 0.0 <= k / n <= 1.0


# ------------------------------------------------------------------ white-box attacks


@pytest.mark.parametrize("norm", NORMS)
def test_fgsm(ctx, norm, record_metric):
    """FGSM / FGM at each default eps: the single-step floor."""
    _headline(ctx, norm)
    for eps in ctx.eps[norm]:
        _record_eval(record_metric, ctx.run("fgsm", norm, eps))


@pytest.mark.parametrize("norm", NORMS)
def test_pgd(ctx, norm, record_metric, record_check):
    """PGD at each default eps; checks that it is at least as strong as FGSM."""
    _headline(ctx, norm)
    for eps in ctx.eps[norm]:
        e = ctx.pgd(norm, eps)
        _record_eval(record_metric, e)
        f = ctx.run("fgsm", norm, eps)
        r = checks.check_iterative_vs_single_step(
            f.robust_correct, e.robust_correct, e.n, label=f"{norm} eps {eps:g}: "
        )
        record_check(r.name, r.passed, r.detail)


@pytest.mark.parametrize("norm", NORMS)
def test_eps_sweep(ctx, norm, record_metric, record_check):
    """Robust accuracy against eps (PGD); non-increasing, and ~0 where eps covers everything."""
    top = _headline(ctx, norm)
    grid = sorted(
        {round(e, 12) for e in profiles.eps_sweep(top, ctx.budget.sweep_points)}
        | {round(e, 12) for e in ctx.eps[norm]}
    )
    evs = [ctx.pgd(norm, e) for e in grid]
    record_metric(
        metric_id("robust_accuracy_vs_eps", norm),
        {
            "x": grid,
            "y": [e.robust_accuracy for e in evs],
            "x_label": f"eps ({norm})",
            "y_label": "robust accuracy (PGD)",
            "ci": [list(e.interval()) for e in evs],
        },
        unit="fraction",
        higher_is_better=True,
        n=evs[0].n,
        params={"attack": "pgd", "norm": norm, "steps": ctx.budget.pgd_steps},
    )
    r = checks.check_monotone_in_eps(
        grid, [e.robust_correct for e in evs], evs[0].n, label=f"{norm}: "
    )
    record_check(r.name, r.passed, r.detail)
    if norm == "linf":
        if ctx.input_range is not None:
            cover = float(ctx.input_range[1] - ctx.input_range[0])
        else:  # unbounded features: the data's widest feature range
            cover = float((ctx.x.amax(0) - ctx.x.amin(0)).max())
        # from a random start in so wide a box, logits can be so large that the cross-entropy
        # gradient is exactly zero: PGD also starts from the clean input, per-sample worst case
        e = ctx.pgd("linf", cover)
        plain = ctx.run("pgd", "linf", cover, steps=ctx.budget.pgd_steps, random_start=False)
        robust = e.robust & plain.robust
        k = int(robust.sum())
        record_metric(
            "robust_accuracy_unbounded_eps",
            k / e.n,
            unit="fraction",
            higher_is_better=False,
            ci=clopper_pearson_interval(k, e.n),
            n=e.n,
            params={"attack": "pgd (random start and clean start, per-sample worst case)",
                    "norm": "linf", "eps": cover, "interval": "clopper-pearson"},
        )
        pool_pred = ctx.task.predict(ctx.x)
        breakable = checks.substitution_breakable(
            ctx.x.to(ctx.task.device), ctx.y.to(ctx.task.device), ctx.x, pool_pred, cover
        )
        r = checks.check_unbounded_eps(k, e.n, cover, robust=robust, breakable=breakable)
        record_check(r.name, r.passed, r.detail)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("norm", NORMS)
def test_apgd(ctx, norm, loss, record_metric):
    """APGD-CE and APGD-DLR (Croce & Hein 2020) at each default eps."""
    if not ctx.budget.apgd:
        pytest.skip(f"APGD is not run in the {ctx.budget.profile} profile")
    _headline(ctx, norm)
    if loss == "dlr" and not ctx.dlr_ok:
        pytest.skip(f"APGD-DLR needs >= 3 classes; {ctx.task.name} has {ctx.task.num_classes}")
    for eps in ctx.eps[norm]:
        _record_eval(record_metric, ctx.apgd(loss, norm, eps))


# ------------------------------------------------------------------ black box, ensemble


@pytest.mark.parametrize("norm", NORMS)
def test_blackbox_square(ctx, norm, record_metric, record_check):
    """Square Attack (no gradients; native, on the task's device) must not beat the white-box
    attacks: gradient masking."""
    if not ctx.budget.blackbox:
        pytest.skip(f"the black-box attack is not run in the {ctx.budget.profile} profile")
    if len(ctx.task.input_shape) != 3:
        pytest.skip("Square Attack perturbs square image patches; the inputs are not images")
    eps = _headline(ctx, norm)
    sq = ctx.square(norm, eps)
    _record_eval(record_metric, sq)
    n = sq.n
    wb = [ctx.pgd(norm, eps), ctx.apgd("ce", norm, eps) if ctx.budget.apgd else None]
    robust = torch.ones(n, dtype=torch.bool)
    for e in wb:
        if e is not None:
            robust &= e.robust[:n]
    r = checks.check_blackbox_vs_whitebox(
        sq.robust_correct, int(robust.sum()), n, label=f"{norm} eps {eps:g}: "
    )
    record_check(r.name, r.passed, r.detail)


@pytest.mark.parametrize("norm", NORMS)
def test_worst_case_robust_accuracy(ctx, norm, record_metric):
    """The score: per-sample worst case over every attack of the profile at the headline eps.

    A sample counts as robust only if it survives every attack run on it: FGSM, PGD and APGD
    on all samples, Square and ART's AutoAttack (where the profile runs them) on their
    subsets. In the standard and full profiles this is also AutoAttack's ensemble (APGD-CE,
    APGD-DLR, Square), reported separately as ``ensemble_robust_accuracy`` on the samples all
    of them saw.
    """
    eps = _headline(ctx, norm)
    members = [ctx.run("fgsm", norm, eps), ctx.pgd(norm, eps)]
    if ctx.budget.apgd:
        members.append(ctx.apgd("ce", norm, eps))
        if ctx.dlr_ok:
            members.append(ctx.apgd("dlr", norm, eps))
    white_box = list(members)
    images = len(ctx.task.input_shape) == 3
    if ctx.budget.blackbox and images:
        members.append(ctx.square(norm, eps))
    if ctx.budget.autoattack_samples and ctx.dlr_ok and importlib.util.find_spec("art"):
        members.append(ctx.run("art-autoattack", norm, eps, n=ctx.budget.autoattack_samples))
    n = len(ctx.x)
    robust = torch.ones(n, dtype=torch.bool)
    for e in members:
        robust[: e.n] &= e.robust  # attacks run on fewer samples cover the first e.n
    k = int(robust.sum())
    names = [e.attack for e in members]
    record_metric(
        metric_id("worst_case_robust_accuracy", norm),
        k / n,
        unit="fraction",
        higher_is_better=True,
        ci=clopper_pearson_interval(k, n),
        n=n,
        params={"norm": norm, "eps": eps, "attacks": names,
                "samples_per_attack": {e.attack: e.n for e in members},
                "interval": "clopper-pearson"},
        score_weight=WEIGHT_LINF if norm == "linf" else WEIGHT_L2,
    )
    members = white_box
    if ctx.budget.ensemble and ctx.budget.blackbox and len(ctx.task.input_shape) == 3:
        sq = ctx.square(norm, eps)
        m = sq.n
        ens = sq.robust.clone()
        for e in members[2:]:
            ens &= e.robust[:m]
        ke = int(ens.sum())
        record_metric(
            metric_id("ensemble_robust_accuracy", norm),
            ke / m,
            unit="fraction",
            higher_is_better=True,
            ci=clopper_pearson_interval(ke, m),
            n=m,
            params={
                "norm": norm,
                "eps": eps,
                "attacks": [e.attack for e in members[2:]] + ["square"],
            },
        )


# ------------------------------------------------------------------ full profile extras


def test_carlini_wagner_l2(ctx, record_metric):
    """CW-L2 (minimal norm): median L2 of successful perturbations; robust accuracy at eps."""
    n = ctx.budget.cw_samples
    if not n:
        pytest.skip(f"CW-L2 is not run in the {ctx.budget.profile} profile")
    pytest.importorskip("art", reason="CW-L2 runs through ART")
    e = ctx.run("cw-l2", "l2", math.inf, n=n)
    norms = e.perturbation_l2[e.success].tolist()
    med = statistics.median(norms) if norms else math.nan
    record_metric(
        "cw_median_l2",
        med,
        unit="L2 (input units)",
        higher_is_better=True,
        n=len(norms),
        params={"attack": "cw-l2", "samples": e.n},
    )
    for eps in ctx.eps.get("l2", []):
        acc = robust_accuracy_at(e, eps)
        k = round(acc * e.n)
        record_metric(
            metric_id("robust_accuracy", "cw-l2", "l2", float(eps)),
            acc,
            unit="fraction",
            higher_is_better=True,
            ci=clopper_pearson_interval(k, e.n),
            n=e.n,
            params={"attack": "cw-l2", "norm": "l2", "eps": eps},
        )


def test_hopskipjump(ctx, record_metric):
    """HopSkipJump (labels only): median L2 it needs; a decision-based view of robustness."""
    n = ctx.budget.hsj_samples
    if not n:
        pytest.skip(f"HopSkipJump is not run in the {ctx.budget.profile} profile")
    pytest.importorskip("art", reason="HopSkipJump runs through ART")
    e = ctx.run("hopskipjump", "l2", math.inf, n=n)
    norms = e.perturbation_l2[e.success].tolist()
    record_metric(
        "hopskipjump_median_l2",
        statistics.median(norms) if norms else math.nan,
        unit="L2 (input units)",
        higher_is_better=True,
        n=len(norms),
        params={"attack": "hopskipjump", "samples": e.n},
    )


@pytest.mark.parametrize("norm", NORMS)
def test_art_autoattack(ctx, norm, record_metric):
    """ART's AutoAttack as an independent cross-check of the native ensemble."""
    n = ctx.budget.autoattack_samples
    if not n:
        pytest.skip(f"ART AutoAttack is not run in the {ctx.budget.profile} profile")
    pytest.importorskip("art", reason="ART AutoAttack needs ART")
    if not ctx.dlr_ok:
        pytest.skip("ART AutoAttack needs >= 3 classes")
    eps = _headline(ctx, norm)
    _record_eval(record_metric, ctx.run("art-autoattack", norm, eps, n=n))


# ------------------------------------------------------------------ natural robustness


def test_common_corruptions(ctx, record_metric):
    """Accuracy under 9 common corruptions x severities (Hendrycks & Dietterich 2019)."""
    if not ctx.budget.corruptions:
        pytest.skip(f"corruptions are not run in the {ctx.budget.profile} profile")
    if ctx.task.modality != "image" or len(ctx.task.input_shape) != 3:
        pytest.skip(f"common corruptions apply to images; {ctx.task.name} is {ctx.task.modality}")
    n = ctx.budget.corruption_samples
    ce = attacks.evaluate_corruptions(
        ctx.task.model,
        ctx.x[:n],
        ctx.y[:n],
        severities=ctx.budget.corruption_severities,
        batch_size=max(ctx.budget.batch_size, 256),
        device=ctx.task.device,
        seed=ctx.seed,
    )
    ci = ce.intervals(seed=ctx.seed)
    record_metric(
        "mean_corruption_accuracy",
        ce.mean_corruption_accuracy,
        unit="fraction",
        higher_is_better=True,
        ci=ci["mean_corruption_accuracy"],
        n=ce.n,
        params={
            "corruptions": ce.names,
            "severities": ce.severities,
            "interval": "percentile bootstrap over the samples (all cells of a sample together)",
        },
        score_weight=WEIGHT_CORRUPTION,
    )
    record_metric(
        "relative_corruption_error",
        ce.relative_corruption_error,
        unit="fraction",
        higher_is_better=False,
        ci=ci["relative_corruption_error"],
        n=ce.n,
        params={
            "definition": "mean over corruptions and severities of corrupted "
            "error minus clean error (no AlexNet normalisation)",
            "interval": "percentile bootstrap over the samples (paired clean and corrupted)",
        },
    )
    record_metric(
        "corruption_accuracy",
        {
            "rows": ce.names,
            "cols": [f"severity {s}" for s in ce.severities],
            "values": ce.accuracy(),
        },
        unit="fraction",
        higher_is_better=True,
        n=ce.n,
    )
    assert 0.0 <= ce.mean_corruption_accuracy <= 1.0
