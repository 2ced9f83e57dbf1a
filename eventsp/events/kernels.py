"""Numba kernels of the event encoders and filters (serial; the drivers are in
:mod:`eventsp.events.encoders`, :mod:`eventsp.events.buffered` and
:mod:`eventsp.events.filters`; the count and binary frames' kernels are in
:mod:`eventsp.events.count_kernels`).

Every kernel takes the events themselves, a 1-D array of
:data:`~eventsp.events.contract.EVENT_DTYPE` records (reading fields from the records is about
3x faster than from strided field views), and writes into a preallocated output. String
signatures cannot name a record type, so the signatures are built from ``numba.types``.
Frames are ``(n_windows, C, H, W)`` float32, written through a flat view.

Loops over a range of events slice the array and index from 0 (``events[lo:hi][i]``): Numba
proves such indices non-negative and drops the wraparound check it adds to every access
through an index that starts elsewhere (about 1 ns per event in the count loop).

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
_F64_1D = types.Array(types.float64, 1, "C")
_F64_4D = types.Array(types.float64, 4, "C")
_FRAMES = types.Array(types.float32, 4, "C")
#: Time-surface values below this are 0 (half the smallest float32 subnormal is 7e-46).
_SURFACE_FLOOR = 1e-50


@jit([types.int64(_EV, _I64, _I64)])  # type: ignore[list-item]
def _lower_bound(events, t, lo):
    """The first index ``i >= lo`` of time-sorted ``events`` with ``events[i].t >= t``."""
    hi = events.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if events[mid].t < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit(
    [types.void(_EV, _I64_1D, _I64_1D, types.Array(_F64, 3, "C"), _FRAMES)]  # type: ignore[list-item]
)
def _voxel_grids(events, starts, ends, scratch, out):
    """Voxel grid of each window's events ``[starts[w], ends[w])`` into ``out[w]`` (bins as
    channels). ``scratch`` is a float64 ``(B, H, W)`` buffer: sums are taken in float64 in
    tonic's order (its two ``np.add.at``: every event's share of its own bin, in event order,
    then every event's share of the next bin) and rounded to float32 once. One pass that
    added both shares of each event would differ from tonic in the last bits where the
    shares of several events cancel; the next-bin shares wait in a list (position, value)
    instead, so each event is read and its time scaled once."""
    B, H, W = scratch.shape
    flat = scratch.reshape(-1)
    # The shares of the next bin wait in ``later`` (index, value) for the second pass.
    longest = np.max(ends - starts) if starts.shape[0] else 0
    later_at = np.empty(max(longest, 0), np.int64)
    later = np.empty(max(longest, 0))
    for w in range(starts.shape[0]):
        s, e = starts[w], ends[w]
        flat[:] = 0.0
        if e > s:
            t_first = events[s].t
            span = np.float64(events[e - 1].t - t_first)
            part = events[s:e]  # indices from 0: no sign check per access
            n_later = 0
            for i in range(part.shape[0]):
                ev = part[i]
                ts = B * (np.float64(ev.t) - np.float64(t_first)) / span if span > 0.0 else 0.0
                bin_ = np.int64(ts)
                frac = ts - bin_
                sign = 1.0 if ev.p else -1.0
                at = bin_ * H * W + np.int64(ev.y) * W + np.int64(ev.x)
                if bin_ < B:
                    flat[at] += sign * (1.0 - frac)
                if bin_ + 1 < B:
                    later_at[n_later] = at + H * W
                    later[n_later] = sign * frac
                    n_later += 1
            for i in range(n_later):
                flat[later_at[i]] += later[i]
        target = out[w].reshape(-1)
        for j in range(flat.shape[0]):
            target[j] = np.float32(flat[j])


@jit(
    [
        types.void(_EV, _I64, _I64, _I64, _I64, _B, _F64, _F64_1D, _F64_4D, _FRAMES)  # type: ignore[list-item]
    ]
)
def _time_surfaces(events, origin, first, stride, length, two_polarities, tau, table, memory, out):
    """Time surfaces of windows ``first, first + 1, ...`` (one per frame of ``out``, all
    written). Window ``k`` holds the time-sorted ``events`` with ``origin + kS <= t < origin +
    kS + L``; its events' times go into ``memory[0]``, then its surface, taken at its end
    ``t_e``, into ``out``. ``memory`` (float64 ``(2, P, H, W)``, the stream's state, updated in
    place) holds in ``[0]`` the latest time per pixel (``-inf`` where no event came yet) and in
    ``[1]`` the surface at the end of window ``first - 1`` (all 0 before the first window).
    ``table[d]`` is ``exp(-d / τ)`` for integer ages ``d`` (µs) it covers.

    Each surface is the previous one times ``exp(-(t_e - t_e') / τ)`` (``t_e'`` the previous
    window's end), taken again only at the pixels the window's events touched, where the age
    is an integer below ``L``, read from ``table``. A multiply per pixel instead of an ``exp``
    (~10 ns): the product differs from the direct ``exp`` by a few float64 ulps per window
    since the pixel's last event, far below the float32 output's resolution. Products below
    ``_SURFACE_FLOOR`` are set to 0: every float32 they could round to is 0 too, and float64
    subnormals would slow each multiply by two orders of magnitude on a long quiet stream.
    """
    _, P, H, W = memory.shape
    n_pixels = P * H * W
    n_table = table.shape[0]
    flat_memory = memory.reshape(-1)
    times = flat_memory[:n_pixels]
    surface = flat_memory[n_pixels:]
    flat_out = out.reshape(-1)
    start = np.int64(0)
    t_previous = np.float64(origin + (first - 1) * stride + length)
    for w in range(out.shape[0]):
        low = origin + (first + w) * stride
        start = _lower_bound(events, low, start)
        part = events[start : _lower_bound(events, low + length, start)]  # indexed from 0
        for i in range(part.shape[0]):
            c = np.int64(part[i].p) if two_polarities else np.int64(0)
            pixel = (c * H + np.int64(part[i].y)) * W + np.int64(part[i].x)
            times[pixel] = np.float64(part[i].t)
        t_end = np.float64(low + length)
        row = flat_out[w * n_pixels : (w + 1) * n_pixels]
        decay = math.exp(-(t_end - t_previous) / tau)
        for j in range(n_pixels):
            v = surface[j] * decay
            v = v if v >= _SURFACE_FLOOR else 0.0
            surface[j] = v
            row[j] = np.float32(v)
        for i in range(part.shape[0]):
            c = np.int64(part[i].p) if two_polarities else np.int64(0)
            pixel = (c * H + np.int64(part[i].y)) * W + np.int64(part[i].x)
            age = np.int64(t_end - times[pixel])  # an integer: t are integer µs
            if age < n_table:
                surface[pixel] = table[age]
            else:
                surface[pixel] = math.exp(-(t_end - times[pixel]) / tau)
            row[pixel] = np.float32(surface[pixel])
        t_previous = t_end


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
