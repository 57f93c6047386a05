"""The injection engines: weight faults with suffix recomputation, activation faults per sample.

Both work in place on the tensors' own device and never synchronise with the host per fault:
outcomes accumulate in device buffers that are read once per chunk of faults.

* :class:`WeightFaultEngine` XORs a mask into one stored word, re-runs only the segments of the
  model's chain (:mod:`.segments`) from the first one that reads the faulted tensor, on the
  activations cached by the golden run, and XORs the same mask back, in a ``finally`` block.
  Each (start segment, input batch) is one *step*: the suffix forward pass, the comparison with
  the fault-free top-1 and the accumulation of the fault's outcome flags into a device ring
  buffer at a device-side cursor. Every buffer a step touches stays put in memory, so on a CUDA
  device a step is captured once in a CUDA graph and then replayed, one launch per fault
  instead of one per kernel; the XOR on the weight storage happens between replays, and the
  replay reads the flipped word from the same memory.
  With ``fault_batch=K`` the faults that start at the same segment are evaluated ``K`` at a
  time: the faulted segment once per fault, the later segments once on the ``K`` outputs
  concatenated along the batch (see :class:`WeightFaultEngine`).
* :class:`ActivationFaultEngine` registers forward hooks that XOR a mask into one word of one
  sample's output per fault, a *different* fault in every sample of the batch, so one forward
  pass tests as many faults as the batch holds. The hooks read static per-sample buffers
  (which input, which word of each site, which payload), so on a CUDA device the whole faulty
  forward pass, hooks and classification included, is one CUDA graph replayed per batch.

Where capture is not possible (CPU, CUDA graphs turned off, a model that synchronises with the
host or raises in its forward pass) the same steps run eagerly; ``execution`` says which was used
for how many faults, and why.

Outcome codes: ``0`` masked, ``1`` SDC (top-1 changed on some input, no correct prediction lost),
``2`` critical SDC (a correctly classified input became wrong), ``3`` DUE (a non-finite output or
an exception).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from trustbench.faults.base import FaultModel
from trustbench.faults.bits import int_view, layout_for, to_native
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.inert import InertWeights, find_inert, inert_faults
from trustbench.faults.segments import MAX_LIVE, Chain, linearise, value_equal, value_len, value_map
from trustbench.faults.sites import ActivationSite, WeightSite

from trustbench.errors import ModelError

MASKED, SDC, CRITICAL_SDC, DUE = 0, 1, 2, 3
OUTCOME_NAMES = ("masked", "sdc", "critical_sdc", "due")


#: Objects whose ``fp32_precision`` says how float32 convolutions/matmuls run (torch >= 2.9).
_PRECISION_OWNERS = ("backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv",
                     "backends.cudnn.rnn")


def _precision_objects() -> list[Any]:
    found = []
    for path in _PRECISION_OWNERS:
        obj: Any = torch
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and isinstance(getattr(obj, "fp32_precision", None), str):
            found.append(obj)
    return found


@contextlib.contextmanager
def strict_fp32(enabled: bool = True) -> Iterator[None]:
    """Turn TF32 off for matmuls and cuDNN convolutions (and restore the settings after).

    TF32 rounds fp32 operands to 10 mantissa bits, which flips borderline top-1 decisions between
    otherwise identical runs; fault outcomes must be reproducible, so campaigns default to this.
    Works with the legacy flags (``allow_tf32``) and, where torch has it, the ``fp32_precision``
    API (torch refuses to report a matmul precision when the two were mixed, so it is never
    asked for one here).
    """
    if not enabled:
        yield
        return
    objects = _precision_objects()
    saved = [(obj, obj.fp32_precision) for obj in objects]
    try:
        matmul_precision: str | None = torch.get_float32_matmul_precision()
    except RuntimeError:  # legacy and new settings were mixed by the caller
        matmul_precision = None
    legacy: list[tuple[Any, bool]] = []
    owners: tuple[Any, ...] = (torch.backends.cuda.matmul, torch.backends.cudnn)
    for owner in owners:
        with contextlib.suppress(RuntimeError):  # unreadable when the caller mixed the APIs
            legacy.append((owner, owner.allow_tf32))
        owner.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    for obj in objects[1:]:  # the specific settings; the global default stays as it is
        obj.fp32_precision = "ieee"
    try:
        yield
    finally:
        for owner, flag in legacy:
            owner.allow_tf32 = flag
        if matmul_precision is not None:
            torch.set_float32_matmul_precision(matmul_precision)
        for obj, value in saved:
            obj.fp32_precision = value


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU if it has none)."""
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


