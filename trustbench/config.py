"""RunConfig: task, model, dataset, profile, device, seed, gates.

Precedence: command-line options > ``trustbench.toml`` (or ``[tool.trustbench]`` in a
``pyproject.toml``) > defaults. The option specs below serve both the pytest plugin
(``--bench-*`` in one option group) and ``trustbench run``.

Pillar-specific settings live in sub-tables, e.g. ``[tool.trustbench.faults]``, and reach the
pillar through :meth:`RunConfig.pillar_options`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustbench.errors import ConfigError
from trustbench.tasks import DEFAULT_TASKS, SMOKE_TASKS, check_task_name, open_task_name

PROFILES: tuple[str, ...] = ("smoke", "standard", "full")
OUTPUT_KINDS: tuple[str, ...] = ("auto", "logits", "log_probs", "probs")
DEFAULT_SEED = 0

#: Environment that keeps every run offline unless the user set otherwise.
OFFLINE_ENV = {
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def apply_offline_env() -> None:
    """Set the offline variables that the user has not set themselves."""
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)


@dataclass(frozen=True)
class OptionSpec:
    """One ``--bench-*`` option, shared by pytest and the CLI."""

    name: str  # without the --bench- prefix, e.g. "task"
    help: str
    dest: str
    action: str = "store"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    type: Any = None

    @property
    def flag(self) -> str:
        return f"--bench-{self.name}"

    def add_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``parser.addoption`` (pytest) and ``add_argument`` (argparse)."""
        kwargs: dict[str, Any] = {"dest": self.dest, "action": self.action, "help": self.help}
        if self.choices:
            kwargs["choices"] = list(self.choices)
        if self.metavar:
            kwargs["metavar"] = self.metavar
        return kwargs


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("task", "built-in task to run; repeatable (default: mnist5k-cnn and arrests-mlp)",
               "bench_task", action="append", metavar="NAME"),
    OptionSpec("model", "your model as 'pkg.module:factory' (a callable returning an nn.Module); "
               "open division", "bench_model", metavar="MODULE:FACTORY"),
    OptionSpec("weights", "state_dict (.pt, loaded with weights_only=True) or TorchScript file "
               "for --bench-model", "bench_weights", metavar="FILE"),
    OptionSpec("dataset", "dataset for --bench-model: a built-in name (digits, mnist5k, arrests, "
               "cifar10), hf:NAME[:SPLIT], or a local parquet/CSV file or ImageFolder directory",
               "bench_dataset", metavar="DATASET"),
    OptionSpec("label-column", "label column of a tabular or Hugging Face dataset",
               "bench_label_column", metavar="COLUMN"),
    OptionSpec("sensitive", "sensitive attribute columns, comma separated (fairness pillar)",
               "bench_sensitive", metavar="COL[,COL]"),
    OptionSpec("normalize", "per-channel normalisation your model was trained with, "
               "e.g. 0.1307/0.3081 or 0.49,0.48,0.45/0.25,0.24,0.26", "bench_normalize",
               metavar="MEAN[,..]/STD[,..]"),
    OptionSpec("output", "what your model returns (default: auto-detect)", "bench_output",
               choices=OUTPUT_KINDS),
    OptionSpec("profile", "budget profile: smoke (CI, ~15 s on 2 idle cores), standard "
               "(default), full "
               "(publication)", "bench_profile", choices=PROFILES),
    OptionSpec("device", "cpu, cuda, cuda:N or auto (default: auto)", "bench_device",
               metavar="DEVICE"),
    OptionSpec("seed", "seed of every random choice in the run (default 0)", "bench_seed",
               metavar="INT"),
    OptionSpec("out", "results root for scorecards (default: results/)", "bench_out",
               metavar="DIR"),
    OptionSpec("gate", "pass/fail gate, e.g. 'utility.accuracy>=0.9'; repeatable", "bench_gate",
               action="append", metavar="EXPR"),
    OptionSpec("config", "configuration file (default: ./trustbench.toml, else "
               "[tool.trustbench] of ./pyproject.toml)", "bench_config", metavar="FILE"),
)

_DEVICE_RE = re.compile(r"^(cpu|auto|cuda|cuda:\d+|mps)$")


