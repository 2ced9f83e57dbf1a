r"""Streaming short-time Fourier transform and its inverse by weighted overlap-add.

Frame ``i`` of a signal ``x`` starts at sample ``i * hop`` and holds ``n_fft`` samples times
the analysis window ``w`` (``win_length`` taps centred in ``n_fft``, zeros around, as in
``torch.stft``):

.. math:: X_i[k] = \sum_{n=0}^{N-1} w[n]\, x[i H + n]\, e^{-2\pi j k n / N},
          \quad k = 0 \dots N/2

The inverse windows each inverse FFT again and divides the overlap-added sum by the
overlap-added squared window (the envelope), which reconstructs ``x`` exactly wherever the
envelope is nonzero, for any window (``torch.istft``'s rule):

.. math:: \hat x[n] = \frac{\sum_i w[n - iH]\, \mathrm{irfft}(X_i)[n - iH]}{\sum_i w[n - iH]^2}

Streaming: :func:`stft_step` takes chunks of any size and returns the frames they complete;
the state keeps the fewer than ``n_fft`` samples later frames still need, so its size and the
cost per chunk do not depend on how long the stream has run. :func:`istft_step` emits the
``hop`` samples each frame finishes and :func:`istft_flush` the last ``n_fft - hop``. The
offline :func:`stft` / :func:`istft` are the steps applied once, so both paths agree exactly.

Frames are rows: spectra are ``(n_frames, n_fft // 2 + 1)`` (``torch.stft`` returns the
transpose). Samples are float64 inside; chunks may be float32 or float64 (the kernels take both).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, get_args

import numpy as np

from eventsp.audio._fft import fft_plan
from eventsp.audio._fused import _istft_chunk, _stft_chunk
from eventsp.audio._kernels import _frame_chunk, _normalise, _overlap_add

__all__ = [
    "FFTBackend",
    "FrameState",
    "ISTFTState",
    "STFTConfig",
    "WindowName",
    "frame_step",
    "init_frame_state",
    "init_istft_state",
    "init_stft_state",
    "istft",
    "istft_flush",
    "istft_step",
    "make_window",
    "stft",
    "stft_step",
]

WindowName = Literal["hann", "sqrt_hann", "hamming", "rectangular"]
FFTBackend = Literal["numba", "numpy"]

# Envelope below which a sample counts as covered by no window (torch.istft's NOLA bound).
_TINY_ENVELOPE = 1e-11


def make_window(name: WindowName, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic window of ``win_length`` taps, zero-padded on both sides to ``n_fft`` (float64).

    ``hann`` and ``hamming`` equal ``torch.hann_window`` / ``torch.hamming_window`` (periodic);
    ``sqrt_hann`` is the square root of ``hann`` (a COLA pair for analysis and synthesis).
    """
    if name not in get_args(WindowName):
        raise ValueError(f"window is {name!r}; expected one of {get_args(WindowName)}")
    phase = 2.0 * np.pi * np.arange(win_length) / win_length
    if name == "hann":
        taps = 0.5 - 0.5 * np.cos(phase)
    elif name == "sqrt_hann":
        taps = np.sqrt(0.5 - 0.5 * np.cos(phase))
    elif name == "hamming":
        taps = 0.54 - 0.46 * np.cos(phase)
    else:
        taps = np.ones(win_length)
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = taps
    return window


@dataclass(frozen=True)
class STFTConfig:
    """Framing and window of an STFT.

    Attributes
    ----------
    n_fft: FFT size in samples (frame length); ``n_fft // 2 + 1`` frequency bins.
    hop_length: samples between frame starts (160 = 10 ms at 16 kHz).
    win_length: window taps, at most ``n_fft``; ``None`` means ``n_fft``.
    window: window name, see :func:`make_window`.
    center: offline only: reflect-pad ``n_fft // 2`` samples at both ends first, so frame ``i``
        is centred on sample ``i * hop`` (``torch.stft(center=True)``). A stream has no end to
        pad, so the step functions need ``center=False``.
    fft: ``"numba"``: each chunk is framed and transformed (or inverse transformed and
        overlap-added) in one jitted call, with the FFT of :mod:`eventsp.audio._fft` (even
        ``n_fft``); ``"numpy"``: ``numpy.fft`` between Numba kernels (any ``n_fft``).
    """

    n_fft: int = 400
    hop_length: int = 160
    win_length: int | None = None
    window: WindowName = "hann"
    center: bool = False
    fft: FFTBackend = "numba"

    def __post_init__(self) -> None:
        if self.win_length is None:
            object.__setattr__(self, "win_length", self.n_fft)
        _check_framing(self.n_fft, self.hop_length, self.win_length, self.window)
        if self.fft not in get_args(FFTBackend):
            raise ValueError(f"fft is {self.fft!r}; expected one of {get_args(FFTBackend)}")
        if self.fft == "numba":
            fft_plan(self.n_fft)  # raises for an odd n_fft, naming fft='numpy'

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1


