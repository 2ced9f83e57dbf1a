"""The buffering path of :class:`~eventsp.events.encoders.FrameEncoder`: voxel grids, time
surfaces, and count frames whose open windows would take too much memory.

These representations need a window's events together (a voxel grid scales time by the
window's first and last event; a time surface is taken at the window's end), so a stream
keeps the events that windows not yet emitted may still need (``EncoderState.buffer``) and
emits a window once an event at or after its end has arrived (by count: its last event). The
windows are those of the module doc of :mod:`eventsp.events.encoders`; the kernels are in
:mod:`eventsp.events.kernels` and :mod:`eventsp.events.count_kernels`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from eventsp.events.contract import concat_events, take_events
from eventsp.events.count_kernels import (
    N_EVENTS,
    NEXT_WINDOW,
    ORIGIN,
    STARTED,
    T_LAST,
    _count_frames,
)
from eventsp.events.kernels import _time_surfaces, _voxel_grids

if TYPE_CHECKING:
    from eventsp.events.encoders import FrameEncoder
    from eventsp.events.state import EncoderState

__all__ = ["push_buffered", "windows"]


def push_buffered(
    encoder: FrameEncoder, events: np.ndarray, t_first: int, t_last: int, state: EncoderState
) -> tuple[np.ndarray, EncoderState]:
    """Add a sorted, filtered, non-empty packet (``t_first``/``t_last``: its first and last t,
    µs) to the stream's buffer and emit the windows it completed; ``state`` already holds the
    packet's order counters and filter states, in counters that are the caller's own copy
    (updated here in place). Returns the frames and the new state."""
    counters = state.counters
    buffer = concat_events([state.buffer, events]) if state.buffer.size else events
    started = bool(counters[STARTED])
    origin = int(counters[ORIGIN]) if started or encoder.event_count else t_first
    n_events = int(counters[N_EVENTS]) + events.shape[0]
    length, stride, by_time = encoder._windowing
    span = (t_last - origin) if by_time else n_events
    complete = (span - length) // stride + 1 if span >= length else 0
    first = int(counters[NEXT_WINDOW])
    stop = max(complete, first)
    out, keep_from, new_origin, memory = windows(encoder, buffer, origin, first, stop, state.memory)
    counters[ORIGIN] = new_origin
    counters[STARTED] = 1
    counters[NEXT_WINDOW] = stop
    counters[N_EVENTS] = n_events
    counters[T_LAST] = t_last
    kept = take_events(buffer, slice(keep_from, None))  # never a view of the caller's events
    return out, state._replace(counters=counters, buffer=kept, memory=memory)


def windows(
    encoder: FrameEncoder,
    buffer: np.ndarray,
    origin: int,
    first: int,
    stop: int,
    memory: np.ndarray,
    keep: bool = True,
    owned: bool = False,
) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Frames of windows ``[first, stop)`` over the sorted ``buffer`` (by time ``origin`` is
    the stream's first t, by count the stream index of ``buffer[0]``); also the index of the
    first event a later window may need (``keep``: else none is), the origin after dropping the
    events before it, and the new ``memory`` (time surfaces: a new array, or ``memory`` itself
    updated in place when the caller ``owned`` it, no state holding it; else unchanged).
    """
    out = encoder._frames(max(stop - first, 0), empty=True)  # the kernels write every value
    if stop <= first:
        return out, 0, origin, memory
    length, stride, by_time = encoder._windowing
    t = buffer["t"]
    if not keep:
        keep_from, new_origin = buffer.size, origin
    elif by_time:
        keep_from = int(np.searchsorted(t, origin + stop * stride))
        new_origin = origin
    else:
        keep_from = min(stop * stride - origin, buffer.size)
        new_origin = origin + keep_from
    representation = encoder.representation
    if representation in ("count", "binary"):
        pos0 = 0 if by_time else origin  # stream index of buffer[0]
        none, binary = encoder._no_frames, representation == "binary"
        flags = _count_frames(buffer, pos0, by_time, origin, length, stride, first, none, out,
                              none, binary)  # fmt: skip
        encoder._check_filtered(int(flags))
        return out, keep_from, new_origin, memory
    if representation == "timesurface":
        if not owned:  # the kernel updates it in place; states are never modified
            memory = memory.copy()
        two = encoder.output_size[2] == 2
        _time_surfaces(buffer, origin, first, stride, length, two, float(encoder.tau_us),
                       encoder._decay_table, memory, out)  # fmt: skip
        return out, keep_from, new_origin, memory
    k = np.arange(first, stop, dtype=np.int64)
    if by_time:
        starts = np.searchsorted(t, origin + k * stride).astype(np.int64)
        ends = np.searchsorted(t, origin + k * stride + length).astype(np.int64)
    else:
        starts = np.minimum(k * stride - origin, buffer.size)
        ends = np.minimum(starts + length, buffer.size)
    scratch = np.zeros(encoder.frame_shape, dtype=np.float64)
    _voxel_grids(buffer, starts, ends, scratch, out)
    return out, keep_from, new_origin, memory
