"""Auto-PGD with the cross-entropy (APGD-CE) and the DLR loss (APGD-DLR).

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690 (Algorithm 1).

Follows the reference implementation (github.com/fra31/auto-attack, ``autopgd_base.py``):
initial step ``2 * eps``; momentum 0.75 from the second step on; checkpoints after
``p_1 = 0.22 * N_iter`` steps, then every ``max(p_{j} - 0.03 * N_iter, 0.06 * N_iter)`` steps; at
a checkpoint a sample's step size halves (and it restarts from its best point) if fewer than
``rho = 0.75`` of the steps since the last checkpoint increased its loss, or if the step size
was not halved last time and the best loss did not improve. Restarts attack only the samples
still correctly classified.

Added here: per-sample early stop (a sample leaves the batch once misclassified; every
per-sample state is compacted with it), and all state stays on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trustbench.attacks.base import (
    AttackContext,
    AttackError,
    AttackParams,
    EvasionAttack,
    lp_norms,
    per_sample,
    restart_on_robust,
)
from trustbench.attacks.losses import ce_loss, dlr_loss
from trustbench.attacks.profiles import SuitePlan

__all__ = ["APGDCE", "APGDDLR", "APGDParams"]


@dataclass
class APGDParams(AttackParams):
    """APGD parameters.

    Attributes
    ----------
    steps
        Iterations per restart (AutoAttack uses 100).
    restarts
        Restarts; each attacks only the samples still correctly classified.
    rho
        Oscillation threshold of the step-size checkpoints (0.75).
    early_stop
        Drop misclassified samples from the batch at once.
    """

    steps: int = 100
    restarts: int = 1
    rho: float = 0.75
    early_stop: bool = True



class _APGD(EvasionAttack):
    """Shared APGD machinery; subclasses choose the loss."""

    abstract = True
    Params = APGDParams
    params: APGDParams

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss the attack maximises."""
        raise NotImplementedError

    def _validate_params(self) -> None:
        super()._validate_params()
        p = self.params
        if p.steps < 1 or p.restarts < 1 or not 0 < p.rho <= 1:
            raise AttackError(
                f"{self.name}: need steps >= 1, restarts >= 1 and 0 < rho <= 1, got "
                f"{p.steps}, {p.restarts}, {p.rho}"
            )

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        return restart_on_robust(
            x, y, ctx, self.params.restarts, lambda xs, ys: self._single_run(model, xs, ys, ctx)
        )

    def _proj(self, t: torch.Tensor, x: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        eps = self.params.eps
        if self.params.norm == "linf":
            return ctx.clip(torch.minimum(torch.maximum(t, x - eps), x + eps))
        d = t - x
        n = per_sample(lp_norms(d, "l2"), x)
        return ctx.clip(x + d / (n + 1e-12) * torch.clamp(n, max=eps))

    def _grad(
        self, model: nn.Module, xa: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xa = xa.detach().requires_grad_(True)
        logits = model(xa)
        loss = self.loss(logits, y)
        (g,) = torch.autograd.grad(loss.sum(), xa)
        return logits.detach(), loss.detach(), g.detach()

    def _single_run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One APGD run; returns (examples aligned with x, fooled mask)."""
        p = self.params
        eps, norm, n_iter = p.eps, p.norm, p.steps
        n_iter_2 = max(int(0.22 * n_iter), 1)
        n_iter_min = max(int(0.06 * n_iter), 1)
        size_decr = max(int(0.03 * n_iter), 1)
        n0 = len(x)
        dev = x.device
        gen = ctx.generator

        if norm == "linf":
            t = 2 * torch.rand(x.shape, generator=gen, device=dev, dtype=x.dtype) - 1
            xa = x + eps * t / per_sample(lp_norms(t, "linf").clamp_min(1e-12), x)
        else:
            t = torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype)
            xa = x + eps * t / per_sample(lp_norms(t, "l2").clamp_min(1e-12), x)
        xa = ctx.clip(xa)

        out = xa.clone()  # per original sample: first misclassifying point, else best-loss point
        fooled_all = torch.zeros(n0, dtype=torch.bool, device=dev)
        active = torch.arange(n0, device=dev)

        logits, loss, grad = self._grad(model, xa, y)
        acc = logits.argmax(1) == y
        fooled_all |= ~acc  # misclassified at the random start already (out holds that point)
        x_best, grad_best, loss_best = xa.clone(), grad.clone(), loss.clone()
        step = torch.full((n0,), 2.0 * eps, device=dev, dtype=x.dtype)
        xa_old = xa.clone()
        # loss history with a zero row in front (the reference's wrap-around to an unfilled row)
        hist = torch.zeros(n_iter + 1, n0, device=dev, dtype=x.dtype)
        loss_best_last = loss_best.clone()
        reduced_last = torch.ones(n0, dtype=torch.bool, device=dev)
        k, counter = n_iter_2, 0

        for i in range(n_iter):
            if p.early_stop and not bool(acc.all()):
                keep = acc
                active = active[keep]
                if len(active) == 0:
                    return out, fooled_all
                x, y, xa, xa_old, grad = x[keep], y[keep], xa[keep], xa_old[keep], grad[keep]
                x_best, grad_best, loss_best = x_best[keep], grad_best[keep], loss_best[keep]
                step, hist, acc = step[keep], hist[:, keep], acc[keep]
                loss_best_last, reduced_last = loss_best_last[keep], reduced_last[keep]

            with torch.no_grad():
                grad2 = xa - xa_old
                xa_old = xa
                a = 0.75 if i > 0 else 1.0
                s = per_sample(step, x)
                if norm == "linf":
                    x1 = self._proj(xa + s * grad.sign(), x, ctx)
                    x1 = self._proj(xa + (x1 - xa) * a + grad2 * (1 - a), x, ctx)
                else:
                    gn = per_sample(lp_norms(grad, "l2"), x) + 1e-12
                    x1 = self._proj(xa + s * grad / gn, x, ctx)
                    x1 = self._proj(xa + (x1 - xa) * a + grad2 * (1 - a), x, ctx)
                xa = x1

            logits, loss, grad = self._grad(model, xa, y)
            with torch.no_grad():
                pred = logits.argmax(1) == y
                newly = acc & ~pred
                if bool(newly.any()):
                    out[active[newly]] = xa[newly]
                    fooled_all[active[newly]] = True
                acc = acc & pred
                hist[i + 1] = loss
                better = loss > loss_best
                x_best = torch.where(per_sample(better, x), xa, x_best)
                grad_best = torch.where(per_sample(better, x), grad, grad_best)
                loss_best = torch.where(better, loss, loss_best)

                counter += 1
                if counter == k:
                    # fraction of the last k steps that increased the loss
                    incr = (hist[i + 2 - k : i + 2] > hist[i + 1 - k : i + 1]).sum(0)
                    osc = incr.to(x.dtype) <= k * p.rho
                    no_impr = ~reduced_last & (loss_best_last >= loss_best)
                    osc = osc | no_impr
                    reduced_last = osc.clone()
                    loss_best_last = loss_best.clone()
                    if bool(osc.any()):
                        step = torch.where(osc, step / 2.0, step)
                        xa = torch.where(per_sample(osc, x), x_best, xa)
                        grad = torch.where(per_sample(osc, x), grad_best, grad)
                    k = max(k - size_decr, n_iter_min)
                    counter = 0

        out[active[acc]] = x_best[acc]  # never misclassified: the highest-loss point
        return out, fooled_all


class APGDCE(_APGD):
    """APGD on the cross-entropy loss (Croce & Hein 2020, https://arxiv.org/abs/2003.01690).

    Parameters
    ----------
    eps : float
    norm : {"linf", "l2"}
    steps, restarts, rho, early_stop
        See :class:`APGDParams`.

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    >>> res = attacks.APGDCE(eps=0.2, steps=10)(model, x, y)
    >>> bool(((res.x_adv - x).abs() <= 0.2 + 1e-6).all())
    True
    """

    name = "apgd-ce"
    suite = SuitePlan(profiles=("standard", "full"), order=2,
                      budget={"steps": "apgd_steps", "restarts": "apgd_restarts"})

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per sample."""
        return ce_loss(logits, y)


class APGDDLR(_APGD):
    """APGD on the Difference-of-Logits-Ratio loss (Croce & Hein 2020); needs >= 3 classes.

    The DLR loss is invariant to shifting and rescaling the logits, so it does not saturate on
    over-confident (or logit-scaled, gradient-masking) models as cross-entropy does.

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    >>> res = attacks.APGDDLR(eps=0.2, steps=10)(model, x, y)
    >>> res.adv_correct.dtype
    torch.bool
    """

    name = "apgd-dlr"
    suite = SuitePlan(profiles=("standard", "full"), order=3,
                      budget={"steps": "apgd_steps", "restarts": "apgd_restarts"})
    min_classes = 3

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DLR loss per sample."""
        return dlr_loss(logits, y)
