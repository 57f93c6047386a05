"""Campaigns: outcomes, bit-identity, suffix = full, resume, statistics (faults.campaign)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustbench.faults.campaign import (
    CampaignConfig,
    CampaignState,
    mean_changed_interval,
    run_campaign,
)
from trustbench.faults.errors import FaultError
from trustbench.faults.runtime import strict_fp32
from trustbench.stats import leveugle_sample_size

from .conftest import (
    Fragile,
    MemoryCheckpoint,
    interrupted_after,
    make_data,
    naive_outcome,
    state_bytes,
)


def test_suffix_equals_full_and_weights_restored(tiny):
    net, x, y = tiny
    before = state_bytes(net)
    fast = run_campaign(net, x, y, n_faults=300, seed=3)
    slow = run_campaign(net, x, y, n_faults=300, seed=3, suffix=False)
    assert fast.path == "fx" and slow.path == "full"
    assert (fast.outcomes == slow.outcomes).all()
    assert fast.state.changed == slow.state.changed
    assert state_bytes(net) == before
    assert fast.counts["sdc"] + fast.counts["critical_sdc"] == fast.sdc.k
    assert fast.sdc.ci[0] <= fast.sdc.value <= fast.sdc.ci[1]
    assert sum(fast.counts.values()) == fast.n_faults == 300


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), name=st.sampled_from(
    ["bitflip", "multibit", "burst", "stuck_at_0", "stuck_at_1", "random_value"]),
    target=st.sampled_from(["weights", "activations"]))
def test_campaign_leaves_model_bit_identical(seed, name, target):
    net, x, y = make_data(seed % 7, n=24)
    before = state_bytes(net)
    res = run_campaign(net, x, y, n_faults=40, seed=seed, fault_model=name, target=target,
                       pattern="" if target == "weights" else None)
    assert state_bytes(net) == before
    assert res.n_faults == 40


def test_exponent_bits_hurt_mantissa_bits_do_not(tiny):
    net, x, y = tiny
    hi = run_campaign(net, x, y, n_faults=150, seed=1, fault_params={"bit": 30})
    lo = run_campaign(net, x, y, n_faults=150, seed=1, fault_params={"bit": 0})
    assert hi.sdc.value + hi.due.value > 0.15  # ~0.25 here; ReLUs mask many
    assert lo.sdc.k == 0 and lo.due.k == 0
    assert hi.per_bit_n[0][30] > 0 and hi.per_bit_sdc[0][0] is None


def test_inputs_changed_per_fault_has_an_interval(tiny):
    net, x, y = tiny
    hi = run_campaign(net, x, y, n_faults=150, seed=1, fault_params={"bit": 30})
    lo, up = hi.mean_inputs_changed_ci
    assert 0 <= lo < hi.mean_inputs_changed < up <= 1
    shares = np.asarray(hi.state.changed) / hi.n_inputs
    assert hi.mean_inputs_changed == pytest.approx(shares.mean())
    # no fault changed anything: the Wilson bound of "changed any input" (0 of n), not a point
    none = run_campaign(net, x, y, n_faults=150, seed=1, fault_params={"bit": 0})
    assert none.mean_inputs_changed == 0.0
    assert none.mean_inputs_changed_ci[0] == 0.0 and 0.01 < none.mean_inputs_changed_ci[1] < 0.03
    assert all(np.isnan(mean_changed_interval(np.array([0.5]))))


def test_exception_is_due_and_undone():
    m = Fragile().eval()
    x = torch.rand(4, 2)
    res = run_campaign(m, x, torch.zeros(4, dtype=torch.long), n_faults=10,
                       fault_params={"bit": 30}, suffix=False)
    assert res.counts["due"] == 10
    assert torch.equal(m.fc.weight, torch.ones(2, 2))


def test_resume_matches_uninterrupted(tiny):
    net, x, y = tiny
    cfg = CampaignConfig(n_faults=120, seed=5, chunk_size=16, checkpoint_every=32)
    store = MemoryCheckpoint()
    part = run_campaign(net, x, y, cfg, checkpoint=store, stop_after=50)
    assert not part.complete and part.n_faults == 50
    assert store.history == [32, 50]  # at the cadence, and where it stopped
    resumed = run_campaign(net, x, y, cfg, checkpoint=store)
    whole = run_campaign(net, x, y, cfg)
    assert resumed.resumed_from == 50
    assert resumed.complete and (resumed.outcomes == whole.outcomes).all()
    # a state of this campaign is refused by the same campaign on other weights: it starts
    # afresh and measures what it would have measured without one
    other = make_data(1)[0]
    refused = run_campaign(other, x, y, cfg, checkpoint=MemoryCheckpoint.holding(part.state))
    assert refused.resumed_from == 0 and refused.complete
    assert (refused.outcomes == run_campaign(other, x, y, cfg).outcomes).all()
    with pytest.raises(FaultError, match="not a campaign state"):
        CampaignState.from_dict({"bogus": 1})
    # one way to resume: a checkpoint
    with pytest.raises(FaultError, match="checkpoint= only"):
        run_campaign(net, x, y, cfg, state=part.state)


def test_checkpoint_resumes_an_interrupted_campaign_and_only_on_the_same_weights(tiny):
    net, x, y = tiny
    cfg = CampaignConfig(n_faults=120, seed=5, chunk_size=16)
    store = MemoryCheckpoint()
    before = state_bytes(net)
    with pytest.raises(KeyboardInterrupt), interrupted_after(chunks=3):
        run_campaign(net, x, y, cfg, checkpoint=store)
    assert state_bytes(net) == before
    # saved every CHECKPOINT_S seconds (none passed here) and where it stopped
    assert store.history == [48]
    resumed = run_campaign(net, x, y, cfg, checkpoint=store)
    assert store.history == [48, 120] and resumed.complete and resumed.resumed_from == 48
    # with checkpoint_every, at that cadence
    cadence = MemoryCheckpoint()
    run_campaign(net, x, y, cfg, checkpoint=cadence, checkpoint_every=32, stop_after=70)
    assert cadence.history == [32, 64, 70]
    whole = run_campaign(net, x, y, cfg)
    assert (resumed.outcomes == whole.outcomes).all() and resumed.n_faults == 120
    # the same campaign on other weights with the same predictions must start afresh (the
    # fingerprint holds the fault-free logits, the state a digest of the stored weights)
    with torch.no_grad():
        net.fc2.bias[0] += 1e-6  # same architecture, same fault-free predictions
    try:
        fresh = MemoryCheckpoint()
        fresh.saved = {k: json.dumps({**json.loads(v), "n_done": 48,
                                      "outcomes": json.loads(v)["outcomes"][:48],
                                      "changed": json.loads(v)["changed"][:48]})
                       for k, v in store.saved.items()}
        again = run_campaign(net, x, y, cfg, checkpoint=fresh)
        assert again.resumed_from == 0  # not resumed at 48
        assert again.complete
    finally:
        with torch.no_grad():
            net.fc2.bias[0] -= 1e-6


def test_model_digest_sees_every_stored_bit(tiny):
    from trustbench.faults.bits import flip_
    from trustbench.faults.campaign import model_digest

    net, _, _ = tiny
    d = model_digest(net)
    assert d == model_digest(net)
    with torch.no_grad():
        flip_(net.conv.weight, 7, 0)  # the least significant mantissa bit of one word
        assert model_digest(net) != d
        flip_(net.conv.weight, 7, 0)
    assert model_digest(net) == d


def test_leveugle_default_size(tiny):
    net, x, y = tiny
    res = run_campaign(net, x, y, margin=0.1, confidence=0.9)
    bits = (6 * 9 + 96 * 24 + 24 * 5) * 32
    assert res.n_faults == leveugle_sample_size(bits, 0.1, 0.9)


def test_bad_input(tiny):
    net, x, y = tiny
    with pytest.raises(FaultError, match="size 0"):
        run_campaign(net, x, y, n_faults=0)
    with pytest.raises(FaultError, match="target"):
        run_campaign(net, x, y, n_faults=5, target="gradients")
    with pytest.raises(FaultError, match="labels"):
        run_campaign(net, x, y[:3], n_faults=5)
    with pytest.raises(FaultError, match="no weight tensors match"):
        run_campaign(net, x, y, n_faults=5, pattern="running_mean")
    net.train()
    with pytest.raises(FaultError, match="training mode"):
        run_campaign(net, x, y, n_faults=5)
    net.eval()


def test_activation_campaign(tiny):
    net, x, y = tiny
    res = run_campaign(net, x, y, target="activations", n_faults=500, seed=2, batch_size=128,
                       fault_params={"field": "exponent"})
    assert res.path == "hooks" and res.n_faults == 500
    assert [lv.layer for lv in res.per_layer] == ["conv", "fc1", "fc2"]
    assert 0.0 < res.sdc.value + res.due.value < 1.0
    low = run_campaign(net, x, y, target="activations", n_faults=300, seed=2,
                       fault_params={"bit": 0})
    assert low.sdc.value < 0.05


def test_layer_uniform_and_series(tiny):
    net, x, y = tiny
    res = run_campaign(net, x, y, n_faults=90, seed=0, distribution="layer-uniform")
    ns = [lv.sdc.n for lv in res.per_layer]
    assert min(ns) > 15  # each of the three sites gets about a third
    series = res.per_bit_series()
    assert len(series["x"]) == len(series["y"]) == len(series["ci"]) > 10


def test_strict_fp32_restores():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    with strict_fp32():
        assert not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
    after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    assert after == before


_PRECISION_SCRIPT = r"""
import torch
from trustbench.faults.runtime import strict_fp32, _precision_objects

