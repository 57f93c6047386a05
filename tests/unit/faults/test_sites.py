"""Selecting weight and activation injection sites (faults.sites)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustbench.faults.errors import FaultError
from trustbench.faults.precision import to_precision
from trustbench.faults.sites import activation_sites, weight_sites


def test_default_weight_sites(tiny):
    net, _, _ = tiny
    sites = weight_sites(net)
    assert [s.name for s in sites] == ["conv.weight", "fc1.weight", "fc2.weight"]
    assert sites[0].layer_type == "Conv2d" and sites[0].nbits == 6 * 9 * 32
    assert sites[0].tensor is net.conv.weight


def test_filters(tiny):
    net, _, _ = tiny
    assert [s.name for s in weight_sites(net, ["Linear"], "bias")] == ["fc1.bias", "fc2.bias"]
    assert len(weight_sites(net, [nn.Conv2d], "")) == 2


def test_unknown_layer_type_lists_layers(tiny):
    net, _, _ = tiny
    with pytest.raises(FaultError, match=r"unknown layer type.*Conv3x3.*fc1 \(Linear\)"):
        weight_sites(net, ["Conv3x3"])


def test_no_match_lists_layers(tiny):
    net, _, _ = tiny
    with pytest.raises(FaultError, match=r"no weight tensors match.*conv \(Conv2d\)"):
        weight_sites(net, ["Linear"], "gamma")
    with pytest.raises(FaultError, match="no weight tensors"):
        weight_sites(nn.Sequential(nn.ReLU()))


def test_unsupported_dtype_buffer():
    bn = nn.Sequential(nn.BatchNorm1d(3))
    with pytest.raises(FaultError, match="num_batches_tracked.*unsupported dtype"):
        weight_sites(bn, ["BatchNorm1d"], "num_batches")


def test_int8_copy_sites(tiny):
    net, _, _ = tiny
    sites = weight_sites(to_precision(net, "int8"), None, r"^weight(_q)?$")
    assert all(s.layout.name == "int8" for s in sites) and len(sites) == 3


def test_activation_sites(tiny):
    net, _, _ = tiny
    assert [s.name for s in activation_sites(net)] == ["conv", "fc1", "fc2"]
    assert [s.name for s in activation_sites(net, ["ReLU"])] == ["act", "act2"]
    with pytest.raises(FaultError, match="no modules match"):
        activation_sites(net, None, "nothing_here")
    assert activation_sites(net, "all")[0].module is net.conv
    assert torch.is_tensor(net.conv.weight)
