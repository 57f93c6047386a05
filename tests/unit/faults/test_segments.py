"""Cutting models into chains for suffix recomputation (faults.segments)."""

from __future__ import annotations

import torch
from torch import nn

from trustbench.faults.segments import linearise
from trustbench.faults.sites import weight_sites


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 64, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.b(torch.relu(self.a(h)))  # skip connection: no cut inside the block
        return self.head(h.flatten(1))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: not traceable
            return self.fc(x)
        return -self.fc(x)


class Declared(nn.Sequential):
    def fault_segments(self):
        return list(self)


def _check(model, x, path, n_segments=None):
    sites = weight_sites(model)
    chain = linearise(model, [s.tensor for s in sites], x)
    assert chain.path == path, chain.reason
    if n_segments is not None:
        assert len(chain.segments) == n_segments
    with torch.no_grad():
        inputs, out = chain.trace(x)
        assert torch.allclose(out, model(x))
        for k in range(len(chain.segments)):
            assert torch.allclose(chain.run(inputs[k], k), out)
    return chain, sites


def test_sequential_cut_before_every_site(tiny):
    net, x, _ = tiny
    chain, sites = _check(net, x, "fx", 3)
    assert [chain.start_of(s.tensor) for s in sites] == [0, 1, 2]


def test_residual_block_cut_inside_with_two_values():
    torch.manual_seed(0)
    m = Residual().eval()
    chain, sites = _check(m, torch.rand(4, 1, 8, 8), "fx", 4)
    assert [chain.start_of(s.tensor) for s in sites] == [0, 1, 2, 3]
    assert chain.widths == [1, 1, 2, 1]  # before b: the branch activation and the block input
    assert "up to 2 values" in chain.reason


def test_one_value_cuts_do_not_cut_a_residual_block():
    torch.manual_seed(0)
    m = Residual().eval()
    sites = weight_sites(m)
    chain = linearise(m, [s.tensor for s in sites], torch.rand(4, 1, 8, 8), max_live=1)
    starts = [chain.start_of(s.tensor) for s in sites]
    assert starts[1] == starts[2] == 1  # a and b share the block's segment
    assert starts[3] == 2 and chain.widths == [1, 1, 1]


def test_cache_cap_falls_back_to_one_value_cuts():
    torch.manual_seed(0)
    m = Residual().eval()
    sites = weight_sites(m)
    chain = linearise(m, [s.tensor for s in sites], torch.rand(4, 1, 8, 8), max_cache_bytes=10)
    assert chain.path == "fx" and chain.widths == [1, 1, 1]
    assert "max_cache_bytes" in chain.reason


def test_untraceable_falls_back_to_full():
    m = Branchy().eval()
    chain = linearise(m, [m.fc.weight], torch.rand(3, 4))
    assert chain.path == "full" and "fx" in chain.reason
    assert chain.start_of(m.fc.weight) == 0


def test_declared_segments():
    torch.manual_seed(0)
    m = Declared(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    chain, sites = _check(m, torch.rand(5, 4), "declared", 3)
    assert [chain.start_of(s.tensor) for s in sites] == [0, 2]


def test_disabled():
    m = nn.Sequential(nn.Linear(4, 2)).eval()
    chain = linearise(m, [m[0].weight], torch.rand(2, 4), enabled=False)
    assert chain.path == "full" and "disabled" in chain.reason


class KeepsBatchSize(nn.Module):
    """``n = x.shape[0]`` stays alive across the cuts (as in torchvision's ViT), so cut values
    carry a plain int beside the tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        n = x.shape[0]
        h = torch.relu(self.a(x))
        h = torch.relu(self.b(h))
        return self.c(h.reshape(n, -1))


def test_cut_values_may_carry_plain_python_values():
    from trustbench import faults  # noqa: F401  (registers the fault models)
    from trustbench.faults.campaign import run_campaign

    torch.manual_seed(0)
    net = KeepsBatchSize().eval()
    x = torch.rand(40, 6)
    chain = linearise(net, [s.tensor for s in weight_sites(net)], x, max_live=4)
    assert chain.path == "fx" and len(chain.segments) >= 3 and max(chain.widths) == 2, chain.reason
    with torch.no_grad():
        y = net(x).argmax(1)
        assert torch.equal(chain.run(x), net(x))
    kw = dict(n_faults=120, seed=2, fault_params={"field": "exponent"}, batch_size=16)
    fast = run_campaign(net, x, y, fault_batch=3, **kw)
    full = run_campaign(net, x, y, suffix=False, **kw)
    assert fast.path == "fx" and (fast.outcomes == full.outcomes).all()
    assert fast.state.changed == full.state.changed
