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

from trustbench import attacks, registry
from trustbench.attacks import checks, profiles
from trustbench.attacks.contract import declaration_problem
from trustbench.attacks.evaluate import RobustEvaluation, evaluate_attack, robust_accuracy_at
from trustbench.stats import clopper_pearson_interval

NORMS = ("linf", "l2")
#: Score weights: worst-case robust accuracy at the headline eps per norm, corruption accuracy.
WEIGHT_LINF, WEIGHT_L2, WEIGHT_CORRUPTION = 0.35, 0.35, 0.3


#: AutoAttack's standard ensemble (Croce & Hein 2020), reported as ``ensemble_robust_accuracy``.
AUTOATTACK_ENSEMBLE = ("apgd-ce", "apgd-dlr", "square")
#: The white-box attacks a gradient-free attack must not beat (gradient masking, Carlini 2019).
WHITE_BOX_REFERENCE = ("pgd", "apgd-ce")


def _plan_problem(name: str, cls: Any) -> str | None:
    """What makes a registered attack unusable by the suite (None: nothing)."""
    problem = declaration_problem(cls)
    return None if problem is None else f"{name}: {problem}"


def _attacks() -> dict[str, type]:
    """Every usable registered attack, in suite order (``SuitePlan.order``, then name)."""
    plugins = {n: c for n, c in registry.all_plugins("attack").items()
               if _plan_problem(n, c) is None}
    return dict(sorted(plugins.items(), key=lambda kv: (kv[1].suite.order, kv[0])))


def _bounded_cases() -> list[Any]:
    return [pytest.param(name, norm, id=f"{name}-{norm}")
            for name, cls in _attacks().items() if not cls.minimal_norm
            for norm in NORMS if norm in cls.norms]


def _minimal_norm_cases() -> list[str]:
    return [name for name, cls in _attacks().items() if cls.minimal_norm]


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

    @property
    def images(self) -> bool:
        return len(self.task.input_shape) == 3

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

    def attack(self, name: str, norm: str, eps: float) -> RobustEvaluation:
        """Attack ``name`` as its suite plan runs it in this profile (samples, parameters)."""
        plan = registry.get("attack", name).suite
        return self.run(name, norm, eps, n=plan.n_samples(self.budget, len(self.x)),
                        **plan.params(self.budget))

    def pgd(self, norm: str, eps: float) -> RobustEvaluation:
        return self.attack("pgd", norm, eps)

    def why_not(self, name: str, norm: str) -> str | None:
        """Why attack ``name`` does not run at ``norm`` for this task and profile (None: it
        runs)."""
        cls = registry.get("attack", name)
        plan = cls.suite
        if not plan.runs_in(self.budget.profile):
            where = ", ".join(plan.profiles) or "no profile (its plan runs it nowhere)"
            return f"{name} is not run in the {self.budget.profile} profile (runs in: {where})"
        if norm not in cls.norms:
            return f"{name} does not support the {norm} norm"
        if not cls.minimal_norm and norm not in self.eps:
            return f"task {self.task.name} declares no {norm} eps"
        if plan.images_only and not self.images:
            return f"{name} perturbs image patches; the inputs of {self.task.name} are not images"
        if self.task.num_classes < cls.min_classes:
            return (f"{name} needs >= {cls.min_classes} classes; {self.task.name} has "
                    f"{self.task.num_classes}")
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            return f"{name} needs {', '.join(missing)} (not installed)"
        return None

    def runs(self, name: str, norm: str) -> bool:
        return self.why_not(name, norm) is None

    def eps_of(self, name: str, norm: str) -> list[float]:
        """The eps at which the suite runs attack ``name``."""
        plan = registry.get("attack", name).suite
        return [_headline(self, norm)] if plan.eps == "headline" else list(self.eps[norm])


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
    est = e.estimate()
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
        ci=est.ci,
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


def test_registered_plugins_load_and_declare_valid_plans(task):
    """Every attack and corruption plugin loaded (built-in, dropped into attacks/, or an
    installed package's entry point) and every attack declares a plan the suite can run: one
    that does not is left out of the measurement, and named here."""
    problems = registry.load_errors(("attack", "corruption"))
    problems += [p for n, c in registry.all_plugins("attack").items()
                 if (p := _plan_problem(n, c)) is not None]
    assert not problems, "plugins left out of the robustness pillar: " + "; ".join(problems)



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


# ------------------------------------------------------------------ every registered attack


