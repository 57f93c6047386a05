"""The pytest plugin: ``--bench-*`` options, fixtures, score collection, scorecard writing,
terminal summary.

Registered through the ``pytest11`` entry point, so it is active in every pytest session of an
environment where trustbench is installed, and inert unless a test uses the ``task`` fixture.

Collection works like junitxml's: ``record_metric`` appends JSON-plain dicts to the test's
``user_properties``; they ride on each ``TestReport`` back to the controller (also under
``pytest -n``), where one :class:`ScorecardWriter` (created in ``pytest_configure``, only when not
an xdist worker) gathers them per task and writes one scorecard per task. The scorecard is
rewritten atomically after each test that adds to it (status ``incomplete``), and finalised in
``pytest_sessionfinish``, so a run that is interrupted or crashes still leaves what it measured.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trustbench import __version__
from trustbench.config import OPTION_SPECS, RunConfig, apply_offline_env, build_config
from trustbench.errors import BenchError, ScorecardError
from trustbench.scorecard import (
    Check,
    Metric,
    PillarResult,
    Scorecard,
    pillar_score,
    scorecard_path,
    write_json_atomic,
)

PROP = "trustbench"
CONFIG_KEY = pytest.StashKey[RunConfig]()
WRITER_KEY = pytest.StashKey["ScorecardWriter"]()


class CheckFailed(AssertionError):
    """A validity check failed: the evaluation itself is not trustworthy."""


# --------------------------------------------------------------------------- options


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from trustbench import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trustbench", "trustbench benchmark (pytest suites/)")
    for spec in OPTION_SPECS:
        group.addoption(spec.flag, **spec.add_kwargs())


def _options(config: pytest.Config) -> dict[str, Any]:
    return {spec.dest: config.getoption(spec.dest, None) for spec in OPTION_SPECS}


def pytest_configure(config: pytest.Config) -> None:
    # The plugin is loaded in every pytest session of an environment with trustbench installed;
    # only a benchmark run (a --bench-* option, or the suites' own conftest) goes offline here,
    # the task fixture does it for every run before it builds a task.
    if any(v is not None for v in _options(config).values()):
        apply_offline_env()
    try:
        run_config = build_config(_options(config), config.invocation_params.dir)
        if run_config.device_name.startswith(("cuda", "mps")):
            from trustbench.config import resolve_device

            resolve_device(run_config.device_name)  # no such GPU: say so once, up front
    except BenchError as exc:
        raise pytest.UsageError(f"trustbench: {exc}") from None
    config.stash[CONFIG_KEY] = run_config
    if not hasattr(config, "workerinput"):  # controller (or no xdist)
        writer = ScorecardWriter(config, run_config)
        config.stash[WRITER_KEY] = writer
        config.pluginmanager.register(_WriterHooks(writer), "trustbench-scorecard-writer")
        if config.getoption("bench_out", None):
            writer.check_writable()


# --------------------------------------------------------------------------- fixtures & params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "task" in metafunc.fixturenames:
        ids = metafunc.config.stash[CONFIG_KEY].task_ids()
        metafunc.parametrize("task", ids, indirect=True, scope="session", ids=ids)


#: Whether this session collected benchmark (task) tests.
TASK_ITEMS_KEY = pytest.StashKey[bool]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "task" not in callspec.params:
            continue
        config.stash[TASK_ITEMS_KEY] = True
        item.user_properties.append(
            (PROP, {"type": "test", "task": callspec.params["task"], "pillar": _pillar_of(item)})
        )


def _pillar_of(node: Any) -> str:
    name = Path(str(getattr(node, "path", getattr(node, "fspath", "")))).stem
    return name[5:] if name.startswith("test_") else name


# Tasks built in this process, per pytest session (kept on the config, never module-global, so
# that two sessions in one process, e.g. pytester's inline runs, do not share state).
TASKS_KEY = pytest.StashKey[dict[str, Any]]()
TASK_ERRORS_KEY = pytest.StashKey[dict[str, str]]()


@pytest.fixture(scope="session")
def bench_config(pytestconfig: pytest.Config) -> RunConfig:
    """The run's :class:`~trustbench.config.RunConfig`."""
    return pytestconfig.stash[CONFIG_KEY]


