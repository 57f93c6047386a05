"""Resuming a campaign: its progress (:class:`CampaignState`), where that is kept
(:class:`Checkpoint`), and the digests that tie a state to one campaign on one model and data.

A state records the campaign's fingerprint (:func:`campaign_fingerprint`: configuration, sites,
size, the inputs' fault-free predictions and logits) and a digest of the model's stored
parameters and buffers and of the inputs and labels (:func:`model_digest`,
:func:`tensors_digest`), so a state is only ever resumed by the same campaign on the same weights
and data. Forward hooks (a protection) are not part of either: keep the states of protected and
unprotected runs apart. This package writes no files: a :class:`Checkpoint` is the caller's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from trustbench.faults.base import FaultModel
from trustbench.faults.campaign_config import CampaignConfig
from trustbench.faults.errors import FaultError
from trustbench.faults.outcomes import CRITICAL_SDC, DUE, MASKED, SDC


@dataclass
class CampaignState:
    """Progress of a campaign, enough to resume it (JSON-plain through to_dict/from_dict)."""

    fingerprint: str
    n_total: int
    n_done: int = 0
    outcomes: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: Digest of the stored weights (:func:`model_digest`), inputs and labels the outcomes were
    #: measured on.
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CampaignState:
        """Inverse of :meth:`to_dict`."""
        try:
            st = cls(**{**d, "outcomes": list(d.get("outcomes", [])),
                        "changed": list(d.get("changed", []))})
        except TypeError as exc:
            raise FaultError(f"not a campaign state: {exc}") from None
        if len(st.outcomes) != st.n_done or len(st.changed) != st.n_done:
            raise FaultError("corrupt campaign state: outcome lists do not match n_done")
        if not 0 <= st.n_done <= st.n_total:
            raise FaultError(f"corrupt campaign state: n_done {st.n_done} is not within "
                             f"0..n_total ({st.n_total})")
        if any(not isinstance(c, int) or c not in (MASKED, SDC, CRITICAL_SDC, DUE)
               for c in st.outcomes):
            raise FaultError("corrupt campaign state: an outcome code is not one of "
                             f"{(MASKED, SDC, CRITICAL_SDC, DUE)}")
        if any(not isinstance(c, int) or c < 0 for c in st.changed):
            raise FaultError("corrupt campaign state: a changed-input count is negative")
        return st


class Checkpoint(Protocol):
    """Where a campaign keeps its progress between runs (a file, a database: the caller's
    choice; :func:`trustbench.faults.campaign.run_campaign` only calls these two methods).

    The one way a campaign resumes: it loads the state saved for its fingerprint (and resumes
    it only if that state was measured on the same weights, inputs and labels; otherwise it
    starts afresh), then saves its state as it goes, when it stops early and once more when it
    is complete. ``trustbench.checkpoints.JsonCheckpoints.progress`` is one, over JSON files.
    """

    def load(self, fingerprint: str) -> CampaignState | None:
        """The saved state of the campaign with this fingerprint, or None."""

    def save(self, state: CampaignState) -> None:
        """Keep ``state`` (``state.n_done == state.n_total``: the campaign is complete)."""


#: Integer views by element size, for the model digest.
_INT_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def tensors_digest(named: Sequence[tuple[str, torch.Tensor]]) -> str:
    """A digest of the stored bits of named tensors (names, shapes, dtypes and words),
    computed where the tensors live.

    CPU tensors are hashed with SHA-256; on other devices each tensor is reduced on the device
    to two wrapping 64-bit sums of its integer words (plain and weighted by ``2i + 1``, so any
    change of a single word changes the digest) and only those come to the host.
    """
    h = hashlib.sha256()
    sums = []
    with torch.no_grad():
        for name, t in named:
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            w = t.detach().reshape(-1)
            if w.numel() == 0:
                continue
            if w.dtype == torch.bool:
                w = w.to(torch.uint8)
            words = w.contiguous().view(_INT_VIEWS[w.element_size()]) if (
                w.element_size() in _INT_VIEWS) else w.contiguous().view(torch.uint8)
            if words.device.type == "cpu":
                h.update(words.view(torch.uint8).numpy().data)
            else:
                wide = words.to(torch.int64)
                pos = torch.arange(1, 2 * len(wide), 2, dtype=torch.int64, device=wide.device)
                sums.append(torch.stack([wide.sum(), (wide * pos).sum()]))
    if sums:
        h.update(torch.stack(sums).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def model_digest(model: nn.Module) -> str:
    """:func:`tensors_digest` of every parameter and buffer of ``model``."""
    return tensors_digest([*model.named_parameters(), *model.named_buffers()])


def campaign_fingerprint(cfg: CampaignConfig, fm: FaultModel, site_desc: list, n_inputs: int,
                         n_total: int, golden: torch.Tensor, logits: str) -> str:
    """What makes two campaigns the same one, as 16 hex digits: target, fault model,
    distribution, seed, sites (:meth:`.campaign_plan.CampaignSites.describe`), inputs, size,
    strict fp32, and the fault-free top-1 (``golden``) and logits digest of the inputs."""
    payload = {
        "target": cfg.target, "fault": fm.describe(), "distribution": cfg.distribution,
        "seed": cfg.seed, "sites": site_desc, "n_inputs": n_inputs, "n_total": n_total,
        "strict_fp32": cfg.strict_fp32, "logits": logits,
        "golden": hashlib.sha256(golden.cpu().numpy().astype(np.int64).tobytes()).hexdigest(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
