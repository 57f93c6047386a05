"""FGSM / FGM: one gradient step of size eps (Goodfellow, Shlens & Szegedy, ICLR 2015).

Paper: "Explaining and Harnessing Adversarial Examples", https://arxiv.org/abs/1412.6572.
L-inf: ``x + eps * sign(grad)``; L2 (the fast gradient method): ``x + eps * grad / ||grad||_2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trustbench.attacks.base import AttackContext, AttackParams, EvasionAttack, lp_norms, project
from trustbench.attacks.losses import ce_loss
from trustbench.attacks.profiles import SuitePlan

__all__ = ["FGSM", "FGSMParams", "gradient_step"]


@dataclass
class FGSMParams(AttackParams):
    """FGSM parameters: ``eps`` and ``norm`` only."""


def gradient_step(
    x_adv: torch.Tensor, grad: torch.Tensor, step: float | torch.Tensor, norm: str
) -> torch.Tensor:
    """Steepest-ascent step of length ``step`` in ``norm`` (sign for L-inf, unit L2 direction)."""
    if isinstance(step, torch.Tensor):
        step = step.reshape(-1, *([1] * (x_adv.dim() - 1)))
    if norm == "linf":
        return x_adv + step * grad.sign()
    n = lp_norms(grad, "l2").clamp_min(1e-12).reshape(-1, *([1] * (x_adv.dim() - 1)))
    return x_adv + step * grad / n


class FGSM(EvasionAttack):
    """Fast Gradient Sign Method (L-inf) / Fast Gradient Method (L2).

    Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572. One forward and one backward pass
    per sample; the weakest white-box attack, used as the floor in the validity checks.

    Parameters
    ----------
    eps : float
        Radius (``8/255`` on CIFAR-10 L-inf).
    norm : {"linf", "l2"}

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.randint(0, 3, (5,))
    >>> res = attacks.FGSM(eps=0.1)(model, x, y)
    >>> res.x_adv.shape
    torch.Size([5, 4])
    """

    name = "fgsm"
    suite = SuitePlan(order=0)
    Params = FGSMParams
    params: FGSMParams

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        xa = x.clone().requires_grad_(True)
        loss = ce_loss(model(xa), y).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            out = gradient_step(x, grad, self.params.eps, self.params.norm)
            return project(out, x, self.params.eps, self.params.norm, ctx.input_range)
