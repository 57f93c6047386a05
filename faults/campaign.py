"""Fault-injection campaigns: :func:`run_campaign`, in named steps, and the checks of its input.

A campaign draws its faults from a seed (so the same seed gives the same faults on any machine),
runs the golden pass, injects the faults in chunks, and summarises the outcomes: masked, SDC
(top-1 changed), critical SDC (a correct prediction became wrong) and DUE (non-finite output or
an exception), as rates with Wilson intervals, per layer and per bit position.

The number of faults is fixed, or comes from Leveugle et al. (2009), "Statistical fault
injection: quantified error and confidence" (DATE), for an error margin and a confidence over
the population of all stored bits of the sites.

A campaign resumes one way: through a :class:`Checkpoint` (``load(fingerprint)`` /
``save(state)``). It looks its own state up, saves it as it goes (every ``checkpoint_every``
faults, or every :data:`CHECKPOINT_S` seconds), when it is interrupted, and once more when it is
complete. This package writes no files.

The pieces live in modules by concern, and their public names are importable from here too:

* :mod:`.campaign_config`: :class:`CampaignConfig` and the device defaults of its settings;
* :mod:`.campaign_plan`: :class:`FaultPlan`, :func:`plan_faults`, :func:`population_bits`;
* :mod:`.campaign_state`: :class:`CampaignState`, :class:`Checkpoint` and the digests;
* :mod:`.campaign_results`: :class:`CampaignResult`, :class:`LayerVulnerability`,
  :func:`summarise`, :func:`mean_changed_interval`.

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

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trustbench.errors import ModelError
from trustbench.faults.activation_engine import ActivationFaultEngine
from trustbench.faults.base import FaultModel, resolve
from trustbench.faults.campaign_config import (
    ACTIVATION_SAMPLES_IN_FLIGHT,
    DISTRIBUTIONS,
    TARGETS,
    WEIGHT_CUT_VALUES,
    WEIGHT_FAULT_BATCH,
    WEIGHT_LANES,
    CampaignConfig,
    default_fault_batch,
    default_lanes,
    default_max_live,
)
from trustbench.faults.campaign_plan import CampaignSites, FaultPlan, plan_faults, population_bits
from trustbench.faults.campaign_results import (
    CampaignResult,
    LayerVulnerability,
    mean_changed_interval,
    summarise,
    wilson_rate,
)
from trustbench.faults.campaign_state import (
    CampaignState,
    Checkpoint,
    campaign_fingerprint,
    model_digest,
    tensors_digest,
)
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.runtime import device_of, strict_fp32
from trustbench.faults.sites import activation_sites, input_site, weight_sites
from trustbench.faults.weight_engine import WeightFaultEngine

__all__ = [
    "ACTIVATION_SAMPLES_IN_FLIGHT",
    "CHECKPOINT_S",
    "DISTRIBUTIONS",
    "TARGETS",
    "WEIGHT_CUT_VALUES",
    "WEIGHT_FAULT_BATCH",
    "WEIGHT_LANES",
    "CampaignConfig",
    "CampaignResult",
    "CampaignSites",
    "CampaignState",
    "Checkpoint",
    "FaultPlan",
    "LayerVulnerability",
    "campaign_fingerprint",
    "check_eval_mode",
    "check_forward",
    "check_labels",
    "default_fault_batch",
    "default_lanes",
    "default_max_live",
    "mean_changed_interval",
    "model_digest",
    "plan_faults",
    "population_bits",
    "run_campaign",
    "summarise",
    "tensors_digest",
    "wilson_rate",
]

#: Seconds between two saves of a campaign's state to its :class:`Checkpoint` (without
#: ``checkpoint_every``; a campaign also saves when it stops and when it is complete).
CHECKPOINT_S = 10.0


def run_campaign(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: CampaignConfig | None = None,
    *,
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
    checkpoint
        A :class:`Checkpoint`: the campaign resumes the state it loads for its fingerprint
        (ignored if it was measured on other weights, inputs or labels) and saves its state
        every ``config.checkpoint_every`` faults (None: every :data:`CHECKPOINT_S` seconds),
        when it stops early (an exception, ``KeyboardInterrupt``, ``stop_after``) and when it
        is complete.
    stop_after
        Stop after this many faults in total (the result is then ``complete=False``).

    Raises
    ------
    FaultError
        Bad configuration, no matching sites.
    IntegrityError
        If a weight was not bit-identical after the campaign (never expected).
    """
    cfg = _settings(config, overrides, stop_after)
    fm = resolve(cfg.fault_model, **cfg.fault_params)
    check_eval_mode(model)
    check_labels(x, y)
    _check_checkpoint(checkpoint)
    if len(x):
        check_forward(model, x, y)
    device_type = device_of(model).type
    with strict_fp32(cfg.strict_fp32):
        target = (_weight_target(model, x, y, cfg, device_type) if cfg.target == "weights"
                  else _one_per_sample_target(model, x, y, cfg, device_type))
        n_total = _campaign_size(cfg, target)
        plan = plan_faults(fm, target.sites.numel, target.sites.layouts, n_total,
                           cfg.distribution, cfg.seed,
                           None if cfg.target == "weights" else target.n_inputs)
        fp = campaign_fingerprint(cfg, fm, target.sites.describe(), target.n_inputs, n_total,
                                  target.engine.golden, target.engine.golden_digest)
        # the digest ties a state to these weights and data; only a state kept for later needs it
        persist = checkpoint is not None or stop_after is not None
        digest = (model_digest(model) + tensors_digest([("x", x), ("y", y)])
                  if persist else "")
        state = _start_state(checkpoint, fp, n_total, digest)
        resumed_from = state.n_done
        end = n_total if stop_after is None else min(n_total, max(stop_after, state.n_done))
        execution = _inject(target.engine, fm, plan, state, end, cfg, device_type,
                            _Saver(checkpoint, state))
    res = summarise(cfg, fm, plan, state, target.sites, target.n_inputs, target.path,
                    target.reason)
    res.execution, res.execution_reason = execution
    res.resumed_from = resumed_from
    _add_inert_analysis(res, target)
    return res


