"""Adapters: model files -> :class:`~eventsp.services.tasks.StreamingTask` on the runtime.

A model file's ``metadata["task"]`` picks the adapter:

- ``"classify-events"``: :class:`EventClassifierTask` wraps the application
  :class:`eventsp.apps.classify_events.EventClassifier` (count frames of ``window_us``, the
  runtime network, mean-logit evidence, early and final decisions). Each packet that
  completes windows answers a :class:`Prediction` of the evidence so far; the end of the
  stream answers the application's final decision (``final=True``).
- ``"kws"``: :class:`KeywordSpotterTask` wraps :class:`eventsp.apps.kws.KeywordSpotter`
  (log-mel, the runtime network, smoothed posteriors, keyword events); each chunk answers the
  keyword events that closed in it, the end of the stream the last one and the whole-stream
  answer as a final :class:`Prediction` (the best event's keyword, else the clip posterior's
  arg-max, as ``KeywordSpotter.classify``).
- ``"separate"``: the separation application owns its model; when
  ``eventsp.apps.separate`` provides ``load_task(path) -> StreamingTask`` it is used.
- Without those applications, :class:`AudioClassifierTask` serves an audio model as a
  streaming classifier: log-mel frames from ``metadata["frontend"]`` (``{"kind": "logmel",
  ...LogMelConfig fields}``) through the network, one :class:`Prediction` per
  ``metadata["predict_every_frames"]`` frames (default 10) from the network's output (its
  readout) and a final one at the end. It reports no keyword events: deciding what counts
  as a keyword is the application's job.

Per-stream state is plain data returned by ``open_stream`` (a NamedTuple holding the runtime
``NetworkState``); the task objects are shared by every stream.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eventsp.kernels import layout as lay
from eventsp.services.tasks import (
    EVENT_DTYPE,
    KeywordEvent,
    Prediction,
    StepResult,
    StreamingTask,
    TaskInfo,
    prediction_from_scores,
)

WARM_SECONDS = 0.5


def _ops(net_state: Any) -> tuple[float, float]:
    """(effective synops, dense ops) of stream 0 since it started."""
    totals = net_state.counters[0].sum(axis=0)  # one reduction over every op
    return float(totals[lay.ACS] + totals[lay.MACS]), float(totals[lay.DENSE_OPS])


def _format_version() -> int:
    from eventsp.model.format import FORMAT_VERSION

    return int(FORMAT_VERSION[0])


class EventClassifierTask:
    """``classify-events`` models through :class:`eventsp.apps.classify_events.EventClassifier`."""

    def __init__(self, path: Path) -> None:
        from eventsp.apps.classify_events import EventClassifier

        self.classifier = EventClassifier(path)
        meta = self.classifier.metadata
        self.is_default = bool(meta.get("default", False))
        self.info = TaskInfo(
            name=Path(path).stem,
            task="classify-events",
            sensor_size=tuple(self.classifier.sensor_size),
            labels=tuple(self.classifier.labels),
            format_version=_format_version(),
            version=str(meta.get("version", "")),
            parameter_bytes=self.classifier.network.parameter_bytes,
        )

    def warm(self) -> None:
        """Run one stream of random events through every kernel once."""
        W, H, P = self.info.sensor_size
        rng = np.random.default_rng(0)
        n = 2000
        events = np.zeros(n, dtype=EVENT_DTYPE)
        events["x"], events["y"] = rng.integers(0, W, n), rng.integers(0, H, n)
        events["p"] = rng.integers(0, P, n) > 0
        events["t"] = np.sort(rng.integers(0, 4 * self.classifier.window_us, n))
        state = self.open_stream()
        _, state = self.push(state, events)
        self.finish(state)
        self.close(state)

    def open_stream(self) -> Any:
        return self.classifier.init_state()

    def push(self, state: Any, chunk: np.ndarray) -> tuple[StepResult, Any]:
        before = _ops(state.net)
        windows = state.windows
        state = self.classifier.feed(chunk, state)
        after = _ops(state.net)
        predictions = ()
        if state.windows > windows:
            t_s = state.windows * self.classifier.window_us * 1e-6
            predictions = (prediction_from_scores(state.evidence, self.info.labels, t_s),)
        result = StepResult(
            predictions=predictions,
            synops=after[0] - before[0],
            dense_ops=after[1] - before[1],
            inputs=int(chunk.size),
        )
        return result, state

    def finish(self, state: Any) -> tuple[StepResult, Any]:
        before = _ops(state.net)
        final, _, state = self.classifier.finish(state)
        after = _ops(state.net)
        t_s = final.decided_at_us * 1e-6
        prediction = prediction_from_scores(state.evidence, self.info.labels, t_s, final=True)
        result = StepResult(
            predictions=(prediction,), synops=after[0] - before[0], dense_ops=after[1] - before[1]
        )
        return result, state

    def close(self, state: Any) -> None:
        """Nothing to release beyond dropping ``state`` (plain arrays)."""


class AudioState(NamedTuple):
    front: Any  # eventsp.audio.LogMelState
    net: Any  # eventsp.runtime.NetworkState, batch 1
    frames: int
    samples: int
    output: np.ndarray  # the network's latest output


class AudioClassifierTask:
    """An audio model served as a streaming classifier (see the module docstring)."""

    def __init__(self, path: Path, graph: Any, metadata: dict[str, Any]) -> None:
        from eventsp.audio import LogMelConfig
        from eventsp.runtime import Network

        frontend = dict(metadata.get("frontend") or {})
        kind = frontend.pop("kind", frontend.pop("type", None))
        if kind != "logmel":
            raise ValueError(
                f"{path}: metadata frontend kind is {kind!r}; the service's audio adapter "
                "reads {'kind': 'logmel', ...LogMelConfig fields}"
            )
        self.config = LogMelConfig(**frontend)
        self.network = Network(graph)
        if self.network.input_shape != (self.config.n_mels,):
            raise ValueError(
                f"{path}: the network takes input {self.network.input_shape}, the front-end "
                f"makes ({self.config.n_mels},) log-mel frames"
            )
        self.predict_every = int(metadata.get("predict_every_frames", 10))
        labels = tuple(str(x) for x in metadata.get("labels", ()))
        self.is_default = bool(metadata.get("default", False))
        self.info = TaskInfo(
            name=Path(path).stem,
            task=str(metadata["task"]),
            sample_rate_hz=int(metadata.get("sample_rate_hz", self.config.sample_rate)),
            labels=labels,
            format_version=_format_version(),
            version=str(metadata.get("version", "")),
            parameter_bytes=self.network.parameter_bytes,
        )
        if self.info.sample_rate_hz != self.config.sample_rate:
            raise ValueError(
                f"{path}: sample_rate_hz {self.info.sample_rate_hz} differs from the "
                f"front-end's {self.config.sample_rate}"
            )

    def warm(self) -> None:
        state = self.open_stream()
        noise = np.random.default_rng(0).standard_normal(int(WARM_SECONDS * 16000)) * 0.01
        _, state = self.push(state, noise.astype(np.float32))
        self.finish(state)
        self.close(state)

    def open_stream(self) -> AudioState:
        from eventsp.audio import init_logmel_state

        out = np.zeros(int(np.prod(self.network.output_shape)), np.float32)
        return AudioState(init_logmel_state(self.config), self.network.init_state(1), 0, 0, out)

    def push(self, state: AudioState, chunk: np.ndarray) -> tuple[StepResult, AudioState]:
        from eventsp.audio import logmel_step

        features, front = logmel_step(chunk, state.front, self.config)
        frames, output, predictions, net = state.frames, state.output, [], state.net
        before = _ops(net)
        if features.shape[0]:
            outs, net = self.network.run(features[:, None, :], net)
            for k in range(features.shape[0]):
                frames += 1
                if frames % self.predict_every == 0:
                    t_s = frames * self.config.hop_length / self.config.sample_rate
                    predictions.append(
                        prediction_from_scores(outs[k, 0].ravel(), self.info.labels, t_s)
                    )
            output = outs[-1, 0].ravel()
        after = _ops(net)
        new = AudioState(front, net, frames, state.samples + chunk.size, output)
        result = StepResult(
            predictions=tuple(predictions),
            synops=after[0] - before[0],
            dense_ops=after[1] - before[1],
            inputs=int(chunk.size),
        )
        return result, new

    def finish(self, state: AudioState) -> tuple[StepResult, AudioState]:
        t_s = state.samples / self.info.sample_rate_hz
        final = prediction_from_scores(state.output, self.info.labels, t_s, final=True)
        return StepResult(predictions=(final,)), state

    def close(self, state: AudioState) -> None:
        """Nothing to release beyond dropping ``state`` (plain arrays)."""


class KeywordSpotterTask:
    """``kws`` models through :class:`eventsp.apps.kws.KeywordSpotter`."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        from eventsp.apps.kws import KeywordSpotter

        kind = (metadata.get("frontend") or {}).get("kind")
        if kind != "logmel" or not metadata.get("labels"):
            raise ValueError(
                f"{path}: a kws model needs metadata labels and frontend kind 'logmel'; it has "
                f"labels={metadata.get('labels')!r}, frontend kind {kind!r}"
            )
        self.spotter = KeywordSpotter(path)
        meta = self.spotter.metadata
        self.is_default = bool(meta.get("default", False))
        self.info = TaskInfo(
            name=Path(path).stem,
            task="kws",
            sample_rate_hz=int(self.spotter.sample_rate),
            labels=tuple(self.spotter.labels),
            format_version=_format_version(),
            version=str(meta.get("version", "")),
            parameter_bytes=self.spotter.network.parameter_bytes,
        )

    def warm(self) -> None:
        state = self.open_stream()
        noise = np.random.default_rng(0).standard_normal(int(WARM_SECONDS * 16000)) * 0.01
        _, state = self.push(state, noise.astype(np.float32))
        self.finish(state)
        self.close(state)

    def open_stream(self) -> Any:
        # (KWSState, best event so far, (synops, dense ops) counted before this chunk)
        return (self.spotter.init_state(), None, (0.0, 0.0))

    @staticmethod
    def _keyword(event: Any) -> KeywordEvent:
        return KeywordEvent(event.keyword, float(event.score), event.start_s, event.end_s)

    def push(self, state: Any, chunk: np.ndarray) -> tuple[StepResult, Any]:
        kws_state, best, before = state
        events, _, kws_state = self.spotter.step(chunk, kws_state)
        after = _ops(kws_state.net)  # once per chunk: the totals before it ride in the state
        for event in events:
            best = event if best is None or event.score > best.score else best
        result = StepResult(
            keywords=tuple(self._keyword(e) for e in events) if events else (),
            synops=after[0] - before[0],
            dense_ops=after[1] - before[1],
            inputs=int(chunk.size),
        )
        return result, (kws_state, best, after)

    def finish(self, state: Any) -> tuple[StepResult, Any]:
        kws_state, best, ops = state
        events, kws_state = self.spotter.finish(kws_state)
        for event in events:
            best = event if best is None or event.score > best.score else best
        from eventsp.apps.kws import frames_seen

        t_s = frames_seen(kws_state) * self.spotter.hop_s
        posterior = self.spotter.clip_posterior(kws_state)  # as KeywordSpotter.classify
        scores = tuple(float(p) for p in posterior)
        if best is not None:
            index = self.info.labels.index(best.keyword)
            final = Prediction(index, best.keyword, scores, t_s, final=True)
        else:
            index = int(np.argmax(posterior))
            final = Prediction(index, self.info.labels[index], scores, t_s, final=True)
        result = StepResult(keywords=tuple(self._keyword(e) for e in events), predictions=(final,))
        return result, (kws_state, best, ops)

    def close(self, state: Any) -> None:
        """Nothing to release beyond dropping ``state`` (plain arrays)."""


