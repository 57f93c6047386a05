"""Pillars and their plugins: declaration, registration, lookup, discovery.

**Pillars.** A pillar package (``trustbench.attacks``, ``trustbench.faults``, ..., or a third
party's) declares itself with a :class:`Pillar` object named ``PILLAR`` and an entry point in the
group ``trustbench.pillars`` (``robustness = "trustbench.attacks"``). The declaration says what
the pillar brings: the plugin kinds it owns, the ``trustbench new`` templates of those kinds and
its place in the pillar order. The core asks :func:`pillars` and never names a pillar itself.

**Plugins.** A pillar's base class subclasses :class:`Plugin` with ``kind="..."``; every
concrete subclass that sets a ``name`` registers itself when its module is imported. Duplicates
are rejected. A pillar package finds its own plugin modules with :func:`import_submodules`
(every module of the package, so a new plugin is one file and nothing else); third-party
packages register through the entry-point group of the kind (``trustbench.attacks`` for kind
``attack``). Loading an entry point imports its module, whose classes register themselves (or,
if the entry point names a class, that class is registered under its ``name``).

A plugin may opt out of one check of its kind's contract test with a reason, e.g. a fault
model that flips exponent bits cannot take int8 words::

    contract_opt_out = {"int8": "flips exponent bits; int8 words have none"}

>>> from trustbench import registry
>>> class Echo(registry.Plugin, kind="example"):
...     '''An example plugin kind.'''
>>> class Loud(Echo):
...     name = "loud"
>>> registry.get("example", "loud") is Loud
True
>>> registry.unregister("example", "loud")
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import pkgutil
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trustbench.errors import BenchError

#: What a plugin name may look like (it becomes part of metric names).
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

#: The entry-point group in which pillar packages declare themselves.
PILLAR_GROUP = "trustbench.pillars"

_registry: dict[str, dict[str, Any]] = {}
_discovered: set[str] = set()
_lock = threading.Lock()


class RegistryError(BenchError):
    """A plugin name that is unknown or registered twice."""


@dataclass(frozen=True)
class Pillar:
    """What a pillar package brings to the harness (its ``PILLAR`` object).

    Attributes
    ----------
    name
        The pillar's name in scorecards (``robustness``), in ``[<name>]`` settings tables and
        in its suite's file name (``suites/test_<name>.py``).
    question
        The question it answers, one line (``trustbench list``).
    kinds
        The plugin kinds it owns (``("attack", "corruption")``).
    templates
        ``kind -> "module:function"``: renders the one-file template of a new plugin of that
        kind from its name (``trustbench new KIND NAME``).
    order
        Position in the pillar order (reports, ``trustbench list``); ties go by name.
    """

    name: str
    question: str = ""
    kinds: tuple[str, ...] = ()
    templates: dict[str, str] = field(default_factory=dict)
    order: int = 100

    def package_dir(self) -> Any:
        """The folder of the package that declares the pillar (a ``pathlib.Path``), or None."""
        import importlib.util
        from pathlib import Path

        module = next(iter(self.templates.values()), "").partition(":")[0]
        spec = importlib.util.find_spec(module) if module else None
        return Path(spec.origin).parent if spec and spec.origin else None

    def template(self, kind: str) -> Callable[[str], str]:
        """The template renderer of ``kind`` (imported on first use)."""
        target = self.templates.get(kind)
        if target is None:
            raise RegistryError(f"the {self.name} pillar has no template for kind {kind!r}")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


_pillars: dict[str, Pillar] | None = None


def pillars() -> dict[str, Pillar]:
    """Every declared pillar, name -> :class:`Pillar`, in pillar order.

    Loads the entry points of :data:`PILLAR_GROUP` once; each names a package (or module)
    holding a ``PILLAR`` object, or the object itself. A pillar that fails to load is left out
    and named by :func:`load_errors`.
    """
    global _pillars
    if _pillars is not None:
        return _pillars
    found: dict[str, Pillar] = {}
    for ep in _builtins_first(importlib.metadata.entry_points(group=PILLAR_GROUP)):
        try:
            loaded = ep.load()
            decl = loaded if isinstance(loaded, Pillar) else getattr(loaded, "PILLAR", None)
            if not isinstance(decl, Pillar):
                raise RegistryError(f"{ep.value} has no PILLAR = trustbench.registry.Pillar(...)")
        except Exception as exc:  # a broken third-party pillar must not take the run down
            _load_errors.append(f"{PILLAR_GROUP}:{ep.name} -> {ep.value}: {exc!r}")
            continue
        if decl.name in found and found[decl.name] != decl:
            _load_errors.append(f"{PILLAR_GROUP}:{ep.name} -> {ep.value}: pillar "
                                f"{decl.name!r} is already declared by another package; "
                                "left out")
            continue
        found[decl.name] = decl
    _pillars = dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
    return _pillars


def pillar_names() -> list[str]:
    """Names of the declared pillars, in pillar order."""
    return list(pillars())


def pillar_of_kind(kind: str) -> Pillar | None:
    """The pillar that owns plugin kind ``kind``, or None."""
    return next((p for p in pillars().values() if kind in p.kinds), None)


def import_submodules(package: str, kinds: tuple[str, ...] = ()) -> list[str]:
    """Import every module of ``package`` (but ``_private`` ones).

    A pillar package calls this from its ``__init__`` so that each plugin module registers its
    classes: a new plugin is one file dropped into the package, with no import line to add.
    A module that fails to import is left out and named by :func:`load_errors` (under the
    group of each of ``kinds``, the plugin kinds the package holds), so one broken file does
    not take the pillar down. Returns the imported module names, sorted.
    """
    pkg = importlib.import_module(package)
    names = []
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", []), prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            for kind in kinds or ("plugin",):
                _load_errors.append(f"{entry_point_group(kind)}:{info.name} (a module of "
                                    f"{package}): {exc!r}")
            continue
        names.append(info.name)
    return sorted(names)


#: A year, a link or a DOI: what a citation of a plugin's source looks like in its docstrings.
CITATION_RE = re.compile(r"\b(19[5-9]\d|20\d\d)\b|https?://|\bdoi\b", re.IGNORECASE)


def pillar_load_errors() -> list[str]:
    """The pillar packages that failed to load (:func:`load_errors` of ``trustbench.pillars``)."""
    pillars()
    return [e for e in _load_errors if e.startswith(f"{PILLAR_GROUP}:")]


def contract_opt_outs(obj: Any) -> dict[str, str]:
    """The contract checks ``obj`` opts out of, check -> reason (``contract_opt_out``)."""
    opt = getattr(obj, "contract_opt_out", None) or {}
    if not isinstance(opt, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in opt.items()):
        raise RegistryError(f"{_where(obj)}.contract_opt_out must map a check name to the "
                            f"reason it does not apply, got {opt!r}")
    return dict(opt)


def entry_point_group(kind: str) -> str:
    """Return the entry-point group of ``kind``: ``trustbench.<kind>s``."""
    return f"trustbench.{kind}s"


def register(kind: str, name: str, obj: Any, *, force: bool = False) -> Any:
    """Register ``obj`` as plugin ``name`` of ``kind``.

    Parameters
    ----------
    kind, name
        Where to register it. Names are case-sensitive, lowercase by convention.
    obj
        Usually a class; anything a pillar knows how to use.
    force
        Replace an existing registration instead of raising.

    Raises
    ------
    RegistryError
        If ``name`` is already taken by another object and ``force`` is false.
    """
    if not name or not isinstance(name, str):
        raise RegistryError(f"a {kind} plugin needs a non-empty string name, got {name!r}")
    if not NAME_RE.fullmatch(name):
        raise RegistryError(
            f"{kind} name {name!r} of {_where(obj)} is not accepted: names become part of metric "
            "names, so use lowercase letters and digits, words joined by single '-' or '_', "
            "starting with a letter (e.g. 'my-attack', 'my_fault')")
    with _lock:
        table = _registry.setdefault(kind, {})
        old = table.get(name)
        if old is not None and old is not obj and not force:
            if _same_definition(old, obj):
                # The same class defined again by a re-imported module (e.g. pytest's
                # rootdir-relative import of a module that is also installed): keep the newest.
                table[name] = obj
                return obj
            raise RegistryError(
                f"{kind} {name!r} is already registered by {_where(old)}; "
                f"cannot register {_where(obj)} under the same name (choose another name)"
            )
        table[name] = obj
    return obj


def unregister(kind: str, name: str) -> None:
    """Remove a registration (mostly for tests)."""
    with _lock:
        _registry.get(kind, {}).pop(name, None)


def _builtins_first(eps: Any) -> list[Any]:
    """Entry points in load order: trustbench's own first, so a third-party plugin can never
    take a built-in's name (its registration is then the one refused), then by name."""
    return sorted(eps, key=lambda ep: (not ep.value.startswith("trustbench."), ep.name, ep.value))


