"""Dense and causal temporal-convolution kernels (event-driven when the input is sparse).

Both kernels take one row of the program's ``code`` table (columns in
:mod:`eventsp.kernels.layout`), the flat ``params`` buffer and one stream's ``acts``,
``values`` and counter row. Weights are stored input-major, so one active input adds one
contiguous weight row to the output: with ``nnz`` active inputs a step costs ``nnz * n_out``
adds. Below :data:`~eventsp.kernels.layout.SPARSE_MAX_DENSITY` the kernel skips zero inputs;
above it it runs the same loop without the test. Each output is summed as ``bias`` then the
inputs in increasing index order on both paths, so they agree bit for bit.
"""

from __future__ import annotations

from eventsp._jit import jit
from eventsp.kernels.layout import (
    ACS,
    DENSE_OPS,
    IN,
    KH,
    MACS,
    N_IN,
    N_OUT,
    OUT,
    P0,
    P1,
    S0,
    SH,
    SPARSE_MAX_DENSITY,
    H,
)
from eventsp.kernels.vector import axpy

OP_SIGNATURE = "void(int64[::1], float32[::1], float32[::1], float32[::1], float64[::1], int64)"


@jit("void(float32[::1], float32[::1], float32[::1], int64, float32[::1], float64[::1])")
def _accumulate_rows(x, weight, y, w_off, bias_unused, cnt):
    """``y += x @ Wt`` with ``Wt`` (len(x), len(y)) at ``weight[w_off:]``; counts ops into cnt."""
    n_in = x.shape[0]
    n_out = y.shape[0]
    nnz = 0
    binary = True
    for i in range(n_in):
        v = x[i]
        if v != 0.0:
            nnz += 1
            if v != 1.0:
                binary = False
    if nnz < SPARSE_MAX_DENSITY * n_in:
        for i in range(n_in):
            v = x[i]
            if v != 0.0:
                axpy(y, 0, weight, w_off + i * n_out, n_out, v)
    else:
        for i in range(n_in):
            axpy(y, 0, weight, w_off + i * n_out, n_out, x[i])
    if binary:
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
    _accumulate_rows(x, params, y, row[P0], params[:0], cnt)


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
        _accumulate_rows(frame, params, y, row[P0] + tap * n_in * n_out, params[:0], cnt)