def tr(f):
    try:
        return f()
    except RuntimeError:
        return "mixed"

def state():
    return (tr(torch.get_float32_matmul_precision),
            tr(lambda: torch.backends.cuda.matmul.allow_tf32),
            tr(lambda: torch.backends.cudnn.allow_tf32),
            *[o.fp32_precision for o in _precision_objects()])

def legacy(flag):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = flag

def mixed():
    torch.backends.cuda.matmul.allow_tf32 = True
    if _precision_objects():
        torch.backends.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "ieee"

for setup in (lambda: None, lambda: legacy(False), lambda: legacy(True),
              lambda: torch.set_float32_matmul_precision("high"), mixed):
    setup()
    before = state()
    with strict_fp32():
        inside = state()
        x = torch.randn(3, 3)
        torch.nn.functional.linear(x, x)
    assert inside[:3] == ("highest", False, False), inside
    assert all(p == "ieee" for p in inside[4:]), inside
    assert state() == before, (before, state())
print("ok")
"""


def test_strict_fp32_with_legacy_and_new_settings():
    """TF32 settings made through either torch API (or both, mixed) are handled and restored."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PRECISION_SCRIPT], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_input_faults_match_a_naive_flip_of_each_input():
    """target='inputs': one bit flip per sample in the tensor the model receives, each
    outcome equal to a forward pass of that input with the bit flipped by NumPy; the
    evaluation inputs themselves are not changed."""
    net, x, y = make_data(3, n=64)
    x_before = x.clone()
    res = run_campaign(net, x, y, target="inputs", n_faults=200, seed=1, batch_size=32,
                       fault_params={"field": "exponent"})
    assert torch.equal(x, x_before)
    assert [lv.layer for lv in res.per_layer] == ["input"] and res.path == "hooks"
    assert "model's input" in res.path_reason
    with torch.no_grad():
        golden = net(x).argmax(1)
    for j in range(res.n_faults):
        i, e, b = int(res.plan.sample[j]), int(res.plan.element[j]), int(res.plan.bit[j])
        xi = x[i : i + 1].clone()
        xi.numpy().reshape(-1).view(np.uint32)[e] ^= np.uint32(1 << b)
        with torch.no_grad():
            out = net(xi)
        assert res.outcomes[j] == naive_outcome(out, int(golden[i]), int(y[i])), f"fault {j}"
    assert res.sdc.k + res.due.k >= 5 and res.counts["masked"] >= 5


