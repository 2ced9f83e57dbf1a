"""Numba kernels of the count and binary frames (serial; the driver is
:class:`eventsp.events.encoders.FrameEncoder`). Conventions and math as in
:mod:`eventsp.events.kernels`.

Window ``k`` holds the time-sorted events whose position ``r`` satisfies ``kS <= r < kS + L``
(``r = t - origin`` by time, the stream index by count). Each window's events are one index
range (binary searches on ``t``, or arithmetic by count); each range is counted in a tight
branch-free loop that also checks every event (time order as the smallest time step,
coordinates as the largest values, polarity as an OR), so a packet is read once. The flags
(:data:`~eventsp.events.kernels.UNSORTED`, ``OFF_SENSOR``, ``POLARITY``) tell the driver when
the frames are meaningless and the packet needs the general path (validate, sort, count again).

The two entry points, :func:`_encode_counts` (a whole recording) and :func:`_push_counts` (one
packet of a stream), are one call each, with the stream's scalars in one int64 array
(``COUNTERS``) and the encoder's in another (``CONFIG``): a Numba call costs about 0.4 µs plus
0.05 µs per argument, so the per-packet path passes four arrays instead of a dozen scalars and
allocates its outputs inside the kernel (handing an array back to Python costs about 0.6 µs;
allocating it in Python first would take a second call to size it).
"""

from __future__ import annotations

import numpy as np
from numba import from_dtype, types

from eventsp._jit import jit
from eventsp.events.contract import EVENT_DTYPE
from eventsp.events.kernels import POLARITY, _lower_bound

__all__: list[str] = []

#: ``EncoderState.counters``: int64 scalars of a stream, by index.
#: WATERMARK: the latest t passed on by the time-order policy (µs); SEEN / PASSED / LATE:
#: event counts of that policy; ORIGIN: by time, the first windowed event's t (µs), by count,
#: the stream index of ``buffer[0]``; STARTED: 1 once an event reached the windowing;
#: NEXT_WINDOW: the index of the next window to emit; N_EVENTS: events that reached the
#: windowing; T_LAST: the latest one's t (µs).
WATERMARK, SEEN, PASSED, LATE, ORIGIN, STARTED, NEXT_WINDOW, N_EVENTS, T_LAST = range(9)
N_COUNTERS = 9
#: ``FrameEncoder._config``: int64 constants of an encoder, by index. BY_TIME: 1 for time
#: windows; LENGTH, STRIDE: L and S (µs or events); BINARY, INCOMPLETE: 0 or 1; C, H, W: the
#: frame shape.
BY_TIME, LENGTH, STRIDE, BINARY, INCOMPLETE, CHANNELS, HEIGHT, WIDTH = range(8)
N_CONFIG = 8
#: A flag beside the check flags: the packet is out of order as a whole (it starts before the
#: watermark or ends before it starts), so nothing was counted.
NOT_IN_ORDER = 8

_EV = from_dtype(EVENT_DTYPE)[::1]
_I64, _B = types.int64, types.boolean
_I64_1D = types.Array(types.int64, 1, "C")
_F32_1D = types.Array(types.float32, 1, "C")
_FRAMES = types.Array(types.float32, 4, "C")


