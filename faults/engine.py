"""The injection engines: weight faults with suffix recomputation, activation faults per sample.

Both work in place on the tensors' own device and never synchronise with the host per fault:
outcomes (top-1 per input, a non-finite flag per input) accumulate in device buffers that are
read once per chunk of faults.

* :class:`WeightFaultEngine` XORs a mask into one stored word, re-runs only the segments of the
  model's chain (:mod:`faults.segments`) from the first one that reads the faulted tensor, on the
  activations cached by the golden run, and XORs the same mask back, in a ``finally`` block.
* :class:`ActivationFaultEngine` registers forward hooks that XOR a mask into one word of one
  sample's output per fault, a *different* fault in every sample of the batch, so one forward
  pass tests as many faults as the batch holds.

Outcome codes: ``0`` masked, ``1`` SDC (top-1 changed on some input, no correct prediction lost),
``2`` critical SDC (a correctly classified input became wrong), ``3`` DUE (a non-finite output or
an exception).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from faults.base import FaultModel
from faults.bits import int_view, layout_for, to_native
from faults.errors import FaultError
from faults.segments import Chain, linearise
from faults.sites import ActivationSite, WeightSite
from trustbench.errors import ModelError

MASKED, SDC, CRITICAL_SDC, DUE = 0, 1, 2, 3
OUTCOME_NAMES = ("masked", "sdc", "critical_sdc", "due")


@contextlib.contextmanager
def strict_fp32(enabled: bool = True) -> Iterator[None]:
    """Turn TF32 off for matmuls and cuDNN convolutions (and restore the settings after).

    TF32 rounds fp32 operands to 10 mantissa bits, which flips borderline top-1 decisions between
    otherwise identical runs; fault outcomes must be reproducible, so campaigns default to this.
    """
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def _device_of(model: nn.Module) -> torch.device:
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


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
    """

    def __init__(self, model: nn.Module, sites: Sequence[WeightSite], x: torch.Tensor,
                 y: torch.Tensor, *, batch_size: int = 1024, suffix: bool = True) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        self.model = model
        self.sites = list(sites)
        self.device = _device_of(model)
        xs = x.to(self.device).split(batch_size)
        ys = y.to(self.device).split(batch_size)
        with torch.no_grad():
            self.chain: Chain = linearise(model, [s.tensor for s in self.sites], xs[0],
                                          enabled=suffix)
            self.cache: list[list[torch.Tensor]] = []
            golden = []
            for xb in xs:
                inputs, out = self.chain.trace(xb)
                if not torch.isfinite(out).all():
                    raise ModelError("the fault-free model gives non-finite outputs on the "
                                     "evaluation inputs; fault outcomes would be meaningless.")
                self.cache.append(inputs)
                golden.append(out.argmax(dim=1))
        self.golden = torch.cat(golden)
        self.correct = self.golden == torch.cat(ys)
        self.offsets = np.cumsum([0] + [len(b) for b in xs]).tolist()
        self.start = [self.chain.start_of(s.tensor) for s in self.sites]
        self.flat = [int_view(s.tensor) for s in self.sites]

    @property
    def n_inputs(self) -> int:
        """Number of evaluation inputs."""
        return len(self.golden)

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
        preds = torch.empty((n, self.n_inputs), dtype=torch.long, device=self.device)
        bad = torch.empty((n, self.n_inputs), dtype=torch.bool, device=self.device)
        raised = torch.zeros(n, dtype=torch.bool)
        site_l, elem_l, pos_l = site.tolist(), element.tolist(), pos.tolist()
        segs = self.chain.segments
        for j in range(n):
            s, e, p = site_l[j], elem_l[j], pos_l[j]
            word = self.flat[s][e : e + 1]
            mask = masks[s][p : p + 1]
            start = self.start[s]
            word.bitwise_xor_(mask)
            try:
                for b, inputs in enumerate(self.cache):
                    h = inputs[start]
                    for seg in segs[start:]:
                        h = seg(h)
                    lo, hi = self.offsets[b], self.offsets[b + 1]
                    preds[j, lo:hi] = h.argmax(dim=1)
                    bad[j, lo:hi] = ~torch.isfinite(h).all(dim=1)
            except Exception:  # a fault that makes the forward pass raise is a DUE
                raised[j] = True
                preds[j] = self.golden
                bad[j] = False
            finally:
                word.bitwise_xor_(mask)
        code, changed = classify(preds, bad, self.golden, self.correct,
                                 raised.to(self.device))
        return code.cpu().numpy(), changed.cpu().numpy()


