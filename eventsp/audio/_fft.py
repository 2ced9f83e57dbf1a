r"""A mixed-radix FFT in Numba, so that one jitted call can frame, transform and reduce a chunk.

``numpy.fft`` cannot be called from Numba code; calling it from Python once per chunk costs
more than the transform itself at 10 ms hops (``bench/audio_frontend.py`` measures both). This
module computes the real FFT of an even-length frame of ``N`` samples through a complex FFT of
``M = N / 2`` points: ``z[n] = x[2n] + j x[2n+1]``, ``Z = FFT_M(z)``, then for ``k = 0..M``

.. math:: X[k] = \tfrac12 (Z_k + \bar Z_{M-k}) - \tfrac{j}{2} W_N^k (Z_k - \bar Z_{M-k}),
          \qquad W_N = e^{-2\pi j / N}

The complex FFT is iterative decimation in time: the input is gathered in mixed-radix
digit-reversed order, then each stage, innermost radix first, combines ``p`` transforms of
``m`` points into one of ``p m`` points, ``Y[k + q m] = sum_j W_p^{jq} W_{pm}^{jk} y_j[k]``.
Radices are 4, 2, 3 and 5 (written-out butterflies), then any other prime (a direct
``p``-point DFT, so sizes with large prime factors are correct but slow). n_fft = 400 is
``M = 200 = 4 * 2 * 5 * 5``; 512 is ``M = 256 = 4^4``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from eventsp._jit import jit

__all__: list[str] = []

# Constants of the radix-3 and radix-5 butterflies (compile-time constants in the kernels).
_S3 = float(np.sin(2 * np.pi / 3))
_C51 = float(np.cos(2 * np.pi / 5))
_C52 = float(np.cos(4 * np.pi / 5))
_S51 = float(np.sin(2 * np.pi / 5))
_S52 = float(np.sin(4 * np.pi / 5))


class FFTPlan(NamedTuple):
    """Tables for a real FFT of ``n`` samples (``n`` even); all arrays are read-only in use.

    perm: ``(M,)`` int64, the digit-reversed input order of the half-size complex FFT.
    radices: ``(S,)`` int64, the radix of each stage, outermost first.
    twiddle: ``(M,)`` complex128, ``W_M^t``.
    stage_twiddle: complex128, for each stage in the order they run (innermost first) its
        ``W_{pm}^{jk}`` at ``offset + k p + j``; each stage takes ``p m`` entries.
    post: ``(M + 1,)`` complex128, ``W_N^k`` for the real-input split.
    """

    perm: np.ndarray
    radices: np.ndarray
    twiddle: np.ndarray
    stage_twiddle: np.ndarray
    post: np.ndarray


def _factor(m: int) -> list[int]:
    radices = []
    for p in (4, 2, 3, 5):
        while m % p == 0:
            radices.append(p)
            m //= p
    p = 7
    while m > 1:
        while m % p == 0:
            radices.append(p)
            m //= p
        p += 2
    return radices


def _digit_reversed(m: int, radices: list[int]) -> np.ndarray:
    order = np.zeros(m, np.int64)
    # Block j of the outermost split holds the sub-sequence x[j::p], recursively.
    stack = [(m, 0, 0, 1, 0)]  # (size, depth, base, stride, position)
    while stack:
        size, depth, base, stride, position = stack.pop()
        if size == 1:
            order[position] = base
            continue
        p = radices[depth]
        sub = size // p
        for j in range(p):
            stack.append((sub, depth + 1, base + j * stride, stride * p, position + j * sub))
    return order


@functools.lru_cache(maxsize=16)
def fft_plan(n: int) -> FFTPlan:
    """Tables for :func:`rfft` of ``n`` samples; ``n`` must be even and at least 2."""
    if n < 2 or n % 2:
        raise ValueError(
            f"n_fft is {n}; the Numba FFT needs an even size. Use an even n_fft, or fft='numpy'"
        )
    m = n // 2
    radices = _factor(m)
    perm = _digit_reversed(m, radices) if m > 1 else np.zeros(1, np.int64)
    twiddle = np.exp(-2j * np.pi * np.arange(m) / m)
    stages = [np.zeros(0, np.complex128)]
    sub = 1
    for p in reversed(radices):
        k, j = np.meshgrid(np.arange(sub), np.arange(p), indexing="ij")
        stages.append(np.exp(-2j * np.pi * (j * k).ravel() / (p * sub)))
        sub *= p
    post = np.exp(-2j * np.pi * np.arange(m + 1) / n)
    return FFTPlan(perm, np.array(radices, np.int64), twiddle, np.concatenate(stages), post)


@jit("void(complex128[::1], int64[::1], complex128[::1], complex128[::1], complex128[::1])")
def _cfft_inplace(
    a: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    tmp: np.ndarray,
) -> None:
    """Complex FFT of ``a`` (already in digit-reversed order) in place; ``tmp`` >= max radix."""
    size = a.shape[0]
    m = 1
    offset = 0
    for stage in range(radices.shape[0] - 1, -1, -1):
        p = radices[stage]
        span = p * m
        unit = size // p  # W_p = W_size^unit
        for g in range(0, size, span):
            for k in range(m):
                base = g + k
                if k == 0:
                    for j in range(p):
                        tmp[j] = a[base + j * m]
                else:
                    row = offset + k * p
                    for j in range(p):
                        tmp[j] = a[base + j * m] * stage_twiddle[row + j]
                if p == 2:
                    a[base] = tmp[0] + tmp[1]
                    a[base + m] = tmp[0] - tmp[1]
                elif p == 4:
                    s02 = tmp[0] + tmp[2]
                    d02 = tmp[0] - tmp[2]
                    s13 = tmp[1] + tmp[3]
                    d13 = tmp[1] - tmp[3]
                    rot = complex(d13.imag, -d13.real)  # -j * d13
                    a[base] = s02 + s13
                    a[base + m] = d02 + rot
                    a[base + 2 * m] = s02 - s13
                    a[base + 3 * m] = d02 - rot
                elif p == 3:
                    t1 = tmp[1] + tmp[2]
                    t2 = tmp[1] - tmp[2]
                    a0 = tmp[0] - 0.5 * t1
                    b0 = complex(_S3 * t2.imag, -_S3 * t2.real)  # -j sin(2pi/3) t2
                    a[base] = tmp[0] + t1
                    a[base + m] = a0 + b0
                    a[base + 2 * m] = a0 - b0
                elif p == 5:
                    t1 = tmp[1] + tmp[4]
                    t2 = tmp[2] + tmp[3]
                    t3 = tmp[1] - tmp[4]
                    t4 = tmp[2] - tmp[3]
                    a1 = tmp[0] + _C51 * t1 + _C52 * t2
                    a2 = tmp[0] + _C52 * t1 + _C51 * t2
                    u1 = _S51 * t3 + _S52 * t4
                    u2 = _S52 * t3 - _S51 * t4
                    b1 = complex(u1.imag, -u1.real)  # -j u1
                    b2 = complex(u2.imag, -u2.real)
                    a[base] = tmp[0] + t1 + t2
                    a[base + m] = a1 + b1
                    a[base + 2 * m] = a2 + b2
                    a[base + 3 * m] = a2 - b2
                    a[base + 4 * m] = a1 - b1
                else:
                    for q in range(p):
                        acc = tmp[0]
                        index = 0
                        for j in range(1, p):
                            index += q * unit
                            if index >= size:
                                index -= size
                            acc += tmp[j] * twiddle[index]
                        a[base + q * m] = acc
        offset += span
        m = span


@jit(
    "void(float64[::1], int64[::1], int64[::1], complex128[::1], complex128[::1], "
    "complex128[::1], complex128[::1], complex128[::1], complex128[::1])"
)
def _rfft_frame(
    frame: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    work: np.ndarray,
    tmp: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[:M + 1] = rfft(frame)`` for an even-length real frame; ``work`` has ``M`` entries."""
    m = perm.shape[0]
    for i in range(m):
        n = perm[i]
        work[i] = complex(frame[2 * n], frame[2 * n + 1])
    _cfft_inplace(work, radices, twiddle, stage_twiddle, tmp)
    for k in range(m + 1):
        zk = work[k % m]
        zc = work[(m - k) % m].conjugate()
        even = 0.5 * (zk + zc)
        diff = zk - zc
        odd = complex(0.5 * diff.imag, -0.5 * diff.real)  # -j/2 * diff
        out[k] = even + post[k] * odd