@dataclass
class _Target:
    """A campaign's engine and what it injects into."""

    engine: WeightFaultEngine | ActivationFaultEngine
    sites: CampaignSites
    n_inputs: int
    #: How much is recomputed per fault (``fx``/``declared``/``full``; ``hooks``), and why.
    path: str
    reason: str


def _settings(config: CampaignConfig | None, overrides: dict[str, Any],
              stop_after: int | None) -> CampaignConfig:
    """The checked configuration: ``config`` (or the defaults) with ``overrides`` applied."""
    if config is not None and not isinstance(config, CampaignConfig):
        raise FaultError(f"run_campaign's config must be a CampaignConfig (what to inject and "
                         f"how many; the engines' settings are among its fields), got "
                         f"{type(config).__name__}")
    if {"state", "on_checkpoint"} & set(overrides):
        raise FaultError("run_campaign resumes through checkpoint= only: pass an object with "
                         "load(fingerprint) and save(state) (e.g. trustbench.checkpoints."
                         "JsonCheckpoints().progress(name, CampaignState.from_dict)); state= "
                         "and on_checkpoint= are no longer accepted.")
    cfg = CampaignConfig.with_overrides(config, overrides)
    cfg.check()
    if stop_after is not None and (isinstance(stop_after, bool)
                                   or not isinstance(stop_after, int) or stop_after < 1):
        raise FaultError(f"stop_after must be a positive integer or None, got {stop_after!r}")
    return cfg


def _weight_target(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: CampaignConfig,
                   device_type: str) -> _Target:
    """The weight sites the configuration selects, and the engine over them (golden run)."""
    wsites = weight_sites(model, cfg.layer_types, "weight" if cfg.pattern is None
                          else cfg.pattern)
    engine = WeightFaultEngine(model, wsites, x, y, cfg.weight_engine_config(device_type))
    sites = CampaignSites([s.name for s in wsites], [s.layer_type for s in wsites],
                          [s.numel for s in wsites], [s.layout for s in wsites])
    return _Target(engine, sites, engine.n_inputs, engine.chain.path, engine.chain.reason)


def _one_per_sample_target(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                           cfg: CampaignConfig, device_type: str) -> _Target:
    """Activation or input sites, and the engine over them (golden run, probe of the sites)."""
    if cfg.target == "inputs":
        if cfg.layer_types is not None or cfg.pattern:
            raise FaultError("layer_types and pattern select weight or activation "
                             "sites; input faults hit the model's input, leave them "
                             "unset (or use target='activations').")
        asites = [input_site(model, cfg.input_encoding)]
    else:
        asites = activation_sites(model, cfg.layer_types, cfg.pattern or "")
    engine = ActivationFaultEngine(model, asites, x, y, cfg.activation_engine_config(device_type))
    asites = engine.sites  # without the modules the forward pass never calls
    sites = CampaignSites([s.name for s in asites], [s.layer_type for s in asites],
                          [s.per_sample_numel for s in asites], [s.layout for s in asites])
    reason = (
        "one fault per sample" + (" in the model's input" if cfg.target == "inputs"
                                  else "") + ", full forward per batch"
        + (f"; input bits of an 8-bit pixel buffer (decoding it moved "
           f"{engine.n_quantised} of {engine.x.numel()} input values)"
           if cfg.input_encoding == "uint8" else "")
        + (f"; {len(engine.excluded)} selected modules left out: " + "; ".join(
            f"{k} ({v})" for k, v in list(engine.excluded.items())[:5])
           if engine.excluded else ""))
    return _Target(engine, sites, len(engine.golden), "hooks", reason)


def _campaign_size(cfg: CampaignConfig, target: _Target) -> int:
    """``n_faults``, or Leveugle's sample size over the fault population (every stored bit of
    the weight sites; of every sample's activations for one-per-sample faults)."""
    from trustbench.stats import leveugle_sample_size

    if cfg.n_faults is not None:
        return cfg.n_faults
    population = target.sites.bits * (1 if cfg.target == "weights" else target.n_inputs)
    return leveugle_sample_size(population, cfg.margin, cfg.confidence)


