"""Bit layouts of the dtypes that faults are injected into, and integer views for bit work.

Every bit operation in the pillar happens on an *integer view* of the tensor's own storage
(``t.view(torch.int32)`` for float32, ``torch.int16`` for float16/bfloat16, ``torch.int8`` for
int8 and float8), in place, on the tensor's own device. Bit ``0`` is the least significant bit of
the stored word; the layouts give which bits hold the sign, exponent and mantissa.

>>> import torch
>>> from trustbench.faults.bits import layout_for, flip_
>>> w = torch.tensor([1.0, 2.0])
>>> layout_for(w.dtype).exponent[-1]
30
>>> _ = flip_(w, 0, 31)      # sign bit of element 0
>>> w.tolist()
[-1.0, 2.0]
>>> _ = flip_(w, 0, 31)      # the same flip again restores it
>>> w.tolist()
[1.0, 2.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trustbench.faults.errors import FaultError

FIELDS = ("any", "sign", "exponent", "mantissa")


@dataclass(frozen=True)
class BitLayout:
    """Where sign, exponent and mantissa bits sit in one stored word of ``dtype``.

    For int8 (quantised weights, two's complement) ``exponent`` is empty and ``mantissa``
    names the seven value bits.
    """

    name: str
    dtype: torch.dtype
    int_dtype: torch.dtype
    nbits: int
    sign: tuple[int, ...]
    exponent: tuple[int, ...]
    mantissa: tuple[int, ...]

    def field(self, name: str) -> tuple[int, ...]:
        """Bit positions of a field: ``any`` (all bits), ``sign``, ``exponent``, ``mantissa``."""
        if name in ("any", "all"):
            return tuple(range(self.nbits))
        if name not in FIELDS:
            raise FaultError(
                f"unknown bit field {name!r}; accepted fields: {', '.join(FIELDS)}."
            )
        bits = getattr(self, name)
        if not bits:
            raise FaultError(
                f"{self.name} has no {name} bits (its fields: sign {self.sign}, "
                f"mantissa/value {self.mantissa[0]}-{self.mantissa[-1]}); choose another field."
            )
        return bits

    def field_of(self, bit: int) -> str:
        """The field that bit position ``bit`` belongs to."""
        for name in ("sign", "exponent", "mantissa"):
            if bit in getattr(self, name):
                return name
        raise FaultError(f"bit {bit} is out of range for {self.name} (0..{self.nbits - 1})")

    def check_bit(self, bit: int) -> None:
        """Raise :class:`FaultError` unless ``0 <= bit < nbits``."""
        if isinstance(bit, bool) or not isinstance(bit, (int, np.integer)) or not (
            0 <= int(bit) < self.nbits
        ):
            raise FaultError(
                f"bit index {bit!r} is out of range for {self.name}: a {self.nbits}-bit word has "
                f"bits 0 (least significant) to {self.nbits - 1} (the most significant)."
            )


def _rng(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1))


_LAYOUTS: dict[torch.dtype, BitLayout] = {
    torch.float64: BitLayout("float64", torch.float64, torch.int64, 64, (63,), _rng(52, 62),
                             _rng(0, 51)),
    torch.float32: BitLayout("float32", torch.float32, torch.int32, 32, (31,), _rng(23, 30),
                             _rng(0, 22)),
    torch.float16: BitLayout("float16", torch.float16, torch.int16, 16, (15,), _rng(10, 14),
                             _rng(0, 9)),
    torch.bfloat16: BitLayout("bfloat16", torch.bfloat16, torch.int16, 16, (15,), _rng(7, 14),
                              _rng(0, 6)),
    torch.int8: BitLayout("int8", torch.int8, torch.int8, 8, (7,), (), _rng(0, 6)),
    # 8-bit pixels (input buffers): eight value bits, no sign
    torch.uint8: BitLayout("uint8", torch.uint8, torch.int8, 8, (), (), _rng(0, 7)),
}
for _name, _exp, _man in (("float8_e4m3fn", (3, 6), (0, 2)), ("float8_e5m2", (2, 6), (0, 1))):
    _dt = getattr(torch, _name, None)
    if _dt is not None:  # float8 exists from torch 2.1
        _LAYOUTS[_dt] = BitLayout(_name, _dt, torch.int8, 8, (7,), _rng(*_exp), _rng(*_man))

_NP_UNSIGNED = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
_NP_SIGNED = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


def supported_dtypes() -> list[str]:
    """Names of the dtypes with a bit layout."""
    return [lay.name for lay in _LAYOUTS.values()]


def layout_for(dtype: torch.dtype) -> BitLayout:
    """Bit layout of ``dtype``.

    Raises
    ------
    FaultError
        If the dtype has no layout (e.g. int64 counters, bool, complex).
    """
    try:
        return _LAYOUTS[dtype]
    except KeyError:
        raise FaultError(
            f"unsupported dtype {dtype} for bit-level fault injection; supported: "
            f"{', '.join(supported_dtypes())}. Select tensors of those dtypes (e.g. filter "
            "the sites by name pattern) or convert the model."
        ) from None


def int_view(t: torch.Tensor) -> torch.Tensor:
    """Flat integer view of ``t``'s storage (shares memory; writes go to ``t``).

    Raises
    ------
    FaultError
        If ``t`` is not contiguous (a flat view would be a copy) or its dtype is unsupported.
    """
    lay = layout_for(t.dtype)
    if not t.is_contiguous():
        raise FaultError(
            "fault injection needs contiguous tensors (a flat integer view of a strided tensor "
            "would be a copy, and flips would be lost); call .contiguous() on the parameter first."
        )
    return t.detach().view(lay.int_dtype).view(-1)


def to_native(words: np.ndarray | list[int], layout: BitLayout,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Unsigned bit patterns (Python ints / uint64) -> tensor of the layout's signed int dtype.

    ``1 << 31`` for float32 becomes ``-2**31`` as int32: the same bits, two's complement.
    """
    arr = np.asarray(words, dtype=np.uint64)
    mask = np.uint64((1 << layout.nbits) - 1) if layout.nbits < 64 else np.uint64(2**64 - 1)
    arr = (arr & mask).astype(_NP_UNSIGNED[layout.nbits]).view(_NP_SIGNED[layout.nbits])
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device)


