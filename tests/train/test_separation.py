"""Separation trainer: speaker-disjoint mixtures, STFT/OLA, PIT SI-SNR, export parity, tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventsp.apps.kws import speaker_of
from eventsp.apps.separate import Separator
from eventsp.apps.separate import si_snr as si_snr_db
from eventsp.model import MultiSpike
from eventsp.runtime import Network
from eventsp.train.data.mixtures import MixConfig, list_clips, load_clips, make_mixture
from eventsp.train.loop import load_checkpoint
from eventsp.train.separation.export import export_model
from eventsp.train.separation.model import (
    SeparationNet,
    SepConfig,
    multispike,
    overlap_add,
    pit_si_snr,
    si_snr,
    stft_frames,
)
from eventsp.train.separation.train import main as train_main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def splits(data_root):
    return {s: list_clips(data_root, s) for s in ("train", "val", "test")}


def test_splits_are_speaker_disjoint_and_skip_noise(splits):
    speakers = {s: {speaker_of(p) for p in paths} for s, paths in splits.items()}
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["val"]
    assert not speakers["val"] & speakers["test"]
    assert len(speakers["test"]) >= 10
    assert all(p.parent.name != "_silence_" for paths in splits.values() for p in paths)


def test_mixture_is_the_sum_of_two_speakers(splits):
    clips = load_clips(splits["test"][:60])
    config = MixConfig(gain_db=5.0)
    a = make_mixture(np.random.default_rng(5), clips, config)
    b = make_mixture(np.random.default_rng(5), clips, config)
    np.testing.assert_array_equal(a.mixture, b.mixture)  # reproducible from the seed
    np.testing.assert_allclose(a.sources.sum(axis=0), a.mixture, atol=1e-6)
    assert speaker_of(a.names[0]) != speaker_of(a.names[1])
    assert np.abs(a.mixture).max() <= config.peak + 1e-6
    same = [i for i in range(len(clips.names)) if clips.speakers[i] == clips.speakers[0]]
    if len(same) > 1:
        with pytest.raises(ValueError, match="same speaker"):
            make_mixture(np.random.default_rng(0), clips, config, pair=(same[0], same[1]))
    with pytest.raises(ValueError, match="max_offset"):
        MixConfig(max_offset=-1)


def test_noise_is_added_at_the_asked_snr(splits, data_root):
    from eventsp.train.data.mixtures import list_noise

    clips = load_clips(splits["test"][:30])
    noise = load_clips(list_noise(data_root)[:3]).audio
    assert noise.shape[0] == 3
    config = MixConfig(noise_snr_db=(10.0, 10.0))
    mix = make_mixture(np.random.default_rng(2), clips, config, noise)
    residual = mix.mixture - mix.sources.sum(axis=0)
    speech = mix.sources.sum(axis=0)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean(residual**2))
    assert snr == pytest.approx(10.0, abs=0.1)


def test_stft_overlap_add_reconstructs(rng):
    x = torch.from_numpy(rng.standard_normal((2, 4096)))
    y = overlap_add(stft_frames(x, 256, 128), 256, 128)
    np.testing.assert_allclose(y[:, 128:-128].numpy(), x[:, 128:-128].numpy(), atol=1e-9)


def test_pit_si_snr_is_permutation_invariant_and_scale_invariant(rng):
    ref = torch.from_numpy(rng.standard_normal((3, 2, 1000)))
    est = ref + 0.1 * torch.from_numpy(rng.standard_normal((3, 2, 1000)))
    a, perm_a = pit_si_snr(est, ref)
    b, perm_b = pit_si_snr(est.flip(1) * 3.0, ref)
    torch.testing.assert_close(a, b)
    assert perm_a.tolist() == [0, 0, 0]
    assert perm_b.tolist() == [1, 1, 1]
    noise = ref[:, 0] - est[:, 0]
    expected = 10 * torch.log10((ref[:, 0] ** 2).sum(-1) / (noise**2).sum(-1))
    assert torch.allclose(si_snr(est[:, 0], ref[:, 0]), expected, atol=0.05)


def test_multispike_equals_the_runtime_neuron(rng):
    from eventsp.model import Graph, Identity, Input, Output

    x = np.abs(rng.standard_normal((50, 1, 7))).astype(np.float32)
    graph = Graph(
        {
            "input": Input(shape=(7,)),
            "id": Identity(),
            "q": MultiSpike(dt=8.0),
            "output": Output(shape=(7,)),
        },
        [("input", "id"), ("id", "q"), ("q", "output")],
    )
    net = Network(graph)
    expected, _ = net.run(x, net.init_state(1))
    got = multispike(torch.from_numpy(x[:, 0][None]), 8.0)[0].numpy()
    np.testing.assert_allclose(got, expected[:, 0], atol=1e-6)
    grad = torch.ones(1, 50, 7, requires_grad=True)
    multispike(grad, 8.0).sum().backward()
    assert torch.all(grad.grad == 1)  # straight-through


@pytest.mark.slow
def test_tiny_training_run_exports_models_equal_to_torch(tmp_path, data_root, splits):
    out = tmp_path / "run"
    args = [
        "--data", str(data_root), "--out", str(out), "--ann-epochs", "1", "--snn-epochs", "1",
        "--steps-per-epoch", "3", "--batch", "4", "--hidden", "32", "--dilations", "1,2",
        "--val-mixtures", "4", "--max-clips", "80",
    ]  # fmt: skip
    assert train_main(args) == 0
    for name in ("ann.esp", "snn.esp", "last.pt", "metrics.csv", "curves.png"):
        assert (out / name).is_file(), name
    model = SeparationNet(SepConfig(hidden=32, dilations=(1, 2)))
    load_checkpoint(out / "last.pt", model=model, restore_rng=False)
    clips = load_clips(splits["test"][:40])
    mix = make_mixture(np.random.default_rng(1), clips, MixConfig())
    x = torch.from_numpy(mix.mixture)[None]
    for spiking in (False, True):
        path = export_model(tmp_path / f"m{spiking}.esp", model, spiking, {})
        model.spiking = spiking
        with torch.no_grad():
            ref = model(x)[0].numpy()
        out_rt, _ = Separator(path).separate(mix.mixture, 160)
        assert out_rt.shape == ref.shape
        # float32 torch vs float64 STFT on the runtime; spikes may flip at exact floor edges
        for k in range(2):
            assert si_snr_db(out_rt[k], ref[k]) > (60.0 if not spiking else 30.0)
