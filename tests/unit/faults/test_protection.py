"""Range restriction (Ranger) and the protection evaluation (faults.protection)."""

from __future__ import annotations

import pytest
import torch

from trustbench import registry
from trustbench.faults.campaign import CampaignConfig
from trustbench.faults.errors import FaultError
from trustbench.faults.protection import (
    RangeRestriction,
    WeightRangeCheck,
    evaluate_protection,
    newcombe_difference,
)

from .conftest import state_bytes


def test_registered():
    assert registry.get("protection", "ranger") is RangeRestriction


def test_fit_and_clamp(tiny):
    net, x, _ = tiny
    r = RangeRestriction().fit(net, x)
    assert set(r.bounds) == {"act", "act2", "pool"}
    assert all(lo <= hi for lo, hi in r.bounds.values())
    with torch.no_grad():
        clean = net(x)
        with r.applied(net):
            same = net(x)
            big = net(torch.full_like(x, 1e30))
        assert torch.equal(clean, same)  # bounds come from these inputs: nothing clamped
        assert torch.isfinite(big).all()
    assert not net.act._forward_hooks  # hooks removed


def test_not_fitted_and_wrong_model(tiny):
    net, x, _ = tiny
    with pytest.raises(FaultError, match="fitted"), RangeRestriction().applied(net):
        pass
    r = RangeRestriction().fit(net, x)
    other = torch.nn.Sequential(torch.nn.ReLU())
    with pytest.raises(FaultError, match="another model"), r.applied(other):
        pass


def test_ranger_reduces_exponent_sdc(tiny):
    net, x, y = tiny
    before = state_bytes(net)
    cfg = CampaignConfig(n_faults=200, seed=4, fault_params={"bit": 30})
    res = evaluate_protection(net, x, y, RangeRestriction(), cfg)
    assert res.baseline.sdc.value > 0.15
    assert res.protected.sdc.value < 0.6 * res.baseline.sdc.value
    assert res.sdc_reduction_ci[0] > 0  # a significant reduction
    assert res.accuracy_cost == 0.0
    assert res.latency_s > 0 and res.latency_protected_s > 0
    assert state_bytes(net) == before
    assert res.protection["name"] == "ranger"


def test_newcombe_contains_difference():
    lo, hi = newcombe_difference(0.3, (0.25, 0.36), 0.1, (0.07, 0.14))
    assert lo < 0.2 < hi and lo > 0


def test_weight_range_registered_and_bad_parameters(tiny):
    assert registry.get("protection", "weight_range") is WeightRangeCheck
    with pytest.raises(FaultError, match="mode"):
        WeightRangeCheck(mode="drop")
    with pytest.raises(FaultError, match="parameters are"):
        WeightRangeCheck(bound=3)
    net = tiny[0]
    with pytest.raises(FaultError, match="fitted first"), WeightRangeCheck().applied(net):
        pass
    fitted = WeightRangeCheck().fit(net)
    with pytest.raises(FaultError, match="another model"), fitted.applied(
            torch.nn.Sequential(torch.nn.Linear(2, 2))):
        pass


@pytest.mark.parametrize("mode", ["zero", "clamp"])
def test_weight_range_reads_out_of_range_words_as_zero_or_bound(tiny, mode):
    net, x, _ = tiny
    check = WeightRangeCheck(mode=mode).fit(net, x)
    bound = float(net.fc1.weight.detach().abs().amax())
    assert check.bounds["fc1"] == bound and set(check.bounds) == {"conv", "fc1", "fc2"}
    names = [n for n, _ in net.named_parameters()]
    with torch.no_grad():
        clean = net(x)
        with check.applied(net):
            assert torch.equal(net(x), clean)  # every clean word is in range
            assert [n for n, _ in net.named_parameters()] == names  # nothing registered
            net.fc1.weight[3, 5] = 1e30
            protected = net(x)
            assert isinstance(net.fc1.weight, torch.nn.Parameter)  # put back after the call
        replaced = net.fc1.weight[3, 5].item()
        net.fc1.weight[3, 5] = 0.0 if mode == "zero" else bound
        expected = net(x)
        net.fc1.weight[3, 5] = replaced
        assert torch.equal(protected, expected)
        if mode == "zero":
            net.fc1.weight[3, 5] = float("nan")
            with check.applied(net):
                assert torch.isfinite(net(x)).all()
    assert not net.fc1._forward_pre_hooks and not net.fc1._forward_hooks


