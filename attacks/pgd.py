"""Projected gradient descent, L-inf and L2, with random start, restarts and early stop.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
https://arxiv.org/abs/1706.06083.

Two execution paths compute the same attack:

- eager (any device): per-sample early stop *compacts* the batch, so samples already
  misclassified cost nothing in later steps;
- CUDA graph (CUDA only, default there): the ``steps`` steps (forward, input gradient,
  projection and "first misclassified iterate" bookkeeping) are captured once per (model,
  batch shape) with the parameters frozen and replayed once per restart, which removes the
  CPU's kernel-launch overhead that bounds eager PyTorch at small batch sizes. Samples already
  misclassified keep their first misclassifying iterate (a mask, not compaction: graph shapes
  are static).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustbench.attacks.base import AttackContext, AttackParams, EvasionAttack, project
from trustbench.attacks.fgsm import gradient_step
from trustbench.attacks.profiles import SuitePlan

__all__ = ["PGD", "PGDParams", "random_start"]

log = logging.getLogger(__name__)


@dataclass
class PGDParams(AttackParams):
    """PGD parameters.

    Attributes
    ----------
    steps
        Gradient steps per restart.
    step_size
        Step length in input units; None -> ``2.5 * eps / steps`` (Madry et al.; 2/255 for
        eps 8/255 and 10 steps).
    random_start
        Start from a uniform random point of the ball (False: start at x).
    restarts
        Independent runs; later restarts attack only samples not yet misclassified.
    early_stop
        Keep each sample's first misclassifying iterate and stop spending passes on it.
    cuda_graph
        Use the CUDA-graph path on CUDA devices.
    """

    steps: int = 10
    step_size: float | None = None
    random_start: bool = True
    restarts: int = 1
    early_stop: bool = True
    cuda_graph: bool = True


def random_start(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator
) -> torch.Tensor:
    """A point drawn uniformly from the ``norm`` ball of radius ``eps`` around each sample."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + (2 * u - 1) * eps
    d = x[0].numel()
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    g = g / g.reshape(len(x), -1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (x.dim() - 1))
    r = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return x + g * (eps * r).reshape(-1, *[1] * (x.dim() - 1))


