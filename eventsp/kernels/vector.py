"""Tiny inlined vector helpers shared by the kernels.

Indices are converted to unsigned integers: Numba then skips its negative-index wraparound
check, which otherwise keeps LLVM from vectorising the loop (about 4x slower on 256 floats).
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit


@jit("void(float32[::1], int64, float32[::1], int64, int64, float32)", inline="always")
def axpy(y, y_off, w, w_off, n, a):
    """``y[y_off : y_off+n] += a * w[w_off : w_off+n]`` (offsets and ``n`` are >= 0)."""
    yb = np.uint64(y_off)
    wb = np.uint64(w_off)
    for j in range(np.uint64(n)):
        y[yb + j] += a * w[wb + j]


@jit("void(float32[::1], int64, float32[::1], int64, int64)", inline="always")
def copy_run(y, y_off, w, w_off, n):
    """``y[y_off : y_off+n] = w[w_off : w_off+n]``."""
    yb = np.uint64(y_off)
    wb = np.uint64(w_off)
    for j in range(np.uint64(n)):
        y[yb + j] = w[wb + j]


@jit("void(float32[::1], int64, int64, float32)", inline="always")
def fill_run(y, y_off, n, value):
    """``y[y_off : y_off+n] = value``."""
    yb = np.uint64(y_off)
    for j in range(np.uint64(n)):
        y[yb + j] = value


@jit("void(float32[::1], int64, int64, float32)", inline="always")
def scale_run(y, y_off, n, value):
    """``y[y_off : y_off+n] *= value``."""
    yb = np.uint64(y_off)
    for j in range(np.uint64(n)):
        y[yb + j] *= value


@jit(
    "void(float32[::1], float32[::1], int64, int64, int64, int64, float32, float32, float32, "
    "float32, int64)",
    inline="always",
)
def axpy4(y, w, o0, o1, o2, o3, a0, a1, a2, a3, n):
    """Four :func:`axpy` rows into ``y[:n]`` in one pass, adding in the same order as four calls.

    ``y[j] = (((y[j] + a0*w[o0+j]) + a1*w[o1+j]) + a2*w[o2+j]) + a3*w[o3+j]``: the result is
    the same bit for bit, with a quarter of the loads and stores of ``y``.
    """
    u0, u1, u2, u3 = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    for j in range(np.uint64(n)):
        y[j] = (((y[j] + a0 * w[u0 + j]) + a1 * w[u1 + j]) + a2 * w[u2 + j]) + a3 * w[u3 + j]
