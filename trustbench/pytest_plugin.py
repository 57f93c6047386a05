"""The pytest plugin: ``--bench-*`` options, fixtures and the hooks that collect scores; the
scorecard writer and the terminal summary it prints live in :mod:`trustbench.session`.

Registered through the ``pytest11`` entry point, so it is active in every pytest session of an
environment where trustbench is installed, and inert unless a test uses the ``task`` fixture.

Collection works like junitxml's: ``record_metric`` appends JSON-plain dicts to the test's
``user_properties``; they ride on each ``TestReport`` back to the controller (also under
``pytest -n``), where one :class:`~trustbench.session.ScorecardWriter` (created in
``pytest_configure``, only when not an xdist worker) gathers them per task and writes one
scorecard per task. The scorecard is
rewritten atomically after each test that adds to it (status ``incomplete``), and finalised in
``pytest_sessionfinish``, so a run that is interrupted or crashes still leaves what it measured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trustbench.config import OPTION_SPECS, RunConfig, apply_offline_env, build_config
from trustbench.errors import BenchError
from trustbench.scorecard import (
    Check,
    Metric,
)
from trustbench.session import PROP, TASK_ITEMS_KEY, ScorecardWriter, WriterHooks

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
        config.pluginmanager.register(WriterHooks(writer), "trustbench-scorecard-writer")
        if config.getoption("bench_out", None):
            writer.check_writable()


# --------------------------------------------------------------------------- fixtures & params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "task" in metafunc.fixturenames:
        ids = metafunc.config.stash[CONFIG_KEY].task_ids()
        metafunc.parametrize("task", ids, indirect=True, scope="session", ids=ids)


#: Whether this session collected benchmark (task) tests.


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


