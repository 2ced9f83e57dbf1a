"""eventsp.apps.classify_events and `eventsp classify-events`: windows, decisions, bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventsp.apps.classify_events import (
    DEFAULT_MODEL,
    EventClassifier,
    classify_recording,
    init_window,
    recording_frames,
    window_flush,
    window_step,
)
from eventsp.cli import main
from eventsp.events import EVENT_DTYPE, read_events
from eventsp.model.format import save_model
from eventsp.model.graph import Dense, Flatten, Graph, Input, Output, Readout

SENSOR = (34, 34, 2)


def naive_frames(events: np.ndarray, window_us: int) -> np.ndarray:
    """Plainly correct reference: loop over events, window k = (t - t_first) // window_us."""
    if len(events) == 0:
        return np.zeros((0, 2, 34, 34), np.float32)
    t0 = int(events["t"][0])
    n = (int(events["t"][-1]) - t0) // window_us + 1
    out = np.zeros((n, 2, 34, 34), np.float32)
    for e in events:
        out[(int(e["t"]) - t0) // window_us, int(e["p"]), e["y"], e["x"]] += 1
    return out


def _random_events(rng: np.random.Generator, n: int, span_us: int) -> np.ndarray:
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, 34, n), rng.integers(0, 34, n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = np.sort(rng.integers(1_000, 1_000 + span_us, n))
    return ev


def test_streamed_windows_equal_whole_recording_at_any_cuts(rng, data_root):
    real = read_events(data_root / "nmnist_small" / "train" / "00001.bin")[0].events
    for events in (real, _random_events(rng, 3000, 250_000)):
        whole = recording_frames(events, SENSOR, 30_000)
        np.testing.assert_array_equal(whole, naive_frames(events, 30_000))
        for _ in range(5):
            cuts = np.sort(rng.integers(0, len(events), size=rng.integers(1, 40)))
            state, got = init_window(SENSOR), []
            for packet in np.split(events, cuts):
                frames, state = window_step(packet, state, 30_000)
                got.append(frames)
            got.append(window_flush(state))
            np.testing.assert_array_equal(np.concatenate(got), whole)
    # Truncation and padding to a fixed number of windows.
    assert recording_frames(real, SENSOR, 30_000, 4).shape == (4, 2, 34, 34)
    padded = recording_frames(real, SENSOR, 100_000, 6)
    assert padded.shape == (6, 2, 34, 34)
    assert padded[4:].sum() == 0
    assert padded.sum() == len(real)


def test_windowing_edge_cases():
    state = init_window(SENSOR)
    frames, state = window_step(np.zeros(0, EVENT_DTYPE), state, 1000)
    assert frames.shape == (0, 2, 34, 34)
    assert window_flush(state).shape == (0, 2, 34, 34)
    ev = _random_events(np.random.default_rng(0), 10, 5000)
    with pytest.raises(ValueError, match="not sorted"):
        window_step(ev[::-1], init_window(SENSOR), 1000)
    with pytest.raises(ValueError, match="window_us"):
        window_step(ev, init_window(SENSOR), 0)
    _, state = window_step(ev[5:], init_window(SENSOR), 1000)
    with pytest.raises(ValueError, match="before the open window"):
        window_step(ev[:1], state, 1000)


def _vote_model(path, time_steps: int = 10) -> None:
    """Logit 3 counts ON events, logit 5 counts OFF events (x 0.05); mean readout."""
    w = np.zeros((10, 2 * 34 * 34), np.float32)
    w[3, 34 * 34 :] = 0.05
    w[5, : 34 * 34] = 0.05
    graph = Graph.chain(
        [
            ("input", Input(shape=(2, 34, 34))),
            ("flatten", Flatten()),
            ("fc", Dense(weight=w)),
            ("readout", Readout(mode="mean")),
            ("output", Output(shape=(10,))),
        ]
    )
    meta = {
        "task": "classify-events",
        "labels": [f"class{i}" for i in range(10)],
        "time_steps": time_steps,
        "sensor_size": [34, 34, 2],
        "frontend": {"kind": "count-frames", "window_us": 10_000, "layout": "TPHW"},
    }
    save_model(path, graph, meta)


def _stream(on_windows: int, off_windows: int, per_window: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    parts = []
    for k in range(on_windows + off_windows):
        ev = _random_events(rng, per_window, 9_000)
        ev["t"] += k * 10_000 - 1_000
        ev["p"] = k < on_windows
        parts.append(ev)
    parts[0]["t"][0] = 0  # windows then start at 0: window k holds [10k, 10k + 10) ms
    return np.concatenate(parts)


def test_early_answer_rule_and_final_answer(tmp_path):
    path = tmp_path / "vote.esp"
    _vote_model(path)
    clf = EventClassifier(path, confidence=0.95, min_windows=3)
    # 200 ON events per window: logit 3 = 10 per window, far above the rest.
    final, early = clf.classify([_stream(10, 0, 200)])
    assert early is not None
    assert early.early
    assert (early.label, early.windows, early.decided_at_us) == ("class3", 3, 30_000)
    assert (final.label, final.windows, final.decided_at_us) == ("class3", 10, 100_000)
    assert final.confidence > 0.99
    # Weak evidence (1 event per window): never confident, answer only at the end.
    final, early = clf.classify([_stream(4, 0, 1)])
    assert early is None
    assert final.label == "class3"
    assert final.decided_at_us == 40_000
    # Evidence that turns: early answer 3, then OFF events win the final answer.
    final, early = clf.classify([_stream(3, 7, 200)])
    assert early.label == "class3"
    assert final.label == "class5"
    # Only time_steps windows count: extra OFF windows after window 10 change nothing.
    long_final, _ = clf.classify([_stream(10, 5, 200)])
    assert long_final.label == "class3"
    assert long_final.windows == 10


def test_live_packets_give_the_same_answer_as_the_file(data_root, rng):
    path = data_root / "nmnist_small" / "train" / "00002.bin"
    clf = EventClassifier(DEFAULT_MODEL)
    final, early = classify_recording(path, clf)
    events = read_events(path)[0].events
    cuts = np.sort(rng.integers(0, len(events), size=25))
    state = clf.init_state()
    for packet in np.split(events, cuts):
        state = clf.feed(packet, state)
    live_final, live_early, state = clf.finish(state)
    assert live_final == final
    assert live_early == early
    assert clf.counters(state)[0]["steps"] == final.windows


def test_bundled_model_on_held_out_recordings(data_root):
    from eventsp.model.format import load_model

    meta = load_model(DEFAULT_MODEL).metadata
    assert meta["task"] == "classify-events"
    assert meta["time_steps"] <= 10
    assert DEFAULT_MODEL.stat().st_size < 4 * 2**20
    # The held-out test split of eventsp.train.data.events (never trained on or selected with).
    from eventsp.train.data.events import nmnist_small_split  # numpy-only module

    split = nmnist_small_split(data_root / "nmnist_small" / "train")
    held_out = split["test"][:60]
    clf = EventClassifier(DEFAULT_MODEL)
    right = sum(classify_recording(p, clf)[0].label == str(y) for p, y in held_out)
    assert right / len(held_out) >= 0.9, right


def test_cli_prints_one_json_line_per_recording(data_root, capsys, tmp_path):
    files = [data_root / "nmnist_small" / "train" / f"0000{i}.bin" for i in (1, 2)]
    assert main(["classify-events", *map(str, files), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, f in zip(lines, files, strict=True):
        record = json.loads(line)
        assert record["file"] == str(f)
        assert record["label"] in [str(d) for d in range(10)]
        assert 0.0 < record["confidence"] <= 1.0
        assert 0 < record["decided_at_us"] <= 300_000
    assert main(["classify-events", str(files[0]), "--model", str(tmp_path / "no.esp")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["classify-events", str(tmp_path / "none.bin")]) == 2


def test_frames_equal_the_event_encoder_on_real_recordings(data_root):
    """The classifier's windows are eventsp.events' count frames (tonic's ToFrame windows)."""
    from eventsp.events.encoders import FrameEncoder

    encoder = FrameEncoder(SENSOR, time_window_us=30_000, include_incomplete=True)
    for name in ("00001.bin", "00050.bin", "00999.bin"):
        events = read_events(data_root / "nmnist_small" / "train" / name)[0].events
        np.testing.assert_array_equal(
            recording_frames(events, SENSOR, 30_000), encoder.encode(events)
        )
