"""Batched weight faults (``fault_batch=K``): K faults of one start segment share one pass of
the later segments; outcomes must equal those of one fault per pass, on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustbench import (
    faults,  # noqa: F401  (registers the built-ins)
    registry,
)
from trustbench.faults.campaign import default_fault_batch, run_campaign
from trustbench.faults.errors import FaultError
from trustbench.faults.outcomes import DUE, MASKED
from trustbench.faults.sites import weight_sites
from trustbench.faults.weight_engine import WeightEngineConfig, WeightFaultEngine

from .conftest import make_resnet_data, state_bytes
from .test_engine import fake_cuda_graphs

EXP = {"field": "exponent"}


@pytest.mark.parametrize("batch_size,fault_batch", [(1024, 4), (40, 3)])
def test_batched_equal_one_fault_per_pass(batch_size, fault_batch):
    net, x, y = make_resnet_data(100)
    before = state_bytes(net)
    kw = dict(n_faults=200, seed=5, fault_params=EXP, batch_size=batch_size)
    one = run_campaign(net, x, y, fault_batch=1, **kw)
    many = run_campaign(net, x, y, fault_batch=fault_batch, **kw)
    full = run_campaign(net, x, y, suffix=False, **kw)
    assert state_bytes(net) == before
    assert f"ran {fault_batch} at a time" in many.execution_reason, many.execution_reason
    assert "at a time" not in one.execution_reason
    for other in (one, full):
        assert (many.outcomes == other.outcomes).all()
        assert many.state.changed == other.state.changed
    assert many.sdc.k + many.due.k > 10 and many.counts["masked"] > 10


def _engine(fault_batch: int, n: int = 64, one: tuple[int, int] | None = None
            ) -> tuple[WeightFaultEngine, list]:
    """An engine on the residual test net; ``one=(site, element)`` sets that weight to 1.0."""
    net, x, y = make_resnet_data(n)
    sites = weight_sites(net, ("Conv2d", "Linear"))
    if one is not None:
        with torch.no_grad():
            sites[one[0]].tensor.view(-1)[one[1]] = 1.0
    config = WeightEngineConfig(fault_batch=fault_batch, prune_inert=False)
    return WeightFaultEngine(net, sites, x, y, config), sites


def test_groups_share_a_start_segment(monkeypatch):
    eng, sites = _engine(4)
    last = len(eng.chain.segments) - 1
    assert eng.chain.path == "fx" and last >= 4
    assert not eng._groupable(last) and all(eng._groupable(st) for st in range(last))
    fm = registry.get("fault", "bitflip")(bit=3)
    rng = np.random.default_rng(0)
    site = rng.integers(0, len(sites), 150)
    element = np.array([rng.integers(0, sites[s].numel) for s in site])
    payload = np.zeros(150, dtype=np.int64)
    seen: list[tuple[int, np.ndarray]] = []
    original = eng._group_data

    def spy(st, groups, *args):
        seen.append((st, groups.copy()))
        return original(st, groups, *args)

    monkeypatch.setattr(eng, "_group_data", spy)
    codes, _ = eng.run(fm, site, element, payload)
    starts = np.asarray(eng.start)[site]
    grouped = np.concatenate([g.reshape(-1) for _, g in seen])
    assert len(np.unique(grouped)) == len(grouped)  # every fault in at most one group
    for st, groups in seen:
        assert groups.shape[1] == 4 and (starts[groups] == st).all()
    expect = sum(4 * (int((starts == st).sum()) // 4) for st in range(last))
    assert eng.n_grouped == len(grouped) == expect > 100
    assert (codes == MASKED).mean() > 0.9  # bit 3: almost always masked
    eng.close()


def test_outcomes_split_back_per_fault():
    """One group of four: the third fault makes a weight infinite (DUE), the others flip a low
    mantissa bit (masked); each outcome lands on its own fault."""
    probe, _ = _engine(4)
    s = probe.start.index(1)  # first site read by segment 1
    probe.close()
    eng, _ = _engine(4, one=(s, 7))
    assert eng.start[s] == 1
    element = np.array([0, 1, 7, 2])
    payload = np.array([1, 2, 1 << 30, 4], dtype=np.int64)  # 1.0 with bit 30 flipped: inf
    fm = registry.get("fault", "bitflip")()
    words = eng.flat[s].clone()
    codes, changed = eng.run(fm, np.full(4, s), element, payload)
    assert eng.n_grouped == 4
    assert codes.tolist() == [MASKED, MASKED, DUE, MASKED]
    assert changed[[0, 1, 3]].tolist() == [0, 0, 0]
    assert torch.equal(words, eng.flat[s])
    eng.close()


def test_graph_mode_bookkeeping_with_batched_faults(monkeypatch):
    """Static group buffers, group graphs on the main stream and on lanes (private copies),
    with the CUDA-graph stand-in: the eager outcomes."""
    net, x, y = make_resnet_data(80)
    before = state_bytes(net)
    kw = dict(n_faults=180, seed=3, fault_params=EXP, batch_size=30, fault_batch=4)
    eager = run_campaign(net, x, y, **kw)
    fake_cuda_graphs(monkeypatch)
    for lanes in (1, 3):
        graphs = run_campaign(net, x, y, lanes=lanes, **kw)
        assert graphs.execution.startswith("cuda-graphs"), graphs.execution_reason
        assert "4 at a time" in graphs.execution_reason
        assert (graphs.outcomes == eager.outcomes).all()
        assert graphs.state.changed == eager.state.changed
    assert state_bytes(net) == before
    assert eager.sdc.k + eager.due.k > 10


class _Check(nn.Module):
    """Raises on a non-finite input: a data-dependent DUE in a *later* segment."""

    def forward(self, h):
        if not bool(torch.isfinite(h).all()):
            raise ValueError("non-finite activation")
        return h


class _Declared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(6, 6)
        self.check = _Check()
        self.b = nn.Linear(6, 3)
        with torch.no_grad():
            self.a.weight[:2] = 1.0  # bit 30 of 1.0: inf, which _Check raises on

    def fault_segments(self):
        return [self.a, nn.Sequential(self.check, self.b)]

    def forward(self, x):
        return self.b(self.check(self.a(x)))


def test_a_group_that_raises_runs_again_one_fault_at_a_time():
    m = _Declared().eval()
    x = torch.rand(10, 6, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(10, dtype=torch.long)
    kw = dict(n_faults=60, seed=2, fault_params={"bit": 30}, pattern="^weight$",
              batch_size=4)
    before = state_bytes(m)
    one = run_campaign(m, x, y, fault_batch=1, **kw)
    many = run_campaign(m, x, y, fault_batch=4, **kw)
    assert state_bytes(m) == before and one.path == "declared"
    assert (one.outcomes == many.outcomes).all() and one.state.changed == many.state.changed
    assert 0 < (many.outcomes == DUE).sum() < 60


class _Shared(nn.Module):
    """The same linear layer in two segments: faults there cannot share a later pass."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(5, 5)
        self.b = nn.Linear(5, 4)

    def fault_segments(self):
        return [self.a, nn.Sequential(nn.ReLU(), self.a), self.b]

    def forward(self, x):
        return self.b(self.a(torch.relu(self.a(x))))


def test_shared_weights_are_not_batched():
    m = _Shared().eval()
    x = torch.rand(30, 5, generator=torch.Generator().manual_seed(2))
    y = torch.zeros(30, dtype=torch.long)
    kw = dict(n_faults=80, seed=1, fault_params=EXP)
    many = run_campaign(m, x, y, fault_batch=4, **kw)
    full = run_campaign(m, x, y, suffix=False, **kw)
    assert many.path == "declared"
    assert (many.outcomes == full.outcomes).all()
    assert many.sdc.k + many.due.k > 5


def test_fault_batch_config():
    m = _Shared().eval()
    x, y = torch.rand(4, 5), torch.zeros(4, dtype=torch.long)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(FaultError, match="fault_batch"):
            run_campaign(m, x, y, n_faults=4, fault_batch=bad)
    assert default_fault_batch("cpu") >= 1 and default_fault_batch("mps") == 1
    eng, _ = _engine(10_000)  # capped at MAX_GROUP_SAMPLES inputs per pass
    assert eng.fault_batch == WeightFaultEngine.MAX_GROUP_SAMPLES // 64
    eng.close()