def _check_framing(n_fft: int, hop_length: int, win_length: int | None, window: str) -> None:
    for name, value in (("n_fft", n_fft), ("hop_length", hop_length), ("win_length", win_length)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} is {value!r}; expected a positive integer number of samples")
    if n_fft < 2:
        raise ValueError(f"n_fft is {n_fft}; expected at least 2 samples")
    if win_length > n_fft:
        raise ValueError(
            f"win_length is {win_length}, longer than n_fft={n_fft}; use win_length <= n_fft"
        )
    if hop_length > n_fft:
        raise ValueError(
            f"hop_length is {hop_length}, longer than n_fft={n_fft}, so samples between frames "
            "would be skipped; use hop_length <= n_fft"
        )
    if window not in get_args(WindowName):
        raise ValueError(f"window is {window!r}; expected one of {get_args(WindowName)}")


@functools.lru_cache(maxsize=64)
def _window(n_fft: int, win_length: int, name: str) -> np.ndarray:
    window = make_window(name, win_length, n_fft)  # type: ignore[arg-type]
    return window


class FrameState(NamedTuple):
    """A stream's framing state: the samples that later frames still need.

    Attributes
    ----------
    tail: ``(n_fft,)`` float64; the first ``fill[0]`` entries are the held samples.
    fill: ``(1,)`` int64, how many samples ``tail`` holds (always fewer than ``n_fft``).
    frames: ``(1,)`` int64, frames emitted so far; frame ``i`` starts at sample ``i * hop``.
    """

    tail: np.ndarray
    fill: np.ndarray
    frames: np.ndarray


def init_frame_state(n_fft: int) -> FrameState:
    """State of a new stream cut into frames of ``n_fft`` samples."""
    return FrameState(np.zeros(n_fft), np.zeros(1, np.int64), np.zeros(1, np.int64))


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_chunk(chunk: np.ndarray) -> np.ndarray:
    """A contiguous 1-D float32 or float64 array of the chunk's samples (kernels take both)."""
    array = np.asarray(chunk)
    if array.ndim != 1:
        raise ValueError(
            f"chunk has shape {array.shape}; expected a 1-D mono signal (samples,). "
            "Mix channels down first (read_audio(..., mono=True) does)"
        )
    if array.dtype not in _KERNEL_DTYPES:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"chunk has dtype {array.dtype}; expected float32 or float64 samples in [-1, 1]. "
                "Convert integer PCM first, e.g. x.astype(np.float32) / 32768"
            )
        array = array.astype(np.float64)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array


