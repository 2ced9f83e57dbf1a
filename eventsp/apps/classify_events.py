"""Classify event recordings and live event streams on the streaming runtime.

Frames
------
Events (:data:`eventsp.events.EVENT_DTYPE`, ``t`` in µs) are cut into consecutive time windows
of ``window_us``; the first window starts at the stream's first event. Frame ``k`` counts the
events with ``start + k*window_us <= t < start + (k+1)*window_us`` per polarity and pixel:
``F[k, p, y, x]`` (layout ``(T, P, H, W)``, float32). The trainer
(:mod:`eventsp.train.stbp`) builds its training frames with :func:`recording_frames`, the same
code that :func:`window_step` runs on live packets, so the runtime sees exactly the frames the
model was trained on. A window is complete when an event at or past its end arrives, or when
the stream ends (:func:`window_flush`).

Decision rule
-------------
The model's output layer is read out as the mean of its per-frame logits so far (a
``Readout(mode="mean")`` node). After window ``k`` the evidence is ``z_k = mean(logits_1..k)``
and the confidence is ``max(softmax(z_k))``. The classifier answers EARLY, at the end of the
first window ``k >= min_windows`` whose confidence reaches ``confidence``; that answer is
final for the decision time ``decided_at_us`` (the end of that window, relative to the first
event). Evidence keeps accumulating for at most ``time_steps`` windows (the number the model
was trained with, from its metadata); the FINAL answer is the arg-max of the evidence after the
last of those windows (or at the end of the stream). When no early answer was given,
``decided_at_us`` is the end of the last window used.

Per-stream state is plain data (:class:`WindowState`, :class:`ClassifierState`), so one
:class:`EventClassifier` serves any number of streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eventsp.events import as_events, check_sensor_size, open_recording

__all__ = [
    "DEFAULT_MODEL",
    "ClassifierState",
    "Decision",
    "EventClassifier",
    "WindowState",
    "classify_recording",
    "init_window",
    "recording_frames",
    "window_flush",
    "window_step",
]

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "nmnist_stbp.esp"


class WindowState(NamedTuple):
    """Per-stream windowing state.

    start_us: int64 scalar array, start of the open window (meaningless until ``started``).
    started: bool scalar array, whether any event has arrived.
    frame: ``(P, H, W)`` float32, the open window's counts so far.
    """

    start_us: np.ndarray
    started: np.ndarray
    frame: np.ndarray


def init_window(sensor_size: tuple[int, int, int]) -> WindowState:
    """A fresh :class:`WindowState` for a sensor ``(W, H, P)``."""
    W, H, P = check_sensor_size(sensor_size)
    return WindowState(
        np.array(0, dtype=np.int64),
        np.array(False),
        np.zeros((P, H, W), dtype=np.float32),
    )


def _accumulate(frames: np.ndarray, k: np.ndarray, events: np.ndarray) -> None:
    """``frames[k_i, p_i, y_i, x_i] += 1`` for each event ``i`` (frames is ``(n, P, H, W)``)."""
    _n, P, H, W = frames.shape
    p = events["p"].astype(np.int64) if P == 2 else np.zeros(len(events), dtype=np.int64)
    flat = ((k * P + p) * H + events["y"].astype(np.int64)) * W + events["x"].astype(np.int64)
    frames += np.bincount(flat, minlength=frames.size).reshape(frames.shape).astype(np.float32)


def window_step(
    events: np.ndarray, state: WindowState, window_us: int
) -> tuple[np.ndarray, WindowState]:
    """Feed one time-sorted packet; return the windows it completed ``(n, P, H, W)``.

    Packets may be cut anywhere: the frames equal those of :func:`recording_frames` on the
    concatenated stream. Sort packets first (``eventsp.events.order_packet``).
    """
    if int(window_us) < 1:
        raise ValueError(f"window_us={window_us}; expected a positive number of microseconds")
    events = as_events(events)
    P, H, W = state.frame.shape
    if events.size == 0:
        return np.zeros((0, P, H, W), dtype=np.float32), state
    t = events["t"].astype(np.int64)
    if np.any(t[1:] < t[:-1]):
        raise ValueError(
            "the packet is not sorted by time; pass it through eventsp.events.order_packet first"
        )
    start = int(state.start_us) if bool(state.started) else int(t[0])
    if t[0] < start:
        raise ValueError(
            f"the packet starts at t={int(t[0])} us, before the open window ({start} us); "
            "drop late events with eventsp.events.order_packet"
        )
    k = (t - start) // int(window_us)
    n_done = int(k[-1])
    frames = np.zeros((n_done + 1, P, H, W), dtype=np.float32)
    frames[0] = state.frame
    _accumulate(frames, k, events)
    new_state = WindowState(
        np.array(start + n_done * int(window_us), dtype=np.int64),
        np.array(True),
        frames[n_done].copy(),
    )
    return frames[:n_done], new_state


def window_flush(state: WindowState) -> np.ndarray:
    """The open window at the end of a stream: ``(1, P, H, W)``, or ``(0, P, H, W)`` if none."""
    if not bool(state.started):
        return np.zeros((0, *state.frame.shape), dtype=np.float32)
    return state.frame[None].copy()


def recording_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    window_us: int,
    n_windows: int | None = None,
) -> np.ndarray:
    """All frames of a whole recording ``(T, P, H, W)``: full windows, then the last partial one.

    ``n_windows`` truncates to the first ``n_windows`` frames, or pads with empty frames when
    the recording is shorter.
    """
    events = as_events(events)
    if events.size and np.any(events["t"][1:] < events["t"][:-1]):
        events = events[np.argsort(events["t"], kind="stable")]
    state = init_window(sensor_size)
    done, state = window_step(events, state, window_us)
    frames = np.concatenate([done, window_flush(state)])
    if n_windows is None:
        return frames
    if frames.shape[0] >= n_windows:
        return np.ascontiguousarray(frames[:n_windows])
    pad = np.zeros((n_windows - frames.shape[0], *frames.shape[1:]), dtype=np.float32)
    return np.concatenate([frames, pad])


@dataclass(frozen=True)
class Decision:
    """One classification: ``label`` (name), ``index``, ``confidence`` in [0, 1], when decided.

    ``decided_at_us``: end of the window at which the answer was given, in µs after the first
    event; ``early``: whether the confidence rule fired before the last window;
    ``probabilities``: softmax of the final evidence.
    """

    label: str
    index: int
    confidence: float
    decided_at_us: int
    early: bool
    windows: int
    probabilities: tuple[float, ...] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "decided_at_us": self.decided_at_us,
            "early": self.early,
            "windows": self.windows,
        }


class ClassifierState(NamedTuple):
    """Per-stream state of :class:`EventClassifier`: windowing, network, decision so far."""

    window: WindowState
    net: Any
    windows: int
    evidence: np.ndarray
    early: Decision | None


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class EventClassifier:
    """A model file loaded for event classification (immutable; state is per stream).

    ``confidence`` and ``min_windows`` set the early-decision rule (module docstring).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        confidence: float = 0.95,
        min_windows: int = 3,
        mode: str = "float",
    ) -> None:
        from eventsp.model.format import load_model
        from eventsp.runtime import Network

        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence={confidence}; expected a probability in (0, 1]")
        if int(min_windows) < 1:
            raise ValueError(f"min_windows={min_windows}; expected an int >= 1")
        loaded = load_model(model)
        meta = loaded.metadata
        if meta.get("task") != "classify-events":
            raise ValueError(
                f"model {str(model)!r} is for task {meta.get('task')!r}, not 'classify-events'; "
                "pass a model trained by eventsp.train.stbp"
            )
        self.path = Path(model)
        self.metadata = meta
        self.labels: list[str] = [str(x) for x in meta["labels"]]
        self.sensor_size = check_sensor_size(tuple(meta["sensor_size"]))
        self.window_us = int(meta["frontend"]["window_us"])
        self.time_steps = int(meta["time_steps"])
        self.confidence = float(confidence)
        self.min_windows = int(min_windows)
        self.network = Network(loaded.graph, mode=mode)

    def init_state(self) -> ClassifierState:
        return ClassifierState(
            init_window(self.sensor_size),
            self.network.init_state(batch=1),
            0,
            np.zeros(len(self.labels), dtype=np.float64),
            None,
        )

    def _decision(self, state: ClassifierState, early: bool) -> Decision:
        probs = _softmax(state.evidence)
        index = int(np.argmax(probs))
        return Decision(
            label=self.labels[index],
            index=index,
            confidence=float(probs[index]),
            decided_at_us=state.windows * self.window_us,
            early=early,
            windows=state.windows,
            probabilities=tuple(float(p) for p in probs),
        )

    def _frames(self, frames: np.ndarray, state: ClassifierState) -> ClassifierState:
        net_state, windows, evidence, early = state.net, state.windows, state.evidence, state.early
        for frame in frames:
            if windows >= self.time_steps:
                break
            out, net_state = self.network.step(frame[None], net_state)
            windows += 1
            evidence = np.asarray(out, dtype=np.float64).reshape(-1)
            state = ClassifierState(state.window, net_state, windows, evidence, early)
            if early is None and windows >= self.min_windows and windows < self.time_steps:
                d = self._decision(state, early=True)
                if d.confidence >= self.confidence:
                    early = d
                    state = state._replace(early=early)
        return state

    def feed(self, events: np.ndarray, state: ClassifierState) -> ClassifierState:
        """Feed one time-sorted packet of a live stream."""
        frames, window = window_step(events, state.window, self.window_us)
        return self._frames(frames, state._replace(window=window))

    def early_answer(self, state: ClassifierState) -> Decision | None:
        """The early answer, once the confidence rule has fired (else None)."""
        return state.early

    def finish(self, state: ClassifierState) -> tuple[Decision, Decision | None, ClassifierState]:
        """End the stream: ``(final, early, state)``; the final answer uses every window."""
        state = self._frames(window_flush(state.window), state)
        return self._decision(state, early=False), state.early, state

    def counters(self, state: ClassifierState) -> Any:
        return self.network.counters(state.net)

    def classify(self, packets: Iterable[np.ndarray]) -> tuple[Decision, Decision | None]:
        """``(final, early)`` for a whole stream of time-sorted packets."""
        state = self.init_state()
        for packet in packets:
            state = self.feed(packet, state)
        final, early, _ = self.finish(state)
        return final, early


def classify_recording(
    path: str | Path, classifier: EventClassifier
) -> tuple[Decision, Decision | None]:
    """Classify one recording file, streamed in bounded packets (sorted as they come)."""
    from eventsp.events import init_order, order_packet

    recording = open_recording(path)
    if tuple(recording.sensor_size[:2]) != tuple(classifier.sensor_size[:2]):
        raise ValueError(
            f"{path}: sensor {recording.sensor_size[:2]} does not match the model's "
            f"{classifier.sensor_size[:2]}; pass a model trained for this sensor"
        )
    order = init_order()

    def packets() -> Iterable[np.ndarray]:
        nonlocal order
        for packet in recording.packets():
            ordered, order = order_packet(packet, order)
            yield ordered

    return classifier.classify(packets())
