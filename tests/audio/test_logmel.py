"""Log-mel features: equal to torchaudio's MelSpectrogram + log, streaming = offline."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.audio import (
    LogMelConfig,
    init_logmel_state,
    logmel,
    logmel_batch,
    logmel_step,
    mel_filterbank,
)

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

CONFIGS = {
    "default-htk-40": LogMelConfig(),
    "slaney-norm-64": LogMelConfig(
        n_fft=512,
        win_length=400,
        n_mels=64,
        f_min=20.0,
        f_max=7600.0,
        mel_scale="slaney",
        norm="slaney",
    ),
    "magnitude-hamming-80": LogMelConfig(n_mels=80, power=1.0, window="hamming", hop_length=128),
    "sqrt-hann-rect-32": LogMelConfig(n_fft=256, win_length=200, window="sqrt_hann", n_mels=32),
    "rectangular": LogMelConfig(window="rectangular", f_min=50.0, f_max=7000.0),
    "8k-short": LogMelConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=32),
}


def _torchaudio_logmel(signal: np.ndarray, config: LogMelConfig, dtype) -> np.ndarray:
    """``log(MelSpectrogram(x) + offset)`` with everything, filterbank included, in ``dtype``.

    torchaudio builds its filterbank with the default dtype, so float64 needs that default.
    """
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        transform = config.to_torchaudio()
        with torch.no_grad():
            mel = transform(torch.from_numpy(signal).to(dtype))
    finally:
        torch.set_default_dtype(default)
    return torch.log(mel + config.log_offset).T.numpy()


@pytest.mark.parametrize("center", [False, True], ids=["stream", "center"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_equals_torchaudio_melspectrogram_plus_log_on_speech(speech, name, center):
    """Within 1e-4 of torchaudio; exactly (to float32 output rounding) of its float64 result.

    torchaudio in float32 is itself up to ~4e-4 off its float64 result in near-silent bands,
    where log(mel + 1e-6) magnifies rounding; there the bound is 1e-4 beyond that error.
    """
    config = dataclasses.replace(CONFIGS[name], center=center)
    for clip in speech:
        signal = clip if config.sample_rate == 16000 else clip[::2].copy()
        ours = logmel(signal, config)
        ref64 = _torchaudio_logmel(signal, config, torch.float64)
        ref32 = _torchaudio_logmel(signal, config, torch.float32)
        assert ours.shape == ref64.shape == ref32.shape
        err64 = np.abs(ours - ref64)
        assert err64.max() < 2e-6, f"{name} center={center}: max |diff| {err64.max():.2e}"
        err32 = np.abs(ours - ref32)
        own = np.abs(ref64 - ref32)
        assert (err32 <= 1e-4 + own).all(), f"{name}: max |diff| to float32 {err32.max():.2e}"
        assert np.median(err32) < 1e-5


def test_filterbank_equals_torchaudio():
    default = torch.get_default_dtype()
    for scale in ("htk", "slaney"):
        for norm in (None, "slaney"):
            ours = mel_filterbank(257, 30.0, 7800.0, 48, 16000, norm, scale)
            torch.set_default_dtype(torch.float64)
            try:
                ref = torchaudio.functional.melscale_fbanks(
                    257, 30.0, 7800.0, 48, 16000, norm, scale
                ).numpy()
            finally:
                torch.set_default_dtype(default)
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
            ref32 = torchaudio.functional.melscale_fbanks(257, 30.0, 7800.0, 48, 16000, norm, scale)
            np.testing.assert_allclose(ours, ref32.double().numpy(), atol=1e-5)


def _stream(signal: np.ndarray, cuts: list[int], config: LogMelConfig):
    state = init_logmel_state(config)
    parts = []
    bounds = [0, *sorted(c % (signal.shape[0] + 1) for c in cuts), signal.shape[0]]
    for start, stop in itertools.pairwise(bounds):
        frames, state = logmel_step(signal[start:stop], state, config)
        parts.append(frames)
    return np.concatenate(parts), state


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 10**6), max_size=40))
def test_chunks_at_any_boundaries_equal_one_call(speech, cuts):
    config = CONFIGS["slaney-norm-64"]
    signal = speech[0]
    streamed, state = _stream(signal, cuts, config)
    whole = logmel(signal, config)
    np.testing.assert_array_equal(streamed, whole)
    assert state.frames[0] == whole.shape[0]


def test_ten_ms_chunks_equal_one_call_on_long_speech(long_speech):
    config = LogMelConfig()
    cuts = list(range(160, long_speech.shape[0], 160))
    streamed, _ = _stream(long_speech, cuts, config)
    np.testing.assert_array_equal(streamed, logmel(long_speech, config))
    assert streamed.shape == (1 + (long_speech.shape[0] - 400) // 160, 40)


def test_state_size_is_constant_over_a_long_stream(long_speech, rng):
    config = LogMelConfig()
    state = init_logmel_state(config)
    sizes = set()
    signal = np.tile(long_speech, 5)  # 30 s
    position = 0
    while position < signal.shape[0]:
        size = int(rng.integers(1, 700))
        _, state = logmel_step(signal[position : position + size], state, config)
        position += size
        sizes.add(tuple(a.nbytes for a in state))
        assert 0 <= state.fill[0] < config.n_fft
    assert len(sizes) == 1, f"state size changed over the stream: {sorted(sizes)}"
    assert state.frames[0] == 1 + (signal.shape[0] - config.n_fft) // config.hop_length


def test_step_does_not_change_the_callers_state_or_chunk(speech):
    config = LogMelConfig()
    state = init_logmel_state(config)
    _, state = logmel_step(speech[0][:1000], state, config)
    before = [a.copy() for a in state]
    chunk = speech[0][1000:1500].copy()
    first, _ = logmel_step(chunk, state, config)
    again, _ = logmel_step(chunk, state, config)
    np.testing.assert_array_equal(first, again)
    for old, new in zip(before, state, strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(chunk, speech[0][1000:1500])


def test_empty_and_short_input_keep_the_output_shape():
    config = LogMelConfig()
    state = init_logmel_state(config)
    frames, state = logmel_step(np.zeros(0, np.float32), state, config)
    assert frames.shape == (0, 40)
    assert frames.dtype == np.float32
    frames, state = logmel_step(np.zeros(399, np.float32), state, config)
    assert frames.shape == (0, 40)
    frames, _ = logmel_step(np.zeros(1, np.float32), state, config)
    assert frames.shape == (1, 40)
    np.testing.assert_allclose(frames, np.log(config.log_offset), rtol=1e-6)


def test_log_false_gives_the_mel_spectrogram(speech):
    config = LogMelConfig(log=False)
    ours = logmel(speech[1], config)
    ref = np.exp(logmel(speech[1], LogMelConfig())) - 1e-6
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_fft": 0}, "n_fft is 0"),
        ({"win_length": 500}, "win_length is 500"),
        ({"hop_length": 401}, "hop_length is 401"),
        ({"f_max": 9000.0}, "Nyquist"),
        ({"n_mels": 300, "n_fft": 64, "hop_length": 32}, "cover no FFT bin"),
        ({"log_offset": 0.0}, "log_offset is 0.0"),
        ({"window": "blackman"}, "window is 'blackman'"),
        ({"mel_scale": "bark"}, "mel_scale is 'bark'"),
        ({"norm": "l2"}, "norm is 'l2'"),
        ({"sample_rate": 16000.5}, "sample_rate is 16000.5"),
    ],
)
def test_bad_configs_raise_with_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogMelConfig(**kwargs)


def test_bad_chunks_and_centered_streaming_raise():
    config = LogMelConfig()
    state = init_logmel_state(config)
    with pytest.raises(TypeError, match="dtype int16"):
        logmel_step(np.zeros(160, np.int16), state, config)
    with pytest.raises(ValueError, match=r"shape \(2, 160\)"):
        logmel_step(np.zeros((2, 160), np.float32), state, config)
    with pytest.raises(ValueError, match="center is True"):
        logmel_step(np.zeros(160, np.float32), state, LogMelConfig(center=True))
    with pytest.raises(ValueError, match="same config"):
        logmel_step(np.zeros(160, np.float32), state, LogMelConfig(n_fft=512))
    with pytest.raises(ValueError, match="needs more than"):
        logmel(np.zeros(100, np.float32), LogMelConfig(center=True))


def test_config_round_trips_through_json():
    import json

    config = CONFIGS["slaney-norm-64"]
    again = LogMelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match=r"unknown fields \['n_mel'\]"):
        LogMelConfig.from_dict({"n_mel": 40})


@pytest.mark.parametrize("fft", ["numba", "numpy"])
@pytest.mark.parametrize("center", [False, True])
def test_batch_equals_one_clip_at_a_time(speech, fft, center):
    config = LogMelConfig(fft=fft, center=center)
    clips = np.stack(speech)
    batch = logmel_batch(clips, config)
    assert batch.shape == (len(speech), *logmel(speech[0], config).shape)
    for b, clip in enumerate(speech):
        np.testing.assert_array_equal(batch[b], logmel(clip, config))
    with pytest.raises(ValueError, match=r"shape \(16000,\)"):
        logmel_batch(speech[0], config)


def test_default_config_equals_a_hand_built_torchaudio_transform(speech):
    """Independent of ``to_torchaudio``: torchaudio's defaults spelled out by hand."""
    transform = torchaudio.transforms.MelSpectrogram(
        16000, n_fft=400, hop_length=160, n_mels=40, center=False
    )
    with torch.no_grad():
        ref = torch.log(transform(torch.from_numpy(speech[0])) + 1e-6).T.numpy()
    ours = logmel(speech[0], LogMelConfig())
    assert ours.shape == ref.shape == (98, 40)
    assert np.abs(ours - ref).max() < 1e-4
