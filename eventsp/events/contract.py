"""The one event contract: tonic's structured dtype, microseconds, a sensor size beside it.

Events
    A 1-D numpy structured array of :data:`EVENT_DTYPE`, tonic's ``events_struct``:
    ``x`` int16 (column, 0 at the left), ``y`` int16 (row, 0 at the top), ``t`` int64
    (timestamp in **microseconds**) and ``p`` bool (polarity: True is ON, a brightness increase).
Sensor size
    ``(W, H, P)``: width, height and number of polarity channels (1 or 2), tonic's order. It
    travels beside the events (:class:`EventPacket`), because an empty packet or a quiet
    recording cannot tell it. Frames built from events are laid out ``(T, P, H, W)`` float32.

Time order
    Encoders need time-sorted events. The policy, applied by :func:`order_packet` to every
    packet of a stream (:class:`~eventsp.events.FrameEncoder` applies it to every push; readers
    yield packets in file order):

    1. within one packet, events are sorted by ``t`` (a stable sort: equal times keep their
       arrival order);
    2. across packets, the stream keeps a *watermark*, the latest ``t`` already passed on.
       Events of a later packet whose ``t`` is earlier than the watermark arrived too late to be
       placed in order: they are dropped and **counted** in ``OrderState.late``. Events equal to
       the watermark are kept.

    Nothing raises on disorder and no event disappears uncounted:
    ``passed + late == seen`` always holds for an :class:`OrderState`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "EVENT_DTYPE",
    "EventContractError",
    "EventFormatError",
    "EventPacket",
    "OrderState",
    "SensorSize",
    "as_events",
    "check_sensor_size",
    "concat_events",
    "empty_events",
    "init_order",
    "order_packet",
    "take_events",
    "validate_events",
]

#: tonic's event dtype (``tonic.io.events_struct``); ``t`` in microseconds.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])

SensorSize = tuple[int, int, int]

_NO_WATERMARK = -(2**63)  # OrderState.watermark_us before any event


class EventContractError(ValueError):
    """Events or a sensor size that break the contract (wrong dtype, fields or coordinates)."""


class EventFormatError(ValueError):
    """A recording that cannot be read: unknown format, wrong magic, truncated, corrupt, empty."""


def empty_events() -> np.ndarray:
    """A zero-length event array of :data:`EVENT_DTYPE`."""
    return np.zeros(0, dtype=EVENT_DTYPE)


def _rows(events: np.ndarray) -> np.ndarray:
    """``events`` as a ``(n, 13)`` uint8 array sharing memory (contiguous input)."""
    return np.ascontiguousarray(events).view(np.uint8).reshape(-1, EVENT_DTYPE.itemsize)


def take_events(events: np.ndarray, index: np.ndarray | slice) -> np.ndarray:
    """``events[index]`` as a new array that shares no memory with ``events`` (``index``: a
    boolean mask, integer indices or a slice).

    numpy copies packed structured records field by field, ~10x slower than copying them as
    bytes; every copy of events in the hot paths goes through here or :func:`concat_events`.
    """
    rows = _rows(events)[index]
    if isinstance(index, slice):
        rows = rows.copy()  # a slice is a view: copy, never share the caller's memory
    return np.ascontiguousarray(rows).reshape(-1).view(EVENT_DTYPE)


def concat_events(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate event arrays (as bytes; see :func:`take_events`)."""
    if not parts:
        return empty_events()
    return np.concatenate([_rows(p) for p in parts]).reshape(-1).view(EVENT_DTYPE)