class _StepGraph:
    """All ``steps`` PGD steps captured in one CUDA graph, per (model, shape, eps, step, norm,
    range, steps): one launch per restart instead of hundreds of kernel launches per step."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        alpha: float,
        norm: str,
        input_range: tuple[float, float] | None,
        steps: int,
    ) -> None:
        self.model = model  # a strong reference: the key's id() cannot be reused meanwhile
        self.x = x.clone()
        self.y = y.clone()
        self.x_adv = x.clone()
        self.best = x.clone()
        self.fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.eps, self.alpha, self.norm, self.input_range = eps, alpha, norm, input_range
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up (cuDNN autotuning, allocator) before capture
                self._step()
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            for _ in range(steps):
                self._step()

    def _step(self) -> None:
        xa = self.x_adv.detach().requires_grad_(True)
        logits = self.model(xa)
        loss = F.cross_entropy(logits, self.y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            wrong = logits.argmax(1) != self.y
            newly = (wrong & ~self.fooled).reshape(-1, *[1] * (xa.dim() - 1))
            self.best.copy_(torch.where(newly, xa, self.best))
            self.fooled.logical_or_(wrong)
            nxt = gradient_step(xa.detach(), grad, self.alpha, self.norm)
            self.x_adv.copy_(project(nxt, self.x, self.eps, self.norm, self.input_range))

    def run(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        starts: list[torch.Tensor],
        fooled0: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.x.copy_(x)
        self.y.copy_(y)
        self.best.copy_(x)
        self.fooled.copy_(fooled0)
        last = x
        for r, start in enumerate(starts):
            self.x_adv.copy_(start)
            self.graph.replay()
            last = self.x_adv
            if r < len(starts) - 1:  # the next restart overwrites this one's last iterate
                self.check_last()
        f = self.fooled.reshape(-1, *[1] * (x.dim() - 1))
        return torch.where(f, self.best, last), self.fooled.clone()

    @torch.no_grad()
    def check_last(self) -> None:
        """Keep the last iterate of a restart where it fools the model (the captured steps
        judge each iterate before stepping from it, so the last one is not judged)."""
        xa = self.x_adv
        wrong = self.model(xa).argmax(1) != self.y
        newly = (wrong & ~self.fooled).reshape(-1, *[1] * (xa.dim() - 1))
        self.best.copy_(torch.where(newly, xa, self.best))
        self.fooled.logical_or_(wrong)


class PGD(EvasionAttack):
    """Projected Gradient Descent (L-inf or L2) on the cross-entropy loss.

    Madry et al. 2018, https://arxiv.org/abs/1706.06083. ``steps`` forward+backward passes per
    sample and restart (fewer with early stop).

    Parameters
    ----------
    eps : float
        Radius in input units.
    norm : {"linf", "l2"}
    steps, step_size, random_start, restarts, early_stop, cuda_graph
        See :class:`PGDParams`.

    Shapes: ``x`` (N, ...) float in the input range, ``y`` (N,) int64; returns (N, ...).

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))
    >>> res = attacks.PGD(eps=0.5, norm="l2", steps=20)(model, x, y)
    >>> bool(((res.x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all())
    True
    """

    name = "pgd"
    suite = SuitePlan(budget={"steps": "pgd_steps", "restarts": "pgd_restarts"},
                      stronger_than=("fgsm",), order=1)
    Params = PGDParams
    params: PGDParams

    def __init__(self, params: PGDParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._graphs: dict[tuple[Any, ...], _StepGraph] = {}

    def _validate_params(self) -> None:
        super()._validate_params()
        p = self.params
        from trustbench.attacks.base import AttackError

        if p.steps < 1 or p.restarts < 1:
            raise AttackError(f"pgd: steps and restarts must be >= 1, got {p.steps}, {p.restarts}")
        if p.step_size is not None and not (p.step_size > 0 and math.isfinite(p.step_size)):
            raise AttackError(f"pgd: step_size must be > 0 or None, got {p.step_size}")

    @property
    def alpha(self) -> float:
        """The step length actually used."""
        p = self.params
        return p.step_size if p.step_size is not None else 2.5 * p.eps / p.steps

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        p = self.params
        fooled = ctx.clean_logits.argmax(1) != y
        if p.cuda_graph and x.is_cuda and len(x) > 0:
            try:
                return self._perturb_graph(x, y, fooled, ctx)
            except RuntimeError as exc:  # capture not possible for this model: fall back
                log.info("pgd: CUDA graph capture failed (%s); running eagerly", exc)
                self._graphs.clear()
        out = x.clone()
        for r in range(p.restarts):
            idx = (~fooled).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xa, fo = self._run(model, x[idx], y[idx], ctx, check_last=r < p.restarts - 1)
            out[idx] = xa
            fooled[idx] = fo
        return out

    def _start(self, x: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        if not p.random_start:
            return x.clone()
        return project(
            random_start(x, p.eps, p.norm, ctx.generator), x, p.eps, p.norm, ctx.input_range
        )

    def _run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext,
        check_last: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One restart on (x, y); returns (examples, fooled) aligned with x.

        Each iterate is judged by the forward pass the next step makes from it anyway: the
        first iterate that fools the model is kept (with ``early_stop`` its sample stops
        there). ``check_last`` also judges the last iterate with one more forward pass, where
        a later restart would otherwise replace an example that already fools the model.
        """
        p = self.params
        out = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        active = torch.arange(len(x), device=x.device)
        xs, ys = x, y
        xa = self._start(x, ctx)
        bcast = [1] * (x.dim() - 1)
        for _ in range(p.steps):
            xa = xa.detach().requires_grad_(True)
            logits = model(xa)
            loss = F.cross_entropy(logits, ys, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                xa = xa.detach()
                wrong = logits.argmax(1) != ys
                if p.early_stop:
                    if bool(wrong.any()):
                        out[active[wrong]] = xa[wrong]
                        fooled[active[wrong]] = True
                        keep = ~wrong
                        active, xs, ys, xa, grad = (
                            active[keep],
                            xs[keep],
                            ys[keep],
                            xa[keep],
                            grad[keep],
                        )
                        if len(active) == 0:
                            return out, fooled
                else:  # every sample takes every step; keep each one's first fooling iterate
                    newly = (wrong & ~fooled).reshape(-1, *bcast)
                    out = torch.where(newly, xa, out)
                    fooled |= wrong
                nxt = gradient_step(xa, grad, self.alpha, p.norm)
                xa = project(nxt, xs, p.eps, p.norm, ctx.input_range)
        with torch.no_grad():
            done = fooled[active].reshape(-1, *bcast)
            out[active] = torch.where(done, out[active], xa)
            if check_last:
                ctx.stats.forward_calls += 1
                ctx.stats.forward_samples += len(active)
                fooled[active] |= model(xa).argmax(1) != ys
        return out, fooled

    def _perturb_graph(
        self, x: torch.Tensor, y: torch.Tensor, fooled: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        p = self.params
        key = (
            id(ctx.raw_model),
            tuple(x.shape),
            x.dtype,
            x.device,
            p.eps,
            self.alpha,
            p.norm,
            ctx.input_range,
            p.steps,
        )
        g = self._graphs.get(key)
        if g is None:
            while len(self._graphs) >= 2:  # each graph keeps a private memory pool: bound them
                self._graphs.pop(next(iter(self._graphs)))
            g = _StepGraph(ctx.raw_model, x, y, p.eps, self.alpha, p.norm, ctx.input_range, p.steps)
            self._graphs[key] = g
        starts = [self._start(x, ctx) for _ in range(p.restarts)]
        out, _ = g.run(x, y, starts, fooled)
        n = len(x) * p.steps * p.restarts
        ctx.stats.forward_calls += p.steps * p.restarts + p.restarts - 1  # + check_last
        ctx.stats.backward_calls += p.steps * p.restarts
        ctx.stats.forward_samples += n + len(x) * (p.restarts - 1)
        ctx.stats.backward_samples += n
        return out
