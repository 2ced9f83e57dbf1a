"""Numba kernels of the event encoders and filters (serial; the drivers are in
:mod:`eventsp.events.encoders` and :mod:`eventsp.events.filters`).

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
_F32_1D = types.Array(types.float32, 1, "C")
_FRAMES = types.Array(types.float32, 4, "C")


@jit([types.UniTuple(types.int64, 3)(_EV, _I64, _I64, _I64)])  # type: ignore[list-item]
def _scan(events, W, H, P):
    """One branch-free pass over a packet: returns ``(flags, t_first, t_last)``, ``flags`` a bit
    set of ``UNSORTED`` (t decreases somewhere), ``OFF_SENSOR`` (a coordinate outside
    ``W x H``) and ``POLARITY`` (ON events, P == 1); times are 0 for an empty packet."""
    n = events.shape[0]
    if n == 0:
        return np.int64(0), np.int64(0), np.int64(0)
    unsorted = False
    off_sensor = False
    on = False
    previous = events[0].t
    for i in range(n):
        t = events[i].t
        # Unsigned compares catch negative coordinates too.
        off_sensor |= (np.uint64(np.int64(events[i].x)) >= np.uint64(W)) | (
            np.uint64(np.int64(events[i].y)) >= np.uint64(H)
        )
        on |= events[i].p
        unsorted |= t < previous
        previous = t
    flags = np.int64(unsorted) | (np.int64(off_sensor) << 1) | (np.int64(on and P == 1) << 2)
    return flags, events[0].t, previous


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


@jit([types.int64(_EV, _I64, _I64, _I64, _I64)])  # type: ignore[list-item]
def _check_range(events, lo, hi, H, W):
    """The check flags of events ``[lo, hi)``: ``UNSORTED`` (t compared from event ``lo - 1``
    on), ``OFF_SENSOR`` (outside ``W x H``), and ``POLARITY`` when some event is ON."""
    x_max, y_max, on = np.uint64(0), np.uint64(0), np.uint64(0)
    step_min = np.int64(0)
    previous = events[max(lo - 1, 0)].t if hi > lo else np.int64(0)
    part = events[lo:hi]  # indices from 0 (a range from lo costs a sign check per access)
    for i in range(part.shape[0]):
        t = part[i].t
        step_min = min(step_min, t - previous)
        previous = t
        x = np.uint64(np.uint16(part[i].x))  # negative coordinates become >= 32768
        y = np.uint64(np.uint16(part[i].y))
        x_max, y_max, on = max(x_max, x), max(y_max, y), on | np.uint64(part[i].p)
    off_sensor = (x_max >= np.uint64(W)) | (y_max >= np.uint64(H))
    return np.int64(step_min < 0) | (np.int64(off_sensor) << 1) | (np.int64(on) << 2)


@jit([types.int64(_EV, _I64, _I64, _F32_1D, _I64, _I64, _I64)])  # type: ignore[list-item]
def _count_range(events, lo, hi, row, C, H, W):
    """Add events ``[lo, hi)`` to ``row``, a flat ``(C, H, W)`` frame; returns their
    :func:`_check_range` flags, computed on the way.

    Branch-free: coordinates are clamped into the frame (an event off the sensor is counted at
    the border, never out of bounds; its flag makes the caller discard the frames) and the checks
    are reductions (the smallest time step, the largest coordinates).
    """
    mask = np.uint64(1) if C == 2 else np.uint64(0)  # channel: p, or 0 for one polarity
    h, w = np.uint64(H), np.uint64(W)
    y_top, x_top = h - np.uint64(1), w - np.uint64(1)
    x_max, y_max, on = np.uint64(0), np.uint64(0), np.uint64(0)
    step_min = np.int64(0)
    previous = events[max(lo - 1, 0)].t if hi > lo else np.int64(0)
    part = events[lo:hi]  # indices from 0 (a range from lo costs a sign check per access)
    for i in range(part.shape[0]):
        t = part[i].t
        step_min = min(step_min, t - previous)
        previous = t
        x = np.uint64(np.uint16(part[i].x))  # negative coordinates become >= 32768
        y = np.uint64(np.uint16(part[i].y))
        p = np.uint64(part[i].p)
        x_max, y_max, on = max(x_max, x), max(y_max, y), on | p
        row[((p & mask) * h + min(y, y_top)) * w + min(x, x_top)] += np.float32(1.0)
    off_sensor = (x_max >= w) | (y_max >= h)
    return np.int64(step_min < 0) | (np.int64(off_sensor) << 1) | (np.int64(on) << 2)


@jit([types.int64(_EV, _I64_1D, _I64_1D, _FRAMES, _FRAMES, _FRAMES, _B)])  # type: ignore[list-item]
def _count_ranges(events, starts, ends, previous, out, still_open, binary):
    """Count events ``[starts[w], ends[w])`` into frame ``w`` of ``out`` followed by
    ``still_open`` (both uninitialised), each frame starting from ``previous[w]`` where that
    exists, else from 0; ``binary`` clips the frames of ``out`` to 1. Each frame is filled,
    counted and clipped while it is in the L1 cache.

    Checks every event of ``events`` on the way (those in no window too) and returns
    :func:`_scan`'s flags for the sensor of the frames' size; when they are not 0 the frames
    are meaningless (see :func:`_count_range`; unsorted events also break the windows' binary
    searches).
    """
    _, C, H, W = out.shape
    frame = C * H * W
    n_prev, n_out = previous.shape[0], out.shape[0]
    flat_prev = previous.reshape(-1)
    flat_out = out.reshape(-1)
    flat_open = still_open.reshape(-1)
    flags = np.int64(0)
    checked = np.int64(0)  # events [0, checked) are checked
    for w in range(starts.shape[0]):
        if w < n_out:
            row = flat_out[w * frame : (w + 1) * frame]
        else:
            row = flat_open[(w - n_out) * frame : (w - n_out + 1) * frame]
        if w < n_prev:
            row[:] = flat_prev[w * frame : (w + 1) * frame]
        else:
            row[:] = 0.0
        lo, hi = starts[w], ends[w]
        if lo > checked:  # events in no window
            flags |= _check_range(events, checked, lo, H, W)
        flags |= _count_range(events, lo, hi, row, C, H, W)
        checked = max(checked, hi)
        if binary and w < n_out:
            for j in range(frame):
                row[j] = min(row[j], np.float32(1.0))
    flags |= _check_range(events, checked, events.shape[0], H, W)
    return flags if C == 1 else flags & 3


@jit(
    [types.int64(_EV, _I64, _B, _I64, _I64, _I64, _I64, _FRAMES, _FRAMES, _FRAMES, _B)]  # type: ignore[list-item]
)
def _count_frames(
    events, pos0, by_time, origin, length, stride, first, previous, out, still_open, binary
):
    """Count frames of windows ``first, first + 1, ...``: ``out`` then ``still_open`` (one
    frame per window, uninitialised; see :func:`_count_ranges`). Window ``k`` holds the
    time-sorted ``events`` whose position ``r`` satisfies ``kS <= r < kS + L``: ``r = t -
    origin`` by time, the stream index by count (event ``i`` is number ``pos0 + i`` of the
    stream). ``previous`` holds the counts so far of the first windows (a stream's open ones).

    Two phases: each window's events are one index range (binary searches on ``t``, or
    arithmetic by count), then each range is counted in a tight loop (overlapping windows count
    an event once each), checking each event (returns :func:`_count_ranges`' flags).
    """
    n = events.shape[0]
    n_rows = out.shape[0] + still_open.shape[0]
    starts = np.empty(n_rows, dtype=np.int64)
    ends = np.empty(n_rows, dtype=np.int64)
    start = np.int64(0)
    for w in range(n_rows):
        low = (first + w) * stride  # window start, as a position
        if by_time:
            start = _lower_bound(events, origin + low, start)
            starts[w] = start
            ends[w] = _lower_bound(events, origin + low + length, start)
        else:
            starts[w] = min(max(low - pos0, 0), n)
            ends[w] = min(max(low + length - pos0, 0), n)
    return _count_ranges(events, starts, ends, previous, out, still_open, binary)


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
            part = events[s:e]  # indices from 0: no sign check per access
            for i in range(part.shape[0]):
                ev = part[i]
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
