"""Live microphone input through sounddevice (PortAudio), as chunks of a fixed size and rate.

::

    with MicrophoneStream(sample_rate=16000, chunk_samples=160) as mic:
        for chunk in mic:              # float32, (160,), 10 ms each
            features, state = logmel_step(chunk, state, config)

PortAudio calls back from its own thread with blocks of the device's size; the callback only
copies them into a bounded queue, and :meth:`MicrophoneStream.read` regroups them into
``chunk_samples`` at ``sample_rate`` (resampling as a stream when the device cannot record at
that rate). When the queue is full (the consumer is too slow) the newest block is dropped and
``dropped_blocks`` counts it.

What goes wrong, and what the error says to do (:class:`MicrophoneError`):

- sounddevice missing: ``pip install 'eventsp[audio]'``;
- PortAudio missing (``OSError: PortAudio library not found``): ``sudo apt-get install
  libportaudio2`` (``brew install portaudio`` on macOS);
- no input device: connect a microphone or pass a file; ``python -m sounddevice`` lists devices.
"""

from __future__ import annotations

import queue
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from eventsp.audio.resample import ResampleConfig, init_resample_state, resample_step

__all__ = ["MicrophoneError", "MicrophoneStream", "list_input_devices"]

_LIST_HINT = "list the devices with `python -m sounddevice`"


class MicrophoneError(RuntimeError):
    """The microphone cannot be opened; the message says why and what to do."""


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except ImportError as exc:
        raise MicrophoneError(
            "microphone input needs the sounddevice package: pip install 'eventsp[audio]' "
            "(or read audio from a file instead)"
        ) from exc
    except OSError as exc:
        raise MicrophoneError(
            f"the PortAudio library is missing ({exc}); install it with "
            "`sudo apt-get install libportaudio2` (Debian/Ubuntu) or `brew install portaudio` "
            "(macOS), or read audio from a file instead"
        ) from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices PortAudio sees: ``index``, ``name``, ``channels``, ``default_rate_hz``."""
    sd = _sounddevice()
    devices = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_input_channels"] > 0:
            devices.append(
                {
                    "index": index,
                    "name": info["name"],
                    "channels": int(info["max_input_channels"]),
                    "default_rate_hz": float(info["default_samplerate"]),
                }
            )
    return devices


def _input_device(sd: ModuleType, device: int | str | None) -> dict[str, Any]:
    try:
        return dict(sd.query_devices(device, kind="input"))
    except (sd.PortAudioError, ValueError) as exc:
        found = [f"{d['index']}: {d['name']}" for d in list_input_devices()]
        if not found:
            raise MicrophoneError(
                f"no audio input device found ({exc}); connect a microphone or pass an audio "
                f"file instead; {_LIST_HINT}"
            ) from exc
        raise MicrophoneError(
            f"input device {device!r} not found ({exc}); the input devices are {found}; "
            f"pass one of them as device=, or {_LIST_HINT}"
        ) from exc


class MicrophoneStream:
    """A live microphone as an iterator of mono float32 chunks (a context manager).

    Parameters
    ----------
    sample_rate: rate of the chunks in Hz (the model's); the device records at this rate when
        it can, otherwise at its default rate, resampled.
    chunk_samples: samples per chunk (160 = 10 ms at 16 kHz).
    device: PortAudio device index or name substring; ``None`` is the default input.
    max_queued_s: seconds of audio the queue holds before blocks are dropped.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        chunk_samples: int = 160,
        device: int | str | None = None,
        max_queued_s: float = 2.0,
    ) -> None:
        for name, value in (("sample_rate", sample_rate), ("chunk_samples", chunk_samples)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} is {value!r}; expected a positive integer")
        if not max_queued_s > 0:
            raise ValueError(f"max_queued_s is {max_queued_s!r}; expected a positive duration")
        self.sample_rate = int(sample_rate)
        self.chunk_samples = int(chunk_samples)
        self.device = device
        self.max_queued_s = max_queued_s
        self.device_rate_hz = 0
        self.dropped_blocks = 0
        self._stream: Any = None
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._pending = np.zeros(0, np.float32)
        self._resampler: ResampleConfig | None = None
        self._resample_state: Any = None

    def __enter__(self) -> MicrophoneStream:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Find the device and start recording (``with`` calls this)."""
        sd = _sounddevice()
        info = _input_device(sd, self.device)
        rate = self.sample_rate
        try:
            sd.check_input_settings(self.device, channels=1, dtype="float32", samplerate=rate)
        except (sd.PortAudioError, ValueError):
            rate = round(info["default_samplerate"])
            self._resampler = ResampleConfig(rate, self.sample_rate)
            self._resample_state = init_resample_state(self._resampler)
        self.device_rate_hz = rate
        block = max(1, rate * self.chunk_samples // self.sample_rate)
        self._queue = queue.Queue(maxsize=max(2, int(self.max_queued_s * rate / block)))
        try:
            self._stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=rate,
                dtype="float32",
                blocksize=block,
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise MicrophoneError(
                f"cannot open input device {info.get('name', self.device)!r} at {rate} Hz "
                f"({exc}); try another device=, or {_LIST_HINT}"
            ) from exc

    def close(self) -> None:
        """Stop recording and release the device."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped_blocks += 1

    def read(self, timeout: float | None = None) -> np.ndarray:
        """The next ``(chunk_samples,)`` float32 chunk; waits (``queue.Empty`` on timeout)."""
        if self._stream is None:
            raise MicrophoneError("the stream is not open; use `with MicrophoneStream() as mic:`")
        while self._pending.shape[0] < self.chunk_samples:
            block = self._queue.get(timeout=timeout)
            if self._resampler is not None:
                out, self._resample_state = resample_step(
                    block, self._resample_state, self._resampler
                )
                block = out.astype(np.float32)
            self._pending = np.concatenate([self._pending, block])
        chunk = self._pending[: self.chunk_samples]
        self._pending = self._pending[self.chunk_samples :]
        return chunk

    def __iter__(self) -> MicrophoneStream:
        return self

    def __next__(self) -> np.ndarray:
        return self.read()