@pytest.fixture(scope="session")
def task(request: pytest.FixtureRequest, bench_config: RunConfig) -> Any:
    """The :class:`~trustbench.tasks.Task` this test scores (built once per process)."""
    name = request.param
    _TASKS = request.config.stash.setdefault(TASKS_KEY, {})
    _TASK_ERRORS = request.config.stash.setdefault(TASK_ERRORS_KEY, {})
    if name in _TASK_ERRORS:
        pytest.fail(_TASK_ERRORS[name], pytrace=False)
    if name not in _TASKS:
        apply_offline_env()
        try:
            if bench_config.model:
                from trustbench.builtin_tasks import build_open_task

                _TASKS[name] = build_open_task(bench_config)
            else:
                from trustbench.tasks import build_task

                _TASKS[name] = build_task(name, bench_config)
        except BenchError as exc:
            msg = f"trustbench: task {name} could not be built: {exc}"
            _TASK_ERRORS[name] = msg
            if bench_config.model and not hasattr(request.config, "workerinput"):
                # Bad open-division input: stop at once with the message, not per test (an
                # xdist worker cannot end the session: the controller checked it up front).
                pytest.exit(msg, returncode=4)
            pytest.fail(msg, pytrace=False)
    return _TASKS[name]


#: Set when this process's session is interrupted (Ctrl-C), before fixtures are torn down.
_INTERRUPTED = {"flag": False}


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    _INTERRUPTED["flag"] = True


