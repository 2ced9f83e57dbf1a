"""Streaming event encoders: packets in, frames ``(T, C, H, W)`` float32 out.

A :class:`FrameEncoder` is a frozen config; its per-stream state is an :class:`EncoderState`
(plain arrays) passed in and returned::

    encoder = FrameEncoder((34, 34, 2), time_window_us=30_000)
    state = encoder.init_state()
    for packet in recording.packets():           # cut anywhere
        frames, state = encoder.push(packet, state)   # the windows this packet completed
    frames, state = encoder.flush(state)          # the end of the recording

Each packet goes through the time-order policy (:func:`~eventsp.events.contract.order_packet`:
sorted, late events dropped and counted in ``state.order``), then the filters in order
(:mod:`eventsp.events.filters`), then windowing and one representation.

Count and binary frames stream without keeping events: the state holds the frames of the
windows still open (at most ``ceil(L / S)``; beyond ``_MAX_OPEN_BYTES`` of them the encoder
keeps the open windows' events instead, like the other representations). A packet that
looks in order (its ends after the watermark, no filters) is counted by one kernel pass that
also checks every event; only when that check fails (disorder inside the packet, a bad
coordinate or polarity) does the packet take the general path (validate, sort, count again).

Windows (tonic's ``SliceByTime`` / ``SliceByEventCount``, exactly)
    By time: window ``k`` holds events with ``t0 + kS <= t < t0 + kS + L``, ``L`` =
    ``time_window_us``, stride ``S = L - overlap``, ``t0`` the first event's time. It is emitted
    once an event at or after its end has arrived. By count: window ``k`` holds events
    ``[kS, kS + N)`` of the stream and is emitted when its last event arrives. At
    :meth:`FrameEncoder.flush`, a recording that completed no window yields one window with all
    its events, and ``include_incomplete`` adds the trailing partial windows tonic adds.
Representations (C channels)
    ``"count"``: events per polarity, C = P (tonic's ``ToFrame``); ``"binary"``: the same
    clipped to 1; ``"voxel"``: tonic's ``ToVoxelGrid`` of each window, its B time bins as the
    channels; ``"timesurface"``: tonic's ``ToTimesurface`` (time windows of ``dt`` without
    overlap), C = P. Math in :mod:`eventsp.events.kernels`.

Deliberate differences from tonic, all at edges:

- empty input keeps the frame layout: zero windows give shape ``(0, C, H, W)`` (tonic's
  ``ToFrame`` returns one ``(1, P, W, H)`` frame, with W and H swapped);
- voxel grids use ``p`` as +1/-1 (tonic's intent; on its bool ``p`` field its
  ``pols[pols == 0] = -1`` leaves every sign +1). A window whose events share one timestamp
  puts them all in bin 0 (tonic divides by zero), and an empty window is all zeros;
- timestamps, windows and overlaps are integer microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, NamedTuple

import numpy as np

from eventsp.events.contract import (
    EVENT_DTYPE,
    OrderState,
    SensorSize,
    check_sensor_size,
    concat_events,
    empty_events,
    init_order,
    order_packet,
    take_events,
    validate_events,
)
from eventsp.events.filters import Filter
from eventsp.events.kernels import _count_frames, _scan, _time_surfaces, _voxel_grids

__all__ = ["EncoderState", "FrameEncoder", "Representation", "encode_stream"]

Representation = Literal["count", "binary", "voxel", "timesurface"]
_REPRESENTATIONS = ("count", "binary", "voxel", "timesurface")
#: Count and binary frames of the open windows kept per stream at most (else events are kept).
_MAX_OPEN_BYTES = 64 * 2**20


class EncoderState(NamedTuple):
    """Per-stream encoder state (replace it with the one each call returns).

    order: the time-order bookkeeping (``order.late`` counts dropped late events).
    filters: one state array per filter.
    buffer: events (after filters) that windows not yet emitted may still need (empty where
    count and binary frames accumulate, see ``memory``).
    origin: int64; by time, the first event's t (µs); by count, the stream index of buffer[0].
    started: bool, whether any event reached the windowing.
    next_window: int64, index of the next window to emit.
    n_events: int64, events that reached the windowing; t_last: int64, the latest one's t (µs).
    memory: time surfaces: float64 (P, H, W), the latest time per pixel; count and binary
    frames: float32 (n, C, H, W), the counts so far of windows ``next_window`` to
    ``next_window + n - 1`` (the windows already open); else empty.
    """

    order: OrderState
    filters: tuple[np.ndarray, ...]
    buffer: np.ndarray
    origin: np.ndarray
    started: np.ndarray
    next_window: np.ndarray
    n_events: np.ndarray
    t_last: np.ndarray
    memory: np.ndarray


_INT64, _FLOAT32 = np.dtype(np.int64), np.dtype(np.float32)  # dtype objects: faster calls


def _i64(value: int) -> np.ndarray:
    return np.array(value, _INT64)


@dataclass(frozen=True)
class FrameEncoder:
    """Windowing plus one representation, with optional filters before it (see module doc).

    sensor_size: (W, H, P) of the incoming events. Exactly one of ``time_window_us`` (µs) and
    ``event_count`` sets the windows; ``overlap`` is in the same unit. ``n_time_bins`` is the
    voxel grid's B; ``tau_us`` the time surfaces' decay constant (µs).
    """

    sensor_size: SensorSize
    time_window_us: int | None = None
    event_count: int | None = None
    overlap: int = 0
    include_incomplete: bool = False
    representation: Representation = "count"
    n_time_bins: int = 5
    tau_us: float = 5000.0
    filters: tuple[Filter, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensor_size", check_sensor_size(self.sensor_size))
        object.__setattr__(self, "filters", tuple(self.filters))
        if (self.time_window_us is None) == (self.event_count is None):
            raise ValueError(
                f"set exactly one of time_window_us ({self.time_window_us!r}) and event_count "
                f"({self.event_count!r}): windows are cut by time or by event count"
            )
        length = self.time_window_us if self.time_window_us is not None else self.event_count
        if int(length) != length or length < 1 or int(self.overlap) != self.overlap:
            raise ValueError(
                f"window length {length!r} must be a positive integer and overlap "
                f"{self.overlap!r} an integer (µs for time windows, events for count windows)"
            )
        if not 0 <= self.overlap < length:
            raise ValueError(
                f"overlap={self.overlap} must lie in [0, {length}) so that windows advance; "
                "use a smaller overlap or a longer window"
            )
        if self.representation not in _REPRESENTATIONS:
            raise ValueError(
                f"representation {self.representation!r} is not one of {_REPRESENTATIONS}"
            )
        if self.representation == "voxel":
            if self.n_time_bins < 1:
                raise ValueError(f"n_time_bins={self.n_time_bins} must be at least 1")
            if self.output_size[2] != 2:
                raise ValueError("voxel grids need a sensor with two polarities (P=2)")
        if self.representation == "timesurface":
            if self.time_window_us is None or self.overlap or self.include_incomplete:
                raise ValueError(
                    "time surfaces are taken every time_window_us (tonic's dt) without overlap "
                    "or incomplete windows; set time_window_us and leave the rest at defaults"
                )
            if not self.tau_us > 0:
                raise ValueError(f"tau_us={self.tau_us!r} must be positive")

    @cached_property
    def output_size(self) -> SensorSize:
        """(W, H, P) after the filters."""
        size = self.sensor_size
        for f in self.filters:
            size = f.output_size(size)
        return size

    @cached_property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one output frame."""
        W, H, P = self.output_size
        return (self.n_time_bins if self.representation == "voxel" else P, H, W)

    @cached_property
    def _windowing(self) -> tuple[int, int, bool]:
        """(L, S, by_time): window length and stride (µs or events), and the windowing."""
        length = int(self.time_window_us if self.time_window_us is not None else self.event_count)
        return length, length - int(self.overlap), self.time_window_us is not None

    @cached_property
    def _accumulates(self) -> bool:
        """Whether count/binary frames stream by accumulating the open windows' frames (at most
        ``ceil(L / S)`` of them) instead of buffering their events: always, unless so many
        windows overlap that their frames would exceed ``_MAX_OPEN_BYTES``."""
        if self.representation not in ("count", "binary"):
            return False
        length, stride, _ = self._windowing
        open_windows = -(-length // stride)
        return open_windows * 4 * math.prod(self.frame_shape) <= _MAX_OPEN_BYTES

    @cached_property
    def _counts_directly(self) -> bool:
        """Whether pushes take the fast path: accumulated count/binary frames, no filters."""
        return self._accumulates and not self.filters

    @cached_property
    def _no_frames(self) -> np.ndarray:
        """Zero frames, shared (nothing can be written into an empty array)."""
        return self._frames(0)

    def init_state(self) -> EncoderState:
        """A fresh state for a new stream."""
        sizes = [self.sensor_size]
        for f in self.filters:
            sizes.append(f.output_size(sizes[-1]))
        W, H, P = self.output_size
        if self.representation == "timesurface":
            memory = np.full((P, H, W), -np.inf)
        elif self._accumulates:
            memory = self._frames(0)
        else:
            memory = np.zeros((0, 0, 0))
        return EncoderState(
            order=init_order(),
            filters=tuple(f.init_state(s) for f, s in zip(self.filters, sizes, strict=False)),
            buffer=empty_events(),
            origin=_i64(0),
            started=np.array(False),
            next_window=_i64(0),
            n_events=_i64(0),
            t_last=_i64(0),
            memory=memory,
        )

    def push(self, events: np.ndarray, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        """Feed one packet; returns the frames of the windows it completed, ``(n, C, H, W)``."""
        if self._counts_directly and type(events) is np.ndarray and events.dtype == EVENT_DTYPE:
            # Fast path: count a packet that looks in order, checking it on the way; anything
            # wrong (unsorted, late, invalid) is redone by the general path below.
            events = np.ascontiguousarray(events)
            n = events.shape[0]
            if events.ndim == 1 and n:
                t = events["t"]
                t_first, t_last = int(t[0]), int(t[-1])
                order = state.order
                if t_last >= t_first >= int(order.watermark_us):
                    seen, passed = int(order.seen) + n, int(order.passed) + n
                    order = OrderState(_i64(t_last), _i64(seen), _i64(passed), order.late)
                    out, new_state, flags = self._push_counts(events, t_first, t_last, state, order)
                    if not flags:
                        return out, new_state
        events, unsorted, t_first, t_last = self._scanned(events)
        order = state.order
        n = events.shape[0]
        if unsorted or t_first < int(order.watermark_us):
            events, order = order_packet(events, order)
            n = events.shape[0]
            if n:
                t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        elif n:
            seen, passed = int(order.seen) + n, int(order.passed) + n
            order = OrderState(_i64(t_last), _i64(seen), _i64(passed), order.late)
        filter_states = state.filters
        if self.filters:
            size, filter_states = self.sensor_size, []
            for f, s in zip(self.filters, state.filters, strict=True):
                events, s = f.apply(events, size, s)
                size = f.output_size(size)
                filter_states.append(s)
            filter_states = tuple(filter_states)
            n = events.shape[0]
            if n:
                t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        state = state._replace(order=order, filters=filter_states)
        if n == 0:
            return self._frames(0), state
        if self._accumulates:
            out, state, flags = self._push_counts(events, t_first, t_last, state, order)
            self._check_filtered(flags)
            return out, state
        buffer = concat_events([state.buffer, events]) if state.buffer.size else events
        started = bool(state.started)
        origin = int(state.origin) if started or self.event_count else t_first
        n_events = int(state.n_events) + n
        length, stride, by_time = self._windowing
        span = (t_last - origin) if by_time else n_events
        complete = (span - length) // stride + 1 if span >= length else 0
        first = int(state.next_window)
        stop = max(complete, first)
        out, keep_from, new_origin, memory = self._windows(
            buffer, origin, first, stop, state.memory
        )
        state = state._replace(
            buffer=take_events(buffer, slice(keep_from, None)),  # never a view of the caller's
            origin=_i64(new_origin),
            started=np.array(True),
            next_window=_i64(stop),
            n_events=_i64(n_events),
            t_last=_i64(t_last),
            memory=memory,
        )
        return out, state

    def _push_counts(
        self, events: np.ndarray, t_first: int, t_last: int, state: EncoderState, order: OrderState
    ) -> tuple[np.ndarray, EncoderState, int]:
        """Count frames of a time-sorted, non-empty packet (``order``: the updated order state):
        adds its events to the open windows' frames (``state.memory``) and to new ones; emits
        those it completed. Also returns the kernel's check flags (when they are not 0 the
        packet was invalid or unsorted and the results are meaningless)."""
        length, stride, by_time = self._windowing
        pos0 = int(state.n_events)  # stream index of events[0]
        n_events = pos0 + events.shape[0]
        started = bool(state.started)
        if by_time:
            origin = int(state.origin) if started else t_first
            last = span = t_last - origin
        else:
            origin, last, span = 0, n_events - 1, n_events
        complete = (span - length) // stride + 1 if span >= length else 0
        first = int(state.next_window)
        stop = max(complete, first)
        shape = self.frame_shape
        out = np.empty((stop - first, *shape), _FLOAT32)  # filled by the kernel
        still_open = np.empty((max(last // stride + 1, stop) - stop, *shape), _FLOAT32)
        binary = self.representation == "binary"
        previous = state.memory
        flags = _count_frames(events, pos0, by_time, origin, length, stride, first, previous,
                              out, still_open, binary)  # fmt: skip
        # Arrays that did not change are kept (states are replaced, never modified in place);
        # fields in order, as this runs for every packet.
        state = EncoderState(
            order,
            state.filters,
            state.buffer,
            state.origin if started else _i64(origin),
            state.started if started else np.array(True),
            state.next_window if stop == first else _i64(stop),
            _i64(n_events),
            _i64(t_last),
            still_open,
        )
        return out, state, int(flags)

    def flush(self, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        """End the stream: emit the last windows (see module doc); returns a fresh state."""
        fresh = self.init_state()._replace(order=state.order)
        if not bool(state.started):
            return self._frames(0), fresh
        first = int(state.next_window)
        stop = max(
            self._n_windows(int(state.t_last) - int(state.origin), int(state.n_events)), first
        )
        if self._accumulates:  # every window left has started: its frame is in memory
            out = self._frames(stop - first)
            n_open = min(stop - first, state.memory.shape[0])
            out[:n_open] = state.memory[:n_open]
            if self.representation == "binary":
                np.minimum(out, 1.0, out=out)
            return out, fresh
        out = self._windows(state.buffer, int(state.origin), first, stop, state.memory, False)[0]
        return out, fresh

    def encode(self, events: np.ndarray) -> np.ndarray:
        """A whole recording at once, equal to one push and a flush: frames ``(T, C, H, W)``."""
        if self.filters:
            state = self.init_state()
            first, state = self.push(events, state)
            return np.concatenate((first, self.flush(state)[0]))
        counts = self.representation in ("count", "binary")
        if counts and type(events) is np.ndarray and events.dtype == EVENT_DTYPE:
            # Fast path: count events that look sorted, checking them on the way; anything
            # wrong (unsorted, invalid) is redone by the general path below.
            events = np.ascontiguousarray(events)
            if events.ndim == 1 and events.shape[0]:
                t = events["t"]
                t_first, t_last = int(t[0]), int(t[-1])
                if t_last >= t_first:
                    out, flags = self._count_all(events, t_first, t_last)
                    if not flags:
                        return out
        events, unsorted, t_first, t_last = self._scanned(events)
        n = int(events.shape[0])
        if n == 0:
            return self._frames(0)
        if unsorted:
            events = order_packet(events, init_order())[0]
            t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        if counts:
            return self._count_all(events, t_first, t_last)[0]
        origin = t_first if self.time_window_us is not None else 0
        stop = self._n_windows(t_last - t_first, n)
        memory = self.init_state().memory if self.representation == "timesurface" else None
        return self._windows(events, origin, 0, stop, memory, keep=False)[0]

    def _count_all(self, events: np.ndarray, t_first: int, t_last: int) -> tuple[np.ndarray, int]:
        """Count frames of a whole time-sorted recording, and the kernel's check flags."""
        length, stride, by_time = self._windowing
        out = self._frames(self._n_windows(t_last - t_first, events.shape[0]), empty=True)
        none, binary = self._no_frames, self.representation == "binary"
        origin = t_first if by_time else 0
        flags = _count_frames(events, 0, by_time, origin, length, stride, 0, none, out, none,
                              binary)  # fmt: skip
        return out, int(flags)

    def _scanned(self, events: np.ndarray) -> tuple[np.ndarray, bool, int, int]:
        """Validate a packet in one kernel pass: returns it contiguous, whether it needs
        sorting, and its first and last t (µs; 0 when empty). Raises on invalid events."""
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            validate_events(events, self.sensor_size)  # raises, naming the problem
        events = np.ascontiguousarray(events)  # kernels read records from contiguous memory
        W, H, P = self.sensor_size
        flags, t_first, t_last = _scan(events, W, H, P)
        if flags & ~1:
            validate_events(events, self.sensor_size)  # raises, naming the problem
        return events, bool(flags & 1), int(t_first), int(t_last)

    def _check_filtered(self, flags: int) -> None:
        """Raise when checked, sorted events came out of the filters unsorted or off the
        sensor (only a user-written filter can do that)."""
        if flags:
            raise ValueError(
                f"the filters {self.filters} passed on events out of time order or outside "
                f"their output sensor size {self.output_size}; a filter must keep events "
                "sorted and inside the size its output_size() returns"
            )

    def _n_windows(self, time_span: int, n_events: int) -> int:
        """How many windows tonic cuts from a whole recording (its SliceBy* formulas)."""
        length, stride, by_time = self._windowing
        if by_time:
            span = time_span
        else:
            span = n_events
            length = min(length, span)
        rounding = math.ceil if self.include_incomplete else math.floor
        return max(int(rounding((span - length) / stride) + 1), 1)

    def _frames(self, n: int, empty: bool = False) -> np.ndarray:
        """``n`` frames of zeros (``empty``: uninitialised, for a kernel that fills them)."""
        return (np.empty if empty else np.zeros)((n, *self.frame_shape), _FLOAT32)

    def _windows(
        self,
        buffer: np.ndarray,
        origin: int,
        first: int,
        stop: int,
        memory: np.ndarray | None,
        keep: bool = True,
    ) -> tuple[np.ndarray, int, int, np.ndarray | None]:
        """Frames of windows ``[first, stop)`` over ``buffer``; also the index of the first
        event a later window may need (``keep``: else none is), the origin after dropping the
        rest, and the new memory.
        """
        out = self._frames(max(stop - first, 0))
        if stop <= first:
            return out, 0, origin, memory
        length, stride, by_time = self._windowing
        t = buffer["t"]
        if not keep:
            keep_from, new_origin = buffer.size, origin
        elif by_time:
            keep_from = int(np.searchsorted(t, origin + stop * stride))
            new_origin = origin
        else:
            keep_from = min(stop * stride - origin, buffer.size)
            new_origin = origin + keep_from
        if self.representation in ("count", "binary"):
            pos0 = 0 if by_time else origin  # stream index of buffer[0]
            none, binary = self._no_frames, self.representation == "binary"
            flags = _count_frames(buffer, pos0, by_time, origin, length, stride, first, none,
                                  out, none, binary)  # fmt: skip
            self._check_filtered(int(flags))
            return out, keep_from, new_origin, memory
        k = np.arange(first, stop, dtype=np.int64)
        if by_time:
            starts = np.searchsorted(t, origin + k * stride).astype(np.int64)
            ends = np.searchsorted(t, origin + k * stride + length).astype(np.int64)
        else:
            starts = np.minimum(k * stride - origin, buffer.size)
            ends = np.minimum(starts + length, buffer.size)
        if self.representation == "voxel":
            scratch = np.zeros(self.frame_shape, dtype=np.float64)
            _voxel_grids(buffer, starts, ends, scratch, out)
        else:
            two = self.output_size[2] == 2
            memory = np.array(memory, dtype=np.float64, copy=True)
            end_t = (origin + k * stride + length).astype(np.int64)
            _time_surfaces(buffer, starts, ends, end_t, two, float(self.tau_us), memory, out)
        return out, keep_from, new_origin, memory


def encode_stream(
    encoder: FrameEncoder, packets: Iterable[np.ndarray], state: EncoderState | None = None
) -> Iterator[np.ndarray]:
    """Frames for a stream of packets, as they complete, then the flush; constant memory."""
    state = encoder.init_state() if state is None else state
    for packet in packets:
        frames, state = encoder.push(packet, state)
        if frames.shape[0]:
            yield frames
    frames, _ = encoder.flush(state)
    if frames.shape[0]:
        yield frames