@dataclass
class RunConfig:
    """Everything that defines a run. Built by :func:`build_config`."""

    tasks: list[str] = field(default_factory=list)
    model: str | None = None
    weights: str | None = None
    dataset: str | None = None
    label_column: str | None = None
    sensitive: list[str] = field(default_factory=list)
    normalize: dict[str, list[float]] | None = None
    output: str = "auto"
    profile: str = "standard"
    device_name: str = "auto"
    seed: int = DEFAULT_SEED
    out: str = "results"
    gates: list[str] = field(default_factory=list)
    pillars: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_file: str | None = None

    @property
    def division(self) -> str:
        return "open" if self.model else "closed"

    @property
    def device(self) -> Any:
        """The resolved ``torch.device`` (imports torch)."""
        return resolve_device(self.device_name)

    def pillar_options(self, pillar: str) -> dict[str, Any]:
        """User settings for one pillar from ``[tool.trustbench.<pillar>]``."""
        return dict(self.pillars.get(pillar, {}))

    def task_ids(self) -> list[str]:
        """Names of the tasks this run scores (one scorecard each)."""
        if self.model:
            return [open_task_name(self.model, self.dataset)]
        if self.tasks:
            return list(self.tasks)
        return list(SMOKE_TASKS if self.profile == "smoke" else DEFAULT_TASKS)


