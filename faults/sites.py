"""Injection sites: which tensors (weights), module outputs (activations) or model inputs
faults hit.

Weight sites are parameters or buffers of modules of chosen layer types whose name matches a
pattern (by default the ``weight`` of every ``Conv*`` and ``Linear`` layer). Activation sites are
module outputs, reached through forward hooks; the input site is the tensor the model receives
(a corrupted input buffer), reached through a forward pre-hook on the model itself. Filters that
match nothing raise a :class:`~trustbench.faults.errors.FaultError` that lists what the model has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from trustbench.faults.bits import BitLayout, layout_for
from trustbench.faults.errors import FaultError

#: Default layer types: convolutions and fully connected layers (incl. int8 copies of them).
DEFAULT_LAYER_TYPES: tuple[str, ...] = ("Conv1d", "Conv2d", "Conv3d", "Linear",
                                        "QuantConv", "QuantLinear")
#: What the defaults match: these classes and their subclasses (a LoRA or attention-projection
#: subclass of ``nn.Linear`` is a linear layer too), and the int8 copies by name.
_DEFAULT_MATCHER: tuple[type | str, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear,
                                            "QuantConv", "QuantLinear")


@dataclass
class WeightSite:
    """One tensor faults can be injected into.

    Attributes
    ----------
    name
        Qualified name in the model (``features.0.weight``).
    module
        Qualified name of the owning module (``features.0``).
    layer_type
        Class name of the owning module.
    tensor
        The parameter or buffer itself (shares storage with the model).
    layout
        Bit layout of its dtype.
    """

    name: str
    module: str
    layer_type: str
    tensor: torch.Tensor
    layout: BitLayout

    @property
    def numel(self) -> int:
        """Number of stored words."""
        return self.tensor.numel()

    @property
    def nbits(self) -> int:
        """Number of stored bits (words x bits per word)."""
        return self.tensor.numel() * self.layout.nbits


@dataclass
class ActivationSite:
    """One module whose output (``kind="output"``, a forward hook) or whose first positional
    input (``kind="input"``, a forward pre-hook) faults are injected into."""

    name: str
    layer_type: str
    module: nn.Module
    per_sample_numel: int = 0
    layout: BitLayout | None = None
    shape: tuple[int, ...] = field(default_factory=tuple)
    kind: str = "output"
    #: Input sites: ``"native"`` (bits of the tensor as given) or ``"uint8"`` (bits of the 8-bit
    #: pixel buffer the [0, 1] input is decoded from: ``x = u / 255``).
    encoding: str = "native"
    #: The dimension of the output that indexes the samples of a batch (1 for the
    #: ``(sequence, batch, features)`` outputs of sequence-first layers).
    batch_dim: int = 0

    @property
    def nbits(self) -> int:
        """Stored bits of one sample's output."""
        return self.per_sample_numel * (self.layout.nbits if self.layout else 0)


def _type_matcher(layer_types: Sequence[str | type] | str | None,
                  model: nn.Module) -> tuple[type, ...] | tuple[str, ...] | None:
    if layer_types is None or (isinstance(layer_types, str) and layer_types == "all"):
        return None
    if layer_types is DEFAULT_LAYER_TYPES:
        return _DEFAULT_MATCHER
    if isinstance(layer_types, (str, type)):
        layer_types = [layer_types]
    if not isinstance(layer_types, (list, tuple)) or not all(
            isinstance(t, (str, type)) for t in layer_types):
        raise FaultError(f"layer_types must be a class name, a class, a list of those, or "
                         f"'all'; got {layer_types!r}.")
    names = [t for t in layer_types if isinstance(t, str)]
    present = {type(m).__name__ for m in model.modules()}
    unknown = [n for n in names if n not in present and n not in DEFAULT_LAYER_TYPES]
    if unknown:
        raise FaultError(
            f"unknown layer type filter {unknown}: the model has no such modules. Its layers are: "
            + _layer_listing(model)
            + ". Pass class names or classes of these (or 'all')."
        )
    return tuple(layer_types)


def _matches(module: nn.Module, matcher: tuple | None) -> bool:
    if matcher is None:
        return True
    for t in matcher:
        if isinstance(t, str) and type(module).__name__ == t:
            return True
        if isinstance(t, type) and isinstance(module, t):
            return True
    return False


