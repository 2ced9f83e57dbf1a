r"""Streaming log-mel features, equal to ``torchaudio.transforms.MelSpectrogram`` plus a log.

For each STFT frame ``X_i`` (:mod:`eventsp.audio.stft`) and mel band ``m``
(:mod:`eventsp.audio.mel`):

.. math:: F_i[m] = \ln\Big(\sum_k \mathrm{fb}[k, m]\, |X_i[k]|^{p} + \epsilon\Big)

with ``p = power`` (2: power, 1: magnitude) and ``epsilon = log_offset``. With the same
parameters, ``torch.log(MelSpectrogram(...)(x) + log_offset).T`` gives the same numbers:
``tests/audio/test_logmel.py`` checks, on real speech, within 2e-6 of torchaudio run in float64
and within 1e-4 of torchaudio in float32 (plus the float32 run's own rounding error, which
reaches ~4e-4 in near-silent bands, where the log magnifies it). Internally everything is
float64; the features are float32.

Streaming: :func:`logmel_step` takes chunks of any size (10 ms, one sample, a whole file) and
returns the feature frames they complete; the state is the framing tail (fewer than ``n_fft``
samples), so the cost per chunk does not grow with the stream. :func:`logmel` runs the same
step once over a whole signal, with optional ``center=True`` reflect padding as torchaudio's
default does. Frame ``i`` covers samples ``[i * hop, i * hop + n_fft)`` of the stream
(``state.frames`` counts the frames so far).

Two ways to compute the same features (``fft=``): ``"numba"`` (the default) frames, transforms,
mels and logs a whole chunk in one jitted call with the mixed-radix FFT of
:mod:`eventsp.audio._fft` (``n_fft`` even); ``"numpy"`` frames and mels in Numba and calls
``numpy.fft.rfft`` on the chunk's frames in between (any ``n_fft``). They agree to ~1e-12 before
the float32 output; ``bench/audio_frontend.py`` measures both at 10 ms hops.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from eventsp.audio._fft import FFTPlan, fft_plan
from eventsp.audio._fused import _logmel_batch, _logmel_chunk
from eventsp.audio._kernels import _mel_log
from eventsp.audio.mel import MelNorm, MelScale, mel_filterbank
from eventsp.audio.stft import (
    FFTBackend,
    STFTConfig,
    WindowName,
    _as_chunk,
    _reflect_pad,
    _require_streaming,
    _start_frames,
    _window,
    frame_step,
)

__all__ = [
    "FFTBackend",
    "LogMelConfig",
    "LogMelState",
    "init_logmel_state",
    "logmel",
    "logmel_batch",
    "logmel_step",
]


@dataclass(frozen=True)
class LogMelConfig:
    """Parameters of the log-mel front-end (defaults: 40 mels, 25 ms windows, 10 ms hops).

    Attributes
    ----------
    sample_rate: input sample rate in Hz (resample first; see :mod:`eventsp.audio.resample`).
    n_fft, win_length, hop_length, window: framing in samples, as :class:`STFTConfig`.
    n_mels: number of mel bands.
    f_min, f_max: band edges in Hz; ``f_max=None`` means ``sample_rate // 2``.
    power: exponent of the magnitude, 2.0 (power) or 1.0 (magnitude), or any positive float.
    mel_scale, norm: filterbank options, as ``torchaudio.functional.melscale_fbanks``.
    log: take the natural log; False returns the mel spectrogram itself.
    log_offset: added before the log so that silence gives ``log(log_offset)``, not -inf.
    center: offline only, reflect-pad ``n_fft // 2`` at both ends (torchaudio's default).
    fft: ``"numba"`` (one jitted call per chunk; even ``n_fft``) or ``"numpy"`` (any ``n_fft``).
    """

    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int | None = None
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    window: WindowName = "hann"
    power: float = 2.0
    mel_scale: MelScale = "htk"
    norm: MelNorm = None
    log: bool = True
    log_offset: float = 1e-6
    center: bool = False
    fft: FFTBackend = "numba"

    def __post_init__(self) -> None:
        if self.win_length is None:
            object.__setattr__(self, "win_length", self.n_fft)
        if self.f_max is None:
            object.__setattr__(self, "f_max", float(self.sample_rate // 2))
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate < 1:
            raise ValueError(f"sample_rate is {rate!r}; expected a positive integer in Hz")
        if isinstance(self.n_mels, bool) or not isinstance(self.n_mels, int) or self.n_mels < 1:
            raise ValueError(f"n_mels is {self.n_mels!r}; expected a positive integer")
        if not self.power > 0:
            raise ValueError(f"power is {self.power!r}; expected 2.0 (power) or 1.0 (magnitude)")
        if not self.log_offset > 0:
            raise ValueError(
                f"log_offset is {self.log_offset!r}; expected a positive number such as 1e-6 "
                "(it keeps log(0) finite)"
            )
        if self.f_max > rate / 2:
            raise ValueError(
                f"f_max is {self.f_max} Hz, above the Nyquist frequency {rate / 2} Hz of "
                f"sample_rate={rate}; use f_max <= sample_rate / 2"
            )
        if self.fft not in ("numba", "numpy"):
            raise ValueError(f"fft is {self.fft!r}; expected 'numba' or 'numpy'")
        self.stft  # validates the framing  # noqa: B018
        _plan(self)  # validates the filterbank

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, for a model file's metadata (``front_end``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> LogMelConfig:
        """The config :meth:`to_dict` wrote; unknown keys raise (a newer file, or a typo)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"log-mel config has unknown fields {unknown}; expected some of {sorted(known)}"
            )
        return cls(**fields)

    def to_torchaudio(self) -> Any:
        """The same transform in torchaudio: a ``MelSpectrogram`` (float32), without the log.

        ``torch.log(t(x) + config.log_offset).transpose(-1, -2)`` gives these features (to
        float32 rounding), for training on a GPU. Imports torch and torchaudio (``train``
        extra); ``center`` follows the config.
        """
        import torch
        import torchaudio

        windows = {
            "hann": torch.hann_window,
            "hamming": torch.hamming_window,
            "sqrt_hann": _sqrt_hann_window,
            "rectangular": torch.ones,
        }
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=self.f_min,
            f_max=self.f_max,
            n_mels=self.n_mels,
            window_fn=windows[self.window],
            power=self.power,
            center=self.center,
            pad_mode="reflect",
            norm=self.norm,
            mel_scale=self.mel_scale,
        )

    @property
    def stft(self) -> STFTConfig:
        """The framing of these features as an :class:`STFTConfig`."""
        return STFTConfig(
            self.n_fft, self.hop_length, self.win_length, self.window, self.center, self.fft
        )

    @property
    def frame_rate_hz(self) -> float:
        """Feature frames per second of audio."""
        return self.sample_rate / self.hop_length