def _fatal(exc: BaseException) -> bool:
    """Whether an exception in a faulty forward pass is the machine's (out of memory), not
    the fault's: those end the campaign instead of being booked as a DUE."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError))


def logits_digest(batches: Sequence[torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of logits batches, on the host."""
    import hashlib

    h = hashlib.sha256()
    for b in batches:
        h.update(b.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _aliases(out: torch.Tensor, args: tuple, kwargs: dict) -> bool:
    """Whether ``out`` shares storage with a tensor among a module's inputs (positional or
    keyword, also inside lists, tuples and dicts)."""
    ptr = out.untyped_storage().data_ptr()
    stack: list[Any] = [*args, *kwargs.values()]
    while stack:
        a = stack.pop()
        if isinstance(a, torch.Tensor):
            if a.untyped_storage().data_ptr() == ptr:
                return True
        elif isinstance(a, (list, tuple)):
            stack.extend(a)
        elif isinstance(a, dict):
            stack.extend(a.values())
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


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


class GraphCache:
    """CUDA graphs of an engine's steps, captured on demand, with an eager fallback.

    A *step* is a callable that reads and writes only tensors that stay put in memory (static
    buffers). On a CUDA device, :meth:`capture` runs it once on a side stream (warm-up, so lazy
    initialisation happens outside the capture; once per lane), then captures it; :meth:`get`
    then returns the graph's ``replay``. A failed capture (a step that synchronises with the
    host, raises, or uses an operation graphs do not support) is remembered with its reason and
    the step runs eagerly. On other devices, or with ``enabled=False``, nothing is captured.

    Graphs belong to a *lane* (``None``: the main stream; ``0, 1, ...``: side streams whose
    graphs run concurrently). The graphs of one lane share one memory pool, since they are
    replayed one at a time on the lane's stream; lanes never share a pool. Whatever a step must
    keep it writes into buffers allocated outside the graphs.
    """

    def __init__(self, device: torch.device | str, enabled: bool = True) -> None:
        self.device = torch.device(device)
        cuda = self.device.type == "cuda" and torch.cuda.is_available()
        self.enabled = bool(enabled) and cuda
        if self.enabled:
            self.reason = ""
        elif cuda:
            self.reason = "CUDA graphs turned off (cuda_graphs=False)"
        else:
            self.reason = f"no CUDA graphs on a {self.device.type} device"
        self.graphs: dict[Hashable, Any] = {}
        self.failed: dict[Hashable, str] = {}
        self._capture_stream: Any = None
        self._pools: dict[int | None, Any] = {}
        self._streams: dict[int, Any] = {}

    def stream(self, lane: int) -> contextlib.AbstractContextManager[Any]:
        """Context in which work is queued on ``lane``'s stream (no-op off CUDA)."""
        if self.device.type != "cuda" or not torch.cuda.is_available():
            return contextlib.nullcontext()
        if lane not in self._streams:
            self._streams[lane] = torch.cuda.Stream(device=self.device)
        return torch.cuda.stream(self._streams[lane])

    def fork(self, lanes: Sequence[int]) -> None:
        """Make ``lanes`` wait for the work queued so far on the main stream."""
        if self.device.type == "cuda" and torch.cuda.is_available():
            main = torch.cuda.current_stream(self.device)
            for lane in lanes:
                with self.stream(lane):
                    self._streams[lane].wait_stream(main)

    def join(self, lanes: Sequence[int]) -> None:
        """Make the main stream wait for the work queued on ``lanes``."""
        if self.device.type == "cuda" and torch.cuda.is_available():
            main = torch.cuda.current_stream(self.device)
            for lane in lanes:
                if lane in self._streams:
                    main.wait_stream(self._streams[lane])

    def capture(self, key: Hashable, step: Callable[[], None], lane: int | None = None) -> bool:
        """Capture ``step`` under ``key`` (once); True if a graph exists for ``key`` after."""
        if key in self.graphs:
            return True
        if not self.enabled or key in self.failed:
            return False
        warm = lane not in self._pools
        try:
            graph = self._capture(step, lane, warm)
        except Exception as exc:
            if warm:
                self.failed[key] = _short(exc)
                return False
            try:  # perhaps it needed a warm-up of its own
                graph = self._capture(step, lane, True)
            except Exception as exc2:
                self.failed[key] = _short(exc2)
                return False
        self.graphs[key] = graph
        return True

    def _capture(self, step: Callable[[], None], lane: int | None, warm: bool) -> Any:
        with torch.cuda.device(self.device):
            main = torch.cuda.current_stream()
            if lane is None:  # main-stream graphs: a capture stream of their own
                if self._capture_stream is None:
                    self._capture_stream = torch.cuda.Stream()
                side = self._capture_stream
            else:  # a lane's own stream, so that per-stream library workspaces (cuBLAS)
                with self.stream(lane):  # baked into its graphs are not shared across lanes
                    side = torch.cuda.current_stream()
            if lane not in self._pools:
                self._pools[lane] = torch.cuda.graph_pool_handle()
            side.wait_stream(main)
            try:
                with torch.cuda.stream(side):
                    if warm:
                        step()
                    graph = torch.cuda.CUDAGraph()
                    graph.capture_begin(pool=self._pools[lane], capture_error_mode="thread_local")
                    try:
                        step()
                    except BaseException:
                        with contextlib.suppress(Exception):
                            graph.capture_end()
                        raise
                    graph.capture_end()
            finally:
                main.wait_stream(side)
        return graph

    def get(self, key: Hashable) -> Callable[[], None] | None:
        """The replay of ``key``'s graph, or None if it has none."""
        graph = self.graphs.get(key)
        return None if graph is None else graph.replay

    def close(self) -> None:
        """Drop the graphs (frees their memory pools once nothing else holds them)."""
        self.graphs.clear()
        self._pools.clear()
        self._streams.clear()
        self._capture_stream = None


def _execution(n_graph: int, n_eager: int, graphs: GraphCache, detail: str) -> tuple[str, str]:
    if n_graph and n_eager:
        mode = "cuda-graphs+eager"
    elif n_graph:
        mode = "cuda-graphs"
    else:
        mode = "eager"
    parts = [f"{n_graph} of {n_graph + n_eager} faults ran in CUDA graphs"] if n_graph else []
    if not graphs.enabled:
        parts.append(graphs.reason)
    if detail:
        parts.append(detail)
    if graphs.failed:
        failed = "; ".join(f"{k}: {v}" for k, v in list(graphs.failed.items())[:3])
        parts.append(f"capture failed, ran eagerly ({failed})")
    return mode, "; ".join(parts)


class WeightFaultEngine:
    """Weight faults: golden run with cached segment inputs, then suffix re-runs per fault.

    Parameters
    ----------
    model
        ``nn.Module`` in eval mode (inputs in, logits out).
    sites
        Weight sites (their tensors are flipped in place).
    x, y
        Evaluation inputs and labels (any device; moved to the model's device).
    batch_size
        Inputs per forward pass (the activations of all batches stay cached).
    suffix
        Re-run only the segments after the fault (False: a full forward per fault).
    cuda_graphs
        On a CUDA device, replay each (start segment, batch) step as a CUDA graph.
    min_graph_faults
        Capture a start segment's steps once this many faults (so far) start there; rarer
        starts run eagerly (a capture costs about two eager runs).
    lanes
        With CUDA graphs, run up to this many faults at once, on as many streams: small
        suffixes (the last layers at batch 256) leave most of a large GPU idle. Each lane owns
        private copies of the tensors its faults hit, captured into its graphs in place of the
        model's; faults are flipped in those copies, so concurrent faults never see each other
        and the model's own tensors are not touched. The kernels (and so every rounding) are
        those of the model's own forward pass.
    lane_min_faults
        A start segment gets one lane per this many faults (up to ``lanes``); fewer than two
        lanes' worth run on the main stream.
    fault_batch
        Batched faults: ``K > 1`` evaluates ``K`` faults that start at the same segment in one
        pass of the *later* segments. The faulted segment still runs once per fault, at the
        campaign's batch size, on the real weights with that one fault flipped in place (one
        fault at a time: flip, run, flip back); its ``K`` outputs are concatenated along the
        batch and the segments after it (whose weights are the same for all ``K`` faults) run
        once on ``K`` times the batch; the outcome flags are split back per fault. Assumes
        that each input's output depends on that input alone (eval mode). Not used for the
        last segment, for segments whose tensors a later segment reads again (shared
        weights), for starts with fewer than ``K`` faults in a chunk (the remainder runs one
        fault at a time) or where a capture fails. Kernels of the later segments then run at
        a larger batch, where a library may choose another algorithm (other roundings); capped
        at :attr:`MAX_GROUP_SAMPLES` inputs per pass.
    max_live
        Most live values a cut of the chain may carry (:func:`.segments.linearise`): 1
        cuts only where one value is alive (between residual blocks); more also cuts inside a
        block (a fault in its second convolution re-runs that convolution onward, from the
        cached branch activation and block input), at the cost of a larger golden-run cache.
    early_exit
        Stop a fault's suffix after the faulted segment when that segment's output equals the
        fault-free one (then nothing after it can differ: masked, exactly), for starts whose
        tensors no later segment reads. Needs a host synchronisation per fault and batch, so
        None (default) means on the CPU only; never with CUDA graphs.
    prune_inert
        Decide without running the faults that hit an *inert* word (one that every product it
        enters multiplies by zero on these inputs, e.g. a kernel tap that only covers padding)
        and leave it finite: they are masked, exactly (:mod:`.inert`, which also checks
        that each layer's kernel forms its products one by one). ``n_pruned`` counts them.
    """

    #: Faults whose outcome flags a device ring buffer holds between two reads.
    RING = 1024
    #: At most this many inputs in one pass of the later segments (``fault_batch`` x batch).
    MAX_GROUP_SAMPLES = 8192

    def __init__(self, model: nn.Module, sites: Sequence[WeightSite], x: torch.Tensor,
                 y: torch.Tensor, *, batch_size: int = 1024, suffix: bool = True,
                 cuda_graphs: bool = True, min_graph_faults: int = 4, lanes: int = 1,
                 lane_min_faults: int = 8, fault_batch: int = 1,
                 max_live: int = MAX_LIVE, prune_inert: bool = True,
                 early_exit: bool | None = None) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        self.model = model
        self.sites = list(sites)
        self.device = device_of(model)
        xs = x.to(self.device).split(batch_size)
        ys = y.to(self.device).split(batch_size)
        with torch.no_grad():
            self.chain: Chain = linearise(model, [s.tensor for s in self.sites], xs[0],
                                          enabled=suffix, batches=len(xs), max_live=max_live)
            # per batch, the values at every cut (a tensor, or a tuple where several are alive)
            self.cache: list[list[Any]] = []
            golden, logits = [], []
            for xb in xs:
                checked = self.chain.checked
                if checked is not None and checked[0] is xb:  # traced while checking the chain
                    inputs, out = checked[1], checked[2]
                else:
                    inputs, out = self.chain.trace(xb)
                if not torch.isfinite(out).all():
                    raise ModelError("the fault-free model gives non-finite outputs on the "
                                     "evaluation inputs; fault outcomes would be meaningless.")
                self.cache.append(inputs)
                golden.append(out.argmax(dim=1))
                logits.append(out.detach().to(torch.float16))
            self.inert: InertWeights | None = None
            self.inert_error = ""
            if prune_inert:
                try:
                    self.inert = find_inert(model, self.sites, xs)
                except Exception as exc:  # an exotic model: run every fault instead
                    self.inert_error = _short(exc)
        self.n_pruned = 0
        self.chain.checked = None
        self.golden = torch.cat(golden)
        #: Digest of the fault-free logits (rounded to float16): part of a campaign's
        #: fingerprint, so a changed forward pass with the same predictions is told apart.
        self.golden_digest = logits_digest(logits)
        self.correct = self.golden == torch.cat(ys)
        self.offsets = np.cumsum([0] + [len(b) for b in xs]).tolist()
        self._golden_b = [self.golden[a:b] for a, b in zip(self.offsets, self.offsets[1:])]
        self._correct_b = [self.correct[a:b] for a, b in zip(self.offsets, self.offsets[1:])]
        self.start = [self.chain.start_of(s.tensor) for s in self.sites]
        self.flat = [int_view(s.tensor) for s in self.sites]
        self._sites_of: dict[int, list[int]] = {}
        for i, st in enumerate(self.start):
            self._sites_of.setdefault(st, []).append(i)
        self.graphs = GraphCache(self.device, cuda_graphs)
        self.min_graph_faults = max(1, int(min_graph_faults))
        self.lanes = max(1, int(lanes))
        self.lane_min_faults = max(1, int(lane_min_faults))
        exit_on = ((self.device.type == "cpu" if early_exit is None else bool(early_exit))
                   and not self.graphs.enabled)  # a host sync cannot be captured
        self._exit_ok = {st: exit_on and self._groupable(st) for st in self._sites_of}
        self.n_exited = 0  # (fault, batch) suffixes stopped after the faulted segment
        # ring buffer and cursor of each lane (None: the main stream)
        self._rings: dict[int | None, tuple[torch.Tensor, torch.Tensor]] = {None: self._new_ring()}
        self._priv: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._seen = np.zeros(len(self.chain.segments), dtype=np.int64)
        self._tried: set[int] = set()
        # per start segment: main-stream runners (and whether all are graphs), or lane runners
        self._main: dict[int, tuple[list[Callable[[], None]], bool]] = {}
        self._laned: dict[int, list[list[Callable[[], None]]]] = {}
        self.n_graph = 0
        self.n_eager = 0
        self.n_laned = 0
        # batched faults: K faults of one start segment share one pass of the later segments
        longest = max(len(xb) for xb in xs)
        self.fault_batch = max(1, min(int(fault_batch), self.MAX_GROUP_SAMPLES // longest))
        self._gtried: set[int] = set()
        self._grouped: dict[int, list[int | None]] = {}  # start -> lanes its groups run on
        self._gbufs: dict[tuple[int, int | None], tuple[torch.Tensor, list[torch.Tensor]]] = {}
        self.n_grouped = 0

    def _new_ring(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros((self.RING, 4), dtype=torch.int64, device=self.device),
                torch.zeros(1, dtype=torch.int64, device=self.device))

    @property
    def n_inputs(self) -> int:
        """Number of evaluation inputs."""
        return len(self.golden)

    @property
    def execution(self) -> tuple[str, str]:
        """``(mode, reason)``: ``cuda-graphs``, ``eager`` or ``cuda-graphs+eager``, and why."""
        captured = sorted({k[1] if k[0] == "g" else k[0] for k in self.graphs.graphs
                           if isinstance(k, tuple)})
        detail = ""
        if self.graphs.enabled:
            detail = (f"start segments captured: {captured}" if captured else "nothing captured")
            if self._laned:
                n_lanes = max(len(v) for v in self._laned.values())
                detail += (f"; {self.n_laned} faults ran up to {n_lanes} at a time on "
                           f"concurrent streams (start segments {sorted(self._laned)})")
            if self.n_eager:
                detail += (f"; start segments with fewer than {self.min_graph_faults} faults "
                           "ran eagerly")
        if self.n_exited:
            detail += ("; " if detail else "") + (
                f"{self.n_exited} (fault, batch) suffixes stopped after the faulted segment, "
                "whose output equalled the fault-free one")
        if self.inert_error:
            detail += ("; " if detail else "") + (
                f"inert-word analysis failed, every fault ran ({self.inert_error})")
        if self.n_pruned:
            detail += ("; " if detail else "") + (
                f"{self.n_pruned} faults hit inert words (multiplied only by zeros on these "
                "inputs) and were decided as masked without a forward pass")
        if self.n_grouped:
            detail += ("; " if detail else "") + (
                f"{self.n_grouped} faults ran {self.fault_batch} at a time (faulted segment once "
                f"per fault, later segments once per group; start segments "
                f"{sorted(self._grouped)})")
        return _execution(self.n_graph, self.n_eager, self.graphs, detail)

    def xor_masks(self, fault_model: FaultModel, site: np.ndarray, element: np.ndarray,
                  payload: np.ndarray) -> list[torch.Tensor]:
        """Per-fault XOR masks (one device tensor per site, in the order of the faults)."""
        masks: list[torch.Tensor] = []
        for s, flat in enumerate(self.flat):
            sel = np.flatnonzero(site == s)
            if len(sel) == 0:
                masks.append(flat[:0])
                continue
            idx = torch.from_numpy(element[sel].astype(np.int64)).to(self.device)
            old = flat[idx]
            pay = to_native(payload[sel], self.sites[s].layout, self.device)
            masks.append(fault_model.xor_mask(old, pay))
        return masks

    def words(self, site: np.ndarray, element: np.ndarray) -> list[torch.Tensor]:
        """Current stored words at the given faults' locations (for the bit-identity check)."""
        out = []
        for s, flat in enumerate(self.flat):
            sel = np.flatnonzero(site == s)
            idx = torch.from_numpy(element[sel].astype(np.int64)).to(self.device)
            out.append(flat[idx].clone())
        return out

    def _step(self, start: int, b: int, lane: int | None = None) -> None:
        """Suffix from segment ``start`` on batch ``b``; add the outcome flags at the cursor.

        Static: reads the cached segment input, the weights, the golden top-1 and the cursor;
        writes the lane's ring buffer and (last batch) its cursor. Capturable as a CUDA graph.
        """
        ring, cursor = self._rings[lane]
        segments = self.chain.segments[start:]
        h = segments[0](self.cache[b][start])
        if self._exit_ok.get(start) and value_equal(h, self.cache[b][start + 1]):
            self.n_exited += 1  # the rest would recompute the golden run: masked, no flags
            if b == len(self.cache) - 1:
                cursor.add_(1)
            return
        for seg in segments[1:]:
            h = seg(h)
        pred = h.argmax(dim=1)
        bad = ~torch.isfinite(h).all(dim=1)
        changed = pred != self._golden_b[b]
        flags = torch.stack([bad, changed & self._correct_b[b], changed, changed & ~bad])
        ring.index_add_(0, cursor, flags.sum(dim=1).unsqueeze(0))
        if b == len(self.cache) - 1:
            cursor.add_(1)

    def _flat_of(self, s: int, lane: int | None) -> torch.Tensor:
        """Integer view of site ``s``'s tensor on ``lane`` (the model's own on the main stream)."""
        return self.flat[s] if lane is None else self._priv[(lane, s)][1]

    @contextlib.contextmanager
    def _swapped(self, start: int, lane: int | None) -> Iterator[None]:
        """The lane's private copies in place of the start's site tensors (``tensor.data``)."""
        saved = []
        try:
            if lane is not None:
                for s in self._sites_of[start]:
                    t = self.sites[s].tensor
                    saved.append((t, t.data))
                    t.data = self._priv[(lane, s)][0]
            yield
        finally:
            for t, data in saved:
                t.data = data

    def _lane_step(self, start: int, b: int, lane: int) -> None:
        """:meth:`_step` with the lane's private copies in place of the start's site tensors.

        The swap (``tensor.data``) is Python bookkeeping, no kernel: a captured graph keeps
        reading the private copies after the model's own tensors are back.
        """
        with self._swapped(start, lane):
            self._step(start, b, lane)

    def _ensure_private(self, st: int, n_lanes: int) -> None:
        for lane in range(n_lanes):
            if lane not in self._rings:
                self._rings[lane] = self._new_ring()
            for s in self._sites_of[st]:
                if (lane, s) not in self._priv:
                    priv = self.sites[s].tensor.detach().clone()
                    self._priv[(lane, s)] = (priv, int_view(priv))

    def _capture_lanes(self, st: int, n_lanes: int) -> bool:
        """Private copies and graphs of start ``st`` on lanes ``0..n_lanes-1``."""
        self._ensure_private(st, n_lanes)
        for lane in range(n_lanes):
            for b in range(len(self.cache)):
                if not self.graphs.capture((st, b, lane),
                                           functools.partial(self._lane_step, st, b, lane),
                                           lane=lane):
                    return False
        self._laned[st] = [[self.graphs.graphs[(st, b, lane)].replay
                            for b in range(len(self.cache))] for lane in range(n_lanes)]
        return True

    # ---- batched faults: K faults of one start segment in one pass of the later segments ----

    def _groupable(self, st: int) -> bool:
        """Whether faults starting at ``st`` can share one pass of the later segments: there
        are later segments, they are modules, and none of them reads a tensor of ``st``'s sites
        (shared weights would be faulty there too)."""
        later = self.chain.segments[st + 1 :]
        if not later or not all(isinstance(seg, nn.Module) for seg in later):
            return False
        mine = {id(self.sites[s].tensor) for s in self._sites_of.get(st, [])}
        for seg in later:
            assert isinstance(seg, nn.Module)
            if any(id(t) in mine for t in [*seg.parameters(), *seg.buffers()]):
                return False
        return True

    def _group_buffers(self, st: int, lane: int | None
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Static ``(sites, K)`` word indices and per-site ``(K,)`` masks of a group (zeros:
        XOR of 0 into word 0, nothing changes)."""
        key = (st, lane)
        if key not in self._gbufs:
            k = self.fault_batch
            sites = self._sites_of[st]
            self._gbufs[key] = (
                torch.zeros((len(sites), k), dtype=torch.int64, device=self.device),
                [torch.zeros(k, dtype=self.flat[s].dtype, device=self.device) for s in sites])
        return self._gbufs[key]

    def _group_step(self, st: int, b: int, lane: int | None) -> None:
        """``K`` faults of start ``st`` on batch ``b``: the faulted segment once per fault (its
        word flipped in place, then flipped back, one fault at a time), the ``K`` outputs
        concatenated along the batch, the later segments once at ``K`` times the batch; the
        outcome flags of fault ``k`` go to ring row ``cursor + k``.

        Static like :meth:`_step` (the faults are read from the static group buffers by device
        indexing), so capturable as a CUDA graph.
        """
        k_n = self.fault_batch
        ring, cursor = self._rings[lane]
        idx, masks = self._gbufs[(st, lane)]
        flats = [self._flat_of(s, lane) for s in self._sites_of[st]]
        h0 = self.cache[b][st]
        first = self.chain.segments[st]
        with self._swapped(st, lane):
            outs = []
            for k in range(k_n):
                self._group_flip(flats, idx, masks, k)
                try:
                    outs.append(first(h0))
                finally:
                    self._group_flip(flats, idx, masks, k)
            h = value_map(lambda *parts: torch.cat(parts), *outs)
            del outs
            for seg in self.chain.segments[st + 1 :]:
                h = seg(h)
        nb = value_len(h0)
        pred = h.argmax(dim=1).view(k_n, nb)
        bad = (~torch.isfinite(h).all(dim=1)).view(k_n, nb)
        changed = pred != self._golden_b[b]
        flags = torch.stack([bad, changed & self._correct_b[b], changed, changed & ~bad], dim=2)
        rows = cursor + torch.arange(k_n, device=self.device)
        ring.index_add_(0, rows, flags.sum(dim=1))
        if b == len(self.cache) - 1:
            cursor.add_(k_n)

    @staticmethod
    def _group_flip(flats: list[torch.Tensor], idx: torch.Tensor, masks: list[torch.Tensor],
                    k: int) -> None:
        """XOR fault ``k``'s masks into its words (an involution: call twice to undo)."""
        for i, f in enumerate(flats):
            at = idx[i, k : k + 1]
            f.index_copy_(0, at, f.index_select(0, at) ^ masks[i][k : k + 1])

    def _prepare_groups(self, st: int) -> None:
        """Decide (once) whether start ``st`` runs its faults ``K`` at a time, and where."""
        k_n = self.fault_batch
        if (k_n < 2 or st in self._gtried or not self._groupable(st)
                or self._seen[st] < (2 * k_n if self.graphs.enabled else k_n)):
            return
        self._gtried.add(st)
        if not self.graphs.enabled:  # eager groups on the main stream
            self._group_buffers(st, None)
            self._grouped[st] = [None]
            return
        n_lanes = min(self.lanes, int(self._seen[st]) // (2 * k_n))
        lanes: list[int | None] = list(range(n_lanes)) if n_lanes >= 2 else [None]
        if n_lanes >= 2:
            self._ensure_private(st, n_lanes)
        for lane in lanes:
            self._group_buffers(st, lane)
            for b in range(len(self.cache)):
                if not self.graphs.capture(("g", st, b, lane),
                                           functools.partial(self._group_step, st, b, lane),
                                           lane=lane):
                    return  # a failed capture: this start's faults run one at a time
        self._grouped[st] = lanes

    def _group_data(self, st: int, groups: np.ndarray, site: np.ndarray, element: np.ndarray,
                    pos: np.ndarray, masks: list[torch.Tensor]
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(G, sites, K)`` word indices and per-site ``(G, K)`` masks of ``G`` groups."""
        g_n, k_n = groups.shape
        js = groups.reshape(-1)
        sites = self._sites_of[st]
        idx = np.zeros((g_n, len(sites), k_n), dtype=np.int64)
        gmasks = []
        for i, s in enumerate(sites):
            sel = site[js] == s
            idx[:, i, :] = np.where(sel, element[js], 0).reshape(g_n, k_n)
            m = torch.zeros(g_n * k_n, dtype=self.flat[s].dtype, device=self.device)
            if sel.any():
                dest = torch.from_numpy(np.flatnonzero(sel)).to(self.device)
                src = torch.from_numpy(pos[js[sel]].astype(np.int64)).to(self.device)
                m.index_copy_(0, dest, masks[s].index_select(0, src))
            gmasks.append(m.view(g_n, k_n))
        return torch.from_numpy(idx).to(self.device), gmasks

    def _prepare(self, starts: np.ndarray) -> None:
        """Capture the steps of the start segments that have seen enough faults."""
        for _ring, cursor in self._rings.values():  # warm-ups write at the cursor: keep in range
            cursor.zero_()
        self._seen += np.bincount(starts, minlength=len(self._seen))
        for st in np.unique(starts).tolist():
            if (self.graphs.enabled and self._seen[st] >= self.min_graph_faults
                    and st not in self._tried):
                self._tried.add(st)
                n_lanes = min(self.lanes, int(self._seen[st]) // self.lane_min_faults)
                if n_lanes < 2 or not self._capture_lanes(st, n_lanes):
                    for b in range(len(self.cache)):
                        self.graphs.capture((st, b), functools.partial(self._step, st, b))
                self._main.pop(st, None)
            if st not in self._laned and st not in self._main:
                runs = [self.graphs.get((st, b)) or functools.partial(self._step, st, b)
                        for b in range(len(self.cache))]
                all_graphs = all((st, b) in self.graphs.graphs for b in range(len(self.cache)))
                self._main[st] = (runs, all_graphs)
            self._prepare_groups(st)

    def _single(self, j: int, runs: Sequence[Callable[[], None]], word: torch.Tensor,
                mask: torch.Tensor, raised: np.ndarray) -> None:
        """One fault on the main stream, on the model's own tensor."""
        word.bitwise_xor_(mask)
        try:
            for r in runs:
                r()
        except Exception as exc:  # a fault that makes the forward pass raise is a DUE
            if _fatal(exc):
                raise
            raised[j] = True
            self._rings[None][1].add_(1)  # the step that raised never moved it
        finally:
            word.bitwise_xor_(mask)

    @torch.no_grad()
    def run(self, fault_model: FaultModel, site: np.ndarray, element: np.ndarray,
            payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inject each fault in turn; return outcome codes and changed-input counts (host)."""
        n = len(site)
        masks = self.xor_masks(fault_model, site, element, payload)
        pos = np.zeros(n, dtype=np.int64)  # position of each fault within its site's masks
        for s in range(len(self.sites)):
            sel = np.flatnonzero(site == s)
            pos[sel] = np.arange(len(sel))
        starts = np.asarray(self.start, dtype=np.int64)[site]
        pruned = np.zeros(n, dtype=bool)
        if self.inert is not None:
            pruned = inert_faults(self.inert, self.flat, [s.tensor.dtype for s in self.sites],
                                  site, element, masks).numpy()
            self.n_pruned += int(pruned.sum())
        self._prepare(starts[~pruned])
        raised = np.zeros(n, dtype=bool)
        order: list[np.ndarray] = []  # fault indices, in the order of the rows read back
        parts: list[torch.Tensor] = []
        site_l, elem_l, pos_l, start_l = (site.tolist(), element.tolist(), pos.tolist(),
                                          starts.tolist())
        k_n = self.fault_batch
        for lo in range(0, n, self.RING):
            hi = min(n, lo + self.RING)
            # work items per lane (None: the main stream), in ring-row order:
            # ("s", [j]) one fault, ("g", [j1..jK], st, data, g) a group of K faults
            queues: dict[int | None, list[tuple]] = {None: []}
            singles: list[int] = []
            live = [j for j in range(lo, hi) if not pruned[j]]  # pruned: masked, no row
            for st in sorted({start_l[j] for j in live}):
                js = [j for j in live if start_l[j] == st]
                glanes = self._grouped.get(st) or []
                n_groups = len(js) // k_n if glanes else 0
                if n_groups:
                    groups = np.asarray(js[: n_groups * k_n], dtype=np.int64).reshape(-1, k_n)
                    data = self._group_data(st, groups, site, element, pos, masks)
                    for g in range(n_groups):
                        lane = glanes[g % len(glanes)]
                        queues.setdefault(lane, []).append(("g", groups[g].tolist(), st, data,
                                                            g))
                    js = js[n_groups * k_n :]
                singles.extend(js)
            turn: dict[int, int] = {}
            for j in sorted(singles):
                lanes = self._laned.get(start_l[j])
                if lanes is None:
                    queues[None].append(("s", [j]))
                else:
                    k = turn.get(start_l[j], 0)
                    turn[start_l[j]] = k + 1
                    queues.setdefault(k % len(lanes), []).append(("s", [j]))
            side = [lane for lane in queues if lane is not None]
            for lane in queues:
                ring, cursor = self._rings[lane]
                ring.zero_()
                cursor.zero_()
            # lanes first, concurrently; they flip private copies only
            self.graphs.fork(side)
            longest = max((len(queues[lane]) for lane in side), default=0)
            for i in range(longest):
                for lane in side:
                    if i >= len(queues[lane]):
                        continue
                    item = queues[lane][i]
                    with self.graphs.stream(lane):
                        if item[0] == "g":
                            self._load_group(item, lane)
                            for b in range(len(self.cache)):
                                self.graphs.graphs[("g", item[2], b, lane)].replay()
                            self.n_grouped += k_n
                        else:
                            j = item[1][0]
                            s, e, p = site_l[j], elem_l[j], pos_l[j]
                            word = self._priv[(lane, s)][1][e : e + 1]
                            mask = masks[s][p : p + 1]
                            word.bitwise_xor_(mask)
                            for r in self._laned[start_l[j]][lane]:
                                r()
                            word.bitwise_xor_(mask)
            self.graphs.join(side)
            n_side = sum(len(it[1]) for lane in side for it in queues[lane])
            self.n_laned += n_side
            self.n_graph += n_side
            # then the rest on the main stream, on the model's own tensors
            for item in queues[None]:
                if item[0] == "g":
                    self._run_group_main(item, site_l, elem_l, pos_l, masks, raised)
                    continue
                j = item[1][0]
                s, e, p = site_l[j], elem_l[j], pos_l[j]
                runs, all_graphs = self._main[start_l[j]]
                self._single(j, runs, self.flat[s][e : e + 1], masks[s][p : p + 1],
                             raised)
                if all_graphs:
                    self.n_graph += 1
                else:
                    self.n_eager += 1
            for lane, items in queues.items():
                js = [j for it in items for j in it[1]]
                if js:
                    order.append(np.asarray(js, dtype=np.int64))
                    parts.append(self._rings[lane][0][: len(js)].clone())
        counts = np.zeros((n, 4), dtype=np.int64)
        if parts:
            counts[np.concatenate(order)] = torch.cat(parts).cpu().numpy()
        self._check_private_copies()
        return classify_counts(counts, raised)

    def _load_group(self, item: tuple, lane: int | None) -> None:
        """Copy group ``item``'s word indices and masks into the static group buffers."""
        _, _, st, (idx_all, masks_all), g = item
        idx, masks = self._gbufs[(st, lane)]
        idx.copy_(idx_all[g])
        for m, m_all in zip(masks, masks_all):
            m.copy_(m_all[g])

    def _run_group_main(self, item: tuple, site_l: list[int], elem_l: list[int],
                        pos_l: list[int], masks: list[torch.Tensor], raised: np.ndarray) -> None:
        """A group on the main stream: its graphs, or eagerly; if the eager pass raises, its
        faults run again one at a time (so that the one that raised is a DUE, alone)."""
        st, js = item[2], item[1]
        self._load_group(item, None)
        n_b = len(self.cache)
        graphs = [self.graphs.get(("g", st, b, None)) for b in range(n_b)]
        if all(g is not None for g in graphs):
            for r in graphs:
                r()  # type: ignore[misc]
            self.n_graph += len(js)
            self.n_grouped += len(js)
            return
        ring, cursor = self._rings[None]
        try:
            for b in range(n_b):
                self._group_step(st, b, None)
        except Exception as exc:
            if _fatal(exc):
                raise
            rows = cursor + torch.arange(len(js), device=self.device)
            ring.index_fill_(0, rows, 0)  # what the earlier batches added
            runs = [functools.partial(self._step, st, b) for b in range(n_b)]
            for j in js:
                s, e, p = site_l[j], elem_l[j], pos_l[j]
                self._single(j, runs, self.flat[s][e : e + 1], masks[s][p : p + 1], raised)
        else:
            self.n_grouped += len(js)
        self.n_eager += len(js)

    def _check_private_copies(self) -> None:
        """Every private copy equals the model's tensor again (every flip was undone)."""
        if not self._priv:
            return
        differ = torch.stack([(pv != self.flat[s]).any() for (_, s), (_, pv)
                              in self._priv.items()]).any()
        if bool(differ):
            raise IntegrityError("a lane's private weight copy differs from the model's tensor "
                                 "after its faults: a fault was not undone. Please report this "
                                 "bug.")

    def close(self) -> None:
        """Release the graphs, the private copies and the cached activations."""
        self._main.clear()
        self._laned.clear()
        self._grouped.clear()
        self._gbufs.clear()
        self.graphs.close()
        self._priv.clear()
        self.cache = []


def _encode_u8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] values -> the 8-bit pixel buffer they are decoded from (round to nearest)."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def _decode_u8(u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """8-bit pixels -> [0, 1] values (``u / 255``)."""
    return u.to(dtype) / 255


class ActivationFaultEngine:
    """Activation faults: one fault per sample of a batch, injected by forward hooks.

    Each sample's output is assumed to depend on that sample alone (eval mode: no batch
    statistics), which holds for standard classifiers.

    The faults of a batch live in one ``(1 + 2 * sites, batch)`` int64 plan: row 0 the input
    each sample is, rows ``1 + 2i`` and ``2 + 2i`` the word of site ``i`` each sample's fault
    hits (``-1``: none) and its payload. The hook of site ``i`` gathers those words, XORs the
    masks in and scatters them back; samples without a fault there get a zero mask.

    Parameters
    ----------
    cuda_graphs
        On a CUDA device, capture the faulty forward pass (hooks and outcome included) once and
        replay it per batch; the last batch is padded with fault-free samples.
    min_graph_batches
        Capture only when a call of :meth:`run` has at least this many batches (a capture
        costs about two forward passes).
    lanes
        With CUDA graphs, keep up to this many batches in flight on as many streams (each lane
        its own graph and static buffers): one batch of a small network leaves most of a large
        GPU idle.
    """

    def __init__(self, model: nn.Module, sites: Sequence[ActivationSite], x: torch.Tensor,
                 y: torch.Tensor, *, batch_size: int = 1024, cuda_graphs: bool = True,
                 min_graph_batches: int = 3, lanes: int = 1) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        self.model = model
        self.sites = list(sites)
        self.device = device_of(model)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        #: Input values that decoding from an 8-bit buffer moved (``encoding="uint8"``).
        self.n_quantised = 0
        if any(s.kind == "input" and s.encoding == "uint8" for s in self.sites):
            if self.x.numel() and not (float(self.x.min()) >= 0 and float(self.x.max()) <= 1):
                raise FaultError("input encoding 'uint8' needs image inputs in [0, 1] (decoded "
                                 f"from 8-bit pixels as u / 255); these span "
                                 f"[{float(self.x.min()):.3g}, {float(self.x.max()):.3g}]. "
                                 "Use the 'native' encoding for other inputs.")
            decoded = _decode_u8(_encode_u8(self.x), self.x.dtype)
            self.n_quantised = int((decoded != self.x).sum())
            self.x = decoded  # the fault-free run sees the decoded buffer too
        self.batch_size = batch_size
        self._fired: set[int] = set()
        self._fault_model: FaultModel | None = None
        self._pure_flip = True
        #: Selected modules left out, with the reason (never called, non-tensor output, ...).
        self.excluded: dict[str, str] = {}
        self._probe()
        with torch.no_grad():
            outs = [model(xb) for xb in self.x.split(batch_size)]
        self.golden = torch.cat([o.argmax(dim=1) for o in outs])
        self.golden_digest = logits_digest([o.to(torch.float16) for o in outs])
        del outs
        self.correct = self.golden == self.y
        # static buffers (plan in, outcome out) of each lane; None: the main stream
        self._bufs: dict[int | None, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._plan, self._code, self._changed = self._lane_buffers(None)
        self.graphs = GraphCache(self.device, cuda_graphs)
        self.min_graph_batches = max(1, int(min_graph_batches))
        self.lanes = max(1, int(lanes))
        self._lanes_used = 0
        self.n_graph = 0
        self.n_eager = 0

    def _lane_buffers(self, lane: int | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if lane not in self._bufs:
            bsz = self.batch_size
            self._bufs[lane] = (
                torch.zeros((1 + 2 * len(self.sites), bsz), dtype=torch.int64,
                            device=self.device),
                torch.zeros(bsz, dtype=torch.int8, device=self.device),
                torch.zeros(bsz, dtype=torch.int64, device=self.device))
        return self._bufs[lane]

    @property
    def execution(self) -> tuple[str, str]:
        """``(mode, reason)``: ``cuda-graphs``, ``eager`` or ``cuda-graphs+eager``, and why."""
        detail = ""
        if self._lanes_used > 1:
            detail = f"{self._lanes_used} batches in flight on concurrent streams"
        if self.graphs.enabled and self.n_eager and not self.graphs.failed:
            detail = f"calls with fewer than {self.min_graph_batches} batches ran eagerly"
        return _execution(self.n_graph, self.n_eager, self.graphs, detail)

    def _probe(self) -> None:
        """Run one and two samples through the model, find each site's output, its dtype and
        which dimension holds the samples; leave out (and name) the sites that have none."""
        outs: list[dict[int, Any]] = [{}, {}]
        phase = [0]

        def make(i: int):
            def hook(_m, _inp, out):
                outs[phase[0]].setdefault(i, out)
            return hook

        handles = [s.module.register_forward_hook(make(i)) for i, s in enumerate(self.sites)
                   if s.kind == "output"]
        one, two = self.x[:1], self.x[:1].expand(2, *self.x.shape[1:])
        try:
            with torch.no_grad():
                self.model(one.clone())
                phase[0] = 1
                self.model(two.clone())
        finally:
            for h in handles:
                h.remove()
        kept: list[ActivationSite] = []
        for i, s in enumerate(self.sites):
            out, out2 = (one, two) if s.kind == "input" else (outs[0].get(i), outs[1].get(i))
            if s.kind == "input" and s.encoding == "uint8":
                out, out2 = _encode_u8(out), _encode_u8(out2)
            if not isinstance(out, torch.Tensor) or not isinstance(out2, torch.Tensor):
                self.excluded[s.name] = ("not called by the forward pass (its weights may be "
                                         "used functionally)" if out is None else
                                         f"returns {type(out).__name__}, not a tensor")
                continue
            try:
                s.layout = layout_for(out.dtype)
            except FaultError as exc:
                self.excluded[s.name] = str(exc).split(";")[0]
                continue
            grown = [d for d in range(out.ndim) if out2.ndim == out.ndim
                     and out2.shape[d] == 2 * out.shape[d]
                     and all(out2.shape[e] == out.shape[e] for e in range(out.ndim) if e != d)]
            if len(grown) != 1 or out.shape[grown[0]] != 1:
                self.excluded[s.name] = (f"its output {tuple(out.shape)} has no dimension with "
                                         "one entry per sample of the batch")
                continue
            s.batch_dim = grown[0]
            s.shape = tuple(n for d, n in enumerate(out.shape) if d != s.batch_dim)
            s.per_sample_numel = int(out.numel())
            kept.append(s)
        if not kept:
            listing = "; ".join(f"{k}: {v}" for k, v in self.excluded.items())
            raise FaultError(f"none of the selected modules has a tensor output to inject "
                             f"faults into ({listing}); select other layer types or names.")
        self.sites = kept

    def _injector(self, i: int) -> Callable[[torch.Tensor], torch.Tensor | None]:
        """XOR the current plan's masks for site ``i`` into a batch tensor (once per forward
        pass); returns the tensor to use in its place, or None if nothing was done."""
        layout = self.sites[i].layout
        assert layout is not None  # set by _probe
        int_dtype = layout.int_dtype
        ratio = 8 // torch.empty(0, dtype=int_dtype).element_size()
        in_place = sys.byteorder == "little"

        bd = self.sites[i].batch_dim

        def inject(out: torch.Tensor) -> torch.Tensor | None:
            if i in self._fired:
                return None
            self._fired.add(i)  # a module called twice per forward is hit once
            o = out if out.is_contiguous() else out.contiguous()
            col = self._plan[1 + 2 * i]
            # the payload's low bytes, read in place (little-endian int64 -> the layout's word)
            row = self._plan[2 + 2 * i]
            pay = (row.view(int_dtype)[::ratio] if in_place else row.to(int_dtype)).unsqueeze(1)
            if bd == 0:  # one row of words per sample
                iv = o.view(o.shape[0], -1).view(int_dtype)
                c = col if self._pure_flip else col.clamp(min=0)
            else:  # samples along dim bd (sequence-first layers): flat word indices
                nb = o.shape[bd]
                inner = math.prod(o.shape[bd + 1:])
                iv = o.view(-1).view(int_dtype).unsqueeze(0)
                e = col.clamp(min=0)
                r = torch.arange(len(col), device=col.device)
                c = (e // inner) * (nb * inner) + r * inner + e % inner
                c, pay = c.unsqueeze(0), pay.view(1, -1)
            c = c.unsqueeze(1) if bd == 0 else c
            old = iv.gather(1, c)
            if self._pure_flip:  # word 0 and a zero mask where no fault hits
                mask = pay
            else:  # word -1 where no fault hits
                fm = self._fault_model
                assert fm is not None  # set by run
                hit = (col >= 0).unsqueeze(1) if bd == 0 else (col >= 0).unsqueeze(0)
                mask = torch.where(hit, fm.xor_mask(old, pay), torch.zeros_like(old))
            iv.scatter_(1, c, old ^ mask)
            return o
        return inject

    def _register(self, i: int) -> Any:
        """Hook site ``i`` (a forward hook on an output, a pre-hook on an input)."""
        site, inject = self.sites[i], self._injector(i)
        if site.kind == "input":
            def pre_hook(_m: nn.Module, args: tuple) -> tuple | None:
                x = args[0]
                if site.encoding == "uint8":  # flip bits of the pixel buffer, decode again
                    u = inject(_encode_u8(x))
                    return None if u is None else (_decode_u8(u, x.dtype), *args[1:])
                new = inject(x)
                return None if new is None else (new, *args[1:])
            return site.module.register_forward_pre_hook(pre_hook, prepend=True)

        def hook(_m: nn.Module, args: tuple, kwargs: dict,
                 out: torch.Tensor) -> torch.Tensor | None:
            if i not in self._fired and _aliases(out, args, kwargs):
                # the module returned (a view of) an input (Identity, Dropout in eval, an
                # in-place op): the fault belongs to this output, not to other readers
                out = out.clone()
            return inject(out)
        return site.module.register_forward_hook(hook, prepend=True, with_kwargs=True)

    def _forward(self) -> None:
        """Faulty forward pass of the current plan; outcome per sample into static buffers."""
        self._fired = set()
        idx = self._plan[0]
        out = self.model(self.x.index_select(0, idx))
        pred = out.argmax(dim=1)
        bad = ~torch.isfinite(out).all(dim=1)
        code, changed = classify(pred[:, None], bad[:, None],
                                 self.golden.index_select(0, idx)[:, None],
                                 self.correct.index_select(0, idx)[:, None])
        m = len(idx)
        self._code[:m].copy_(code)
        self._changed[:m].copy_(changed)

    def _lane_forward(self, lane: int) -> None:
        """:meth:`_forward` on ``lane``'s static buffers (what its graph captures)."""
        try:
            self._plan, self._code, self._changed = self._bufs[lane]
            self._forward()
        finally:
            self._plan, self._code, self._changed = self._bufs[None]

    def _plan_array(self, sample: np.ndarray, site: np.ndarray, element: np.ndarray,
                    payload: np.ndarray) -> np.ndarray:
        """``(batches, 1 + 2 * sites, batch_size)`` plan of ``len(site)`` faults (host).

        Where a sample has no fault at a site, its word there is 0 with a zero payload (pure
        bit flips: XOR with 0) or -1 (fault models whose mask depends on the stored word).
        """
        n, bsz = len(site), self.batch_size
        plan = np.zeros((-(-n // bsz), 1 + 2 * len(self.sites), bsz), dtype=np.int64)
        if not self._pure_flip:
            plan[:, 1::2, :] = -1
        j = np.arange(n)
        k, r = j // bsz, j % bsz
        site = site.astype(np.int64)
        plan[k, 0, r] = sample
        plan[k, 1 + 2 * site, r] = element
        pay = np.zeros(n, dtype=np.int64)
        for s in np.unique(site).tolist():
            sel = site == s
            pay[sel] = to_native(payload[sel], self.sites[s].layout).numpy().astype(np.int64)
        plan[k, 2 + 2 * site, r] = pay
        return plan

    @torch.no_grad()
    def run(self, fault_model: FaultModel, sample: np.ndarray, site: np.ndarray,
            element: np.ndarray, payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inject faults, one per sample (``sample`` indexes the evaluation inputs)."""
        self._fault_model = fault_model
        self._pure_flip = type(fault_model).xor_mask is FaultModel.xor_mask
        n, bsz = len(site), self.batch_size
        plan = torch.from_numpy(self._plan_array(sample, site, element, payload)).to(self.device)
        codes = torch.empty(len(plan) * bsz, dtype=torch.int8, device=self.device)
        changed = torch.empty(len(plan) * bsz, dtype=torch.int64, device=self.device)
        handles = [self._register(i) for i in range(len(self.sites))]
        key = ("forward", id(fault_model), self._pure_flip)
        try:
            lanes = [lane for lane in range(self.lanes) if (*key, lane) in self.graphs.graphs]
            if not lanes and self.graphs.enabled and len(plan) >= self.min_graph_batches:
                for lane in range(min(self.lanes, len(plan))):
                    self._lane_buffers(lane)
                    if not self.graphs.capture((*key, lane),
                                               functools.partial(self._lane_forward, lane),
                                               lane=lane):
                        break
                    lanes.append(lane)
            self._lanes_used = max(self._lanes_used, len(lanes))
            self.graphs.fork(lanes)
            for kb in range(len(plan)):
                lo, m = kb * bsz, min(bsz, n - kb * bsz)
                if lanes:  # round robin over the lanes; each lane's work is ordered
                    lane = lanes[kb % len(lanes)]
                    plan_buf, code, chg = self._bufs[lane]
                    with self.graphs.stream(lane):
                        plan_buf.copy_(plan[kb])
                        self.graphs.graphs[(*key, lane)].replay()
                        codes[lo : lo + m].copy_(code[:m])
                        changed[lo : lo + m].copy_(chg[:m])
                    self.n_graph += m
                else:
                    self._eager_batch(plan[kb, :, :m], codes[lo : lo + m],
                                      changed[lo : lo + m])
                    self.n_eager += m
            self.graphs.join(lanes)
        finally:
            for h in handles:
                h.remove()
            self._plan, self._code, self._changed = self._lane_buffers(None)
        return codes[:n].cpu().numpy(), changed[:n].cpu().numpy()

    def _eager_batch(self, plan: torch.Tensor, codes: torch.Tensor,
                     changed: torch.Tensor) -> None:
        """One batch of faults, eagerly; if its forward pass raises, each fault runs alone
        and only those that raise on their own are DUEs."""
        m = plan.shape[1]
        self._plan = plan
        try:
            self._forward()
        except Exception as exc:
            if _fatal(exc):
                raise
            if m > 1:
                for j in range(m):
                    self._eager_batch(plan[:, j : j + 1], codes[j : j + 1],
                                      changed[j : j + 1])
                return
            self._code[:1].fill_(DUE)
            self._changed[:1].zero_()
        codes.copy_(self._code[:m])
        changed.copy_(self._changed[:m])

    def close(self) -> None:
        """Release the graphs."""
        self.graphs.close()
