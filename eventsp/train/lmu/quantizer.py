"""The quantized activation with temporally diffused error (Voelker, Rasmussen, Eliasmith 2020).

Each neuron keeps a residual ``v`` in ``[0, 1)``. At every time step, with the activity
``a_t = f(x_t)`` and the resolution ``dt``::

    v += a_t * dt;   n_t = floor(v);   v -= n_t;   out_t = n_t / dt

``n_t`` is an integer (the number of "spikes", which may exceed 1), so ``out_t`` is ``a_t``
quantized to steps of ``1 / dt``, and the rounding error is carried to the next step instead
of being lost (sigma-delta modulation). Large ``dt`` is a fine quantizer (the non-spiking
limit); small ``dt`` makes ``n_t`` mostly 0 or 1 (a spiking neuron). Training interpolates
between the two by lowering ``dt`` over the run (``DtSchedule``, i.e. raising the
quantization step ``1 / dt``), with a straight-through gradient: the forward pass uses the
quantized value and the backward pass treats the quantizer as the identity.

Parallel form. With ``v_{-1} = v0`` and ``S_t = v0 + dt * sum_{s<=t} a_s``, induction gives
``v_t = S_t - floor(S_t)``, hence ``n_t = floor(S_t) - floor(S_{t-1})``: a cumulative sum and
a floor, no loop over time (``quantize_parallel``). ``quantize_sequential`` is the step-by-step
form the streaming runtime runs (``MultiSpike`` node); both agree exactly in float64.

Efficiency measures, as the paper reports them (``activity_bits``), from the integer counts
``n``: *bits per activity* is the number of bits a neuron's activity needs,
``ceil(log2(max_t |n_t| + 1))`` (one bit for a neuron that only ever spikes once per step),
averaged over neurons ("at most b bits on average"); *significant bits per weight
multiplication* is, over the non-zero activities (each multiplies a weight; zeros cost
nothing), the mean span from the highest to the lowest set bit of ``|n_t|``: multiplying by
``n = 2^k`` is a shift plus one addition, so ``n`` in {1, 2, 4, ...} counts as 1 bit and
``n = 3`` as 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "BitsAccumulator",
    "DtSchedule",
    "activity_bits",
    "quantize_parallel",
    "quantize_sequential",
    "straight_through",
]


def _check_dt(dt: float) -> None:
    if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt {dt!r} must be a finite number > 0 (the quantizer's resolution)")


def quantize_parallel(
    a: torch.Tensor, dt: float, v0: torch.Tensor | float = 0.0, dim: int = 1
) -> torch.Tensor:
    """Integer counts ``n`` (float dtype of ``a``) of the diffused-error quantizer, all steps.

    ``a``: activities with time along ``dim``; ``v0``: the residual before the first step
    (broadcast against ``a`` with ``dim`` removed). Accumulates in float64. No gradient.
    """
    _check_dt(dt)
    with torch.no_grad():
        v0 = torch.as_tensor(v0, dtype=torch.float64)
        if v0.ndim:
            v0 = v0.unsqueeze(dim)
        S = torch.cumsum(a.detach().to(torch.float64) * dt, dim=dim) + v0
        N = torch.floor(S)
        first = torch.floor(v0).expand_as(N.narrow(dim, 0, 1))
        n = torch.diff(N, dim=dim, prepend=first)
    return n.to(a.dtype)


def quantize_sequential(
    a: torch.Tensor, dt: float, v0: torch.Tensor | None = None, dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The step-by-step quantizer in ``a``'s dtype: ``(n, v_last)``. No gradient.

    Each step computes ``v = v + a_t * dt; n = floor(v); v = v - n`` in that order.
    """
    _check_dt(dt)
    with torch.no_grad():
        a = a.detach().movedim(dim, 0)
        v = torch.zeros_like(a[0]) if v0 is None else v0.to(a.dtype).clone()
        scale = torch.tensor(dt, dtype=a.dtype)
        counts = []
        for a_t in a:
            v = v + a_t * scale
            n = torch.floor(v)
            v = v - n
            counts.append(n)
        return torch.stack(counts).movedim(0, dim), v


