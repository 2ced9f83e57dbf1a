"""Model graph nodes: frozen dataclasses, one type registry, per-node validation and shapes.

Every node is a ``@dataclass(frozen=True)`` validated in ``__post_init__`` (a bad value raises
:class:`GraphError` naming it); arrays are copied to read-only C-contiguous float32 (or int8/int16
quantised weights). ``node.to_dict() -> (spec, arrays)`` and :func:`node_from_dict` round-trip a
node through JSON plus named arrays; the ``type`` tag is resolved through :data:`NODE_TYPES`.
Shapes are per sample, without the batch axis. See ``eventsp.model.graph`` for the graph and the
fixed-point fields.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "IF",
    "LIF",
    "MAX_ACC_SHIFT",
    "NODE_TYPES",
    "STATEFUL",
    "Add",
    "AvgPool2d",
    "CausalConv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "GraphError",
    "Identity",
    "Input",
    "LMUMemory",
    "MultiSpike",
    "Node",
    "Output",
    "ReLU",
    "Readout",
    "Shape",
    "SumPool2d",
    "Synaptic",
    "node_from_dict",
]

Shape = tuple[int, ...]


MAX_ACC_SHIFT = 16  # most extra fractional accumulator bits of a synaptic node (acc_shift)


class GraphError(ValueError):
    """A node or graph that is not valid: wrong shapes, values, edges or types."""


NODE_TYPES: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    NODE_TYPES[cls.__name__] = cls
    return cls


def _array(value: Any, name: str, field: str, *, integer_ok: bool = False) -> np.ndarray:
    """A read-only, C-contiguous copy: float32, or int8/int16 where ``integer_ok``."""
    arr = np.asarray(value)
    if integer_ok and arr.dtype in (np.int8, np.int16):
        out = np.ascontiguousarray(arr).copy()
    elif arr.dtype.kind in "fiub":
        out = np.ascontiguousarray(arr, dtype=np.float32).copy()
        if not np.all(np.isfinite(out)):
            raise GraphError(f"{name}.{field} holds NaN or inf; give finite values")
    else:
        raise GraphError(f"{name}.{field} has dtype {arr.dtype}; expected a numeric array")
    out.flags.writeable = False
    return out


def _pair(value: Any, name: str, field: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise GraphError(
            f"{name}.{field} is {value!r}; expected an int or a pair of ints >= {minimum}"
        )
    return (int(pair[0]), int(pair[1]))


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every node. ``ARRAYS`` names the fields that hold numpy arrays."""

    ARRAYS: ClassVar[tuple[str, ...]] = ()
    TUPLES: ClassVar[tuple[str, ...]] = ()

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(spec, arrays)``: a JSON-able spec with array fields named, and those arrays."""
        spec: dict[str, Any] = {"type": self.type}
        arrays: dict[str, np.ndarray] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in self.ARRAYS:
                spec[field.name] = None if value is None else field.name
                if value is not None:
                    arrays[field.name] = value
            elif isinstance(value, tuple):
                spec[field.name] = list(value)
            else:
                spec[field.name] = value
        return spec, arrays

    @classmethod
    def from_dict(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Node:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(spec) - names - {"type"}
        if unknown:
            raise GraphError(f"{cls.__name__} spec has unknown fields {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in spec.items():
            if key == "type":
                continue
            if key in cls.ARRAYS and value is not None:
                if value not in arrays:
                    raise GraphError(
                        f"{cls.__name__}.{key} names array {value!r}, which is missing"
                    )
                value = arrays[value]
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise GraphError(f"cannot build {cls.__name__} from {sorted(kwargs)}: {exc}") from None

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Per-sample output shape from the input shapes; raises :class:`GraphError`."""
        return _one(self, in_shapes)


def _one(node: Node, in_shapes: list[Shape]) -> Shape:
    if len(in_shapes) != 1:
        raise GraphError(f"{node.type} takes exactly one input, got {len(in_shapes)}")
    return in_shapes[0]


def node_from_dict(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Node:
    """Rebuild any node from its spec, resolving ``spec["type"]`` through :data:`NODE_TYPES`."""
    tag = spec.get("type")
    if tag not in NODE_TYPES:
        raise GraphError(f"unknown node type {tag!r}; known types are {sorted(NODE_TYPES)}")
    return NODE_TYPES[tag].from_dict(spec, arrays)


def _shape(value: Any, what: str) -> Shape:
    shape = tuple(value)
    if not shape or any(int(v) != v or v < 1 for v in shape):
        raise GraphError(f"{what} is {value!r}; expected a non-empty tuple of positive ints")
    return tuple(int(v) for v in shape)


@register
@dataclass(frozen=True, eq=False)
class Input(Node):
    """The graph's input: one frame of ``shape`` per stream.

    In fixed-point mode an analog input is quantised to ``quant_bits``-bit integers of step
    ``quant_scale``; without them the input is taken to be integer already (spikes, counts).
    """

    shape: Shape
    quant_bits: int | None = None
    quant_scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape, "Input.shape"))
        _check_quant(self, "quant_bits", "quant_scale", 2, 16)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if in_shapes:
            raise GraphError("Input takes no inputs; remove the edges into it")
        return self.shape


