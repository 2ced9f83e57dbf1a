"""Event filters for streams: crop, downsample, denoise, refractory period.

Each filter is a frozen dataclass with three methods, so an encoder can chain them on a stream:

- ``output_size(sensor_size) -> sensor_size`` of the events it passes on;
- ``init_state(sensor_size) -> ndarray``, its per-stream state (an empty array when stateless);
- ``apply(events, sensor_size, state) -> (events, state)`` on one time-sorted packet. It never
  modifies the caller's array or state; the state returned replaces the old one.

Fed a recording in packets cut anywhere, a filter passes on exactly the events that tonic's
offline transform of the same name keeps on the whole recording (tests check this). Deliberate
differences, at edges only:

- :class:`Denoise` and :class:`RefractoryPeriod` size their per-pixel memory by the sensor;
  tonic sizes it by the largest coordinate in the recording, so at a 1-pixel-wide recording's
  border tonic looks at fewer neighbours. Like tonic, a pixel's memory starts at
  ``filter_time`` (Denoise) or ``-delta`` (RefractoryPeriod) in absolute time, so every event
  earlier than ``filter_time`` µs passes Denoise.
- :class:`Downsample` states its output sensor size (tonic leaves it to the user).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eventsp.events.contract import SensorSize, check_sensor_size, take_events
from eventsp.events.kernels import _denoise, _refractory

__all__ = ["Crop", "Denoise", "Downsample", "Filter", "RefractoryPeriod", "center_crop"]

_NO_STATE = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Crop:
    """Keep events in ``[x0, x0 + width) x [y0, y0 + height)`` and shift them to the origin.

    Negative offsets pad (tonic's CenterCrop with a crop larger than the sensor): events keep
    their place and move by ``-x0``, ``-y0``.
    """

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(
                f"crop size {self.width}x{self.height} must be at least 1x1 pixel; "
                "pass the size of the region to keep"
            )

    def output_size(self, sensor_size: SensorSize) -> SensorSize:
        return (self.width, self.height, check_sensor_size(sensor_size)[2])

    def init_state(self, sensor_size: SensorSize) -> np.ndarray:
        return _NO_STATE

    def apply(
        self, events: np.ndarray, sensor_size: SensorSize, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        lo_x, lo_y = max(self.x0, 0), max(self.y0, 0)
        x, y = events["x"], events["y"]
        inside = (x >= lo_x) & (x < lo_x + self.width) & (y >= lo_y) & (y < lo_y + self.height)
        out = take_events(events, inside)
        out["x"] -= self.x0
        out["y"] -= self.y0
        return out, state


def center_crop(sensor_size: SensorSize, size: int | tuple[int, int]) -> Crop:
    """The :class:`Crop` that tonic's ``CenterCrop(sensor_size, size)`` makes; size is (W, H)."""
    W, H, _ = check_sensor_size(sensor_size)
    w, h = (size, size) if isinstance(size, int) else size
    return Crop((W - w) // 2, (H - h) // 2, int(w), int(h))


@dataclass(frozen=True)
class Downsample:
    """Scale coordinates (and optionally time) like tonic's ``Downsample``.

    ``x' = trunc(x * fx)``, ``y' = trunc(y * fy)``, ``t' = trunc(t * time_factor)``; with
    ``target_size=(W', H')`` the factors are ``W'/W`` and ``H'/H`` and the output sensor is
    ``(W', H')``; otherwise it is the smallest one holding every scaled coordinate.
    """

    spatial_factor: float | tuple[float, float] = 1.0
    time_factor: float = 1.0
    target_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        fx, fy = self._factors((1, 1, 1)) if self.target_size is None else (1.0, 1.0)
        if not (0 < fx <= 1 and 0 < fy <= 1) or not self.time_factor > 0:
            raise ValueError(
                f"spatial_factor {self.spatial_factor!r} must lie in (0, 1] and time_factor "
                f"{self.time_factor!r} must be positive; downsampling cannot enlarge the sensor"
            )
        if self.target_size is not None and min(self.target_size) < 1:
            raise ValueError(f"target_size {self.target_size!r} must be at least 1x1")

    def _factors(self, sensor_size: SensorSize) -> tuple[float, float]:
        if self.target_size is not None:
            W, H, _ = sensor_size
            return self.target_size[0] / W, self.target_size[1] / H
        f = self.spatial_factor
        return (float(f), float(f)) if not isinstance(f, tuple) else (float(f[0]), float(f[1]))

    def output_size(self, sensor_size: SensorSize) -> SensorSize:
        W, H, P = check_sensor_size(sensor_size)
        if self.target_size is not None:
            return (int(self.target_size[0]), int(self.target_size[1]), P)
        fx, fy = self._factors(sensor_size)
        return (int((W - 1) * fx) + 1, int((H - 1) * fy) + 1, P)

    def init_state(self, sensor_size: SensorSize) -> np.ndarray:
        return _NO_STATE

    def apply(
        self, events: np.ndarray, sensor_size: SensorSize, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        fx, fy = self._factors(sensor_size)
        out = take_events(events, slice(None))
        out["x"] = events["x"] * fx
        out["y"] = events["y"] * fy
        if self.time_factor != 1:
            out["t"] = events["t"] * self.time_factor
        return out, state


@dataclass(frozen=True)
class Denoise:
    """Drop events with no event at a 4-neighbour pixel in the last ``filter_time_us`` µs."""

    filter_time_us: int

    def __post_init__(self) -> None:
        if int(self.filter_time_us) != self.filter_time_us or self.filter_time_us < 0:
            raise ValueError(
                f"filter_time_us={self.filter_time_us!r} must be a non-negative integer (µs)"
            )

    def output_size(self, sensor_size: SensorSize) -> SensorSize:
        return check_sensor_size(sensor_size)

    def init_state(self, sensor_size: SensorSize) -> np.ndarray:
        W, H, _ = check_sensor_size(sensor_size)
        return np.full((W, H), int(self.filter_time_us), dtype=np.int64)

    def apply(
        self, events: np.ndarray, sensor_size: SensorSize, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        memory = state.copy()
        keep = np.empty(events.shape[0], dtype=bool)
        events = np.ascontiguousarray(events)
        _denoise(events, int(self.filter_time_us), memory, keep)
        return take_events(events, keep), memory


@dataclass(frozen=True)
class RefractoryPeriod:
    """Drop events closer than ``delta_us`` µs to the previous event at the same pixel."""

    delta_us: int

    def __post_init__(self) -> None:
        if int(self.delta_us) != self.delta_us or self.delta_us < 0:
            raise ValueError(f"delta_us={self.delta_us!r} must be a non-negative integer (µs)")

    def output_size(self, sensor_size: SensorSize) -> SensorSize:
        return check_sensor_size(sensor_size)

    def init_state(self, sensor_size: SensorSize) -> np.ndarray:
        W, H, _ = check_sensor_size(sensor_size)
        return np.full((W, H), -int(self.delta_us), dtype=np.int64)

    def apply(
        self, events: np.ndarray, sensor_size: SensorSize, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        memory = state.copy()
        keep = np.empty(events.shape[0], dtype=bool)
        events = np.ascontiguousarray(events)
        _refractory(events, int(self.delta_us), memory, keep)
        return take_events(events, keep), memory


Filter = Crop | Downsample | Denoise | RefractoryPeriod