class ActivationFaultEngine:
    """Activation faults: one fault per sample of a batch, injected by forward hooks.

    Each sample's output is assumed to depend on that sample alone (eval mode: no batch
    statistics), which holds for standard classifiers.
    """

    def __init__(self, model: nn.Module, sites: Sequence[ActivationSite], x: torch.Tensor,
                 y: torch.Tensor, *, batch_size: int = 1024) -> None:
        if len(x) == 0:
            raise FaultError("a fault campaign needs at least one evaluation input")
        self.model = model
        self.sites = list(sites)
        self.device = _device_of(model)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = batch_size
        self._plan: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._fired: set[int] = set()
        self._fault_model: FaultModel | None = None
        self._probe()
        with torch.no_grad():
            self.golden = torch.cat([model(xb).argmax(dim=1) for xb in self.x.split(batch_size)])
        self.correct = self.golden == self.y

    def _probe(self) -> None:
        shapes: dict[int, torch.Tensor] = {}

        def make(i: int):
            def hook(_m, _inp, out):
                if i not in shapes:
                    shapes[i] = out
            return hook

        handles = [s.module.register_forward_hook(make(i)) for i, s in enumerate(self.sites)]
        try:
            with torch.no_grad():
                self.model(self.x[:1])
        finally:
            for h in handles:
                h.remove()
        for i, s in enumerate(self.sites):
            out = shapes.get(i)
            if not isinstance(out, torch.Tensor):
                raise FaultError(
                    f"module {s.name!r} ({s.layer_type}) "
                    + ("was not called by the forward pass" if out is None else
                       f"returns {type(out).__name__}, not a tensor")
                    + "; exclude it from the activation sites (layer types / name pattern)."
                )
            s.layout = layout_for(out.dtype)
            s.shape = tuple(out.shape[1:])
            s.per_sample_numel = int(out[0].numel())

    def _hook(self, i: int):
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor | None:
            plan = self._plan.get(i)
            if plan is None or i in self._fired:
                return None
            self._fired.add(i)  # a module called twice per forward is hit once
            rows, cols, pay = plan
            o = out if out.is_contiguous() else out.contiguous()
            iv = o.view(o.shape[0], -1).view(self.sites[i].layout.int_dtype)
            old = iv[rows, cols]
            iv[rows, cols] = old ^ self._fault_model.xor_mask(old, pay)
            return o
        return hook

    def _make_plan(self, site: np.ndarray, element: np.ndarray, payload: np.ndarray
                   ) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per-site (rows, cols, payload) device tensors, from one transfer per batch."""
        order = np.argsort(site, kind="stable")
        bounds = np.searchsorted(site[order], np.arange(len(self.sites) + 1))
        rc = torch.from_numpy(np.stack([order, element[order]]).astype(np.int64))
        rc = rc.to(self.device, non_blocking=True)
        layouts = {s.layout for s in self.sites}
        pay_all = (to_native(payload[order], self.sites[0].layout, self.device)
                   if len(layouts) == 1 else None)
        plan = {}
        for i, s in enumerate(self.sites):
            a, b = int(bounds[i]), int(bounds[i + 1])
            if a == b:
                continue
            pay = (pay_all[a:b] if pay_all is not None
                   else to_native(payload[order][a:b], s.layout, self.device))
            plan[i] = (rc[0, a:b], rc[1, a:b], pay)
        return plan

    @torch.no_grad()
    def run(self, fault_model: FaultModel, sample: np.ndarray, site: np.ndarray,
            element: np.ndarray, payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inject faults, one per sample (``sample`` indexes the evaluation inputs)."""
        self._fault_model = fault_model
        n = len(site)
        handles = [s.module.register_forward_hook(self._hook(i))
                   for i, s in enumerate(self.sites)]
        codes, changed = [], []
        try:
            for lo in range(0, n, self.batch_size):
                hi = min(n, lo + self.batch_size)
                idx = torch.from_numpy(sample[lo:hi].astype(np.int64)).to(self.device)
                self._plan = self._make_plan(site[lo:hi], element[lo:hi], payload[lo:hi])
                self._fired = set()
                raised = torch.zeros(1, dtype=torch.bool, device=self.device)
                try:
                    out = self.model(self.x[idx])
                    pred = out.argmax(dim=1)
                    bad = ~torch.isfinite(out).all(dim=1)
                except Exception:
                    pred, bad = self.golden[idx], torch.zeros_like(idx, dtype=torch.bool)
                    raised = torch.ones(1, dtype=torch.bool, device=self.device)
                c, k = classify(pred[:, None], bad[:, None], self.golden[idx][:, None],
                                self.correct[idx][:, None], raised.expand(hi - lo))
                codes.append(c)
                changed.append(k)
        finally:
            for h in handles:
                h.remove()
            self._plan = {}
        return torch.cat(codes).cpu().numpy(), torch.cat(changed).cpu().numpy()