@pytest.mark.parametrize(("name", "norm"), _bounded_cases())
def test_attack(ctx, name, norm, record_metric, record_check):
    """Every registered eps-bounded attack the profile runs, at each of its eps (its plugin's
    ``suite`` plan): robust accuracy, success rate, passes spent; and its validity checks: at
    least as strong as the attacks it declares (PGD against FGSM), and, when it needs no
    gradients, not stronger than the white-box attacks (gradient masking)."""
    reason = ctx.why_not(name, norm)
    if reason:
        pytest.skip(reason)
    cls = registry.get("attack", name)
    for eps in ctx.eps_of(name, norm):
        e = ctx.attack(name, norm, eps)
        _record_eval(record_metric, e)
        for weaker in cls.suite.stronger_than:
            if not ctx.runs(weaker, norm):
                continue
            w = ctx.attack(weaker, norm, eps)
            r = checks.check_iterative_vs_single_step(
                w.robust_correct, e.robust_correct, e.n, label=f"{norm} eps {eps:g}: "
            )
            record_check(r.name, r.passed, r.detail)
        if not cls.white_box:
            n = e.n
            robust = torch.ones(n, dtype=torch.bool)
            for ref in WHITE_BOX_REFERENCE:
                if ref != name and ctx.runs(ref, norm):
                    robust &= ctx.attack(ref, norm, eps).robust[:n]
            r = checks.check_blackbox_vs_whitebox(
                e.robust_correct, int(robust.sum()), n, label=f"{norm} eps {eps:g}: "
            )
            record_check(r.name, r.passed, r.detail)


@pytest.mark.parametrize("name", _minimal_norm_cases())
def test_minimal_norm_attack(ctx, name, record_metric):
    """Every registered minimal-norm attack the profile runs (CW-L2, HopSkipJump): the median
    norm of its successful perturbations, and robust accuracy at each default eps."""
    cls = registry.get("attack", name)
    norm = "l2" if "l2" in cls.norms else cls.norms[0]
    reason = ctx.why_not(name, norm)
    if reason:
        pytest.skip(reason)
    plan = cls.suite
    e = ctx.attack(name, norm, math.inf)
    sizes = e.perturbation_l2 if norm == "l2" else e.perturbation_linf
    norms = sizes[e.success].tolist()
    record_metric(
        f"{plan.label or name}_median_{norm}",
        statistics.median(norms) if norms else math.nan,
        unit=f"{'L2' if norm == 'l2' else 'L-inf'} (input units)",
        higher_is_better=True,
        n=len(norms),
        params={"attack": name, "samples": e.n},
    )
    if not plan.eps_metrics:
        return
    for eps in ctx.eps.get(norm, []):
        acc = robust_accuracy_at(e, eps, norm=norm)
        k = round(acc * e.n)
        record_metric(
            metric_id("robust_accuracy", name, norm, float(eps)),
            acc,
            unit="fraction",
            higher_is_better=True,
            ci=clopper_pearson_interval(k, e.n),
            n=e.n,
            params={"attack": name, "norm": norm, "eps": eps},
        )


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
            "ci": [list(e.estimate().ci) for e in evs],
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


# ------------------------------------------------------------------ the score


@pytest.mark.parametrize("norm", NORMS)
def test_worst_case_robust_accuracy(ctx, norm, record_metric):
    """The score: per-sample worst case over every attack the profile runs, at the headline eps.

    A sample counts as robust only if it survives every registered attack whose plan runs in
    this profile and joins the worst case (built-ins: FGSM and PGD always; APGD-CE/-DLR and
    Square in the standard and full profiles; ART's AutoAttack in the full profile), each on
    the samples its plan gives it. In the standard and full profiles AutoAttack's ensemble
    (APGD-CE, APGD-DLR, Square) is also reported separately as ``ensemble_robust_accuracy`` on
    the samples all of them saw.
    """
    eps = _headline(ctx, norm)
    members = [ctx.attack(name, norm, eps) for name, cls in _attacks().items()
               if cls.suite.worst_case and not cls.minimal_norm and ctx.runs(name, norm)]
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
    square = AUTOATTACK_ENSEMBLE[-1]
    if ctx.budget.ensemble and ctx.runs(square, norm):
        sq = ctx.attack(square, norm, eps)
        m = sq.n
        ens = sq.robust.clone()
        used = [a for a in AUTOATTACK_ENSEMBLE[:-1] if ctx.runs(a, norm)]
        for a in used:
            ens &= ctx.attack(a, norm, eps).robust[:m]
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
                "attacks": [*used, square],
            },
        )


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
    est = ce.estimates(seed=ctx.seed)
    record_metric(
        "mean_corruption_accuracy",
        ce.mean_corruption_accuracy,
        unit="fraction",
        higher_is_better=True,
        ci=est["mean_corruption_accuracy"].ci,
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
        ci=est["relative_corruption_error"].ci,
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
