"""Range restriction (Ranger) and the protection evaluation (faults.protection)."""

from __future__ import annotations

import pytest
import torch

from faults.campaign import CampaignConfig
from faults.errors import FaultError
from faults.protection import RangeRestriction, evaluate_protection, newcombe_difference
from trustbench import registry

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
