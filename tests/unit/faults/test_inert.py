"""Inert weight words (faults.inert): the read analysis against brute force, what disqualifies a
site, the kernel probe, and campaigns with pruning equal to campaigns without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trustbench import faults  # noqa: F401  (registers the built-ins)
from trustbench.faults import inert as inert_mod
from trustbench.faults.campaign import run_campaign
from trustbench.faults.inert import conv_reads, find_inert, linear_reads
from trustbench.faults.sites import weight_sites

from .conftest import Fragile, state_bytes


def _brute_reads(conv, x: torch.Tensor, **kw) -> torch.Tensor:
    """Word e reads a nonzero input iff adding 1 to it changes the output (float64, inputs
    0 or in [0.5, 1], so every such change is far above rounding)."""
    w = torch.zeros(kw.pop("shape"), dtype=torch.float64)
    ref = conv(x, w, **kw)
    out = torch.zeros(w.numel(), dtype=torch.bool)
    for e in range(w.numel()):
        w.view(-1)[e] = 1.0
        out[e] = not torch.equal(conv(x, w, **kw), ref)
        w.view(-1)[e] = 0.0
    return out.view(w.shape)


def _sparse_input(g: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    x = 0.5 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    x[torch.rand(shape, generator=g) < 0.6] = 0.0  # scattered zeros
    x[:, 0] = 0.0  # a dead channel
    return x


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@settings(max_examples=30, deadline=None)
@given(nd=st.sampled_from([1, 2, 3]), size=st.integers(1, 5), k=st.sampled_from([1, 2, 3]),
       stride=st.integers(1, 3), dilation=st.integers(1, 2), pad=st.sampled_from([0, 1, 2, "same",
                                                                                  "valid"]),
       groups=st.sampled_from([1, 2]), seed=st.integers(0, 10**6))
def test_conv_reads_equal_brute_force(nd, size, k, stride, dilation, pad, groups, seed):
    if pad == "same":
        stride = 1  # torch accepts padding='same' only with stride 1
    span = dilation * (k - 1) + 1
    padded = size + (2 * pad if isinstance(pad, int) else span - 1 if pad == "same" else 0)
    if padded < span:
        return  # no output position
    g = torch.Generator().manual_seed(seed)
    c_in, c_out = 2 * groups, 2 * groups
    x = _sparse_input(g, (2, c_in) + (size,) * nd)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    kw = dict(stride=stride, padding=pad, dilation=dilation, groups=groups)
    shape = (c_out, c_in // groups) + (k,) * nd
    expect = _brute_reads(conv, x, shape=shape, **kw)
    assert torch.equal(conv_reads(x, shape, **kw), expect)


def test_conv_reads_of_a_3x3_kernel_on_1x1_maps_is_the_centre_tap():
    reads = conv_reads(torch.ones(4, 3, 1, 1), (5, 3, 3, 3), padding=1)
    assert reads.sum() == 5 * 3 and reads[:, :, 1, 1].all()


def test_linear_reads_skip_features_that_are_always_zero():
    x = torch.rand(6, 3, 5)
    x[..., 2] = 0.0
    reads = linear_reads(x, (4, 5))
    assert reads.shape == (4, 5) and not reads[:, 2].any() and reads[:, [0, 1, 3, 4]].all()


class _Deep(nn.Module):
    """Strided convolutions down to 1x1 maps, then a 3x3 convolution there (8 of 9 taps read
    only padding), a dead ReLU channel, and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 3, stride=2, padding=1)  # 4x4 -> 2x2
        self.c2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)  # 2x2 -> 1x1
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)  # 1x1 -> 1x1
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            self.c1.bias[0] = -100.0  # channel 0 of c1's output is always zero after ReLU

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = torch.relu(self.c2(h))
        return self.fc(torch.relu(self.c3(h)).flatten(1))


def _deep_data(n: int = 48, seed: int = 0):
    torch.manual_seed(seed)
    net = _Deep().eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 2, 4, 4, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
    y = torch.where(torch.rand(n, generator=g) < 0.3, (y + 1) % 4, y)
    return net, x, y


def test_find_inert_on_padding_taps_and_dead_channels():
    net, x, _ = _deep_data()
    sites = weight_sites(net)
    found = find_inert(net, sites, list(x.split(16)))
    assert found.reasons == ["", "", "", ""]
    names = [s.name for s in sites]
    c2, c3 = (found.masks[names.index(f"{n}.weight")] for n in ("c2", "c3"))
    assert c3 is not None and c3.view(8, 8, 3, 3)[:, :, 1, 1].sum() < 64  # dead units only
    assert c3.view(8, 8, 3, 3).sum() >= 8 * 8 * 8  # every off-centre tap
    assert c2 is not None and c2.view(8, 6, 3, 3)[:, 0].all()  # the dead input channel
    assert found.fraction(names.index("c1.weight")) == 0.0


def test_sites_read_otherwise_are_not_analysed():
    net = Fragile().eval()  # checks its weight on the host in every forward pass
    found = find_inert(net, weight_sites(net), [torch.rand(4, 2)])
    assert found.masks == [None] and "isfinite" in found.reasons[0]

    class ViewUse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return F.linear(x, self.fc.weight.view(2, 3))

    net2 = ViewUse().eval()
    found = find_inert(net2, weight_sites(net2), [torch.rand(4, 3)])
    assert found.masks == [None] and "view" in found.reasons[0]

    lin = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)).eval()
    sites = weight_sites(lin, pattern="bias")
    found = find_inert(lin, sites, [torch.rand(4, 3)])
    assert found.masks == [None, None] and "not as a convolution/linear weight" in found.reasons[0]

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.spare = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)

    net3 = Unused().eval()
    found = find_inert(net3, weight_sites(net3), [torch.rand(4, 3)])
    assert found.reasons[1] == "not read in the forward pass" and found.masks[0] is not None


