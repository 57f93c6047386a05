"""The engines on a CUDA GPU: bits flipped in GPU memory, undone, CUDA graphs == eager."""

from __future__ import annotations

import copy

import pytest
import torch

from trustbench.faults.campaign import run_campaign
from trustbench.faults.outcomes import DUE

from .conftest import Fragile, make_data, make_resnet_data, state_bytes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

EXP = {"field": "exponent"}


def test_weight_campaign_on_gpu_matches_cpu():
    net, x, y = make_data(0, n=256)
    gpu = copy.deepcopy(net).cuda()
    before = state_bytes(gpu)
    on_gpu = run_campaign(gpu, x, y, n_faults=300, seed=2, fault_params=EXP)
    full = run_campaign(gpu, x, y, n_faults=300, seed=2, fault_params=EXP, suffix=False,
                        cuda_graphs=False)
    on_cpu = run_campaign(net, x, y, n_faults=300, seed=2, fault_params=EXP)
    assert state_bytes(gpu) == before
    assert on_gpu.execution.startswith("cuda-graphs"), on_gpu.execution_reason
    assert full.execution == "eager"
    assert (on_gpu.outcomes == full.outcomes).all()
    assert on_gpu.state.changed == full.state.changed
    assert (on_gpu.outcomes == on_cpu.outcomes).mean() >= 0.97
    assert on_gpu.sdc.k + on_gpu.due.k > 10


# one input batch or four (a graph per batch); 4 concurrent lanes (private copies) or 1
@pytest.mark.parametrize("batch_size,lanes", [(1024, 4), (1024, 1), (64, 4)])
def test_weight_graphs_equal_eager_full_forward(batch_size, lanes):
    net, x, y = make_resnet_data()
    gpu = net.cuda()
    before = state_bytes(gpu)
    kw = dict(n_faults=240, seed=5, fault_params=EXP, batch_size=batch_size)
    graphs = run_campaign(gpu, x, y, lanes=lanes, **kw)
    eager = run_campaign(gpu, x, y, cuda_graphs=False, **kw)
    full = run_campaign(gpu, x, y, suffix=False, cuda_graphs=False, **kw)
    assert state_bytes(gpu) == before
    assert graphs.path == "fx" and int(graphs.path_reason.split()[0]) >= 4
    assert graphs.execution.startswith("cuda-graphs"), graphs.execution_reason
    assert ("concurrent streams" in graphs.execution_reason) == (lanes > 1)
    assert eager.execution == "eager" and "turned off" in eager.execution_reason
    for other in (eager, full):
        assert (graphs.outcomes == other.outcomes).all()
        assert graphs.state.changed == other.state.changed
    assert graphs.sdc.k + graphs.due.k > 10


# batched faults: K faults of one start segment per pass of the later segments, in graphs on
# the main stream (1 lane) or on 2 lanes with private copies; one input batch or four
@pytest.mark.parametrize("batch_size,lanes,fault_batch", [(1024, 1, 4), (1024, 2, 4),
                                                         (64, 2, 3)])
def test_batched_weight_faults_equal_eager_full_forward(batch_size, lanes, fault_batch):
    net, x, y = make_resnet_data()
    gpu = net.cuda()
    before = state_bytes(gpu)
    kw = dict(n_faults=240, seed=5, fault_params=EXP, batch_size=batch_size)
    batched = run_campaign(gpu, x, y, lanes=lanes, fault_batch=fault_batch, **kw)
    full = run_campaign(gpu, x, y, suffix=False, cuda_graphs=False, **kw)
    assert state_bytes(gpu) == before
    assert batched.execution.startswith("cuda-graphs"), batched.execution_reason
    assert f"ran {fault_batch} at a time" in batched.execution_reason, batched.execution_reason
    assert (batched.outcomes == full.outcomes).all()
    assert batched.state.changed == full.state.changed
    assert batched.sdc.k + batched.due.k > 10


def test_layer_uniform_weight_faults_with_graphs():
    net, x, y = make_resnet_data(64)
    gpu = net.cuda()
    kw = dict(n_faults=150, seed=8, distribution="layer-uniform", fault_model="stuck_at_1",
              pattern="")
    a = run_campaign(gpu, x, y, **kw)
    b = run_campaign(gpu, x, y, suffix=False, cuda_graphs=False, **kw)
    assert a.execution == "cuda-graphs", a.execution_reason  # every start has >= 4 faults
    assert (a.outcomes == b.outcomes).all()


def test_capture_failure_falls_back_to_eager():
    m = Fragile().cuda().eval()
    x = torch.rand(4, 2)
    res = run_campaign(m, x, torch.zeros(4, dtype=torch.long), n_faults=10,
                       fault_params={"bit": 30}, suffix=False)
    assert res.counts["due"] == 10 and (res.outcomes == DUE).all()
    assert res.execution == "eager" and "capture failed" in res.execution_reason
    assert torch.equal(m.fc.weight, torch.ones(2, 2, device="cuda"))
    act = run_campaign(m, x, torch.zeros(4, dtype=torch.long), n_faults=40, batch_size=4,
                       target="activations", layer_types="all")
    assert act.execution == "eager" and "capture failed" in act.execution_reason