def discover(kind: str) -> None:
    """Load every entry point of ``kind``'s group once (built-ins first, then third parties).

    An entry point that fails to load, names a plugin of another kind or takes a name that is
    already registered is left out and named by :func:`load_errors`; the others load.
    """
    if kind in _discovered:
        return
    _discovered.add(kind)
    group = entry_point_group(kind)
    for ep in _builtins_first(importlib.metadata.entry_points(group=group)):
        where = f"{group}:{ep.name} -> {ep.value}"
        try:
            loaded = ep.load()
            if not inspect.isclass(loaded) and not inspect.ismodule(loaded):
                raise RegistryError(f"names a {type(loaded).__name__}, not a module or a plugin "
                                    "class")
            if inspect.isclass(loaded):
                if not issubclass(loaded, Plugin):
                    raise RegistryError(f"{_where(loaded)} is not a trustbench plugin (a "
                                        f"subclass of the {kind} base class)")
                own = getattr(loaded, "kind", "") or kind
                if own != kind:
                    # importing it registered it under its own kind already: it works there,
                    # only the declaration is misfiled
                    _load_warnings.append(
                        f"{where}: {_where(loaded)} is a plugin of kind {own!r}, not {kind!r}; "
                        f"it is registered as {own!r} (move the entry point to the group "
                        f"{entry_point_group(own)!r})")
                    continue
                name = getattr(loaded, "name", None)
                if isinstance(name, str) and name:
                    register(kind, name, loaded)
        except Exception as exc:  # a broken third-party plugin must not take the run down
            _load_errors.append(f"{where}: {exc!r}")


