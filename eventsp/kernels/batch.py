"""Batch-level kernels: one call runs an operation for every stream of a batch.

The per-stream kernels (``dense.py``, ``neurons.py``, ``conv.py``) take one stream's slices of
the state; calling one per stream and operation cost about 100 ns each while the kernels were
compiled with Numba's runtime (atomic reference counting of every slice), and the calls and
their loops still cost more than one loop over the batch (``nrt=False`` now, see
``eventsp/_jit.py``). The kernels here take the whole ``(batch, n)`` buffers and index them
in place, without slices, for the operations that dominate small networks and large batches:
Input, Output, Flatten, Dense, IF and LIF; these ops have no per-stream kernel. The slow
reference they are tested against is ``tests/naive.py`` (``tests/runtime/test_parity.py``);
``tests/runtime/test_batch_kernels.py`` checks their spike lists and that every stream of a
batch ends bit for bit where it ends alone.

Indices are ``uint64`` on purpose: Numba must allow for negative indices (which count from
the end) of a signed index into a 2-D array, and that check keeps LLVM from vectorising the
loops; an unsigned index cannot be negative. Mixing ``uint64`` and ``int64`` in Numba gives
``float64``, so every index term below is converted first.
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit
from eventsp.kernels import simd
from eventsp.kernels.dense import list_active_at
from eventsp.kernels.layout import (
    ACS,
    DENSE_OPS,
    IN,
    IN2,
    INPUT,
    MACS,
    MODE,
    N_IN,
    N_OUT,
    NONZERO,
    OP,
    OUT,
    OUTPUT,
    P0,
    P1,
    P2,
    S0,
    SPIKES,
    TOTAL,
    WO,
    C,
    H,
    W,
)
from eventsp.kernels.simd import (
    append_set_bits,
    flat_view,
    if_run64,
    lif_run64,
    nonzero_mask64,
    popcount64,
)

TINY = np.float32(simd.TINY)  # LIF membranes below this are flushed to zero (denormals)

BATCH_SIGNATURE = (
    "void(int64[::1], float32[::1], float32[:, ::1], float32[:, ::1], float64[:, :, ::1], int64)"
)
U64 = np.uint64


@jit(
    "void(float32[::1], uint64, float32[::1], uint64, float32[::1], int32[::1], uint64, uint64,"
    " uint64)",
    inline="always",
    nrt=False,
)
def _add8_rows(dst, d0, src, s0, params, ai, idx, w0, n_out):
    """``dst[d0:d0+n_out] = src[s0:...] + eight weight rows`` (those listed at ``ai[idx:]``),
    added one after the other in list order (the same bits as eight single-row passes)."""
    r0 = w0 + U64(ai[idx]) * n_out
    r1 = w0 + U64(ai[idx + U64(1)]) * n_out
    r2 = w0 + U64(ai[idx + U64(2)]) * n_out
    r3 = w0 + U64(ai[idx + U64(3)]) * n_out
    r4 = w0 + U64(ai[idx + U64(4)]) * n_out
    r5 = w0 + U64(ai[idx + U64(5)]) * n_out
    r6 = w0 + U64(ai[idx + U64(6)]) * n_out
    r7 = w0 + U64(ai[idx + U64(7)]) * n_out
    for j in range(n_out):
        total = src[s0 + j] + params[r0 + j]
        total = (total + params[r1 + j]) + params[r2 + j]
        total = (total + params[r3 + j]) + params[r4 + j]
        total = (total + params[r5 + j]) + params[r6 + j]
        dst[d0 + j] = total + params[r7 + j]


@jit(BATCH_SIGNATURE, inline="always", nrt=False)
def dense_batch(row, params, acts, values, counters, k):
    """Dense for every stream: ``y = b + W x``, ``params[P0:]`` holding ``W.T`` (in, out) and
    ``params[P1:]`` ``b``, both ``WO`` wide (``N_OUT`` and zero padding, which lands in the
    output slot's own padding); each output is summed as ``b``, then the listed inputs in
    increasing order (as ``dense._accumulate_rows`` and the conv kernels do)."""
    flat = flat_view(acts)
    ai = flat.view(np.int32)
    stride = U64(acts.shape[1])
    n_in = U64(row[N_IN])
    n_out = U64(row[WO])  # the rows' width: N_OUT, padded (runtime.program._dense_row)
    w0 = U64(row[P0])
    has_bias = row[P1] >= 0
    b_off = U64(max(row[P1], 0))
    from_list = row[IN2] >= 0
    for bb in range(acts.shape[0]):
        base = U64(bb) * stride
        x0 = base + U64(row[IN])
        y0 = base + U64(row[OUT])
        if from_list:
            listed = np.int64(ai[base + U64(row[IN2])])
            idx0 = base + U64(row[IN2]) + U64(1)
        else:
            idx0 = base + U64(row[MODE])
            listed = list_active_at(flat, ai, x0, n_in, idx0)
        nnz = U64(abs(listed))
        q = U64(0)
        if has_bias and listed >= 0 and nnz >= U64(8):
            # The bias and the first eight spike rows in one pass (y = b, then the rows in
            # order, as below: the same bits), one pass over y less.
            _add8_rows(flat, y0, params, b_off, params, ai, idx0, w0, n_out)
            q = U64(8)
        elif has_bias:
            for j in range(n_out):
                flat[y0 + j] = params[b_off + j]
        else:
            for j in range(n_out):
                flat[y0 + j] = 0.0
        if listed >= 0:  # spikes: a * w == w exactly for a == 1, so add the rows as they are
            while q + U64(8) <= nnz:  # eight rows per pass over y: fewer loads and stores of y
                _add8_rows(flat, y0, flat, y0, params, ai, idx0 + q, w0, n_out)
                q += U64(8)
            while q + U64(4) <= nnz:
                r0 = w0 + U64(ai[idx0 + q]) * n_out
                r1 = w0 + U64(ai[idx0 + q + U64(1)]) * n_out
                r2 = w0 + U64(ai[idx0 + q + U64(2)]) * n_out
                r3 = w0 + U64(ai[idx0 + q + U64(3)]) * n_out
                for j in range(n_out):
                    flat[y0 + j] = (
                        ((flat[y0 + j] + params[r0 + j]) + params[r1 + j]) + params[r2 + j]
                    ) + params[r3 + j]
                q += U64(4)
            while q + U64(2) <= nnz:
                r0 = w0 + U64(ai[idx0 + q]) * n_out
                r1 = w0 + U64(ai[idx0 + q + U64(1)]) * n_out
                for j in range(n_out):
                    flat[y0 + j] = (flat[y0 + j] + params[r0 + j]) + params[r1 + j]
                q += U64(2)
        while q + U64(4) <= nnz:
            i0 = U64(ai[idx0 + q])
            i1 = U64(ai[idx0 + q + U64(1)])
            i2 = U64(ai[idx0 + q + U64(2)])
            i3 = U64(ai[idx0 + q + U64(3)])
            a0, a1, a2, a3 = flat[x0 + i0], flat[x0 + i1], flat[x0 + i2], flat[x0 + i3]
            r0, r1, r2, r3 = w0 + i0 * n_out, w0 + i1 * n_out, w0 + i2 * n_out, w0 + i3 * n_out
            for j in range(n_out):
                flat[y0 + j] = (
                    ((flat[y0 + j] + a0 * params[r0 + j]) + a1 * params[r1 + j])
                    + a2 * params[r2 + j]
                ) + a3 * params[r3 + j]
            q += U64(4)
        while q < nnz:
            i0 = U64(ai[idx0 + q])
            a0 = flat[x0 + i0]
            r0 = w0 + i0 * n_out
            for j in range(n_out):
                flat[y0 + j] += a0 * params[r0 + j]
            q += U64(1)
        if listed >= 0:
            counters[bb, k, ACS] += np.int64(nnz) * row[N_OUT]
        else:
            counters[bb, k, MACS] += np.int64(nnz) * row[N_OUT]
        counters[bb, k, DENSE_OPS] += row[N_IN] * row[N_OUT]


@jit(
    "int64(float32[::1], int32[::1], uint64, uint64, uint64, int64, int64)",
    inline="always",
    nrt=False,
)
def _list_tail(y, ai, y0, i0, i1, dst, m):
    """Append the indices ``i`` in ``[i0, i1)`` (the last, partial run of fewer than 64
    neurons) where ``y[y0 + i] != 0`` at ``ai[dst + m:]`` (only counted when ``dst < 0``);
    returns the new count ``m``. The run goes through a bit mask (:mod:`eventsp.kernels.simd`)
    when the 64 values from its start lie inside ``y`` (those past ``i1`` have their bits
    cleared) and, for a list, it holds at least eight (``append_set_bits`` writes eight
    entries), as in ``dense.list_active_at``; else one value at a time."""
    t = i1 - i0
    if y0 + i0 + U64(64) <= U64(y.shape[0]) and (dst < 0 or t >= U64(8)):
        mask = nonzero_mask64(y, y0 + i0) & ((U64(1) << t) - U64(1))
        if mask == 0:  # a silent run writes nothing
            return m
        if dst >= 0:
            return np.int64(append_set_bits(ai, U64(dst + m), i0, mask)) - dst
        return m + np.int64(popcount64(mask))
    for i in range(i0, i1):
        if y[y0 + i] != 0.0:
            if dst >= 0:
                ai[U64(dst + m)] = np.int32(i)
            m += 1
    return m


@jit(
    "void(int64[::1], float32[::1], float32[:, ::1], float32[:, ::1], float64[:, :, ::1], int64, "
    "boolean)",
    inline="always",
    nrt=False,
)
def _spiking_batch(row, params, acts, values, counters, k, leaky):
    """IF or LIF (``leaky``) for every stream; inlined into :func:`lif_batch` and
    :func:`if_batch`, where ``leaky`` is a constant and its branch folds away.

    Each whole run of 64 neurons is updated by one vector pass that also gives the bit mask
    of its spikes (:func:`simd.lif_run64`, :func:`simd.if_run64`); the last, partial run is
    updated one neuron at a time and listed from its outputs (:func:`_list_tail`).
    When ``MODE >= 0`` the list goes at that float offset of the stream's
    ``acts``, viewed as int32: ``[count, index, index, ...]`` (increasing); the next Dense,
    Conv2d or pooling layer reads it (column ``IN2``) instead of scanning the spikes."""
    flat = flat_view(acts)
    ai = flat.view(np.int32)
    mem = flat_view(values)
    n = U64(row[N_OUT])
    th = params[row[P2]]
    decay = params[row[P2] + 1] if leaky else np.float32(1.0)
    for bb in range(acts.shape[0]):
        base = U64(bb) * U64(acts.shape[1])
        x0 = base + U64(row[IN])
        y0 = base + U64(row[OUT])
        v0 = U64(bb) * U64(values.shape[1]) + U64(row[S0])
        dst = np.int64(base) + row[MODE] + 1 if row[MODE] >= 0 else -1
        spikes = 0
        i0 = U64(0)
        while i0 + U64(64) <= n:  # whole runs: update and spike mask in one vector pass
            if leaky:
                mask = lif_run64(mem, v0 + i0, flat, x0 + i0, y0 + i0, th, decay)
            else:
                mask = if_run64(mem, v0 + i0, flat, x0 + i0, y0 + i0, th)
            if mask != 0:
                if dst >= 0:
                    spikes = np.int64(append_set_bits(ai, U64(dst + spikes), i0, mask)) - dst
                else:
                    spikes += np.int64(popcount64(mask))
            i0 += U64(64)
        for i in range(i0, n):  # the last, partial run
            if leaky:
                u = decay * mem[v0 + i] + flat[x0 + i]
                fire = u >= th
                mem[v0 + i] = np.float32(0.0) if (fire | (abs(u) < TINY)) else u
            else:
                u = mem[v0 + i] + flat[x0 + i]
                fire = u >= th
                mem[v0 + i] = u - th if fire else u
            flat[y0 + i] = np.float32(1.0) if fire else np.float32(0.0)
        if i0 < n:
            spikes = _list_tail(flat, ai, y0, i0, n, dst, spikes)
        if dst >= 0:
            ai[U64(dst - 1)] = np.int32(spikes)
        counters[bb, k, NONZERO] += spikes
        counters[bb, k, SPIKES] += spikes
        counters[bb, k, TOTAL] += row[N_OUT]


@jit(BATCH_SIGNATURE, inline="always", nrt=False)
def lif_batch(row, params, acts, values, counters, k):
    """LIF for every stream, ``params[P2:]`` holding ``(th, decay)``: ``v = decay*v + x;
    s = v >= th; v = 0 where s``; ``|v| < 1e-30`` flushed to 0."""
    _spiking_batch(row, params, acts, values, counters, k, True)


@jit(BATCH_SIGNATURE, inline="always", nrt=False)
def if_batch(row, params, acts, values, counters, k):
    """IF for every stream, ``params[P2]`` holding ``th``: ``v += x; s = v >= th; v -= s*th``
    (reset by subtraction)."""
    _spiking_batch(row, params, acts, values, counters, k, False)


@jit(
    "void(float32[:, ::1], uint64, float32[:, ::1], uint64, int64, int64, int64, int64)", nrt=False
)
def copy_rows(src, s0, dst, d0, n, n_c, n_h, n_w):
    """Per stream ``b``: ``dst[b, d0:d0+n] = src[b, s0:s0+n]``, transposed ``(C, H, W) ->
    (H, W, C)`` when ``n_c > 0`` and ``n_c < 0`` (the reverse, with ``C = -n_c``)."""
    fs = flat_view(src)
    fd = flat_view(dst)
    for bb in range(src.shape[0]):
        a = U64(bb) * U64(src.shape[1]) + s0
        z = U64(bb) * U64(dst.shape[1]) + d0
        if n_c == 0:
            for j in range(U64(n)):
                fd[z + j] = fs[a + j]
        elif n_c == 2:  # (2, H, W) -> (H, W, 2), event cameras' polarities: vectorised
            hw = U64(n_h * n_w)
            for p in range(hw):
                fd[z + U64(2) * p] = fs[a + p]
                fd[z + U64(2) * p + U64(1)] = fs[a + hw + p]
        elif n_c > 0:  # (C, H, W) -> (H, W, C)
            c_n, hw = U64(n_c), U64(n_h * n_w)
            for c in range(c_n):
                for p in range(hw):
                    fd[z + p * c_n + c] = fs[a + c * hw + p]
        else:  # (H, W, C) -> (C, H, W)
            c_n, hw = U64(-n_c), U64(n_h * n_w)
            for c in range(c_n):
                for p in range(hw):
                    fd[z + c * hw + p] = fs[a + p * c_n + c]


@jit("void(int64[::1], float32[:, ::1], float32[:, ::1], float32[:, ::1])", nrt=False)
def move_batch(row, x, out, acts):
    """Input (``x`` into ``acts``), Output (``acts`` into ``out``) and Flatten (within
    ``acts``) for every stream; spatial data is stored ``(H, W, C)`` (see ``conv.py``)."""
    n_c = max(row[C], 0)
    if row[OP] == INPUT:
        copy_rows(x, U64(0), acts, U64(row[OUT]), row[N_OUT], n_c, row[H], row[W])
    elif row[OP] == OUTPUT:
        copy_rows(acts, U64(row[IN]), out, U64(0), row[N_OUT], -n_c, row[H], row[W])
    else:  # Flatten
        copy_rows(acts, U64(row[IN]), acts, U64(row[OUT]), row[N_OUT], -n_c, row[H], row[W])
