"""The engines' static-buffer steps (what CUDA graphs capture), run eagerly on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustbench import faults  # noqa: F401  (registers the built-ins)
from trustbench.faults.campaign import run_campaign
from trustbench.faults.graphs import GraphCache
from trustbench.faults.outcomes import CRITICAL_SDC, DUE, MASKED, SDC, classify, classify_counts
from trustbench.faults.sites import weight_sites
from trustbench.faults.weight_engine import WeightFaultEngine

from .conftest import make_data, make_resnet_data, naive_outcome, state_bytes


def test_classify_counts_matches_classify():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 3, (40, 6), generator=g)
    bad = torch.rand(40, 6, generator=g) < 0.05
    golden = torch.randint(0, 3, (6,), generator=g)
    correct = torch.rand(6, generator=g) < 0.5
    raised = torch.rand(40, generator=g) < 0.1
    code, changed = classify(preds, bad, golden, correct, raised)
    ch = preds != golden
    counts = torch.stack([bad.sum(1), (ch & correct).sum(1), ch.sum(1), (ch & ~bad).sum(1)], 1)
    code2, changed2 = classify_counts(counts.numpy(), raised.numpy())
    assert (code2 == code.numpy()).all()
    # an exception changes nothing; classify counts the rows it was given
    assert (changed2 == np.where(raised.numpy(), 0, changed.numpy())).all()
    assert set(code2.tolist()) == {MASKED, SDC, CRITICAL_SDC, DUE}


def test_graph_cache_is_off_on_cpu():
    cache = GraphCache(torch.device("cpu"))
    assert not cache.enabled and "cpu" in cache.reason
    calls = []
    assert cache.capture("k", lambda: calls.append(1)) is False
    assert calls == [] and cache.get("k") is None


@pytest.mark.parametrize("target", ["weights", "activations"])
def test_cpu_campaign_says_it_ran_eagerly(tiny, target):
    net, x, y = tiny
    res = run_campaign(net, x, y, n_faults=20, seed=0, target=target)
    assert res.execution == "eager"
    assert "cpu" in res.execution_reason


def test_ring_buffer_wraps(tiny, monkeypatch):
    """More faults than the device ring holds: several ring passes, same outcomes."""
    net, x, y = tiny
    ref = run_campaign(net, x, y, n_faults=70, seed=4, fault_params={"field": "exponent"})
    monkeypatch.setattr(WeightFaultEngine, "RING", 16)
    small = run_campaign(net, x, y, n_faults=70, seed=4, fault_params={"field": "exponent"})
    assert (small.outcomes == ref.outcomes).all()
    assert small.state.changed == ref.state.changed
    assert ref.sdc.k + ref.due.k >= 3


def test_several_batches_equal_one(tiny):
    """Flags of one fault accumulate over input batches; the cursor moves once per fault."""
    net, x, y = tiny
    one = run_campaign(net, x, y, n_faults=80, seed=6, fault_params={"field": "exponent"})
    many = run_campaign(net, x, y, n_faults=80, seed=6, fault_params={"field": "exponent"},
                        batch_size=25)  # 96 inputs: batches of 25, 25, 25, 21
    assert (many.outcomes == one.outcomes).all()
    assert many.state.changed == one.state.changed


class FragileHalf(nn.Module):
    """Raises on a non-finite first weight row (bit 30 of 1.0 makes it inf); row 2 does not."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0], [0.25, 2.0]]))

    def forward(self, x):
        if not bool(torch.isfinite(self.fc.weight[0]).all()):
            raise ValueError("non-finite weight")
        return self.fc(x)


