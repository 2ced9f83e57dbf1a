"""Neuron, pass-through, LMU-memory and readout nodes (see ``eventsp.model.nodes``).

The equations are in ``docs/runtime.md``; each class docstring gives its update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from eventsp.model.nodes import (
    CausalConv1d,
    GraphError,
    Node,
    Shape,
    _array,
    _one,
    register,
)

__all__ = [
    "IF",
    "LIF",
    "STATEFUL",
    "Identity",
    "LMUMemory",
    "MultiSpike",
    "ReLU",
    "Readout",
]


def _positive(node: Node, field: str) -> None:
    value = getattr(node, field)
    if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and value > 0):
        raise GraphError(f"{node.type}.{field} is {value!r}; expected a finite number > 0")
    object.__setattr__(node, field, float(value))


@register
@dataclass(frozen=True, eq=False)
class IF(Node):
    """Integrate-and-fire, subtractive reset: ``v += x; s = v >= threshold; v -= s*threshold``."""

    threshold: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "threshold")


@register
@dataclass(frozen=True, eq=False)
class LIF(Node):
    """Leaky integrate-and-fire: ``v = decay*v + x; s = v >= threshold; v = 0 where s``."""

    decay: float = 0.9
    threshold: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "threshold")
        if not (isinstance(self.decay, int | float | np.floating) and 0 <= self.decay <= 1):
            raise GraphError(f"LIF.decay is {self.decay!r}; expected a number in [0, 1]")
        object.__setattr__(self, "decay", float(self.decay))


@register
@dataclass(frozen=True, eq=False)
class MultiSpike(Node):
    """Multi-spike quantiser: ``v += x*dt; n = floor(v); v -= n; out = n/dt``."""

    dt: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "dt")


@register
@dataclass(frozen=True, eq=False)
class ReLU(Node):
    """``max(x, 0)``, non-spiking."""


@register
@dataclass(frozen=True, eq=False)
class Identity(Node):
    """Pass-through, non-spiking."""


@register
@dataclass(frozen=True, eq=False)
class LMUMemory(Node):
    """Legendre memory per input channel: ``m_t = A_d m_{t-1} + B_d u_t`` (ZOH-discretised).

    Input ``(C,)``, output ``(C*order,)`` laid out channel-major (``m[c, i]`` at ``c*order+i``).
    ``A_d`` is ``(order, order)``, ``B_d`` is ``(order,)``; ``theta`` (in frames) is recorded
    for provenance (see ``eventsp.runtime.lmu.legendre_ab`` and ``zoh``).
    """

    ARRAYS: ClassVar[tuple[str, ...]] = ("A_d", "B_d")

    order: int
    theta: float
    A_d: np.ndarray
    B_d: np.ndarray

    def __post_init__(self) -> None:
        if int(self.order) != self.order or self.order < 1:
            raise GraphError(f"LMUMemory.order is {self.order!r}; expected an int >= 1")
        object.__setattr__(self, "order", int(self.order))
        _positive(self, "theta")
        object.__setattr__(self, "A_d", _array(self.A_d, "LMUMemory", "A_d"))
        object.__setattr__(self, "B_d", _array(self.B_d, "LMUMemory", "B_d"))
        q = self.order
        if self.A_d.shape != (q, q) or self.B_d.shape != (q,):
            raise GraphError(
                f"LMUMemory of order {q} needs A_d ({q}, {q}) and B_d ({q},), got "
                f"{self.A_d.shape} and {self.B_d.shape}"
            )

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = _one(self, in_shapes)
        if len(shape) != 1:
            raise GraphError(f"LMUMemory expects a vector input (C,), got {shape}")
        return (shape[0] * self.order,)


@register
@dataclass(frozen=True, eq=False)
class Readout(Node):
    """Integrates its input: the ``sum`` so far, the ``mean`` so far, or the ``last`` frame."""

    mode: Literal["sum", "mean", "last"] = "sum"

    def __post_init__(self) -> None:
        if self.mode not in ("sum", "mean", "last"):
            raise GraphError(f"Readout.mode is {self.mode!r}; expected 'sum', 'mean' or 'last'")


STATEFUL = (IF, LIF, MultiSpike, CausalConv1d, LMUMemory, Readout)
