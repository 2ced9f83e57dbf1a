"""Audio files in and out: WAV, FLAC (and whatever else libsndfile reads) through soundfile.

:func:`read_audio` reads a whole file, mixes it down to mono and resamples it to the rate a
model needs; :func:`iter_audio` streams a file in chunks of a fixed size at that rate, through
the same streaming resampler a microphone uses, so a long recording never sits in memory
whole. Samples are float32 in ``[-1, 1]``. soundfile is in the ``audio`` extra and is imported
only when a file is opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from eventsp.audio.resample import (
    ResampleConfig,
    init_resample_state,
    resample,
    resample_flush,
    resample_step,
)

__all__ = ["AudioFileError", "iter_audio", "read_audio", "rechunk", "write_audio"]


class AudioFileError(ValueError):
    """An audio file that is missing, unreadable, or not what was asked for."""


def _soundfile() -> ModuleType:
    try:
        import soundfile
    except ImportError as exc:
        raise ImportError(
            "reading audio files needs the soundfile package: pip install 'eventsp[audio]'"
        ) from exc
    except OSError as exc:  # soundfile without its libsndfile
        raise ImportError(
            f"soundfile is installed but libsndfile is not ({exc}); install it with "
            "`sudo apt-get install libsndfile1`, or reinstall soundfile from a wheel"
        ) from exc
    return soundfile


def _check_rate(sample_rate: int | None) -> None:
    if sample_rate is None:
        return
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate is {sample_rate!r}; expected an integer in Hz, or None")
    if sample_rate < 1:
        raise ValueError(f"sample_rate is {sample_rate}; expected a positive rate in Hz")


def _open_error(path: Path, exc: Exception) -> AudioFileError:
    if not path.exists():
        return AudioFileError(f"audio file {str(path)!r} does not exist; check the path")
    return AudioFileError(
        f"cannot read {str(path)!r} as audio ({exc}); expected WAV, FLAC, OGG or another "
        "format libsndfile reads. Convert it first, e.g. `sox in.mp3 out.wav`"
    )


def _mix(block: np.ndarray, mono: bool) -> np.ndarray:
    """``(frames, channels)`` -> ``(frames,)`` mean when mono, else ``(channels, frames)``."""
    if mono:
        return block.mean(axis=1, dtype=np.float64).astype(np.float32)
    return np.ascontiguousarray(block.T)


def read_audio(
    path: str | Path, sample_rate: int | None = None, *, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read a whole audio file as float32 samples.

    Parameters
    ----------
    path: the file (WAV, FLAC, ...).
    sample_rate: resample to this rate in Hz (:func:`eventsp.audio.resample`); ``None`` keeps
        the file's rate.
    mono: average the channels, giving ``(samples,)``; otherwise ``(channels, samples)``.

    Returns
    -------
    ``(samples, rate_hz)``: the signal and its sample rate (``sample_rate`` when given).
    """
    _check_rate(sample_rate)
    sf = _soundfile()
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise _open_error(path, exc) from exc
    signal = _mix(data, mono)
    if sample_rate is None or sample_rate == rate:
        return signal, int(rate)
    config = ResampleConfig(int(rate), int(sample_rate))
    if mono:
        return resample(signal, config).astype(np.float32), int(sample_rate)
    channels = [resample(channel, config) for channel in signal]
    return np.stack(channels).astype(np.float32), int(sample_rate)


def rechunk(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup a stream of 1-D chunks of any sizes into chunks of exactly ``size`` samples.

    The last chunk holds what is left (shorter, never empty).
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"chunk size is {size!r}; expected a positive number of samples")
    pending: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += chunk.shape[0]
        if held < size:
            continue
        joined = np.concatenate(pending)
        whole = (held // size) * size
        yield from np.split(joined[:whole], whole // size)
        pending = [joined[whole:]]
        held -= whole
    if held:
        yield np.concatenate(pending)


def iter_audio(
    path: str | Path,
    chunk_samples: int = 160,
    sample_rate: int | None = None,
    *,
    block_samples: int = 65536,
) -> Iterator[np.ndarray]:
    """Stream a file as mono float32 chunks of ``chunk_samples`` at ``sample_rate``.

    The file is read ``block_samples`` at a time and resampled as a stream; the chunks equal
    :func:`read_audio`'s samples cut in pieces. The last chunk may be shorter.
    """
    _check_rate(sample_rate)
    sf = _soundfile()
    path = Path(path)
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise _open_error(path, exc) from exc

    def resampled() -> Iterator[np.ndarray]:
        with handle:
            rate = int(handle.samplerate)
            blocks = (
                _mix(block, True)
                for block in handle.blocks(block_samples, dtype="float32", always_2d=True)
            )
            if sample_rate is None or sample_rate == rate:
                yield from blocks
                return
            config = ResampleConfig(rate, int(sample_rate))
            state = init_resample_state(config)
            for block in blocks:
                out, state = resample_step(block, state, config)
                yield out.astype(np.float32)
            yield resample_flush(state, config).astype(np.float32)

    return rechunk(resampled(), chunk_samples)


def write_audio(
    path: str | Path, signal: np.ndarray, sample_rate: int, *, subtype: str | None = None
) -> None:
    """Write ``(samples,)`` or ``(channels, samples)`` floats in ``[-1, 1]`` to a WAV/FLAC file.

    The format follows the extension; ``subtype`` defaults to 16-bit PCM. Samples beyond
    ``[-1, 1]`` are clipped by libsndfile.
    """
    _check_rate(sample_rate)
    if sample_rate is None:
        raise ValueError("sample_rate is None; expected the signal's rate in Hz")
    array = np.asarray(signal)
    if array.ndim not in (1, 2):
        raise ValueError(
            f"signal has shape {array.shape}; expected (samples,) or (channels, samples)"
        )
    sf = _soundfile()
    data = array if array.ndim == 1 else array.T
    sf.write(str(path), data, int(sample_rate), subtype=subtype or "PCM_16")
