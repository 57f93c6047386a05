"""Bit layouts, integer views and in-place flips (faults.bits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbench.faults.bits import (
    flip_,
    int_view,
    layout_for,
    supported_dtypes,
    to_native,
    to_unsigned,
)
from trustbench.faults.errors import FaultError

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.float64]
if hasattr(torch, "float8_e4m3fn"):
    DTYPES += [torch.float8_e4m3fn, torch.float8_e5m2]


def test_layouts_partition_the_word():
    for dt in DTYPES:
        lay = layout_for(dt)
        bits = sorted(lay.sign + lay.exponent + lay.mantissa)
        assert bits == list(range(lay.nbits)), lay.name
        assert torch.empty(0, dtype=dt).element_size() * 8 == lay.nbits


def test_known_flips():
    w = torch.tensor([1.0, 2.0])
    flip_(w, 0, 30)  # top exponent bit of 1.0 (0x3F800000) -> 0x7F800000 = inf
    assert torch.isinf(w[0]) and w[1] == 2.0
    flip_(w, 0, 30)
    assert w[0] == 1.0
    b = torch.tensor([1.0], dtype=torch.bfloat16)
    flip_(b, 0, 15)
    assert b.item() == -1.0
    q = torch.tensor([1], dtype=torch.int8)
    flip_(q, 0, 7)  # two's complement: 0b10000001 = -127
    assert q.item() == -127
    h = torch.tensor([1.0], dtype=torch.float16)
    flip_(h, 0, 0)  # last mantissa bit of 1.0 in fp16: 1 + 2**-10
    assert h.item() == 1.0 + 2.0**-10


def test_to_native_twos_complement():
    lay = layout_for(torch.float32)
    t = to_native([1 << 31, 1], lay)
    assert t.dtype == torch.int32 and t.tolist() == [-(2**31), 1]
    assert to_unsigned(t, lay).tolist() == [1 << 31, 1]


@pytest.mark.parametrize("bad", [-1, 32, 99, 1.5, True])
def test_bit_out_of_range(bad):
    with pytest.raises(FaultError, match="out of range"):
        flip_(torch.ones(3), 0, bad)


def test_unsupported_dtype_and_noncontiguous():
    with pytest.raises(FaultError, match="unsupported dtype.*float32"):
        layout_for(torch.int64)
    with pytest.raises(FaultError, match="contiguous"):
        int_view(torch.ones(4, 3).t())
    with pytest.raises(FaultError, match="out of range"):
        flip_(torch.ones(3), 3, 0)
    assert "bfloat16" in supported_dtypes()


def test_field_errors():
    lay = layout_for(torch.int8)
    with pytest.raises(FaultError, match="no exponent"):
        lay.field("exponent")
    with pytest.raises(FaultError, match="unknown bit field"):
        lay.field("fraction")
    assert layout_for(torch.float32).field_of(31) == "sign"


@settings(max_examples=60, deadline=None)
@given(dtype_i=st.integers(0, len(DTYPES) - 1), n=st.integers(1, 64), data=st.data())
def test_flip_twice_is_identity(dtype_i, n, data):
    dt = DTYPES[dtype_i]
    lay = layout_for(dt)
    raw = np.random.default_rng(n).integers(0, 256, size=n * lay.nbits // 8, dtype=np.uint8)
    t = torch.from_numpy(raw.copy()).view(dt)
    before = t.view(torch.uint8).clone()
    idx = data.draw(st.integers(0, n - 1))
    bit = data.draw(st.integers(0, lay.nbits - 1))
    flip_(t, idx, bit)
    changed = (t.view(torch.uint8) != before).sum().item()
    assert changed == 1  # exactly one byte differs
    flip_(t, idx, bit)
    assert torch.equal(t.view(torch.uint8), before)
