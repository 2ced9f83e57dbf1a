"""STFT and inverse STFT: torch.stft/istft parity, perfect reconstruction, streaming = offline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.audio import (
    STFTConfig,
    init_istft_state,
    init_stft_state,
    istft,
    istft_flush,
    istft_step,
    make_window,
    stft,
    stft_step,
)

torch = pytest.importorskip("torch")

# COLA set-ups: Hann at 50 % and 75 % overlap, sqrt-Hann at 50 %, a short Hann in a longer FFT.
COLA = {
    "hann-50": STFTConfig(n_fft=400, hop_length=200),
    "hann-75": STFTConfig(n_fft=512, hop_length=128),
    "sqrt-hann-50": STFTConfig(n_fft=320, hop_length=160, window="sqrt_hann"),
    "hann-300-in-400": STFTConfig(n_fft=400, hop_length=100, win_length=300),
}


def _torch_window(config: STFTConfig):
    return torch.from_numpy(make_window(config.window, config.win_length, config.win_length))


@pytest.mark.parametrize("fft", ["numba", "numpy"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("name", list(COLA))
def test_stft_equals_torch_stft(speech, name, center, fft):
    config = STFTConfig(**{**COLA[name].__dict__, "center": center, "fft": fft})
    signal = speech[2]
    ref = torch.stft(
        torch.from_numpy(signal).double(),
        config.n_fft,
        config.hop_length,
        config.win_length,
        _torch_window(config),
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )
    ours = stft(signal, config)
    assert ours.shape == tuple(ref.T.shape)
    np.testing.assert_allclose(ours, ref.T.numpy(), atol=1e-12)


def test_windows_equal_torch():
    np.testing.assert_allclose(
        make_window("hann", 400, 400), torch.hann_window(400, dtype=torch.float64), atol=1e-15
    )
    np.testing.assert_allclose(
        make_window("hamming", 400, 400), torch.hamming_window(400, dtype=torch.float64), atol=1e-15
    )
    padded = make_window("hann", 300, 400)
    assert (padded[:50] == 0).all()
    assert (padded[350:] == 0).all()


@pytest.mark.parametrize("name", list(COLA))
def test_istft_of_stft_reconstructs_the_signal(long_speech, name):
    config = STFTConfig(**{**COLA[name].__dict__, "center": True})
    signal = long_speech.astype(np.float64)
    rebuilt = istft(stft(signal, config), config, length=signal.shape[0])
    np.testing.assert_allclose(rebuilt, signal, atol=1e-12)


@pytest.mark.parametrize("fft", ["numba", "numpy"])
@pytest.mark.parametrize("name", list(COLA))
def test_istft_equals_torch_istft(speech, name, fft):
    config = STFTConfig(**{**COLA[name].__dict__, "center": True, "fft": fft})
    spectra = stft(speech[3], config)
    # Edit the spectra so that the inverse must really overlap-add inconsistent frames.
    spectra = spectra * np.linspace(0.5, 1.5, spectra.shape[1])
    ref = torch.istft(
        torch.from_numpy(spectra.T.copy()),
        config.n_fft,
        config.hop_length,
        config.win_length,
        _torch_window(config),
        center=True,
    ).numpy()
    ours = istft(spectra, config)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def _cut(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    bounds = [0, *sorted(c % (n + 1) for c in cuts), n]
    return list(itertools.pairwise(bounds))


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    frame_cuts=st.lists(st.integers(0, 10**6), max_size=10),
    name=st.sampled_from(sorted(COLA)),
    fft=st.sampled_from(["numba", "numpy"]),
)
def test_streaming_analysis_and_synthesis_reconstruct_at_any_boundaries(
    speech, cuts, frame_cuts, name, fft
):
    config = STFTConfig(**{**COLA[name].__dict__, "fft": fft})
    signal = speech[4].astype(np.float64)
    state = init_stft_state(config)
    parts = []
    for start, stop in _cut(signal.shape[0], cuts):
        spectra, state = stft_step(signal[start:stop], state, config)
        parts.append(spectra)
    spectra = np.concatenate(parts)
    np.testing.assert_array_equal(spectra, stft(signal, config))

    synth = init_istft_state(config)
    pieces = []
    for start, stop in _cut(spectra.shape[0], frame_cuts):
        samples, synth = istft_step(spectra[start:stop], synth, config)
        pieces.append(samples)
    pieces.append(istft_flush(synth, config))
    rebuilt = np.concatenate(pieces)
    np.testing.assert_array_equal(rebuilt, istft(spectra, config))
    # Every sample some window covers comes back exactly; the rest (the ends) are zeros.
    window = make_window(config.window, config.win_length, config.n_fft)
    envelope = np.zeros(rebuilt.shape[0])
    for i in range(spectra.shape[0]):
        envelope[i * config.hop_length : i * config.hop_length + config.n_fft] += window**2
    covered = envelope > 1e-11
    assert covered.mean() > 0.9
    np.testing.assert_allclose(rebuilt[covered], signal[: rebuilt.shape[0]][covered], atol=1e-12)
    assert (rebuilt[~covered] == 0).all()


def test_states_keep_their_size_over_a_long_stream(long_speech):
    config = COLA["hann-75"]
    state, synth = init_stft_state(config), init_istft_state(config)
    shapes = set()
    for start in range(0, 4 * long_speech.shape[0], 333):
        chunk = np.resize(long_speech, 4 * long_speech.shape[0])[start : start + 333]
        spectra, state = stft_step(chunk, state, config)
        _, synth = istft_step(spectra, synth, config)
        shapes.add(tuple(a.shape for a in (*state, *synth)))
    assert len(shapes) == 1


def test_bad_input_raises():
    config = STFTConfig()
    with pytest.raises(ValueError, match=r"shape \(3, 200\); expected \(n_frames, 201\)"):
        istft_step(np.zeros((3, 200), complex), init_istft_state(config), config)
    with pytest.raises(ValueError, match="center is True"):
        stft_step(np.zeros(10), init_stft_state(config), STFTConfig(center=True))
    with pytest.raises(ValueError, match="hop_length is 0"):
        STFTConfig(hop_length=0)
    with pytest.raises(ValueError, match="length is -1"):
        istft(np.zeros((3, 201), complex), config, length=-1)


def test_odd_sizes_need_the_numpy_backend(speech):
    with pytest.raises(ValueError, match="n_fft is 401"):
        STFTConfig(n_fft=401)
    config = STFTConfig(n_fft=401, hop_length=100, fft="numpy", center=True)
    rebuilt = istft(stft(speech[0], config), config, length=16000)
    np.testing.assert_allclose(rebuilt, speech[0], atol=1e-12)
