"""Models off the beaten path: sequence-first layers, forward passes that raise, modules that
return their input, weights read inside list arguments, protections stacked or ordered with
the injection, int8 copies of tied and non-2-D convolutions (faults.weight_engine, faults.inert,
faults.protection, faults.precision)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustbench.faults.campaign import run_campaign
from trustbench.faults.outcomes import DUE
from trustbench.faults.precision import QuantConv, QuantLinear, to_precision
from trustbench.faults.protection import RangeRestriction, WeightRangeCheck, evaluate_protection
from trustbench.faults.sites import weight_sites

from .conftest import naive_outcome, state_bytes


def naive_activation(model, x, y, res, module_of):
    """Outcome of each activation fault of ``res``: one input, the faulted module's output
    cloned and its word flipped with NumPy (batch along ``batch_dim``), a full forward."""
    with torch.no_grad():
        golden = model(x).argmax(1)
    out = []
    for j in range(res.n_faults):
        i, s, e, b = (int(res.plan.sample[j]), int(res.plan.site[j]),
                      int(res.plan.element[j]), int(res.plan.bit[j]))
        mod, bd = module_of[s]

        def hook(_m, _i, o, e=e, b=b, bd=bd):
            o = o.clone()
            words = o.select(bd, 0).contiguous().numpy().reshape(-1).view(np.uint32)
            words[e] ^= np.uint32(1 << b)
            shape = list(o.shape)
            del shape[bd]
            return torch.from_numpy(words.view(np.float32).reshape(shape)).unsqueeze(bd)

        h = mod.register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = model(x[i : i + 1])
            code = naive_outcome(logits, int(golden[i]), int(y[i]))
        except Exception:
            code = DUE
        finally:
            h.remove()
        out.append(code)
    return np.array(out)


class SeqFirst(nn.Module):
    """(batch, tokens, features) in; a sequence-first encoder layer inside."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 16)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=False)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        h = self.enc(self.emb(x).transpose(0, 1))  # (tokens, batch, features)
        return self.fc(h.mean(0))


def test_sequence_first_outputs_hold_the_faults_of_their_own_samples():
    torch.manual_seed(0)
    net = SeqFirst().eval()
    x = torch.randn(24, 5, 4)
    with torch.no_grad():
        y = net(x).argmax(1)
    res = run_campaign(net, x, y, target="activations", n_faults=120, seed=2, batch_size=8,
                       pattern="linear1", fault_params={"field": "exponent"})
    (lv,) = res.per_layer
    site = net.enc.linear1
    assert lv.layer == "enc.linear1"
    # a sample's output is its 5 tokens x 32 features, not one token's 32
    assert res.plan.element.max() >= 32 and res.plan.element.max() < 5 * 32
    expected = naive_activation(net, x, y, res, {0: (site, 1)})
    assert (res.outcomes == expected).all()
    assert res.sdc.k + res.due.k >= 5 and res.counts["masked"] >= 5


class Guarded(nn.Module):
    """Raises when an activation grows huge (like a model with an overflow assertion)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        if bool((h.abs() > 1e6).any()):
            raise ValueError("activation out of range")
        return self.fc2(h)


def test_a_batch_that_raises_books_only_its_raising_faults_as_due():
    torch.manual_seed(1)
    net = Guarded().eval()
    x = torch.randn(40, 6)
    with torch.no_grad():
        y = net(x).argmax(1)
    res = run_campaign(net, x, y, target="activations", n_faults=160, seed=3, batch_size=32,
                       pattern="fc1", fault_params={"bit": 30})
    expected = naive_activation(net, x, y, res, {0: (net.fc1, 0)})
    assert (res.outcomes == expected).all()
    assert 10 <= res.due.k <= 150 and res.counts["masked"] >= 10


class OutOfMemoryOnOverflow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out = self.fc(x)
        if bool((out.abs() > 1e6).any()):
            raise torch.OutOfMemoryError("pretend the device ran out of memory")
        return out


@pytest.mark.parametrize("target", ["weights", "activations"])
def test_out_of_memory_ends_the_campaign_instead_of_counting_as_due(target):
    net = OutOfMemoryOnOverflow().eval()
    x = torch.randn(16, 6)
    before = state_bytes(net)
    with pytest.raises(torch.OutOfMemoryError):
        run_campaign(net, x, torch.zeros(16, dtype=torch.long), target=target, n_faults=50,
                     seed=0, fault_params={"bit": 30})
    assert state_bytes(net) == before


class SkipThroughIdentity(nn.Module):
    """An Identity whose input another branch also reads."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.same = nn.Identity()
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.fc(x)
        return self.head(torch.cat([self.same(h), torch.tanh(h)], 1))