def _sqrt_hann_window(length: int, **kwargs: Any) -> Any:
    """``sqrt(torch.hann_window(length))``: torchaudio's ``window_fn`` for ``"sqrt_hann"``."""
    import torch

    return torch.hann_window(length, **kwargs).sqrt()


class _Plan(NamedTuple):
    window: np.ndarray
    fb: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    fft: FFTPlan | None


@functools.lru_cache(maxsize=64)
def _plan(config: LogMelConfig) -> _Plan:
    fb = mel_filterbank(
        config.n_fft // 2 + 1,
        config.f_min,
        config.f_max,
        config.n_mels,
        config.sample_rate,
        config.norm,
        config.mel_scale,
    )
    nonzero = fb != 0.0
    lo = np.argmax(nonzero, axis=0).astype(np.int64)
    hi = (fb.shape[0] - np.argmax(nonzero[::-1], axis=0)).astype(np.int64)
    window = _window(config.n_fft, config.win_length, config.window)
    fft = fft_plan(config.n_fft) if config.fft == "numba" else None
    return _Plan(window, np.ascontiguousarray(fb), lo, hi, fft)


class LogMelState(NamedTuple):
    """A stream's front-end state (the framing tail; see :class:`eventsp.audio.FrameState`).

    Attributes
    ----------
    tail: ``(n_fft,)`` float64; the first ``fill[0]`` entries are samples later frames need.
    fill: ``(1,)`` int64, number of held samples (fewer than ``n_fft``).
    frames: ``(1,)`` int64, frames emitted so far.
    """

    tail: np.ndarray
    fill: np.ndarray
    frames: np.ndarray


