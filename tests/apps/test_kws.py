"""Keyword spotting: streaming log-mel -> hybrid-spiking LMU -> smoothed posteriors -> events."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventsp.apps.kws import (
    DEFAULT_MODEL,
    KeywordSpotter,
    KWSConfig,
    frames_seen,
    speaker_of,
    speaker_split,
)
from eventsp.audio import read_audio
from eventsp.cli import main as cli_main
from eventsp.train.lmu.kws_data import KWS_LABELS

SPEECH = "speech/speech_commands_v2_test_dev"


@pytest.fixture(scope="module")
def spotter() -> KeywordSpotter:
    return KeywordSpotter()


@pytest.fixture(scope="module")
def test_clips(data_root) -> list[tuple[str, np.ndarray, str]]:
    """Every 4th clip of the TEST speakers (never used for training or model selection)."""
    clips = []
    for label in KWS_LABELS:
        files = sorted((data_root / SPEECH / label).glob("*.flac"))
        held_out = [f for f in files if speaker_split(speaker_of(f)) == "test"]
        for path in held_out[::4]:
            signal, _ = read_audio(path, 16000)
            clips.append((label, signal, str(path)))
    return clips


def test_bundled_model_is_a_12_class_spiking_lmu(spotter):
    assert spotter.labels == KWS_LABELS
    assert spotter.metadata["task"] == "kws"
    assert spotter.metadata["lmu"]["dt"] is not None
    types = {type(n).__name__ for n in spotter.network.graph.nodes.values()}
    assert {"LMUMemory", "MultiSpike", "Readout"} <= types
    assert DEFAULT_MODEL.is_file()


def test_chunk_size_does_not_change_the_stream(spotter, test_clips):
    signal = np.concatenate([test_clips[0][1], test_clips[-40][1]])
    results = []
    for size in (160, 1013, len(signal)):
        state = spotter.init_state()
        posteriors, events = [], []
        for i in range(0, len(signal), size):
            closed, post, state = spotter.step(signal[i : i + size], state)
            posteriors.append(post)
            events += closed
        results.append((np.concatenate(posteriors), events + spotter.finish(state)[0]))
    for post, events in results[1:]:
        np.testing.assert_allclose(post, results[0][0], rtol=1e-6, atol=1e-9)
        assert events == results[0][1]
    assert len(results[0][0]) == (1 + (len(signal) - 400) // 160) // spotter.stack


def _stacked_model(path, smoothed: bool, memory2: bool = False):
    """A random 2-frame-stacked hybrid LMU written as a kws model file (``memory2``: a stacked
    LMU with a short first memory and a clip-long second one)."""
    import torch

    from eventsp.audio import LogMelConfig
    from eventsp.train.lmu.export import export_model
    from eventsp.train.lmu.model import HybridLMU, LMUConfig

    torch.manual_seed(0)
    config = LMUConfig(input_size=80, memory_d=3, order=6, theta=49.0, hidden=16, classes=12)
    two = {"theta": 6.0, "hidden2": 8, "memory2_d": 2, "order2": 4, "theta2": 49.0}
    model = HybridLMU(LMUConfig(**{**config.__dict__, "steps": 49, **(two if memory2 else {})}))
    meta = {
        "task": "kws",
        "labels": list(KWS_LABELS),
        "sample_rate_hz": 16000,
        "frontend": {"kind": "logmel", **LogMelConfig().to_dict()},
        "frame_stack": 2,
        "smooth_frames": 7,
        "clip_decision": "smoothed" if smoothed else "last",
    }
    mean, std = np.full(80, -5.0), np.full(80, 3.0)
    export_model(path, model, 1.0, meta, input_mean=mean, input_std=std)
    return path


def test_stacked_model_runs_every_second_frame_at_any_chunking(tmp_path):
    from eventsp.audio import LogMelConfig, logmel_batch
    from eventsp.train.lmu.kws_data import stack_frames

    spotter = KeywordSpotter(_stacked_model(tmp_path / "stacked.esp", smoothed=True))
    assert spotter.stack == 2
    assert spotter.smooth_frames == 7
    signal = (np.random.default_rng(5).normal(size=21000) * 0.05).astype(np.float32)
    frames = 1 + (len(signal) - 400) // 160  # 129: the last frame waits for its pair
    outs = []
    for size in (160, 1013, len(signal)):
        state = spotter.init_state()
        posteriors = []
        for i in range(0, len(signal), size):
            _, post, state = spotter.step(signal[i : i + size], state)
            posteriors.append(post)
        outs.append(np.concatenate(posteriors))
        assert frames_seen(state) == frames
        assert int(state.held[0]) == 1
    for post in outs[1:]:
        np.testing.assert_allclose(post, outs[0], rtol=1e-6, atol=1e-9)
    assert len(outs[0]) == frames // 2
    # the same as the network on the offline features, stacked in pairs
    feats = stack_frames(logmel_batch(signal[None], LogMelConfig()), 2)[0]
    logits, _ = spotter.network.run(feats[:, None], spotter.network.init_state(1))
    p = np.exp(logits[:, 0] - logits[:, 0].max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    smoothed = np.stack([p[max(0, t - 6) : t + 1].mean(axis=0) for t in range(len(p))])
    np.testing.assert_allclose(outs[0], smoothed, rtol=1e-5, atol=1e-7)
    # a short clip's answer is the last smoothed posterior (metadata clip_decision)
    result = spotter.classify(signal)
    assert result.frames == frames
    assert result.score == pytest.approx(smoothed[-1].max())
    assert result.label == KWS_LABELS[int(smoothed[-1].argmax())]
    last = KeywordSpotter(_stacked_model(tmp_path / "last.esp", smoothed=False))
    assert last.classify(signal).score == pytest.approx(p[-1].max(), rel=1e-5)


def test_a_stacked_lmu_answers_a_clip_over_its_longer_second_memory(tmp_path):
    spotter = KeywordSpotter(_stacked_model(tmp_path / "two.esp", smoothed=True, memory2=True))
    assert spotter.network.graph.nodes["memory2"].theta == 49.0
    # the clip window is the second memory's 49 steps of 2 hops, not the first memory's 6
    assert spotter.window_s == pytest.approx(49 * 2 * 0.01)
    signal = (np.random.default_rng(6).normal(size=16000) * 0.05).astype(np.float32)
    result = spotter.classify(signal)  # one second: a clip, answered by its clip posterior
    _, state = spotter.stream([signal])
    posterior = spotter.clip_posterior(state)
    assert result.label == KWS_LABELS[int(posterior.argmax())]
    assert result.score == pytest.approx(float(posterior.max()))


def test_accuracy_on_unseen_speakers_is_far_above_chance(spotter, test_clips):
    correct = sum(spotter.classify(signal).label == label for label, signal, _ in test_clips)
    accuracy = correct / len(test_clips)
    assert len(test_clips) > 100
    # 12 classes: chance is 1/12. The bundled model measured 0.845 on all 511 test-speaker clips.
    assert accuracy > 0.7, f"accuracy {accuracy:.3f} on {len(test_clips)} unseen-speaker clips"


def test_keywords_in_a_continuous_stream_come_out_in_order(spotter, test_clips):
    # the first held-out clips of "yes" and "stop" that the model detects alone (how many it
    # detects is kws_measure's hit rate); here: their events in one stream, in order, in time
    gap = np.zeros(16000, np.float32)
    picked = []
    for word in ("yes", "stop"):
        for label, signal, _ in test_clips:
            alone = spotter.classify(np.concatenate([gap, signal, gap])).events
            if label == word and word in [e.keyword for e in alone]:
                picked.append(signal)
                break
    assert len(picked) == 2, "the model detects no held-out clip of 'yes' or 'stop'"
    stream = np.concatenate([gap, picked[0], gap, gap, picked[1], gap])
    result = spotter.classify(stream)
    keywords = [e.keyword for e in result.events]
    assert "yes" in keywords
    assert "stop" in keywords
    first_yes = next(e for e in result.events if e.keyword == "yes")
    first_stop = next(e for e in result.events if e.keyword == "stop")
    assert first_yes.start_s < first_stop.start_s
    # each event lies near its clip: yes in [1, 2] s, stop in [4, 5] s (one window of slack)
    assert 0.0 <= first_yes.start_s <= 2.5
    assert 3.0 <= first_stop.start_s <= 5.5
    for event in result.events:
        assert event.start_s <= event.end_s
        assert spotter.config.threshold <= event.score <= 1.0


def test_cli_prints_one_json_line_per_file(data_root, capsys):
    files = [
        data_root / "speech" / "micro_speech" / "yes_1000ms.wav",
        data_root / SPEECH / "stop" / sorted((data_root / SPEECH / "stop").glob("*"))[0].name,
    ]
    assert cli_main(["kws", "--json", *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, files, strict=True):
        record = json.loads(line)
        assert record["file"] == str(path)
        assert record["label"] in KWS_LABELS
        assert 0.0 < record["score"] <= 1.0
        assert isinstance(record["events"], list)
        assert record["synops_per_s"] > 0


def test_cli_errors_are_usage_errors(tmp_path, capsys):
    assert cli_main(["kws", "--model", str(tmp_path / "none.esp"), "x.wav"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["kws", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav" in capsys.readouterr().err


def test_config_is_validated():
    with pytest.raises(ValueError, match="smooth_frames is 0"):
        KWSConfig(smooth_frames=0)
    with pytest.raises(ValueError, match=r"release 0\.9 and threshold 0\.5"):
        KWSConfig(threshold=0.5, release=0.9)
