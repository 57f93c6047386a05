"""Fault-injection campaigns: the fault plan, the run (resumable), and the statistics.

A campaign draws its faults from a seed (so the same seed gives the same faults on any machine),
runs the golden pass, injects the faults in chunks, and summarises the outcomes: masked, SDC
(top-1 changed), critical SDC (a correct prediction became wrong) and DUE (non-finite output or
an exception), as rates with Wilson intervals, per layer and per bit position.

The number of faults is fixed, or comes from Leveugle et al. (2009), "Statistical fault
injection: quantified error and confidence" (DATE), for an error margin and a confidence over
the population of all stored bits of the sites.

Checkpointing: every ``checkpoint_every`` faults (default: every chunk) the ``on_checkpoint``
callback receives a :class:`CampaignState`; the caller persists ``state.to_dict()`` (JSON-plain)
where it likes, and passes ``CampaignState.from_dict(...)`` back as ``state=`` to resume. Or it
passes a :class:`Checkpoint` (``load(fingerprint)`` / ``save(state)``) and the campaign looks
its own state up, saves it as it goes, when it is interrupted, and once more when it is
complete. A state records the campaign's fingerprint (configuration, sites, size, the inputs'
fault-free predictions and logits) and a digest of the model's stored parameters and buffers
and of the inputs and labels, so a state is only ever resumed by the same campaign on the same
weights and data. Forward hooks (a protection) are not part of either: keep the states of
protected and unprotected runs apart. This package writes no files.

>>> import torch
>>> from torch import nn
>>> from trustbench.faults.campaign import CampaignConfig, run_campaign
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
>>> x = torch.randn(32, 4); y = net(x).argmax(1)
>>> res = run_campaign(net, x, y, CampaignConfig(n_faults=50, seed=1))
>>> res.n_faults, res.path
(50, 'fx')
>>> 0.0 <= res.sdc.value <= 1.0
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from trustbench.faults.base import FaultModel, resolve
from trustbench.faults.engine import (
    CRITICAL_SDC,
    DUE,
    MASKED,
    SDC,
    ActivationFaultEngine,
    WeightFaultEngine,
    device_of,
    strict_fp32,
)
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.segments import MAX_LIVE
from trustbench.faults.sites import activation_sites, input_site, weight_sites

TARGETS = ("weights", "activations", "inputs")
DISTRIBUTIONS = ("bit-uniform", "layer-uniform")
#: Seconds between two saves of a campaign's state to its :class:`Checkpoint` (without
#: ``checkpoint_every``; a campaign also saves when it stops and when it is complete).
CHECKPOINT_S = 10.0
#: Concurrent lanes (streams) of CUDA-graph weight faults on a CUDA device.
WEIGHT_LANES = 2
#: Activation faults keep about this many samples in flight on a CUDA device (lanes x batch).
ACTIVATION_SAMPLES_IN_FLIGHT = 1024


#: Faults evaluated together per pass of the later segments (weights), by device type; 1: off.
WEIGHT_FAULT_BATCH = {"cuda": 1, "cpu": 1}


#: Most live values a cut of the weight-fault chain may carry, by device type (see
#: :func:`default_max_live`).
WEIGHT_CUT_VALUES = {"cuda": 1, "cpu": MAX_LIVE}


def default_max_live(device_type: str) -> int:
    """``max_live`` when ``CampaignConfig.max_live`` is None (:data:`WEIGHT_CUT_VALUES`;
    :data:`trustbench.faults.segments.MAX_LIVE` on other devices).

    Measured (benchmarks/bench_faults.py, torchvision resnet18 on 3x32x32, single-bit weight
    flips, decisions equal to the full forward pass): on 2 CPU cores (batch 64, 300 faults)
    cuts inside the residual blocks (21 segments instead of 10) ran bit-uniform campaigns
    1.14-1.22x faster (240-257 vs 210 inj/s, two runs), layer-uniform at about the same speed
    (1.04x); on an H100 (batch 256, 200 faults, CUDA graphs, 2 lanes; one run) bit-uniform ran
    at the same speed (820 vs 840 inj/s) and layer-uniform slower (474 vs 570 inj/s: the
    faults spread over twice as many start segments, too few per start for concurrent lanes),
    so one-value cuts stay the default there.
    """
    return WEIGHT_CUT_VALUES.get(device_type, MAX_LIVE)


def default_fault_batch(device_type: str) -> int:
    """``fault_batch`` when ``CampaignConfig.fault_batch`` is None (:data:`WEIGHT_FAULT_BATCH`;
    1 on other devices): batched faults are opt-in.

    Measured (benchmarks/bench_faults.py, 200 single-bit weight flips, decisions equal to the
    full forward pass in every run): on an H100 (resnet18, batch 256, strict fp32) K = 4, 8, 16
    were no faster than one fault per pass (at best within run-to-run noise, with 2 lanes up to
    2.2x slower; K = 16 puts 4096 inputs through layer4, where cuDNN's fp32 kernels are 5-12x
    slower per input than at 1024); on 2 CPU cores (mnist5k-cnn, batch 1000) K = 2, 4, 8 ran at
    the same speed within noise.
    """
    return WEIGHT_FAULT_BATCH.get(device_type, 1)


def default_lanes(target: str, batch_size: int, device_type: str) -> int:
    """Lanes when ``CampaignConfig.lanes`` is None: 1 off CUDA; weights :data:`WEIGHT_LANES`;
    activations enough batches for :data:`ACTIVATION_SAMPLES_IN_FLIGHT` samples, at most 4.

    Measured on an H100 (resnet18, batch 256, strict fp32): weight faults 1.2x faster with 2 or
    4 lanes than with 1, slower with 8; activation faults 1.2-1.3x faster with 4 lanes of 256
    samples, no faster with more than one lane of 1024.
    """
    if device_type != "cuda":
        return 1
    if target == "weights":
        return WEIGHT_LANES
    return max(1, min(4, ACTIVATION_SAMPLES_IN_FLIGHT // max(1, batch_size)))


@dataclass
class CampaignConfig:
    """What a campaign injects, where, how many, and how it runs.

    Attributes
    ----------
    target
        ``weights``, ``activations`` (module outputs) or ``inputs`` (the tensor the model
        receives, e.g. a corrupted input buffer; one fault per sample like activations).
        Site filters do not apply to ``inputs``.
    fault_model, fault_params
        Registered fault-model name (``bitflip``, ``multibit``, ``burst``, ``stuck_at_0``,
        ``stuck_at_1``, ``random_value``) and its parameters; or a :class:`FaultModel`.
    n_faults
        Fixed number of faults; None: Leveugle's sample size for ``margin``/``confidence``.
    layer_types, pattern
        Site filters (see :func:`.sites.weight_sites` / ``activation_sites``); the default
        pattern is ``weight`` for weights and ``""`` (any module name) for activations.
    distribution
        ``bit-uniform`` (each stored bit equally likely: the physical model) or
        ``layer-uniform`` (each site equally likely, then uniform within it).
    seed
        Seed of the fault plan.
    batch_size
        Inputs per forward pass (weights) or faults per forward pass (activations).
    chunk_size
        Faults between two reads of the outcomes on the host (progress, checkpoints); None:
        256, or for activation faults on a CUDA device 32 batches (at most 65,536 faults, at
        least one batch), so that the host prepares the next batches while the GPU runs.
    strict_fp32
        TF32 off during the campaign (default; see :func:`trustbench.faults.engine.strict_fp32`).
    suffix
        Weight faults re-run only the layers after the fault (False: full forward per fault).
    cuda_graphs
        On a CUDA device, replay the per-fault work (weights: the suffix forward and the
        comparison; activations: the faulty forward pass with its hooks) as CUDA graphs; where a
        capture fails the work runs eagerly (``CampaignResult.execution`` says which ran).
    lanes
        With CUDA graphs, how many faults (weights) or batches (activations) run at once on
        concurrent streams; None: :func:`default_lanes`. Weight faults on concurrent lanes flip
        private copies of the faulted tensors (see :class:`.engine.WeightFaultEngine`).
    fault_batch
        Weight faults: evaluate this many faults that start at the same segment in one pass of
        the later segments (the faulted segment still runs once per fault, on the real weights;
        see :class:`trustbench.faults.engine.WeightFaultEngine`); 1: one fault per pass; None:
        :func:`default_fault_batch`.
    max_live
        Weight faults: most live values a cut of the model's chain may carry (1: cuts only
        between residual blocks; 2 or more: also inside them, e.g. before a block's second
        convolution, caching the branch activation and the block input; see
        :mod:`trustbench.faults.segments`); None: :func:`default_max_live`.
    early_exit
        Weight faults: stop a fault's suffix after the faulted segment when its output equals
        the fault-free one (masked, exactly); costs a host synchronisation per fault, so None
        means on the CPU only (see :class:`trustbench.faults.engine.WeightFaultEngine`).
    input_encoding
        Input faults: ``native`` (bits of the float words the model receives) or ``uint8``
        (bits of the 8-bit pixel buffer a [0, 1] image is decoded from as ``u / 255``; the
        fault-free run then sees the decoded buffer too).
    prune_inert
        Weight faults: decide the faults that hit an inert word (every product it enters
        multiplies a zero on these inputs) and leave it finite as masked without running them
        (exact; see :mod:`trustbench.faults.inert`). False: run every fault.
    progress
        Show a tqdm progress bar.
    checkpoint_every
        Call ``on_checkpoint`` after about this many faults (rounded to chunks).
    """

    target: str = "weights"
    fault_model: str | FaultModel = "bitflip"
    fault_params: dict[str, Any] = field(default_factory=dict)
    n_faults: int | None = None
    margin: float = 0.05
    confidence: float = 0.95
    layer_types: tuple[str, ...] | None = None
    pattern: str | None = None
    distribution: str = "bit-uniform"
    seed: int = 0
    batch_size: int = 1024
    chunk_size: int | None = None
    strict_fp32: bool = True
    suffix: bool = True
    cuda_graphs: bool = True
    lanes: int | None = None
    fault_batch: int | None = None
    max_live: int | None = None
    prune_inert: bool = True
    early_exit: bool | None = None
    input_encoding: str = "native"
    progress: bool = False
    checkpoint_every: int | None = None

    def check(self) -> None:
        """Raise :class:`FaultError` on values that are not accepted."""
        if self.target not in TARGETS:
            raise FaultError(f"unknown campaign target {self.target!r}; accepted: {TARGETS}")
        if self.distribution not in DISTRIBUTIONS:
            raise FaultError(f"unknown fault distribution {self.distribution!r}; accepted: "
                             f"{DISTRIBUTIONS}")
        if self.n_faults is not None and (isinstance(self.n_faults, bool)
                                          or not isinstance(self.n_faults, int)
                                          or self.n_faults < 1):
            raise FaultError(
                f"n_faults must be a positive integer (got {self.n_faults!r}): a campaign of "
                "size 0 estimates nothing. Use None for Leveugle's statistical sample size."
            )
        for name in ("batch_size", "chunk_size"):
            v = getattr(self, name)
            if v is None and name == "chunk_size":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise FaultError(f"{name} must be a positive integer, got {v!r}")
        for name in ("lanes", "fault_batch", "max_live", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise FaultError(f"{name} must be a positive integer or None, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise FaultError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.fault_params, dict):
            raise FaultError(f"fault_params must be a dict of the fault model's parameters "
                             f"(e.g. {{'bit': 30}}), got {self.fault_params!r}")
        if self.input_encoding != "native" and self.target != "inputs":
            raise FaultError(f"input_encoding={self.input_encoding!r} applies to input faults "
                             "only (target='inputs').")


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
    choice; :func:`run_campaign` only calls these two methods)."""

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


