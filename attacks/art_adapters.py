"""Adapters that run IBM ART attacks through trustbench's :class:`EvasionAttack` contract.

ART (Adversarial Robustness Toolbox, https://github.com/Trusted-AI/adversarial-robustness-toolbox)
is imported only when one of these attacks runs. The model goes to ART wrapped in a
``PyTorchClassifier`` (the counting wrapper in front, so its passes are counted too); ART works on
NumPy arrays, so these attacks are slower than the native ones and are used for breadth:

- ``cw-l2``: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017,
  https://arxiv.org/abs/1608.04644 (minimal-norm L2; eps=inf reports the norms found);
- ``square-art``: Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial
  attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049 (score-based; ART's
  implementation, kept as a cross-check of the native ``square`` in :mod:`.square`);
- ``hopskipjump``: Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient
  Decision-Based Attack", S&P 2020, https://arxiv.org/abs/1904.02144 (labels only, minimal norm);
- ``art-autoattack``: ART's AutoAttack (Croce & Hein, ICML 2020) over ART's APGD-CE, APGD-DLR
  and Square.

ART draws from NumPy's global generator: it is seeded from the attack's torch generator for the
call and restored afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trustbench.attacks.base import AttackContext, AttackError, AttackParams, EvasionAttack
from trustbench.attacks.profiles import SuitePlan

__all__ = [
    "ARTAutoAttack",
    "ARTSquareAttack",
    "ARTSquareParams",
    "CarliniWagnerL2",
    "HopSkipJump",
    "art_classifier",
]


@contextlib.contextmanager
def seeded_art(seed: int) -> Iterator[None]:
    """Every random source ART draws from, seeded from ``seed`` for one attack and restored
    afterwards: NumPy's global generator, Python's ``random`` (ART's L2 Square Attack) and the
    unseeded ``np.random.RandomState()`` instances it creates (HopSkipJump), which get seeds
    ``seed + 1``, ``seed + 2``, ... in the order they are made."""
    np_state, py_state = np.random.get_state(), random.getstate()
    original = np.random.RandomState
    counter = itertools.count(1)

    class _Seeded(original):  # type: ignore[misc, valid-type]
        def __init__(self, seed_: Any = None) -> None:
            super().__init__((seed + next(counter)) % 2**32 if seed_ is None else seed_)

    np.random.seed(seed)
    random.seed(seed)
    np.random.RandomState = _Seeded  # type: ignore[misc]
    try:
        yield
    finally:
        np.random.RandomState = original  # type: ignore[misc]
        np.random.set_state(np_state)
        random.setstate(py_state)


def art_classifier(
    model: nn.Module,
    x: torch.Tensor,
    num_classes: int,
    clip_values: tuple[float, float] | None,
) -> Any:
    """Wrap ``model`` in ART's ``PyTorchClassifier`` on ``x``'s device."""
    try:
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:  # pragma: no cover - ART is a declared dependency
        raise AttackError(
            "this attack needs IBM's adversarial-robustness-toolbox (pip install "
            f"adversarial-robustness-toolbox): {exc}"
        ) from None
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=num_classes,
        clip_values=clip_values,
        device_type="gpu" if x.is_cuda else "cpu",
    )


class _Cast(nn.Module):
    """Casts inputs to the model's dtype (some ART attacks feed float64 arrays)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype))


class _ARTAttack(EvasionAttack):
    """Shared plumbing: classifier, clip values, NumPy seeding, conversion back to torch."""

    abstract = True
    requires = ("art",)

    def _clip_values(self, x: torch.Tensor, ctx: AttackContext) -> tuple[float, float]:
        if ctx.input_range is not None:
            return (float(ctx.input_range[0]), float(ctx.input_range[1]))
        # unbounded (standardised tabular) inputs: ART needs a box; use the data's, widened
        lo, hi = float(x.min()), float(x.max())
        pad = 0.1 * (hi - lo) + (self.params.eps if math.isfinite(self.params.eps) else 1.0)
        return (lo - pad, hi + pad)

    def build(self, classifier: Any) -> Any:
        """Return the configured ART attack object."""
        raise NotImplementedError

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        clf = art_classifier(
            _Cast(model, x.dtype), x, ctx.clean_logits.shape[1], self._clip_values(x, ctx)
        )
        seed = int(
            torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator, device=ctx.generator.device)
        )
        with seeded_art(seed):
            attack = self.build(clf)
            x_np = x.detach().cpu().numpy()
            y_np = y.detach().cpu().numpy()
            # ART's Square L2 divides 0/0 on images smaller than ~8 pixels; the base class
            # replaces non-finite outputs by the clean input
            with np.errstate(invalid="ignore", divide="ignore"):
                adv = attack.generate(x=x_np, y=y_np)
        return torch.as_tensor(adv, dtype=x.dtype, device=x.device)


