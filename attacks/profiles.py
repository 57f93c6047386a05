"""Budgets of the robustness pillar per profile (smoke, standard, full) and default eps.

Default perturbation budgets per task live here (the core's ``Task`` knows no pillar): the
built-in tasks use (input units; images in [0, 1], tabular features standardised):

=================  ==========================  ==================
task               L-inf eps                   L2 eps
=================  ==========================  ==================
digits-cnn         0.1, 0.3                    0.5, 1.0
mnist5k-cnn        0.1, 0.3 (Madry et al.)     1.0, 2.0
arrests-mlp        0.1, 0.25 (std. units)      0.25, 0.5
cifar10-resnet18   8/255 (RobustBench)         0.5 (RobustBench)
=================  ==========================  ==================

Open-division tasks get the budgets of their kind of input: 3-channel images those of
CIFAR-10, other images those of the 28x28 tasks, tabular data those of ``arrests-mlp``
(:data:`OPEN_DIVISION_EPS`). The *headline* eps of a norm (the one that carries the pillar's
score weight) is the largest default. :data:`FALLBACK_EPS` applies when nothing else does.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from trustbench.config import PROFILES
from trustbench.errors import ConfigError

__all__ = [
    "FALLBACK_EPS",
    "OPEN_DIVISION_EPS",
    "PROFILES",
    "TASK_EPS",
    "RobustnessBudget",
    "SuitePlan",
    "budget",
    "default_eps",
    "eps_sweep",
    "headline_eps",
    "suite_settings",
    "task_eps",
]

_IMAGE28_EPS = {"linf": [0.1, 0.3], "l2": [1.0, 2.0]}
_CIFAR_EPS = {"linf": [8 / 255], "l2": [0.5]}
_TABULAR_EPS = {"linf": [0.1, 0.25], "l2": [0.25, 0.5]}

#: Default perturbation budgets of the built-in tasks, by task name.
TASK_EPS: dict[str, dict[str, list[float]]] = {
    "digits-cnn": {"linf": [0.1, 0.3], "l2": [0.5, 1.0]},
    "mnist5k-cnn": _IMAGE28_EPS,
    "arrests-mlp": _TABULAR_EPS,
    "cifar10-resnet18": _CIFAR_EPS,
}

#: Default budgets of open-division tasks by kind of input: ``rgb-image`` (3 channels),
#: ``image`` (any other image), ``tabular``.
OPEN_DIVISION_EPS: dict[str, dict[str, list[float]]] = {
    "rgb-image": _CIFAR_EPS,
    "image": _IMAGE28_EPS,
    "tabular": _TABULAR_EPS,
}

#: Used when neither table applies (a task of another modality).
FALLBACK_EPS: dict[str, dict[str, list[float]]] = {
    "image": {"linf": [8 / 255], "l2": [0.5]},
    "tabular": {"linf": [0.1], "l2": [0.25]},
}


@dataclass(frozen=True)
class RobustnessBudget:
    """What the robustness suite runs in one profile.

    Attributes
    ----------
    profile
        ``smoke``, ``standard`` or ``full``.
    n_samples, batch_size
        Test samples attacked (the first ``n`` of a seeded permutation) and batch size.
    pgd_steps, pgd_restarts
        PGD budget (also used for the eps sweep).
    apgd, apgd_steps, apgd_restarts
        Run APGD-CE / APGD-DLR, and their budget.
    blackbox, square_queries, blackbox_samples
        Run Square (the gradient-masking reference) on this many samples.
    ensemble
        Report the per-sample worst case of APGD-CE + APGD-DLR + Square.
    sweep_points
        Evenly spaced points of the robust-accuracy-vs-eps curve from 0 to the largest default
        eps; the default eps are added to them.
    corruptions, corruption_samples, corruption_severities
        Common corruptions (image tasks only).
    cw_samples, hsj_samples, autoattack_samples
        Samples for CW-L2 / HopSkipJump / ART AutoAttack (0 = not run).
    """

    profile: str
    n_samples: int
    batch_size: int
    pgd_steps: int
    pgd_restarts: int
    apgd: bool
    apgd_steps: int
    apgd_restarts: int
    blackbox: bool
    square_queries: int
    blackbox_samples: int
    ensemble: bool
    sweep_points: int
    corruptions: bool
    corruption_samples: int
    corruption_severities: tuple[int, ...]
    cw_samples: int
    hsj_samples: int
    autoattack_samples: int


_BUDGETS = {
    "smoke": RobustnessBudget(
        profile="smoke",
        n_samples=256,
        batch_size=256,
        pgd_steps=10,
        pgd_restarts=1,
        apgd=False,
        apgd_steps=0,
        apgd_restarts=0,
        blackbox=False,
        square_queries=0,
        blackbox_samples=0,
        ensemble=False,
        sweep_points=3,
        corruptions=True,
        corruption_samples=256,
        corruption_severities=(1, 3, 5),
        cw_samples=0,
        hsj_samples=0,
        autoattack_samples=0,
    ),
    "standard": RobustnessBudget(
        profile="standard",
        n_samples=1000,
        batch_size=500,
        pgd_steps=20,
        pgd_restarts=1,
        apgd=True,
        apgd_steps=50,
        apgd_restarts=1,
        blackbox=True,
        square_queries=1000,
        blackbox_samples=500,
        ensemble=True,
        sweep_points=6,
        corruptions=True,
        corruption_samples=1000,
        corruption_severities=(1, 2, 3, 4, 5),
        cw_samples=0,
        hsj_samples=0,
        autoattack_samples=0,
    ),
    "full": RobustnessBudget(
        profile="full",
        n_samples=10000,
        batch_size=1000,
        pgd_steps=50,
        pgd_restarts=3,
        apgd=True,
        apgd_steps=100,
        apgd_restarts=1,
        blackbox=True,
        square_queries=5000,
        blackbox_samples=2000,
        ensemble=True,
        sweep_points=11,
        corruptions=True,
        corruption_samples=10000,
        corruption_severities=(1, 2, 3, 4, 5),
        cw_samples=500,
        hsj_samples=100,
        autoattack_samples=500,
    ),
}



@dataclass(frozen=True)
class SuitePlan:
    """How the robustness suite runs an attack plugin (its class attribute ``suite``).

    The suite runs every registered attack whose plan enables the run's profile, for each norm
    the attack supports, and takes every such attack with ``worst_case`` into the per-sample
    worst case at the headline eps. A plugin that declares nothing runs in every profile, at
    every default eps, on every attacked sample, and joins the worst case.

    Attributes
    ----------
    profiles
        The profiles it runs in (a subset of :data:`PROFILES`).
    eps
        ``"all"``: each default eps of the norm; ``"headline"``: only the largest. Ignored for
        minimal-norm attacks, which run once at ``eps = inf``.
    samples
        The :class:`RobustnessBudget` field that holds how many of the attacked samples it
        runs on (the first ones), e.g. ``"blackbox_samples"``; None: all of them.
    budget
        Attack parameter -> the :class:`RobustnessBudget` field that sets it per profile,
        e.g. ``{"steps": "pgd_steps"}``.
    worst_case
        Member of the per-sample worst case (``worst_case_robust_accuracy``). Minimal-norm
        attacks never are.
    stronger_than
        Attacks it must be at least as strong as, sample for sample (a validity check, e.g.
        PGD against FGSM); a gradient-free attack is always checked against the white-box ones.
    images_only
        Runs on image inputs only (e.g. square patches).
    label
        Metric stem of a minimal-norm attack's ``<label>_median_<norm>`` (default: its name).
    eps_metrics
        Minimal-norm attacks: also record robust accuracy at each default eps of its norm.
    order
        Position among the attacks (metric and worst-case order); ties go by name.
    """

    profiles: tuple[str, ...] = PROFILES
    eps: str = "all"
    samples: str | None = None
    budget: dict[str, str] = field(default_factory=dict)
    worst_case: bool = True
    stronger_than: tuple[str, ...] = ()
    images_only: bool = False
    label: str = ""
    eps_metrics: bool = True
    order: int = 100

    def __post_init__(self) -> None:
        def strings(value: Any, what: str, example: str) -> None:
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"SuitePlan {what} must be a tuple of names, e.g. {example}; "
                                  f"got {value!r}")

        strings(self.profiles, "profiles", '("standard", "full")')
        strings(self.stronger_than, "stronger_than", '("fgsm",)')
        unknown = sorted(set(self.profiles) - set(PROFILES))
        if unknown:
            raise ConfigError(f"SuitePlan profiles {unknown} unknown; accepted: "
                              f"{', '.join(PROFILES)}")
        if self.eps not in ("all", "headline"):
            raise ConfigError(f"SuitePlan eps must be 'all' or 'headline', got {self.eps!r}")
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise ConfigError(f"SuitePlan order must be an integer, got {self.order!r}")
        for flag in ("worst_case", "images_only", "eps_metrics"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"SuitePlan {flag} must be True or False, got "
                                  f"{getattr(self, flag)!r}")
        if not isinstance(self.label, str):
            raise ConfigError(f"SuitePlan label must be a string, got {self.label!r}")
        fields = RobustnessBudget.__dataclass_fields__
        if not isinstance(self.budget, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.budget.items()):
            raise ConfigError(f"SuitePlan budget must map attack parameters to budget fields, "
                              f'e.g. {{"steps": "pgd_steps"}}; got {self.budget!r}')
        bad = sorted(v for v in set(self.budget.values()) if v not in fields)
        if bad:
            raise ConfigError(f"SuitePlan budget names fields {bad} that RobustnessBudget does "
                              f"not have; it has: {', '.join(sorted(fields))}")
        counts = sorted(f for f, spec in fields.items() if spec.type in ("int", int)
                        and f.endswith("samples"))
        if self.samples is not None and self.samples not in counts:
            raise ConfigError(f"SuitePlan samples must name a RobustnessBudget field holding a "
                              f"number of samples ({', '.join(counts)}), got {self.samples!r}")

    def runs_in(self, profile: str) -> bool:
        """Whether the suite runs the attack in ``profile``."""
        return profile in self.profiles

    def params(self, b: RobustnessBudget) -> dict[str, Any]:
        """The attack parameters the profile's budget sets."""
        return {param: getattr(b, fieldname) for param, fieldname in self.budget.items()}

    def n_samples(self, b: RobustnessBudget, n: int) -> int:
        """How many of the ``n`` attacked samples it runs on."""
        return n if self.samples is None else min(n, int(getattr(b, self.samples)))