def init_logmel_state(config: LogMelConfig) -> LogMelState:
    """State of a new stream for :func:`logmel_step`."""
    return LogMelState(np.zeros(config.n_fft), np.zeros(1, np.int64), np.zeros(1, np.int64))


def logmel_step(
    chunk: np.ndarray, state: LogMelState, config: LogMelConfig
) -> tuple[np.ndarray, LogMelState]:
    """Features ``(n_frames, n_mels)`` float32 of the frames ``chunk`` completes, new state.

    ``chunk`` is a 1-D float array of any length at ``config.sample_rate``; the caller's
    ``state`` is not changed. ``config.center`` must be False.
    """
    if config.center:
        _require_streaming(config)
    plan = _plan(config)
    offset = config.log_offset if config.log else 0.0
    if plan.fft is None:
        frames, framed = frame_step(chunk, state, config.hop_length, plan.window)
        spectra = np.fft.rfft(frames, axis=1)
        out = np.empty((frames.shape[0], config.n_mels), np.float32)
        _mel_log(spectra, float(config.power), plan.fb, plan.lo, plan.hi, offset, out)
        return out, LogMelState(framed.tail, framed.fill, framed.frames)
    samples = _as_chunk(chunk)
    tail, fill, n = _start_frames(samples, state, config.n_fft, config.hop_length)
    out = np.empty((n, config.n_mels), np.float32)
    fft = plan.fft
    _logmel_chunk(
        tail,
        fill,
        samples,
        config.hop_length,
        plan.window,
        fft.perm,
        fft.radices,
        fft.twiddle,
        fft.stage_twiddle,
        fft.post,
        float(config.power),
        plan.fb,
        plan.lo,
        plan.hi,
        offset,
        out,
    )
    return out, LogMelState(tail, fill, state.frames + n)


def logmel(signal: np.ndarray, config: LogMelConfig) -> np.ndarray:
    """Features ``(n_frames, n_mels)`` float32 of a whole 1-D signal (= :func:`logmel_step`).

    With ``center=True`` the signal is reflect-padded by ``n_fft // 2`` at both ends first,
    giving ``1 + len(signal) // hop`` frames like torchaudio; otherwise
    ``1 + (len(signal) - n_fft) // hop`` (none when the signal is shorter than ``n_fft``).
    """
    samples = _as_chunk(signal)
    if config.center:
        samples = _reflect_pad(samples, config.n_fft)
        config = replace(config, center=False)
    features, _ = logmel_step(samples, init_logmel_state(config), config)
    return features


def logmel_batch(signals: np.ndarray, config: LogMelConfig) -> np.ndarray:
    """Features ``(batch, n_frames, n_mels)`` float32 of equal-length clips ``(batch, samples)``.

    Row ``b`` equals ``logmel(signals[b], config)``; with ``fft="numba"`` the rows run in
    parallel on Numba's threads (``NUMBA_NUM_THREADS``). For preparing training data.
    """
    array = np.asarray(signals)
    if array.ndim != 2:
        raise ValueError(
            f"signals have shape {array.shape}; expected (batch, samples) clips of one length. "
            "Use logmel() for a single 1-D signal"
        )
    if array.dtype not in (np.float32, np.float64):
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"signals have dtype {array.dtype}; expected float32 or float64")
        array = array.astype(np.float64)
    if config.center:
        pad = config.n_fft // 2
        if array.shape[1] <= pad:
            _reflect_pad(array[0], config.n_fft)  # raises with the message
        array = np.pad(array, ((0, 0), (pad, pad)), mode="reflect")
        config = replace(config, center=False)
    array = np.ascontiguousarray(array)
    length = array.shape[1]
    n = 0 if length < config.n_fft else (length - config.n_fft) // config.hop_length + 1
    out = np.empty((array.shape[0], n, config.n_mels), np.float32)
    plan = _plan(config)
    if plan.fft is None:
        for b in range(array.shape[0]):
            out[b] = logmel(array[b], config)
        return out
    fft = plan.fft
    offset = config.log_offset if config.log else 0.0
    _logmel_batch(
        array,
        config.hop_length,
        plan.window,
        fft.perm,
        fft.radices,
        fft.twiddle,
        fft.stage_twiddle,
        fft.post,
        float(config.power),
        plan.fb,
        plan.lo,
        plan.hi,
        offset,
        out,
    )
    return out