def _art_norm(norm: str) -> float | int:
    return np.inf if norm == "linf" else 2


@dataclass
class CWParams(AttackParams):
    """Carlini-Wagner L2 parameters (ART's names).

    Attributes
    ----------
    confidence, learning_rate, binary_search_steps, max_iter, initial_const, batch_size
        As in ``art.attacks.evasion.CarliniL2Method``.
    """

    eps: float = math.inf
    norm: str = "l2"
    confidence: float = 0.0
    learning_rate: float = 0.01
    binary_search_steps: int = 5
    max_iter: int = 20
    initial_const: float = 0.1
    batch_size: int = 128


class CarliniWagnerL2(_ARTAttack):
    """Carlini & Wagner L2 (minimal-norm), through ART.

    Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644. With ``eps=inf`` (default) it
    returns the smallest perturbations it finds; report their median L2 norm and robust accuracy
    at any radius with :func:`.evaluate.robust_accuracy_at`. A finite ``eps`` projects
    them onto that ball.

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(4, 4), torch.randint(0, 3, (4,))
    >>> res = attacks.CarliniWagnerL2(max_iter=5, binary_search_steps=2)(model, x, y)
    >>> res.x_adv.shape
    torch.Size([4, 4])
    """

    name = "cw-l2"
    suite = SuitePlan(profiles=("full",), samples="cw_samples", label="cw", order=6)
    Params = CWParams
    params: CWParams
    norms = ("l2",)
    minimal_norm = True

    def build(self, classifier: Any) -> Any:
        from art.attacks.evasion import CarliniL2Method

        p = self.params
        return CarliniL2Method(
            classifier,
            confidence=p.confidence,
            learning_rate=p.learning_rate,
            binary_search_steps=p.binary_search_steps,
            max_iter=p.max_iter,
            initial_const=p.initial_const,
            batch_size=p.batch_size,
            verbose=False,
        )


@dataclass
class ARTSquareParams(AttackParams):
    """Parameters of ART's Square Attack.

    Attributes
    ----------
    max_iter
        Iterations per sample after the initial query (ART's ``max_iter``; AutoAttack uses
        5000).
    p_init
        Initial fraction of pixels changed per square (0.8 for L-inf).
    restarts
        Random restarts.
    batch_size
        Samples per ART batch.
    """

    max_iter: int = 1000
    p_init: float = 0.8
    restarts: int = 1
    batch_size: int = 256


class ARTSquareAttack(_ARTAttack):
    """Square Attack, score-based black-box random search, through ART (``square-art``).

    Andriushchenko et al. 2020, https://arxiv.org/abs/1912.00049. The suites use the native
    :class:`.square.SquareAttack` (``square``: on the device, batched, much faster);
    this adapter runs ART's NumPy implementation as an independent cross-check.

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x, y = torch.rand(4, 1, 4, 4), torch.randint(0, 3, (4,))
    >>> res = attacks.ARTSquareAttack(eps=0.1, max_iter=20)(model, x, y)
    >>> bool(((res.x_adv - x).abs() <= 0.1 + 1e-6).all())
    True
    """

    name = "square-art"
    # a cross-check of the native `square` (tests compare the two); the suite runs the native one
    suite = SuitePlan(profiles=(), worst_case=False)
    Params = ARTSquareParams
    params: ARTSquareParams
    white_box = False

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        if x.dim() != 4:
            raise AttackError(
                f"{self.name}: Square Attack samples square image patches and needs image inputs "
                f"(N, C, H, W); got shape {tuple(x.shape)}"
            )
        return super().perturb(model, x, y, ctx)

    def build(self, classifier: Any) -> Any:
        from art.attacks.evasion import SquareAttack as ARTSquare

        p = self.params
        return ARTSquare(
            classifier,
            norm=_art_norm(p.norm),
            max_iter=p.max_iter,
            eps=p.eps,
            p_init=p.p_init,
            nb_restarts=p.restarts,
            batch_size=p.batch_size,
            verbose=False,
        )


