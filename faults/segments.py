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
values cache more (resnet18 on 3x32x32: about 2.5x the one-value cache). If the cache of one
batch times the number of batches would exceed ``max_cache_bytes`` (default
:data:`MAX_CACHE_BYTES`), the chain uses one-value cuts only (the reason says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


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
        Callables; their composition is the model's forward pass.
    first_use
        ``id(tensor) -> index of the first segment that reads it``.
    checked
        ``(example, segment inputs, output)`` of the run that checked the chain against the
        model, so that the golden run can reuse it for that batch.
    """

    path: str
    reason: str
    segments: list[Callable[[torch.Tensor], torch.Tensor]]
    first_use: dict[int, int] = field(default_factory=dict)
    checked: tuple[torch.Tensor, list[torch.Tensor], torch.Tensor] | None = field(
        default=None, repr=False)

    def start_of(self, tensor: torch.Tensor) -> int:
        """First segment to re-run after a fault in ``tensor`` (0 if unknown: a full run)."""
        return self.first_use.get(id(tensor), 0)

    def run(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Run segments ``start, start+1, ...`` on ``x``."""
        for seg in self.segments[start:]:
            x = seg(x)
        return x

    def trace(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Golden run: the input of every segment, and the output."""
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


def _fx_chain(model: nn.Module, tensors: Sequence[torch.Tensor]) -> list[nn.Module]:
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

    # cuts: positions after which exactly one (non-constant) value is alive
    valid: list[int] = []
    live: set = set()
    for i, n in enumerate(nodes):
        if n.op == "output":
            break
        if n.op != "get_attr":
            live.add(n)
        live = {m for m in live if last_use[m] > i}
        if live == {n}:
            valid.append(i)

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
    cuts = {0}
    for p in first_pos.values():
        before = [c for c in valid if c < p]
        if before:
            cuts.add(max(before))
    cuts_sorted = sorted(cuts)
    if len(cuts_sorted) == 1:
        raise _NotLinear("no cut point before any site: the graph is one block")

    segments: list[nn.Module] = []
    for k, c in enumerate(cuts_sorted):
        end = cuts_sorted[k + 1] if k + 1 < len(cuts_sorted) else len(nodes) - 1
        segments.append(_segment(gm, nodes, c, end, last=k + 1 == len(cuts_sorted)))
    return segments


def _segment(gm: nn.Module, nodes: list, cut: int, end: int, *, last: bool) -> nn.Module:
    import torch.fx as fx

    g = fx.Graph()
    env: dict = {nodes[cut]: g.placeholder("x")}

    def lookup(a: fx.Node) -> fx.Node:
        if a not in env:
            if a.op != "get_attr":  # by construction only constants cross a cut
                raise _NotLinear(f"value {a.name} crosses a cut")
            env[a] = g.node_copy(a, lookup)
        return env[a]

    body = nodes[cut + 1 : end + 1] if not last else nodes[cut + 1 :]
    out = None
    for n in body:
        if n.op == "output":
            g.output(fx.node.map_arg(n.args[0], lookup))
            out = True
            break
        if n in env:
            continue
        env[n] = g.node_copy(n, lookup)
    if out is None:
        g.output(env[nodes[end]])
    seg = fx.GraphModule(gm, g)
    if any(not n.users for n in seg.graph.nodes if n.op not in ("output", "placeholder")):
        seg.graph.eliminate_dead_code()  # values nothing reads (rare: the cut keeps one alive)
        seg.recompile()
    return seg


def linearise(model: nn.Module, tensors: Sequence[torch.Tensor], example: torch.Tensor, *,
              enabled: bool = True) -> Chain:
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
    """
    full = Chain("full", "", [model], {id(t): 0 for t in tensors})
    if not enabled:
        full.reason = "suffix recomputation disabled"
        return full
    attempts: list[str] = []
    declared = getattr(model, "fault_segments", None)
    candidates: list[tuple[str, Callable[[], list[nn.Module]]]] = []
    if callable(declared):
        candidates.append(("declared", lambda: list(declared())))
    candidates.append(("fx", lambda: _fx_chain(model, tensors)))
    for path, build in candidates:
        try:
            segments = build()
        except Exception as exc:  # tracing fails on data-dependent control flow etc.
            attempts.append(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            if str(exc) else f"{path}: {type(exc).__name__}")
            continue
        chain = Chain(path, "", segments, _first_uses(segments))
        with torch.no_grad():
            ref = model(example)
            inputs, got = chain.trace(example)
        if got.shape != ref.shape or not torch.allclose(got, ref, rtol=1e-5, atol=1e-6,
                                                        equal_nan=True):
            attempts.append(f"{path}: the chain of segments does not reproduce model(x)")
            continue
        chain.reason = f"{len(segments)} segments" + (
            f" ({'; '.join(attempts)})" if attempts else "")
        chain.checked = (example, inputs, got)
        return chain
    full.reason = "; ".join(attempts) or "no chain found"
    return full
