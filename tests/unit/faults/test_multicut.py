"""Cuts that carry several live values (inside residual blocks): where they are placed, and
that weight-fault outcomes from them equal those of the full forward pass, on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustbench import (
    faults,  # noqa: F401  (registers the built-ins)
    registry,
)
from trustbench.faults.bits import layout_for
from trustbench.faults.campaign import run_campaign
from trustbench.faults.outcomes import MASKED
from trustbench.faults.segments import linearise
from trustbench.faults.sites import weight_sites
from trustbench.faults.weight_engine import WeightEngineConfig, WeightFaultEngine

from .conftest import make_resnet_data, state_bytes
from .test_engine import fake_cuda_graphs


class _TorchvisionBlock(nn.Module):
    """torchvision's BasicBlock: in-place ReLUs, ``out += identity``, a 1x1 downsample."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                         nn.BatchNorm2d(cout)) if cin != cout else None)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _TorchvisionLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(_TorchvisionBlock(8, 8), _TorchvisionBlock(8, 12))
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        h = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(h.mean(dim=(2, 3)), 1))


class _WritesLiveValue(nn.Module):
    """``a`` is alive at the cut before ``b`` and written in place after it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4 * 36, 5)

    def forward(self, x):
        h = self.stem(x)
        a = self.a(h)
        b = self.b(h)
        a = self.act(a)
        return self.head((a + b).flatten(1))


def _random_bn(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)


def _starts(net: nn.Module, x: torch.Tensor, **kw):
    sites = weight_sites(net, ("Conv2d", "Linear"))
    chain = linearise(net, [s.tensor for s in sites], x, **kw)
    return chain, {s.name: chain.start_of(s.tensor) for s in sites}


def _faults(sites, n: int, seed: int):
    rng = np.random.default_rng(seed)
    fm = registry.get("fault", "bitflip")(field="exponent")  # decisions change more often
    site = rng.integers(0, len(sites), n)
    element = np.array([rng.integers(0, sites[s].numel) for s in site])
    payload, _ = fm.sample(n, layout_for(torch.float32), rng)
    return fm, site, element, np.asarray(payload)


def test_resnet_like_conv2_starts_at_the_inner_cut():
    net, x, _ = make_resnet_data(16)
    chain, starts = _starts(net, x)
    assert chain.path == "fx" and max(chain.widths) == 2
    for k in range(3):
        a, b = starts[f"blocks.{k}.a.weight"], starts[f"blocks.{k}.b.weight"]
        assert b == a + 1 and chain.widths[b] == 2  # the branch activation and the block input
    one, starts1 = _starts(net, x, max_live=1)
    assert len(chain.segments) > len(one.segments)
    assert all(starts1[f"blocks.{k}.a.weight"] == starts1[f"blocks.{k}.b.weight"]
               for k in range(3))
    with torch.no_grad():
        inputs, out = chain.trace(x)
        assert isinstance(inputs[starts["blocks.1.b.weight"]], tuple)
        for k in range(len(chain.segments)):
            assert torch.equal(chain.run(inputs[k], k), out)


def test_torchvision_style_block_cuts_and_cache_stays_intact():
    torch.manual_seed(0)
    net = _TorchvisionLike().eval()
    _random_bn(net)
    x = torch.rand(6, 3, 6, 6)
    chain, starts = _starts(net, x)
    assert chain.path == "fx", chain.reason
    blk = "layer1.1."
    assert starts[blk + "conv1.weight"] < starts[blk + "conv2.weight"] < starts[
        blk + "downsample.0.weight"] < starts["fc.weight"]
    assert chain.widths[starts[blk + "downsample.0.weight"]] == 2
    with torch.no_grad():
        ref = net(x)
        inputs, _ = chain.trace(x)
        copies = [tuple(t.clone() for t in v) if isinstance(v, tuple) else v.clone()
                  for v in inputs]
        for _ in range(2):
            for k in range(len(chain.segments)):
                assert torch.equal(chain.run(inputs[k], k), ref)
        for v, c in zip(inputs, copies):  # the in-place ReLUs never wrote into a cached value
            for t, u in zip(v if isinstance(v, tuple) else (v,), c if isinstance(c, tuple)
                            else (c,)):
                assert torch.equal(t, u)


def test_values_written_in_place_later_are_not_cut():
    torch.manual_seed(0)
    net = _WritesLiveValue().eval()
    chain, starts = _starts(net, torch.rand(3, 3, 6, 6))
    assert chain.path == "fx"
    assert starts["b.weight"] == starts["a.weight"]  # the cut between them would carry ``a``


def _equal_to_full(net: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> None:
    sites = weight_sites(net, ("Conv2d", "Linear"))
    before = state_bytes(net)
    fm, site, element, payload = _faults(sites, n, seed)
    fast = WeightFaultEngine(net, sites, x, y, WeightEngineConfig(batch_size=48))
    assert fast.chain.path == "fx" and max(fast.chain.widths) == 2
    codes, changed = fast.run(fm, site, element, payload)
    fast.close()
    full = WeightFaultEngine(net, sites, x, y, WeightEngineConfig(batch_size=48, suffix=False))
    assert full.chain.path == "full"
    codes_f, changed_f = full.run(fm, site, element, payload)
    full.close()
    assert np.array_equal(codes, codes_f) and np.array_equal(changed, changed_f)
    assert (codes != MASKED).sum() >= 5  # some faults matter, so the comparison can fail
    assert state_bytes(net) == before


def test_outcomes_equal_full_forward_resnet_like():
    net, x, y = make_resnet_data(100)
    _equal_to_full(net, x, y, 300, seed=3)


def test_outcomes_equal_full_forward_torchvision_style():
    torch.manual_seed(1)
    net = _TorchvisionLike().eval()
    _random_bn(net)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(100, 3, 6, 6, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
    _equal_to_full(net, x, y, 300, seed=4)


@pytest.mark.parametrize("lanes,fault_batch", [(2, 1), (1, 4)])
def test_graph_mode_bookkeeping_with_tuple_cuts(monkeypatch, lanes, fault_batch):
    """The graph-mode paths (runners, lanes with private copies, batched faults) on a chain
    whose cuts carry tuples give the outcomes of the eager full forward pass."""
    net, x, y = make_resnet_data(80)
    before = state_bytes(net)
    kw = dict(n_faults=200, seed=5, fault_params={"field": "exponent"}, batch_size=48,
              layer_types=("Conv2d", "Linear"))
    full = run_campaign(net, x, y, suffix=False, cuda_graphs=False, **kw)
    fake_cuda_graphs(monkeypatch)
    graph = run_campaign(net, x, y, lanes=lanes, fault_batch=fault_batch, **kw)
    assert "up to 2 values" in graph.path_reason, graph.path_reason
    assert graph.execution.startswith("cuda-graphs"), graph.execution_reason
    if lanes > 1:
        assert "concurrent streams" in graph.execution_reason, graph.execution_reason
    else:
        assert "at a time" in graph.execution_reason, graph.execution_reason
    assert (graph.outcomes == full.outcomes).all()
    assert graph.state.changed == full.state.changed
    assert full.sdc.k + full.due.k > 5
    assert state_bytes(net) == before


def test_campaign_max_live_option():
    from trustbench.faults.campaign import CampaignConfig, default_max_live
    from trustbench.faults.errors import FaultError
    from trustbench.faults.segments import MAX_LIVE

    assert default_max_live("cpu") == MAX_LIVE and default_max_live("cuda") == 1
    net, x, y = make_resnet_data(40)
    kw = dict(n_faults=20, seed=1, layer_types=("Conv2d", "Linear"))
    one = run_campaign(net, x, y, max_live=1, **kw)
    multi = run_campaign(net, x, y, **kw)  # CPU default: cuts inside the blocks
    assert "values" not in one.path_reason and "up to 2 values" in multi.path_reason
    assert (one.outcomes == multi.outcomes).all()
    with pytest.raises(FaultError, match="max_live"):
        CampaignConfig(max_live=0).check()