@dataclass
class HSJParams(AttackParams):
    """HopSkipJump parameters (ART's names: iterations, evaluation budgets)."""

    eps: float = math.inf
    norm: str = "l2"
    max_iter: int = 10
    max_eval: int = 1000
    init_eval: int = 100
    init_size: int = 100
    batch_size: int = 128


class HopSkipJump(_ARTAttack):
    """HopSkipJump, decision-based (labels only) minimal-norm attack, through ART.

    Chen et al. 2020, https://arxiv.org/abs/1904.02144.

    Examples
    --------
    >>> import torch, attacks
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(3, 4), torch.randint(0, 3, (3,))
    >>> res = attacks.HopSkipJump(max_iter=2, max_eval=50, init_eval=10)(model, x, y)
    >>> res.x_adv.shape
    torch.Size([3, 4])
    """

    name = "hopskipjump"
    # decision-based: its median L2 only (its query budget makes robust accuracy at eps loose)
    suite = SuitePlan(profiles=("full",), samples="hsj_samples", label="hopskipjump",
                      eps_metrics=False, order=7)
    Params = HSJParams
    params: HSJParams
    white_box = False
    minimal_norm = True

    def build(self, classifier: Any) -> Any:
        from art.attacks.evasion import HopSkipJump as ARTHSJ

        p = self.params
        return ARTHSJ(
            classifier,
            batch_size=p.batch_size,
            norm=_art_norm(p.norm),
            max_iter=p.max_iter,
            max_eval=p.max_eval,
            init_eval=p.init_eval,
            init_size=p.init_size,
            verbose=False,
        )


@dataclass
class ARTAutoAttackParams(AttackParams):
    """ART AutoAttack parameters.

    Attributes
    ----------
    eps_step
        Initial step of ART's APGD (None -> eps / 4).
    max_iter, restarts
        Iterations and random restarts of each APGD run (AutoAttack: 100 and 1 for the
        standard version's APGD-CE).
    square_queries
        Queries of the Square Attack member (AutoAttack: 5000).
    batch_size
        Samples per ART batch.
    """

    eps_step: float | None = None
    max_iter: int = 100
    restarts: int = 1
    square_queries: int = 5000
    batch_size: int = 256


class ARTAutoAttack(_ARTAttack):
    """ART's AutoAttack: worst case per sample of APGD-CE, APGD-DLR and Square, run by ART.

    Croce & Hein 2020, https://arxiv.org/abs/2003.01690, with ART's implementations of the
    members (``AutoProjectedGradientDescent`` with both losses, ``SquareAttack``); slow (NumPy),
    run in the full profile as an independent cross-check of the native ensemble.

    Examples
    --------
    >>> from trustbench import attacks
    >>> attacks.ARTAutoAttack(eps=0.1, max_iter=10).params.max_iter
    10
    """

    name = "art-autoattack"
    suite = SuitePlan(profiles=("full",), eps="headline", samples="autoattack_samples", order=5)
    Params = ARTAutoAttackParams
    params: ARTAutoAttackParams
    min_classes = 3

    def build(self, classifier: Any) -> Any:
        from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent
        from art.attacks.evasion import SquareAttack as ARTSquare

        p = self.params
        norm = _art_norm(p.norm)
        step = p.eps_step if p.eps_step is not None else p.eps / 4
        members = [
            AutoProjectedGradientDescent(
                classifier,
                norm=norm,
                eps=p.eps,
                eps_step=step,
                max_iter=p.max_iter,
                nb_random_init=p.restarts,
                batch_size=p.batch_size,
                loss_type=loss,
                verbose=False,
            )
            for loss in ("cross_entropy", "difference_logits_ratio")
        ]
        members.append(
            ARTSquare(
                classifier,
                norm=norm,
                eps=p.eps,
                max_iter=p.square_queries,
                batch_size=p.batch_size,
                verbose=False,
            )
        )
        return AutoAttack(
            classifier,
            norm=norm,
            eps=p.eps,
            eps_step=step,
            attacks=members,
            batch_size=p.batch_size,
        )
