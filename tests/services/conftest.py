"""Fixtures for the service tests: a real server on 127.0.0.1 port 0 in a background loop.

The tasks here are TEST-ONLY stand-ins for the applications (numpy arithmetic, no model): they
let the service's plumbing be tested on its own and count the per-stream states they hold, so
tests can check that every state is released. Runtime-backed tasks are tested in
``test_adapters.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from eventsp.clients.client import Client, ServiceCallError
from eventsp.model import LIF, Dense, Flatten, Graph, Input, Output, Readout
from eventsp.model.format import save_model
from eventsp.services.config import ServerConfig
from eventsp.services.server import create_server
from eventsp.services.tasks import (
    KeywordEvent,
    StepResult,
    TaskInfo,
    prediction_from_scores,
)


class LoudnessTestTask:
    """TEST-ONLY audio task: a 'loud' keyword event for every chunk with RMS above 0.1."""

    def __init__(self, name: str = "test-loudness", task: str = "kws") -> None:
        self.info = TaskInfo(name=name, task=task, sample_rate_hz=16000, labels=("quiet", "loud"))
        self.live = 0
        self.warmed = False

    def warm(self) -> None:
        self.warmed = True

    def open_stream(self) -> dict:
        self.live += 1
        return {"samples": 0, "energy": 0.0}

    def push(self, state: dict, chunk: np.ndarray) -> tuple[StepResult, dict]:
        t = state["samples"] / self.info.sample_rate_hz
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) if chunk.size else 0.0
        keywords = (KeywordEvent("loud", min(1.0, rms), t),) if rms > 0.1 else ()
        tracks = np.stack([chunk, -chunk]) if self.info.task == "separate" else None
        new = {"samples": state["samples"] + chunk.size, "energy": state["energy"] + rms}
        return StepResult(keywords=keywords, tracks=tracks, synops=float(chunk.size)), new

    def finish(self, state: dict) -> tuple[StepResult, dict]:
        scores = np.array([-state["energy"], state["energy"]])
        t = state["samples"] / self.info.sample_rate_hz
        return StepResult(
            predictions=(prediction_from_scores(scores, self.info.labels, t, final=True),)
        ), state

    def close(self, state: dict) -> None:
        self.live -= 1


class PolarityTestTask:
    """TEST-ONLY event task: predicts 'on' or 'off' from the polarity counts so far."""

    def __init__(self) -> None:
        self.info = TaskInfo(
            name="test-polarity",
            task="classify-events",
            sensor_size=(34, 34, 2),
            labels=("off", "on"),
        )
        self.live = 0

    def warm(self) -> None:
        pass

    def open_stream(self) -> np.ndarray:
        self.live += 1
        return np.zeros(3, dtype=np.int64)  # off count, on count, last t

    def push(self, state: np.ndarray, events: np.ndarray) -> tuple[StepResult, np.ndarray]:
        on = int(events["p"].sum())
        new = state + np.array([events.size - on, on, 0])
        if events.size:
            new[2] = events["t"][-1]
        pred = prediction_from_scores(
            new[:2].astype(float) / max(1, new[:2].sum()), self.info.labels, new[2] * 1e-6
        )
        return StepResult(predictions=(pred,), synops=float(events.size)), new

    def finish(self, state: np.ndarray) -> tuple[StepResult, np.ndarray]:
        scores = state[:2].astype(float) / max(1, state[:2].sum())
        return StepResult(
            predictions=(
                prediction_from_scores(scores, self.info.labels, state[2] * 1e-6, final=True),
            )
        ), state

    def close(self, state: np.ndarray) -> None:
        self.live -= 1


class RunningServer:
    """A started server on its own event loop thread; ``call`` runs coroutines on it."""

    def __init__(self, config: ServerConfig, tasks: list | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = self.call(create_server(config, tasks))
        self.call(self.server.start())
        self.address = f"127.0.0.1:{self.port}"
        self.stopped = False

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace_s: float = 0.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.call(self.server.stop(grace_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def start_server() -> Iterator:
    """``start_server(config=None, tasks=None) -> RunningServer``; all stopped at teardown."""
    started: list[RunningServer] = []

    def start(config: ServerConfig | None = None, tasks: list | None = None) -> RunningServer:
        running = RunningServer(config or ServerConfig(port=0), tasks)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def audio_task() -> LoudnessTestTask:
    return LoudnessTestTask()


@pytest.fixture
def event_task() -> PolarityTestTask:
    return PolarityTestTask()


@pytest.fixture
def served(start_server, audio_task, event_task):
    """(server, client) with the two test tasks and a separation test task."""
    running = start_server(
        tasks=[audio_task, event_task, LoudnessTestTask("test-split", "separate")]
    )
    client = Client(running.address)
    client.wait_serving()
    yield running, client
    client.close()


def _wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class HeldStream:
    """A StreamAudio call that sent one chunk and waits (in a thread) until released."""

    def __init__(self, client: Client, **kwargs) -> None:
        self.release = threading.Event()
        self.responses: list = []
        self.error: ServiceCallError | None = None

        def chunks():
            yield np.zeros(160, np.float32)
            self.release.wait(30)
            yield np.full(160, 0.5, np.float32)

        def consume():
            try:
                for r in client.stream_audio(chunks(), sample_rate_hz=16000, **kwargs):
                    self.responses.append(r)
            except ServiceCallError as exc:
                self.error = exc

        self.thread = threading.Thread(target=consume, daemon=True)
        self.thread.start()
        if not _wait_until(lambda: self.responses or self.error):
            raise TimeoutError("the held stream got no first response")

    def finish(self, timeout_s: float = 10.0) -> None:
        self.release.set()
        self.thread.join(timeout_s)


@pytest.fixture
def wait_until():
    """``wait_until(predicate, timeout_s=10) -> bool``: poll until true or timed out."""
    return _wait_until


@pytest.fixture
def held_stream():
    """``held_stream(client, **kwargs)``: a StreamAudio call held open until ``.finish()``."""
    return HeldStream


# Tiny runtime models with random weights, written to tmp_path only (never shipped).
LABELS = [str(d) for d in range(10)]
WINDOW_US = 20_000


def event_graph(rng) -> Graph:
    weight = (rng.standard_normal((10, 2 * 34 * 34)) * 0.05).astype(np.float32)
    return Graph.chain(
        [
            ("in", Input((2, 34, 34))),
            ("flat", Flatten()),
            ("fc", Dense(weight, np.zeros(10, np.float32))),
            ("mean", Readout("mean")),
            ("out", Output((10,))),
        ]
    )


def audio_graph(rng) -> Graph:
    w1 = (rng.standard_normal((32, 40)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((12, 32)) * 0.3).astype(np.float32)
    return Graph.chain(
        [
            ("in", Input((40,))),
            ("fc1", Dense(w1, np.full(32, 0.5, np.float32))),
            ("lif", LIF(0.9, 1.0)),
            ("fc2", Dense(w2, None)),
            ("sum", Readout("sum")),
            ("out", Output((12,))),
        ]
    )


@pytest.fixture
def models_dir(tmp_path, rng):
    folder = tmp_path / "models"
    folder.mkdir()
    save_model(
        folder / "tiny-events.esp",
        event_graph(rng),
        {
            "task": "classify-events",
            "labels": LABELS,
            "time_steps": 15,
            "sensor_size": [34, 34, 2],
            "frontend": {"kind": "count-frames", "window_us": WINDOW_US, "layout": "TPHW"},
        },
    )
    save_model(
        folder / "tiny-kws.esp",
        audio_graph(rng),
        {
            "task": "kws",
            "labels": [f"w{i}" for i in range(12)],
            "sample_rate_hz": 16000,
            "frontend": {"kind": "logmel", "n_mels": 40},
            "predict_every_frames": 10,
        },
    )
    return folder
