"""Named plugins per kind ("attack", "fault", "meter", ...): registration, lookup, discovery.

A pillar's base class subclasses :class:`Plugin` with ``kind="..."``; every concrete subclass
that sets a ``name`` registers itself when its module is imported. Duplicates are rejected.

Discovery goes through entry points, for built-ins and third parties alike, so the core never
imports a pillar by name: the group of kind ``attack`` is ``trustbench.attacks``, and trustbench's
own pyproject declares ``builtin = "attacks"`` in it. Loading an entry point imports its module,
whose classes register themselves (or, if the entry point names a class, that class is
registered under its ``name``).

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

import importlib.metadata
import inspect
import threading
from typing import Any, ClassVar

from trustbench.errors import BenchError

#: Kinds that the harness knows about; a plugin may introduce a new one.
KINDS: tuple[str, ...] = (
    "attack",
    "corruption",
    "fault",
    "protection",
    "privacy_attack",
    "meter",
    "device_profile",
    "strategy",
)

_registry: dict[str, dict[str, Any]] = {}
_discovered: set[str] = set()
_lock = threading.Lock()


class RegistryError(BenchError):
    """A plugin name that is unknown or registered twice."""


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
                f"cannot register {_where(obj)} under the same name "
                "(choose another name, or pass force=True to replace it)"
            )
        table[name] = obj
    return obj


def unregister(kind: str, name: str) -> None:
    """Remove a registration (mostly for tests)."""
    with _lock:
        _registry.get(kind, {}).pop(name, None)


def discover(kind: str) -> None:
    """Load every entry point of ``kind``'s group once (built-ins and third-party packages)."""
    if kind in _discovered:
        return
    _discovered.add(kind)
    for ep in importlib.metadata.entry_points(group=entry_point_group(kind)):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the run down
            _load_errors.append(f"{entry_point_group(kind)}:{ep.name} -> {ep.value}: {exc!r}")
            continue
        name = getattr(loaded, "name", None) if inspect.isclass(loaded) else None
        if isinstance(name, str) and name:
            register(kind, name, loaded)


_load_errors: list[str] = []


def load_errors() -> list[str]:
    """Entry points that failed to load, as readable strings."""
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
    """Known kinds plus any kind a plugin introduced."""
    return sorted(set(KINDS) | set(_registry))


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


def _same_definition(a: Any, b: Any) -> bool:
    return (
        inspect.isclass(a)
        and inspect.isclass(b)
        and a.__qualname__ == b.__qualname__
        and a.__module__.rsplit(".", 1)[-1] == b.__module__.rsplit(".", 1)[-1]
    )
