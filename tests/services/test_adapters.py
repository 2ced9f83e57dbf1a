"""Served models on the real runtime: tiny model files, real recordings, parity with the apps.

The tiny models (random weights, ``models_dir`` fixture in conftest) exist only in tmp_path.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from eventsp.apps.classify_events import EventClassifier
from eventsp.apps.kws import KeywordSpotter
from eventsp.audio import LogMelConfig, logmel, read_audio
from eventsp.clients.client import Client
from eventsp.events import init_order, open_recording, order_packet
from eventsp.model.format import load_model, save_model
from eventsp.runtime import Network
from eventsp.services.adapters import AudioClassifierTask, task_from_file
from eventsp.services.config import ServerConfig


def test_models_load_from_a_folder_and_describe_themselves(start_server, models_dir):
    running = start_server(ServerConfig(models_dir=models_dir))
    with Client(running.address) as client:
        client.wait_serving()
        models = {m.name: m for m in client.list_models()}
    assert sorted(models) == ["tiny-events", "tiny-kws"]
    assert models["tiny-events"].task == "classify-events"
    assert list(models["tiny-events"].sensor_size) == [34, 34, 2]
    assert models["tiny-kws"].sample_rate_hz == 16000
    assert models["tiny-kws"].parameter_bytes == (32 * 40 + 32 + 12 * 32) * 4
    assert models["tiny-events"].format_version >= 1


def test_streamed_events_match_the_application(start_server, models_dir, data_root):
    path = sorted((data_root / "nmnist_small" / "train").rglob("*.bin"))[3]
    recording = open_recording(path, chunk_events=700)
    order = init_order()
    packets = []
    for packet in recording.packets():
        ordered, order = order_packet(packet, order)
        packets.append(ordered)
    expected, _ = EventClassifier(models_dir / "tiny-events.esp").classify(packets)

    running = start_server(ServerConfig(models_dir=models_dir))
    with Client(running.address) as client:
        client.wait_serving()
        responses = list(client.stream_events(packets, sensor_size=(34, 34, 2)))
        metrics = client.metrics()
    predictions = [p for r in responses for p in r.predictions]
    final = predictions[-1]
    assert final.final
    assert final.label == expected.label
    np.testing.assert_allclose(final.scores, expected.probabilities, rtol=1e-5)
    # Evidence was reported as it accumulated, one window after another.
    times = [p.time_s for p in predictions[:-1]]
    assert len(times) >= 3
    assert times == sorted(times)
    assert responses[-1].events_total == sum(len(p) for p in packets)
    dense_per_window = 10 * 2 * 34 * 34
    assert metrics.dense_ops_total >= dense_per_window * min(15, len(times))
    assert 0 < metrics.synops_total <= metrics.dense_ops_total + 10 * 15


def test_streamed_keywords_match_the_application(start_server, models_dir, data_root):
    path = data_root / "speech" / "micro_speech" / "yes_1000ms.wav"
    samples, rate = read_audio(path, 16000)
    chunks = np.array_split(samples, 37)  # ragged chunk sizes
    expected, state = KeywordSpotter(models_dir / "tiny-kws.esp").stream(chunks)
    assert expected, "the tiny model should fire on this clip (the test needs an event)"

    running = start_server(ServerConfig(models_dir=models_dir))
    with Client(running.address) as client:
        client.wait_serving()
        responses = list(client.stream_audio(chunks, sample_rate_hz=rate, task="kws"))
    events = [k for r in responses for k in r.keywords]
    assert [k.label for k in events] == [e.keyword for e in expected]
    assert [(k.time_s, k.end_s) for k in events] == [(e.start_s, e.end_s) for e in expected]
    assert [k.score for k in events] == pytest.approx([e.score for e in expected], rel=1e-6)
    final = responses[-1].predictions[-1]
    assert final.final
    assert final.label == max(expected, key=lambda e: e.score).keyword
    np.testing.assert_allclose(final.scores, state.last, rtol=1e-5, atol=1e-9)
    assert len(responses) == len(chunks) + 1


def test_final_answer_uses_the_models_clip_decision(models_dir, data_root, tmp_path):
    """A model trained on smoothed posteriors ("clip_decision": "smoothed") is answered by the
    smoothed posterior at the end of the stream, as ``KeywordSpotter.classify`` answers it."""
    model = load_model(models_dir / "tiny-kws.esp")
    path = tmp_path / "smoothed-kws.esp"
    save_model(path, model.graph, {**model.metadata, "clip_decision": "smoothed"})
    samples, _ = read_audio(data_root / "speech" / "micro_speech" / "no_1000ms.wav", 16000)
    chunks = np.array_split(samples, 7)
    spotter = KeywordSpotter(path)
    events, expected = spotter.stream(chunks)
    posterior = spotter.clip_posterior(expected)
    # The two differ here (in the small probabilities: the tiny model is nearly one-hot).
    assert not np.allclose(posterior, expected.last, rtol=1e-3, atol=0)

    task = task_from_file(path)
    state = task.open_stream()
    for chunk in chunks:
        _, state = task.push(state, chunk)
    result, state = task.finish(state)
    task.close(state)
    final = result.predictions[-1]
    assert final.final
    np.testing.assert_allclose(final.scores, posterior, rtol=1e-6, atol=0)
    # The label: the best keyword event of the stream, else the clip posterior's arg-max.
    best = max(events, key=lambda e: e.score).keyword if events else None
    assert final.label == (best or spotter.labels[int(np.argmax(posterior))])


def test_audio_classifier_fallback_matches_the_runtime_offline(models_dir, data_root):
    model = load_model(models_dir / "tiny-kws.esp")
    task = AudioClassifierTask(models_dir / "tiny-kws.esp", model.graph, model.metadata)
    samples, _ = read_audio(data_root / "speech" / "micro_speech" / "yes_1000ms.wav", 16000)
    state = task.open_stream()
    predictions = []
    for chunk in np.array_split(samples, 37):
        result, state = task.push(state, chunk)
        predictions += result.predictions
    result, state = task.finish(state)
    predictions += result.predictions
    task.close(state)

    features = logmel(samples, LogMelConfig(n_mels=40))
    net = Network(model.graph)
    outs, _ = net.run(features[:, None, :], net.init_state(1))
    assert len(predictions) == features.shape[0] // 10 + 1
    for k, p in enumerate(predictions[:-1]):
        z = outs[10 * k + 9, 0].astype(np.float64)
        probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(p.scores, probs, rtol=1e-5, atol=1e-9)
        assert p.time_s == pytest.approx((10 * k + 10) * 160 / 16000)
    assert predictions[-1].final
    assert predictions[-1].index == int(np.argmax(outs[-1, 0]))


def test_unknown_tasks_and_bad_frontends_are_refused(tmp_path, models_dir):
    graph = load_model(models_dir / "tiny-kws.esp").graph
    save_model(tmp_path / "img.esp", graph, {"task": "classify-images"})
    with pytest.raises(ValueError, match="classify-images"):
        task_from_file(tmp_path / "img.esp")
    save_model(
        tmp_path / "mfcc.esp",
        graph,
        {"task": "kws", "sample_rate_hz": 16000, "frontend": {"kind": "mfcc"}},
    )
    with pytest.raises(ValueError, match="mfcc"):
        task_from_file(tmp_path / "mfcc.esp")


def test_bundled_folder_serves_streaming_models_and_skips_image_models():
    from eventsp.services.registry import ModelRegistry, bundled_models_dir

    files = {p.stem: load_model(p).metadata["task"] for p in bundled_models_dir().glob("*.esp")}
    assert "classify-images" in files.values(), "the bundled folder should hold an image model"
    registry = ModelRegistry.from_dir(None)
    served = {task.info.name for task in registry.tasks()}
    expected = {name for name, task in files.items() if task != "classify-images"}
    assert served == expected
    assert expected, "no streaming model is bundled"


def test_skipped_image_model_is_a_warning_in_a_user_folder_only(tmp_path, models_dir, caplog):
    from eventsp.services.registry import ModelRegistry

    graph = load_model(models_dir / "tiny-kws.esp").graph
    save_model(tmp_path / "img.esp", graph, {"task": "classify-images"})
    with caplog.at_level(logging.INFO, logger="eventsp.services"):
        assert ModelRegistry.from_dir(tmp_path).tasks() == []
        ModelRegistry.from_dir(None)
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    skipped = [(level, text) for level, text in records if "not served" in text]
    assert [level for level, _ in skipped] == [logging.WARNING, logging.INFO]
    assert "img.esp" in skipped[0][1]
    assert "mnist_ptl.esp" in skipped[1][1]
