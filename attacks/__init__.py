"""trustbench's robustness pillar: evasion attacks, common corruptions and validity checks.

Importing this package registers every built-in attack (kind ``attack``) and corruption (kind
``corruption``); trustbench finds it through the entry-point groups ``trustbench.attacks`` and
``trustbench.corruptions``. ART is imported only when an ART-backed attack runs.

What lives where:

- :mod:`trustbench.attacks.base`: :class:`EvasionAttack` (the template method and its guarantees),
  :class:`AttackParams`, :class:`AttackResult`, :class:`AttackStats`, :class:`AttackError`;
- :mod:`.fgsm`, :mod:`.pgd`, :mod:`.apgd`, :mod:`.square`: native
  batched attacks (FGSM, PGD L-inf/L2 with a CUDA-graph fast path, APGD-CE/APGD-DLR, the
  black-box Square Attack ``square``);
- :mod:`.art_adapters`: CW-L2, HopSkipJump, ART AutoAttack, and ART's Square Attack
  (``square-art``, a cross-check of the native one);
- :mod:`trustbench.attacks.corruptions`: common corruptions and their evaluation;
- :mod:`trustbench.attacks.evaluate`: robust accuracy over a dataset, worst case over an ensemble;
- :mod:`trustbench.attacks.checks`: evaluation-validity checks returning :class:`CheckResult`;
- :mod:`trustbench.attacks.profiles`: budgets per profile and default eps;
- :mod:`trustbench.attacks.template`: the one-file template of a new attack.
"""

from __future__ import annotations

from trustbench.attacks import corruptions
from trustbench.attacks.apgd import APGDCE, APGDDLR, APGDParams
from trustbench.attacks.art_adapters import (
    ARTAutoAttack,
    ARTSquareAttack,
    CarliniWagnerL2,
    HopSkipJump,
)
from trustbench.attacks.base import (
    AttackContext,
    AttackError,
    AttackParams,
    AttackResult,
    AttackStats,
    EvasionAttack,
    lp_norms,
    project,
)
from trustbench.attacks.checks import CheckResult
from trustbench.attacks.corruptions import Corruption, CorruptionEvaluation, evaluate_corruptions
from trustbench.attacks.evaluate import (
    RobustEvaluation,
    evaluate_attack,
    robust_accuracy_at,
    worst_case,
)
from trustbench.attacks.fgsm import FGSM, FGSMParams
from trustbench.attacks.pgd import PGD, PGDParams
from trustbench.attacks.square import SquareAttack, SquareParams
from trustbench.registry import Pillar, import_submodules

#: What the robustness pillar brings to the harness (found through ``trustbench.pillars``).
PILLAR = Pillar(
    name="robustness",
    question="does it survive adversarial inputs and corrupted inputs?",
    kinds=("attack", "corruption"),
    templates={"attack": "trustbench.attacks.template:render_attack_template"},
    order=10,
)

# Every module of the package registers its plugins: a new attack is one file dropped here.
import_submodules(__name__, PILLAR.kinds)

__all__ = [
    "APGDCE",
    "APGDDLR",
    "FGSM",
    "PGD",
    "PILLAR",
    "APGDParams",
    "ARTAutoAttack",
    "ARTSquareAttack",
    "AttackContext",
    "AttackError",
    "AttackParams",
    "AttackResult",
    "AttackStats",
    "CarliniWagnerL2",
    "CheckResult",
    "Corruption",
    "CorruptionEvaluation",
    "EvasionAttack",
    "FGSMParams",
    "HopSkipJump",
    "PGDParams",
    "RobustEvaluation",
    "SquareAttack",
    "SquareParams",
    "corruptions",
    "evaluate_attack",
    "evaluate_corruptions",
    "lp_norms",
    "project",
    "robust_accuracy_at",
    "worst_case",
]
