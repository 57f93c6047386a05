"""Per-sample losses that attacks maximise: cross-entropy, DLR (Croce & Hein 2020), margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ce_loss", "dlr_loss", "margin_loss"]


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy."""
    return F.cross_entropy(logits, y, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio loss (Croce & Hein, ICML 2020, eq. 5), per sample.

    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``: shift- and scale-invariant, so it does not
    saturate like cross-entropy on over-confident models. Needs at least 3 classes.
    """
    z_sorted, ind_sorted = logits.sort(dim=1)
    top_is_y = (ind_sorted[:, -1] == y).to(logits.dtype)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    best_other = z_sorted[:, -2] * top_is_y + z_sorted[:, -1] * (1.0 - top_is_y)
    return -(z_y - best_other) / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``max_{i != y} z_i - z_y``: positive iff misclassified; its gradient never saturates."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return other - z_y
