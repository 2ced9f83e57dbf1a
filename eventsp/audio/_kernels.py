"""Numba kernels of the audio front-end: framing, overlap-add, mel + log, polyphase resampling.

Every kernel is serial, writes into outputs its driver allocated, and updates the stream's
buffers in place; the drivers (:mod:`eventsp.audio.stft`, :mod:`eventsp.audio.logmel`,
:mod:`eventsp.audio.resample`) copy the state first, so callers never see it change.

Buffers are fixed-size: ``tail`` holds the samples of a stream that later frames still need
(fewer than one frame), ``fill[0]`` how many of them are valid. A chunk is read as the
concatenation ``tail[:fill] ++ chunk``; the framing kernels index it in place, the resampler
copies it once so that its inner loop has no branch. The one-call kernels that add the FFT are
in :mod:`eventsp.audio._fused`.
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit

__all__: list[str] = []


@jit("int64(int64, int64, int64, int64)", inline="always")
def _n_frames(fill: int, n_new: int, frame_length: int, hop: int) -> int:
    total = fill + n_new
    if total < frame_length:
        return 0
    return (total - frame_length) // hop + 1


@jit(
    [
        "void(float64[::1], int64[::1], float32[::1], int64)",
        "void(float64[::1], int64[::1], float64[::1], int64)",
    ],
    inline="always",
)
def _keep_tail(tail: np.ndarray, fill: np.ndarray, chunk: np.ndarray, first: int) -> None:
    """Keep the samples of ``tail[:fill] ++ chunk`` from index ``first`` on in ``tail``.

    Called by every framing kernel once its frames are cut (``first`` = frames * hop), so the
    next chunk continues where this one stopped; moves left only, so it works in place.
    """
    held = fill[0]
    kept = held + chunk.shape[0] - first
    for k in range(kept):
        j = first + k
        tail[k] = tail[j] if j < held else chunk[j - held]
    fill[0] = kept


@jit(
    [
        "int64(float64[::1], int64[::1], float32[::1], int64, float64[::1], float64[:, ::1])",
        "int64(float64[::1], int64[::1], float64[::1], int64, float64[::1], float64[:, ::1])",
    ]
)
def _frame_chunk(
    tail: np.ndarray,
    fill: np.ndarray,
    chunk: np.ndarray,
    hop: int,
    window: np.ndarray,
    out: np.ndarray,
) -> int:
    """Cut windowed frames from ``tail[:fill] ++ chunk`` into ``out``; keep the rest in ``tail``.

    ``out`` has one row per whole frame, ``(n_frames, frame_length)``; ``window`` has
    ``frame_length`` taps. Returns the number of frames written.
    """
    frame_length = window.shape[0]
    held = fill[0]
    n = _n_frames(held, chunk.shape[0], frame_length, hop)
    for i in range(n):
        start = i * hop
        for k in range(frame_length):
            j = start + k
            value = tail[j] if j < held else chunk[j - held]
            out[i, k] = window[k] * value
    _keep_tail(tail, fill, chunk, n * hop)
    return n


@jit(
    "void(complex128[::1], float64, float64[:, ::1], int64[::1], int64[::1], float64, "
    "float64[::1], float32[::1])"
)
def _mel_log_row(
    spectrum: np.ndarray,
    power: float,
    fb: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    log_offset: float,
    magnitude: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[m] = log(sum_k fb[k, m] |spectrum[k]|**power + log_offset)`` for one frame.

    ``fb`` is the ``(n_freq, n_mels)`` filterbank; band ``m`` is nonzero only on the bins
    ``lo[m] <= k < hi[m]``, so the sum skips the zeros. ``log_offset <= 0`` skips the log.
    ``magnitude`` is scratch space of ``n_freq`` entries.
    """
    for k in range(spectrum.shape[0]):
        re = spectrum[k].real
        im = spectrum[k].imag
        p = re * re + im * im
        if power == 2.0:
            magnitude[k] = p
        elif power == 1.0:
            magnitude[k] = np.sqrt(p)
        else:
            magnitude[k] = p ** (0.5 * power)
    for m in range(fb.shape[1]):
        acc = 0.0
        for k in range(lo[m], hi[m]):
            acc += fb[k, m] * magnitude[k]
        out[m] = np.log(acc + log_offset) if log_offset > 0.0 else acc


