"""trustbench's robustness pillar: evasion attacks, common corruptions and validity checks.

Importing this package registers every built-in attack (kind ``attack``) and corruption (kind
``corruption``); trustbench finds it through the entry-point groups ``trustbench.attacks`` and
``trustbench.corruptions``. ART is imported only when an ART-backed attack runs.

What lives where:

- :mod:`attacks.base`: :class:`EvasionAttack` (the template method and its guarantees),
  :class:`AttackParams`, :class:`AttackResult`, :class:`AttackStats`, :class:`AttackError`;
- :mod:`attacks.fgsm`, :mod:`attacks.pgd`, :mod:`attacks.apgd`, :mod:`attacks.square`: native
  batched attacks (FGSM, PGD L-inf/L2 with a CUDA-graph fast path, APGD-CE/APGD-DLR, the
  black-box Square Attack ``square``);
- :mod:`attacks.art_adapters`: CW-L2, HopSkipJump, ART AutoAttack, and ART's Square Attack
  (``square-art``, a cross-check of the native one);
- :mod:`attacks.corruptions`: common corruptions and their evaluation;
- :mod:`attacks.evaluate`: robust accuracy over a dataset, worst case over an ensemble;
- :mod:`attacks.checks`: evaluation-validity checks returning :class:`CheckResult`;
- :mod:`attacks.profiles`: budgets per profile and default eps;
- :mod:`attacks.template`: the one-file template of a new attack.
"""

from __future__ import annotations

from attacks import corruptions
from attacks.apgd import APGDCE, APGDDLR, APGDParams
from attacks.art_adapters import ARTAutoAttack, ARTSquareAttack, CarliniWagnerL2, HopSkipJump
from attacks.base import (
    AttackContext,
    AttackError,
    AttackParams,
    AttackResult,
    AttackStats,
    EvasionAttack,
    lp_norms,
    project,
)
from attacks.checks import CheckResult
from attacks.corruptions import Corruption, CorruptionEvaluation, evaluate_corruptions
from attacks.evaluate import RobustEvaluation, evaluate_attack, robust_accuracy_at, worst_case
from attacks.fgsm import FGSM, FGSMParams
from attacks.pgd import PGD, PGDParams
from attacks.square import SquareAttack, SquareParams

__all__ = [
    "APGDCE",
    "APGDDLR",
    "FGSM",
    "PGD",
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
