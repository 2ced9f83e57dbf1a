"""Streaming separation app: STFT -> runtime mask estimator -> overlap-add, CLI, service task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventsp.apps.separate import DEFAULT_MODEL, Separator, load_task, si_snr
from eventsp.audio import read_audio, write_audio
from eventsp.cli import main as cli_main
from eventsp.model import Dense, Graph, Input, Output
from eventsp.model.format import save_model
from eventsp.train.data.mixtures import MixConfig, list_clips, load_clips, make_mixture

N_FREQ = 129


def _mask_model(path, bias_s1: float, bias_s2: float):
    """A model whose masks are constant: sigmoid(bias_s1) for s1, sigmoid(bias_s2) for s2."""
    bias = np.concatenate([np.full(N_FREQ, bias_s1), np.full(N_FREQ, bias_s2)]).astype(np.float32)
    graph = Graph(
        {
            "input": Input(shape=(N_FREQ,)),
            "out": Dense(weight=np.zeros((2 * N_FREQ, N_FREQ), np.float32), bias=bias),
            "logits": Output(shape=(2 * N_FREQ,)),
        },
        [("input", "out"), ("out", "logits")],
    )
    meta = {
        "task": "separate",
        "sample_rate_hz": 16000,
        "frontend": {"kind": "stft", "n_fft": 256, "hop_length": 128, "log_floor": 1e-5},
    }
    return save_model(path, graph, meta)


@pytest.fixture(scope="module")
def separator() -> Separator:
    return Separator()


@pytest.fixture(scope="module")
def test_clips(data_root):
    return load_clips(list_clips(data_root, "test")[::5])


@pytest.fixture(scope="module")
def test_mixture(test_clips):
    return make_mixture(np.random.default_rng(3), test_clips, MixConfig())


def test_identity_masks_reconstruct_the_mixture_exactly(tmp_path, rng):
    """Mask 1 for s1 and 0 for s2: s1 is the input (STFT/OLA perfect reconstruction)."""
    sep = Separator(_mask_model(tmp_path / "m.esp", 40.0, -40.0))
    x = (rng.standard_normal(5000) * 0.1).astype(np.float32)
    out, _ = sep.separate(x, 77)
    assert out.shape == (2, 5000)
    np.testing.assert_allclose(out[0], x, atol=1e-5)
    assert np.abs(out[1]).max() < 1e-6
    half, _ = Separator(_mask_model(tmp_path / "h.esp", 0.0, 0.0)).separate(x, 500)
    np.testing.assert_allclose(half[0] + half[1], x, atol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 100, 255, 256, 4001, 16000])
def test_output_has_the_input_length(tmp_path, n, rng):
    sep = Separator(_mask_model(tmp_path / "m.esp", 40.0, -40.0))
    x = (rng.standard_normal(n) * 0.1).astype(np.float32)
    out, state = sep.separate(x, 64)
    assert out.shape == (2, n)
    assert state.emitted == n == state.pushed
    np.testing.assert_allclose(out[0], x, atol=1e-5)


def test_any_chunking_gives_the_same_output(separator, test_mixture):
    x = test_mixture.mixture[:6000]
    whole, _ = separator.separate(x)
    for chunk in (1000, 160, 37):
        out, _ = separator.separate(x, chunk)
        np.testing.assert_array_equal(out, whole)


def test_latency_is_the_window_and_output_is_aligned(separator):
    from eventsp.train.separation.evaluate import measure_latency

    result = measure_latency(separator, positions=4)
    assert result["window_ms"] == 16.0
    assert result["latency_ms"] <= 16.0
    assert result["latency_ms"] >= 15.0  # the first sample of a hop waits for the whole window
    assert result["impulse_peak_offset_samples"] == 0


def test_bundled_model_separates_held_out_speakers(separator, test_clips):
    assert separator.metadata["task"] == "separate"
    assert separator.metadata["spiking"] is True
    types = {type(n).__name__ for n in separator.network.graph.nodes.values()}
    assert {"MultiSpike", "CausalConv1d"} <= types
    rng = np.random.default_rng(11)
    gains = []
    for _ in range(8):
        mix = make_mixture(rng, test_clips, MixConfig())
        est, state = separator.separate(mix.mixture, 160)
        src = mix.sources
        direct = si_snr(est[0], src[0]) + si_snr(est[1], src[1])
        swapped = si_snr(est[0], src[1]) + si_snr(est[1], src[0])
        base = si_snr(mix.mixture, src[0]) + si_snr(mix.mixture, src[1])
        gains.append((max(direct, swapped) - base) / 2)
        synops, dense = separator.synops(state)
        assert 0 < synops < dense
    assert np.mean(gains) > 4.0, gains  # a real improvement on unseen speakers


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Separator(tmp_path / "missing.esp")
    kws = DEFAULT_MODEL.parent / "kws_lmu.esp"
    with pytest.raises(ValueError, match="expected task 'separate'"):
        Separator(kws)
    sep = Separator(_mask_model(tmp_path / "m.esp", 0.0, 0.0))
    with pytest.raises(ValueError, match="mono"):
        sep.step(np.zeros((2, 10), np.float32), sep.init_state())


def test_service_task_streams_tracks_chunk_by_chunk(separator, test_mixture):
    from eventsp.services.tasks import StreamingTask

    task = load_task(DEFAULT_MODEL)
    assert isinstance(task, StreamingTask)
    assert task.info.task == "separate"
    assert task.info.kind == "audio"
    task.warm()
    x = test_mixture.mixture[:8000]
    state = task.open_stream()
    parts, synops = [], 0.0
    for i in range(0, x.shape[0], 1600):
        result, state = task.push(state, x[i : i + 1600])
        parts.append(result.tracks)
        synops += result.synops
    result, state = task.finish(state)
    parts.append(result.tracks)
    synops += result.synops
    task.close(state)
    assert all(p.shape[0] == 2 and p.dtype == np.float32 for p in parts)
    assert sum(p.shape[1] for p in parts[:-1]) > 0  # audio streams back before the end
    whole, ref_state = separator.separate(x)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert synops == pytest.approx(separator.synops(ref_state)[0])


def test_cli_writes_two_tracks_with_the_input_rate_and_length(tmp_path, capsys, test_mixture):
    a = tmp_path / "mix16.wav"
    write_audio(a, test_mixture.mixture[:7000], 16000)
    b = tmp_path / "mix8.wav"
    write_audio(b, test_mixture.mixture[:16000:2], 8000)
    out = tmp_path / "out"
    assert cli_main(["separate", str(a), str(b), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in lines] == [str(a), str(b)]
    for path, rate, n in ((a, 16000, 7000), (b, 8000, 8000)):
        for k in (1, 2):
            signal, file_rate = read_audio(out / f"{path.stem}.s{k}.wav")
            assert (file_rate, signal.shape[0]) == (rate, n)
    assert lines[0]["latency_ms"] == 16.0
    assert lines[0]["synops_per_s"] > 0


def test_cli_usage_errors(tmp_path, capsys):
    assert cli_main(["separate", str(tmp_path / "nope.wav"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
