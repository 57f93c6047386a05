"""The scorecard (schema v1): Metric, PillarResult, Gate, Check, Scorecard; atomic write, load,
validate, and the pillar score formula.

A scorecard is one JSON file per (run, task) at
``<results root>/<system id>/<task>/<UTC timestamp>-<run id>.json``. The JSON Schema ships in
``trustbench/schema/scorecard-1.json`` (a copy lives at ``results/schema/scorecard-1.json``).

Pillar scores (0-100) are derived from the raw metrics by one documented formula
(docs/scoring.md) so that ``trustbench validate`` can recompute them: the weighted mean over the
pillar's metrics that carry a ``score_weight`` of ``100 * v`` (``higher_is_better``) or
``100 * (1 - v)`` (lower is better), where ``v`` is the metric's scalar value in [0, 1].
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trustbench.errors import ScorecardError

SCHEMA_ID = "trustbench.scorecard/1"
RUN_STATUSES = ("valid", "invalid", "incomplete")
PILLAR_STATUSES = ("measured", "skipped", "failed")
VALUE_SHAPES = ("scalar", "series", "table", "matrix")


def schema_path() -> Path:
    """Path of the shipped JSON Schema file."""
    return Path(__file__).with_name("schema") / "scorecard-1.json"


def load_schema() -> dict[str, Any]:
    """The JSON Schema of scorecard v1, as a dict."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


def value_shape(value: Any) -> str:
    """Which of the four value shapes ``value`` has; raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("a metric value may not be a bool; record a check instead")
    if isinstance(value, (int, float)) or value is None:
        return "scalar"
    if isinstance(value, dict):
        if "x" in value and "y" in value:
            return "series"
        if "rows" in value and "cols" in value and "values" in value:
            return "matrix"
        if "rows" in value:
            return "table"
    raise ValueError(
        f"unsupported metric value {value!r}: accepted shapes are a number, a series "
        "{'x': [...], 'y': [...]}, a table {'rows': [{'group', 'value', ...}]} or a matrix "
        "{'rows': [...], 'cols': [...], 'values': [[...]]}"
    )


def _plain(obj: Any) -> Any:
    """Convert numpy/torch scalars and tuples to JSON-plain values; NaN/Inf become None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return _plain(item())
        except (ValueError, RuntimeError):
            pass
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return _plain(tolist())
    return str(obj)


@dataclass
class Metric:
    """One measured number (or series / table / matrix) with its unit and uncertainty."""

    pillar: str
    name: str
    value: Any
    unit: str
    higher_is_better: bool | None = None
    ci: list[float | None] | None = None
    n: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hardware_dependent: bool = False
    test: str = ""
    score_weight: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, (dict, list, tuple, bool)):
            self.value = _plain(self.value)  # numpy / torch scalars -> float
        value_shape(self.value)  # raises on an unsupported shape
        self.value = _plain(self.value)
        self.params = _plain(dict(self.params))
        if self.ci is not None:
            lo, hi = (None if v is None else float(v) for v in self.ci)
            self.ci = [lo, hi]
        if self.n is not None:
            self.n = int(self.n)

    @property
    def key(self) -> str:
        """``pillar.name``, as used by gates and by compare."""
        return f"{self.pillar}.{self.name}"

    @property
    def shape(self) -> str:
        return value_shape(self.value)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PillarResult:
    status: str
    reason: str | None = None
    score: float | None = None


@dataclass
class Gate:
    expr: str
    passed: bool
    detail: str = ""
    #: The gate's pillar was skipped for this task with a reason: the gate does not apply
    #: (and does not fail the run).
    skipped: bool = False


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""
    pillar: str = ""
    test: str = ""


