"""Tiny models and data for the faults unit tests (no reference training needed)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv -> ReLU -> pool -> flatten -> Linear -> ReLU -> Linear, for 1x8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(6 * 16, 24)
        self.act2 = nn.ReLU()
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.conv(x)))
        return self.fc2(self.act2(self.fc1(h.flatten(1))))


def make_data(seed: int = 0, n: int = 96) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded TinyCNN, inputs, and labels that agree with the model on ~80 % of inputs."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TinyCNN().eval()
    x = torch.rand(n, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
    flip = torch.rand(n, generator=g) < 0.2
    y = torch.where(flip, (y + 1) % 5, y)
    return net, x, y


class _Block(nn.Module):
    """Residual block: conv, BN, ReLU, conv, add, ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.b(torch.relu(self.bn(self.a(x)))))


class ResNetLike(nn.Module):
    """Stem, three residual blocks, global pooling, a linear head (3x12x12 inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.Sequential(_Block(16), _Block(16), _Block(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.blocks(torch.relu(self.stem(x)))
        return self.fc(h.mean(dim=(2, 3)))


def make_resnet_data(n: int = 200) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small residual net (fx: 5 segments), random BN statistics, inputs and labels."""
    torch.manual_seed(0)
    net = ResNetLike().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 12, 12, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
    y = torch.where(torch.rand(n, generator=g) < 0.3, (y + 1) % 10, y)
    return net, x, y


class Fragile(nn.Module):
    """Raises when its weight is not finite, and reads the weight on the host in its forward
    pass: a fault ending in an exception is a DUE, and CUDA-graph capture of it fails."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.fill_(1.0)

    def forward(self, x):
        if not bool(torch.isfinite(self.fc.weight).all()):
            raise ValueError("non-finite weight")
        return self.fc(x)


@pytest.fixture
def tiny():
    return make_data()


def state_bytes(model: nn.Module) -> dict[str, bytes]:
    """Exact bytes of every parameter and buffer."""
    return {k: v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            for k, v in model.state_dict().items()}


def naive_outcome(out: torch.Tensor, golden: int, label: int) -> int:
    """Outcome code of one input's faulty output, classified independently of the engine."""
    from trustbench.faults.outcomes import CRITICAL_SDC, DUE, MASKED, SDC

    if not torch.isfinite(out).all():
        return DUE
    if out.argmax(1).item() != golden:
        return CRITICAL_SDC if golden == label else SDC
    return MASKED


class MemoryCheckpoint:
    """A campaign :class:`~trustbench.faults.campaign_state.Checkpoint` kept in memory, JSON
    round-tripped like a file would be.

    ``saved`` maps fingerprints to the JSON text of their last state, ``history`` lists
    ``n_done`` at every save and ``loads`` the fingerprints asked for. A checkpoint made by
    :meth:`holding` answers every load with one given state, whatever the fingerprint (as a
    stale or foreign file would), to check which states a campaign refuses to resume.
    """

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}
        self.loads: list[str] = []
        self.history: list[int] = []
        self._held: str | None = None

    @classmethod
    def holding(cls, state) -> MemoryCheckpoint:
        """A checkpoint whose every load returns (a copy of) ``state``."""
        ckpt = cls()
        ckpt._held = json.dumps(state.to_dict())
        return ckpt

    def load(self, fingerprint):
        from trustbench.faults.campaign import CampaignState

        self.loads.append(fingerprint)
        text = self._held if self._held is not None else self.saved.get(fingerprint)
        return None if text is None else CampaignState.from_dict(json.loads(text))

    def save(self, state) -> None:
        self.history.append(state.n_done)
        self.saved[state.fingerprint] = json.dumps(state.to_dict())


@contextlib.contextmanager
def interrupted_after(chunks: int) -> Iterator[None]:
    """Within: a weight campaign is interrupted (``KeyboardInterrupt``, as by Ctrl-C) as it
    starts chunk ``chunks + 1``, once; the chunks before it complete."""
    from trustbench.faults.weight_engine import WeightFaultEngine

    run = WeightFaultEngine.run
    calls = 0

    def counted(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == chunks + 1:
            raise KeyboardInterrupt
        return run(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WeightFaultEngine, "run", counted)
        yield