def straight_through(a: torch.Tensor, n: torch.Tensor, dt: float) -> torch.Tensor:
    """``n / dt`` on the forward pass, the identity's gradient (w.r.t. ``a``) backward."""
    return a + (n / dt - a).detach()


@dataclass(frozen=True)
class DtSchedule:
    """``dt`` over training: geometric from ``start`` down to ``end``, then held at ``end``.

    ``progress`` in [0, 1] is the fraction of training done; the anneal ends at
    ``anneal_until``, and the rest of the run trains at the final (spiking) ``end``.
    """

    start: float = 1000.0
    end: float = 1.0
    anneal_until: float = 0.7

    def __post_init__(self) -> None:
        _check_dt(self.start)
        _check_dt(self.end)
        if self.end > self.start:
            raise ValueError(
                f"dt end {self.end} is above start {self.start}; the schedule goes from fine "
                "(large dt, non-spiking) to coarse (small dt, spiking): swap them"
            )
        if not 0.0 < self.anneal_until <= 1.0:
            raise ValueError(f"anneal_until {self.anneal_until} must be in (0, 1]")

    def __call__(self, progress: float) -> float:
        p = min(max(progress / self.anneal_until, 0.0), 1.0)
        return float(self.start * (self.end / self.start) ** p)


def _bit_length(n: np.ndarray) -> np.ndarray:
    out = np.zeros(n.shape, dtype=np.int64)
    nz = n > 0
    out[nz] = np.floor(np.log2(n[nz])).astype(np.int64) + 1
    return out


class BitsAccumulator:
    """Pools :func:`activity_bits` over batches: ``update(counts)`` then ``result()``.

    ``counts`` is ``(..., neurons)`` integer-valued (any float or int dtype), neurons last.
    """

    def __init__(self) -> None:
        self.max_per_neuron: np.ndarray | None = None
        self.significant = 0
        self.nonzero = 0
        self.total = 0

    def update(self, counts: np.ndarray) -> BitsAccumulator:
        n = np.abs(np.rint(np.asarray(counts, dtype=np.float64))).astype(np.int64)
        if n.ndim == 0 or n.size == 0:
            raise ValueError(f"counts has shape {n.shape}; expected (..., neurons), non-empty")
        peak = n.reshape(-1, n.shape[-1]).max(axis=0)
        if self.max_per_neuron is None:
            self.max_per_neuron = peak
        elif self.max_per_neuron.shape != peak.shape:
            raise ValueError(
                f"counts have {peak.shape[0]} neurons, earlier batches had "
                f"{self.max_per_neuron.shape[0]}; pool one layer per accumulator"
            )
        else:
            self.max_per_neuron = np.maximum(self.max_per_neuron, peak)
        nonzero = n[n > 0]
        lowest = nonzero & -nonzero  # the lowest set bit
        self.significant += int((_bit_length(nonzero) - _bit_length(lowest) + 1).sum())
        self.nonzero += int(nonzero.size)
        self.total += int(n.size)
        return self

    def result(self) -> dict[str, float]:
        if self.max_per_neuron is None:
            raise ValueError("no counts were added; call update(counts) first")
        return {
            "bits_per_activity": float(_bit_length(self.max_per_neuron).mean()),
            "significant_bits_per_multiply": self.significant / max(self.nonzero, 1),
            "nonzero_fraction": self.nonzero / self.total,
            "max_count": int(self.max_per_neuron.max()),
        }


def activity_bits(counts: np.ndarray) -> dict[str, float]:
    """The paper's efficiency measures from integer counts ``(..., neurons)`` (module doc).

    Every axis but the last (time, batch) is pooled per neuron. Returns
    ``bits_per_activity`` (mean over neurons of the bits the neuron's largest count needs),
    ``significant_bits_per_multiply`` (mean over non-zero counts), ``nonzero_fraction`` and
    ``max_count``.
    """
    return BitsAccumulator().update(counts).result()