@register
@dataclass(frozen=True, eq=False)
class Output(Node):
    """The graph's output; ``shape`` must match what reaches it."""

    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape, "Output.shape"))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        got = _one(self, in_shapes)
        if got != self.shape:
            raise GraphError(f"Output.shape is {self.shape} but its input has shape {got}")
        return got


def _check_quant(node: Node, bits_field: str, scale_field: str, lo: int, hi: int) -> None:
    bits, scale = getattr(node, bits_field), getattr(node, scale_field)
    if (bits is None) != (scale is None):
        raise GraphError(
            f"{node.type}.{bits_field}={bits!r} and {scale_field}={scale!r}: set both or neither"
        )
    if bits is None:
        return
    if int(bits) != bits or not lo <= bits <= hi:
        raise GraphError(f"{node.type}.{bits_field} is {bits!r}; expected an int in {lo}..{hi}")
    if not (math.isfinite(scale) and scale > 0):
        raise GraphError(f"{node.type}.{scale_field} is {scale!r}; expected a finite float > 0")
    object.__setattr__(node, bits_field, int(bits))
    object.__setattr__(node, scale_field, float(scale))


@dataclass(frozen=True, eq=False)
class Synaptic(Node):
    """Shared checks of weighted layers: weight/bias arrays and the fixed-point fields."""

    ARRAYS: ClassVar[tuple[str, ...]] = ("weight", "bias")
    WEIGHT_NDIM: ClassVar[int] = 2

    def _check_synaptic(self) -> None:
        name = self.type
        object.__setattr__(self, "weight", _array(self.weight, name, "weight", integer_ok=True))
        w = self.weight
        if w.ndim != self.WEIGHT_NDIM or 0 in w.shape:
            raise GraphError(
                f"{name}.weight has shape {w.shape}; expected {self.WEIGHT_NDIM} non-empty axes"
            )
        if self.bias is not None:
            object.__setattr__(self, "bias", _array(self.bias, name, "bias"))
            if self.bias.shape != (w.shape[0],):
                raise GraphError(
                    f"{name}.bias has shape {self.bias.shape}; expected ({w.shape[0]},)"
                )
        _check_quant(self, "weight_bits", "weight_scale", 2, 8)
        if self.weight_bits is None:
            if w.dtype != np.float32:
                raise GraphError(
                    f"{name}.weight is {w.dtype} but weight_bits is unset; set weight_bits and "
                    "weight_scale for integer weights, or pass float weights"
                )
        else:
            if w.dtype not in (np.int8, np.int16):
                raise GraphError(
                    f"{name}.weight is {w.dtype} with weight_bits={self.weight_bits}; quantised "
                    "weights must be int8 or int16 (see eventsp.runtime.quantize_weights)"
                )
            lo, hi = -(2 ** (self.weight_bits - 1)), 2 ** (self.weight_bits - 1) - 1
            if w.min() < lo or w.max() > hi:
                raise GraphError(
                    f"{name}.weight spans [{w.min()}, {w.max()}], outside the "
                    f"{self.weight_bits}-bit range [{lo}, {hi}]"
                )
        shift = self.acc_shift
        if isinstance(shift, bool) or int(shift) != shift or not 0 <= shift <= MAX_ACC_SHIFT:
            raise GraphError(
                f"{name}.acc_shift is {shift!r}; expected an int in 0..{MAX_ACC_SHIFT} (the "
                "extra fractional bits of the fixed-point accumulator)"
            )
        if shift and self.weight_bits is None:
            raise GraphError(
                f"{name}.acc_shift is {shift} but the weights are float; an accumulator shift "
                "needs quantised weights (set weight_bits and weight_scale) or acc_shift=0"
            )
        object.__setattr__(self, "acc_shift", int(shift))

    def to_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        spec, arrays = super().to_dict()
        if spec.get("acc_shift") == 0:  # the default is left out: files stay as before
            del spec["acc_shift"]
        return spec, arrays

    @property
    def quantized(self) -> bool:
        return getattr(self, "weight_bits", None) is not None

    def real_weight(self) -> np.ndarray:
        """The weight in real units (float32): ``weight * weight_scale`` when quantised."""
        if self.quantized:
            return (self.weight.astype(np.float64) * self.weight_scale).astype(np.float32)
        return self.weight


