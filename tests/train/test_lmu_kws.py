"""The keyword-spotting LMU trainer: speaker split, augmentation, a tiny end-to-end run."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from eventsp.apps.kws import KeywordSpotter, speaker_of, speaker_split
from eventsp.runtime import Network
from eventsp.train.lmu.export import export_model
from eventsp.train.lmu.kws import main
from eventsp.train.lmu.kws_data import (
    KWS_LABELS,
    SpeechSet,
    augment,
    limit_sets,
    load_v1_subset,
    mix_clips,
    spec_augment,
    stack_frames,
)
from eventsp.train.lmu.model import HybridLMU, LMUConfig
from eventsp.train.lmu.quantizer import quantize_sequential


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


def test_forward_frames_equals_the_fft_path_and_the_last_readout(rng):
    config = LMUConfig(input_size=5, memory_d=3, order=6, theta=20.0, hidden=7, classes=4)
    model = HybridLMU(replace(config, steps=20)).double()
    x = torch.from_numpy(rng.normal(size=(3, 20, 5)))
    every = model.output(torch.relu(model._hidden_input_all(x)))  # FFT form, every step
    frames = model.forward_frames(x, None, 8)
    assert frames.shape == (3, 8, 4)
    torch.testing.assert_close(frames, every[:, -8:], rtol=0, atol=1e-12)
    torch.testing.assert_close(frames[:, -1], model(x, None), rtol=0, atol=1e-12)
    torch.testing.assert_close(model(x, None, frames=8), frames)
    with pytest.raises(ValueError, match="frames is 21"):
        model.forward_frames(x, None, 21)


def test_forward_frames_spiking_is_the_sequential_quantizer_from_a_random_residual(rng):
    config = LMUConfig(input_size=4, memory_d=2, order=5, theta=16.0, hidden=6, classes=3)
    model = HybridLMU(replace(config, steps=16)).double()
    x = torch.from_numpy(rng.normal(size=(2, 16, 4)))
    logits = model.forward_frames(x, 2.0, 16, generator=torch.Generator().manual_seed(3))
    v0 = torch.rand((2, 6), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = torch.relu(model._hidden_input_all(x))
    counts, _ = quantize_sequential(a, 2.0, v0.clone(), dim=1)
    torch.testing.assert_close(logits, model.output(counts / 2.0), rtol=0, atol=1e-12)
    assert counts.abs().sum() > 0


@pytest.mark.parametrize("memory2_d", [0, 3])
@pytest.mark.parametrize("hidden3", [0, 5])
@pytest.mark.parametrize("dt", [1.0, None])
def test_deeper_layers_train_simulate_and_export_the_same_network(
    dt, hidden3, memory2_d, rng, tmp_path
):
    config = LMUConfig(input_size=6, memory_d=2, order=5, theta=24.0, hidden=9, classes=4)
    torch.manual_seed(2)
    stacked = {"memory2_d": memory2_d, "order2": 4, "theta2": 6.0}  # a short second memory
    model = HybridLMU(replace(config, steps=24, hidden2=7, hidden3=hidden3, **stacked))
    assert len(model.deeper_layers()) == 1 + (hidden3 > 0)
    x = torch.from_numpy(rng.normal(size=(3, 24, 6)).astype(np.float32) * 2)
    logits, counts = model.simulate(x, dt, all_frames=True)
    assert counts.shape == (3, 24, 9 + 7 + hidden3)
    if dt is None:  # the training forms are the simulation without the quantizers
        torch.testing.assert_close(model.forward_frames(x, None, 24), logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x, None), logits[:, -1], rtol=1e-4, atol=1e-5)
    else:
        assert model.forward_frames(x, dt, 5, generator=torch.Generator()).shape == (3, 5, 4)
    net = Network.from_file(export_model(tmp_path / "two.esp", model, dt, {"labels": list("abcd")}))
    assert {"hidden2", "relu2"} <= set(net.graph.nodes)
    assert ("spikes2" in net.graph.nodes) == (dt is not None)
    assert ("hidden3" in net.graph.nodes) == (hidden3 > 0)
    assert ("spikes3" in net.graph.nodes) == (dt is not None and hidden3 > 0)
    assert ("memory2" in net.graph.nodes) == (memory2_d > 0)
    outs, state = net.run(np.ascontiguousarray(x.numpy().transpose(1, 0, 2)), net.init_state(3))
    np.testing.assert_allclose(outs[-1], logits[:, -1].numpy(), rtol=1e-4, atol=1e-5)
    if dt is not None:
        spikes = [sum(c["spikes"].values()) for c in net.counters(state)]
        np.testing.assert_array_equal(spikes, counts.abs().sum((1, 2)).numpy())
    with pytest.raises(ValueError, match="hidden2 is -1"):
        replace(config, hidden2=-1)
    with pytest.raises(ValueError, match="hidden3 is 3 but hidden2 is 0"):
        replace(config, hidden3=3)
    with pytest.raises(ValueError, match="memory2_d is 2 but hidden2 is 0"):
        replace(config, memory2_d=2)
    with pytest.raises(ValueError, match="order2 is 0"):
        replace(config, hidden2=3, memory2_d=2, order2=0)


def test_stack_frames_puts_consecutive_frames_side_by_side():
    x = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
    out = stack_frames(x, 2)
    assert out.shape == (2, 3, 6)
    np.testing.assert_array_equal(out[1, 2], np.concatenate([x[1, 4], x[1, 5]]))
    np.testing.assert_array_equal(stack_frames(x, 1), x)
    with pytest.raises(ValueError, match="stack is 0"):
        stack_frames(x, 0)


def test_spec_augment_zeros_whole_bands_and_spans():
    x = torch.ones(4, 30, 12)
    out = spec_augment(x, torch.Generator().manual_seed(0), freq_width=3, time_width=5)
    assert out.shape == x.shape
    assert torch.all((out == 0) | (out == 1))
    for example in out:
        zero_bands = (example == 0).all(dim=0).sum()
        zero_frames = (example == 0).all(dim=1).sum()
        assert zero_bands <= 2 * 3
        assert zero_frames <= 2 * 5
        # a zero is always inside a masked band or a masked frame span
        masked = (example == 0).all(dim=0)[None, :] | (example == 0).all(dim=1)[:, None]
        assert torch.equal(example == 0, masked)
    assert (out == 0).any()
    np.testing.assert_array_equal(x.numpy(), np.ones((4, 30, 12)))  # input unchanged


def test_mix_clips_adds_a_quieter_clip_to_some():
    audio = np.zeros((50, 100), np.float32)
    audio[:, 10] = 1.0
    pool = np.full((3, 100), 0.5, np.float32)
    out = mix_clips(audio, pool, 0.5, np.random.default_rng(0))
    changed = np.any(out != audio, axis=1)
    assert 10 < changed.sum() < 40
    own_rms = np.sqrt(np.mean(audio**2, axis=1))
    added = out - audio
    added_rms = np.sqrt(np.mean(added**2, axis=1))
    assert np.all(added_rms[changed] <= own_rms[changed] * 10 ** (-10 / 20) + 1e-6)
    assert np.all(added_rms[changed] >= own_rms[changed] * 10 ** (-25 / 20) - 1e-6)
    np.testing.assert_array_equal(mix_clips(audio, pool, 0.0, np.random.default_rng(0)), audio)
    with pytest.raises(ValueError, match=r"1\.5"):
        mix_clips(audio, pool, 1.5, np.random.default_rng(0))


def test_v1_subset_keeps_only_training_speakers(data_root):
    root = data_root / "speech" / "speech_commands_v1_subset"
    audio, labels, files = load_v1_subset(root, KWS_LABELS)
    assert len(files) == len(labels) == len(audio) > 100
    assert audio.shape[1] == 16000
    assert audio.dtype == np.float32
    assert all(speaker_split(speaker_of(Path(f))) == "train" for f in files)
    for f, y in zip(files, labels, strict=True):
        word = Path(f).parent.name
        assert KWS_LABELS[y] == (word if word in KWS_LABELS else "_unknown_")
    everyone = list(root.glob("*/*.wav"))
    assert len(files) < len(everyone)  # validation and test speakers were left out
    empty = load_v1_subset(data_root / "no-such-folder", KWS_LABELS)
    assert empty[0].shape == (0, 16000)
    # keep= chooses other speakers: every clip, or none
    all_audio, _, all_files = load_v1_subset(root, KWS_LABELS, keep=lambda _: True)
    assert sorted(all_files) == sorted(str(p) for p in everyone)
    assert all_audio.shape == (len(everyone), 16000)
    assert load_v1_subset(root, KWS_LABELS, keep=lambda _: False)[0].shape == (0, 16000)


def test_limit_sets_keeps_files_with_their_clips():
    audio = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    files = tuple(f"clip{i}.flac" for i in range(10))
    limited = limit_sets({"train": SpeechSet(audio, np.arange(10), files)}, 3)["train"]
    assert limited.files == ("clip0.flac", "clip3.flac", "clip6.flac")
    np.testing.assert_array_equal(limited.labels, [0, 3, 6])
    np.testing.assert_array_equal(limited.audio[:, 0], [0, 3, 6])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_synthesised_clips_are_one_second_words(tmp_path):
    from eventsp.train.lmu.kws_synth import load_synth
    from eventsp.train.lmu.kws_synth import main as synth

    assert synth(["--out", str(tmp_path), "--per-keyword", "1", "--unknown", "2"]) == 0
    data = load_synth(tmp_path)
    assert data["audio"].shape == (12, 16000)
    assert data["labels"].tolist() == [*range(10), 10, 10]
    assert list(data["words"][:10]) == list(KWS_LABELS[:10])
    peaks = np.abs(data["audio"]).max(axis=1)
    assert np.all((peaks > 0.04) & (peaks < 0.95))
    # the word sits inside the clip: the first and last 400 samples are silent
    assert np.all(data["audio"][:, :400] == 0)
    assert np.all(data["audio"][:, -400:] == 0)
    with pytest.raises(FileNotFoundError, match="kws_synth"):
        load_synth(tmp_path / "none")


@pytest.mark.slow
def test_tiny_training_run_exports_a_working_keyword_model(data_root, tmp_path, capsys):
    run = tmp_path / "kws"
    common = ["--data", str(data_root), "--epochs", "2", "--limit", "36", "--no-progress"]
    common += ["--memory-d", "2", "--order", "6", "--hidden", "8", "--threads", "1"]
    common += ["--frames", "5", "--mix-prob", "0.5", "--spec-augment"]
    first = ["--run-dir", str(run), "--test", "--clip-decision", "smoothed", "--stack", "2"]
    first += ["--smooth-frames", "7"]  # not the application's fallback (20)
    # --anneal-until 0.4: both epochs run at the final dt, so both enter the average
    first += ["--average-last", "2", "--hidden2", "5", "--hidden3", "4", "--anneal-until", "0.4"]
    assert main([*common, *first]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [r["averaged_epochs"] for r in lines if "averaged_epochs" in r] == [2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["clips_v1_subset"] > 100
    spotter = KeywordSpotter(run / "kws_lmu.esp")
    assert spotter.clip_decision == "smoothed"
    assert spotter.stack == 2
    assert spotter.smooth_frames == 7  # the trainer's --smooth-frames, from the metadata
    assert spotter.network.input_shape == (80,)
    assert spotter.classify(np.zeros(16000, np.float32)).frames == 98
    meta = spotter.metadata
    assert (
        meta["accuracy"]["test_spiking_unseen_speakers"] == summary["test_spiking_unseen_speakers"]
    )
    # the chosen checkpoint re-exported without training: same weights, same validation
    again_args = [*common, *first[2:], "--init", str(run / "best.pt"), "--epochs", "0"]
    assert main([*again_args, "--run-dir", str(tmp_path / "export")]) == 0
    exported = json.loads((tmp_path / "export" / "summary.json").read_text())
    assert exported["val_spiking_smooth"] == summary["val_spiking_smooth"]
    assert exported["test_spiking_unseen_speakers"] == summary["test_spiking_unseen_speakers"]
    provenance = KeywordSpotter(tmp_path / "export" / "kws_lmu.esp").metadata["provenance"]
    chosen = torch.load(run / "best.pt", weights_only=True)["epoch"]
    assert provenance["init_epoch"] == chosen
    # without --test the test split is not evaluated at all
    again = tmp_path / "again"
    stacked = ["--hidden2", "4", "--memory2-d", "2", "--order2", "3", "--theta2", "12"]
    flags = ["--run-dir", str(again), "--no-v1-subset", "--no-input-to-hidden", *stacked]
    assert main([*common, *flags]) == 0
    nodes = KeywordSpotter(again / "kws_lmu.esp").network.graph.nodes
    assert "input_to_hidden" not in nodes
    assert nodes["memory2"].order == 3
    assert nodes["memory2"].theta == 12.0
    summary = json.loads((again / "summary.json").read_text())
    assert "test_spiking_unseen_speakers" not in summary
    assert summary["clips_v1_subset"] == 0
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
    hits = [line["hit_rate"] for line in lines[1:4]]
    assert hits == sorted(hits, reverse=True)  # nor detections
    assert 0.5 < hits[0] <= 1.0  # keywords between seconds of silence are mostly detected
    # every keyword clip of the test speakers: all clips but _unknown_ and _silence_
    assert lines[0]["test_clips"] - 100 < lines[1]["keyword_clips"] < lines[0]["test_clips"]
    assert lines[4]["rtf_cpu"] > 0
    assert measure(["--data", str(data_root), "--split", "val"]) == 0
    val = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "test_clips" not in val[0]
    assert 400 < val[0]["val_clips"] < lines[0]["test_clips"] + 100
    # the false-alarm stream holds the validation speakers' negatives only: a shorter stream
    assert val[1]["stream_s"] < lines[1]["stream_s"]