def budget(profile: str) -> RobustnessBudget:
    """The robustness budget of ``profile``."""
    try:
        return _BUDGETS[profile]
    except KeyError:
        raise ConfigError(
            f"unknown profile {profile!r} for the robustness pillar; known: {', '.join(_BUDGETS)}"
        ) from None


def task_eps(task: Any) -> dict[str, list[float]]:
    """The default eps per norm of ``task`` (a :class:`trustbench.tasks.Task`).

    A closed-division task's from :data:`TASK_EPS`; an open-division task's from
    :data:`OPEN_DIVISION_EPS` by its kind of input.
    """
    if task.division == "closed" and task.name in TASK_EPS:
        return default_eps(TASK_EPS[task.name], task.modality)
    kind = task.modality
    if kind == "image" and task.input_shape[0] == 3:
        kind = "rgb-image"
    return default_eps(OPEN_DIVISION_EPS.get(kind), task.modality)


def default_eps(
    defaults: dict[str, list[float]] | None, modality: str
) -> dict[str, list[float]]:
    """Default eps per norm: the given ones, else :data:`FALLBACK_EPS` for the modality."""
    if defaults:
        return {k: sorted(float(e) for e in v) for k, v in defaults.items() if v}
    return FALLBACK_EPS.get(modality, FALLBACK_EPS["image"])


