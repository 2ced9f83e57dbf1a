"""ProcessRecording: decode an uploaded file and run a task over it in streaming chunks.

Audio files (``wav``, ``flac``, ``ogg``) are decoded with soundfile (mono, or mixed down by
averaging channels). Every other upload is an event recording, read by
:func:`eventsp.events.open_recording` (format recognised from its bytes: N-MNIST, AEDAT2/4,
EVT2/3, DAT, npy, HDF5, ...), from a private temporary file that is deleted at once. The
recording runs through the same ``push``/``finish`` path as a live stream, in chunks of
:data:`AUDIO_CHUNK_S` seconds of audio or :data:`EVENT_CHUNK_US` microseconds of events.
"""

from __future__ import annotations

import io
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from eventsp.services.errors import InvalidArgumentError
from eventsp.services.tasks import EVENT_DTYPE, StepResult, StreamingTask

AUDIO_FORMATS = ("wav", "flac", "ogg")
AUDIO_CHUNK_S = 0.1
EVENT_CHUNK_US = 10_000


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


def _decode_events(data: bytes, fmt: str, filename: str) -> Recording:
    from eventsp.events import open_recording

    suffix = PurePath(filename).suffix or (f".{fmt}" if fmt else "")
    name = PurePath(filename).name or "upload"
    with tempfile.TemporaryDirectory(prefix="eventsp-upload-") as folder:
        path = Path(folder) / f"recording{suffix}"
        path.write_bytes(data)
        try:
            recording = open_recording(path)
            packets = list(recording.packets())
        except (ValueError, OSError) as exc:
            message = str(exc).replace(str(path), name)
            raise InvalidArgumentError(f"the recording could not be read: {message}") from None
    events = np.concatenate(packets) if packets else np.zeros(0, EVENT_DTYPE)
    if events.size and np.any(np.diff(events["t"]) < 0):
        events = events[np.argsort(events["t"], kind="stable")]
    return Recording("events", events, sensor_size=tuple(recording.sensor_size))


def decode_recording(data: bytes, fmt: str, filename: str) -> Recording:
    """Uploaded bytes -> :class:`Recording`; INVALID_ARGUMENT on anything undecodable."""
    if not data:
        raise InvalidArgumentError("the recording is empty (0 bytes); upload the file's bytes")
    fmt = (fmt or PurePath(filename).suffix.lstrip(".")).lower()
    if fmt not in AUDIO_FORMATS:
        return _decode_events(data, fmt, filename)
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
