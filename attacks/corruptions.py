"""Common corruptions on image tensors (Hendrycks & Dietterich, ICLR 2019), severities 1-5.

Paper: "Benchmarking Neural Network Robustness to Common Corruptions and Perturbations",
https://arxiv.org/abs/1903.12261. Severity constants are the paper's CIFAR-10-C ones (the
tasks' images are small). Everything runs on batched tensors ``(N, C, H, W)`` in ``[0, 1]`` on
their device (JPEG goes through torchvision's encoder on the CPU), with a seeded generator.

Registered under the kind ``corruption``: gaussian_noise, shot_noise, impulse_noise,
gaussian_blur, defocus_blur (a disk kernel smoothed by a small Gaussian, as in the paper),
contrast, brightness (``V + c`` in HSV, computed in closed form on RGB), jpeg, pixelate.

Metrics: mean corruption accuracy over corruptions and severities, and the relative
corruption error ``mean_c,s (E_c,s - E_clean)``. Hendrycks & Dietterich normalise errors by
AlexNet's; no such baseline exists for these tasks, so trustbench reports the unnormalised gap
(0 = corruptions cost nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from trustbench.errors import ConfigError, DataError
from trustbench.registry import Plugin

if TYPE_CHECKING:
    from trustbench.stats import Estimate

__all__ = ["Corruption", "CorruptionEvaluation", "evaluate_corruptions"]

SEVERITIES = (1, 2, 3, 4, 5)


class Corruption(Plugin, kind="corruption"):
    """A natural corruption: ``corruption(x, severity, generator) -> x'`` in ``[0, 1]``.

    Subclasses set ``name`` and ``levels`` (one constant per severity 1-5) and implement
    :meth:`apply`.
    """

    abstract = True
    levels: ClassVar[tuple[object, ...]] = ()

    def __call__(
        self, x: torch.Tensor, severity: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Corrupt a batch ``x`` (N, C, H, W) in [0, 1] at ``severity`` (1-5)."""
        if isinstance(severity, bool) or not isinstance(severity, int) or (
                severity not in SEVERITIES):
            raise ConfigError(f"corruption severity must be an integer 1-5, got {severity!r}")
        if x.dim() != 4 or not x.is_floating_point():
            raise DataError(
                f"corruption {self.name!r} needs float images (N, C, H, W), got "
                f"{x.dtype} {tuple(x.shape)}"
            )
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(0)
        out = self.apply(x, self.levels[severity - 1], generator)
        return out.clamp(0.0, 1.0).to(x.dtype)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        """Corrupt ``x`` with the severity constant ``c``."""
        raise NotImplementedError


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = kernel.to(x)[None, None].expand(c, 1, *kernel.shape)
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    mode = "reflect" if ph < x.shape[2] and pw < x.shape[3] else "replicate"
    xp = F.pad(x, (pw, pw, ph, ph), mode=mode)
    return F.conv2d(xp, k, groups=c)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


class GaussianNoise(Corruption):
    """Additive Gaussian noise, standard deviation 0.04-0.10."""

    name = "gaussian_noise"
    levels = (0.04, 0.06, 0.08, 0.09, 0.10)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + float(c) * noise  # type: ignore[arg-type]


class ShotNoise(Corruption):
    """Poisson (photon) noise: ``Poisson(x * c) / c`` with c = 500 ... 50."""

    name = "shot_noise"
    levels = (500, 250, 100, 75, 50)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        lam = float(c)  # type: ignore[arg-type]
        return torch.poisson(x.clamp_min(0) * lam, generator=generator) / lam


class ImpulseNoise(Corruption):
    """Salt-and-pepper noise replacing a fraction 0.01-0.07 of the values."""

    name = "impulse_noise"
    levels = (0.01, 0.02, 0.03, 0.05, 0.07)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(x.shape, generator=generator, device=x.device)
        amount = float(c)  # type: ignore[arg-type]
        out = torch.where(u < amount / 2, torch.zeros_like(x), x)
        return torch.where((u >= amount / 2) & (u < amount), torch.ones_like(x), out)


class GaussianBlur(Corruption):
    """Gaussian blur, sigma 0.4-1.0 pixels."""

    name = "gaussian_blur"
    levels = (0.4, 0.6, 0.7, 0.8, 1.0)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        return _depthwise(x, _gaussian_kernel(float(c)))  # type: ignore[arg-type]