@pytest.fixture(scope="session")
def bench_interrupted() -> Callable[[], bool]:
    """``bench_interrupted()``: whether the run was interrupted (meaningful in a fixture's
    teardown, e.g. to keep a measurement's saved progress for the next run)."""
    return lambda: _INTERRUPTED["flag"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist, build an open-division task once in the controller first, so bad
    user input stops the run with its message (a worker cannot end the session cleanly)."""
    _INTERRUPTED["flag"] = False
    config = session.config
    run_config = config.stash.get(CONFIG_KEY, None)
    if (run_config is None or not run_config.model or hasattr(config, "workerinput")
            or config.option.collectonly
            or not getattr(config.option, "numprocesses", None)):
        return
    apply_offline_env()
    from trustbench.builtin_tasks import build_open_task

    try:
        build_open_task(run_config)
    except BenchError as exc:
        pytest.exit(f"trustbench: task {run_config.task_ids()[0]} could not be built: {exc}",
                    returncode=4)


@pytest.fixture(autouse=True)
def _trustbench_task_meta(request: pytest.FixtureRequest) -> None:
    """Attach the task's metadata to each test report that uses a task (for the controller)."""
    if "task" not in request.fixturenames:
        return
    built = request.getfixturevalue("task")
    request.node.user_properties.append(
        (PROP, {"type": "task", "task": request.node.callspec.params["task"], "meta": built.meta,
                "device": str(built.device)})
    )


@pytest.fixture
def record_metric(request: pytest.FixtureRequest) -> Any:
    """Record one scorecard metric; see :class:`trustbench.scorecard.Metric` for the fields.

    ``record_metric(name, value, *, unit, higher_is_better=None, ci=None, n=None, params=None,
    hardware_dependent=False, score_weight=None, pillar=None)``; the pillar defaults to the
    suite file's ``test_<pillar>.py``.
    """
    node = request.node

    def record(name: str, value: Any, *, unit: str, higher_is_better: bool | None = None,
               ci: Any = None, n: int | None = None, params: dict[str, Any] | None = None,
               hardware_dependent: bool = False, score_weight: float | None = None,
               pillar: str | None = None) -> Metric:
        metric = Metric(
            pillar=pillar or _pillar_of(node), name=name, value=value, unit=unit,
            higher_is_better=higher_is_better, ci=list(ci) if ci is not None else None, n=n,
            params=params or {}, hardware_dependent=hardware_dependent, test=node.nodeid,
            score_weight=score_weight,
        )
        node.user_properties.append((PROP, {"type": "metric", "metric": metric.to_dict()}))
        return metric

    return record


@pytest.fixture
def record_check(request: pytest.FixtureRequest) -> Any:
    """Record a validity check; a failed check fails the test and marks the run invalid."""
    node = request.node

    def record(name: str, passed: bool, detail: str = "", *, pillar: str | None = None) -> bool:
        check = Check(name=name, passed=bool(passed), detail=str(detail),
                      pillar=pillar or _pillar_of(node), test=node.nodeid)
        node.user_properties.append((PROP, {"type": "check", "check": check.__dict__}))
        if not passed:
            raise CheckFailed(f"validity check {name} failed: {detail}")
        return True

    return record


# --------------------------------------------------------------------------- collection


@dataclass
class _TaskRecord:
    name: str
    meta: dict[str, Any] | None = None
    device: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # pillar -> outcome lists
    passed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    check_failed_tests: set[str] = field(default_factory=set)
    path: Path | None = None


class ScorecardWriter:
    """Controller-side collector: one scorecard per task, rewritten as results arrive."""

    def __init__(self, config: pytest.Config, run_config: RunConfig) -> None:
        self.config = config
        self.run_config = run_config
        self.run_id = uuid.uuid4().hex[:8]
        self.started = _utc_now()
        self.records: dict[str, _TaskRecord] = {}
        self.system: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.cards: dict[str, Scorecard] = {}
        self.gate_failures: list[str] = []
        root = Path(run_config.out)
        self.root = root if root.is_absolute() else config.invocation_params.dir / root

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{self.run_id}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise pytest.UsageError(
                f"trustbench: the results root {self.root} is not writable ({exc.strerror}); "
                "pass --bench-out DIR with a folder you can write to"
            ) from None

    # -- intake

    def add_report(self, report: pytest.TestReport) -> None:
        props = [v for k, v in report.user_properties if k == PROP and isinstance(v, dict)]
        if not props:
            return
        test_info = next((p for p in props if p.get("type") == "test"), None)
        if test_info is None:
            return
        rec = self.records.setdefault(test_info["task"], _TaskRecord(test_info["task"]))
        pillar = test_info["pillar"]
        changed = False
        if report.when == "call" or (report.when == "setup" and not report.passed):
            for p in props:
                kind = p.get("type")
                if kind == "task" and rec.meta is None:
                    rec.meta, rec.device = p["meta"], p.get("device")
                elif kind == "metric":
                    metric = Metric.from_dict(p["metric"])
                    if any(m.key == metric.key for m in rec.metrics):
                        msg = (f"task {rec.name}: metric {metric.key} was recorded twice "
                               f"(again by {metric.test}); gates and compare address metrics by "
                               "pillar.name, so give each measurement its own name")
                        if msg not in self.errors:
                            self.errors.append(msg)
                    rec.metrics.append(metric)
                elif kind == "check":
                    check = Check(**p["check"])
                    rec.checks.append(check)
                    if not check.passed:
                        rec.check_failed_tests.add(report.nodeid)
            changed = True
        if report.skipped:
            rec.skipped[pillar].append(_skip_reason(report))
            changed = True
        elif report.failed:
            if report.nodeid not in rec.check_failed_tests:
                rec.failed[pillar].append(f"{report.nodeid} ({report.when}): "
                                          f"{_short_failure(report)}")
            changed = True
        elif report.when == "call":
            rec.passed[pillar] += 1
        if changed:
            self.write(rec.name, final=False)

    # -- building

    def _system(self) -> dict[str, Any]:
        if self.system is None:
            from trustbench.system import collect_system

            device = next((r.device for r in self.records.values() if r.device), None)
            self.system = collect_system(device)
        return self.system

    def build(self, name: str, *, final: bool, interrupted: bool = False,
              exitstatus: int | None = None) -> Scorecard:
        rec = self.records[name]
        pillars: dict[str, PillarResult] = {}
        for pillar in sorted(set(rec.passed) | set(rec.failed) | set(rec.skipped)
                             | {m.pillar for m in rec.metrics}):
            has_metrics = any(m.pillar == pillar for m in rec.metrics)
            if rec.failed.get(pillar):
                pillars[pillar] = PillarResult("failed", "; ".join(rec.failed[pillar][:3]))
            elif has_metrics:
                bad = [c for c in rec.checks if c.pillar == pillar and not c.passed]
                reason = ("validity check failed: " + ", ".join(c.name for c in bad)) if bad \
                    else None
                pillars[pillar] = PillarResult("measured", reason)
            elif rec.passed.get(pillar):
                pillars[pillar] = PillarResult("measured", "no metrics recorded")
            else:
                reasons = sorted(set(rec.skipped.get(pillar, [])))
                pillars[pillar] = PillarResult("skipped", "; ".join(reasons) or None, None)

        status, reason = "valid", None
        n_failed = sum(len(v) for v in rec.failed.values())
        if not final:
            status, reason = "incomplete", "run in progress (or interrupted before it finished)"
        elif interrupted:
            status, reason = "incomplete", "the run was interrupted before it finished"
        elif n_failed:
            status, reason = "incomplete", f"{n_failed} test(s) failed or errored"
        elif any(not c.passed for c in rec.checks):
            status = "invalid"
            reason = "validity check(s) failed: " + ", ".join(
                sorted({c.name for c in rec.checks if not c.passed}))
        if final and exitstatus not in (None, 0, 1, 5) and status == "valid":
            status, reason = "incomplete", f"pytest ended with exit status {exitstatus}"

        rc = self.run_config
        meta = rec.meta or {
            "name": name,
            "model": {"name": "unknown", "source": "task was not built", "parameters": 0,
                      "sha256": ""},
            "dataset": {"name": "unknown", "source": "task was not built", "split": "", "n": 0,
                        "sha256": ""},
        }
        run = {
            "id": self.run_id,
            "started": self.started,
            "finished": _utc_now() if final else None,
            "profile": rc.profile,
            "division": rc.division,
            "seed": rc.seed,
            "settings": {k: v for k, v in sorted(rc.pillars.items()) if v},
            "trustbench_version": __version__,
            "argv": [str(a) for a in self.config.invocation_params.args],
            "status": status,
            "status_reason": reason,
            "device": rec.device or rc.device_name,
        }
        card = Scorecard(run=run, system=self._system(), task=meta, metrics=list(rec.metrics),
                         pillars=pillars, checks=list(rec.checks))
        if final:
            self.config.hook.pytest_trustbench_update_scorecard(config=self.config, scorecard=card)
        # Scores last, from the metrics as they will be written (a hook may have added some).
        for p, result in card.pillars.items():
            if result.status != "skipped":
                result.score = pillar_score(card.metrics, p)
        if final:
            from trustbench.gates import evaluate_gate, parse_gate

            card.gates = [evaluate_gate(parse_gate(g), card) for g in rc.gates]
        return card

    def write(self, name: str, *, final: bool, interrupted: bool = False,
              exitstatus: int | None = None) -> None:
        rec = self.records[name]
        try:
            card = self.build(name, final=final, interrupted=interrupted, exitstatus=exitstatus)
            if rec.path is None:
                rec.path = scorecard_path(self.root, card.system["id"], name, self.started,
                                          self.run_id)
                write_json_atomic(card.to_dict(), rec.path)
            else:
                write_json_atomic(card.to_dict(), rec.path, replace=True)
            self.cards[name] = card
        except ScorecardError as exc:
            msg = str(exc)
            if msg not in self.errors:
                self.errors.append(msg)

    def finish(self, exitstatus: int, interrupted: bool) -> None:
        if interrupted and not self.records and self.config.stash.get(TASK_ITEMS_KEY, False):
            # interrupted before any task test finished (building a task, training its
            # reference model): still leave an incomplete scorecard per task, saying so
            for name in self.run_config.task_ids():
                self.records[name] = _TaskRecord(name)
        for name in self.records:
            self.write(name, final=True, interrupted=interrupted, exitstatus=exitstatus)
            card = self.cards.get(name)
            if card is not None:
                self.gate_failures += [f"{name}: gate {g.expr} failed ({g.detail})"
                                       for g in card.gates if not g.passed]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        text = str(lr[2])
    else:
        text = str(lr)
    return text.removeprefix("Skipped: ")


def _short_failure(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300]
    return str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else "failed"


# --------------------------------------------------------------------------- hooks
# The writer's hooks live on a small plugin object registered in pytest_configure (controller
# only), like junitxml's LogXML.


class _WriterHooks:
    def __init__(self, writer: ScorecardWriter) -> None:
        self.writer = writer

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and report.passed:
            return
        self.writer.add_report(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        writer = self.writer
        if not writer.records:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        writer.finish(int(exitstatus), interrupted)
        if (writer.gate_failures or writer.errors) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        writer = self.writer
        if not writer.records:
            return
        from trustbench.summary import format_summary

        tr = terminalreporter
        tr.section("trustbench scorecard")
        for name in writer.records:
            card = writer.cards.get(name)
            if card is None:
                continue
            for line in format_summary(card):
                tr.write_line(line)
            path = writer.records[name].path
            if path is not None:
                tr.write_line(f"scorecard: {_rel(path)}")
            tr.write_line("")
        for msg in writer.gate_failures:
            tr.write_line(f"GATE FAILED: {msg}", red=True, bold=True)
        for msg in writer.errors:
            tr.write_line(f"trustbench: {msg}", red=True, bold=True)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