@jit([types.int64(_I64, _I64, _I64, _B)])  # type: ignore[list-item]
def _n_windows(span, length, stride, incomplete):
    """How many windows tonic's ``SliceByTime``/``SliceByEventCount`` cut from a whole
    recording: ``max(floor((span - L) / S) + 1, 1)`` (``ceil`` with ``incomplete``); ``span`` is
    ``t_last - t_first`` (µs) by time, the event count by count (``L`` then at most ``span``)."""
    d = span - length
    k = -(-d // stride) if incomplete else d // stride  # floor division, as Python's
    return max(k + 1, np.int64(1))


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


@jit([types.UniTuple(types.int64, 3)(_EV, _I64, _I64, _I64)])  # type: ignore[list-item]
def _scan(events, W, H, P):
    """One pass over a packet: ``(flags, t_first, t_last)``, ``flags`` those of
    :func:`_check_range` over the whole packet (``POLARITY`` only when ``P == 1``: with two
    polarities every value is valid); times are 0 for an empty packet."""
    n = events.shape[0]
    if n == 0:
        return np.int64(0), np.int64(0), np.int64(0)
    flags = _check_range(events, 0, n, H, W)
    if P != 1:
        flags &= ~np.int64(POLARITY)
    return flags, events[0].t, events[n - 1].t


@jit([types.int64(_EV, _I64, _I64, _F32_1D, _I64, _I64, _I64)])  # type: ignore[list-item]
def _count_range(events, lo, hi, row, C, H, W):
    """Add events ``[lo, hi)`` to ``row``, a flat ``(C, H, W)`` frame; returns their
    :func:`_check_range` flags, computed on the way (``POLARITY`` only when ``C == 1``: with
    two channels every polarity is valid).

    Branch-free: coordinates are clamped into the frame (an event off the sensor is counted at
    the border, never out of bounds; its flag makes the caller discard the frames) and the checks
    are reductions (an OR of the time steps, whose sign bit is set when one step is negative;
    the largest coordinates). Index arithmetic is 32-bit (a frame has fewer than 2**32 cells:
    H, W <= 32767, C <= 2), and each channel count has its own loop with only the work it
    needs. Each of these cut the time per event (N-MNIST, hot: 2.2 ns for one 64-bit loop that
    masked the channel and took the smallest step, 1.75 ns now).
    """
    h, w = np.uint32(H), np.uint32(W)
    y_top, x_top = h - np.uint32(1), w - np.uint32(1)
    x_max, y_max, on = np.uint32(0), np.uint32(0), np.uint32(0)
    steps = np.int64(0)  # OR of the time steps: negative when one is
    previous = events[max(lo - 1, 0)].t if hi > lo else np.int64(0)
    part = events[lo:hi]  # indices from 0 (a range from lo costs a sign check per access)
    if C == 2:  # channel p
        for i in range(part.shape[0]):
            t = part[i].t
            steps |= t - previous
            previous = t
            x = np.uint32(np.uint16(part[i].x))  # negative coordinates become >= 32768
            y = np.uint32(np.uint16(part[i].y))
            p = np.uint32(part[i].p)
            x_max, y_max = max(x_max, x), max(y_max, y)
            row[np.uint64((p * h + min(y, y_top)) * w + min(x, x_top))] += np.float32(1.0)
    else:  # one channel; an ON event breaks the contract
        for i in range(part.shape[0]):
            t = part[i].t
            steps |= t - previous
            previous = t
            x = np.uint32(np.uint16(part[i].x))
            y = np.uint32(np.uint16(part[i].y))
            x_max, y_max, on = max(x_max, x), max(y_max, y), on | np.uint32(part[i].p)
            row[np.uint64(min(y, y_top) * w + min(x, x_top))] += np.float32(1.0)
    off_sensor = (x_max >= w) | (y_max >= h)
    return np.int64(steps < 0) | (np.int64(off_sensor) << 1) | (np.int64(on) << 2)


@jit([types.int64(_EV, _I64_1D, _I64_1D, _FRAMES, _FRAMES, _FRAMES, _B)])  # type: ignore[list-item]
def _count_ranges(events, starts, ends, previous, out, still_open, binary):
    """Count events ``[starts[w], ends[w])`` into frame ``w`` of ``out`` followed by
    ``still_open`` (both uninitialised), each frame starting from ``previous[w]`` where that
    exists, else from 0; ``binary`` clips the frames of ``out`` to 1. Each frame is filled,
    counted and clipped while it is in the L1 cache.

    Checks every event of ``events`` on the way (those in no window too) and returns
    :func:`_scan`'s flags for the sensor of the frames' size; when they
    are not 0 the frames are meaningless (see :func:`_count_range`; unsorted events also break
    the windows' binary searches).
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
    Returns :func:`_count_ranges`' flags.
    """
    n = events.shape[0]
    n_rows = out.shape[0] + still_open.shape[0]
    starts = np.empty(n_rows, dtype=np.int64)
    ends = np.empty(n_rows, dtype=np.int64)
    start = np.int64(0)
    for w in range(n_rows):
        low = (first + w) * stride  # window start, as a position
        if by_time:
            if w == 0 or stride != length:
                start = _lower_bound(events, origin + low, start)
            else:  # back-to-back windows: this one starts where the last one ended
                start = ends[w - 1]
            starts[w] = start
            ends[w] = _lower_bound(events, origin + low + length, start)
        else:
            starts[w] = min(max(low - pos0, 0), n)
            ends[w] = min(max(low + length - pos0, 0), n)
    return _count_ranges(events, starts, ends, previous, out, still_open, binary)


@jit([types.Tuple((_I64, _FRAMES))(_EV, _I64_1D)])  # type: ignore[list-item]
def _encode_counts(events, config):
    """Count (or binary) frames of a whole recording, tonic's windows (see
    :func:`_n_windows`): returns the check flags and the frames, which mean nothing unless the
    flags are 0 (then the recording was valid and sorted). An empty recording returns only
    ``NOT_IN_ORDER`` (tonic cuts no window from it; the driver says what it gives)."""
    n = events.shape[0]
    C, H, W = config[CHANNELS], config[HEIGHT], config[WIDTH]
    if n == 0:
        return np.int64(NOT_IN_ORDER), np.empty((0, C, H, W), dtype=np.float32)
    by_time = config[BY_TIME] != 0
    length, stride = config[LENGTH], config[STRIDE]
    if by_time:
        origin = events[0].t
        n_out = _n_windows(events[n - 1].t - origin, length, stride, config[INCOMPLETE] != 0)
    else:
        origin = np.int64(0)
        n_out = _n_windows(n, min(length, n), stride, config[INCOMPLETE] != 0)
    out = np.empty((n_out, C, H, W), dtype=np.float32)
    none = np.empty((0, C, H, W), dtype=np.float32)
    binary = config[BINARY] != 0
    flags = _count_frames(events, 0, by_time, origin, length, stride, 0, none, out, none, binary)
    return flags, out


@jit([types.Tuple((_I64, _I64, _FRAMES))(_EV, _I64_1D, _I64_1D, _FRAMES, _B)])  # type: ignore[list-item]
def _push_counts(events, counters, config, previous, apply_order):
    """One packet of a stream of count (or binary) frames.

    ``counters``: the stream's scalars (``COUNTERS`` layout); ``previous``: the partial frames
    of its open windows, ``NEXT_WINDOW`` onwards. Adds the packet's events to them and to new
    windows; returns ``(flags, n_out, frames)``: ``frames[:n_out]`` are the frames of the
    windows the packet completed, ``frames[n_out:]`` those of the windows still open (one new
    array: one array to hand back to Python instead of two, ~0.5 µs less). ``counters`` is
    updated in place, and only when the flags are 0: a packet that fails its checks leaves it
    as it was, so the driver can redo the packet on the general path. ``previous`` is never
    modified.

    ``apply_order``: the packet has not been through the time-order policy yet; the kernel
    applies it to a packet that is in order as a whole (non-empty, ending after it starts, at
    or after the watermark) and returns only ``NOT_IN_ORDER`` for any other, counting nothing.
    Otherwise (a sorted, non-empty packet) the order counters are left as they are. The
    frames mean nothing unless the flags are 0.
    """
    n = events.shape[0]
    C, H, W = config[CHANNELS], config[HEIGHT], config[WIDTH]
    if n == 0 or (
        apply_order and (events[0].t < counters[WATERMARK] or events[n - 1].t < events[0].t)
    ):
        return np.int64(NOT_IN_ORDER), np.int64(0), np.empty((0, C, H, W), np.float32)
    t_first, t_last = events[0].t, events[n - 1].t
    by_time = config[BY_TIME] != 0
    length, stride = config[LENGTH], config[STRIDE]
    pos0 = counters[N_EVENTS]  # stream index of events[0]
    n_events = pos0 + n
    if by_time:
        origin = counters[ORIGIN] if counters[STARTED] else t_first
        last = span = t_last - origin
    else:
        origin, last, span = np.int64(0), n_events - 1, n_events
    complete = (span - length) // stride + 1 if span >= length else np.int64(0)
    first = counters[NEXT_WINDOW]
    stop = max(complete, first)
    n_open = max(last // stride + 1, stop) - stop
    frames = np.empty((stop - first + n_open, C, H, W), dtype=np.float32)
    out, still_open = frames[: stop - first], frames[stop - first :]
    binary = config[BINARY] != 0
    flags = _count_frames(events, pos0, by_time, origin, length, stride, first, previous, out,
                          still_open, binary)  # fmt: skip
    if flags == 0:
        if apply_order:
            counters[WATERMARK] = t_last
            counters[SEEN] += n
            counters[PASSED] += n
        counters[ORIGIN] = origin
        counters[STARTED] = 1
        counters[NEXT_WINDOW] = stop
        counters[N_EVENTS] = n_events
        counters[T_LAST] = t_last
    return flags, stop - first, frames
