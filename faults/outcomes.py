"""Outcome codes of a fault and how a faulty run is classified into them.

``0`` masked, ``1`` SDC (top-1 changed on some input, no correct prediction lost), ``2``
critical SDC (a correctly classified input became wrong), ``3`` DUE (a non-finite output or an
exception). :func:`classify` works on device tensors (one row per fault), :func:`classify_counts`
on the per-fault flag counts the weight engine reads back to the host.
"""

from __future__ import annotations

import numpy as np
import torch

MASKED, SDC, CRITICAL_SDC, DUE = 0, 1, 2, 3
OUTCOME_NAMES = ("masked", "sdc", "critical_sdc", "due")


def classify(preds: torch.Tensor, bad: torch.Tensor, golden: torch.Tensor,
             correct: torch.Tensor, raised: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome code and number of changed top-1 decisions per fault (rows), on device.

    Parameters
    ----------
    preds, bad
        ``(faults, inputs)`` top-1 under the fault, and a non-finite-output flag.
    golden, correct
        ``(inputs,)`` or ``(faults, inputs)`` fault-free top-1 and whether it was correct.
    raised
        ``(faults,)`` an exception was raised during the faulty run.
    """
    changed = preds != golden
    due = bad.any(dim=1)
    if raised is not None:
        due = due | raised
    critical = (changed & correct).any(dim=1)
    sdc = changed.any(dim=1)
    code = torch.where(due, DUE, torch.where(critical, CRITICAL_SDC, torch.where(sdc, SDC, MASKED)))
    return code.to(torch.int8), (changed & ~bad).sum(dim=1)


def classify_counts(counts: np.ndarray, raised: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Outcome codes and changed-input counts from per-fault flag counts (host).

    Parameters
    ----------
    counts
        ``(faults, 4)`` integers: inputs with a non-finite output, correct inputs whose top-1
        changed, inputs whose top-1 changed, inputs whose top-1 changed to a finite output.
    raised
        ``(faults,)`` an exception was raised during the faulty run (DUE, nothing changed).
    """
    counts = np.asarray(counts, dtype=np.int64)
    due = counts[:, 0] > 0
    if raised is not None:
        due = due | raised
    code = np.where(due, DUE, np.where(counts[:, 1] > 0, CRITICAL_SDC,
                                       np.where(counts[:, 2] > 0, SDC, MASKED)))
    changed = counts[:, 3] if raised is None else np.where(raised, 0, counts[:, 3])
    return code.astype(np.int8), changed.astype(np.int64)