def test_weight_range_removes_exponent_sdc(tiny):
    net, x, y = tiny
    before = state_bytes(net)
    cfg = CampaignConfig(n_faults=200, seed=4, fault_params={"bit": 30})
    res = evaluate_protection(net, x, y, WeightRangeCheck(), cfg)
    assert res.baseline.sdc.value > 0.15 and res.protected.sdc.value < 0.02
    assert res.sdc_reduction_ci[0] > 0.1
    assert res.accuracy_cost == 0.0 and res.protection["name"] == "weight_range"
    assert state_bytes(net) == before


def test_protection_effects_are_paired_over_the_same_faults_and_inputs(tiny):
    import numpy as np

    from trustbench.faults.outcomes import CRITICAL_SDC, SDC
    from trustbench.faults.protection import paired_counts
    from trustbench.stats import paired_difference

    net, x, y = tiny
    cfg = CampaignConfig(n_faults=200, seed=4, fault_params={"bit": 30})
    res = evaluate_protection(net, x, y, RangeRestriction(), cfg)
    assert res.paired
    base, prot = res.baseline, res.protected
    is_sdc = [np.isin(r.outcomes, (SDC, CRITICAL_SDC)) for r in (base, prot)]
    expected = paired_difference(*paired_counts(*is_sdc))
    assert res.sdc_reduction == pytest.approx(base.sdc.value - prot.sdc.value)
    assert res.sdc_reduction_ci == pytest.approx(expected.ci)
    # the paired interval is narrower than the independent-samples one
    indep = newcombe_difference(base.sdc.value, base.sdc.ci, prot.sdc.value, prot.sdc.ci)
    assert res.sdc_reduction_ci[1] - res.sdc_reduction_ci[0] < indep[1] - indep[0]
    lo, hi = res.critical_sdc_reduction_ci
    assert lo <= res.critical_sdc_reduction <= hi
    assert res.critical_sdc_reduction == pytest.approx(base.critical_sdc.value
                                                       - prot.critical_sdc.value)
    # no clean input changed its decision: cost 0 with an interval around it
    assert res.accuracy_cost == 0.0 and res.n_inputs == len(x)
    assert res.accuracy_cost_ci[0] < 0 < res.accuracy_cost_ci[1]
    lo, hi = res.latency_overhead_ci
    assert lo <= res.latency_overhead <= hi and res.latency_reps >= 10


def test_protection_on_different_faults_is_not_paired(tiny):
    net, x, y = tiny
    other = CampaignConfig(n_faults=200, seed=5, fault_params={"bit": 30})
    from trustbench.faults.campaign import run_campaign

    baseline = run_campaign(net, x, y, other)
    cfg = CampaignConfig(n_faults=200, seed=4, fault_params={"bit": 30})
    res = evaluate_protection(net, x, y, RangeRestriction(), cfg, baseline=baseline)
    assert not res.paired
    b, p = res.baseline.sdc, res.protected.sdc
    assert res.sdc_reduction_ci == pytest.approx(newcombe_difference(b.value, b.ci, p.value, p.ci))


def test_weight_range_lists_layers_read_without_being_called():
    class Functional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = torch.nn.Linear(4, 4)
            self.qkv = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.nn.functional.linear(torch.relu(self.used(x)), self.qkv.weight)

    net = Functional().eval()
    check = WeightRangeCheck().fit(net, torch.rand(8, 4))
    assert set(check.bounds) == {"used"} and check.unprotected == ["qkv"]
    assert check.describe()["unprotected"] == ["qkv"]
    assert set(WeightRangeCheck().fit(net).bounds) == {"used", "qkv"}  # without x: not known