@dataclass
class Scorecard:
    run: dict[str, Any]
    system: dict[str, Any]
    task: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    pillars: dict[str, PillarResult] = field(default_factory=dict)
    gates: list[Gate] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    schema: str = SCHEMA_ID

    def metric(self, key: str) -> Metric | None:
        """The metric named ``pillar.name`` (the last recorded one), or None."""
        found = None
        for m in self.metrics:
            if m.key == key:
                found = m
        return found

    def to_dict(self) -> dict[str, Any]:
        return _plain(
            {
                "schema": self.schema,
                "run": self.run,
                "system": self.system,
                "task": self.task,
                "metrics": [m.to_dict() for m in self.metrics],
                "pillars": {k: asdict(v) for k, v in self.pillars.items()},
                "gates": [asdict(g) for g in self.gates],
                "checks": [asdict(c) for c in self.checks],
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scorecard:
        return cls(
            schema=d.get("schema", SCHEMA_ID),
            run=d["run"],
            system=d["system"],
            task=d["task"],
            metrics=[Metric.from_dict(m) for m in d.get("metrics", [])],
            pillars={k: PillarResult(**v) for k, v in d.get("pillars", {}).items()},
            gates=[Gate(**g) for g in d.get("gates", [])],
            checks=[Check(**c) for c in d.get("checks", [])],
        )

    def write(self, path: str | Path, *, replace_own: bool = False) -> Path:
        """Write atomically to ``path``; see :func:`write_json_atomic`."""
        return write_json_atomic(self.to_dict(), path, replace=replace_own)


# --------------------------------------------------------------------------- scoring


def pillar_score(metrics: list[Metric], pillar: str) -> float | None:
    """The documented pillar score: weighted mean of 100*v (or 100*(1-v)) over scored metrics.

    Only scalar metrics of ``pillar`` with a positive ``score_weight`` and a value in [0, 1]
    count. Returns None when there is none.
    """
    total = 0.0
    weights = 0.0
    for m in metrics:
        if m.pillar != pillar or not m.score_weight or m.shape != "scalar" or m.value is None:
            continue
        v = float(m.value)
        if not 0.0 <= v <= 1.0:
            continue
        good = v if m.higher_is_better is not False else 1.0 - v
        total += m.score_weight * 100.0 * good
        weights += m.score_weight
    if weights == 0:
        return None
    return round(total / weights, 4)


def recompute_scores(card: Scorecard) -> dict[str, float | None]:
    """Pillar scores recomputed from the raw metrics (what ``validate`` compares against); a
    pillar that was not measured (failed or skipped) has none."""
    return {p: pillar_score(card.metrics, p) if r.status == "measured" else None
            for p, r in card.pillars.items()}


def score_mismatches(card: Scorecard, tolerance: float = 0.01) -> list[str]:
    """One line per pillar whose stored score differs from the one its metrics give (a
    hand-edited file); empty when they all agree."""
    out = []
    for pillar, score in recompute_scores(card).items():
        stored = card.pillars[pillar].score
        if card.pillars[pillar].status == "failed" and stored is not None:
            # written before failed pillars lost their score: the formula over what survived
            score = pillar_score(card.metrics, pillar)
        if (stored is None) != (score is None) or (
                stored is not None and score is not None and abs(stored - score) > tolerance):
            out.append(f"pillar {pillar}: stored score {stored} != recomputed {score}")
    return out


# --------------------------------------------------------------------------- files


def scorecard_path(root: str | Path, system_id: str, task: str, started_utc: str, run_id: str
                   ) -> Path:
    """``<root>/<system id>/<task>/<UTC timestamp>-<run id>.json`` with safe path parts."""
    stamp = re.sub(r"[^0-9TZ]", "", started_utc)
    return Path(root) / _safe(system_id) / _safe(task) / f"{stamp}-{_safe(run_id)}.json"


def _safe(part: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-.")
    return s or "unnamed"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(data: dict[str, Any], path: str | Path, *, replace: bool = False) -> Path:
    """Write JSON to a temporary file in the target folder, then rename it into place.

    An existing file is never overwritten unless ``replace`` is true (a run updating its own
    in-progress scorecard).

    Raises
    ------
    ScorecardError
        If the file exists (and ``replace`` is false) or the folder is not writable.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise ScorecardError(
            f"refusing to overwrite the existing scorecard {path}: scorecards are never "
            "overwritten; choose another --bench-out or remove the file yourself"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a results folder is shared
        os.replace(tmp, path)
    except OSError as exc:
        raise ScorecardError(
            f"cannot write the scorecard to {path}: {exc.strerror or exc}. The results root must "
            "be a writable folder: pass --bench-out DIR (or [tool.trustbench] out = ...) to choose "
            "another"
        ) from exc
    return path


def validation_errors(data: Any) -> list[str]:
    """Schema errors of a parsed scorecard, as readable strings (empty when valid)."""
    import jsonschema

    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        return [f"not a trustbench scorecard: expected schema {SCHEMA_ID!r}, found {found!r}"]
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        errors.append(f"{where}: {err.message}")
    seen: set[str] = set()
    for i, m in enumerate(data.get("metrics", [])):
        if not isinstance(m, dict):
            continue  # the schema errors above name it
        try:
            value_shape(m.get("value"))
        except ValueError as exc:
            errors.append(f"metrics/{i}/value: {exc}")
        else:
            errors += [f"metrics/{i}/value: {p}" for p in value_problems(m.get("value"))]
        key = f"{m.get('pillar')}.{m.get('name')}"
        if key in seen:
            errors.append(f"metrics/{i}: metric {key} appears twice; metric names must be unique "
                          "within a pillar")
        seen.add(key)
    return errors


def _is_num(v: Any, none_ok: bool = True) -> bool:
    if v is None:
        return none_ok
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_ci(ci: Any) -> bool:
    return ci is None or (isinstance(ci, list) and len(ci) == 2
                          and all(_is_num(c, none_ok=False) for c in ci))


def value_problems(value: Any) -> list[str]:
    """What is wrong inside a metric value of a known shape (empty when well formed): lengths
    that differ, entries that are not finite numbers, malformed intervals or rows."""
    shape = value_shape(value)
    out: list[str] = []
    if shape == "scalar":
        if not _is_num(value):
            out.append(f"{value!r} is not a finite number")
    elif shape == "series":
        x, y, ci = value.get("x"), value.get("y"), value.get("ci")
        if not (isinstance(x, list) and isinstance(y, list) and len(x) == len(y)):
            out.append("a series needs lists x and y of the same length")
        elif not all(_is_num(v, none_ok=False) for v in x) or not all(map(_is_num, y)):
            out.append("series x must be finite numbers and y finite numbers or null")
        if ci is not None and not (isinstance(ci, list) and isinstance(y, list)
                                   and len(ci) == len(y) and all(map(_is_ci, ci))):
            out.append("series ci must be one [lo, hi] (or null) per point")
    elif shape == "table":
        rows = value.get("rows")
        if not isinstance(rows, list):
            out.append("table rows must be a list")
        else:
            for j, r in enumerate(rows):
                if not (isinstance(r, dict) and "group" in r and "value" in r
                        and _is_num(r.get("value")) and _is_ci(r.get("ci"))
                        and (r.get("n") is None or (isinstance(r.get("n"), int)
                                                    and not isinstance(r.get("n"), bool)))):
                    out.append(f"table row {j} needs a group, a finite number (or null) as "
                               "value, and optionally ci [lo, hi] and an integer n")
    else:
        rows, cols, vals = value.get("rows"), value.get("cols"), value.get("values")
        if not (isinstance(rows, list) and isinstance(cols, list) and isinstance(vals, list)
                and len(vals) == len(rows)
                and all(isinstance(r, list) and len(r) == len(cols) for r in vals)):
            out.append("a matrix needs one list of len(cols) values per row")
        elif not all(_is_num(v) for r in vals for v in r):
            out.append("matrix values must be finite numbers or null")
    return out


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, turning every failure into a ScorecardError that names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScorecardError(f"no such scorecard file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScorecardError(f"cannot read {path}: {exc}") from None
    def no_constants(name: str) -> Any:
        raise ScorecardError(f"{path} holds the literal {name}, which JSON does not allow; a "
                             "scorecard writes missing or non-finite values as null")

    try:
        return json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise ScorecardError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "a scorecard is the JSON file written by `pytest suites/` or `trustbench run`"
        ) from None


def load(path: str | Path) -> Scorecard:
    """Read and validate a scorecard file.

    Raises
    ------
    ScorecardError
        If the file is missing, not JSON, not a trustbench scorecard, or fails the schema.
    """
    data = read_json(path)
    errors = validation_errors(data)
    if errors:
        shown = "\n  ".join(errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ScorecardError(f"{path} is not a valid trustbench scorecard:\n  {shown}{more}")
    return Scorecard.from_dict(data)
