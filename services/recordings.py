"""ProcessRecording: decode an uploaded file and run a task over it in streaming chunks.

Formats: ``wav`` and ``flac`` (through soundfile; mono, or mixed down by averaging channels)
and ``nmnist`` (N-MNIST ``.bin``: 5-byte big-endian records, x 8 bits, y 8, polarity 1,
t 23 bits in microseconds; sensor 34 x 34 x 2). The recording runs through the same
``push``/``finish`` path as a live stream, in chunks of :data:`AUDIO_CHUNK_S` seconds of audio
or :data:`EVENT_CHUNK_US` microseconds of events.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from eventsp.services.errors import InvalidArgumentError
from eventsp.services.tasks import EVENT_DTYPE, StepResult, StreamingTask

AUDIO_FORMATS = ("wav", "flac")
EVENT_FORMATS = ("nmnist",)
AUDIO_CHUNK_S = 0.1
EVENT_CHUNK_US = 10_000
NMNIST_SENSOR = (34, 34, 2)


@dataclass(frozen=True)
class Recording:
    kind: str  # "audio" or "events"
    data: np.ndarray  # float32 samples (n,) or EVENT_DTYPE records
    sample_rate_hz: int = 0
    sensor_size: tuple[int, ...] = ()

    @property
    def duration_s(self) -> float:
        if self.kind == "audio":
            return self.data.size / self.sample_rate_hz
        return float(self.data["t"][-1] - self.data["t"][0]) * 1e-6 if self.data.size else 0.0


def _format(fmt: str, filename: str) -> str:
    fmt = (fmt or PurePath(filename).suffix.lstrip(".")).lower()
    if fmt == "bin":
        fmt = "nmnist"
    if fmt not in AUDIO_FORMATS + EVENT_FORMATS:
        raise InvalidArgumentError(
            f"recording format {fmt or '(none)'!r} (filename {filename!r}) is not supported; "
            f"set format to one of {list(AUDIO_FORMATS + EVENT_FORMATS)}"
        )
    return fmt


def decode_nmnist(data: bytes) -> np.ndarray:
    """N-MNIST ``.bin`` bytes -> EVENT_DTYPE records, in file order."""
    if len(data) % 5:
        raise InvalidArgumentError(
            f"the N-MNIST recording has {len(data)} bytes, not a multiple of 5 (5-byte "
            "records); the upload is truncated or not N-MNIST"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    events["x"] = raw[:, 0]
    events["y"] = raw[:, 1]
    events["p"] = raw[:, 2] >> 7
    events["t"] = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return events


def decode_recording(data: bytes, fmt: str, filename: str) -> Recording:
    """Uploaded bytes -> :class:`Recording`; INVALID_ARGUMENT on anything undecodable."""
    if not data:
        raise InvalidArgumentError("the recording is empty (0 bytes); upload the file's bytes")
    fmt = _format(fmt, filename)
    if fmt == "nmnist":
        events = decode_nmnist(data)
        if events.size and np.any(np.diff(events["t"]) < 0):
            events = events[np.argsort(events["t"], kind="stable")]
        return Recording("events", events, sensor_size=NMNIST_SENSOR)
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise InvalidArgumentError(
            f"the {fmt} recording could not be decoded ({exc}); upload a valid file"
        ) from None
    return Recording("audio", samples.mean(axis=1, dtype=np.float32), sample_rate_hz=int(rate))


def run_recording(task: StreamingTask, recording: Recording) -> tuple[list[StepResult], int]:
    """Stream the recording through the task; (results of every chunk, inputs consumed)."""
    info = task.info
    if recording.kind == "audio" and recording.sample_rate_hz != info.sample_rate_hz:
        raise InvalidArgumentError(
            f"the recording is {recording.sample_rate_hz} Hz; model {info.name!r} takes "
            f"{info.sample_rate_hz} Hz; resample it first"
        )
    if recording.kind == "events" and tuple(recording.sensor_size) != tuple(info.sensor_size):
        raise InvalidArgumentError(
            f"the recording's sensor is {list(recording.sensor_size)}; model {info.name!r} "
            f"takes {list(info.sensor_size)}"
        )
    data = recording.data
    if recording.kind == "audio":
        step = max(1, int(AUDIO_CHUNK_S * info.sample_rate_hz))
        bounds = np.arange(0, data.size + step, step).clip(max=data.size)
    else:
        t = data["t"]
        edges = np.arange(int(t[0]), int(t[-1]) + EVENT_CHUNK_US, EVENT_CHUNK_US) if t.size else []
        bounds = np.concatenate([[0], np.searchsorted(t, edges[1:], side="left"), [t.size]])
    results = []
    state = task.open_stream()
    try:
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                result, state = task.push(state, data[lo:hi])
                results.append(result)
        result, state = task.finish(state)
        results.append(result)
    finally:
        task.close(state)
    return results, int(data.size)