@dataclass
class Rate:
    """A proportion ``k / n`` with its Wilson interval."""

    k: int
    n: int
    value: float
    ci: tuple[float, float]

    @classmethod
    def of(cls, k: int, n: int, confidence: float = 0.95) -> Rate:
        """Rate with Wilson interval (``n == 0``: value nan, interval (0, 1))."""
        from trustbench.stats import wilson_interval

        return cls(int(k), int(n), (k / n) if n else float("nan"),
                   tuple(wilson_interval(int(k), int(n), confidence)))


@dataclass
class LayerVulnerability:
    """Outcome rates of the faults that hit one site."""

    layer: str
    layer_type: str
    bits_share: float
    sdc: Rate
    critical_sdc: Rate
    due: Rate
    #: Weight sites: share of the site's words that are inert on the evaluation inputs (every
    #: product they enter multiplies a zero; see :mod:`.inert`); None: not analysed.
    inert_share: float | None = None


@dataclass
class CampaignResult:
    """Outcome of a campaign.

    ``sdc`` counts every fault that changed a top-1 decision (critical ones included);
    ``critical_sdc`` those that made a correct prediction wrong; ``due`` non-finite outputs and
    exceptions. Per-bit statistics are a matrix: rows are sites, columns bit positions.
    ``path`` says how much was recomputed per weight fault (``fx``/``declared`` chain of
    segments, ``full`` forward, ``hooks`` for activations); ``execution`` how it ran
    (``cuda-graphs``, ``eager`` or ``cuda-graphs+eager``), with the reason in
    ``execution_reason``. ``inert_bits_share`` is the share of the analysed weight bits that
    no output can depend on (see :mod:`trustbench.faults.inert`; None when nothing was analysed) and
    ``n_pruned`` how many faults of this run were decided from it without a forward pass
    (``analysed_bits``: the stored bits of the analysed sites).
    """

    target: str
    fault_model: dict[str, Any]
    distribution: str
    dtype: str
    n_faults: int
    n_inputs: int
    counts: dict[str, int]
    sdc: Rate
    critical_sdc: Rate
    due: Rate
    masked: Rate
    mean_inputs_changed: float
    per_layer: list[LayerVulnerability]
    per_bit_rows: list[str]
    per_bit_cols: list[int]
    per_bit_sdc: list[list[float | None]]
    per_bit_n: list[list[int]]
    path: str
    path_reason: str
    strict_fp32: bool
    elapsed_s: float
    faults_per_second: float
    complete: bool
    state: CampaignState
    plan: FaultPlan = field(repr=False)
    outcomes: np.ndarray = field(repr=False)
    confidence: float = 0.95
    execution: str = "eager"
    execution_reason: str = ""
    inert_bits_share: float | None = None
    analysed_bits: int = 0
    n_pruned: int = 0
    #: Faults taken from a saved state instead of measured in this call (0: none).
    resumed_from: int = 0
    #: Interval of ``mean_inputs_changed`` (see :func:`mean_changed_interval`).
    mean_inputs_changed_ci: tuple[float, float] = (float("nan"), float("nan"))

    def per_bit_series(self) -> dict[str, list]:
        """SDC rate per bit position over all sites (x: bit, y: rate, ci: Wilson)."""
        xs, ys, cis = [], [], []
        for b in self.per_bit_cols:
            sel = self.plan.bit[: len(self.outcomes)] == b
            n = int(sel.sum())
            if n == 0:
                continue
            r = Rate.of(int(np.isin(self.outcomes[sel], (SDC, CRITICAL_SDC)).sum()), n,
                        self.confidence)
            xs.append(int(b))
            ys.append(r.value)
            cis.append(list(r.ci))
        return {"x": xs, "y": ys, "ci": cis}