class DefocusBlur(Corruption):
    """Defocus-like blur: a disk of radius r, smoothed by a Gaussian (alias blur)."""

    name = "defocus_blur"
    levels = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        radius, alias = cast(tuple[float, float], c)
        r = max(1, math.ceil(radius))
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).double()
        disk = disk / disk.sum()
        g = _gaussian_kernel(alias).double()
        kernel = F.conv2d(F.pad(disk[None, None], [g.shape[0] // 2] * 4), g[None, None])[0, 0]
        return _depthwise(x, (kernel / kernel.sum()).float())


class Contrast(Corruption):
    """Contrast reduction towards each image's mean, factor 0.75-0.15."""

    name = "contrast"
    levels = (0.75, 0.5, 0.4, 0.3, 0.15)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * float(c) + m  # type: ignore[arg-type]


class Brightness(Corruption):
    """Brightness: ``V + c`` in HSV space (c = 0.05-0.3), hue and saturation kept."""

    name = "brightness"
    levels = (0.05, 0.1, 0.15, 0.2, 0.3)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        # RGB = V * f(H, S): raising V to V' scales every channel by V'/V (black becomes grey V')
        v = x.amax(dim=1, keepdim=True)
        v_new = (v + float(c)).clamp(max=1.0)  # type: ignore[arg-type]
        scale = torch.where(v > 0, v_new / v.clamp_min(1e-12), torch.zeros_like(v))
        return torch.where(v > 0, x * scale, v_new.expand_as(x))


class JPEG(Corruption):
    """JPEG compression at quality 80-40 (torchvision's libjpeg encoder, on the CPU)."""

    name = "jpeg"
    levels = (80, 65, 58, 50, 40)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        import warnings

        if x.shape[1] not in (1, 3):
            raise DataError(f"jpeg needs 1 or 3 channels, got {x.shape[1]}")
        u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its image codecs in favour of torchcodec; they still
            # work and are the fastest batched JPEG round trip available here
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg, encode_jpeg

            enc = encode_jpeg(list(u8), quality=int(c))  # type: ignore[call-overload]
            dec = decode_jpeg(enc)
        out = torch.stack([d[: x.shape[1]] for d in dec]).to(x.device)
        return out.to(x.dtype) / 255.0


class Pixelate(Corruption):
    """Pixelation: downsample by factor 0.95-0.65 (box filter), upsample with nearest."""

    name = "pixelate"
    levels = (0.95, 0.9, 0.85, 0.75, 0.65)

    def apply(self, x: torch.Tensor, c: object, generator: torch.Generator) -> torch.Tensor:
        h, w = x.shape[2:]
        f = float(c)  # type: ignore[arg-type]
        small = F.interpolate(x, size=(max(1, int(h * f)), max(1, int(w * f))), mode="area")
        return F.interpolate(small, size=(h, w), mode="nearest")


@dataclass
class CorruptionEvaluation:
    """Accuracy under each corruption and severity, on the same ``n`` samples.

    Attributes
    ----------
    names, severities
        Rows and columns of ``correct``.
    correct
        ``correct[i][j]``: samples classified correctly under corruption i at severity j.
    clean_correct, n
        Clean correct count and sample count.
    sample_correct, sample_clean
        Per sample: in how many of the corruption x severity cells it was classified correctly,
        and whether it was without corruption (the units the intervals resample).
    """

    names: list[str]
    severities: list[int]
    correct: list[list[int]]
    clean_correct: int
    n: int
    seconds: float = 0.0
    sample_correct: torch.Tensor | None = None
    sample_clean: torch.Tensor | None = None

    @property
    def clean_accuracy(self) -> float:
        """Accuracy without corruption."""
        return self.clean_correct / self.n

    def accuracy(self) -> list[list[float]]:
        """The matrix of accuracies (corruption x severity)."""
        return [[k / self.n for k in row] for row in self.correct]

    @property
    def mean_corruption_accuracy(self) -> float:
        """Mean accuracy over all corruptions and severities."""
        vals = [v for row in self.accuracy() for v in row]
        return sum(vals) / len(vals)

    @property
    def relative_corruption_error(self) -> float:
        """Mean over corruptions and severities of (corrupted error - clean error)."""
        return self.clean_accuracy - self.mean_corruption_accuracy

    def estimates(self, confidence: float = 0.95, seed: int = 0) -> dict[str, Estimate]:
        """``mean_corruption_accuracy`` and ``relative_corruption_error`` with their
        percentile-bootstrap intervals over the samples (n = the images).

        The sample is the unit: all cells of one image are resampled together, because the
        same image under different corruptions is not an independent trial (pooling the cells
        as independent trials would give a too narrow interval).
        """
        from trustbench.stats import Estimate, bootstrap_mean_interval

        if self.sample_correct is None or self.sample_clean is None:
            raise DataError("this evaluation kept no per-sample results; re-run "
                            "evaluate_corruptions to get intervals.")
        cells = len(self.names) * len(self.severities)
        acc = self.sample_correct.double().numpy() / cells
        rel = self.sample_clean.double().numpy() - acc
        method = "percentile bootstrap over the images (all cells of an image together)"
        return {name: Estimate(getattr(self, name),
                               bootstrap_mean_interval(v, confidence=confidence, seed=seed),
                               len(v), method, confidence)
                for name, v in (("mean_corruption_accuracy", acc),
                                ("relative_corruption_error", rel))}


def _check_corruption_inputs(x: torch.Tensor, y: torch.Tensor, severities: tuple[int, ...],
                             batch_size: int) -> None:
    if not severities or any(isinstance(s, bool) or s not in SEVERITIES for s in severities):
        raise ConfigError(f"severities must be a non-empty selection of the integers 1-5, got "
                          f"{severities!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point() or not len(x):
        raise DataError(f"common corruptions need a non-empty batch of float images (N, C, H, "
                        f"W), got {getattr(x, 'dtype', type(x))} "
                        f"{tuple(getattr(x, 'shape', ()))}")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.dtype.is_floating_point:
        raise DataError(f"labels must be one integer class per image, shape ({len(x)},); got "
                        f"{getattr(y, 'dtype', type(y))} {tuple(getattr(y, 'shape', ()))}")
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= -1e-6 and hi <= 1 + 1e-6):
        raise DataError(f"common corruptions act on images in [0, 1]; these span "
                        f"[{lo:.3g}, {hi:.3g}]. Put any normalisation inside the model.")


def evaluate_corruptions(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    names: list[str] | None = None,
    severities: tuple[int, ...] = SEVERITIES,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> CorruptionEvaluation:
    """Accuracy of ``model`` on ``(x, y)`` under each registered corruption and severity."""
    import time

    from trustbench import registry
    from trustbench.attacks.model_views import frozen_eval, seeded_generator

    t0 = time.perf_counter()
    all_c = registry.all_plugins("corruption")
    names = list(all_c) if names is None else list(names)
    corrs = [registry.get("corruption", nm)() for nm in names]
    _check_corruption_inputs(x, y, severities, batch_size)
    device, gen = seeded_generator(model, x, device, seed)
    correct = [[0] * len(severities) for _ in names]
    clean = 0
    sample_correct, sample_clean = [], []
    # eval mode; every submodule's own mode is restored afterwards
    with frozen_eval(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            yb = y[i : i + batch_size].to(device)
            ok_clean = model(xb).argmax(1) == yb
            clean += int(ok_clean.sum())
            ok_cells = torch.zeros(len(xb), dtype=torch.int64, device=device)
            for a, corr in enumerate(corrs):
                for b, s in enumerate(severities):
                    xc = corr(xb, s, gen)
                    ok = model(xc).argmax(1) == yb
                    correct[a][b] += int(ok.sum())
                    ok_cells += ok
            sample_correct.append(ok_cells.cpu())
            sample_clean.append(ok_clean.cpu())
    return CorruptionEvaluation(
        names=names,
        severities=list(severities),
        correct=correct,
        clean_correct=clean,
        n=len(x),
        seconds=time.perf_counter() - t0,
        sample_correct=torch.cat(sample_correct) if sample_correct else torch.zeros(0),
        sample_clean=torch.cat(sample_clean) if sample_clean else torch.zeros(0, dtype=torch.bool),
    )