class StackedWeights(nn.Module):
    """Reads a weight through torch.stack, which the inert analysis does not model."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        w = torch.stack([self.a.weight, self.b.weight]).sum(0)
        return self.head(torch.relu(x[:, :6] @ w.t()))


def test_a_weight_read_inside_a_list_argument_is_never_pruned():
    torch.manual_seed(3)
    net = StackedWeights().eval()
    x = torch.randn(32, 6)
    x[:, 3] = 0.0  # a dead input feature: its words would look inert to linear's analysis
    with torch.no_grad():
        y = net(x).argmax(1)
    kw = dict(n_faults=150, seed=4, fault_params={"field": "exponent"}, pattern="^weight$")
    pruned = run_campaign(net, x, y, **kw)
    full = run_campaign(net, x, y, prune_inert=False, **kw)
    assert (pruned.outcomes == full.outcomes).all()
    assert {lv.layer: lv.inert_share for lv in pruned.per_layer}["a.weight"] is None


def test_ranger_bounds_the_faults_injected_into_a_bounded_layer():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        net[0].bias += 4.0  # positive activations: a bit-30 flip makes them ~1e38, out of range
    x = torch.randn(64, 6)
    with torch.no_grad():
        y = net(x).argmax(1)
    res = evaluate_protection(net, x, y, RangeRestriction(), target="activations",
                              layer_types=["ReLU"], n_faults=128, seed=5,
                              fault_params={"bit": 30})
    assert res.baseline.sdc.k >= 10
    # the clamp sees the fault (injected after it, the counts were equal)
    assert res.protected.sdc.k < res.baseline.sdc.k / 2 and res.sdc_reduction_ci[0] > 0


def test_nested_weight_range_checks_put_the_parameter_back():
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    x = torch.randn(8, 6)
    param = net[0].weight
    outer, inner = WeightRangeCheck().fit(net), WeightRangeCheck(mode="clamp").fit(net)
    with torch.no_grad():
        clean = net(x)
        with outer.applied(net), inner.applied(net):
            assert torch.equal(net(x), clean)
        with inner.applied(net), outer.applied(net):
            assert torch.equal(net(x), clean)
    assert net[0].weight is param and isinstance(net[0].weight, nn.Parameter)
    assert not any(k.startswith("_trustbench") for k in net[0].__dict__)


@pytest.mark.parametrize("kwargs, match", [
    (dict(margin=-0.5), "margin"), (dict(margin=float("nan")), "margin"),
    (dict(margin="a"), "margin"), (dict(batch_size=0), "batch_size"),
])
def test_ranger_parameters_are_checked(kwargs, match):
    from trustbench.faults.errors import FaultError

    with pytest.raises(FaultError, match=match):
        RangeRestriction(**kwargs)


def test_int8_copies_keep_ties_and_convert_every_convolution():
    lin = nn.Linear(8, 8)
    net = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding="same"), nn.ReLU(),
        nn.Unflatten(2, (2, 3)),  # (B, 4, 2, 3)
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Flatten(),
        nn.Linear(24, 8), lin, nn.ReLU(), lin, nn.ConvTranspose1d(1, 1, 1) if False else
        nn.Identity(), nn.Linear(8, 3)).eval()
    x = torch.randn(16, 2, 6)
    q = to_precision(net, "int8")
    kinds = [type(m).__name__ for m in q.net]
    assert kinds[0] == "QuantConv" and kinds[3] == "QuantConv"
    assert q.net[6] is q.net[8] and isinstance(q.net[6], QuantLinear)
    with torch.no_grad():
        ref, out = net(x), q(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3  # int8 rounding only
    sites = weight_sites(q, pattern=r"^weight(_q)?$")
    assert {s.layout.name for s in sites} == {"int8"}
    assert len(sites) == 5  # the tied layer once
    assert isinstance(q.net[0], QuantConv) and q.kept_float == {}
    tconv = to_precision(nn.Sequential(nn.ConvTranspose1d(2, 2, 3), nn.Flatten(),
                                       nn.Linear(16, 3)).eval(), "int8")
    assert "0" in tconv.kept_float


def test_default_sites_include_subclasses_of_linear_layers():
    class LoRALinear(nn.Linear):
        pass

    net = nn.Sequential(LoRALinear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    assert [s.name for s in weight_sites(net)] == ["0.weight", "2.weight"]


class KeywordIdentity(nn.Module):
    """Calls a Dropout (eval: returns its input) with a keyword argument and through a tuple
    element; another branch reads the same tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.fc(x)
        return self.head(torch.cat([self.drop(input=h), torch.tanh(h)], 1))


@pytest.mark.parametrize("model, layer_type, site", [
    (SkipThroughIdentity, "Identity", "same"),  # returns its positional input
    (KeywordIdentity, "Dropout", "drop"),       # returns its keyword input (eval Dropout)
])
def test_a_fault_in_a_module_returning_its_input_stays_in_that_output(model, layer_type, site):
    torch.manual_seed(2)
    net = model().eval()
    x = torch.randn(32, 6)
    with torch.no_grad():
        y = net(x).argmax(1)
    res = run_campaign(net, x, y, target="activations", layer_types=[layer_type], n_faults=96,
                       seed=1, fault_params={"field": "exponent"})
    expected = naive_activation(net, x, y, res, {0: (getattr(net, site), 0)})
    assert (res.outcomes == expected).all()


def test_compare_precisions_takes_activation_campaigns_too():
    from trustbench.faults.precision import compare_precisions

    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(32, 6)
    with torch.no_grad():
        y = net(x).argmax(1)
    out = compare_precisions(net, x, y, ("fp32", "int8"), target="activations", n_faults=64)
    assert [r.precision for r in out] == ["fp32", "int8"]
    assert all(r.result.target == "activations" and r.result.n_faults == 64 for r in out)
