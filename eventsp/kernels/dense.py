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
    IN2,
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
from eventsp.kernels.simd import append_set_bits, nonzero_mask64, unequal_mask64

OP_SIGNATURE = "void(int64[::1], float32[::1], float32[::1], float32[::1], float64[::1], int64)"


@jit("int64(float32[::1], int32[::1], uint64, uint64, uint64)", inline="always", nrt=False)
def list_active_at(x, idx, start, n, dst):
    """Write the indices of the nonzero values of ``x[start:start+n]`` to ``idx[dst:]``, in
    increasing order; return their count, negated if any nonzero value is not exactly 1 (so
    ``< 0`` means "not spikes", ``abs()`` the count). No slices: the batch kernels call it on
    rows of a whole batch's buffers.

    64 inputs at a time: a bit mask of the nonzero ones (vectorised), then the positions of
    its set bits (:mod:`eventsp.kernels.simd`). The last, partial run is masked the same way
    when the 64 values from its start lie inside ``x`` (those past ``n`` have their bits
    cleared) and it holds at least eight (``append_set_bits`` writes eight entries, and the
    list has room for ``n``); else it is scanned one value at a time."""
    nnz = np.uint64(0)
    non_binary = False
    i0 = np.uint64(0)
    room = np.uint64(x.shape[0])
    while i0 < n:
        run = n - i0
        if run < np.uint64(64) and (run < np.uint64(8) or start + i0 + np.uint64(64) > room):
            break
        mask = nonzero_mask64(x, start + i0)
        if run < np.uint64(64):
            mask &= (np.uint64(1) << run) - np.uint64(1)
        if mask != 0:
            if not non_binary:
                non_binary = (mask & unequal_mask64(x, start + i0, np.float32(1.0))) != 0
            nnz = append_set_bits(idx, dst + nnz, i0, mask) - dst
        i0 = min(i0 + np.uint64(64), n)
    for i in range(i0, n):
        v = x[start + i]
        if v != 0.0:
            idx[dst + nnz] = np.int32(i)
            nnz += np.uint64(1)
            non_binary |= v != 1.0
    count = np.int64(nnz)
    return -count if non_binary else count


@jit("int64(float32[::1], int32[::1])", inline="always", nrt=False)
def list_active(x, idx):
    """:func:`list_active_at` of all of ``x`` into ``idx``."""
    return list_active_at(x, idx, np.uint64(0), np.uint64(x.shape[0]), np.uint64(0))


@jit("int64(float32[::1], float32[::1], int64[::1])", inline="always", nrt=False)
def active_inputs(x, acts, row):
    """:func:`list_active` of ``x``, or, when the producer of ``x`` keeps a spike list (column
    ``IN2`` of the row, see ``batch._spiking_batch``), that list's count (no scan)."""
    if row[IN2] >= 0:
        return acts[row[IN2] : row[IN2] + 1].view(np.int32)[0]
    return list_active(x, acts[row[MODE] : row[MODE] + row[N_IN]].view(np.int32))


@jit("int64(int64[::1])", inline="always", nrt=False)
def active_offset(row):
    """The float offset in ``acts`` of the index list that :func:`active_inputs` filled (or of
    the producer's spike list); ``N_IN`` int32 long. (An offset, not a view: kernels compiled
    without Numba's runtime cannot return views.)"""
    if row[IN2] >= 0:
        return row[IN2] + 1
    return row[MODE]


@jit(
    "void(float32[::1], float32[::1], float32[::1], int64, int32[::1], int64, float64[::1])",
    nrt=False,
)
def _accumulate_rows(x, weight, y, w_off, idx, listed, cnt):
    """``y += x @ Wt`` with ``Wt`` (len(x), len(y)) at ``weight[w_off:]``; counts ops into cnt.

    ``idx[:abs(listed)]`` are the nonzero inputs (see :func:`list_active`); their rows are
    added four at a time, in index order: ``y[j] = (((y[j] + a0 w0[j]) + a1 w1[j]) + a2 w2[j])
    + a3 w3[j]`` is the same bit for bit as four single rows, with a quarter of the loads and
    stores of ``y``. (Explicit slices in the loop: a helper call per row costs more than it.)
    """
    n_in = x.shape[0]
    n_out = y.shape[0]
    nnz = abs(listed)
    k = 0
    if listed >= 0:  # spikes: a * w == w exactly for a == 1, so add the rows as they are
        while k + 4 <= nnz:
            i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
            w0 = weight[w_off + i0 * n_out : w_off + (i0 + 1) * n_out]
            w1 = weight[w_off + i1 * n_out : w_off + (i1 + 1) * n_out]
            w2 = weight[w_off + i2 * n_out : w_off + (i2 + 1) * n_out]
            w3 = weight[w_off + i3 * n_out : w_off + (i3 + 1) * n_out]
            for j in range(n_out):
                y[j] = (((y[j] + w0[j]) + w1[j]) + w2[j]) + w3[j]
            k += 4
    while k + 4 <= nnz:
        i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        a0, a1, a2, a3 = x[i0], x[i1], x[i2], x[i3]
        w0 = weight[w_off + i0 * n_out : w_off + (i0 + 1) * n_out]
        w1 = weight[w_off + i1 * n_out : w_off + (i1 + 1) * n_out]
        w2 = weight[w_off + i2 * n_out : w_off + (i2 + 1) * n_out]
        w3 = weight[w_off + i3 * n_out : w_off + (i3 + 1) * n_out]
        for j in range(n_out):
            y[j] = (((y[j] + a0 * w0[j]) + a1 * w1[j]) + a2 * w2[j]) + a3 * w3[j]
        k += 4
    while k < nnz:
        i0 = idx[k]
        a0 = x[i0]
        w0 = weight[w_off + i0 * n_out : w_off + (i0 + 1) * n_out]
        for j in range(n_out):
            y[j] += a0 * w0[j]
        k += 1
    if listed >= 0:
        cnt[ACS] += nnz * n_out
    else:
        cnt[MACS] += nnz * n_out
    cnt[DENSE_OPS] += n_in * n_out


@jit(OP_SIGNATURE, nrt=False)
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
    for j in range(n_in):  # a loop: slice assignment needs Numba's runtime
        ring[slot * n_in + j] = x[j]
    b_off = row[P1]
    if b_off >= 0:
        for j in range(n_out):
            y[j] = params[b_off + j]
    else:
        for j in range(n_out):
            y[j] = 0.0
    for tap in range(k):
        past = (t - (k - 1 - tap) * d) % ring_len
        frame = ring[past * n_in : (past + 1) * n_in]
        w_off = row[P0] + tap * n_in * n_out
        idx = acts[row[MODE] : row[MODE] + n_in].view(np.int32)
        listed = list_active(frame, idx)
        _accumulate_rows(frame, params, y, w_off, idx, listed, cnt)