def _check_checkpoint(checkpoint: Any) -> None:
    """Refuse, before any fault runs, an object that is not a :class:`Checkpoint`."""
    if checkpoint is None:
        return
    import inspect

    problems = []
    for method in ("load", "save"):
        fn = getattr(checkpoint, method, None)
        if not callable(fn):
            problems.append(f"it has no {method}() method")
            continue
        try:
            inspect.signature(fn).bind(None)
        except TypeError:
            problems.append(f"its {method}() does not take exactly one argument")
        except ValueError:  # no signature to read (a builtin): trust it
            pass
    if problems:
        raise FaultError(
            f"checkpoint= must be a Checkpoint, an object with load(fingerprint) -> "
            f"CampaignState | None and save(state); {type(checkpoint).__name__}: "
            f"{'; '.join(problems)}. A JsonCheckpoints store hands one out per campaign: "
            "JsonCheckpoints().progress(name, CampaignState.from_dict).")


def _start_state(checkpoint: Checkpoint | None, fingerprint: str, n_total: int,
                 digest: str) -> CampaignState:
    """The state the checkpoint kept for this campaign on these weights and data (a copy), or
    a fresh one."""
    loaded = None if checkpoint is None else checkpoint.load(fingerprint)
    if loaded is not None and not isinstance(loaded, CampaignState):
        raise FaultError(f"checkpoint.load() returned a {type(loaded).__name__}, not a "
                         "CampaignState (or None); convert with CampaignState.from_dict")
    if (loaded is not None and loaded.fingerprint == fingerprint and loaded.n_total == n_total
            and loaded.digest == digest):
        return CampaignState.from_dict(loaded.to_dict())  # never mutate the checkpoint's
    return CampaignState(fingerprint, n_total, digest=digest)


class _Saver:
    """Saves a campaign's state to its checkpoint when due, and every :data:`CHECKPOINT_S`
    seconds in between (nothing without a checkpoint)."""

    def __init__(self, checkpoint: Checkpoint | None, state: CampaignState) -> None:
        self.checkpoint = checkpoint
        self.state = state
        self.saved_at, self.saved_t = state.n_done, time.perf_counter()

    def __call__(self, due: bool) -> None:
        if self.checkpoint is not None and (
                due or time.perf_counter() - self.saved_t >= CHECKPOINT_S):
            self.checkpoint.save(self.state)
            self.saved_at, self.saved_t = self.state.n_done, time.perf_counter()


def _inject(engine: WeightFaultEngine | ActivationFaultEngine, fm: FaultModel, plan: FaultPlan,
            state: CampaignState, end: int, cfg: CampaignConfig, device_type: str,
            save: _Saver) -> tuple[str, str]:
    """Inject the plan's faults ``state.n_done:end`` chunk by chunk into ``state``; returns the
    engine's ``execution``.

    Whatever stops it, the engine is closed, the weights are checked to be bit-identical to
    before, and a state that moved since its last save is saved.
    """
    from tqdm.auto import tqdm

    weights = cfg.target == "weights"
    before = engine.words(plan.site, plan.element) if weights else None
    chunk = cfg.chunk_for(device_type)
    since_save = 0
    t0 = time.perf_counter()
    elapsed_before = state.elapsed_s
    bar = tqdm(total=state.n_total, initial=state.n_done, disable=not cfg.progress,
               desc=f"{cfg.target} faults", unit="fault")
    try:
        while state.n_done < end:
            lo, hi = state.n_done, min(end, state.n_done + chunk)
            part = plan.slice(lo, hi)
            if weights:
                codes, changed = engine.run(fm, part.site, part.element, part.payload)
            else:
                codes, changed = engine.run(fm, part.sample, part.site, part.element,
                                            part.payload)
            state.outcomes.extend(int(c) for c in codes)
            state.changed.extend(int(c) for c in changed)
            state.n_done = hi
            state.elapsed_s = elapsed_before + time.perf_counter() - t0
            bar.update(hi - lo)
            since_save += hi - lo
            periodic = cfg.checkpoint_every is not None and since_save >= cfg.checkpoint_every
            if periodic:
                since_save = 0
            save(periodic or state.n_done == state.n_total)
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
        if state.n_done != save.saved_at:
            save(True)  # stopped early: keep what was measured
    return execution


def _add_inert_analysis(res: CampaignResult, target: _Target) -> None:
    """The inert-word shares of the weight sites (per layer and over the analysed bits) and
    the faults decided from them without a forward pass."""
    inert = getattr(target.engine, "inert", None)
    if inert is None:
        return
    sites = target.sites
    shares = [inert.fraction(s) for s in range(len(sites))]
    for lv, share in zip(res.per_layer, shares):
        lv.inert_share = share
    bits = [(sh, n * lay.nbits) for sh, n, lay in zip(shares, sites.numel, sites.layouts)
            if sh is not None]
    if bits:
        res.analysed_bits = sum(b for _, b in bits)
        res.inert_bits_share = sum(sh * b for sh, b in bits) / res.analysed_bits
    res.n_pruned = target.engine.n_pruned


# ---- checks of the model and data, before anything runs ----


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
