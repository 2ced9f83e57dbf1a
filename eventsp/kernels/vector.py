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