def headline_eps(eps: dict[str, list[float]], norm: str) -> float:
    """The eps that carries the score weight for ``norm``: the largest default."""
    return max(eps[norm])


def eps_sweep(max_eps: float, points: int) -> list[float]:
    """``points`` evenly spaced eps from 0 to ``max_eps`` (inclusive)."""
    if points < 2:
        return [max_eps]
    return [max_eps * i / (points - 1) for i in range(points)]


#: Settings the robustness suite reads from ``[robustness]`` / ``[tool.trustbench.robustness]``.
SUITE_OPTIONS = ("eps", "n_samples")


def suite_settings(options: dict[str, Any] | None, defaults: dict[str, list[float]] | None,
                   modality: str, budget_samples: int) -> tuple[dict[str, list[float]], int]:
    """The eps per norm and the number of attacked samples, from the user's settings.

    ``eps`` maps a norm (``linf``, ``l2``; any case) to one eps or a list of them and replaces
    that norm's defaults only; the other norm keeps the task's (or :data:`FALLBACK_EPS`).
    ``n_samples`` is a positive integer (default: the profile's).

    Raises
    ------
    ConfigError
        Unknown settings or norms, eps that are not positive finite numbers, a bad
        ``n_samples``.
    """
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(SUITE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown robustness setting(s) {unknown}; accepted: "
                          f"{', '.join(SUITE_OPTIONS)}.")
    eps = default_eps(defaults, modality)
    given = opts.get("eps")
    if given is not None:
        if not isinstance(given, dict) or not given:
            raise ConfigError(f"robustness eps must be a table of norm = [eps, ...], e.g. "
                              f"eps = {{linf = [0.1, 0.3], l2 = [1.0]}}; got {given!r}.")
        eps = dict(eps)
        for norm, values in given.items():
            key = str(norm).lower()
            if key not in ("linf", "l2"):
                raise ConfigError(f"unknown norm {norm!r} in robustness eps; accepted: linf, "
                                  "l2.")
            vals = values if isinstance(values, (list, tuple)) else [values]
            if not vals or not all(
                    isinstance(v, numbers.Real) and not isinstance(v, bool)
                    and math.isfinite(v) and v > 0 for v in vals):
                raise ConfigError(f"robustness eps for {key} must be positive finite numbers "
                                  f"(input units), one or a list; got {values!r}.")
            eps[key] = sorted(float(v) for v in vals)
    n = opts.get("n_samples", budget_samples)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"robustness n_samples must be a positive integer (test inputs "
                          f"attacked), got {n!r}.")
    return eps, n
