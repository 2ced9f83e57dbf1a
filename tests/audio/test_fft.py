"""The Numba mixed-radix real FFT equals numpy.fft.rfft; both log-mel back-ends agree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eventsp.audio import LogMelConfig, init_logmel_state, logmel, logmel_step
from eventsp.audio._fft import fft_plan, irfft, rfft


@pytest.mark.parametrize("n", [2, 4, 6, 8, 10, 14, 22, 30, 64, 100, 256, 320, 400, 510, 512, 1024])
def test_rfft_equals_numpy(rng, n):
    frames = rng.standard_normal((3, n))
    np.testing.assert_allclose(rfft(frames), np.fft.rfft(frames, axis=1), rtol=0, atol=1e-12 * n)


@pytest.mark.parametrize("n", [2, 4, 6, 8, 10, 14, 22, 30, 64, 100, 256, 320, 400, 510, 512, 1024])
def test_irfft_equals_numpy(rng, n):
    spectra = rng.standard_normal((3, n // 2 + 1)) + 1j * rng.standard_normal((3, n // 2 + 1))
    np.testing.assert_allclose(irfft(spectra, n), np.fft.irfft(spectra, n, axis=1), atol=1e-14)
    frames = rng.standard_normal((2, n))
    np.testing.assert_allclose(irfft(rfft(frames), n), frames, atol=1e-13)


def test_plans_use_the_expected_radices():
    assert fft_plan(400).radices.tolist() == [4, 2, 5, 5]
    assert fft_plan(512).radices.tolist() == [4, 4, 4, 4]
    assert sorted(fft_plan(400).perm.tolist()) == list(range(200))
    with pytest.raises(ValueError, match="n_fft is 401"):
        fft_plan(401)


@pytest.mark.parametrize(
    "config",
    [
        LogMelConfig(),
        LogMelConfig(n_fft=512, n_mels=64, power=1.0, mel_scale="slaney", norm="slaney"),
        LogMelConfig(n_fft=320, hop_length=80, log=False),
    ],
)
def test_numba_and_numpy_backends_agree_on_speech(long_speech, config):
    numba = logmel(long_speech, config)
    numpy = logmel(long_speech, dataclasses.replace(config, fft="numpy"))
    assert numba.shape == numpy.shape
    np.testing.assert_allclose(numba, numpy, rtol=2e-6, atol=1e-6)


def test_numpy_backend_streams_like_one_call_and_takes_odd_sizes(speech):
    config = LogMelConfig(n_fft=401, fft="numpy")
    state = init_logmel_state(config)
    parts = []
    for start in range(0, 16000, 123):
        frames, state = logmel_step(speech[0][start : start + 123], state, config)
        parts.append(frames)
    np.testing.assert_array_equal(np.concatenate(parts), logmel(speech[0], config))
    with pytest.raises(ValueError, match="n_fft is 401"):
        LogMelConfig(n_fft=401)
    with pytest.raises(ValueError, match="fft is 'fftw'"):
        LogMelConfig(fft="fftw")
