"""Resampling: equal to torchaudio.functional.resample, streaming = offline, bounded state."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from audio.naive_audio import resample_naive
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.audio import (
    ResampleConfig,
    init_resample_state,
    resample,
    resample_flush,
    resample_step,
)

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

RATES = [
    (16000, 8000),
    (8000, 16000),
    (44100, 16000),
    (48000, 16000),
    (22050, 16000),
    (11025, 16000),
]


@pytest.mark.parametrize(("orig", "new"), RATES)
def test_equals_torchaudio_resample_on_speech(speech, orig, new):
    # Treat the clip as recorded at `orig` Hz: any real signal checks the arithmetic.
    signal = speech[0]
    config = ResampleConfig(orig, new)
    ours = resample(signal, config)
    ref64 = torchaudio.functional.resample(torch.from_numpy(signal).double(), orig, new).numpy()
    assert ours.shape == ref64.shape == (-(-new * signal.shape[0] // orig),)
    np.testing.assert_allclose(ours, ref64, atol=1e-12)
    ref32 = torchaudio.functional.resample(torch.from_numpy(signal), orig, new).numpy()
    np.testing.assert_allclose(ours, ref32, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lowpass_filter_width": 16, "rolloff": 0.9},
        {"method": "sinc_interp_kaiser", "beta": 8.0},
        {"method": "sinc_interp_kaiser"},
    ],
)
def test_filter_options_equal_torchaudio(speech, kwargs):
    config = ResampleConfig(48000, 16000, **kwargs)
    names = {"method": "resampling_method"}
    torch_kwargs = {names.get(k, k): v for k, v in kwargs.items()}
    ref = torchaudio.functional.resample(
        torch.from_numpy(speech[1]).double(), 48000, 16000, **torch_kwargs
    )
    # torchaudio evaluates I0(beta), the Kaiser normaliser, in float32 (a few ulp off).
    rtol = 1e-6 if config.method == "sinc_interp_kaiser" else 1e-12
    np.testing.assert_allclose(resample(speech[1], config), ref.numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize(("orig", "new"), [(16000, 8000), (3, 7), (44100, 16000)])
def test_equals_the_naive_formula(rng, orig, new):
    signal = rng.standard_normal(300)
    np.testing.assert_allclose(
        resample(signal, ResampleConfig(orig, new)), resample_naive(signal, orig, new), atol=1e-12
    )


def _stream(signal, cuts, config):
    state = init_resample_state(config)
    bounds = [0, *sorted(c % (signal.shape[0] + 1) for c in cuts), signal.shape[0]]
    parts = []
    for start, stop in itertools.pairwise(bounds):
        out, state = resample_step(signal[start:stop], state, config)
        parts.append(out)
    parts.append(resample_flush(state, config))
    return np.concatenate(parts), state


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    rates=st.sampled_from(RATES),
    length=st.integers(0, 6000),
)
def test_chunks_at_any_boundaries_equal_one_call(speech, cuts, rates, length):
    config = ResampleConfig(*rates)
    signal = speech[2][:length]
    streamed, state = _stream(signal, cuts, config)
    np.testing.assert_array_equal(streamed, resample(signal, config))
    assert state.consumed[0] == length


def test_equal_rates_pass_through(speech):
    config = ResampleConfig(16000, 16000)
    streamed, _ = _stream(speech[0], [100, 5000], config)
    np.testing.assert_array_equal(streamed, speech[0].astype(np.float64))


def test_state_is_bounded_over_a_long_stream(long_speech, rng):
    config = ResampleConfig(44100, 16000)
    state = init_resample_state(config)
    sizes = set()
    produced = 0
    signal = np.tile(long_speech, 3)
    position = 0
    while position < signal.shape[0]:
        size = int(rng.integers(1, 2000))
        out, state = resample_step(signal[position : position + size], state, config)
        position += size
        produced += out.shape[0]
        sizes.add(tuple(a.nbytes for a in state))
        assert state.fill[0] < state.tail.shape[0]
    assert len(sizes) == 1
    produced += resample_flush(state, config).shape[0]
    assert produced == -(-160 * signal.shape[0] // 441)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"orig_hz": 44100.5, "new_hz": 16000}, "orig_hz is 44100.5"),
        ({"orig_hz": 16000, "new_hz": 0}, "new_hz is 0"),
        ({"orig_hz": 16000, "new_hz": 8000, "rolloff": 1.5}, "rolloff is 1.5"),
        ({"orig_hz": 16000, "new_hz": 8000, "method": "linear"}, "method is 'linear'"),
    ],
)
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResampleConfig(**kwargs)


def test_state_from_another_config_raises():
    state = init_resample_state(ResampleConfig(16000, 8000))
    with pytest.raises(ValueError, match="same config"):
        resample_step(np.zeros(10), state, ResampleConfig(44100, 16000))


@settings(max_examples=40, deadline=None)
@given(
    orig=st.integers(1, 60),
    new=st.integers(1, 60),
    length=st.integers(1, 500),  # torchaudio cannot resample an empty signal
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_any_rate_pair_equals_torchaudio_when_streamed(speech, orig, new, length, cuts):
    config = ResampleConfig(orig, new)
    signal = speech[3][4000 : 4000 + length].astype(np.float64)
    ref = torchaudio.functional.resample(torch.from_numpy(signal), orig, new).numpy()
    streamed, _ = _stream(signal, cuts, config)
    assert streamed.shape == ref.shape
    np.testing.assert_allclose(streamed, ref, atol=1e-12)
