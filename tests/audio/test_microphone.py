"""Microphone input: the real no-device error, simulated missing PortAudio, a fake device."""

from __future__ import annotations

import importlib.abc
import queue
import sys
import types

import numpy as np
import pytest

from eventsp.audio import (
    MicrophoneError,
    MicrophoneStream,
    ResampleConfig,
    list_input_devices,
    resample,
)


def test_no_input_device_names_the_fix():
    """On this machine PortAudio is installed and there is no input device: the real path."""
    try:
        devices = list_input_devices()
    except MicrophoneError as exc:
        pytest.skip(f"PortAudio is not usable here: {exc}")
    if devices:
        pytest.skip(f"this machine has input devices: {devices}")
    with pytest.raises(MicrophoneError, match="no audio input device") as info, MicrophoneStream():
        pass
    message = str(info.value)
    assert "connect a microphone" in message
    assert "python -m sounddevice" in message


class _Blocker(importlib.abc.MetaPathFinder):
    """Makes ``import sounddevice`` fail the way a missing library or package does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise self.error
        return None


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (OSError("PortAudio library not found"), "sudo apt-get install libportaudio2"),
        (ModuleNotFoundError("No module named 'sounddevice'"), "pip install 'eventsp[audio]'"),
    ],
)
def test_missing_portaudio_or_sounddevice_names_the_fix(monkeypatch, error, hint):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Blocker(error), *sys.meta_path])
    with pytest.raises(MicrophoneError, match=r"(?i)portaudio|sounddevice") as info:
        MicrophoneStream().open()
    assert hint in str(info.value)
    with pytest.raises(MicrophoneError):
        list_input_devices()


def _fake_sounddevice(signal: np.ndarray, rate: int, native: tuple[int, ...]) -> types.ModuleType:
    """A sounddevice with one 'USB mic' that plays ``signal`` at ``rate`` when started."""
    sd = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    info = {"name": "USB mic", "max_input_channels": 1, "default_samplerate": float(rate)}

    def query_devices(device=None, kind=None):
        if kind is None:
            return [info, {**info, "name": "speaker", "max_input_channels": 0}]
        if device not in (None, 0, "USB mic"):
            raise ValueError(f"No input device matching {device!r}")
        return info

    def check_input_settings(device=None, channels=None, dtype=None, samplerate=None):
        if samplerate not in native:
            raise PortAudioError(f"Invalid sample rate {samplerate}")

    class InputStream:
        def __init__(self, device, channels, samplerate, dtype, blocksize, callback):
            assert samplerate in native
            self.blocksize, self.callback = blocksize, callback

        def start(self):
            # PortAudio calls from its own thread; in order, synchronously, is enough here.
            for start in range(0, signal.shape[0], self.blocksize):
                block = signal[start : start + self.blocksize, None].astype(np.float32)
                self.callback(block, block.shape[0], None, None)

        def stop(self):
            pass

        def close(self):
            pass

    sd.PortAudioError = PortAudioError
    sd.query_devices = query_devices
    sd.check_input_settings = check_input_settings
    sd.InputStream = InputStream
    return sd


def _read_all(mic: MicrophoneStream) -> list[np.ndarray]:
    chunks = []
    while True:
        try:
            chunks.append(mic.read(timeout=0.01))
        except queue.Empty:
            return chunks


def test_device_at_another_rate_is_resampled_as_a_stream(monkeypatch, speech):
    recorded = resample(speech[0], ResampleConfig(16000, 48000)).astype(np.float32)
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(recorded, 48000, (48000,)))
    with MicrophoneStream(sample_rate=16000, chunk_samples=160) as mic:
        assert mic.device_rate_hz == 48000
        chunks = _read_all(mic)
    assert all(c.shape == (160,) and c.dtype == np.float32 for c in chunks)
    expected = resample(recorded, ResampleConfig(48000, 16000)).astype(np.float32)
    got = np.concatenate(chunks)
    # The stream lags the filter's half-width; all it has emitted equals the offline samples.
    assert got.shape[0] > 15000
    np.testing.assert_array_equal(got, expected[: got.shape[0]])


def test_device_at_the_model_rate_passes_through(monkeypatch, speech):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(speech[1], 16000, (16000,)))
    with MicrophoneStream(chunk_samples=400) as mic:
        assert mic.device_rate_hz == 16000
        got = np.concatenate(list(_read_all(mic)))
    np.testing.assert_array_equal(got, speech[1][: got.shape[0]])
    assert got.shape[0] == 16000


def test_a_slow_reader_drops_blocks_and_counts_them(monkeypatch, speech):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(speech[1], 16000, (16000,)))
    with MicrophoneStream(chunk_samples=160, max_queued_s=0.05) as mic:
        chunks = _read_all(mic)
    assert len(chunks) == 5
    assert mic.dropped_blocks == 100 - 5


def test_unknown_device_lists_the_input_devices(monkeypatch, speech):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(speech[1], 16000, (16000,)))
    assert list_input_devices() == [
        {"index": 0, "name": "USB mic", "channels": 1, "default_rate_hz": 16000.0}
    ]
    with pytest.raises(MicrophoneError, match=r"device 'webcam' not found.*0: USB mic"):
        MicrophoneStream(device="webcam").open()


def test_reading_a_closed_stream_and_bad_arguments_raise():
    with pytest.raises(MicrophoneError, match="not open"):
        MicrophoneStream().read()
    with pytest.raises(ValueError, match="chunk_samples is 0"):
        MicrophoneStream(chunk_samples=0)
    with pytest.raises(ValueError, match=r"sample_rate is 16000\.0"):
        MicrophoneStream(sample_rate=16000.0)
