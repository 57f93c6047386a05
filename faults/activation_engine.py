"""The activation and input fault engine: one fault per sample, injected by forward hooks.

:class:`ActivationFaultEngine` registers forward hooks that XOR a mask into one word of one
sample's output per fault, a *different* fault in every sample of the batch, so one forward pass
tests as many faults as the batch holds. The hooks read static per-sample buffers (which input,
which word of each site, which payload), so on a CUDA device the whole faulty forward pass,
hooks and classification included, is one CUDA graph (:mod:`.graphs`) replayed per batch; where
capture is not possible the same pass runs eagerly, and ``execution`` says which was used for how
many faults, and why. Input faults are the same engine on the model's input (``kind="input"``
sites), optionally on the 8-bit pixel buffer the input is decoded from.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trustbench.faults.base import FaultModel
from trustbench.faults.bits import layout_for, to_native
from trustbench.faults.errors import FaultError
from trustbench.faults.graphs import GraphCache, execution_summary
from trustbench.faults.outcomes import DUE, classify
from trustbench.faults.runtime import check_fields, device_of, is_fatal, logits_digest
from trustbench.faults.sites import ActivationSite


@dataclass(frozen=True)
class ActivationEngineConfig:
    """How an :class:`ActivationFaultEngine` runs its faults (none of it changes which faults).

    Attributes
    ----------
    batch_size
        Faults (samples) per forward pass.
    cuda_graphs
        On a CUDA device, capture the faulty forward pass (hooks and outcome included) once and
        replay it per batch; the last batch is padded with fault-free samples.
    min_graph_batches
        Capture only when a call of :meth:`ActivationFaultEngine.run` has at least this many
        batches (a capture costs about two forward passes).
    lanes
        With CUDA graphs, keep up to this many batches in flight on as many streams (each lane
        its own graph and static buffers): one batch of a small network leaves most of a large
        GPU idle.
    """

    batch_size: int = 1024
    cuda_graphs: bool = True
    min_graph_batches: int = 3
    lanes: int = 1

    def __post_init__(self) -> None:
        check_fields(self, ints=("batch_size", "min_graph_batches", "lanes"),
                     bools=("cuda_graphs",))


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
    model
        ``nn.Module`` in eval mode (inputs in, logits out).
    sites
        Activation or input sites (their hooks inject the faults).
    x, y
        Evaluation inputs and labels (any device; moved to the model's device).
    config
        How the faults run (:class:`ActivationEngineConfig`; None: its defaults).
    """

    def __init__(self, model: nn.Module, sites: Sequence[ActivationSite], x: torch.Tensor,
                 y: torch.Tensor, config: ActivationEngineConfig | None = None) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        cfg = config if config is not None else ActivationEngineConfig()
        self.config = cfg
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
        self.batch_size = cfg.batch_size
        self._fired: set[int] = set()
        self._fault_model: FaultModel | None = None
        self._pure_flip = True
        #: Selected modules left out, with the reason (never called, non-tensor output, ...).
        self.excluded: dict[str, str] = {}
        self._probe()
        with torch.no_grad():
            outs = [model(xb) for xb in self.x.split(cfg.batch_size)]
        self.golden = torch.cat([o.argmax(dim=1) for o in outs])
        self.golden_digest = logits_digest([o.to(torch.float16) for o in outs])
        del outs
        self.correct = self.golden == self.y
        # static buffers (plan in, outcome out) of each lane; None: the main stream
        self._bufs: dict[int | None, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._plan, self._code, self._changed = self._lane_buffers(None)
        self.graphs = GraphCache(self.device, cfg.cuda_graphs)
        self.min_graph_batches = max(1, int(cfg.min_graph_batches))
        self.lanes = max(1, int(cfg.lanes))
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
        return execution_summary(self.n_graph, self.n_eager, self.graphs, detail)

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
            if is_fatal(exc):
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