def to_unsigned(words: torch.Tensor, layout: BitLayout) -> np.ndarray:
    """Signed integer words (any device) -> their unsigned bit patterns as uint64 NumPy."""
    arr = words.detach().cpu().numpy().astype(_NP_SIGNED[layout.nbits])
    return arr.view(_NP_UNSIGNED[layout.nbits]).astype(np.uint64)


def flip_(t: torch.Tensor, index: int, bit: int) -> torch.Tensor:
    """Flip bit ``bit`` of element ``index`` (flat, row-major) of ``t``, in place; returns ``t``.

    Applying the same flip twice restores ``t`` bit for bit.
    """
    lay = layout_for(t.dtype)
    lay.check_bit(bit)
    flat = int_view(t)
    if not 0 <= index < flat.numel():
        raise FaultError(f"element index {index} is out of range for a tensor of "
                         f"{flat.numel()} elements")
    mask = to_native([1 << int(bit)], lay, flat.device)
    flat[index:index + 1].bitwise_xor_(mask)
    return t


def xor_(t: torch.Tensor, index: torch.Tensor | int, mask: torch.Tensor) -> torch.Tensor:
    """XOR ``mask`` (signed int words of ``t``'s layout) into elements ``index`` of ``t``."""
    flat = int_view(t)
    if isinstance(index, int):
        flat[index:index + 1].bitwise_xor_(mask.view(-1)[:1])
    else:
        flat[index] = flat[index] ^ mask
    return t