def test_a_weight_used_twice_is_inert_only_where_both_uses_read_zeros():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)) * 0 + x.flip(1))

    net = Tied().eval()
    x = torch.rand(5, 4)
    x[:, 0] = 0.0  # feature 0 is zero in the first use, feature 3 in the second (flipped)
    found = find_inert(net, weight_sites(net), [x])
    m = found.masks[0]
    assert m is not None and not m.any()  # every column read nonzero by one of the two uses


def _mixing_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A convolution that mixes its weights before multiplying, as a transform kernel does."""
    if torch.overrides.has_torch_function((input, weight)):
        return torch.overrides.handle_torch_function(
            _mixing_conv2d, (input, weight), input, weight, bias, stride, padding, dilation,
            groups)
    out = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return out + (weight.sum() - weight.sum())


def test_the_probe_rejects_a_kernel_that_mixes_weights(monkeypatch):
    monkeypatch.setitem(inert_mod._CONV_FUNCS, _mixing_conv2d, 2)

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            return _mixing_conv2d(x, self.conv.weight, self.conv.bias, 1, 1).flatten(1)

    net = Mixed().eval()
    found = find_inert(net, weight_sites(net), [torch.rand(4, 2, 1, 1)])
    assert found.masks == [None] and "does not form each product" in found.reasons[0]
    plain = find_inert(net.conv, weight_sites(net.conv), [torch.rand(4, 2, 1, 1)])
    assert plain.fraction(0) == pytest.approx(8 / 9)


@pytest.mark.parametrize("fault_params", [{}, {"field": "exponent"}])
def test_pruned_campaign_equals_unpruned(fault_params):
    net, x, y = _deep_data(64)
    with torch.no_grad():  # inert words in [1, 2): an exponent-MSB flip makes them Inf
        net.c2.weight[:, 0] = 1.5  # they multiply the dead channel's zeros: Inf * 0 = NaN
    before = state_bytes(net)
    kw = dict(n_faults=300, seed=4, fault_params=fault_params, distribution="layer-uniform",
              batch_size=32)
    on = run_campaign(net, x, y, **kw)
    off = run_campaign(net, x, y, prune_inert=False, **kw)
    assert state_bytes(net) == before
    assert (on.outcomes == off.outcomes).all() and on.state.changed == off.state.changed
    assert on.n_pruned > 30 and off.n_pruned == 0
    assert "decided as masked without a forward pass" in on.execution_reason
    assert on.inert_bits_share is not None and 0.3 < on.inert_bits_share < 0.9
    assert off.inert_bits_share is None and on.analysed_bits == sum(
        p.numel() * 32 for n, p in net.named_parameters() if n.endswith("weight"))
    shares = {lv.layer: lv.inert_share for lv in on.per_layer}
    assert shares["c1.weight"] == 0.0 and shares["c3.weight"] > 8 / 9
    if fault_params:  # a flip to Inf/NaN in an inert word is run, not pruned (Inf * 0 = NaN
        # where a kernel multiplies the zero; some kernels skip zeros): count them independently
        found = find_inert(net, weight_sites(net), list(x.split(32)))
        names = [lv.layer for lv in on.per_layer]
        expect = 0
        for s, e, b in zip(on.plan.site, on.plan.element, on.plan.bit):
            m = found.masks[s]
            if m is None or not bool(m[int(e)]):
                continue
            w = dict(net.named_parameters())[names[s]].detach().reshape(-1)[int(e)].numpy()
            flipped = np.array(w, dtype=np.float32)
            flipped.view(np.uint32)[...] ^= np.uint32(1 << int(b))
            expect += bool(np.isfinite(flipped))
        dead = (on.plan.site == names.index("c2.weight")) & (on.plan.element // 9 % 6 == 0)
        assert (dead & (on.plan.bit == 30)).any()  # some flips to NaN in inert words
        assert on.n_pruned == expect


@pytest.mark.parametrize("lanes", [1, 2])
def test_pruning_in_graph_mode_bookkeeping(monkeypatch, lanes):
    """With the CPU stand-in for CUDA graphs (and concurrent lanes with private copies), pruned
    faults leave the ring rows of the faults that run in place: outcomes equal every fault run
    eagerly."""
    from .test_engine import fake_cuda_graphs

    net, x, y = _deep_data(64)
    before = state_bytes(net)
    kw = dict(n_faults=400, seed=8, fault_params={"bit": 30}, batch_size=24,
              lanes=lanes, chunk_size=150)
    every = run_campaign(net, x, y, prune_inert=False, **kw)
    fake_cuda_graphs(monkeypatch)
    pruned = run_campaign(net, x, y, **kw)
    assert state_bytes(net) == before
    assert pruned.execution.startswith("cuda-graphs") and pruned.n_pruned > 50
    assert ("concurrent streams" in pruned.execution_reason) == (lanes > 1)
    assert (pruned.outcomes == every.outcomes).all()
    assert pruned.state.changed == every.state.changed
    assert pruned.sdc.k + pruned.due.k >= 5


def test_a_failing_analysis_runs_every_fault(monkeypatch):
    import trustbench.faults.weight_engine as weight_engine

    def broken(*_args, **_kwargs):
        raise RuntimeError("mode not supported by this model")

    monkeypatch.setattr(weight_engine, "find_inert", broken)
    net, x, y = _deep_data(32)
    res = run_campaign(net, x, y, n_faults=40, seed=1)
    assert res.n_pruned == 0 and res.inert_bits_share is None
    assert "inert-word analysis failed, every fault ran (RuntimeError" in res.execution_reason
