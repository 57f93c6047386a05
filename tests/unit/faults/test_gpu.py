"""The engine on a CUDA GPU: bits flipped in GPU memory, undone, same decisions as the CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from faults.campaign import run_campaign

from .conftest import make_data, state_bytes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_weight_campaign_on_gpu_matches_cpu():
    net, x, y = make_data(0, n=256)
    gpu = copy.deepcopy(net).cuda()
    before = state_bytes(gpu)
    on_gpu = run_campaign(gpu, x, y, n_faults=300, seed=2, fault_params={"field": "exponent"})
    full = run_campaign(gpu, x, y, n_faults=300, seed=2, fault_params={"field": "exponent"},
                        suffix=False)
    on_cpu = run_campaign(net, x, y, n_faults=300, seed=2, fault_params={"field": "exponent"})
    assert state_bytes(gpu) == before
    assert (on_gpu.outcomes == full.outcomes).all()
    assert (on_gpu.outcomes == on_cpu.outcomes).mean() >= 0.97
    assert on_gpu.sdc.k + on_gpu.due.k > 10


def test_activation_campaign_on_gpu_matches_cpu():
    net, x, y = make_data(1, n=256)
    gpu = copy.deepcopy(net).cuda()
    a = run_campaign(gpu, x, y, target="activations", n_faults=1024, seed=4,
                     fault_params={"field": "exponent"})
    b = run_campaign(net, x, y, target="activations", n_faults=1024, seed=4,
                     fault_params={"field": "exponent"})
    assert (a.outcomes == b.outcomes).mean() >= 0.97
