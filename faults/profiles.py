"""Campaign budgets per benchmark profile (smoke / standard / full).

``smoke`` (CI): 200 weight faults, so the whole faults suite runs in seconds on a CPU.
``standard``: Leveugle et al. (2009) sample sizes for a 5 % margin at 95 % confidence.
``full``: 1 % margin at 99 % confidence (about 16.6k faults per campaign), more inputs,
every precision and fault model.

Which fault models and protections a profile runs is not listed here: each plugin declares the
profiles it runs in (its ``profiles`` class attribute; every profile if it declares none), and
:func:`selected_fault_models` / :func:`selected_protections` ask the registry, so a new plugin
(a file in ``faults/``, or a third-party package's entry point) runs with no other edit. The
user's ``fault_models`` / ``protections`` settings under ``[faults]`` replace that selection.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trustbench.config import PROFILES
from trustbench.errors import ConfigError
from trustbench.registry import RegistryError

#: The headline fault model: the weight campaign of every profile (``weight_sdc_rate``, ...);
#: the fault-model table compares the others with it.
HEADLINE_FAULT_MODEL = "bitflip"

#: Table position of a plugin that declares no ``order``.
DEFAULT_ORDER = 100


@dataclass(frozen=True)
class FaultBudget:
    """How much a profile spends on fault injection.

    Attributes
    ----------
    profile
        Profile name.
    n_faults
        Fixed faults per campaign, or None for Leveugle's size at ``margin``/``confidence``.
    margin, confidence
        Error margin and confidence of the statistical sample size (and of the intervals).
    n_inputs
        Evaluation inputs per weight fault (test set prefix).
    n_activation_faults
        Activation faults (cheap: one per sample of a batch); None: Leveugle.
    precisions
        Precisions compared.
    fault_models
        Fault models measured besides the headline single bit flip, in table order; None:
        every registered one that declares this profile (:func:`selected_fault_models`).
    resume
        Whether the suite keeps each campaign's progress in the cache folder, so a run that
        was interrupted resumes it (same task, weights, inputs, profile and seed).
    protections
        Protections evaluated on the weight campaign's faults; None: every registered one that
        declares this profile (:func:`selected_protections`).
    """

    profile: str
    n_faults: int | None
    margin: float
    confidence: float
    n_inputs: int
    n_activation_faults: int | None
    precisions: tuple[str, ...]
    fault_models: tuple[str, ...] | None = None
    resume: bool = True
    protections: tuple[str, ...] | None = None


_BUDGETS = {
    "smoke": FaultBudget("smoke", 200, 0.05, 0.95, 256, 1024, ("fp32", "bf16", "int8")),
    "standard": FaultBudget("standard", None, 0.05, 0.95, 1000, None,
                            ("fp32", "fp16", "bf16", "int8")),
    "full": FaultBudget("full", None, 0.01, 0.99, 10_000, None,
                        ("fp32", "fp16", "bf16", "int8")),
}


def budget(profile: str, options: dict[str, Any] | None = None) -> FaultBudget:
    """The :class:`FaultBudget` of ``profile`` (``smoke``, ``standard`` or ``full``).

    ``options`` (``[tool.trustbench.faults]`` in trustbench.toml) override single fields, e.g.
    ``{"n_faults": 1000}``, ``{"precisions": ["fp32", "int8"]}`` or
    ``{"fault_models": ["stuck_at_1", "burst"]}`` (exactly these, in this order).
    """
    try:
        base = _BUDGETS[profile]
    except KeyError:
        raise ConfigError(f"unknown profile {profile!r} for the faults pillar; accepted: "
                          f"{', '.join(_BUDGETS)}.") from None
    if not options:
        return base
    fields = {f.name for f in dataclasses.fields(FaultBudget)} - {"profile"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown [tool.trustbench.faults] option(s) {unknown}; accepted: "
                          f"{', '.join(sorted(fields))}.")
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    for setting, kind in (("fault_models", "fault"), ("protections", "protection")):
        if setting in opts:
            _check_names(setting, kind, opts[setting])
    return dataclasses.replace(base, **opts)


def _check_names(setting: str, kind: str, value: Any) -> None:
    from trustbench import registry

    known = registry.names(kind)
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[tool.trustbench.faults] {setting} must be a list of {kind} plugin "
                          f"names (registered: {', '.join(known)}), got {value!r}.")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ConfigError(f"[tool.trustbench.faults] {setting} names unknown {kind} plugin(s) "
                          f"{unknown}; registered: {', '.join(known)} (third-party plugins "
                          f"register through the entry-point group "
                          f"{registry.entry_point_group(kind)!r}).")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise ConfigError(f"[faults] {setting} names {twice} more than once; list each "
                          f"{kind} once.")
    if kind == "fault" and HEADLINE_FAULT_MODEL in value:
        raise ConfigError(f"[faults] fault_models lists {HEADLINE_FAULT_MODEL!r}, the headline "
                          "campaign that always runs; list only the other fault models.")


def declared_profiles(plugin: Any) -> tuple[str, ...]:
    """The profiles ``plugin`` (a fault model or protection class) declares it runs in.

    Its ``profiles`` class attribute; every profile (:data:`PROFILES`) if it has none.

    Raises
    ------
    RegistryError
        If the declaration is not a tuple of profile names.
    """
    declared = getattr(plugin, "profiles", PROFILES)
    if isinstance(declared, str) or not isinstance(declared, (tuple, list)) or any(
            p not in PROFILES for p in declared):
        raise RegistryError(
            f"{getattr(plugin, '__qualname__', plugin)!r}.profiles must be a tuple of profile "
            f"names out of {', '.join(PROFILES)}, got {declared!r}")
    return tuple(declared)


def _order(plugin: Any) -> Any:
    order = getattr(plugin, "order", DEFAULT_ORDER)
    return order if isinstance(order, (int, float)) and not isinstance(order, bool) \
        else DEFAULT_ORDER


#: Suffixes of a protection's metric names (``<name>_sdc_reduction``, ...).
PROTECTION_METRICS = ("sdc_reduction", "critical_sdc_reduction", "weight_sdc_rate",
                      "clean_accuracy_cost", "latency_overhead")


def _name_clash(kind: str, name: str) -> str | None:
    """Why ``name``'s metric names would collide with another registered protection's."""
    if kind != "protection":
        return None
    from trustbench import registry

    def builtin(n: str) -> bool:
        return getattr(registry.get(kind, n), "__module__", "").startswith("trustbench.")

    def wins(a: str, b: str) -> bool:  # of two clashing names, the built-in (or shorter) stays
        return (builtin(a), -len(a), a) > (builtin(b), -len(b), b)

    mine = {f"{name}_{m}" for m in PROTECTION_METRICS}
    for other in registry.names(kind):
        if other != name and mine & {f"{other}_{m}" for m in PROTECTION_METRICS} \
                and wins(other, name):
            return (f"its metric names collide with those of protection {other!r} (e.g. "
                    f"{sorted(mine & {f'{other}_{m}' for m in PROTECTION_METRICS})[0]}); "
                    "choose another name")
    return None


def declaration_problems(kind: str) -> list[str]:
    """Registered plugins of ``kind`` the suite leaves out (an unusable ``profiles``
    declaration, or a protection whose metric names collide with another's), one line each."""
    from trustbench import registry

    problems = []
    for name, cls in registry.all_plugins(kind).items():
        try:
            declared_profiles(cls)
        except RegistryError as exc:
            problems.append(f"{kind} {name}: {exc}")
        clash = _name_clash(kind, name)
        if clash:
            problems.append(f"{kind} {name}: {clash}")
    return problems


def _declaring(kind: str, profile: str) -> list[str]:
    """Registered plugins of ``kind`` that declare ``profile``, by (``order``, name); a
    plugin with an unusable declaration is left out (see :func:`declaration_problems`)."""
    from trustbench import registry

    def declares(name: str, cls: Any) -> bool:
        try:
            return profile in declared_profiles(cls) and _name_clash(kind, name) is None
        except RegistryError:
            return False

    plugins = registry.all_plugins(kind)
    return [name for name, cls in sorted(plugins.items(), key=lambda kv: (_order(kv[1]), kv[0]))
            if declares(name, cls)]


def selected_fault_models(b: FaultBudget) -> list[str]:
    """Fault models the suite measures besides the headline (table order).

    The user's ``fault_models`` setting if given (those, in that order); otherwise every
    registered fault model but :data:`HEADLINE_FAULT_MODEL` that declares ``b.profile``.
    """
    if b.fault_models is not None:
        return list(b.fault_models)
    return [n for n in _declaring("fault", b.profile) if n != HEADLINE_FAULT_MODEL]


def selected_protections(b: FaultBudget) -> list[str]:
    """Protections the suite evaluates: the user's ``protections`` setting if given, otherwise
    every registered protection that declares ``b.profile``."""
    if b.protections is not None:
        return list(b.protections)
    return _declaring("protection", b.profile)