def test_activation_campaign_on_gpu_matches_cpu():
    net, x, y = make_data(1, n=256)
    gpu = copy.deepcopy(net).cuda()
    a = run_campaign(gpu, x, y, target="activations", n_faults=1024, seed=4, batch_size=128,
                     fault_params=EXP)
    b = run_campaign(net, x, y, target="activations", n_faults=1024, seed=4, batch_size=128,
                     fault_params=EXP)
    assert a.execution == "cuda-graphs", a.execution_reason
    assert (a.outcomes == b.outcomes).mean() >= 0.97


@pytest.mark.parametrize("name,lanes,target", [("bitflip", 4, "activations"),
                                               ("bitflip", 1, "activations"),
                                               ("stuck_at_0", 4, "activations"),
                                               ("random_value", 2, "activations"),
                                               ("bitflip", 4, "inputs"),
                                               ("bitflip", 2, "inputs-uint8")])
def test_activation_graphs_equal_eager(name, lanes, target):
    net, x, y = make_resnet_data(100)
    gpu = net.cuda()
    x_before = x.cuda().clone()
    kw = dict(target=target.split("-")[0], n_faults=1000, seed=3, batch_size=96,
              fault_model=name, layer_types="all" if target == "activations" else None,
              input_encoding="uint8" if target.endswith("uint8") else "native")
    a = run_campaign(gpu, x, y, lanes=lanes, **kw)
    b = run_campaign(gpu, x, y, cuda_graphs=False, **kw)
    assert a.execution == "cuda-graphs", a.execution_reason
    assert b.execution == "eager"
    assert (a.outcomes == b.outcomes).all()  # 1000 = 10 full batches + 40 (padded in graphs)
    assert a.state.changed == b.state.changed
    if name == "bitflip":
        assert a.sdc.k + a.due.k > 10
    assert torch.equal(x.cuda(), x_before)  # input faults hit copies of the inputs


def test_inert_pruning_on_gpu_equals_running_every_fault():
    from .test_inert import _deep_data

    net, x, y = _deep_data(256)
    gpu = net.cuda()
    kw = dict(n_faults=300, seed=4, distribution="layer-uniform", fault_params=EXP)
    pruned = run_campaign(gpu, x, y, **kw)
    every = run_campaign(gpu, x, y, prune_inert=False, suffix=False, cuda_graphs=False, **kw)
    assert (pruned.outcomes == every.outcomes).all()
    assert pruned.state.changed == every.state.changed
    # cuBLAS forms every product of the linear head; a convolution whose cuDNN kernel mixes
    # weights (Winograd/FFT) is left unanalysed by the probe, not pruned
    assert pruned.inert_bits_share is not None and pruned.n_pruned > 0


@pytest.mark.parametrize("lanes", [1, 2])
def test_weight_range_check_in_graphs_equals_eager(lanes):
    """The weight range check's pre-hook swaps a checked weight in at capture time; replays
    recompute it from the stored (faulty) words, as the eager run does."""
    from trustbench.faults.protection import WeightRangeCheck

    net, x, y = make_resnet_data()
    gpu = net.cuda()
    before = state_bytes(gpu)
    check = WeightRangeCheck().fit(gpu)
    kw = dict(n_faults=240, seed=5, fault_params=EXP, lanes=lanes)
    with check.applied(gpu):
        graphs = run_campaign(gpu, x, y, **kw)
        eager = run_campaign(gpu, x, y, cuda_graphs=False, suffix=False, **kw)
    plain = run_campaign(gpu, x, y, **kw)
    assert state_bytes(gpu) == before
    assert graphs.execution.startswith("cuda-graphs"), graphs.execution_reason
    assert (graphs.outcomes == eager.outcomes).all()
    assert graphs.state.changed == eager.state.changed
    assert graphs.sdc.k < plain.sdc.k  # exponent flips to huge weights are read as zero


def test_sequence_first_and_aliasing_sites_in_graphs_equal_eager():
    """Activation faults in (sequence, batch, features) outputs and in a module that returns
    its input, captured as CUDA graphs, decide exactly as the eager hooks do."""
    from .test_odd_models import SeqFirst, SkipThroughIdentity

    torch.manual_seed(0)
    for net, x, kw in ((SeqFirst(), torch.randn(512, 5, 4), dict(pattern="linear")),
                       (SkipThroughIdentity(), torch.randn(512, 6),
                        dict(layer_types=["Identity"]))):
        gpu = net.eval().cuda()
        with torch.no_grad():
            y = gpu(x.cuda()).argmax(1).cpu()
        common = dict(target="activations", n_faults=2048, seed=3, batch_size=128,
                      fault_params=EXP, **kw)
        graphs = run_campaign(gpu, x, y, lanes=2, **common)
        eager = run_campaign(gpu, x, y, cuda_graphs=False, **common)
        assert graphs.execution.startswith("cuda-graphs"), graphs.execution_reason
        assert (graphs.outcomes == eager.outcomes).all()
        assert graphs.sdc.k + graphs.due.k > 20