_load_errors: list[str] = []
_load_warnings: list[str] = []


def load_warnings() -> list[str]:
    """Entry points that loaded but are declared oddly (a plugin filed under another kind)."""
    return list(_load_warnings)


def load_errors(kinds: tuple[str, ...] | None = None) -> list[str]:
    """Entry points and plugin modules that failed to load, as readable strings.

    ``kinds``: only those of these plugin kinds' groups (after discovering them).
    """
    if kinds is not None:
        for kind in kinds:
            discover(kind)
        groups = tuple(f"{entry_point_group(k)}:" for k in kinds)
        return [e for e in _load_errors if e.startswith(groups)]
    return list(_load_errors)


def names(kind: str) -> list[str]:
    """Sorted names registered under ``kind`` (after discovery)."""
    discover(kind)
    return sorted(_registry.get(kind, {}))


def all_plugins(kind: str) -> dict[str, Any]:
    """Name -> object for ``kind`` (after discovery), sorted by name."""
    discover(kind)
    table = _registry.get(kind, {})
    return {n: table[n] for n in sorted(table)}


def kinds() -> list[str]:
    """The plugin kinds of every declared pillar plus any kind a plugin introduced."""
    declared = {k for p in pillars().values() for k in p.kinds}
    return sorted(declared | set(_registry))


def get(kind: str, name: str) -> Any:
    """Return the plugin ``name`` of ``kind``.

    Raises
    ------
    RegistryError
        Naming the registered plugins of that kind, if ``name`` is unknown.
    """
    discover(kind)
    table = _registry.get(kind, {})
    if name in table:
        return table[name]
    known = ", ".join(sorted(table)) or "(none registered)"
    raise RegistryError(
        f"unknown {kind} {name!r}. Registered {kind} plugins: {known}. "
        f"Third-party plugins register through the entry-point group "
        f"{entry_point_group(kind)!r}."
    )


class Plugin:
    """Base of every pillar's plugin base class.

    ``class EvasionAttack(Plugin, kind="attack")`` declares a kind; a subclass of it with a
    class attribute ``name`` registers itself under that kind when it is defined. Classes
    without a ``name`` (or with ``abstract = True`` in their own body) are not registered.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            return
        if cls.__dict__.get("abstract", False) or inspect.isabstract(cls):
            return
        if "name" in cls.__dict__ and cls.name:
            if not cls.kind:
                raise RegistryError(f"{cls.__qualname__} has a name but no kind")
            register(cls.kind, cls.name, cls)


def _where(obj: Any) -> str:
    mod = getattr(obj, "__module__", "?")
    qual = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{mod}.{qual}"


def _source(cls: Any) -> str | None:
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None
    return os.path.realpath(path) if path else None


def _same_definition(a: Any, b: Any) -> bool:
    """The same class from the same source file, imported twice under two module names (a
    test importing a plugin file by path): not a clash. Anything else with the name is."""
    return (
        inspect.isclass(a)
        and inspect.isclass(b)
        and a.__qualname__ == b.__qualname__
        and _source(a) is not None
        and _source(a) == _source(b)
    )
