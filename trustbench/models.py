"""Built-in architectures, user models ("pkg.module:factory" + weights file), the wrapper that
puts normalisation in front of a model and turns its output into logits, and weight hashes.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trustbench.errors import ModelError

# --------------------------------------------------------------------------- architectures


class DigitsCNN(nn.Module):
    """Tiny CNN for scikit-learn's 8x8 digits (1x8x8 inputs in [0, 1])."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(nn.Module):
    """LeNet-style CNN for 1x28x28 MNIST (most parameters in the first fully connected layer)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class TabularMLP(nn.Module):
    """Two-hidden-layer MLP for standardised tabular features."""

    def __init__(self, in_features: int, num_classes: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """torchvision resnet18 adapted to 32x32 inputs (3x3 stem, no max-pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


# --------------------------------------------------------------------------- wrapper


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (image) or per feature (tabular)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: list[float], std: list[float], channel_dim_shape: int) -> None:
        super().__init__()
        shape = [1, len(mean)] + [1] * channel_dim_shape
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TaskModel(nn.Module):
    """Input space in, logits out: [normalisation] -> model -> [output -> logits].

    ``log_probs`` are already valid logits (softmax(log p) = p); ``probs`` become
    ``log(p)`` (clamped away from 0 so gradients stay finite).
    """

    def __init__(self, model: nn.Module, *, normalize: nn.Module | None = None,
                 output_kind: str = "logits") -> None:
        super().__init__()
        if output_kind not in ("logits", "log_probs", "probs"):
            raise ModelError(f"unknown output kind {output_kind!r}")
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.net = model
        self.output_kind = output_kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.normalize(x))
        if self.output_kind == "probs":
            out = torch.log(out.clamp_min(1e-12))
        return out


def detect_output_kind(outputs: torch.Tensor) -> str:
    """Guess what a model returns from a batch of its outputs.

    Rows of exp(output) that sum to 1 are log-probabilities; non-negative rows that sum to 1 are
    probabilities; anything else is logits.
    """
    out = outputs.detach().double()
    if out.ndim != 2 or out.shape[1] < 2:
        return "logits"
    ones = torch.ones(out.shape[0], dtype=out.dtype, device=out.device)
    if (out <= 1e-6).all() and torch.allclose(out.exp().sum(1), ones, atol=1e-4):
        return "log_probs"
    if (out >= 0).all() and torch.allclose(out.sum(1), ones, atol=1e-4):
        return "probs"
    return "logits"


# --------------------------------------------------------------------------- user models


def load_factory(spec: str) -> nn.Module:
    """Import ``pkg.module:factory`` and call it; the result must be an ``nn.Module``.

    The current directory is put on ``sys.path`` (like ``python -m``), so a student's
    ``mynet.py`` next to where they run is found.
    """
    if ":" not in spec:
        raise ModelError(
            f"--bench-model {spec!r} is not MODULE:FACTORY; write e.g. mypkg.net:build, where "
            "build() returns a torch.nn.Module"
        )
    mod_name, _, attr = spec.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:
        raise ModelError(
            f"--bench-model {spec}: cannot import module {mod_name!r} ({type(exc).__name__}: "
            f"{exc}). The module must be importable from the current directory or the installed "
            "packages."
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:20]
            raise ModelError(
                f"--bench-model {spec}: module {mod_name!r} has no attribute {attr!r}; "
                f"it defines {', '.join(public) or 'nothing public'}"
            )
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        model = obj
    elif callable(obj):
        try:
            model = obj()
        except Exception as exc:
            raise ModelError(
                f"--bench-model {spec}: calling {attr}() raised {type(exc).__name__}: {exc}. "
                "The factory must build the model without arguments."
            ) from None
    else:
        raise ModelError(f"--bench-model {spec}: {attr!r} is neither callable nor an nn.Module")
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"--bench-model {spec}: {attr}() returned {type(model).__name__}, not a "
            "torch.nn.Module"
        )
    return model


def load_weights(model: nn.Module | None, path: str | Path) -> nn.Module:
    """Load a state_dict (``weights_only=True``) into ``model``, or a TorchScript file.

    Raises
    ------
    ModelError
        Missing or corrupt file, a pickle that ``weights_only`` refuses, or keys/shapes that do
        not fit the architecture (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--bench-weights {path}: no such file")
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        # A zip archive: torch.save format or TorchScript. TorchScript archives hold constants.pkl.
        import zipfile

        try:
            names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
        except zipfile.BadZipFile:
            names = []
        if any(n.endswith("constants.pkl") for n in names):
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # jit deprecation notice
                    return torch.jit.load(io.BytesIO(raw), map_location="cpu")
            except Exception as exc:
                raise ModelError(f"--bench-weights {path}: TorchScript file does not load: "
                                 f"{exc}") from None
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise ModelError(
                f"--bench-weights {path}: torch.load(weights_only=True) refuses this file "
                f"({text}). It pickles Python objects, which can run arbitrary code. Save a plain "
                "state_dict instead: torch.save(model.state_dict(), 'weights.pt'), or a "
                "TorchScript file: torch.jit.script(model).save('model.pt')."
            ) from None
        raise ModelError(
            f"--bench-weights {path}: not a readable torch file ({text}). Accepted are a "
            "state_dict saved with torch.save(model.state_dict(), ...) and TorchScript files."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # common checkpoint layout
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(
            f"--bench-weights {path}: expected a state_dict (a dict of tensors), found "
            f"{type(state).__name__}"
        )
    if model is None:
        raise ModelError(f"--bench-weights {path} is a state_dict: it needs --bench-model too")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_few(unexpected)}")
        if wrong:
            parts.append("shape mismatches: " + _few(
                [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong]))
        raise ModelError(
            f"--bench-weights {path} does not fit the model's architecture ("
            + "; ".join(parts) + "). Were the weights saved from another model?"
        )
    model.load_state_dict(state)
    return model


def _few(items: list[str], k: int = 6) -> str:
    return ", ".join(items[:k]) + (f" and {len(items) - k} more" if len(items) > k else "")


# --------------------------------------------------------------------------- hashes


def state_sha256(model: nn.Module) -> str:
    """sha256 over the parameters and buffers (names, dtypes, shapes and bytes), device-free."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def tensor_sha256(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers as stored (dtype-aware)."""
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values()))
