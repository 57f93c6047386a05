"""Cutting a model into a chain of segments, so a weight fault re-runs only what it can change.

A weight fault in a layer leaves every activation before that layer unchanged. If the model's
forward pass is a chain ``h_{k+1} = segment_k(h_k)``, the golden run caches each ``h_k`` and a fault
whose tensor is first used in segment ``k`` re-runs only segments ``k, k+1, ...``.

Three ways to get the chain, tried in order:

``declared``
    the model has a ``fault_segments()`` method returning a list of modules whose composition is
    the forward pass;
``fx``
    :func:`torch.fx.symbolic_trace` succeeds, and the graph is cut just before the first use of
    each injection site. A cut may carry several live values (at most ``max_live``): inside a
    ResNet block, before ``conv2``, the branch activation *and* the block input that the
    residual addition still needs; the golden run caches all of them, and a segment whose cut
    carries several values takes and returns a tuple. So a fault in a block's second
    convolution re-runs that convolution onward, not the whole block. A cut is not used where a
    value it carries is later written in place (``ReLU(inplace=True)`` on it, ``x += ...``):
    re-running from the cache would corrupt the cache;
``full``
    anything else (dynamic control flow, several inputs): one segment, the whole forward pass.

The chain is checked against ``model(x)`` on the golden batch, and the cached values must be
unchanged after the whole chain ran; a mismatch falls back to cuts with one live value, then to
``full``.

Memory: the golden run keeps every cut's values for every evaluation batch. Cuts with several
values cache more: torchvision resnet18 on 3x32x32 inputs, 21 segments, 2.0 MiB per 8 inputs
(64 MiB at batch 256) against 0.6 MiB with one-value cuts (10 segments), about 3.3x. If the
cache of one batch times the number of batches would exceed ``max_cache_bytes`` (default
:data:`MAX_CACHE_BYTES`, 4 GiB), the chain uses one-value cuts only (the reason says so).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: A value at a cut: one tensor, or a tuple when several values are alive there (tensors, and
#: the occasional plain Python value a traced forward keeps alive, e.g. ``n = x.shape[0]``).
Value = Any

#: Most values a cut may carry (``linearise(max_live=...)``).
MAX_LIVE = 4
#: Default cap on the golden-run cache (bytes, all batches) before falling back to one-value cuts.
MAX_CACHE_BYTES = 4 << 30


def _is_group(v: Value) -> bool:
    """A tuple/list of cut values (``torch.Size`` is a tuple, but one plain value)."""
    return isinstance(v, (tuple, list)) and not isinstance(v, torch.Size)


def _tensors(v: Value) -> list[torch.Tensor]:
    if isinstance(v, torch.Tensor):
        return [v]
    return [t for part in v for t in _tensors(part)] if _is_group(v) else []


def value_nbytes(v: Value) -> int:
    """Bytes held by the tensors of a cut value."""
    return sum(t.numel() * t.element_size() for t in _tensors(v))


def value_len(v: Value) -> int:
    """Batch size of a cut value (of its first tensor)."""
    return len(_tensors(v)[0])


def value_map(fn: Callable[..., torch.Tensor], *vs: Value) -> Value:
    """``fn`` applied tensor by tensor to cut values of the same structure (plain values are
    taken from the first)."""
    if isinstance(vs[0], torch.Tensor):
        return fn(*vs)
    if not _is_group(vs[0]):
        return vs[0]
    return tuple(value_map(fn, *parts) for parts in zip(*vs))


def value_equal(a: Value, b: Value) -> bool:
    """Whether two cut values are equal, tensor by tensor (as values: NaN never equals)."""
    if isinstance(a, torch.Tensor):
        return bool(torch.equal(a, b))
    if not _is_group(a):
        return bool(a == b)
    return all(value_equal(x, y) for x, y in zip(a, b))


@dataclass
class Chain:
    """A model as a chain of segments.

    Attributes
    ----------
    path
        ``declared``, ``fx`` or ``full``.
    reason
        Why this path was used (why the others were not).
    segments
        Callables; their composition is the model's forward pass. Each takes the value at its
        cut (a tensor, or a tuple of tensors where several values are alive) and returns the
        value at the next cut (the model's output for the last one).
    first_use
        ``id(tensor) -> index of the first segment that reads it``.
    widths
        Number of values at each cut (the input of each segment; empty: unknown, one each).
    checked
        ``(example, segment inputs, output)`` of the run that checked the chain against the
        model, so that the golden run can reuse it for that batch.
    """

    path: str
    reason: str
    segments: list[Callable[[Value], Value]]
    first_use: dict[int, int] = field(default_factory=dict)
    widths: list[int] = field(default_factory=list)
    checked: tuple[torch.Tensor, list[Value], torch.Tensor] | None = field(
        default=None, repr=False)

    def start_of(self, tensor: torch.Tensor) -> int:
        """First segment to re-run after a fault in ``tensor`` (0 if unknown: a full run)."""
        return self.first_use.get(id(tensor), 0)

    def run(self, x: Value, start: int = 0) -> torch.Tensor:
        """Run segments ``start, start+1, ...`` on ``x`` (the value at cut ``start``)."""
        for seg in self.segments[start:]:
            x = seg(x)
        return x

    def trace(self, x: torch.Tensor) -> tuple[list[Value], torch.Tensor]:
        """Golden run: the input of every segment (the values at every cut), and the output."""
        inputs = []
        for seg in self.segments:
            inputs.append(x)
            x = seg(x)
        return inputs, x


class _NotLinear(Exception):
    pass


def _first_uses(segments: Sequence[nn.Module]) -> dict[int, int]:
    first: dict[int, int] = {}
    for i, seg in enumerate(segments):
        for t in [*seg.parameters(), *seg.buffers()]:
            first.setdefault(id(t), i)
    return first


_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                      operator.ifloordiv, operator.imod, operator.ipow, operator.iand,
                      operator.ior, operator.ixor, operator.ilshift, operator.irshift,
                      operator.imatmul, operator.setitem}
_VIEW_METHODS = {"view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze",
                 "unsqueeze", "transpose", "permute", "expand", "expand_as", "narrow", "select",
                 "t", "T", "mT", "as_strided", "contiguous", "split", "chunk", "unbind",
                 "movedim", "swapaxes", "swapdims", "diagonal", "unfold", "detach", "real",
                 "imag", "type_as", "to", "float", "__getitem__"}


def _mutated(gm: nn.Module, n: Any) -> Any:
    """The node whose tensor ``n`` writes in place, or None."""
    if not n.args or not hasattr(n.args[0], "op"):
        return None
    if n.op == "call_module":
        sub = gm.get_submodule(n.target)
        return n.args[0] if getattr(sub, "inplace", False) is True else None
    if n.op == "call_function":
        name = getattr(n.target, "__name__", "")
        if (n.target in _INPLACE_OPERATORS or n.kwargs.get("inplace") is True
                or (name.endswith("_") and not name.startswith("_"))):
            return n.args[0]
    if n.op == "call_method" and n.target.endswith("_") and not n.target.startswith("_"):
        return n.args[0]
    return None


def _alias_base(gm: nn.Module, n: Any) -> list:
    """``n`` and the nodes whose storage it may share (views, in-place results), by arg 0."""
    out = [n]
    while True:
        a = n.args[0] if n.args and hasattr(n.args[0], "op") else None
        if a is None:
            return out
        view = ((n.op == "call_method" and n.target in _VIEW_METHODS)
                or (n.op == "call_function"
                    and (n.target is operator.getitem
                         or getattr(n.target, "__name__", "") in _VIEW_METHODS))
                or _mutated(gm, n) is a)
        if not view:
            return out
        out.append(a)
        n = a


def _fx_chain(model: nn.Module, tensors: Sequence[torch.Tensor], max_live: int = MAX_LIVE
              ) -> tuple[list[nn.Module], list[int]]:
    import torch.fx as fx

    tracer = fx.Tracer()
    tracer.proxy_buffer_attributes = True  # int8 weights live in buffers: keep them as inputs
    gm = fx.GraphModule(model, tracer.trace(model))
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise _NotLinear(f"forward takes {len(placeholders)} inputs, not one")
    pos = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((pos[u] for u in n.users), default=pos[n]) for n in nodes}
    # last position at which each node's storage is written in place (by it or an alias)
    last_write: dict = {}
    for i, n in enumerate(nodes):
        target = _mutated(gm, n)
        if target is not None:
            for a in _alias_base(gm, target):
                last_write[a] = i

    # cuts: positions after which 1..max_live (non-constant) values are alive, none of which is
    # written in place later (re-running from the cache would corrupt it)
    valid: dict[int, list] = {}
    live: set = set()
    for i, n in enumerate(nodes):
        if n.op == "output":
            break
        if n.op != "get_attr":
            live.add(n)
        live = {m for m in live if last_use[m] > i}
        if (0 < len(live) <= max_live and all(last_write.get(m, -1) <= i for m in live)
                and all(pos[m] >= pos[placeholders[0]] for m in live)):
            valid[i] = sorted(live, key=pos.__getitem__)

    # first node that reads each site tensor
    wanted = {id(t) for t in tensors}
    first_pos: dict[int, int] = {}
    for i, n in enumerate(nodes):
        touched: list[torch.Tensor] = []
        if n.op == "call_module":
            sub = gm.get_submodule(n.target)
            touched = [*sub.parameters(), *sub.buffers()]
        elif n.op == "get_attr":
            obj = gm
            for part in str(n.target).split("."):
                obj = getattr(obj, part)
            if isinstance(obj, torch.Tensor):
                touched = [obj]
            elif isinstance(obj, nn.Module):
                touched = [*obj.parameters(), *obj.buffers()]
        for t in touched:
            if id(t) in wanted:
                first_pos.setdefault(id(t), i)
    missing = [t for t in tensors if id(t) not in first_pos]
    if missing:
        raise _NotLinear(f"{len(missing)} site tensor(s) are not read by the traced graph "
                         "(folded into constants while tracing)")
    p0 = pos[placeholders[0]]
    cuts = {p0}
    for p in first_pos.values():
        before = [c for c in valid if c < p]
        if before:
            cuts.add(max(before))
    cuts_sorted = sorted(cuts)
    if len(cuts_sorted) == 1:
        raise _NotLinear("no cut point before any site: the graph is one block")
    valid[p0] = [placeholders[0]]

    segments: list[nn.Module] = []
    for k, c in enumerate(cuts_sorted):
        last = k + 1 == len(cuts_sorted)
        end = len(nodes) - 1 if last else cuts_sorted[k + 1]
        segments.append(_segment(gm, nodes, valid[c], c, end,
                                 None if last else valid[end]))
    return segments, [len(valid[c]) for c in cuts_sorted]


def _segment(gm: nn.Module, nodes: list, ins: list, cut: int, end: int,
             outs: list | None) -> nn.Module:
    """Nodes ``cut+1 .. end`` as a module from the values ``ins`` (a tensor if one, else a
    tuple) to the values ``outs`` (likewise; None: the graph's output)."""
    import torch.fx as fx

    g = fx.Graph()
    ph = g.placeholder("x")
    env: dict = {}
    if len(ins) == 1:
        env[ins[0]] = ph
    else:
        for i, v in enumerate(ins):
            env[v] = g.call_function(operator.getitem, (ph, i))

    def lookup(a: fx.Node) -> fx.Node:
        if a not in env:
            if a.op != "get_attr":  # by construction only constants cross a cut
                raise _NotLinear(f"value {a.name} crosses a cut")
            env[a] = g.node_copy(a, lookup)
        return env[a]

    for n in nodes[cut + 1 : end + 1]:
        if n.op == "output":
            g.output(fx.node.map_arg(n.args[0], lookup))
            break
        if n in env:
            continue
        env[n] = g.node_copy(n, lookup)
    if outs is not None:
        g.output(lookup(outs[0]) if len(outs) == 1 else tuple(lookup(v) for v in outs))
    seg = fx.GraphModule(gm, g)
    if any(not n.users for n in seg.graph.nodes if n.op not in ("output", "placeholder")):
        seg.graph.eliminate_dead_code()  # values nothing reads (rare: the cut keeps one alive)
        seg.recompile()
    return seg


def _checked_trace(chain: Chain, x: torch.Tensor) -> tuple[list[Value], torch.Tensor, bool]:
    """Golden run, and whether every cached cut value is unchanged after the whole chain ran
    (no segment wrote in place into a value it was given)."""
    inputs, copies = [], []
    for seg in chain.segments:
        inputs.append(x)
        copies.append(value_map(torch.clone, x))
        x = seg(x)
    intact = all(value_equal(a, b) for a, b in zip(inputs, copies))
    return inputs, x, intact


def linearise(model: nn.Module, tensors: Sequence[torch.Tensor], example: torch.Tensor, *,
              enabled: bool = True, max_live: int = MAX_LIVE, batches: int = 1,
              max_cache_bytes: int | None = MAX_CACHE_BYTES) -> Chain:
    """Cut ``model`` into a chain of segments (see the module docstring).

    Parameters
    ----------
    model
        The model in eval mode.
    tensors
        The injection-site tensors (cuts are placed before their first use).
    example
        A golden batch; the chain must reproduce ``model(example)``.
    enabled
        False forces the ``full`` path.
    max_live
        Most values a cut may carry (1: only between blocks, where one value is alive).
    batches
        Number of evaluation batches like ``example`` whose cut values will be cached.
    max_cache_bytes
        If the cut values of ``batches`` batches would exceed this, use one-value cuts (None:
        no cap).
    """
    full = Chain("full", "", [model], {id(t): 0 for t in tensors})
    if not enabled:
        full.reason = "suffix recomputation disabled"
        return full
    attempts: list[str] = []
    declared = getattr(model, "fault_segments", None)
    candidates: list[tuple[str, int, Callable[[], tuple[list[nn.Module], list[int]]]]] = []
    if callable(declared):
        candidates.append(("declared", 1, lambda: (list(declared()), [])))
    for width in sorted({max(1, int(max_live)), 1}, reverse=True):
        candidates.append(("fx", width, functools.partial(_fx_chain, model, tensors, width)))
    for path, width, build in candidates:
        name = path if path != "fx" or width == 1 else f"fx (cuts of up to {width} values)"
        try:
            segments, widths = build()
        except Exception as exc:  # tracing fails on data-dependent control flow etc.
            attempts.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            if str(exc) else f"{name}: {type(exc).__name__}")
            continue
        chain = Chain(path, "", list[Callable[[Value], Value]](segments),
                      _first_uses(segments), widths)
        try:
            with torch.no_grad():
                ref = model(example)
                inputs, got, intact = _checked_trace(chain, example)
        except Exception as exc:  # a segment that cannot run on its own
            attempts.append(f"{name}: running the chain failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}")
            continue
        if (not isinstance(got, torch.Tensor) or got.shape != ref.shape
                or not torch.allclose(got, ref, rtol=1e-5, atol=1e-6, equal_nan=True)):
            attempts.append(f"{name}: the chain of segments does not reproduce model(x)")
            continue
        if not intact:
            attempts.append(f"{name}: a segment writes in place into a value cached at a cut")
            continue
        nbytes = sum(value_nbytes(v) for v in inputs[1:])
        if max(widths, default=1) > 1 and max_cache_bytes is not None and (
                nbytes * max(1, batches) > max_cache_bytes):
            attempts.append(f"{name}: its cache ({nbytes * batches / 2**20:.0f} MiB) exceeds "
                            f"max_cache_bytes ({max_cache_bytes / 2**20:.0f} MiB)")
            continue
        chain.reason = f"{len(segments)} segments" + (
            f", cuts of up to {max(widths)} values" if max(widths, default=1) > 1 else "") + (
            f", {nbytes / 2**20:.1f} MiB cached per batch" if path == "fx" else "") + (
            f" ({'; '.join(attempts)})" if attempts else "")
        chain.checked = (example, inputs, got)
        return chain
    full.reason = "; ".join(attempts) or "no chain found"
    return full