@register
@dataclass(frozen=True, eq=False)
class Dense(Synaptic):
    """``y = W x + b`` on a vector; ``weight`` is ``(out, in)``."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    weight_bits: int | None = None
    weight_scale: float | None = None
    acc_shift: int = 0

    def __post_init__(self) -> None:
        self._check_synaptic()

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = [_one(self, in_shapes)]
        if shape != (self.weight.shape[1],):
            raise GraphError(
                f"Dense expects input shape ({self.weight.shape[1]},), got {shape}; "
                "put a Flatten before it for image-shaped inputs"
            )
        return (self.weight.shape[0],)


@register
@dataclass(frozen=True, eq=False)
class Conv2d(Synaptic):
    """2-D convolution (cross-correlation, as in torch); weight ``(out, in/groups, kh, kw)``."""

    WEIGHT_NDIM: ClassVar[int] = 4
    TUPLES: ClassVar[tuple[str, ...]] = ("stride", "padding")

    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    weight_bits: int | None = None
    weight_scale: float | None = None
    acc_shift: int = 0

    def __post_init__(self) -> None:
        self._check_synaptic()
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d", "stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "Conv2d", "padding", 0))
        if int(self.groups) != self.groups or self.groups < 1 or self.weight.shape[0] % self.groups:
            raise GraphError(
                f"Conv2d.groups is {self.groups!r}; expected a positive int dividing the "
                f"{self.weight.shape[0]} output channels"
            )
        object.__setattr__(self, "groups", int(self.groups))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = _one(self, in_shapes)
        out_c, in_per_group, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != in_per_group * self.groups:
            raise GraphError(
                f"Conv2d expects input (C={in_per_group * self.groups}, H, W), got {shape}"
            )
        h = (shape[1] + 2 * self.padding[0] - kh) // self.stride[0] + 1
        w = (shape[2] + 2 * self.padding[1] - kw) // self.stride[1] + 1
        if h < 1 or w < 1:
            raise GraphError(f"Conv2d kernel {(kh, kw)} does not fit input {shape} with padding")
        return (out_c, h, w)


@register
@dataclass(frozen=True, eq=False)
class CausalConv1d(Synaptic):
    """Temporal convolution over frames: ``y_t = b + sum_j W[:, :, j] x_{t - (k-1-j)*dilation}``.

    ``weight`` is ``(out, in, k)`` (torch's layout, last tap = current frame). The last
    ``(k-1)*dilation`` input frames are kept in the stream state; before the first frame they
    are zero.
    """

    WEIGHT_NDIM: ClassVar[int] = 3

    weight: np.ndarray
    bias: np.ndarray | None = None
    dilation: int = 1
    weight_bits: int | None = None
    weight_scale: float | None = None
    acc_shift: int = 0

    def __post_init__(self) -> None:
        self._check_synaptic()
        if int(self.dilation) != self.dilation or self.dilation < 1:
            raise GraphError(f"CausalConv1d.dilation is {self.dilation!r}; expected an int >= 1")
        object.__setattr__(self, "dilation", int(self.dilation))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = _one(self, in_shapes)
        if shape != (self.weight.shape[1],):
            raise GraphError(f"CausalConv1d expects input ({self.weight.shape[1]},), got {shape}")
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class _Pool2d(Node):
    TUPLES: ClassVar[tuple[str, ...]] = ("kernel", "stride")

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, self.type, "kernel", 1))
        stride = self.kernel if self.stride is None else self.stride
        object.__setattr__(self, "stride", _pair(stride, self.type, "stride", 1))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = _one(self, in_shapes)
        if len(shape) != 3 or shape[1] < self.kernel[0] or shape[2] < self.kernel[1]:
            raise GraphError(f"{self.type} {self.kernel} expects input (C, H, W), got {shape}")
        h = (shape[1] - self.kernel[0]) // self.stride[0] + 1
        w = (shape[2] - self.kernel[1]) // self.stride[1] + 1
        return (shape[0], h, w)


@register
@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool2d):
    """Mean over each window (no padding; a partial window at the edge is dropped)."""


@register
@dataclass(frozen=True, eq=False)
class SumPool2d(_Pool2d):
    """Sum over each window (no padding; a partial window at the edge is dropped)."""


@register
@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """``(C, H, W) -> (C*H*W,)`` in C order."""

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        return (math.prod(_one(self, in_shapes)),)


@register
@dataclass(frozen=True, eq=False)
class Add(Node):
    """Element-wise sum of two or more inputs of the same shape (residual connections)."""

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) < 2 or any(s != in_shapes[0] for s in in_shapes):
            raise GraphError(f"Add needs two or more inputs of one shape, got {in_shapes}")
        return in_shapes[0]


# The neuron family registers itself on import; importing it here makes NODE_TYPES complete
# whichever module is imported first.
from eventsp.model.neurons import (  # noqa: E402
    IF,
    LIF,
    STATEFUL,
    Identity,
    LMUMemory,
    MultiSpike,
    Readout,
    ReLU,
)