@jit(
    "void(complex128[::1], int64[::1], int64[::1], complex128[::1], complex128[::1], "
    "complex128[::1], complex128[::1], complex128[::1], complex128[::1], float64[::1])"
)
def _irfft_frame(
    spectrum: np.ndarray,
    perm: np.ndarray,
    radices: np.ndarray,
    twiddle: np.ndarray,
    stage_twiddle: np.ndarray,
    post: np.ndarray,
    work: np.ndarray,
    scratch: np.ndarray,
    tmp: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[:N] = irfft(spectrum[:M + 1], N)``; the imaginary parts of bins 0 and M are
    ignored, as numpy does. ``work`` and ``scratch`` have ``M`` entries.

    Undoes the real-input split, ``E_k = (X_k + conj X_{M-k}) / 2``,
    ``O_k = conj(W_N^k) (X_k - conj X_{M-k}) / 2``, ``Z = E + j O``, then
    ``z = conj(FFT_M(conj Z)) / M`` and ``x[2n] + j x[2n+1] = z[n]``.
    """
    m = perm.shape[0]
    for k in range(m):
        if k == 0:
            xk = complex(spectrum[0].real, 0.0)
            xc = complex(spectrum[m].real, 0.0)
        else:
            xk = spectrum[k]
            xc = spectrum[m - k].conjugate()
        even = 0.5 * (xk + xc)
        odd = 0.5 * (xk - xc) * post[k].conjugate()
        scratch[k] = even + complex(-odd.imag, odd.real)  # even + j * odd
    for i in range(m):
        work[i] = scratch[perm[i]].conjugate()
    _cfft_inplace(work, radices, twiddle, stage_twiddle, tmp)
    scale = 1.0 / m
    for n in range(m):
        out[2 * n] = work[n].real * scale
        out[2 * n + 1] = -work[n].imag * scale


def irfft(spectra: np.ndarray, n: int) -> np.ndarray:
    """``numpy.fft.irfft(spectra, n, axis=-1)`` for ``(n_frames, n // 2 + 1)`` spectra."""
    array = np.ascontiguousarray(spectra, dtype=np.complex128)
    plan = fft_plan(n)
    m = plan.perm.shape[0]
    if array.ndim != 2 or array.shape[1] != m + 1:
        raise ValueError(f"spectra have shape {array.shape}; expected (n_frames, {m + 1})")
    out = np.empty((array.shape[0], n))
    work = np.empty(m, np.complex128)
    scratch = np.empty(m, np.complex128)
    tmp = np.empty(max(int(plan.radices.max(initial=1)), 1), np.complex128)
    for i in range(array.shape[0]):
        _irfft_frame(array[i], *plan, work, scratch, tmp, out[i])
    return out


@jit("int64(int64[::1])")
def _largest(radices: np.ndarray) -> int:
    """The largest radix (1 when there are none): the scratch size of the butterflies."""
    largest = 1
    for r in radices:
        largest = max(largest, r)
    return largest


def rfft(frames: np.ndarray) -> np.ndarray:
    """``numpy.fft.rfft(frames, axis=-1)`` for ``(n_frames, n)`` float64 frames, ``n`` even."""
    array = np.ascontiguousarray(frames, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"frames have shape {array.shape}; expected (n_frames, n_fft)")
    plan = fft_plan(array.shape[1])
    m = plan.perm.shape[0]
    out = np.empty((array.shape[0], m + 1), np.complex128)
    work = np.empty(m, np.complex128)
    tmp = np.empty(max(int(plan.radices.max(initial=1)), 1), np.complex128)
    for i in range(array.shape[0]):
        _rfft_frame(array[i], *plan, work, tmp, out[i])
    return out
