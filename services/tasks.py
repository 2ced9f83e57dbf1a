"""The streaming-task protocol: what the service asks of a model, whatever the model does.

The servicers know nothing about keyword spotting, separation or event classification. Every
model the server holds is wrapped in a :class:`StreamingTask`:

- ``info``: a :class:`TaskInfo` (name, task, input contract, labels, footprint);
- ``warm()``: compile and run the kernels once, before the server reports SERVING;
- ``open_stream() -> state``: fresh per-stream state (plain data; nothing kept on the task);
- ``push(state, chunk) -> (StepResult, state)``: consume one chunk, answer what it can;
- ``finish(state) -> (StepResult, state)``: the input has ended; flush final answers;
- ``close(state)``: release the stream's state (called exactly once, also on errors and when
  the client disappears).

Chunks are already validated and converted by the service (``services/convert.py``):

- audio tasks (``info.kind == "audio"``) get mono ``float32`` samples in [-1, 1], shape
  ``(n,)``, at ``info.sample_rate_hz``; ``n`` may be 0;
- event tasks (``info.kind == "events"``) get a structured array with fields ``x, y, t, p``
  (:data:`EVENT_DTYPE`, ``t`` in microseconds, non-decreasing within the chunk), inside
  ``info.sensor_size`` = (width, height, polarities); this is the one event contract of
  :mod:`eventsp.events.contract`.

Tasks must be safe to call from one stream at a time per state, and hold no per-stream data
themselves: a server keeps thousands of streams on one task object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from eventsp.events.contract import EVENT_DTYPE

TaskName = Literal["kws", "separate", "classify-events", "classify-images"]
InputKind = Literal["audio", "events"]

__all__ = [
    "EVENT_DTYPE",
    "KeywordEvent",
    "Prediction",
    "StepResult",
    "StreamingTask",
    "TaskInfo",
    "prediction_from_scores",
    "softmax",
]

TASK_KINDS: dict[str, InputKind] = {
    "kws": "audio",
    "separate": "audio",
    "classify-events": "events",
}


@dataclass(frozen=True)
class TaskInfo:
    """What one served model is: its name, task, input contract and footprint."""

    name: str
    task: str
    sample_rate_hz: int = 0
    sensor_size: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    format_version: int = 0
    version: str = ""
    parameter_bytes: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"model name {self.name!r} must be non-empty letters, digits, '-' or '_'; "
                "rename the model file"
            )
        if self.task not in TASK_KINDS:
            raise ValueError(
                f"model {self.name!r} has task {self.task!r}; the service streams "
                f"{sorted(TASK_KINDS)}; serve other models through the library instead"
            )
        if self.kind == "audio" and self.sample_rate_hz <= 0:
            raise ValueError(
                f"audio model {self.name!r} has sample_rate_hz={self.sample_rate_hz}; "
                "set metadata['sample_rate_hz'] to the rate it was trained on"
            )
        if self.kind == "events" and (
            len(self.sensor_size) != 3 or min(self.sensor_size, default=0) <= 0
        ):
            raise ValueError(
                f"event model {self.name!r} has sensor_size={self.sensor_size}; expected "
                "(width, height, polarities), all positive; set metadata['sensor_size']"
            )

    @property
    def kind(self) -> InputKind:
        return TASK_KINDS[self.task]


@dataclass(frozen=True)
class KeywordEvent:
    """A keyword heard from ``time_s`` to ``end_s`` (stream seconds); ``score`` in [0, 1]."""

    label: str
    score: float
    time_s: float
    end_s: float | None = None


@dataclass(frozen=True)
class Prediction:
    """Softmax ``scores`` over the model's labels; ``index`` is the best one."""

    index: int
    label: str
    scores: tuple[float, ...]
    time_s: float
    final: bool = False


@dataclass(frozen=True)
class StepResult:
    """What a task answers for one chunk (or at the end of the stream).

    ``tracks``: separated sources, ``(n_sources, n_samples)`` float32 at the model's rate, or
    ``None``. ``synops`` / ``dense_ops``: operations the runtime spent on this chunk
    (NeuroBench effective synaptic operations and dense operations).
    """

    keywords: tuple[KeywordEvent, ...] = ()
    predictions: tuple[Prediction, ...] = ()
    tracks: np.ndarray | None = None
    synops: float = 0.0
    dense_ops: float = 0.0
    inputs: int = field(default=0)


@runtime_checkable
class StreamingTask(Protocol):
    """A served model; see the module docstring for the contract."""

    info: TaskInfo

    def warm(self) -> None: ...

    def open_stream(self) -> Any: ...

    def push(self, state: Any, chunk: np.ndarray) -> tuple[StepResult, Any]: ...

    def finish(self, state: Any) -> tuple[StepResult, Any]: ...

    def close(self, state: Any) -> None: ...


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D score vector, as float64."""
    z = np.asarray(x, dtype=np.float64).ravel()
    if z.size == 0:
        return z
    e = np.exp(z - z.max())
    return e / e.sum()


def prediction_from_scores(
    readout: np.ndarray, labels: tuple[str, ...], time_s: float, *, final: bool = False
) -> Prediction:
    """A :class:`Prediction` from an accumulated readout vector (one value per label)."""
    probs = softmax(readout)
    index = int(np.argmax(probs))
    label = labels[index] if index < len(labels) else str(index)
    return Prediction(
        index=index,
        label=label,
        scores=tuple(float(v) for v in probs),
        time_s=float(time_s),
        final=final,
    )
