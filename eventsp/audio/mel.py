r"""Mel scales and the triangular mel filterbank (= ``torchaudio.functional.melscale_fbanks``).

Two scales: HTK, :math:`m = 2595 \log_{10}(1 + f / 700)`, and Slaney's (Auditory Toolbox,
librosa's default): linear below 1 kHz (``f / (200/3)``), logarithmic above
(``15 + ln(f / 1000) / (ln 6.4 / 27)``).

Band ``m`` (of ``n_mels``) is a triangle over the FFT bin frequencies
``linspace(0, sample_rate // 2, n_freq)``, rising from ``f[m]`` to ``f[m+1]`` and falling to
``f[m+2]``, where ``f`` are ``n_mels + 2`` points evenly spaced on the mel scale from ``f_min``
to ``f_max``. ``norm="slaney"`` divides band ``m`` by half its width, ``(f[m+2] - f[m]) / 2``,
so every band has the same area.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

__all__ = ["MelNorm", "MelScale", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

MelScale = Literal["htk", "slaney"]
MelNorm = Literal["slaney"] | None

_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def _check_scale(scale: str) -> None:
    if scale not in get_args(MelScale):
        raise ValueError(f"mel_scale is {scale!r}; expected one of {get_args(MelScale)}")


def hz_to_mel(freq_hz: np.ndarray | float, scale: MelScale = "htk") -> np.ndarray:
    """Mels of frequencies in Hz (float64 array)."""
    _check_scale(scale)
    f = np.asarray(freq_hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _F_SP
    with np.errstate(divide="ignore"):
        logarithmic = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, logarithmic, linear)


def mel_to_hz(mels: np.ndarray | float, scale: MelScale = "htk") -> np.ndarray:
    """Frequencies in Hz of mels (float64 array); the inverse of :func:`hz_to_mel`."""
    _check_scale(scale)
    m = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(
        m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m
    )


def mel_filterbank(
    n_freq: int,
    f_min_hz: float,
    f_max_hz: float,
    n_mels: int,
    sample_rate: int,
    norm: MelNorm = None,
    scale: MelScale = "htk",
) -> np.ndarray:
    """Triangular filterbank ``(n_freq, n_mels)`` float64; ``power_spectrum @ fb`` gives mels.

    Raises ``ValueError`` when a band covers no FFT bin (too many mels for ``n_freq``), where
    torchaudio only warns: an all-zero band is a feature that is always ``log(offset)``.
    """
    _check_scale(scale)
    if norm not in (None, "slaney"):
        raise ValueError(f"norm is {norm!r}; expected None or 'slaney'")
    if not 0.0 <= f_min_hz < f_max_hz:
        raise ValueError(
            f"mel band edges are f_min={f_min_hz} Hz, f_max={f_max_hz} Hz; "
            "expected 0 <= f_min < f_max"
        )
    all_freqs = np.linspace(0.0, float(sample_rate // 2), n_freq)
    m_pts = np.linspace(hz_to_mel(f_min_hz, scale), hz_to_mel(f_max_hz, scale), n_mels + 2)
    f_pts = mel_to_hz(m_pts, scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        fb *= 2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])
    empty = np.flatnonzero(fb.max(axis=0) == 0.0)
    if empty.size:
        raise ValueError(
            f"mel bands {empty.tolist()} of n_mels={n_mels} cover no FFT bin (n_freq={n_freq}, "
            f"{f_min_hz}-{f_max_hz} Hz); use fewer mels, a larger n_fft or a wider band"
        )
    return fb