def test_exceptions_in_later_batches_keep_the_cursor_in_step():
    m = FragileHalf().eval()
    x = torch.rand(6, 2, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(6, dtype=torch.long)
    kw = dict(n_faults=60, seed=1, fault_params={"bit": 30}, pattern="^weight$")
    before = state_bytes(m)
    one = run_campaign(m, x, y, **kw)
    many = run_campaign(m, x, y, batch_size=2, **kw)
    assert state_bytes(m) == before
    assert (one.outcomes == many.outcomes).all() and one.state.changed == many.state.changed
    row0 = m.fc.weight.numel() // 2
    raising = one.plan.element < row0
    assert (one.outcomes[raising] == DUE).all()
    assert 0 < raising.sum() < 60
    assert (np.asarray(one.state.changed)[raising] == 0).all()  # a raise changes no decision
    assert (one.outcomes[~raising] != DUE).all()


class _Naive:
    """Applies one activation fault to one sample with NumPy, for an independent check."""

    @staticmethod
    def word(model, x, module, element, new_word):
        def hook(_m, _inp, out):
            out = out.clone()
            out.numpy().reshape(-1).view(np.uint32)[element] = np.uint32(new_word)
            return out

        h = module.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return model(x)
        finally:
            h.remove()


@pytest.mark.parametrize("name", ["stuck_at_1", "random_value"])
def test_activation_faults_that_read_the_old_word(name):
    """Fault models whose mask depends on the stored word, per sample, against NumPy."""
    net, x, y = make_data(3, n=40)
    res = run_campaign(net, x, y, target="activations", n_faults=90, seed=2, batch_size=32,
                       fault_model=name)
    modules = dict(net.named_modules())
    sites = [lv.layer for lv in res.per_layer]
    with torch.no_grad():
        golden = net(x).argmax(1)
    clean_words: dict[str, np.ndarray] = {}
    for j in range(res.n_faults):
        s, e, i = int(res.plan.site[j]), int(res.plan.element[j]), int(res.plan.sample[j])
        mod = modules[sites[s]]
        if sites[s] not in clean_words:
            got: list[torch.Tensor] = []
            h = mod.register_forward_hook(lambda _m, _i, o, got=got: got.append(o.clone()))
            with torch.no_grad():
                net(x)
            h.remove()
            clean_words[sites[s]] = got[0].numpy().reshape(len(x), -1).view(np.uint32).copy()
        old = int(clean_words[sites[s]][i, e])
        pay = int(res.plan.payload[j])
        new = old | pay if name == "stuck_at_1" else pay
        out = _Naive.word(net, x[i : i + 1], mod, e, new)
        assert res.outcomes[j] == naive_outcome(out, int(golden[i]), int(y[i])), f"fault {j}"


class FakeGraphs(GraphCache):
    """Stands in for CUDA graphs on the CPU: "capture" runs the warm-up and keeps the step.

    Install it with :func:`fake_cuda_graphs`, in the modules that build a ``GraphCache``.
    """

    def __init__(self, device, enabled=True):
        super().__init__(device, enabled)
        self.enabled, self.reason = bool(enabled), "" if enabled else "off"

    def capture(self, key, step, lane=None):
        if key in self.graphs:
            return True
        if not self.enabled or key in self.failed:
            return False
        step()  # the warm-up writes the buffers, as the real one does
        self.graphs[key] = type("Graph", (), {"replay": staticmethod(step)})()
        return True


def fake_cuda_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both engines build :class:`FakeGraphs` instead of a ``GraphCache`` (patched where the
    engines look the name up)."""
    import trustbench.faults.activation_engine as activation_engine
    import trustbench.faults.weight_engine as weight_engine

    monkeypatch.setattr(weight_engine, "GraphCache", FakeGraphs)
    monkeypatch.setattr(activation_engine, "GraphCache", FakeGraphs)


@pytest.mark.parametrize("batch_size,lanes", [(1024, 1), (40, 1), (1024, 3), (40, 2)])
def test_graph_mode_bookkeeping_on_cpu(monkeypatch, batch_size, lanes):
    """The graph-mode code paths (warm-up, runners, lanes with private weight copies, padded
    batches) give the eager outcomes."""
    net, x, y = make_data(5, n=96)
    before = state_bytes(net)
    kw = dict(n_faults=150, seed=9, fault_params={"field": "exponent"}, batch_size=batch_size,
              lanes=lanes)
    eager_w = run_campaign(net, x, y, **kw)
    eager_a = run_campaign(net, x, y, target="activations", **{**kw, "n_faults": 300})
    fake_cuda_graphs(monkeypatch)
    graph_w = run_campaign(net, x, y, **kw)
    graph_a = run_campaign(net, x, y, target="activations", **{**kw, "n_faults": 300})
    assert state_bytes(net) == before
    assert graph_w.execution.startswith("cuda-graphs") and graph_a.execution == (
        "cuda-graphs" if batch_size < 300 else "eager")
    if lanes > 1:
        assert "concurrent streams" in graph_w.execution_reason, graph_w.execution_reason
    assert (graph_w.outcomes == eager_w.outcomes).all()
    assert graph_w.state.changed == eager_w.state.changed
    assert (graph_a.outcomes == eager_a.outcomes).all()
    assert graph_a.state.changed == eager_a.state.changed
    assert eager_w.sdc.k + eager_w.due.k > 3 and eager_a.sdc.k + eager_a.due.k > 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_activation_faults_in_other_word_sizes(dtype):
    """16- and 64-bit activations: the payload is read from the int64 plan at the right width."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).eval().to(dtype)
    x = torch.rand(30, 6).to(dtype)
    with torch.no_grad():
        golden = net(x).argmax(1)
    y = golden.clone()
    nbits = torch.finfo(dtype).bits
    res = run_campaign(net, x, y, target="activations", n_faults=60, seed=1, batch_size=16,
                       fault_params={"bit": nbits - 2})  # the top exponent bit
    np_u = {16: np.uint16, 64: np.uint64}[nbits]
    for j in range(res.n_faults):
        s, e, i, b = (int(res.plan.site[j]), int(res.plan.element[j]), int(res.plan.sample[j]),
                      int(res.plan.bit[j]))
        assert res.plan.payload[j] == 1 << b

        def hook(_m, _inp, out, e=e, b=b):
            out = out.clone()
            int_dtype = {16: torch.int16, 64: torch.int64}[nbits]
            words = out.view(int_dtype).numpy().reshape(-1).view(np_u)
            words[e] ^= np_u(1 << b)
            return out

        mod = net[0] if s == 0 else net[2]
        h = mod.register_forward_hook(hook)
        with torch.no_grad():
            out = net(x[i : i + 1])
        h.remove()
        if not torch.isfinite(out).all():
            expect = DUE
        else:
            expect = SDC if out.argmax(1).item() != golden[i].item() else MASKED
            expect = CRITICAL_SDC if expect == SDC else expect  # y == golden: every change
        assert res.outcomes[j] == expect, f"fault {j}"
    assert res.sdc.k + res.due.k > 3


def test_default_lanes():
    from trustbench.faults.campaign import default_lanes

    assert default_lanes("weights", 256, "cpu") == default_lanes("activations", 64, "cpu") == 1
    assert default_lanes("weights", 256, "cuda") == 2
    assert [default_lanes("activations", b, "cuda") for b in (64, 256, 512, 1024, 4096)] == [
        4, 4, 2, 1, 1]


def test_early_exit_equals_running_the_whole_suffix():
    """On the CPU a fault's suffix stops when the faulted segment's output equals the golden
    one; the outcomes equal full suffixes, and starts whose tensor a later segment reads again
    (shared weights) never stop early."""
    net, x, y = make_resnet_data(120)
    kw = dict(n_faults=300, seed=3, batch_size=50)  # three input batches
    on = run_campaign(net, x, y, **kw)
    off = run_campaign(net, x, y, early_exit=False, **kw)
    assert (on.outcomes == off.outcomes).all() and on.state.changed == off.state.changed
    assert "suffixes stopped after the faulted segment" in on.execution_reason
    assert "stopped" not in off.execution_reason

    class Shared(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(6, 6)
            self.mid = torch.nn.Linear(6, 6)
            self.head = torch.nn.Linear(6, 3)

        def forward(self, z):  # fc again after mid: a segment after fc's first one reads it
            h = torch.relu(self.mid(torch.relu(self.fc(z))))
            return self.head(torch.relu(self.fc(h)))

    torch.manual_seed(0)
    shared = Shared().eval()
    z = torch.rand(40, 6)
    with torch.no_grad():
        labels = shared(z).argmax(1)
    eng = WeightFaultEngine(shared, weight_sites(shared), z, labels)
    names = [s.name for s in eng.sites]
    assert eng.chain.path == "fx"
    assert not eng._exit_ok[eng.start[names.index("fc.weight")]]
    assert eng._exit_ok[eng.start[names.index("mid.weight")]]  # fc's 2nd use is in its segment
    assert not eng._exit_ok.get(eng.start[names.index("head.weight")], False)  # last segment
    eng.close()