def _app_task(task: str, path: Path, metadata: dict[str, Any]) -> StreamingTask | None:
    """The application's own streaming task for ``path``, when the application provides one."""
    if task == "kws":
        try:
            return KeywordSpotterTask(path, metadata)
        except ModuleNotFoundError as exc:
            if exc.name != "eventsp.apps.kws":
                raise
            return None
    module_name = {"separate": "eventsp.apps.separate"}[task]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    load_task = getattr(module, "load_task", None)
    return None if load_task is None else load_task(path)


def task_from_file(path: Path) -> StreamingTask:
    """The streaming task serving the model file at ``path`` (see the module docstring)."""
    from eventsp.model.format import load_model

    path = Path(path)
    model = load_model(path)
    task = model.metadata.get("task")
    if task == "classify-events":
        return EventClassifierTask(path)
    if task in ("kws", "separate"):
        app = _app_task(task, path, model.metadata)
        return app or AudioClassifierTask(path, model.graph, model.metadata)
    raise UnservedTaskError(
        f"{path}: metadata task is {task!r}; the service serves 'kws', 'separate' and "
        "'classify-events' models; move other models out of the models folder"
    )


class UnservedTaskError(ValueError):
    """A valid model whose task has no streaming RPC (e.g. ``classify-images``)."""
