"""``trustbench run | report | compare | validate | system | list | new``.

``run`` runs the installed suites through pytest with the same ``--bench-*`` options as
``pytest suites/`` (from any directory). The other commands work from scorecard files alone.
Every user error prints one paragraph and exits 2; no bare tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trustbench import __version__
from trustbench.config import OPTION_SPECS
from trustbench.errors import BenchError


def _suites_dir() -> Path:
    # located, not imported: the suites import the pillars, the CLI only runs them through pytest
    import importlib.util

    spec = importlib.util.find_spec("trustbench.suites")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the benchmark suites (trustbench.suites) are not installed; "
                         "reinstall trustbench")
    return Path(next(iter(spec.submodule_search_locations)))


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("benchmark options (the same as pytest's --bench-*)")
    for spec in OPTION_SPECS:
        group.add_argument(spec.flag, **spec.add_kwargs())


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    argv: list[str] = [str(_suites_dir())]
    if args.pillar:
        argv = [str(_suites_dir() / f"test_{p}.py") for p in args.pillar]
        for a in argv:
            if not Path(a).is_file():
                known = sorted(f.stem[5:] for f in _suites_dir().glob("test_*.py"))
                raise BenchError(f"no suite for pillar {Path(a).stem[5:]!r}; suites: "
                                 f"{', '.join(known)}")
    for spec in OPTION_SPECS:
        value = getattr(args, spec.dest)
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            # FLAG=VALUE: pytest would take a VALUE that is an existing path (a dataset file)
            # for a test path when it looks for its configuration
            argv.append(f"{spec.flag}={v}")
    # the suites' own configuration, wherever this runs from (not a project's pyproject)
    argv += ["-c", str(_suites_dir() / "pytest.ini"), "--rootdir", str(_suites_dir())]
    argv += list(args.pytest_args)
    return int(pytest.main(argv))


def cmd_report(args: argparse.Namespace) -> int:
    from trustbench.report import render_report

    for file in args.files:
        out = Path(args.out) if args.out else Path(file).parent
        written = render_report(file, out, formats=args.format)
        for kind, path in written.items():
            print(f"{kind}: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from trustbench.compare import compare, format_compare

    result = compare([Path(f) for f in args.files], allow_mixed=args.allow_mixed)
    print(format_compare(result))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from trustbench.errors import ScorecardError
    from trustbench.scorecard import Scorecard, read_json, score_mismatches, validation_errors

    status = 0
    for file in args.files:
        try:  # report each file and go on with the others
            data = read_json(file)
        except ScorecardError as exc:
            status = 2
            print(f"{file}: UNREADABLE")
            print(f"trustbench: {exc}", file=sys.stderr)
            continue
        errors = validation_errors(data)
        if errors:
            status = max(status, 1)
            print(f"{file}: INVALID")
            for e in errors[:20]:
                print(f"  {e}")
            print(f"trustbench: {file} is not a valid trustbench scorecard", file=sys.stderr)
            continue
        card = Scorecard.from_dict(data)
        problems = score_mismatches(card)
        for m in card.metrics:
            lo, hi = m.ci if m.ci is not None else (None, None)
            if lo is not None and hi is not None and lo > hi:
                problems.append(f"metric {m.key}: interval {m.ci} is reversed")
        if problems:
            status = max(status, 1)
            print(f"{file}: INVALID")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"{file}: valid (schema {card.schema}, {len(card.metrics)} metrics, "
                  f"run status {card.run['status']}, pillar scores recomputed and equal)")
    return status


def cmd_system(args: argparse.Namespace) -> int:
    from trustbench.system import collect_system

    if args.device and args.device.startswith(("cuda", "mps")):
        from trustbench.config import resolve_device

        resolve_device(args.device)  # no such GPU: a clear error, not a CPU description
    info = collect_system(args.device)
    print(json.dumps(info, indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from trustbench import registry
    from trustbench.tasks import BUILTIN_TASKS, task_names

    print("tasks:")
    for name in task_names():
        print(f"  {name:20s} {BUILTIN_TASKS[name].description}")
    print("pillars (entry-point group trustbench.pillars):")
    for pillar in registry.pillars().values():
        kinds = f" [plugins: {', '.join(pillar.kinds)}]" if pillar.kinds else ""
        print(f"  {pillar.name:20s} {pillar.question}{kinds}")
    for kind in registry.kinds():
        if kind == "task":  # listed above
            continue
        plugins = registry.all_plugins(kind)
        if not plugins:
            continue
        print(f"{kind} plugins (entry-point group {registry.entry_point_group(kind)}):")
        for name, obj in plugins.items():
            doc = (getattr(obj, "__doc__", "") or "").strip().splitlines()
            print(f"  {name:20s} {doc[0] if doc else ''}")
    for err in registry.load_errors():
        print(f"warning: plugin failed to load: {err}", file=sys.stderr)
    for warn in registry.load_warnings():
        print(f"warning: {warn}", file=sys.stderr)
    return 0


def _template_kinds() -> dict[str, object]:
    from trustbench import registry

    return {kind: pillar for pillar in registry.pillars().values() for kind in pillar.templates}


def cmd_new(args: argparse.Namespace) -> int:
    from trustbench import registry

    kinds = _template_kinds()
    if args.kind not in kinds:
        broken = registry.pillar_load_errors()
        raise BenchError(f"`trustbench new {args.kind}`: accepted kinds are: "
                         f"{', '.join(sorted(kinds)) or '(no pillar declares a template)'}"
                         + (f" (pillar packages that failed to load: {'; '.join(broken)})"
                            if broken else ""))
    render = kinds[args.kind].template(args.kind)  # type: ignore[attr-defined]
    text = render(args.name)  # raises a BenchError for a name that is no identifier
    article = "an" if args.kind[:1] in "aeiou" else "a"
    if args.name in registry.names(args.kind):
        where = registry.get(args.kind, args.name)
        raise BenchError(f"{article} {args.kind} plugin named {args.name!r} is already registered "
                         f"({getattr(where, '__module__', '?')}); choose another name")
    path = Path(args.out or f"{args.name.replace('-', '_')}.py")
    if path.exists():
        raise BenchError(f"{path} exists; not overwriting it")
    if not path.parent.is_dir():
        raise BenchError(f"--out {path}: the folder {path.parent} does not exist")
    package = kinds[args.kind].package_dir()  # type: ignore[attr-defined]
    if package is not None and (package / path.name).exists():
        raise BenchError(f"{path.name} is the name of a module of the {args.kind} plugins' "
                         f"package ({package / path.name}); choose another name, so the file "
                         "can be dropped there without replacing it")
    path.write_text(text)
    folder = f" ({package})" if package is not None else ""
    print(f"wrote {path}: {article} {args.kind} plugin named {args.name!r}. Drop it into the "
          f"pillar's package folder{folder}, or register it from your package's pyproject.toml "
          "(see its docstring); the contract test and the suite pick it up from there.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trustbench", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"trustbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run the installed benchmark suites (pytest suites/)")
    r.add_argument("--pillar", action="append", metavar="NAME",
                   help="run only this pillar's suite; repeatable")
    _add_bench_options(r)
    r.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help="after --: arguments passed to pytest as they are (e.g. -- -n 2 -x)")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="render Markdown and HTML (with plots) from scorecards")
    rep.add_argument("files", nargs="+", metavar="FILE")
    rep.add_argument("--out", metavar="DIR", help="output folder (default: beside the file)")
    rep.add_argument("--format", default="md,html", help="md, html or md,html (default)")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare scorecards side by side")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--allow-mixed", action="store_true",
                   help="show scorecards of different tasks/profiles together (never ranked)")
    c.set_defaults(func=cmd_compare)

    v = sub.add_parser("validate", help="check scorecards against the schema and recompute "
                       "pillar scores")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("system", help="print this machine's system description")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:N")
    s.set_defaults(func=cmd_system)

    ls = sub.add_parser("list", help="list built-in tasks and registered plugins")
    ls.set_defaults(func=cmd_list)

    n = sub.add_parser("new", help="write a template for a new plugin (one file): "
                       "attack, fault, protection, ...")
    n.add_argument("kind", help="the plugin kind: attack, fault, protection (any kind a pillar "
                   "declares a template for)")
    n.add_argument("name")
    n.add_argument("--out", metavar="FILE")
    n.set_defaults(func=cmd_new)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[:1] == ["--"]:
        args.pytest_args = args.pytest_args[1:]
    from trustbench.config import apply_offline_env

    apply_offline_env()
    try:
        return int(args.func(args))
    except BenchError as exc:
        print(f"trustbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trustbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