def test_input_faults_refuse_site_filters():
    net, x, y = make_data(0, n=8)
    with pytest.raises(FaultError, match="input faults hit the model's input"):
        run_campaign(net, x, y, target="inputs", n_faults=4, layer_types=("Linear",))
    with pytest.raises(FaultError, match="accepted"):
        run_campaign(net, x, y, target="input", n_faults=4)


def test_activation_sites_never_called_are_left_out_with_the_reason():
    """As in torchvision's Swin, whose attention calls F.linear on a Linear's weight: that
    module has no output to fault; it is left out and named, not an error."""

    class Functional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = torch.nn.Linear(4, 4)
            self.qkv = torch.nn.Linear(4, 4)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x):
            h = torch.nn.functional.linear(torch.relu(self.used(x)), self.qkv.weight)
            return self.head(h)

    torch.manual_seed(0)
    net = Functional().eval()
    x = torch.rand(32, 4)
    y = net(x).argmax(1).detach()
    res = run_campaign(net, x, y, target="activations", n_faults=64, seed=0)
    assert [lv.layer for lv in res.per_layer] == ["used", "head"]
    assert "qkv (not called by the forward pass" in res.path_reason
    with pytest.raises(FaultError, match="none of the selected modules"):
        run_campaign(net, x, y, target="activations", n_faults=8, pattern="qkv")


