"""The benchmark session's bookkeeping: per-task records of what the tests measured, and the
:class:`ScorecardWriter` that turns them into scorecards (atomically, after every test that adds
to one, and finally at the end of the session) and prints the terminal summary.

The pytest hooks that feed it live in :mod:`trustbench.pytest_plugin` (the split of
pytest-benchmark's ``plugin.py`` and ``session.py``).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trustbench import __version__
from trustbench.config import RunConfig
from trustbench.errors import ScorecardError
from trustbench.scorecard import (
    Check,
    Metric,
    PillarResult,
    Scorecard,
    pillar_score,
    scorecard_path,
    write_json_atomic,
)

#: The key of trustbench's entries in a test's ``user_properties``.
PROP = "trustbench"
#: Set in the config's stash when the session collected task tests.
TASK_ITEMS_KEY = pytest.StashKey[bool]()


def _third_party_plugins() -> dict[str, dict[str, str]]:
    """Plugins registered from outside trustbench (installed packages' entry points), kind ->
    name -> ``module:Class``: they join the suites' measurements (an attack joins the worst
    case), so a scorecard records them and ``compare`` treats them like settings."""
    from trustbench import registry

    out: dict[str, dict[str, str]] = {}
    for kind in registry.kinds():
        for name, obj in registry.all_plugins(kind).items():
            module = getattr(obj, "__module__", "") or ""
            if module != "trustbench" and not module.startswith("trustbench."):
                qual = getattr(obj, "__qualname__", type(obj).__qualname__)
                out.setdefault(kind, {})[name] = f"{module}:{qual}"
    return out


def _settings(rc: RunConfig) -> dict[str, Any]:
    """``run.settings``: the pillar tables the run used, and third-party plugins if any."""
    settings: dict[str, Any] = {k: v for k, v in sorted(rc.pillars.items()) if v}
    plugins = _third_party_plugins()
    if plugins:
        settings["plugins"] = plugins
    return settings


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
            "settings": _settings(rc),
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
        # A failed pillar has no score: what it measured stays in its metrics, but a mean over
        # the metrics that survived a failure (a worst case that never finished) would mislead.
        for p, result in card.pillars.items():
            if result.status == "measured":
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


class WriterHooks:
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
