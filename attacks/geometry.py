"""The geometry of perturbations: per-sample Lp norms and the projection onto an eps ball
(then the input range), shared by every attack and by the guarantees of the base class."""

from __future__ import annotations

import math

import torch

__all__ = ["lp_norms", "per_sample", "project"]


def lp_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample L-inf or L2 norm of ``delta`` (first dimension is the batch)."""
    flat = delta.reshape(delta.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    return flat.norm(p=2, dim=1)


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(N,)`` per-sample values reshaped to broadcast against ``like`` (``(N, ...)``)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def project(
    x_adv: torch.Tensor,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    input_range: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then clip.

    Clipping after the L2 projection cannot leave the ball: ``x`` is inside the box, so clipping
    only shrinks each coordinate of the perturbation.
    """
    delta = x_adv - x
    if norm == "linf":
        if isinstance(eps, torch.Tensor):
            e = per_sample(eps, x)
            delta = torch.maximum(torch.minimum(delta, e), -e)
        elif math.isfinite(eps):
            delta = delta.clamp(-eps, eps)
    else:
        if isinstance(eps, torch.Tensor) or math.isfinite(eps):
            n = lp_norms(delta, "l2")
            e = eps if isinstance(eps, torch.Tensor) else torch.full_like(n, eps)
            factor = torch.where(n > e, e / n.clamp_min(1e-12), torch.ones_like(n))
            delta = delta * per_sample(factor, x)
    out = x + delta
    if input_range is not None:
        out = out.clamp(input_range[0], input_range[1])
    return out
