"""CUDA graphs of the engines' per-fault steps: captured on demand, replayed, or run eagerly.

:class:`GraphCache` captures a *step* (a callable over static buffers) once per key and hands
out its replay; where a capture is impossible (CPU, graphs turned off, a step that synchronises
with the host or raises) the step runs eagerly and the reason is kept. Graphs belong to *lanes*
(concurrent CUDA streams). :func:`execution_summary` turns an engine's counts into the
``(mode, reason)`` pair a campaign result reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from trustbench.faults.runtime import short_error


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
                self.failed[key] = short_error(exc)
                return False
            try:  # perhaps it needed a warm-up of its own
                graph = self._capture(step, lane, True)
            except Exception as exc2:
                self.failed[key] = short_error(exc2)
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


def execution_summary(n_graph: int, n_eager: int, graphs: GraphCache, detail: str
                      ) -> tuple[str, str]:
    """``(mode, reason)`` of an engine: ``cuda-graphs``, ``eager`` or ``cuda-graphs+eager``,
    and why (how many faults ran in graphs, why graphs were off, ``detail``, failed captures)."""
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
