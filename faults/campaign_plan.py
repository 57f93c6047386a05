"""The faults of a campaign: the sites they hit, and the plan drawn from the seed.

:class:`CampaignSites` describes what a campaign injects into (one entry per site: name, layer
type, words per sample or tensor, bit layout); :func:`plan_faults` draws a :class:`FaultPlan`
over them, deterministically in the seed, so the same seed gives the same faults on any
machine; :func:`population_bits` is the size of the fault population the campaign samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustbench.faults.base import FaultModel
from trustbench.faults.bits import BitLayout


@dataclass(frozen=True)
class CampaignSites:
    """The sites a campaign injects into, one entry per site in the engine's order.

    Attributes
    ----------
    names, types
        Site names (``conv1.weight``, ``layer1.0.relu``, ``input``) and layer types.
    numel
        Words a fault may hit: the tensor's (weights) or one sample's output (activations).
    layouts
        The bit layout of each site's words.
    """

    names: list[str]
    types: list[str]
    numel: list[int]
    layouts: list[BitLayout]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def bits(self) -> int:
        """Stored bits over the sites (per sample for activations)."""
        return population_bits(self.numel, self.layouts)

    def describe(self) -> list[list]:
        """``[name, words, dtype]`` per site (JSON-plain; part of a campaign's fingerprint)."""
        return [[n, k, lay.name] for n, k, lay in zip(self.names, self.numel, self.layouts)]


@dataclass
class FaultPlan:
    """The faults of a campaign (host arrays, one entry per fault)."""

    site: np.ndarray
    element: np.ndarray
    payload: np.ndarray
    bit: np.ndarray
    sample: np.ndarray | None = None  # activation faults: which input the fault rides on

    def __len__(self) -> int:
        return len(self.site)

    def slice(self, lo: int, hi: int) -> FaultPlan:
        """Faults ``lo:hi``."""
        return FaultPlan(self.site[lo:hi], self.element[lo:hi], self.payload[lo:hi],
                         self.bit[lo:hi], None if self.sample is None else self.sample[lo:hi])


def plan_faults(fm: FaultModel, site_numel: list[int], site_layouts: list, n: int,
                distribution: str, seed: int, n_inputs: int | None = None) -> FaultPlan:
    """Draw ``n`` faults over sites of ``site_numel`` words (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    numel = np.asarray(site_numel, dtype=np.float64)
    if distribution == "bit-uniform":
        weights = numel * np.asarray([lay.nbits for lay in site_layouts], dtype=np.float64)
    else:
        weights = np.ones(len(numel))
    weights /= weights.sum()
    site = rng.choice(len(numel), size=n, p=weights).astype(np.int32)
    element = np.floor(rng.random(n) * numel[site]).astype(np.int64)
    element = np.minimum(element, numel[site].astype(np.int64) - 1)
    payload = np.zeros(n, dtype=np.uint64)
    bit = np.full(n, -1, dtype=np.int16)
    for s, lay in enumerate(site_layouts):
        sel = np.flatnonzero(site == s)
        fm.check_layout(lay)
        if len(sel):
            p, b = fm.sample(len(sel), lay, rng)
            payload[sel], bit[sel] = p, b
    sample = None if n_inputs is None else rng.integers(0, n_inputs, size=n).astype(np.int64)
    return FaultPlan(site, element, payload, bit, sample)


def population_bits(site_numel: list[int], site_layouts: list) -> int:
    """Number of stored bits over the sites (the fault population of single-bit faults)."""
    return int(sum(n * lay.nbits for n, lay in zip(site_numel, site_layouts)))