def _fingerprint(cfg: CampaignConfig, fm: FaultModel, site_desc: list, n_inputs: int,
                 n_total: int, golden: torch.Tensor, logits: str) -> str:
    payload = {
        "target": cfg.target, "fault": fm.describe(), "distribution": cfg.distribution,
        "seed": cfg.seed, "sites": site_desc, "n_inputs": n_inputs, "n_total": n_total,
        "strict_fp32": cfg.strict_fp32, "logits": logits,
        "golden": hashlib.sha256(golden.cpu().numpy().astype(np.int64).tobytes()).hexdigest(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def check_eval_mode(model: nn.Module) -> None:
    """Raise :class:`FaultError` if ``model`` or any of its submodules is in training mode."""
    training = [n or "<root>" for n, m in model.named_modules() if m.training]
    if training:
        more = f" (and {len(training) - 5} more)" if len(training) > 5 else ""
        raise FaultError(
            f"modules in training mode: {', '.join(training[:5])}{more}; call model.eval() "
            "before a campaign (dropout would change outputs at random, and batch statistics "
            "would mix the faults of different samples and update the running statistics).")


def check_labels(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`FaultError` unless ``y`` holds one integer class label per input."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise FaultError(f"x and y must be tensors (inputs and integer class labels); got "
                         f"{type(x).__name__} and {type(y).__name__}.")
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise FaultError(f"y must be a 1-D tensor of integer class labels (not one-hot, not "
                         f"floats); got shape {tuple(y.shape)} and dtype {y.dtype}.")
    if len(x) != len(y):
        raise FaultError(f"x has {len(x)} inputs but y has {len(y)} labels")
    if len(y) and int(y.min()) < 0:
        raise FaultError(f"class labels must be >= 0; y holds {int(y.min())}.")


def check_forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Run ``model`` on (a copy of) the first two inputs; raise a clear error unless it returns
    logits of shape ``(batch, classes)`` and every label is a class; returns the class count."""
    from trustbench.errors import ModelError

    probe = x[:2].to(device_of(model), copy=True)
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:
        raise ModelError(
            f"the model fails on the evaluation inputs (shape {tuple(x.shape[1:])} per input, "
            f"dtype {x.dtype}): {type(exc).__name__}: {str(exc).strip()[:300]}. Pass inputs the "
            "model accepts, one per row of x.") from exc
    if not torch.equal(probe, x[:2].to(probe.device)) and not (
            probe.is_floating_point() and probe.isnan().any()):
        raise ModelError(
            "the model changes its input tensor in place (e.g. x.sub_(mean)); a campaign "
            "feeds the same inputs many times, so each pass would see the previous one's "
            "result. Make forward leave its input alone (x = x - mean) or wrap it: "
            "forward(x) = model(x.clone()).")
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(probe):
        got = (f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
               else f"a {type(out).__name__}")
        raise ModelError(
            f"a fault campaign needs a model that returns logits of shape (batch, classes); "
            f"on {len(probe)} inputs this one returns {got}. Wrap it so that forward returns "
            "that tensor (e.g. the 'logits' entry of a dict output).")
    n_classes = int(out.shape[1])
    if len(y) and int(y.max()) >= n_classes:
        raise FaultError(f"class label {int(y.max())} is out of range: the model gives "
                         f"{n_classes} logits per input, so labels must lie in 0..{n_classes - 1}.")
    return n_classes


def run_campaign(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: CampaignConfig | None = None,
    *,
    state: CampaignState | None = None,
    on_checkpoint: Callable[[CampaignState], None] | None = None,
    checkpoint: Checkpoint | None = None,
    stop_after: int | None = None,
    **overrides: Any,
) -> CampaignResult:
    """Run a weight or activation fault campaign on ``model`` over inputs ``x``, labels ``y``.

    Parameters
    ----------
    model
        ``nn.Module`` in eval mode, inputs in, logits out; faults go to its own device.
    x, y
        Evaluation inputs and int labels. Weight faults evaluate every fault on all of them;
        activation faults ride on one input each, cycling through them.
    config
        :class:`CampaignConfig` (fields may also be given as keyword ``overrides``).
    state
        A :class:`CampaignState` from an earlier, interrupted run of the same campaign.
    on_checkpoint
        Receives the state every ``config.checkpoint_every`` faults (None: after every chunk).
    checkpoint
        A :class:`Checkpoint`: the campaign resumes the state it loads for its fingerprint
        (ignored if it was measured on other weights) and saves its state every
        ``config.checkpoint_every`` faults (None: every :data:`CHECKPOINT_S` seconds), when it
        stops early (an exception, ``KeyboardInterrupt``, ``stop_after``) and when it is
        complete.
    stop_after
        Stop after this many faults in total (the result is then ``complete=False``).

    Raises
    ------
    FaultError
        Bad configuration, no matching sites, a state from another campaign.
    IntegrityError
        If a weight was not bit-identical after the campaign (never expected).
    """
    from tqdm.auto import tqdm

    from trustbench.stats import leveugle_sample_size

    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(CampaignConfig)})
    if unknown:
        raise FaultError(f"unknown campaign setting(s) {unknown}; accepted: "
                         f"{', '.join(f.name for f in dataclasses.fields(CampaignConfig))}.")
    cfg = dataclasses.replace(config or CampaignConfig(), **overrides)
    cfg.check()
    if stop_after is not None and (isinstance(stop_after, bool)
                                   or not isinstance(stop_after, int) or stop_after < 1):
        raise FaultError(f"stop_after must be a positive integer or None, got {stop_after!r}")
    fm = resolve(cfg.fault_model, **cfg.fault_params)
    check_eval_mode(model)
    check_labels(x, y)
    if len(x):
        check_forward(model, x, y)

    dev = device_of(model).type
    lanes = cfg.lanes or default_lanes(cfg.target, cfg.batch_size, dev)
    with strict_fp32(cfg.strict_fp32):
        if cfg.target == "weights":
            wsites = weight_sites(model, cfg.layer_types, "weight" if cfg.pattern is None
                                  else cfg.pattern)
            engine: Any = WeightFaultEngine(model, wsites, x, y, batch_size=cfg.batch_size,
                                            suffix=cfg.suffix, cuda_graphs=cfg.cuda_graphs,
                                            lanes=lanes, fault_batch=cfg.fault_batch
                                            or default_fault_batch(dev),
                                            max_live=cfg.max_live
                                            or default_max_live(dev),
                                            prune_inert=cfg.prune_inert,
                                            early_exit=cfg.early_exit)
            names = [s.name for s in wsites]
            types = [s.layer_type for s in wsites]
            numel = [s.numel for s in wsites]
            layouts = [s.layout for s in wsites]
            path, reason = engine.chain.path, engine.chain.reason
            n_inputs = engine.n_inputs
        else:
            if cfg.target == "inputs":
                if cfg.layer_types is not None or cfg.pattern:
                    raise FaultError("layer_types and pattern select weight or activation "
                                     "sites; input faults hit the model's input, leave them "
                                     "unset (or use target='activations').")
                asites = [input_site(model, cfg.input_encoding)]
            else:
                asites = activation_sites(model, cfg.layer_types, cfg.pattern or "")
            engine = ActivationFaultEngine(model, asites, x, y, batch_size=cfg.batch_size,
                                           cuda_graphs=cfg.cuda_graphs, lanes=lanes)
            asites = engine.sites  # without the modules the forward pass never calls
            names = [s.name for s in asites]
            types = [s.layer_type for s in asites]
            numel = [s.per_sample_numel for s in asites]
            layouts = [s.layout for s in asites]
            path, reason = "hooks", (
                "one fault per sample" + (" in the model's input" if cfg.target == "inputs"
                                          else "") + ", full forward per batch"
                + (f"; input bits of an 8-bit pixel buffer (decoding it moved "
                   f"{engine.n_quantised} of {engine.x.numel()} input values)"
                   if cfg.input_encoding == "uint8" else "")
                + (f"; {len(engine.excluded)} selected modules left out: " + "; ".join(
                    f"{k} ({v})" for k, v in list(engine.excluded.items())[:5])
                   if engine.excluded else ""))
            n_inputs = len(engine.golden)
        population = population_bits(numel, layouts) * (
            1 if cfg.target == "weights" else n_inputs)
        n_total = cfg.n_faults if cfg.n_faults is not None else leveugle_sample_size(
            population, cfg.margin, cfg.confidence)
        plan = plan_faults(fm, numel, layouts, n_total, cfg.distribution, cfg.seed,
                           None if cfg.target == "weights" else n_inputs)
        site_desc = [[n, k, lay.name] for n, k, lay in zip(names, numel, layouts)]
        fp = _fingerprint(cfg, fm, site_desc, n_inputs, n_total, engine.golden,
                          engine.golden_digest)
        persist = (state is not None or on_checkpoint is not None or checkpoint is not None
                   or stop_after is not None)
        digest = (model_digest(model) + tensors_digest([("x", x), ("y", y)])
                  if persist else "")
        if state is None and checkpoint is not None:
            loaded = checkpoint.load(fp)
            if (loaded is not None and loaded.fingerprint == fp and loaded.n_total == n_total
                    and loaded.digest == digest):
                state = loaded
        if state is None:
            state = CampaignState(fp, n_total, digest=digest)
        elif state.fingerprint == fp and state.n_total == n_total and state.digest == digest:
            state = CampaignState.from_dict(state.to_dict())  # never mutate the caller's
        else:
            raise FaultError(
                "the campaign state belongs to another campaign (different model weights, "
                "inputs, labels, sites, fault model, seed or size); start without state= or "
                "pass the matching one."
            )
        resumed_from = state.n_done
        before = (engine.words(plan.site, plan.element) if cfg.target == "weights" else None)
        end = n_total if stop_after is None else min(n_total, max(stop_after, state.n_done))
        chunk = cfg.chunk_size or (
            min(32 * cfg.batch_size, max(65536, cfg.batch_size))
            if cfg.target != "weights" and engine.device.type == "cuda" else 256)
        if cfg.checkpoint_every is not None:
            chunk = min(chunk, cfg.checkpoint_every)
        every = cfg.checkpoint_every or 1
        since_ckpt = 0
        saved_at, saved_t = state.n_done, time.perf_counter()

        def save(due: bool) -> None:
            nonlocal saved_at, saved_t
            if checkpoint is not None and (
                    due or time.perf_counter() - saved_t >= CHECKPOINT_S):
                checkpoint.save(state)
                saved_at, saved_t = state.n_done, time.perf_counter()

        t0 = time.perf_counter()
        elapsed_before = state.elapsed_s
        bar = tqdm(total=n_total, initial=state.n_done, disable=not cfg.progress,
                   desc=f"{cfg.target} faults", unit="fault")
        try:
            while state.n_done < end:
                lo, hi = state.n_done, min(end, state.n_done + chunk)
                part = plan.slice(lo, hi)
                if cfg.target == "weights":
                    codes, changed = engine.run(fm, part.site, part.element, part.payload)
                else:
                    codes, changed = engine.run(fm, part.sample, part.site, part.element,
                                                part.payload)
                state.outcomes.extend(int(c) for c in codes)
                state.changed.extend(int(c) for c in changed)
                state.n_done = hi
                state.elapsed_s = elapsed_before + time.perf_counter() - t0
                bar.update(hi - lo)
                since_ckpt += hi - lo
                if since_ckpt >= every or state.n_done == n_total:
                    since_ckpt = 0
                    save(state.n_done == n_total or cfg.checkpoint_every is not None)
                    if on_checkpoint is not None:
                        on_checkpoint(state)
                else:
                    save(False)
        finally:
            bar.close()
            # an interruption between the updates above leaves the lists ahead of n_done
            del state.outcomes[state.n_done:], state.changed[state.n_done:]
            execution = engine.execution
            engine.close()
            if before is not None:
                after = engine.words(plan.site, plan.element)
                if not all(torch.equal(a, b) for a, b in zip(before, after)):
                    raise IntegrityError("weights differ from before the campaign: a fault was "
                                         "not undone. Please report this bug.")
            if state.n_done != saved_at:
                save(True)  # stopped early: keep what was measured
        elapsed = time.perf_counter() - t0
    res = summarise(cfg, fm, plan, state, names, types, numel, layouts, n_inputs, path, reason,
                    elapsed)
    res.execution, res.execution_reason = execution
    res.resumed_from = resumed_from
    inert = getattr(engine, "inert", None)
    if inert is not None:
        shares = [inert.fraction(s) for s in range(len(names))]
        for lv, share in zip(res.per_layer, shares):
            lv.inert_share = share
        bits = [(sh, n * lay.nbits) for sh, n, lay in zip(shares, numel, layouts)
                if sh is not None]
        if bits:
            res.analysed_bits = sum(b for _, b in bits)
            res.inert_bits_share = sum(sh * b for sh, b in bits) / res.analysed_bits
        res.n_pruned = engine.n_pruned
    return res


def mean_changed_interval(fractions: np.ndarray, confidence: float = 0.95
                          ) -> tuple[float, float]:
    """Interval of the mean share of inputs a fault changes, over the faults.

    A percentile bootstrap over the faults (the shares are bounded and very skewed: most faults
    change nothing, so a t interval would be wrong). Where no fault changed any input the
    bootstrap collapses to a point; the bound used then is the Wilson interval of "the fault
    changed at least one input" (0 of n), which bounds the mean share from above. Fewer than two
    faults: ``(nan, nan)``.
    """
    from trustbench.stats import bootstrap_mean_interval, wilson_interval

    if len(fractions) < 2:
        return float("nan"), float("nan")
    if not fractions.any():
        return 0.0, wilson_interval(0, len(fractions), confidence)[1]
    lo, hi = bootstrap_mean_interval(fractions, confidence=confidence)
    return float(lo), float(hi)


def summarise(cfg: CampaignConfig, fm: FaultModel, plan: FaultPlan, state: CampaignState,
              names: list[str], types: list[str], numel: list[int], layouts: list,
              n_inputs: int, path: str, reason: str, elapsed: float) -> CampaignResult:
    """Turn outcome codes into rates, per-layer and per-bit statistics."""
    conf = cfg.confidence
    out = np.asarray(state.outcomes, dtype=np.int8)
    n = len(out)
    site = plan.site[:n]
    bit = plan.bit[:n]
    is_sdc = (out == SDC) | (out == CRITICAL_SDC)
    counts = {"masked": int((out == MASKED).sum()), "sdc": int((out == SDC).sum()),
              "critical_sdc": int((out == CRITICAL_SDC).sum()), "due": int((out == DUE).sum())}
    total_bits = population_bits(numel, layouts)
    per_layer = []
    for s, name in enumerate(names):
        sel = site == s
        k = int(sel.sum())
        per_layer.append(LayerVulnerability(
            name, types[s], numel[s] * layouts[s].nbits / total_bits,
            Rate.of(int(is_sdc[sel].sum()), k, conf),
            Rate.of(int((out[sel] == CRITICAL_SDC).sum()), k, conf),
            Rate.of(int((out[sel] == DUE).sum()), k, conf)))
    nbits = max(lay.nbits for lay in layouts)
    cols = list(range(nbits))
    sdc_m: list[list[float | None]] = []
    n_m: list[list[int]] = []
    for s in range(len(names)):
        row_v: list[float | None] = []
        row_n: list[int] = []
        for b in cols:
            sel = (site == s) & (bit == b)
            k = int(sel.sum())
            row_n.append(k)
            row_v.append(float(is_sdc[sel].mean()) if k else None)
        sdc_m.append(row_v)
        n_m.append(row_n)
    changed = np.asarray(state.changed, dtype=np.float64)
    dtypes = sorted({lay.name for lay in layouts})
    return CampaignResult(
        target=cfg.target, fault_model=fm.describe(), distribution=cfg.distribution,
        dtype="/".join(dtypes), n_faults=n, n_inputs=n_inputs, counts=counts,
        sdc=Rate.of(int(is_sdc.sum()), n, conf),
        critical_sdc=Rate.of(counts["critical_sdc"], n, conf),
        due=Rate.of(counts["due"], n, conf), masked=Rate.of(counts["masked"], n, conf),
        mean_inputs_changed=float(changed.mean() / n_inputs) if n else float("nan"),
        mean_inputs_changed_ci=mean_changed_interval(changed / n_inputs, conf),
        per_layer=per_layer, per_bit_rows=list(names), per_bit_cols=cols, per_bit_sdc=sdc_m,
        per_bit_n=n_m, path=path, path_reason=reason, strict_fp32=cfg.strict_fp32,
        elapsed_s=state.elapsed_s, faults_per_second=(n / state.elapsed_s
                                                      if state.elapsed_s > 0 else float("nan")),
        complete=n == state.n_total, state=state, plan=plan, outcomes=out, confidence=conf)
