"""The keyword-spotting LMU trainer: speaker split, augmentation, a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eventsp.apps.kws import KeywordSpotter
from eventsp.train.lmu.kws import KWS_LABELS, augment, main, speaker_of, speaker_split


def test_speaker_is_the_hash_before_nohash():
    assert speaker_of(Path("yes/0bac8a71_nohash_0.flac")) == "0bac8a71"
    assert speaker_of(Path("_unknown_/backward_0cb74144_nohash_2.flac")) == "0cb74144"
    assert speaker_of(Path("_silence_/1024.flac")) == "1024"


def test_speaker_split_keeps_each_speaker_in_one_split(data_root):
    root = data_root / "speech" / "speech_commands_v2_test_dev"
    where: dict[str, set[str]] = {}
    for label in KWS_LABELS:
        for path in (root / label).glob("*.flac"):
            where.setdefault(speaker_of(path), set()).add(speaker_split(speaker_of(path)))
    assert all(len(splits) == 1 for splits in where.values())
    counts = {s: sum(next(iter(v)) == s for v in where.values()) for s in ("train", "val", "test")}
    assert counts["train"] > counts["val"] > 0
    assert counts["test"] > 0


def test_augment_shifts_scales_and_adds_noise_reproducibly(rng):
    clips = np.zeros((3, 16000), np.float32)
    clips[:, 8000] = 1.0
    noise = np.full((2, 16000), 0.01, np.float32)
    a = augment(clips, noise, np.random.default_rng(1))
    b = augment(clips, noise, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == clips.shape
    peaks = np.abs(a).argmax(axis=1)
    assert np.all(np.abs(peaks - 8000) <= 1600)  # shifted by at most 100 ms
    assert np.all(np.abs(a).max(axis=1) <= 10 ** (6 / 20) + 0.01 * 0.5 + 1e-6)


@pytest.mark.slow
def test_tiny_training_run_exports_a_working_keyword_model(data_root, tmp_path):
    run = tmp_path / "kws"
    args = ["--data", str(data_root), "--run-dir", str(run), "--epochs", "2", "--limit", "36"]
    args += ["--memory-d", "2", "--order", "6", "--hidden", "8", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["test_acc_spiking"] <= 1.0
    spotter = KeywordSpotter(run / "kws_lmu.esp")
    assert spotter.labels == KWS_LABELS
    assert spotter.metadata["frontend"]["kind"] == "logmel"
    result = spotter.classify(np.zeros(16000, np.float32))
    assert result.label in KWS_LABELS
    assert result.frames == 98


@pytest.mark.slow
def test_measure_reports_accuracy_false_alarms_and_rtf(data_root, capsys):
    from eventsp.train.lmu.kws_measure import main as measure

    assert measure(["--data", str(data_root)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["test_clips"] > 400
    assert 1 / 12 < lines[0]["accuracy"] <= 1.0
    assert lines[0]["synops_per_s"] > 0
    alarms = [line["false_alarms"] for line in lines[1:4]]
    assert alarms == sorted(alarms, reverse=True)  # a higher threshold never adds alarms
    assert lines[4]["rtf_cpu"] > 0
