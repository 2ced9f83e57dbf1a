"""Numba kernels of the event encoders and filters (serial; the drivers are in
:mod:`eventsp.events.encoders` and :mod:`eventsp.events.filters`).

Every kernel takes the events themselves, a 1-D array of
:data:`~eventsp.events.contract.EVENT_DTYPE` records (reading fields from the records is about
3x faster than from strided field views), and writes into a preallocated output. String
signatures cannot name a record type, so the signatures are built from ``numba.types``.
Frames are ``(n_windows, C, H, W)`` float32, written through a flat view.

Math (window ``k`` holds the events at position ``r`` with ``kS <= r < kS + L``):

- count frame: ``F[c, y, x] = #events at (x, y)`` with ``c = p`` when the sensor has two
  polarities, else 0; a binary frame is ``F > 0``.
- voxel grid (Zhu et al. 2019, as tonic's ``to_voxel_grid_numpy``): with ``B`` bins,
  ``τ = B (t - t_first) / (t_last - t_first)``, ``i = ⌊τ⌋``, ``s = ±1`` for ON/OFF; the event adds
  ``s (1 - (τ - i))`` to bin ``i`` and ``s (τ - i)`` to bin ``i + 1`` where those bins exist.
- time surface (Lagorce et al. 2016, as tonic's ``to_timesurface_numpy``): memory
  ``M[p, y, x]`` is the latest timestamp at each pixel; at the end ``t_e`` of each window the
  surface is ``exp(-(t_e - M) / τ)`` (0 where no event ever came).
"""

from __future__ import annotations

import math

import numpy as np
from numba import from_dtype, types

from eventsp._jit import jit
from eventsp.events.contract import EVENT_DTYPE

__all__: list[str] = []

UNSORTED = 1
OFF_SENSOR = 2
POLARITY = 4

_EV = from_dtype(EVENT_DTYPE)[::1]
_I64, _B, _F64 = types.int64, types.boolean, types.float64
_I64_1D = types.Array(types.int64, 1, "C")
_FRAMES = types.Array(types.float32, 4, "C")


@jit([types.int64(_EV, _I64, _I64, _I64)])  # type: ignore[list-item]
def _scan(events, W, H, P):
    """One pass over a packet: a bit set of ``UNSORTED`` (t decreases somewhere),
    ``OFF_SENSOR`` (a coordinate outside ``W x H``) and ``POLARITY`` (ON events, P == 1)."""
    flags = 0
    previous = -9223372036854775807 - 1  # int64 minimum
    for i in range(events.shape[0]):
        e = events[i]
        if e.x < 0 or e.x >= W or e.y < 0 or e.y >= H:
            flags |= 2
        if P == 1 and e.p:
            flags |= 4
        if e.t < previous:
            flags |= 1
        previous = e.t
    return flags


@jit([types.int64(_EV, _I64, _B, _I64, _I64, _I64, _I64, _FRAMES)])  # type: ignore[list-item]
def _count_windows(events, index0, by_time, origin, length, stride, first, out):
    """Count frames of windows ``[first, first + len(out))`` in one pass over time-sorted
    events: event ``i`` (stream index ``index0 + i``) lies in window ``k`` when its position
    ``r`` (``t - origin`` by time, the stream index by count) satisfies ``kS <= r < kS + L``.
    The windows holding ``r`` are tracked with two pointers (no division per event).

    Checks as it goes and returns :func:`_scan`'s flags: events off the sensor are skipped
    (never written out of bounds); with ``UNSORTED`` set the frames are meaningless.
    """
    n_out, C, H, W = out.shape
    stop = first + n_out
    two = C == 2
    frame = C * H * W
    flat = out.reshape(-1)
    unsorted = False
    off_sensor = False
    polarity = False
    previous = -9223372036854775807 - 1  # int64 minimum
    k_lo = first  # first window that may still hold r
    k_hi = first - 1  # last window that has started at r
    hi_end = (k_hi + 1) * stride  # where window k_hi + 1 starts
    for i in range(events.shape[0]):
        e = events[i]
        t = e.t
        unsorted |= t < previous
        previous = t
        # Unsigned compares catch negative coordinates too (branch-free flags).
        inside = (np.uint64(np.int64(e.x)) < np.uint64(W)) & (
            np.uint64(np.int64(e.y)) < np.uint64(H)
        )
        off_sensor |= not inside
        polarity |= e.p and not two
        r = (t - origin) if by_time else (index0 + i)
        while r >= hi_end and k_hi + 1 < stop:
            k_hi += 1
            hi_end += stride
        c = np.int64(e.p) if two else np.int64(0)
        pixel = (c * H + np.int64(e.y)) * W + np.int64(e.x)
        if stride == length:  # disjoint windows: at most one
            if inside and k_hi >= first and r < hi_end:
                flat[(k_hi - first) * frame + pixel] += np.float32(1.0)
            continue
        while k_lo * stride + length <= r:
            k_lo += 1
        if inside:
            for k in range(k_lo, k_hi + 1):
                flat[(k - first) * frame + pixel] += np.float32(1.0)
    return np.int64(unsorted) | (np.int64(off_sensor) << 1) | (np.int64(polarity) << 2)


