"""What a fault campaign injects, where, how many, and how it runs: :class:`CampaignConfig`.

Also the device-dependent defaults of its speed settings (:func:`default_lanes`,
:func:`default_fault_batch`, :func:`default_max_live`, each with the measurements behind it) and
the engine configurations a campaign builds from it
(:meth:`CampaignConfig.weight_engine_config`, :meth:`CampaignConfig.activation_engine_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trustbench.faults.activation_engine import ActivationEngineConfig
from trustbench.faults.base import FaultModel
from trustbench.faults.errors import FaultError
from trustbench.faults.runtime import check_fields
from trustbench.faults.segments import MAX_LIVE
from trustbench.faults.weight_engine import WeightEngineConfig

TARGETS = ("weights", "activations", "inputs")
DISTRIBUTIONS = ("bit-uniform", "layer-uniform")
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
        TF32 off during the campaign (default; see :func:`trustbench.faults.runtime.strict_fp32`).
    suffix
        Weight faults re-run only the layers after the fault (False: full forward per fault).
    cuda_graphs
        On a CUDA device, replay the per-fault work (weights: the suffix forward and the
        comparison; activations: the faulty forward pass with its hooks) as CUDA graphs; where a
        capture fails the work runs eagerly (``CampaignResult.execution`` says which ran).
    lanes
        With CUDA graphs, how many faults (weights) or batches (activations) run at once on
        concurrent streams; None: :func:`default_lanes`. Weight faults on concurrent lanes flip
        private copies of the faulted tensors (see :class:`.weight_engine.WeightEngineConfig`).
    fault_batch
        Weight faults: evaluate this many faults that start at the same segment in one pass of
        the later segments (the faulted segment still runs once per fault, on the real weights;
        see :class:`trustbench.faults.weight_engine.WeightEngineConfig`); 1: one fault per pass;
        None: :func:`default_fault_batch`.
    max_live
        Weight faults: most live values a cut of the model's chain may carry (1: cuts only
        between residual blocks; 2 or more: also inside them, e.g. before a block's second
        convolution, caching the branch activation and the block input; see
        :mod:`trustbench.faults.segments`); None: :func:`default_max_live`.
    early_exit
        Weight faults: stop a fault's suffix after the faulted segment when its output equals
        the fault-free one (masked, exactly); costs a host synchronisation per fault, so None
        means on the CPU only (see :class:`trustbench.faults.weight_engine.WeightEngineConfig`).
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
        Save the campaign's state to its checkpoint (``run_campaign(checkpoint=...)``) after
        about this many faults (rounded to chunks, which it caps); None: every
        :data:`trustbench.faults.campaign.CHECKPOINT_S` seconds.
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

    @classmethod
    def with_overrides(cls, config: CampaignConfig | None, overrides: dict[str, Any]
                       ) -> CampaignConfig:
        """``config`` (or the defaults) with ``overrides`` applied; an unknown setting is a
        :class:`FaultError` naming the accepted ones."""
        accepted = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(accepted))
        if unknown:
            raise FaultError(f"unknown campaign setting(s) {unknown}; accepted: "
                             f"{', '.join(accepted)}.")
        return dataclasses.replace(config or cls(), **overrides)

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
        # checked here, before any fault runs, not when the result is summarised
        for name, lo, hi in (("confidence", 0.0, 1.0), ("margin", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < hi:
                raise FaultError(f"{name} must be a number strictly between {lo:g} and {hi:g} "
                                 f"(e.g. 0.95 confidence, 0.05 margin), got {v!r}")
        check_fields(self, bools=("suffix", "cuda_graphs", "prune_inert", "strict_fp32",
                                  "progress"), optional_bools=("early_exit",))
        if self.input_encoding != "native" and self.target != "inputs":
            raise FaultError(f"input_encoding={self.input_encoding!r} applies to input faults "
                             "only (target='inputs').")

    def weight_engine_config(self, device_type: str) -> WeightEngineConfig:
        """The :class:`WeightEngineConfig` of this campaign on a ``device_type`` device (the
        settings left at None take their device defaults)."""
        return WeightEngineConfig(
            batch_size=self.batch_size, suffix=self.suffix, cuda_graphs=self.cuda_graphs,
            lanes=self.lanes or default_lanes(self.target, self.batch_size, device_type),
            fault_batch=self.fault_batch or default_fault_batch(device_type),
            max_live=self.max_live or default_max_live(device_type),
            prune_inert=self.prune_inert, early_exit=self.early_exit)

    def activation_engine_config(self, device_type: str) -> ActivationEngineConfig:
        """The :class:`ActivationEngineConfig` of this campaign (activation or input faults) on
        a ``device_type`` device."""
        return ActivationEngineConfig(
            batch_size=self.batch_size, cuda_graphs=self.cuda_graphs,
            lanes=self.lanes or default_lanes(self.target, self.batch_size, device_type))

    def chunk_for(self, device_type: str) -> int:
        """Faults between two reads of the outcomes on the host (see ``chunk_size``), capped
        by ``checkpoint_every``."""
        chunk = self.chunk_size or (
            min(32 * self.batch_size, max(65536, self.batch_size))
            if self.target != "weights" and device_type == "cuda" else 256)
        if self.checkpoint_every is not None:
            chunk = min(chunk, self.checkpoint_every)
        return chunk
