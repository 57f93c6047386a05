"""Precision copies, their campaigns, and the profile budgets."""

from __future__ import annotations

import pytest
import torch

from trustbench.errors import ConfigError
from trustbench.faults.errors import FaultError
from trustbench.faults.precision import compare_precisions, to_precision
from trustbench.faults.profiles import budget
from trustbench.stats import leveugle_sample_size


@pytest.mark.parametrize("p", ["fp32", "bf16", "int8"])
def test_copies_agree_with_the_model(tiny, p):
    net, x, _ = tiny
    m = to_precision(net, p)
    with torch.no_grad():
        agree = (m(x).argmax(1) == net(x).argmax(1)).float().mean().item()
    assert agree > 0.85
    assert m(x).dtype == torch.float32
    assert next(net.parameters()).dtype == torch.float32  # the original is untouched


def test_unknown_precision(tiny):
    with pytest.raises(FaultError, match="fp32, fp16, bf16, int8"):
        to_precision(tiny[0], "fp8")


def test_compare_precisions(tiny):
    net, x, y = tiny
    res = compare_precisions(net, x, y, ("fp32", "bf16", "int8"), n_faults=100, seed=0)
    assert [r.precision for r in res] == ["fp32", "bf16", "int8"]
    assert [r.result.dtype for r in res] == ["float32", "bfloat16", "int8"]
    assert all(r.result.path == "fx" for r in res)
    assert all(0 <= r.result.sdc.value <= 1 and r.clean_accuracy > 0.5 for r in res)


def test_budgets():
    assert budget("smoke").n_faults == 200
    std, full = budget("standard"), budget("full")
    assert std.n_faults is None and (std.margin, std.confidence) == (0.05, 0.95)
    assert (full.margin, full.confidence) == (0.01, 0.99)
    assert leveugle_sample_size(10**9, full.margin, full.confidence) > 16_000
    with pytest.raises(ConfigError, match="smoke, standard, full"):
        budget("huge")


def test_budget_options():
    b = budget("smoke", {"n_faults": 50, "precisions": ["fp32"]})
    assert b.n_faults == 50 and b.precisions == ("fp32",)
    with pytest.raises(ConfigError, match="accepted: confidence"):
        budget("smoke", {"n_fault": 3})


def test_int8_copy_of_a_model_that_reads_a_layer_weight_itself():
    """torchvision's Swin calls F.linear on ``self.qkv.weight``: the int8 copy's layers expose
    the dequantised weight, so faults in ``weight_q`` reach that use too."""

    class Functional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.nn.functional.linear(x, self.qkv.weight, self.qkv.bias)

    torch.manual_seed(0)
    net = Functional().eval()
    q = to_precision(net, "int8")
    x = torch.rand(5, 4)
    with torch.no_grad():
        assert torch.allclose(q(x), net(x), atol=0.05)
        layer = q.net.qkv
        layer.weight_q[0, 0] = 127 if int(layer.weight_q[0, 0]) < 0 else -127
        assert not torch.allclose(q(x), net(x), atol=0.05)
