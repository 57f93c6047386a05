"""What the injection engines share about running on a device.

:func:`strict_fp32` (TF32 off, so fault outcomes are reproducible), :func:`device_of` (where a
model's tensors live), :func:`is_fatal` (which exceptions in a faulty forward pass are the
machine's, not the fault's), :func:`short_error` (one line of an exception, for the reasons an
engine reports) and :func:`logits_digest` (of the fault-free logits, part of a campaign's
fingerprint).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from trustbench.faults.errors import FaultError

#: Objects whose ``fp32_precision`` says how float32 convolutions/matmuls run (torch >= 2.9).
_PRECISION_OWNERS = ("backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv",
                     "backends.cudnn.rnn")


def _precision_objects() -> list[Any]:
    found = []
    for path in _PRECISION_OWNERS:
        obj: Any = torch
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and isinstance(getattr(obj, "fp32_precision", None), str):
            found.append(obj)
    return found


@contextlib.contextmanager
def strict_fp32(enabled: bool = True) -> Iterator[None]:
    """Turn TF32 off for matmuls and cuDNN convolutions (and restore the settings after).

    TF32 rounds fp32 operands to 10 mantissa bits, which flips borderline top-1 decisions between
    otherwise identical runs; fault outcomes must be reproducible, so campaigns default to this.
    Works with the legacy flags (``allow_tf32``) and, where torch has it, the ``fp32_precision``
    API (torch refuses to report a matmul precision when the two were mixed, so it is never
    asked for one here).
    """
    if not enabled:
        yield
        return
    objects = _precision_objects()
    saved = [(obj, obj.fp32_precision) for obj in objects]
    try:
        matmul_precision: str | None = torch.get_float32_matmul_precision()
    except RuntimeError:  # legacy and new settings were mixed by the caller
        matmul_precision = None
    legacy: list[tuple[Any, bool]] = []
    owners: tuple[Any, ...] = (torch.backends.cuda.matmul, torch.backends.cudnn)
    for owner in owners:
        with contextlib.suppress(RuntimeError):  # unreadable when the caller mixed the APIs
            legacy.append((owner, owner.allow_tf32))
        owner.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    for obj in objects[1:]:  # the specific settings; the global default stays as it is
        obj.fp32_precision = "ieee"
    try:
        yield
    finally:
        for owner, flag in legacy:
            owner.allow_tf32 = flag
        if matmul_precision is not None:
            torch.set_float32_matmul_precision(matmul_precision)
        for obj, value in saved:
            obj.fp32_precision = value


def check_fields(config: Any, ints: tuple[str, ...] = (), bools: tuple[str, ...] = (),
                 optional_bools: tuple[str, ...] = ()) -> None:
    """Raise :class:`FaultError` naming the first field of ``config`` (a settings dataclass)
    whose value is not a positive integer (``ints``), a bool (``bools``) or a bool or None
    (``optional_bools``): a bad setting is refused where it is given, not deep in torch."""
    what = type(config).__name__
    for name in ints:
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise FaultError(f"{what}.{name} must be a positive integer, got {v!r}")
    for name in bools:
        v = getattr(config, name)
        if not isinstance(v, bool):
            raise FaultError(f"{what}.{name} must be True or False, got {v!r}")
    for name in optional_bools:
        v = getattr(config, name)
        if v is not None and not isinstance(v, bool):
            raise FaultError(f"{what}.{name} must be True, False or None, got {v!r}")


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU if it has none)."""
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


def is_fatal(exc: BaseException) -> bool:
    """Whether an exception in a faulty forward pass is the machine's (out of memory), not
    the fault's: those end the campaign instead of being booked as a DUE."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError))


def logits_digest(batches: Sequence[torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of logits batches, on the host."""
    import hashlib

    h = hashlib.sha256()
    for b in batches:
        h.update(b.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def short_error(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 160 characters of it)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