def test_input_faults_in_an_8_bit_pixel_buffer():
    """input_encoding='uint8': each fault flips a bit of the pixel byte the [0, 1] input is
    decoded from (u / 255); outcomes equal a naive NumPy flip of that byte, judged against the
    decoded fault-free input."""
    net, x, y = make_data(4, n=64)
    res = run_campaign(net, x, y, target="inputs", input_encoding="uint8", n_faults=200,
                       seed=2, batch_size=32, fault_params={"bit": 7})  # +-128/255
    assert res.dtype == "uint8" and "8-bit pixel buffer" in res.path_reason
    pixels = np.clip(np.round(x.numpy() * 255), 0, 255).astype(np.uint8)
    decoded = torch.from_numpy(pixels.astype(np.float32)) / 255
    with torch.no_grad():
        golden = net(decoded).argmax(1)
    for j in range(res.n_faults):
        i, e, b = int(res.plan.sample[j]), int(res.plan.element[j]), int(res.plan.bit[j])
        u = pixels[i].copy().reshape(-1)
        u[e] ^= np.uint8(1 << b)
        xi = torch.from_numpy(u.reshape(1, *x.shape[1:]).astype(np.float32)) / 255
        with torch.no_grad():
            out = net(xi)
        assert res.outcomes[j] == naive_outcome(out, int(golden[i]), int(y[i])), f"fault {j}"
    assert res.sdc.k >= 5 and res.due.k == 0  # 8-bit pixels cannot become Inf or NaN
    with pytest.raises(FaultError, match="uint8 has no sign bits"):
        run_campaign(net, x, y, target="inputs", input_encoding="uint8", n_faults=4,
                     fault_params={"field": "sign"})
    with pytest.raises(FaultError, match=r"in \[0, 1\]"):
        run_campaign(net, x * 2, y, target="inputs", input_encoding="uint8", n_faults=4)
    with pytest.raises(FaultError, match="applies to input faults only"):
        run_campaign(net, x, y, input_encoding="uint8", n_faults=4)
    with pytest.raises(FaultError, match="unknown input encoding"):
        run_campaign(net, x, y, target="inputs", input_encoding="uint16", n_faults=4)