def check_sensor_size(sensor_size: object) -> SensorSize:
    """``sensor_size`` as a validated ``(W, H, P)`` tuple of ints; raises on anything else."""
    try:
        size = tuple(int(v) for v in sensor_size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or size[0] < 1 or size[1] < 1 or size[2] not in (1, 2):
        raise EventContractError(
            f"sensor_size {sensor_size!r} is not (W, H, P) with W, H >= 1 and P in (1, 2); "
            "pass the camera's width, height and polarity count, e.g. (34, 34, 2) for N-MNIST"
        )
    if size[0] > 32767 or size[1] > 32767:
        raise EventContractError(
            f"sensor_size {size} exceeds the int16 coordinates of the event dtype (max 32767)"
        )
    return size  # type: ignore[return-value]


def as_events(array: np.ndarray) -> np.ndarray:
    """Convert a structured array with fields ``x, y, t, p`` (any integer/bool types, any order,
    e.g. expelliarmus' or aedat's) to :data:`EVENT_DTYPE`. A field named ``on`` stands for ``p``.

    Raises :class:`EventContractError` when a field is missing or is not numeric.
    """
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise EventContractError(
            f"events must be a numpy structured array with fields x, y, t, p; got "
            f"{type(array).__name__} with dtype {getattr(array, 'dtype', None)}"
        )
    if array.dtype == EVENT_DTYPE:
        return array
    names = set(array.dtype.names)
    pol = "p" if "p" in names else "on" if "on" in names else None
    missing = [f for f in ("x", "y", "t") if f not in names] + ([] if pol else ["p"])
    if missing:
        raise EventContractError(
            f"events lack the fields {missing}; they have {list(array.dtype.names)}. "
            "Build them with eventsp.events.EVENT_DTYPE (x, y, t in µs, p)"
        )
    for field in ("x", "y", "t", pol):
        if array.dtype[field].kind not in "iub":
            raise EventContractError(
                f"event field {field!r} has dtype {array.dtype[field]}, expected an integer or "
                "bool type; convert timestamps to integer microseconds first"
            )
    out = np.empty(array.shape[0] if array.ndim else 1, dtype=EVENT_DTYPE)
    out["x"] = array["x"]
    out["y"] = array["y"]
    out["t"] = array["t"]
    out["p"] = array[pol] != 0
    return out


def validate_events(events: np.ndarray, sensor_size: object) -> np.ndarray:
    """Check ``events`` against the contract and ``sensor_size``; return them unchanged.

    Raises :class:`EventContractError` for a wrong dtype or shape, negative coordinates,
    coordinates outside the sensor, or ON events on a single-polarity sensor.
    """
    W, H, P = check_sensor_size(sensor_size)
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise EventContractError(
            f"events have dtype {getattr(events, 'dtype', type(events).__name__)}, expected "
            f"{EVENT_DTYPE}; convert with eventsp.events.as_events(array)"
        )
    if events.ndim != 1:
        raise EventContractError(f"events must be 1-D, got shape {events.shape}")
    if events.size == 0:
        return events
    x, y = events["x"], events["y"]
    xmin, xmax, ymin, ymax = int(x.min()), int(x.max()), int(y.min()), int(y.max())
    if xmin < 0 or xmax >= W or ymin < 0 or ymax >= H:
        raise EventContractError(
            f"event coordinates x in [{xmin}, {xmax}], y in [{ymin}, {ymax}] fall outside the "
            f"sensor of {W}x{H} pixels; pass the right sensor_size or crop the events first"
        )
    if P == 1 and bool(events["p"].any()):
        raise EventContractError(
            "events carry both polarities but sensor_size says P=1; use P=2, or set p=False"
        )
    return events


@dataclass(frozen=True)
class EventPacket:
    """A time-sorted or unsorted batch of events with the sensor it came from."""

    events: np.ndarray
    sensor_size: SensorSize

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensor_size", check_sensor_size(self.sensor_size))
        validate_events(self.events, self.sensor_size)

    def __len__(self) -> int:
        return int(self.events.shape[0])


class OrderState(NamedTuple):
    """Per-stream time-order bookkeeping (see the module docstring).

    watermark_us: int64 scalar array, the latest timestamp passed on (-2**63 before any).
    seen / passed / late: int64 scalar arrays, event counts; ``passed + late == seen``.
    """

    watermark_us: np.ndarray
    seen: np.ndarray
    passed: np.ndarray
    late: np.ndarray


def init_order() -> OrderState:
    """A fresh :class:`OrderState` for a new stream."""
    return OrderState(
        np.array(_NO_WATERMARK, dtype=np.int64),
        np.array(0, dtype=np.int64),
        np.array(0, dtype=np.int64),
        np.array(0, dtype=np.int64),
    )


def order_packet(events: np.ndarray, state: OrderState) -> tuple[np.ndarray, OrderState]:
    """Apply the time-order policy to one packet: sort it, drop (and count) late events.

    Returns the events to pass on (a new array when anything changed; the caller's array is
    never modified) and the new state.
    """
    n = int(events.shape[0])
    if n == 0:
        return events, state
    t = events["t"]
    if np.any(t[1:] < t[:-1]):
        events = take_events(events, np.argsort(t, kind="stable"))
        t = events["t"]
    watermark = int(state.watermark_us)
    late = 0
    if int(t[0]) < watermark:
        keep = int(np.searchsorted(t, watermark, side="left"))
        late = keep
        events = events[keep:]  # a view: the caller's array is not modified
        t = events["t"]
    new_watermark = int(t[-1]) if t.size else watermark
    new_state = OrderState(
        np.array(new_watermark, dtype=np.int64),
        np.array(int(state.seen) + n, dtype=np.int64),
        np.array(int(state.passed) + n - late, dtype=np.int64),
        np.array(int(state.late) + late, dtype=np.int64),
    )
    return events, new_state