def _start_frames(
    samples: np.ndarray, state: FrameState | tuple, n_fft: int, hop_length: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Copies of the state's buffers, and how many frames ``samples`` complete."""
    if state.tail.shape != (n_fft,):
        raise ValueError(
            f"state holds a buffer of {state.tail.shape} samples but frames are {n_fft} long; "
            "create the state with the same config"
        )
    tail = state.tail.copy()
    fill = state.fill.copy()
    total = int(fill[0]) + samples.shape[0]
    return tail, fill, (0 if total < n_fft else (total - n_fft) // hop_length + 1)


def frame_step(
    chunk: np.ndarray, state: FrameState, hop_length: int, window: np.ndarray
) -> tuple[np.ndarray, FrameState]:
    """Windowed frames ``(n_frames, len(window))`` completed by ``chunk``, and the new state."""
    samples = _as_chunk(chunk)
    n_fft = window.shape[0]
    tail, fill, n = _start_frames(samples, state, n_fft, hop_length)
    out = np.empty((n, n_fft))
    _frame_chunk(tail, fill, samples, hop_length, window, out)
    return out, FrameState(tail, fill, state.frames + n)


def init_stft_state(config: STFTConfig) -> FrameState:
    """State of a new stream for :func:`stft_step`."""
    return init_frame_state(config.n_fft)


def _require_streaming(config: STFTConfig | object) -> None:
    if getattr(config, "center", False):
        raise ValueError(
            "config.center is True, which pads both ends of a whole signal; a stream has no end. "
            "Use center=False for streaming, or the offline function for whole signals"
        )


def stft_step(
    chunk: np.ndarray, state: FrameState, config: STFTConfig
) -> tuple[np.ndarray, FrameState]:
    """Spectra ``(n_frames, n_freq)`` complex128 of the frames ``chunk`` completes, new state.

    ``chunk`` is any number of samples (zero included); ``config.center`` must be False.
    """
    _require_streaming(config)
    window = _window(config.n_fft, config.win_length, config.window)
    if config.fft == "numpy":
        frames, state = frame_step(chunk, state, config.hop_length, window)
        return np.fft.rfft(frames, axis=1), state
    samples = _as_chunk(chunk)
    tail, fill, n = _start_frames(samples, state, config.n_fft, config.hop_length)
    out = np.empty((n, config.n_freq), np.complex128)
    _stft_chunk(tail, fill, samples, config.hop_length, window, *fft_plan(config.n_fft), out)
    return out, FrameState(tail, fill, state.frames + n)


def _reflect_pad(signal: np.ndarray, n_fft: int) -> np.ndarray:
    pad = n_fft // 2
    if signal.shape[0] <= pad:
        raise ValueError(
            f"signal has {signal.shape[0]} samples; center=True reflects n_fft // 2 = {pad} "
            "samples at each end, so it needs more than that. Use center=False or a longer signal"
        )
    return np.pad(signal, pad, mode="reflect")


def stft(signal: np.ndarray, config: STFTConfig) -> np.ndarray:
    """Spectra ``(n_frames, n_freq)`` complex128 of a whole 1-D signal (= :func:`stft_step`)."""
    samples = _as_chunk(signal)
    if config.center:
        samples = _reflect_pad(samples, config.n_fft)
        config = _streaming(config)
    spectra, _ = stft_step(samples, init_stft_state(config), config)
    return spectra


def _streaming(config: STFTConfig) -> STFTConfig:
    return replace(config, center=False)


class ISTFTState(NamedTuple):
    """A stream's overlap-add state.

    Attributes
    ----------
    acc: ``(n_fft,)`` float64, overlap-added windowed frames from the first unfinished sample.
    envelope: ``(n_fft,)`` float64, overlap-added squared windows, aligned with ``acc``.
    """

    acc: np.ndarray
    envelope: np.ndarray


def init_istft_state(config: STFTConfig) -> ISTFTState:
    """State of a new stream for :func:`istft_step`."""
    return ISTFTState(np.zeros(config.n_fft), np.zeros(config.n_fft))


def istft_step(
    spectra: np.ndarray, state: ISTFTState, config: STFTConfig
) -> tuple[np.ndarray, ISTFTState]:
    """Samples ``(n_frames * hop,)`` float64 that the frames ``spectra`` finish, and new state.

    ``spectra`` is ``(n_frames, n_freq)`` complex, as :func:`stft_step` returns.
    """
    _require_streaming(config)
    array = np.asarray(spectra)
    if array.ndim != 2 or array.shape[1] != config.n_freq:
        raise ValueError(
            f"spectra have shape {array.shape}; expected (n_frames, {config.n_freq}) "
            f"for n_fft={config.n_fft}, as stft_step returns"
        )
    window = _window(config.n_fft, config.win_length, config.window)
    acc = state.acc.copy()
    envelope = state.envelope.copy()
    out = np.empty(array.shape[0] * config.hop_length)
    hop = config.hop_length
    if config.fft == "numpy":
        frames = np.ascontiguousarray(np.fft.irfft(array, n=config.n_fft, axis=1))
        _overlap_add(frames, hop, window, acc, envelope, out, _TINY_ENVELOPE)
    else:
        spectra = np.ascontiguousarray(array, dtype=np.complex128)
        plan = fft_plan(config.n_fft)
        _istft_chunk(spectra, hop, window, *plan, acc, envelope, out, _TINY_ENVELOPE)
    return out, ISTFTState(acc, envelope)


def istft_flush(state: ISTFTState, config: STFTConfig) -> np.ndarray:
    """The last ``n_fft - hop`` samples of a stream that has ended (float64)."""
    n = config.n_fft - config.hop_length
    out = np.empty(n)
    _normalise(state.acc[:n].copy(), state.envelope[:n].copy(), _TINY_ENVELOPE, out)
    return out


def istft(spectra: np.ndarray, config: STFTConfig, length: int | None = None) -> np.ndarray:
    """Signal (float64) from whole-signal spectra: :func:`istft_step` then :func:`istft_flush`.

    With ``center=True`` the ``n_fft // 2`` padded samples are cut from both ends, like
    ``torch.istft``. ``length`` trims or zero-pads the result to that many samples.
    """
    streaming = _streaming(config) if config.center else config
    state = init_istft_state(streaming)
    body, state = istft_step(spectra, state, streaming)
    signal = np.concatenate([body, istft_flush(state, streaming)])
    start = config.n_fft // 2 if config.center else 0
    if length is None:
        end = signal.shape[0] - start
        return signal[start:end]
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 0:
        raise ValueError(f"length is {length!r}; expected a non-negative number of samples")
    signal = signal[start : start + length]
    return np.pad(signal, (0, length - signal.shape[0]))
