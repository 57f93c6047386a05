"""The one-file template of a new attack (what ``trustbench new attack NAME`` writes).

The rendered file is a complete, working attack (momentum iterative FGSM, Dong et al. 2018) to
edit: a module docstring citing the paper, a parameter dataclass, a subclass of
:class:`.base.EvasionAttack` with ``name``, ``Params`` and ``perturb``, and a runnable
``>>>`` example, its suite plan and (empty) contract opt-outs. The contract test and the suite
pick it up as soon as the module is imported: dropped into attacks/, or through an entry point.
"""

from __future__ import annotations

import keyword
import re

from trustbench.attacks.base import AttackError

__all__ = ["render_attack_template"]

_TEMPLATE = '''"""{title}: a trustbench attack plugin.

TODO: cite the paper this implements, with its link. As written, this file implements the
momentum iterative FGSM (MI-FGSM) of Dong et al., "Boosting Adversarial Attacks with Momentum",
CVPR 2018, https://arxiv.org/abs/1710.06081: iterative signed steps on an accumulated,
L1-normalised gradient.

Register it in one of two ways, with no other edit:

- in trustbench's tree: drop this file into the ``attacks/`` folder (``trustbench.attacks``
  imports every module of its package);
- from your own package: declare it in your pyproject.toml and ``pip install`` the package::

    [project.entry-points."trustbench.attacks"]
    {name} = "{module}:{cls}"

Then ``trustbench list`` shows it, the contract test checks it
(``trustbench.attacks.contract.check_attack({cls}, "linf")``), and ``pytest suites/`` measures it
in every profile its ``suite`` plan names and takes it into the worst case.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trustbench.attacks.base import AttackContext, AttackParams, EvasionAttack, project
from trustbench.attacks.fgsm import gradient_step
from trustbench.attacks.profiles import SuitePlan


@dataclass
class {cls}Params(AttackParams):
    """Parameters of {name}.

    Attributes
    ----------
    eps
        Radius in input units (inherited; ``norm`` too: "linf" or "l2").
    steps
        Iterations.
    decay
        Momentum decay factor mu (1.0 in the paper).
    """

    steps: int = 10
    decay: float = 1.0


class {cls}(EvasionAttack):
    """{title}.

    TODO: one paragraph on what the attack does and what it costs (passes per sample).

    Parameters
    ----------
    eps : float
        Radius of the threat model (``8/255`` on CIFAR-10 L-inf).
    norm : {{"linf", "l2"}}
    steps : int
    decay : float

    Shapes: ``x`` (N, ...) in the input range, ``y`` (N,) int64; returns (N, ...).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    >>> result = {cls}(eps=0.1, steps=5)(model, x, y)
    >>> bool(((result.x_adv - x).abs() <= 0.1 + 1e-6).all())
    True
    """

    name = "{name}"
    Params = {cls}Params
    norms = ("linf", "l2")
    # How the robustness suite runs it: every profile, each default eps, in the worst case;
    # per-profile budgets come from the profile's RobustnessBudget fields.
    suite = SuitePlan(budget={{"steps": "pgd_steps"}})
    # A check of the contract it cannot keep, with the reason (none here):
    contract_opt_out: dict[str, str] = {{}}

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
    ) -> torch.Tensor:
        # The base class has put the model in eval mode with frozen parameters, and will
        # project the result onto the eps ball and input range, and verify it, afterwards.
        p = self.params
        alpha = p.eps / p.steps
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        for _ in range(p.steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12)
                momentum = p.decay * momentum + grad / l1.view(-1, *[1] * (x.dim() - 1))
                x_adv = gradient_step(x_adv.detach(), momentum, alpha, p.norm)
                x_adv = project(x_adv, x, p.eps, p.norm, ctx.input_range)
        return x_adv
'''


def render_attack_template(name: str, module: str | None = None) -> str:
    """Source of a complete one-file attack plugin registered as ``name``.

    Parameters
    ----------
    name
        Registry name: lowercase letters, digits and dashes, starting with a letter
        (``"my-attack"``); the class is its CamelCase (``MyAttack``).
    module
        Importable module path the file will live at (for the entry-point snippet in its
        docstring); default ``name`` with dashes turned into underscores.

    Raises
    ------
    AttackError
        If ``name`` is not a valid attack name.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name or ""):
        raise AttackError(
            f"attack name {name!r} is not accepted: use lowercase letters, digits and single "
            "dashes, starting with a letter (e.g. 'my-attack')"
        )
    cls = "".join(part.capitalize() for part in name.split("-"))
    if keyword.iskeyword(cls) or not cls.isidentifier():
        raise AttackError(f"attack name {name!r} does not give a valid class name ({cls!r})")
    if cls in {"AttackContext", "AttackParams", "EvasionAttack", "SuitePlan"}:
        raise AttackError(f"attack name {name!r} gives the class name {cls!r}, which the file "
                          "imports from trustbench; choose another name")
    title = " ".join(
        part.upper() if len(part) <= 4 else part.capitalize() for part in name.split("-")
    )
    module = module or name.replace("-", "_")
    return _TEMPLATE.format(name=name, cls=cls, title=title, module=module)
