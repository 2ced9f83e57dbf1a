"""Neuron, pass-through, residual, LMU-memory and readout kernels (float mode).

Every kernel takes one row of the program's ``code`` table, ``params``, one stream's ``acts``,
``values`` (state) and counter row, and ``t`` (frames this stream has run before this one).
Neuron constants sit at ``params[P2:]``; membranes at ``values[S0:]``. The equations are in
``docs/runtime.md`` and ``eventsp.runtime``; all arithmetic is float32 except where noted.
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit
from eventsp.kernels.dense import OP_SIGNATURE
from eventsp.kernels.layout import (
    DENSE_OPS,
    IN,
    IN2,
    KH,
    MACS,
    MODE,
    N_OUT,
    NONZERO,
    OUT,
    P0,
    P1,
    P2,
    READ_LAST,
    READ_MEAN,
    S0,
    SPIKES,
    TOTAL,
    C,
)


@jit(OP_SIGNATURE, nrt=False)
def multispike_step(row, params, acts, values, cnt, t):
    """``v += x*dt; n = floor(v); v -= n; y = n/dt``; ``params[P2]`` is ``dt``."""
    size = row[N_OUT]
    x = acts[row[IN] : row[IN] + size]
    y = acts[row[OUT] : row[OUT] + size]
    v = values[row[S0] : row[S0] + size]
    dt = params[row[P2]]
    nonzero = 0
    total = 0.0
    for i in range(size):
        u = v[i] + x[i] * dt
        n = np.floor(u)
        v[i] = u - n
        y[i] = n / dt
        if n != 0.0:
            nonzero += 1
            total += abs(n)
    cnt[NONZERO] += nonzero
    cnt[SPIKES] += total
    cnt[TOTAL] += size


@jit(OP_SIGNATURE, nrt=False)
def relu_step(row, params, acts, values, cnt, t):
    """``y = max(x, 0)``."""
    n = row[N_OUT]
    x = acts[row[IN] : row[IN] + n]
    y = acts[row[OUT] : row[OUT] + n]
    nonzero = 0
    for i in range(n):
        u = x[i]
        if u > 0.0:
            y[i] = u
            nonzero += 1
        else:
            y[i] = 0.0
    cnt[NONZERO] += nonzero
    cnt[TOTAL] += n


@jit(OP_SIGNATURE, nrt=False)
def add_step(row, params, acts, values, cnt, t):
    """``y = a + b`` with ``a`` at ``IN`` and ``b`` at ``IN2``."""
    n = row[N_OUT]
    a = acts[row[IN] : row[IN] + n]
    b = acts[row[IN2] : row[IN2] + n]
    y = acts[row[OUT] : row[OUT] + n]
    for i in range(n):
        y[i] = a[i] + b[i]


@jit(OP_SIGNATURE, nrt=False)
def lmu_step(row, params, acts, values, cnt, t):
    """``m_c = A_d m_c + B_d u_c`` per channel c; ``A_d`` (q, q) at P0, ``B_d`` (q,) at P1.

    Sums run in float64 in the order ``k = 0..q-1`` then ``B_d u``, rounded once to float32.
    """
    q = row[KH]
    n_c = row[C]
    u = acts[row[IN] : row[IN] + n_c]
    y = acts[row[OUT] : row[OUT] + n_c * q]
    m = values[row[S0] : row[S0] + n_c * q]
    a0 = row[P0]
    b0 = row[P1]
    for c in range(n_c):
        for i in range(q):
            s = 0.0
            for k in range(q):
                s += np.float64(params[a0 + i * q + k]) * np.float64(m[c * q + k])
            s += np.float64(params[b0 + i]) * np.float64(u[c])
            y[c * q + i] = s
        for i in range(q):
            m[c * q + i] = y[c * q + i]
    cnt[MACS] += n_c * q * (q + 1)
    cnt[DENSE_OPS] += n_c * q * (q + 1)


@jit(OP_SIGNATURE, nrt=False)
def readout_step(row, params, acts, values, cnt, t):
    """``acc += x``; ``y = acc`` (sum), ``acc / (t+1)`` (mean, float32) or ``x`` (last)."""
    n = row[N_OUT]
    x = acts[row[IN] : row[IN] + n]
    y = acts[row[OUT] : row[OUT] + n]
    acc = values[row[S0] : row[S0] + n]
    mode = row[MODE]
    frames = np.float32(t + 1)
    for i in range(n):
        acc[i] += x[i]
        if mode == READ_MEAN:
            y[i] = acc[i] / frames
        elif mode == READ_LAST:
            y[i] = x[i]
        else:
            y[i] = acc[i]