@jit(
    [types.void(_EV, _I64_1D, _I64_1D, types.Array(_F64, 3, "C"), _FRAMES)]  # type: ignore[list-item]
)
def _voxel_grids(events, starts, ends, scratch, out):
    """Voxel grid of each window's events ``[starts[w], ends[w])`` into ``out[w]`` (bins as
    channels). ``scratch`` is a float64 ``(B, H, W)`` buffer: sums are taken in float64 in
    event order, as tonic's ``np.add.at`` does, and rounded to float32 once."""
    B, H, W = scratch.shape
    flat = scratch.reshape(-1)
    for w in range(starts.shape[0]):
        s, e = starts[w], ends[w]
        flat[:] = 0.0
        if e > s:
            t_first = events[s].t
            span = np.float64(events[e - 1].t - t_first)
            for i in range(s, e):
                ev = events[i]
                ts = B * (np.float64(ev.t) - np.float64(t_first)) / span if span > 0.0 else 0.0
                bin_ = np.int64(ts)
                frac = ts - bin_
                sign = 1.0 if ev.p else -1.0
                pixel = np.int64(ev.y) * W + np.int64(ev.x)
                if bin_ < B:
                    flat[bin_ * H * W + pixel] += sign * (1.0 - frac)
                if bin_ + 1 < B:
                    flat[(bin_ + 1) * H * W + pixel] += sign * frac
        target = out[w].reshape(-1)
        for j in range(flat.shape[0]):
            target[j] = np.float32(flat[j])


@jit(
    [
        types.void(_EV, _I64_1D, _I64_1D, _I64_1D, _B, _F64, types.Array(_F64, 3, "C"), _FRAMES)  # type: ignore[list-item]
    ]
)
def _time_surfaces(events, starts, ends, end_times, two_polarities, tau, memory, out):
    """For each window: write its events' times into ``memory``, then the surface at its end.

    ``memory`` holds ``-inf`` where no event came yet; it is updated in place (stream state).
    """
    P, H, W = memory.shape
    for w in range(starts.shape[0]):
        for i in range(starts[w], ends[w]):
            e = events[i]
            c = np.int64(e.p) if two_polarities else 0
            memory[c, e.y, e.x] = np.float64(e.t)
        t_end = np.float64(end_times[w])
        for c in range(P):
            for r in range(H):
                for col in range(W):
                    m = memory[c, r, col]
                    if m == -np.inf:
                        out[w, c, r, col] = 0.0
                    else:
                        out[w, c, r, col] = np.float32(math.exp(-(t_end - m) / tau))


_FILTER_SIG = [
    types.int64(_EV, _I64, types.Array(_I64, 2, "C"), types.Array(_B, 1, "C"))  # type: ignore[list-item]
]


@jit(_FILTER_SIG)
def _denoise(events, filter_time, memory, keep):
    """tonic's Denoise: keep an event when a 4-neighbour pixel fired within ``filter_time``.

    ``memory[x, y]`` holds (last event time + filter_time) per pixel; returns the kept count.
    """
    W, H = memory.shape
    kept = 0
    for i in range(events.shape[0]):
        e = events[i]
        xi, yi, ti = np.int64(e.x), np.int64(e.y), e.t
        memory[xi, yi] = ti + filter_time
        ok = (
            (xi > 0 and memory[xi - 1, yi] > ti)
            or (xi < W - 1 and memory[xi + 1, yi] > ti)
            or (yi > 0 and memory[xi, yi - 1] > ti)
            or (yi < H - 1 and memory[xi, yi + 1] > ti)
        )
        keep[i] = ok
        kept += ok
    return kept


@jit(_FILTER_SIG)
def _refractory(events, period, memory, keep):
    """tonic's RefractoryPeriod: keep an event when ``t - last[x, y] > period``; every event,
    kept or not, updates ``last``. Returns the kept count."""
    kept = 0
    for i in range(events.shape[0]):
        e = events[i]
        xi, yi, ti = np.int64(e.x), np.int64(e.y), e.t
        ok = ti - memory[xi, yi] > period
        keep[i] = ok
        kept += ok
        memory[xi, yi] = ti
    return kept