def _compile(pattern: object) -> re.Pattern:
    if not isinstance(pattern, str):
        raise FaultError(f"pattern must be a regular expression string (searched in layer or "
                         f"tensor names; '' matches all); got {pattern!r}.")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FaultError(f"pattern {pattern!r} is not a valid regular expression ({exc}); it "
                         "is searched in layer or tensor names, '' matches all.") from None


def _layer_listing(model: nn.Module, limit: int = 40) -> str:
    rows = [f"{n or '<root>'} ({type(m).__name__})" for n, m in model.named_modules()
            if not list(m.children())]
    more = f", ... ({len(rows) - limit} more)" if len(rows) > limit else ""
    return ", ".join(rows[:limit]) + more


def weight_sites(model: nn.Module, layer_types: Sequence[str | type] | str | None = None,
                 pattern: str = r"weight", *, include_buffers: bool = True) -> list[WeightSite]:
    """Select the weight tensors of ``model`` that faults may hit.

    Parameters
    ----------
    model
        Any ``nn.Module``.
    layer_types
        Class names (exact type) or classes (with their subclasses) of the owning modules;
        default :data:`DEFAULT_LAYER_TYPES`, which matches subclasses of the torch layers too;
        ``"all"`` for every module.
    pattern
        Regular expression searched in the tensor's local name (``weight``, ``bias``,
        ``weight_q`` ...); ``""`` matches all.
    include_buffers
        Also consider buffers (int8 copies keep their weights as buffers).

    Raises
    ------
    FaultError
        Unknown layer type, nothing matched, a matched tensor of unsupported dtype, or a
        non-contiguous one.
    """
    matcher = _type_matcher(DEFAULT_LAYER_TYPES if layer_types is None else layer_types, model)
    rx = _compile(pattern)
    sites: list[WeightSite] = []
    seen: set[int] = set()
    for mname, module in model.named_modules():
        if not _matches(module, matcher):
            continue
        tensors = list(module.named_parameters(recurse=False))
        if include_buffers:
            tensors += [(n, b) for n, b in module.named_buffers(recurse=False) if b is not None]
        for local, tensor in tensors:
            if not rx.search(local) or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            full = f"{mname}.{local}" if mname else local
            try:
                lay = layout_for(tensor.dtype)
            except FaultError as exc:
                raise FaultError(f"tensor {full!r} matched the site filter but: {exc}") from None
            if not tensor.is_contiguous():
                raise FaultError(f"tensor {full!r} is not contiguous; fault injection needs a "
                                 "flat integer view of its storage.")
            sites.append(WeightSite(full, mname, type(module).__name__, tensor, lay))
    if not sites:
        raise FaultError(
            f"no weight tensors match layer types {layer_types or DEFAULT_LAYER_TYPES} and name "
            f"pattern {pattern!r}. The model's layers are: {_layer_listing(model)}."
        )
    return sites


def activation_sites(model: nn.Module, layer_types: Sequence[str | type] | str | None = None,
                     pattern: str = "") -> list[ActivationSite]:
    """Select the modules whose outputs activation faults hit (leaf modules only).

    ``pattern`` is searched in the module's qualified name. Raises :class:`FaultError` when
    nothing matches, listing the model's layers.
    """
    matcher = _type_matcher(DEFAULT_LAYER_TYPES if layer_types is None else layer_types, model)
    rx = _compile(pattern)
    sites = [ActivationSite(n, type(m).__name__, m) for n, m in model.named_modules()
             if not list(m.children()) and _matches(m, matcher) and rx.search(n)]
    if not sites:
        raise FaultError(
            f"no modules match layer types {layer_types or DEFAULT_LAYER_TYPES} and name "
            f"pattern {pattern!r} for activation faults. The model's layers are: "
            f"{_layer_listing(model)}."
        )
    return sites


#: Encodings of the input buffer that input faults can hit.
INPUT_ENCODINGS = ("native", "uint8")


def input_site(model: nn.Module, encoding: str = "native") -> ActivationSite:
    """The model's input as an injection site (its first positional argument, per sample).

    ``encoding="uint8"``: the faults hit the 8-bit pixel buffer that a [0, 1] image input is
    decoded from (``x = u / 255``), as in a camera or image-decoder buffer, instead of the
    float words the model receives.
    """
    if encoding not in INPUT_ENCODINGS:
        raise FaultError(f"unknown input encoding {encoding!r}; accepted: "
                         f"{', '.join(INPUT_ENCODINGS)}")
    return ActivationSite("input", "Input", model, kind="input", encoding=encoding)
