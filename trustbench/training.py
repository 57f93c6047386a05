"""Deterministic reference training, cached by recipe hash.

Reference models of the closed division are trained by the harness itself: on the CPU, in one
thread, from a fixed seed and a fixed recipe, so that every machine with the same torch version
gets bit-identical weights (the scorecard records their sha256). The trained ``state_dict`` is
cached in the user cache directory (``$TRUSTBENCH_CACHE``, else ``$XDG_CACHE_HOME/trustbench``,
else ``~/.cache/trustbench``) under a hash of the recipe and the torch version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a reference model's weights."""

    task: str
    arch: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    version: int = 1  # bump when the training loop changes

    def key(self) -> str:
        payload = json.dumps({**asdict(self), "torch": torch.__version__.split("+")[0]},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    env = os.environ.get("TRUSTBENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trustbench"


@dataclass
class TrainedModel:
    state_dict: dict[str, torch.Tensor]
    recipe: Recipe
    cached: bool
    train_seconds: float
    path: Path | None


class _Threads:
    """Run a block with a given number of intra-op threads, restoring the old value."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                     *, input_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                     ) -> nn.Module:
    """Plain mini-batch training with cross-entropy; deterministic given the recipe."""
    device = torch.device(recipe.device)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.to(device).train()
    if recipe.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr,
                                                      weight_decay=recipe.weight_decay)
    elif recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9,
                              weight_decay=recipe.weight_decay, nesterov=True)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    steps = recipe.epochs * ((len(x) + recipe.batch_size - 1) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps) \
        if recipe.optimizer == "sgd" else None
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            xb = x[idx].to(device)
            if input_transform is not None:
                xb = input_transform(xb)
            loss = loss_fn(model(xb), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return model.eval()


def train_or_load(recipe: Recipe, build: Callable[[], nn.Module], x: torch.Tensor,
                  y: torch.Tensor, *, input_transform: Callable[[torch.Tensor], torch.Tensor]
                  | None = None, use_cache: bool = True) -> TrainedModel:
    """Return the recipe's weights from the cache, training (and caching) them if needed.

    CPU recipes run with one thread and deterministic algorithms so that the weights are the
    same on every machine with the same torch version.
    """
    path = cache_dir() / f"{recipe.task}-{recipe.key()}.pt"
    if use_cache and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return TrainedModel(state, recipe, True, 0.0, path)
        except Exception:  # a corrupt cache entry is retrained, never trusted
            path.unlink(missing_ok=True)
    torch.manual_seed(recipe.seed)
    model = build()
    start = time.perf_counter()
    det = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if recipe.device == "cpu":
            with _Threads(1):
                train_classifier(model, x, y, recipe, input_transform=input_transform)
        else:
            train_classifier(model, x, y, recipe, input_transform=input_transform)
    finally:
        torch.use_deterministic_algorithms(det)
    seconds = time.perf_counter() - start
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    saved: Path | None = None
    if use_cache:
        saved = _save_atomic(state, path, recipe, seconds)
    return TrainedModel(state, recipe, False, seconds, saved)


def _save_atomic(state: dict[str, Any], path: Path, recipe: Recipe, seconds: float) -> Path | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
        os.close(fd)
        torch.save(state, tmp)
        os.replace(tmp, path)
        meta = {**asdict(recipe), "torch": torch.__version__, "train_seconds": round(seconds, 3)}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return path
    except OSError:
        return None  # an unwritable cache only costs a retrain next time
