"""Views of the model an attack runs on, and how it is held while it runs.

- :class:`CountedModel`: counts forward and backward passes (the cost every attack reports);
- :class:`ForwardGraph`: a no-grad forward pass captured in a CUDA graph;
- :class:`ChannelsLastModel`: the model with channels-last weight copies (CPU fast path);
- :func:`frozen_eval`: eval mode with parameters frozen, both restored afterwards;
- :func:`seeded_generator`: the device an evaluation works on and its seeded generator;
- :func:`state_versions` / :func:`state_checksum`: what is compared to prove the model unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from trustbench.attacks.base import AttackStats

__all__ = [
    "ChannelsLastModel",
    "CountedModel",
    "ForwardGraph",
    "frozen_eval",
    "seeded_generator",
    "state_checksum",
    "state_versions",
]


class CountedModel(nn.Module):
    """Counts forward calls/samples, and backward passes through the output (via a hook)."""

    def __init__(self, model: nn.Module, stats: AttackStats) -> None:
        super().__init__()
        self.inner = model
        self.stats = stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        n = int(x.shape[0])
        self.stats.forward_calls += 1
        self.stats.forward_samples += n
        if out.requires_grad:
            stats = self.stats

            def _hook(grad: torch.Tensor) -> None:
                stats.backward_calls += 1
                stats.backward_samples += n

            out.register_hook(_hook)
        return out


class ForwardGraph:
    """A no-grad forward pass captured in a CUDA graph (static input and output buffers)."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.model = model  # strong reference: the cache key's id() stays valid
        self.x = x.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):
                model(self.x)
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.out = model(self.x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.graph.replay()
        return self.out.clone()


class ChannelsLastModel(nn.Module):
    """The model evaluated with channels-last copies of its 4-D weights (CPU fast path).

    oneDNN's convolution backward is 2-3x faster in the channels-last layout on the CPU; the
    model itself is not touched (``torch.func.functional_call`` swaps in the copies).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.state = {
            k: (
                torch.empty_like(v, memory_format=torch.channels_last).copy_(v)
                if v.dim() == 4
                else v
            )
            for k, v in [*model.named_parameters(), *model.named_buffers()]
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        return functional_call(self.inner, self.state, (x,))


def model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def seeded_generator(model: nn.Module, x: torch.Tensor, device: Any, seed: int
                     ) -> tuple[torch.device, torch.Generator]:
    """The device to work on (``device``, else the model's, else the inputs') and a generator
    on it seeded with ``seed``: one per evaluation run, so runs are reproducible."""
    dev = torch.device(device) if device is not None else model_device(model, x.device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    return dev, gen


def state_versions(model: nn.Module) -> list[int]:
    return [t._version for t in model.parameters()] + [t._version for t in model.buffers()]


def state_checksum(model: nn.Module) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach().double().sum() for t in [*model.parameters(), *model.buffers()]]


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode with ``requires_grad`` off on every parameter; both restored afterwards.

    Freezing means a backward pass computes the input gradient only and saves no activations
    for weight gradients.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, rg in flags:
            p.requires_grad_(rg)
        for m, tr in modes:
            m.training = tr