@jit(
    "void(complex128[:, ::1], float64, float64[:, ::1], int64[::1], int64[::1], float64, "
    "float32[:, ::1])"
)
def _mel_log(
    spectrum: np.ndarray,
    power: float,
    fb: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    log_offset: float,
    out: np.ndarray,
) -> None:
    """:func:`_mel_log_row` for each row of ``spectrum`` ``(n_frames, n_freq)``."""
    magnitude = np.empty(spectrum.shape[1])
    for i in range(spectrum.shape[0]):
        _mel_log_row(spectrum[i], power, fb, lo, hi, log_offset, magnitude, out[i])


@jit(
    "void(float64[::1], int64, float64[::1], float64[::1], float64[::1], float64[::1], int64, "
    "float64)"
)
def _ola_frame(
    frame: np.ndarray,
    hop: int,
    window: np.ndarray,
    acc: np.ndarray,
    envelope: np.ndarray,
    out: np.ndarray,
    offset: int,
    tiny: float,
) -> None:
    """Overlap-add one synthesis frame; write the ``hop`` samples it finishes at ``out[offset:]``.

    ``acc`` and ``envelope`` (length ``frame_length``) hold the running sums of windowed frames
    and of squared windows, aligned so that index 0 is the first unfinished sample. A finished
    sample is sum / envelope, or 0 where the envelope is below ``tiny`` (no window covers it).
    """
    frame_length = frame.shape[0]
    for k in range(frame_length):
        w = window[k]
        acc[k] += w * frame[k]
        envelope[k] += w * w
    for k in range(hop):
        e = envelope[k]
        out[offset + k] = acc[k] / e if e > tiny else 0.0
    for k in range(frame_length - hop):
        acc[k] = acc[k + hop]
        envelope[k] = envelope[k + hop]
    for k in range(frame_length - hop, frame_length):
        acc[k] = 0.0
        envelope[k] = 0.0


@jit(
    "void(float64[:, ::1], int64, float64[::1], float64[::1], float64[::1], float64[::1], float64)"
)
def _overlap_add(
    frames: np.ndarray,
    hop: int,
    window: np.ndarray,
    acc: np.ndarray,
    envelope: np.ndarray,
    out: np.ndarray,
    tiny: float,
) -> None:
    """:func:`_ola_frame` for each row of ``frames``; ``out`` has ``n_frames * hop`` samples."""
    for i in range(frames.shape[0]):
        _ola_frame(frames[i], hop, window, acc, envelope, out, i * hop, tiny)


@jit("void(float64[::1], float64[::1], float64, float64[::1])")
def _normalise(acc: np.ndarray, envelope: np.ndarray, tiny: float, out: np.ndarray) -> None:
    """``out[k] = acc[k] / envelope[k]`` where the envelope exceeds ``tiny``, else 0."""
    for k in range(out.shape[0]):
        e = envelope[k]
        out[k] = acc[k] / e if e > tiny else 0.0


_RESAMPLE_SIGNATURE = (
    "int64(float64[::1], int64[::1], {}[::1], float64[:, ::1], int64[::1], int64[::1], int64, "
    "float64[::1])"
)


@jit([_RESAMPLE_SIGNATURE.format("float32"), _RESAMPLE_SIGNATURE.format("float64")])
def _resample_chunk(
    tail: np.ndarray,
    fill: np.ndarray,
    chunk: np.ndarray,
    kernel: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    stride: int,
    out: np.ndarray,
) -> int:
    """Polyphase FIR: block ``j`` of ``tail[:fill] ++ chunk`` gives ``kernel.shape[0]`` outputs.

    ``out[j * n + p] = sum_{lo[p] <= k < hi[p]} kernel[p, k] * x[j * stride + k]`` for every
    block whose ``kernel.shape[1]`` inputs are all present (phase ``p``'s taps outside
    ``[lo[p], hi[p])`` are zero); the unused rest stays in ``tail``. Returns the number of
    blocks written (``out`` has room for them).
    """
    n_phase, taps = kernel.shape
    held = fill[0]
    total = held + chunk.shape[0]
    x = np.empty(total)
    x[:held] = tail[:held]
    x[held:] = chunk
    n = _n_frames(held, chunk.shape[0], taps, stride)
    for j in range(n):
        start = j * stride
        for p in range(n_phase):
            acc = 0.0
            for k in range(lo[p], hi[p]):
                acc += kernel[p, k] * x[start + k]
            out[j * n_phase + p] = acc
    first = n * stride
    kept = total - first
    tail[:kept] = x[first:total]
    fill[0] = kept
    return n