def resolve_device(name: str) -> Any:
    """Turn ``cpu|cuda|cuda:N|auto`` into a ``torch.device``; clear error without a GPU."""
    import torch

    if not _DEVICE_RE.match(name or ""):
        raise ConfigError(
            f"unknown device {name!r}: accepted are cpu, cuda, cuda:N (N = GPU index) and auto "
            "(cuda if a GPU is visible, else cpu)"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--bench-device {name} was asked for, but torch sees no CUDA GPU "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}). "
                "Use --bench-device cpu or auto, or install a CUDA build of torch that matches "
                "the driver."
            )
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(
                f"--bench-device {name}: only {torch.cuda.device_count()} GPU(s) are visible "
                f"(indices 0..{torch.cuda.device_count() - 1})"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--bench-device mps was asked for, but MPS is not available here")
    return torch.device(name)


def parse_normalize(text: str) -> dict[str, list[float]]:
    """``"0.1307/0.3081"`` or ``"0.5,0.5,0.5/0.25,0.25,0.25"`` -> {"mean": [...], "std": [...]}."""
    try:
        mean_s, std_s = text.split("/")
        mean = [float(v) for v in mean_s.split(",")]
        std = [float(v) for v in std_s.split(",")]
    except ValueError:
        raise ConfigError(
            f"--bench-normalize {text!r} is not MEAN[,..]/STD[,..]: give one mean and one std per "
            "input channel, e.g. 0.1307/0.3081 (MNIST) or 0.4914,0.4822,0.4465/0.2470,0.2435,0.2616"
        ) from None
    if len(mean) != len(std):
        raise ConfigError(
            f"--bench-normalize {text!r}: {len(mean)} means but {len(std)} stds; give one of each "
            "per channel"
        )
    if any(s <= 0 for s in std):
        raise ConfigError(f"--bench-normalize {text!r}: every std must be > 0")
    return {"mean": mean, "std": std}


def find_config_file(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """Find ``trustbench.toml`` or a pyproject with ``[tool.trustbench]`` in ``start``."""
    cand = start / "trustbench.toml"
    if cand.is_file():
        return cand, _read_toml(cand)
    pyproject = start / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject).get("tool", {}).get("trustbench")
        if isinstance(data, dict):
            return pyproject, data
    return None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from None
    if path.name != "pyproject.toml" and isinstance(data.get("tool"), dict) and \
            "trustbench" in data["tool"]:  # trustbench.toml or a --bench-config file
        data = data["tool"]["trustbench"]
    return data


_FILE_KEYS = {
    "task": "tasks", "tasks": "tasks", "model": "model", "weights": "weights",
    "dataset": "dataset", "label_column": "label_column", "sensitive": "sensitive",
    "normalize": "normalize", "output": "output", "profile": "profile", "device": "device_name",
    "seed": "seed", "out": "out", "gate": "gates", "gates": "gates",
}


def build_config(options: dict[str, Any], rootdir: str | Path = ".") -> RunConfig:
    """Merge ``--bench-*`` option values (keys = OptionSpec.dest) with the file and defaults.

    Raises
    ------
    ConfigError
        For any value that is not accepted, naming what is.
    """
    root = Path(rootdir)
    explicit = options.get("bench_config")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--bench-config {explicit}: no such file")
        file_path: Path | None = path
        file_cfg = _read_toml(path)
        if path.name == "pyproject.toml":
            file_cfg = file_cfg.get("tool", {}).get("trustbench", {})
    else:
        file_path, file_cfg = find_config_file(root)

    cfg = RunConfig(config_file=str(file_path) if file_path else None)
    from trustbench.registry import pillar_names as declared_pillars

    pillar_names = set(declared_pillars())
    for key, value in file_cfg.items():
        if isinstance(value, dict) and key in pillar_names:
            cfg.pillars[key] = value
            continue
        attr = _FILE_KEYS.get(key)
        if attr is None:
            from trustbench.registry import pillar_load_errors

            accepted = ", ".join(sorted(set(_FILE_KEYS) | pillar_names))
            broken = pillar_load_errors()
            raise ConfigError(
                f"unknown key {key!r} in {file_path}: accepted keys are {accepted} "
                "(pillar settings go in sub-tables named after the declared pillars: [faults] "
                "in trustbench.toml, [tool.trustbench.faults] in pyproject.toml)"
                + (f". Pillar packages that failed to load: {'; '.join(broken)}"
                   if broken else "")
            )
        _set(cfg, attr, value, source=str(file_path))

    for spec in OPTION_SPECS:
        value = options.get(spec.dest)
        if value is None or spec.name == "config":
            continue
        attr = {"task": "tasks", "gate": "gates", "device": "device_name",
                "label-column": "label_column"}.get(spec.name, spec.name)
        _set(cfg, attr, value, source=spec.flag)

    _validate(cfg)
    return cfg


def _set(cfg: RunConfig, attr: str, value: Any, *, source: str) -> None:
    if attr in ("tasks", "gates"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {attr} must be a string or a list of strings")
        items: list[str] = []
        for v in value:
            items.extend(p.strip() for p in str(v).split(",") if p.strip()) if attr == "tasks" \
                else items.append(str(v))
        setattr(cfg, attr, items)
    elif attr == "sensitive":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        cfg.sensitive = [str(v) for v in value]
    elif attr == "normalize":
        if not isinstance(value, str):
            value = "/".join(",".join(map(str, value[k])) for k in ("mean", "std"))
        cfg.normalize = parse_normalize(value)
    elif attr == "seed":
        try:
            cfg.seed = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: seed must be an integer, got {value!r}") from None
    else:
        setattr(cfg, attr, str(value))


def _validate(cfg: RunConfig) -> None:
    if cfg.profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {cfg.profile!r}: accepted are smoke (CI, about 15 s on 2 cores), "
            "standard (the default, minutes on a laptop CPU) and full (publication; a GPU)"
        )
    if cfg.output not in OUTPUT_KINDS:
        raise ConfigError(
            f"unknown model output kind {cfg.output!r}: accepted are {', '.join(OUTPUT_KINDS)}"
        )
    if not _DEVICE_RE.match(cfg.device_name):
        resolve_device(cfg.device_name)  # raises with the accepted values
    if cfg.model and cfg.tasks:
        raise ConfigError(
            "--bench-task and --bench-model exclude each other: --bench-task runs a built-in "
            "(closed-division) task, --bench-model with --bench-dataset runs your own model "
            "(open division)"
        )
    if cfg.model and not cfg.dataset:
        raise ConfigError(
            "--bench-model needs --bench-dataset: a built-in dataset name (digits, mnist5k, "
            "arrests, cifar10), hf:NAME[:SPLIT], or a local parquet/CSV file or ImageFolder "
            "directory"
        )
    if (cfg.weights or cfg.dataset) and not cfg.model:
        raise ConfigError(
            "--bench-weights and --bench-dataset go with --bench-model pkg.module:factory; "
            "built-in tasks (--bench-task) bring their own weights and data"
        )
    if not cfg.model:
        for name in cfg.tasks:
            check_task_name(name)
    from trustbench.gates import parse_gate

    for g in cfg.gates:
        parse_gate(g)
