"""The house rules of DESIGN.md, checked on the source: one namespace, imports that point one
way (suites -> pillar packages -> core), a core that imports no pillar, no import circle, and
modules of a readable size.

Imports are read from the source with ``ast`` (every ``import``, also inside functions; those
under ``if TYPE_CHECKING:`` are type hints, not imports, and are left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[3]
#: Folder -> the package it installs as (pyproject's package-dir mapping).
PACKAGE_DIRS = {"trustbench": "trustbench"}
PILLAR_FOLDERS = ("attacks", "faults", "fairness", "privacy", "federated", "carbon")
PACKAGE_DIRS |= {f: f"trustbench.{f}" for f in (*PILLAR_FOLDERS, "suites")}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGE_DIRS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The trustbench modules ``path`` imports at run time (resolved to known modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}".strip(".")
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            # the longest known module that t is or lies in
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _pillar_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PILLAR_FOLDERS else None


def test_only_trustbench_is_installed_at_the_top() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    st = cfg["tool"]["setuptools"]
    assert {p.split(".")[0] for p in st["packages"]} == {"trustbench"}
    assert st["package-dir"] == {v: k for k, v in PACKAGE_DIRS.items() if k != "trustbench"}
    # every package folder with an __init__ is listed (nothing left out of the wheel)
    listed = set(st["packages"])
    for folder, pkg in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            sub = init.parent.relative_to(ROOT / folder).parts
            assert ".".join([pkg, *sub]) in listed, f"{init} is not in [tool.setuptools] packages"


def test_the_core_imports_no_pillar_and_no_suite(graph) -> None:
    core = {m: deps for m, deps in graph.items()
            if m.startswith("trustbench") and _pillar_of(m) is None
            and not m.startswith("trustbench.suites")}
    bad = {m: sorted(d for d in deps if _pillar_of(d) or d.startswith("trustbench.suites"))
           for m, deps in core.items()}
    assert not {m: d for m, d in bad.items() if d}, "the core must not import a pillar"


def test_pillars_never_import_each_other_nor_the_suites(graph) -> None:
    bad = {}
    for m, deps in graph.items():
        p = _pillar_of(m)
        if p is None:
            continue
        wrong = sorted(d for d in deps if (_pillar_of(d) not in (None, p))
                       or d.startswith("trustbench.suites"))
        if wrong:
            bad[m] = wrong
    assert not bad, f"pillar packages import other pillars or suites: {bad}"


def test_no_pillar_package_imports_pytest() -> None:
    for folder in PILLAR_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "pytest" for n in names), path


def test_no_import_circle(graph) -> None:
    # Tarjan's strongly connected components; a component of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            # a package's __init__ importing its own submodules (re-exports) is not a circle:
            # the submodule's import of the package resolves to the partly initialised package
            if w not in graph or (v == w.rpartition(".")[0]) or w == v.rpartition(".")[0]:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    assert not circles, f"import circles: {circles}"


def test_modules_are_of_a_readable_size() -> None:
    """No module over ~500 lines unless its docstring says which one concern earns it."""
    too_long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= 550:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "one concern" not in doc.lower():
            too_long.append(f"{name} ({lines} lines)")
    assert not too_long, ("modules over ~500 lines whose docstring does not say which one "
                          f"concern earns it: {too_long}")
