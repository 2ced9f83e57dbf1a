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
keeps the open windows' events instead, like the other representations, in
:mod:`eventsp.events.buffered`). A packet that looks in order (a C-contiguous array of the
event dtype, no filters) is handled by one kernel call
(:func:`~eventsp.events.count_kernels._push_counts`) that applies the time-order policy to it
as a whole, counts it and checks every event on the way; only when that check fails (disorder
inside the packet or across packets, a bad coordinate or polarity) does the packet take the
general path (validate, sort, drop late events, count again).

Ownership: :meth:`FrameEncoder.push` updates the stream's scalars (``state.counters``, a
9-element array) in place, like the runtime's ``step`` (it saves allocating and handing back
an array per packet); every other array of a state is replaced, never modified. So continue
with the state that ``push`` returns, and keep an old state only as a copy
(:meth:`EncoderState.copy`). Encoders never modify the caller's events nor keep a view of
them; the frames they return belong to the caller (the frames of one call may be views of
one new array).

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
from typing import Literal

import numpy as np

from eventsp.events.buffered import push_buffered, windows
from eventsp.events.contract import (
    EVENT_DTYPE,
    SensorSize,
    check_sensor_size,
    empty_events,
    init_order,
    order_packet,
    validate_events,
)
from eventsp.events.count_kernels import (
    BINARY,
    BY_TIME,
    CHANNELS,
    HEIGHT,
    INCOMPLETE,
    LATE,
    LENGTH,
    N_CONFIG,
    N_EVENTS,
    NEXT_WINDOW,
    ORIGIN,
    PASSED,
    SEEN,
    STARTED,
    STRIDE,
    T_LAST,
    WATERMARK,
    WIDTH,
    _encode_counts,
    _n_windows,
    _push_counts,
    _scan,
)
from eventsp.events.filters import Filter
from eventsp.events.state import NO_MEMORY, EncoderState, init_counters, new_state

__all__ = ["EncoderState", "FrameEncoder", "Representation", "encode_stream"]

