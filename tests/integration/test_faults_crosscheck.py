"""Cross-check of the fault engine against an independent, naive implementation.

For every fault the naive side deep-copies the model to the CPU, flips the bit with NumPy on an
unsigned-integer view of the copy's weight, runs a full forward pass and classifies the outcome
itself. Every decision (masked / SDC / critical SDC / DUE) must be equal, in strict fp32.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from trustbench.faults.campaign import run_campaign
from trustbench.faults.outcomes import CRITICAL_SDC, DUE, MASKED, SDC
from trustbench.models import DigitsCNN


def _data(seed: int, n: int, shape: tuple[int, ...], model: nn.Module):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y = torch.where(torch.rand(n, generator=g) < 0.3, (y + 1) % 10, y)
    return x, y


def _naive_outcome(model, name, element, bit, x, y, golden) -> int:
    m = copy.deepcopy(model).cpu()
    tensor = dict([*m.named_parameters(), *m.named_buffers()])[name]
    words = tensor.detach().numpy().reshape(-1).view(np.uint32)  # shares memory with m
    words[element] ^= np.uint32(1 << int(bit))
    with torch.no_grad():
        out = m(x)
    if not np.isfinite(out.numpy()).all():
        return DUE
    pred = out.argmax(1)
    changed = pred != golden
    if (changed & (golden == y)).any():
        return CRITICAL_SDC
    return SDC if changed.any() else MASKED


def _crosscheck(model, x, y, n_faults, **kw):
    res = run_campaign(model, x, y, n_faults=n_faults, seed=11, **kw)
    names = [lv.layer for lv in res.per_layer]
    with torch.no_grad():
        golden = model(x).argmax(1)
    naive = [
        _naive_outcome(model, names[s], e, b, x, y, golden)
        for s, e, b in zip(res.plan.site, res.plan.element, res.plan.bit)
    ]
    mismatches = np.flatnonzero(np.asarray(naive) != res.outcomes)
    assert len(mismatches) == 0, f"{len(mismatches)} decisions differ, e.g. fault {mismatches[:5]}"
    return res


def test_engine_matches_naive_on_250_faults():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    x, y = _data(0, 128, (1, 8, 8), model)
    # half uniform over all bits, half on exponent bits, so that SDCs and DUEs occur
    a = _crosscheck(model, x, y, 125)
    b = _crosscheck(model, x, y, 125, fault_params={"field": "exponent"})
    assert a.path == b.path == "fx"
    decided = b.counts["sdc"] + b.counts["critical_sdc"] + b.counts["due"]
    assert decided >= 15, b.counts  # the check must be able to fail
    assert a.n_faults + b.n_faults >= 250


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.b(torch.relu(self.a(x))))


class _ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block1, self.block2 = _Block(8), _Block(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        h = self.block2(self.block1(torch.relu(self.stem(x))))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("fault_batch", [1, 4])
def test_engine_matches_naive_on_residual_model(fault_batch):
    """Also with batched faults (4 faults of one start segment per pass of the later ones)."""
    torch.manual_seed(1)
    model = _ResNetLike().eval()
    x, y = _data(1, 64, (1, 8, 8), model)
    res = _crosscheck(model, x, y, 80, fault_params={"field": "exponent"},
                      fault_batch=fault_batch)
    assert res.path == "fx" and int(res.path_reason.split()[0]) >= 3
    assert ("4 at a time" in res.execution_reason) == (fault_batch == 4)


def test_activation_faults_match_single_sample_runs():
    """Each sample's fault, re-injected alone with a naive hook, gives the same outcome."""
    torch.manual_seed(2)
    model = DigitsCNN().eval()
    x, y = _data(2, 64, (1, 8, 8), model)
    res = run_campaign(model, x, y, target="activations", n_faults=120, seed=3,
                       batch_size=64, fault_params={"field": "exponent"})
    sites = [lv.layer for lv in res.per_layer]
    modules = dict(model.named_modules())
    with torch.no_grad():
        golden = model(x).argmax(1)
    for j in range(res.n_faults):
        s, e, b, i = (int(res.plan.site[j]), int(res.plan.element[j]), int(res.plan.bit[j]),
                      int(res.plan.sample[j]))

        def hook(_m, _inp, out, e=e, b=b):
            out = out.clone()
            words = out.numpy().reshape(-1).view(np.uint32)
            words[e] ^= np.uint32(1 << b)
            return out

        h = modules[sites[s]].register_forward_hook(hook)
        try:
            with torch.no_grad():
                out = model(x[i : i + 1])
        finally:
            h.remove()
        if not torch.isfinite(out).all():
            expect = DUE
        elif out.argmax(1).item() != golden[i].item():
            expect = CRITICAL_SDC if golden[i] == y[i] else SDC
        else:
            expect = MASKED
        assert res.outcomes[j] == expect, f"fault {j}"
    assert res.sdc.k + res.due.k > 5


class _ToOneByOne(nn.Module):
    """Strided convolutions down to 1x1 maps, where a 3x3 convolution reads only its centre
    tap: most of its words are inert, and pruned faults must match the naive full forward."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)  # 8x8 -> 4x4
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)  # -> 2x2
        self.c3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)  # -> 1x1
        self.c4 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        for conv in (self.c1, self.c2, self.c3, self.c4):
            x = torch.relu(conv(x))
        return self.fc(x.flatten(1))


def test_engine_with_inert_pruning_matches_naive():
    torch.manual_seed(3)
    model = _ToOneByOne().eval()
    x, y = _data(3, 64, (1, 8, 8), model)
    res = _crosscheck(model, x, y, 150)
    assert res.n_pruned >= 50 and res.inert_bits_share > 0.3
    exp = _crosscheck(model, x, y, 100, fault_params={"bit": 30},
                      distribution="layer-uniform")
    assert exp.n_pruned >= 20 and exp.sdc.k + exp.due.k >= 5
