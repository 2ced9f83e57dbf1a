"""One-call kernels: a whole chunk framed, transformed and reduced in a single jitted call.

Calling ``numpy.fft`` from Python once per 10 ms chunk costs more than the transform (see
``bench/audio_frontend.py``), so these kernels join the framing of :mod:`eventsp.audio._kernels`
with the mixed-radix FFT of :mod:`eventsp.audio._fft`: :func:`_logmel_chunk` (log-mel
features), :func:`_stft_chunk` (spectra) and :func:`_istft_chunk` (inverse FFT and
overlap-add), plus :func:`_logmel_batch`, the parallel layer over clips. They compute the same
numbers as the two-step paths (``fft="numpy"``) to rounding.
"""

from __future__ import annotations

import numba
import numpy as np

from eventsp._jit import jit
from eventsp.audio._fft import _irfft_frame, _largest, _rfft_frame
from eventsp.audio._kernels import _keep_tail, _mel_log_row, _n_frames, _ola_frame

__all__: list[str] = []


_LOGMEL_SIGNATURE = (
    "int64(float64[::1], int64[::1], {}[::1], int64, float64[::1], int64[::1], int64[::1], "
    "complex128[::1], complex128[::1], complex128[::1], float64, float64[:, ::1], int64[::1], "
    "int64[::1], float64, float32[:, ::1])"
)


@jit([_LOGMEL_SIGNATURE.format("float32"), _LOGMEL_SIGNATURE.format("float64")])
def _logmel_chunk(
    tail: np.ndarray,
    fill: np.ndarray,
    chunk: np.ndarray,
    hop: int,
    window: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    power: float,
    fb: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    log_offset: float,
    out: np.ndarray,
) -> int:
    """Frame, window, FFT (:mod:`eventsp.audio._fft`), mel and log a chunk in one call.

    The same as :func:`_frame_chunk`, ``rfft`` and :func:`_mel_log` in turn; ``out`` is
    ``(n_frames, n_mels)``. Returns the number of frames written.
    """
    frame_length = window.shape[0]
    half = perm.shape[0]
    held = fill[0]
    n = _n_frames(held, chunk.shape[0], frame_length, hop)
    frame = np.empty(frame_length)
    work = np.empty(half, np.complex128)
    tmp = np.empty(_largest(radices), np.complex128)
    spectrum = np.empty(half + 1, np.complex128)
    magnitude = np.empty(half + 1)
    for i in range(n):
        start = i * hop
        for k in range(frame_length):
            j = start + k
            value = tail[j] if j < held else chunk[j - held]
            frame[k] = window[k] * value
        _rfft_frame(frame, perm, radices, twiddle, stage_twiddle, post, work, tmp, spectrum)
        _mel_log_row(spectrum, power, fb, lo, hi, log_offset, magnitude, out[i])
    _keep_tail(tail, fill, chunk, n * hop)
    return n


_STFT_SIGNATURE = (
    "int64(float64[::1], int64[::1], {}[::1], int64, float64[::1], int64[::1], int64[::1], "
    "complex128[::1], complex128[::1], complex128[::1], complex128[:, ::1])"
)


@jit([_STFT_SIGNATURE.format("float32"), _STFT_SIGNATURE.format("float64")])
def _stft_chunk(
    tail: np.ndarray,
    fill: np.ndarray,
    chunk: np.ndarray,
    hop: int,
    window: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    out: np.ndarray,
) -> int:
    """Frame, window and FFT a chunk in one call (:func:`_frame_chunk`, then ``rfft``).

    ``out`` is ``(n_frames, n_fft // 2 + 1)``. Returns the number of frames written.
    """
    frame_length = window.shape[0]
    held = fill[0]
    n = _n_frames(held, chunk.shape[0], frame_length, hop)
    frame = np.empty(frame_length)
    work = np.empty(perm.shape[0], np.complex128)
    tmp = np.empty(_largest(radices), np.complex128)
    for i in range(n):
        start = i * hop
        for k in range(frame_length):
            j = start + k
            value = tail[j] if j < held else chunk[j - held]
            frame[k] = window[k] * value
        _rfft_frame(frame, perm, radices, twiddle, stage_twiddle, post, work, tmp, out[i])
    _keep_tail(tail, fill, chunk, n * hop)
    return n


@jit(
    "void(complex128[:, ::1], int64, float64[::1], int64[::1], int64[::1], complex128[::1], "
    "complex128[::1], complex128[::1], float64[::1], float64[::1], float64[::1], float64)"
)
def _istft_chunk(
    spectra: np.ndarray,
    hop: int,
    window: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    acc: np.ndarray,
    envelope: np.ndarray,
    out: np.ndarray,
    tiny: float,
) -> None:
    """Inverse FFT each row of ``spectra`` and overlap-add it (:func:`_ola_frame`)."""
    m = perm.shape[0]
    frame = np.empty(window.shape[0])
    work = np.empty(m, np.complex128)
    scratch = np.empty(m, np.complex128)
    tmp = np.empty(_largest(radices), np.complex128)
    for i in range(spectra.shape[0]):
        _irfft_frame(
            spectra[i], perm, radices, twiddle, stage_twiddle, post, work, scratch, tmp, frame
        )
        _ola_frame(frame, hop, window, acc, envelope, out, i * hop, tiny)


@jit(None, parallel=True)
def _logmel_batch(
    signals: np.ndarray,
    hop: int,
    window: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    power: float,
    fb: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    log_offset: float,
    out: np.ndarray,
) -> None:
    """:func:`_logmel_chunk` on each row of ``signals`` ``(batch, samples)`` as a new stream,
    rows in parallel; ``out`` is ``(batch, n_frames, n_mels)``.

    No signature, so compiled on first use: a parallel kernel takes several seconds to compile,
    and with a signature every cold ``import eventsp.audio`` would pay that for a function that
    only training-data preparation calls. The driver passes float32 or float64 C-contiguous
    ``signals`` and the plan's arrays, so at most two specialisations exist.
    """
    for b in numba.prange(signals.shape[0]):
        tail = np.zeros(window.shape[0])
        fill = np.zeros(1, np.int64)
        _logmel_chunk(
            tail,
            fill,
            signals[b],
            hop,
            window,
            perm,
            radices,
            twiddle,
            stage_twiddle,
            post,
            power,
            fb,
            lo,
            hi,
            log_offset,
            out[b],
        )
