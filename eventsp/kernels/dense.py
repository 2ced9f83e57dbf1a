"""Dense and causal temporal-convolution kernels (event-driven when the input is sparse).

Both kernels take one row of the program's ``code`` table (columns in
:mod:`eventsp.kernels.layout`), the flat ``params`` buffer and one stream's ``acts``,
``values`` and counter row. Weights are stored input-major, so one active input adds one
contiguous weight row to the output: with ``nnz`` active inputs a step costs ``nnz * n_out``
adds. Dense layers are always event-driven: the active inputs are listed in one pass, so at
full density this is the dense product at no extra cost (conv layers, where the two loops
differ, choose per frame). Each output is summed as ``bias``, then the inputs in increasing
index order.
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit
from eventsp.kernels.layout import (
    ACS,
    DENSE_OPS,
    IN,
    KH,
    MACS,
    MODE,
    N_IN,
    N_OUT,
    OUT,
    P0,
    P1,
    S0,
    SH,
    H,
)
from eventsp.kernels.vector import axpy, axpy4

OP_SIGNATURE = "void(int64[::1], float32[::1], float32[::1], float32[::1], float64[::1], int64)"


@jit("int32[::1](float32[::1], int64[::1])", inline="always")
def _scratch(acts, row):
    """The op's index scratch: ``N_IN`` int32 at float offset ``MODE`` of ``acts``."""
    return acts[row[MODE] : row[MODE] + row[N_IN]].view(np.int32)


@jit("void(float32[::1], float32[::1], float32[::1], int64, int32[::1], float64[::1])")
def _accumulate_rows(x, weight, y, w_off, idx, cnt):
    """``y += x @ Wt`` with ``Wt`` (len(x), len(y)) at ``weight[w_off:]``; counts ops into cnt.

    One pass writes the indices of the nonzero inputs to ``idx``; then their rows
    are added four at a time (:func:`~eventsp.kernels.vector.axpy4`), in index order.
    """
    n_in = x.shape[0]
    n_out = y.shape[0]
    nnz = 0
    non_binary = 0
    for i in range(n_in):
        v = x[i]
        if v != 0.0:
            idx[nnz] = i
            nnz += 1
            if v != 1.0:
                non_binary += 1
    k = 0
    while k + 4 <= nnz:
        i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        axpy4(
            y,
            weight,
            w_off + i0 * n_out,
            w_off + i1 * n_out,
            w_off + i2 * n_out,
            w_off + i3 * n_out,
            x[i0],
            x[i1],
            x[i2],
            x[i3],
            n_out,
        )
        k += 4
    while k < nnz:
        i0 = idx[k]
        axpy(y, 0, weight, w_off + i0 * n_out, n_out, x[i0])
        k += 1
    if non_binary == 0:
        cnt[ACS] += nnz * n_out
    else:
        cnt[MACS] += nnz * n_out
    cnt[DENSE_OPS] += n_in * n_out


@jit(OP_SIGNATURE)
def dense_step(row, params, acts, values, cnt, t):
    """``y = b + W x``; ``params[P0:]`` holds ``W.T`` (in, out) C-order, ``params[P1:]`` b."""
    x = acts[row[IN] : row[IN] + row[N_IN]]
    y = acts[row[OUT] : row[OUT] + row[N_OUT]]
    b_off = row[P1]
    if b_off >= 0:
        for j in range(y.shape[0]):
            y[j] = params[b_off + j]
    else:
        y[:] = 0.0
    _accumulate_rows(x, params, y, row[P0], _scratch(acts, row), cnt)


@jit(OP_SIGNATURE)
def causal_conv1d_step(row, params, acts, values, cnt, t):
    """``y_t = b + sum_j W[:, :, j] x_{t-(k-1-j)d}``; history ring of ``L`` frames in ``values``.

    ``params[P0:]`` holds ``W`` as ``(k, in, out)``; ``row[KH]`` is ``k``, ``row[SH]`` the
    dilation ``d``, ``row[H]`` the ring length ``L = (k-1)d + 1``. Frame ``t`` is written to
    ring row ``t % L``; frames before the first are zero.
    """
    n_in = row[N_IN]
    n_out = row[N_OUT]
    k = row[KH]
    d = row[SH]
    ring_len = row[H]
    ring = values[row[S0] : row[S0] + ring_len * n_in]
    x = acts[row[IN] : row[IN] + n_in]
    y = acts[row[OUT] : row[OUT] + n_out]
    slot = t % ring_len
    ring[slot * n_in : (slot + 1) * n_in] = x
    b_off = row[P1]
    if b_off >= 0:
        for j in range(n_out):
            y[j] = params[b_off + j]
    else:
        y[:] = 0.0
    for tap in range(k):
        past = (t - (k - 1 - tap) * d) % ring_len
        frame = ring[past * n_in : (past + 1) * n_in]
        w_off = row[P0] + tap * n_in * n_out
        _accumulate_rows(frame, params, y, w_off, _scratch(acts, row), cnt)
