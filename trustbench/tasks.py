"""A Task = model + data + metadata, and the registry of built-in tasks (embedded default first).

Every pillar receives a :class:`Task`. Its ``model`` takes inputs in the task's *input space*
(images in [0, 1]; tabular rows as standardised features) and returns **logits**: the user's
normalisation is wrapped in front of the model and its output (log-probabilities or
probabilities) is turned into logits behind it, so attacks, losses and calibration need not care.

Built-in (closed-division) tasks are trained by the harness itself, on the CPU, deterministically,
and cached by recipe hash (see :mod:`trustbench.training`). They are defined in
:mod:`trustbench.builtin_tasks`, which is found like a plugin, through the entry-point group
``trustbench.tasks`` (so a package can add closed-division tasks of its own); this module never
imports it, nor the configuration.

A task carries no pillar's settings: each pillar derives its per-task defaults from the task
(e.g. the robustness pillar's perturbation budgets,
:func:`trustbench.attacks.profiles.task_eps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustbench import registry
from trustbench.errors import ConfigError

if TYPE_CHECKING:  # keep `import trustbench` light
    import pandas as pd
    import torch


@dataclass
class Task:
    """Model, data and metadata that every pillar works on.

    Attributes
    ----------
    name
        Task name (``mnist5k-cnn``, ..., or ``open:<model>@<dataset>``).
    model
        ``nn.Module`` in eval mode on ``device``; input space in, logits out.
    raw_model
        The unwrapped architecture (no normalisation / output adapter), same parameters.
    x_train, y_train, x_test, y_test
        CPU tensors: float32 inputs in input space, int64 labels in ``[0, num_classes)``.
        ``x_train`` may be empty for open-division tasks without training data.
    num_classes, class_names
        Output width and readable class names.
    modality
        ``"image"`` or ``"tabular"``.
    input_shape
        Shape of one sample, e.g. ``(1, 28, 28)`` or ``(12,)``.
    input_range
        ``(0.0, 1.0)`` for images; ``None`` where inputs are unbounded (standardised tabular).
    normalization
        ``{"mean": [...], "std": [...]}`` wrapped inside ``model``, or None.
    output_kind
        What the raw model returns: ``logits``, ``log_probs`` or ``probs``.
    sensitive_train, sensitive_test
        DataFrames of sensitive attributes aligned with the rows of x_train / x_test, or None.
    feature_names
        Column names of tabular inputs, or None.
    device
        The run's ``torch.device``.
    division
        ``closed`` (built-in recipe) or ``open``.
    meta
        The scorecard's ``task`` section: name, model {name, source, parameters, sha256},
        dataset {name, source, split, n, sha256}.
    """

    name: str
    model: Any
    raw_model: Any
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: list[str]
    modality: str
    input_shape: tuple[int, ...]
    input_range: tuple[float, float] | None
    device: Any
    division: str = "closed"
    normalization: dict[str, list[float]] | None = None
    output_kind: str = "logits"
    sensitive_train: pd.DataFrame | None = None
    sensitive_test: pd.DataFrame | None = None
    feature_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Logits of ``x`` (any device), computed in batches on the task's device, no grad.

        Returns a tensor on the task's device.
        """
        import torch

        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                outs.append(self.model(x[i : i + batch_size].to(self.device, non_blocking=True)))
        if not outs:
            return torch.empty(0, self.num_classes, device=self.device)
        return torch.cat(outs)

    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Top-1 class indices of ``x`` on the task's device."""
        return self.logits(x, batch_size).argmax(dim=1)


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: name, what it is, and a builder ``(config) -> Task``.

    ``config`` is the run's :class:`trustbench.config.RunConfig`."""

    name: str
    description: str
    builder: Callable[[Any], Task]
    needs_download: bool = False


BUILTIN_TASKS: dict[str, TaskSpec] = {}
#: The task set of ``pytest suites/`` with no --bench-task.
DEFAULT_TASKS: tuple[str, ...] = ("mnist5k-cnn", "arrests-mlp")
#: The task set of ``--bench-profile smoke``: the same modalities, a smaller image task.
SMOKE_TASKS: tuple[str, ...] = ("digits-cnn", "arrests-mlp")


def open_task_name(model: str, dataset: str | None) -> str:
    """The task name of an open-division run: ``open-<factory>-<dataset>``."""
    mod = model.split(":")[-1] or model
    ds = Path(dataset).name if dataset else "none"
    if dataset and dataset.startswith("hf:"):
        ds = dataset[3:].replace("/", "-")
    return f"open-{mod}-{ds}".replace(":", "-")


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a closed-division task (called by the module that defines it, on import)."""
    if spec.name in BUILTIN_TASKS:
        raise ConfigError(f"task {spec.name!r} is already defined")
    BUILTIN_TASKS[spec.name] = spec
    return spec


def task_names() -> list[str]:
    _ensure_builtins()
    return list(BUILTIN_TASKS)


def check_task_name(name: str) -> None:
    """Raise a ConfigError listing the built-in tasks if ``name`` is not one of them."""
    _ensure_builtins()
    if name not in BUILTIN_TASKS:
        listing = "; ".join(f"{s.name} ({s.description})" for s in BUILTIN_TASKS.values())
        raise ConfigError(
            f"unknown task {name!r}. Built-in tasks: {listing}. For your own model use "
            "--bench-model pkg.module:factory [--bench-weights FILE] --bench-dataset DATASET "
            "(open division)."
        )


def build_task(name: str, config: Any) -> Task:
    """Build the built-in task ``name`` (training and caching its reference model if needed)."""
    check_task_name(name)
    return BUILTIN_TASKS[name].builder(config)


def _ensure_builtins() -> None:
    # the modules named in the entry-point group trustbench.tasks register their tasks on import
    registry.discover("task")
