"""The weight fault engine: one stored word flipped at a time, only the suffix re-run.

:class:`WeightFaultEngine` XORs a mask into one stored word, re-runs only the segments of the
model's chain (:mod:`.segments`) from the first one that reads the faulted tensor, on the
activations cached by the golden run, and XORs the same mask back, in a ``finally`` block.
Each (start segment, input batch) is one *step*: the suffix forward pass, the comparison with
the fault-free top-1 and the accumulation of the fault's outcome flags into a device ring buffer
at a device-side cursor. Every buffer a step touches stays put in memory, so on a CUDA device a
step is captured once in a CUDA graph (:mod:`.graphs`) and then replayed, one launch per fault
instead of one per kernel; the XOR on the weight storage happens between replays, and the
replay reads the flipped word from the same memory. Outcomes accumulate on the device and are
read once per chunk of faults, never per fault.

With ``fault_batch=K`` the faults that start at the same segment are evaluated ``K`` at a time:
the faulted segment once per fault, the later segments once on the ``K`` outputs concatenated
along the batch (see :class:`WeightEngineConfig`).

Where capture is not possible (CPU, CUDA graphs turned off, a model that synchronises with the
host or raises in its forward pass) the same steps run eagerly; ``execution`` says which was used
for how many faults, and why. The module is long because the engine is one concern: its
lanes, batched groups, ring buffers and private weight copies are one piece of bookkeeping
that every step of :class:`WeightFaultEngine` reads and writes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trustbench.errors import ModelError
from trustbench.faults.base import FaultModel
from trustbench.faults.bits import int_view, to_native
from trustbench.faults.errors import FaultError, IntegrityError
from trustbench.faults.graphs import GraphCache, execution_summary
from trustbench.faults.inert import InertWeights, find_inert, inert_faults
from trustbench.faults.outcomes import classify_counts
from trustbench.faults.runtime import (
    check_fields,
    device_of,
    is_fatal,
    logits_digest,
    short_error,
)
from trustbench.faults.segments import MAX_LIVE, Chain, linearise, value_equal, value_len, value_map
from trustbench.faults.sites import WeightSite


@dataclass(frozen=True)
class WeightEngineConfig:
    """How a :class:`WeightFaultEngine` runs its faults (none of it changes which faults).

    Attributes
    ----------
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
        at :attr:`WeightFaultEngine.MAX_GROUP_SAMPLES` inputs per pass.
    max_live
        Most live values a cut of the chain may carry (:func:`.segments.linearise`): 1
        cuts only where one value is alive (between residual blocks); more also cuts inside a
        block (a fault in its second convolution re-runs that convolution onward, from the
        cached branch activation and block input), at the cost of a larger golden-run cache.
    prune_inert
        Decide without running the faults that hit an *inert* word (one that every product it
        enters multiplies by zero on these inputs, e.g. a kernel tap that only covers padding)
        and leave it finite: they are masked, exactly (:mod:`.inert`, which also checks
        that each layer's kernel forms its products one by one). ``n_pruned`` counts them.
    early_exit
        Stop a fault's suffix after the faulted segment when that segment's output equals the
        fault-free one (then nothing after it can differ: masked, exactly), for starts whose
        tensors no later segment reads. Needs a host synchronisation per fault and batch, so
        None (default) means on the CPU only; never with CUDA graphs.
    """

    batch_size: int = 1024
    suffix: bool = True
    cuda_graphs: bool = True
    min_graph_faults: int = 4
    lanes: int = 1
    lane_min_faults: int = 8
    fault_batch: int = 1
    max_live: int = MAX_LIVE
    prune_inert: bool = True
    early_exit: bool | None = None

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size", "min_graph_faults", "lanes", "lane_min_faults",
                                 "fault_batch", "max_live"),
                     bools=("suffix", "cuda_graphs", "prune_inert"), optional_bools=("early_exit",))


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
    config
        How the faults run (:class:`WeightEngineConfig`; None: its defaults).
    """

    #: Faults whose outcome flags a device ring buffer holds between two reads.
    RING = 1024
    #: At most this many inputs in one pass of the later segments (``fault_batch`` x batch).
    MAX_GROUP_SAMPLES = 8192

    def __init__(self, model: nn.Module, sites: Sequence[WeightSite], x: torch.Tensor,
                 y: torch.Tensor, config: WeightEngineConfig | None = None) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        cfg = config if config is not None else WeightEngineConfig()
        self.config = cfg
        self.model = model
        self.sites = list(sites)
        self.device = device_of(model)
        xs = x.to(self.device).split(cfg.batch_size)
        ys = y.to(self.device).split(cfg.batch_size)
        with torch.no_grad():
            self.chain: Chain = linearise(model, [s.tensor for s in self.sites], xs[0],
                                          enabled=cfg.suffix, batches=len(xs),
                                          max_live=cfg.max_live)
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
            if cfg.prune_inert:
                try:
                    self.inert = find_inert(model, self.sites, xs)
                except Exception as exc:  # an exotic model: run every fault instead
                    self.inert_error = short_error(exc)
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
        self.graphs = GraphCache(self.device, cfg.cuda_graphs)
        self.min_graph_faults = max(1, int(cfg.min_graph_faults))
        self.lanes = max(1, int(cfg.lanes))
        self.lane_min_faults = max(1, int(cfg.lane_min_faults))
        on_cpu = self.device.type == "cpu"
        exit_on = ((on_cpu if cfg.early_exit is None else bool(cfg.early_exit))
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
        self.fault_batch = max(1, min(int(cfg.fault_batch), self.MAX_GROUP_SAMPLES // longest))
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
        return execution_summary(self.n_graph, self.n_eager, self.graphs, detail)

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
            if is_fatal(exc):
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
            if is_fatal(exc):
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
