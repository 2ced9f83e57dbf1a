"""Audio files: WAV and FLAC read, mixed down, resampled whole or as a stream; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.audio import (
    AudioFileError,
    ResampleConfig,
    iter_audio,
    read_audio,
    rechunk,
    resample,
    write_audio,
)

soundfile = pytest.importorskip("soundfile")


def _pcm16(path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(str(path), dtype="int16")
    return data.astype(np.float32) / 32768.0, rate


def test_reads_flac_and_wav_from_the_shared_data(data_root):
    flac = next((data_root / "speech" / "speech_commands_v2_test_dev" / "yes").glob("*.flac"))
    wav = data_root / "speech" / "micro_speech" / "yes_1000ms.wav"
    for path in (flac, wav):
        signal, rate = read_audio(path)
        expected, expected_rate = _pcm16(path)
        assert rate == expected_rate == 16000
        assert signal.dtype == np.float32
        assert signal.shape == (16000,)
        np.testing.assert_array_equal(signal, expected)
        assert 0.0 < np.abs(signal).max() <= 1.0


def test_resamples_on_read_to_the_model_rate(data_root, tmp_path):
    source, _ = read_audio(data_root / "speech" / "micro_speech" / "no_1000ms.wav")
    path = tmp_path / "no_44k.wav"
    upsampled = resample(source, ResampleConfig(16000, 44100)).astype(np.float32)
    write_audio(path, upsampled, 44100, subtype="FLOAT")
    signal, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000
    assert signal.shape == (16000,)
    np.testing.assert_allclose(
        signal, resample(upsampled, ResampleConfig(44100, 16000)).astype(np.float32), atol=1e-7
    )
    # Up and back down loses only what lies above the filters' cut-off near 8 kHz.
    core = slice(200, -200)
    err = np.sqrt(np.mean((signal[core] - source[core]) ** 2)) / np.sqrt(np.mean(source**2))
    assert err < 0.05, f"relative error after 16k -> 44.1k -> 16k: {err:.3f}"


def test_stereo_is_mixed_down_or_kept(tmp_path, rng):
    stereo = rng.uniform(-0.5, 0.5, (2, 4000)).astype(np.float32)
    path = tmp_path / "stereo.flac"
    write_audio(path, stereo, 8000, subtype="PCM_24")
    mono, rate = read_audio(path)
    both, _ = read_audio(path, mono=False)
    assert rate == 8000
    assert both.shape == (2, 4000)
    np.testing.assert_allclose(both, stereo, atol=2**-22)
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-7)


@pytest.mark.parametrize(("rate", "chunk"), [(None, 160), (16000, 160), (8000, 77)])
def test_iter_audio_equals_read_audio_in_chunks(data_root, rate, chunk):
    path = data_root / "speech" / "micro_speech" / "silence_1000ms.wav"
    whole, _ = read_audio(path, sample_rate=rate)
    chunks = list(iter_audio(path, chunk, sample_rate=rate, block_samples=1000))
    assert all(c.shape == (chunk,) for c in chunks[:-1])
    assert 0 < chunks[-1].shape[0] <= chunk
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_rechunk_regroups_any_sizes(rng):
    pieces = [rng.standard_normal(int(n)) for n in rng.integers(0, 50, 40)]
    out = list(rechunk(pieces, 16))
    np.testing.assert_array_equal(np.concatenate(out), np.concatenate(pieces))
    assert all(c.shape == (16,) for c in out[:-1])
    with pytest.raises(ValueError, match="chunk size is 0"):
        list(rechunk(pieces, 0))


def test_missing_and_unreadable_files_raise_clearly(tmp_path):
    with pytest.raises(AudioFileError, match="does not exist"):
        read_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    with pytest.raises(AudioFileError, match=r"cannot read .*junk\.wav.* as audio"):
        read_audio(junk)
    with pytest.raises(AudioFileError, match="does not exist"):
        iter_audio(tmp_path / "nope.flac")
    with pytest.raises(ValueError, match=r"sample_rate is 16000\.0"):
        read_audio(junk, sample_rate=16000.0)