Representation = Literal["count", "binary", "voxel", "timesurface"]
_REPRESENTATIONS = ("count", "binary", "voxel", "timesurface")
#: Count and binary frames of the open windows kept per stream at most (else events are kept).
_MAX_OPEN_BYTES = 64 * 2**20
#: Time surfaces: ages (µs) up to this read exp(-age / tau) from a table instead of computing it.
_DECAY_TABLE_SIZE = 2**16
_FLOAT32 = np.dtype(np.float32)


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
    def _sizes(self) -> tuple[SensorSize, ...]:
        """(W, H, P) before each filter, then after the last (``sensor_size`` first)."""
        sizes = [self.sensor_size]
        for f in self.filters:
            sizes.append(f.output_size(sizes[-1]))
        return tuple(sizes)

    @cached_property
    def output_size(self) -> SensorSize:
        """(W, H, P) after the filters."""
        return self._sizes[-1]

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

    @cached_property
    def _config(self) -> np.ndarray:
        """The constants the count kernels read (``CONFIG`` layout of count_kernels)."""
        config = np.zeros(N_CONFIG, dtype=np.int64)
        length, stride, by_time = self._windowing
        config[BY_TIME], config[LENGTH], config[STRIDE] = by_time, length, stride
        config[BINARY] = self.representation == "binary"
        config[INCOMPLETE] = self.include_incomplete
        config[CHANNELS], config[HEIGHT], config[WIDTH] = self.frame_shape
        return config

    @cached_property
    def _encodes_counts(self) -> bool:
        """Whether ``encode`` takes the one-call path: count/binary frames, no filters."""
        return self.representation in ("count", "binary") and not self.filters

    @cached_property
    def _decay_table(self) -> np.ndarray:
        """Time surfaces: ``exp(-d / tau)`` for integer ages ``d`` (µs) up to the window
        length (at most ``_DECAY_TABLE_SIZE``); empty for the other representations."""
        if self.representation != "timesurface":
            return np.zeros(0)
        ages = np.arange(min(self._windowing[0], _DECAY_TABLE_SIZE) + 1, dtype=np.float64)
        return np.exp(-ages / float(self.tau_us))

    def init_state(self) -> EncoderState:
        """A fresh state for a new stream."""
        if self.representation == "timesurface":
            memory = _fresh_surface_memory(self.output_size)
        elif self._accumulates:
            memory = self._frames(0)
        else:
            memory = NO_MEMORY
        counters = init_counters()
        return EncoderState(
            counters=counters,
            filters=tuple(f.init_state(s) for f, s in zip(self.filters, self._sizes, strict=False)),
            buffer=empty_events(),
            memory=memory,
        )

    def push(self, events: np.ndarray, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        """Feed one packet; returns the frames of the windows it completed, ``(n, C, H, W)``."""
        if self._counts_directly and _kernel_ready(events):
            # Fast path, one kernel call: a packet in order as a whole is counted and checked
            # on the way; anything wrong (unsorted, late, invalid) is redone below.
            flags, n_out, frames = _push_counts(
                events, state.counters, self._config, state.memory, True
            )
            if not flags:  # state.counters was updated in place
                return frames[:n_out], new_state(
                    EncoderState, (state.counters, state.filters, state.buffer, frames[n_out:])
                )
        events, unsorted, t_first, t_last = self._scanned(events)
        counters = state.counters.copy()
        n = events.shape[0]
        if unsorted or t_first < counters[WATERMARK]:
            events, order = order_packet(events, state.order)
            counters[[WATERMARK, SEEN, PASSED, LATE]] = order
            n = events.shape[0]
            if n:
                t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        elif n:
            counters[WATERMARK] = t_last
            counters[SEEN] += n
            counters[PASSED] += n
        filter_states = state.filters
        if self.filters:
            filter_states = []
            for f, size, s in zip(self.filters, self._sizes, state.filters, strict=False):
                events, s = f.apply(events, size, s)
                filter_states.append(s)
            filter_states = tuple(filter_states)
            n = events.shape[0]
            if n:
                t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        state = EncoderState(counters, filter_states, state.buffer, state.memory)
        if n == 0:
            return self._frames(0), state
        if self._accumulates:
            events = np.ascontiguousarray(events)
            flags, n_out, frames = _push_counts(events, counters, self._config, state.memory, False)
            self._check_filtered(int(flags))
            return frames[:n_out], new_state(
                EncoderState, (counters, filter_states, state.buffer, frames[n_out:])
            )
        return push_buffered(self, events, t_first, t_last, state)

    def flush(self, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        """End the stream: emit the last windows (see module doc); returns a fresh state that
        keeps the time-order counters."""
        fresh = self.init_state()
        c = state.counters
        fresh.counters[[WATERMARK, SEEN, PASSED, LATE]] = c[[WATERMARK, SEEN, PASSED, LATE]]
        if not c[STARTED]:
            return self._frames(0), fresh
        first = int(c[NEXT_WINDOW])
        stop = max(self._n_windows(int(c[T_LAST]) - int(c[ORIGIN]), int(c[N_EVENTS])), first)
        if self._accumulates:  # every window left has started: its frame is in memory
            out = self._frames(stop - first)
            n_open = min(stop - first, state.memory.shape[0])
            out[:n_open] = state.memory[:n_open]
            if self.representation == "binary":
                np.minimum(out, 1.0, out=out)
            return out, fresh
        out = windows(self, state.buffer, int(c[ORIGIN]), first, stop, state.memory, False)[0]
        return out, fresh

    def encode(self, events: np.ndarray) -> np.ndarray:
        """A whole recording at once, equal to one push and a flush: frames ``(T, C, H, W)``."""
        if self._encodes_counts and _kernel_ready(events):
            # Fast path, one kernel call: events that look sorted are counted and checked on
            # the way; anything wrong (unsorted, invalid, empty) is redone below.
            flags, out = _encode_counts(events, self._config)
            if not flags:
                return out
        if self.filters:
            state = self.init_state()
            first, state = self.push(events, state)
            return np.concatenate((first, self.flush(state)[0]))
        events, unsorted, t_first, t_last = self._scanned(events)
        n = int(events.shape[0])
        if n == 0:
            return self._frames(0)
        if unsorted:
            events = order_packet(events, init_order())[0]
            t_first, t_last = int(events["t"][0]), int(events["t"][-1])
        if self._encodes_counts:  # valid and sorted now: the flags are 0
            return _encode_counts(events, self._config)[1]
        origin = t_first if self.time_window_us is not None else 0
        stop = self._n_windows(t_last - t_first, n)
        if self.representation == "timesurface":
            memory = _fresh_surface_memory(self.output_size)
        else:
            memory = NO_MEMORY
        return windows(self, events, origin, 0, stop, memory, keep=False, owned=True)[0]

    def _scanned(self, events: np.ndarray) -> tuple[np.ndarray, bool, int, int]:
        """Validate a packet in one kernel pass: returns it contiguous, whether it needs
        sorting, and its first and last t (µs; 0 when empty). Raises on invalid events."""
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            validate_events(events, self.sensor_size)  # raises, naming the problem
        events = np.ascontiguousarray(events)  # kernels read records from contiguous memory
        if not events.flags.writeable:  # the kernels' signatures take writeable arrays
            events = events.copy()
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
        span = time_span if by_time else n_events
        return int(_n_windows(span, length if by_time else min(length, span), stride,
                              self.include_incomplete))  # fmt: skip

    def _frames(self, n: int, empty: bool = False) -> np.ndarray:
        """``n`` frames of zeros (``empty``: uninitialised, for a kernel that fills them)."""
        return (np.empty if empty else np.zeros)((n, *self.frame_shape), _FLOAT32)


def _kernel_ready(events: object) -> bool:
    """Whether ``events`` can go to the count kernels as it is: a writeable, C-contiguous 1-D
    array of the event dtype (their signatures). Anything else takes the slow path, which
    validates and copies; letting the dispatcher refuse it costs about 0.2 ms a call."""
    return (
        type(events) is np.ndarray
        and (events.dtype is EVENT_DTYPE or events.dtype == EVENT_DTYPE)  # `is`: no field compare
        and events.ndim == 1
        and events.flags.c_contiguous
        and events.flags.writeable
    )


def _fresh_surface_memory(size: SensorSize) -> np.ndarray:
    """Time surfaces' state of a new stream: no event time yet (-inf), a surface of 0."""
    W, H, P = size
    memory = np.zeros((2, P, H, W))
    memory[0] = -np.inf
    return memory


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
