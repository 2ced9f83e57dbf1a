"""2-D convolution, pooling and layout kernels. Spatial activations are stored ``(H, W, C)``.

Inside the runtime every 3-D activation ``(C, H, W)`` of the graph is stored channels-last,
``(H, W, C)`` in C order, so that one input pixel's kernel patch updates contiguous runs of
output channels. The graph's ``(C, H, W)`` order is restored at Flatten and Output, and the
input frame is transposed once on the way in (``batch.copy_rows``).

Convolution is cross-correlation as in torch, with stride, zero padding and groups, from
weights stored ``(C_in, kh, kw, out_per_group)``, kx reversed (``[c, ky, kw-1-kx]`` is tap
``(ky, kx)``), at ``params[P0:]``. The event-driven path
scatters one kernel patch per nonzero input pixel; the dense path gathers every output pixel.
Both add into an output as bias, then the taps in ``(ky, kx, input channel)`` order, so they
agree bit for bit. The path is chosen per frame from the fraction of nonzero inputs
(:data:`~eventsp.kernels.layout.SPARSE_MAX_DENSITY`).
"""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit
from eventsp.kernels.dense import OP_SIGNATURE, active_inputs, active_offset
from eventsp.kernels.layout import (
    ACS,
    DENSE_OPS,
    HO,
    IN,
    IN2,
    KH,
    KW,
    MACS,
    N_IN,
    N_OUT,
    OC,
    OUT,
    P0,
    P1,
    P2,
    PH,
    PW,
    SH,
    SPARSE_MAX_DENSITY,
    SW,
    WO,
    C,
    G,
    H,
    W,
)


@jit(OP_SIGNATURE, nrt=False)
def conv2d_step(row, params, acts, values, cnt, t):
    """One frame of Conv2d on ``(H, W, C)`` input into ``(HO, WO, O)`` output."""
    n_c, n_h, n_w = row[C], row[H], row[W]
    n_o, n_ho, n_wo = row[OC], row[HO], row[WO]
    kh, kw, sh, sw, ph, pw = row[KH], row[KW], row[SH], row[SW], row[PH], row[PW]
    groups = row[G]
    cin_pg = n_c // groups
    opg = n_o // groups
    x = acts[row[IN] : row[IN] + row[N_IN]]
    y = acts[row[OUT] : row[OUT] + row[N_OUT]]
    w0 = row[P0]
    b_off = row[P1]
    b_run = params[max(b_off, 0) : max(b_off, 0) + n_o]
    if b_off >= 0:
        # The bias in the first pixel, then copies of the filled part doubling in length:
        # long contiguous copies instead of one short loop per pixel.
        for j in range(n_o):
            y[j] = b_run[j]
        filled = n_o
        total = y.shape[0]
        while filled < total:
            m = min(filled, total - filled)
            src = y[:m]
            dst = y[filled : filled + m]
            for j in range(m):
                dst[j] = src[j]
            filled += m
    else:
        for j in range(y.shape[0]):
            y[j] = 0.0
    listed = active_inputs(x, acts, row)
    off = active_offset(row)
    idx = acts[off : off + row[N_IN]].view(np.int32)
    nnz = abs(listed)
    binary = listed >= 0
    effective = 0
    unit_stride = sh == 1 and sw == 1
    if nnz < SPARSE_MAX_DENSITY * x.shape[0]:
        tab = row[P2]  # (iy, ix, c) of every input index, as floats: no divisions here
        n_in = x.shape[0]
        rows_line_up = unit_stride and groups == 1
        skip = 0
        for k in range(nnz):
            if skip > 0:  # already added with an earlier input of the same pixel
                skip -= 1
                continue
            i = idx[k]  # inputs are visited in (H, W, C) memory order
            iy = np.int64(params[tab + i])
            ix = np.int64(params[tab + n_in + i])
            c = np.int64(params[tab + 2 * n_in + i])
            v = x[i]
            if rows_line_up:
                # One kernel row's taps reach adjacent output pixels, whose channels are
                # contiguous, and the patch stores kx reversed: one run of ``taps * n_o``
                # adds per kernel row (each output still gets one add per input, as below).
                # Four inputs of the same pixel (the next channels in the list) share the
                # run: ``y = (((y + v0 w0) + v1 w1) + v2 w2) + v3 w3`` adds them in list
                # order, the same bit for bit as one at a time.
                n_same = 1
                while n_same < 4 and k + n_same < nnz:
                    i_next = idx[k + n_same]
                    if i_next - np.int64(params[tab + 2 * n_in + i_next]) != i - c:
                        break
                    n_same += 1
                if n_same < 4:
                    n_same = 1
                skip = n_same - 1
                kx_lo = max(0, ix + pw - (n_wo - 1))
                kx_hi = min(kw - 1, ix + pw)
                if kx_lo > kx_hi:
                    continue
                run = (kx_hi - kx_lo + 1) * n_o
                if n_same == 4:
                    i1, i2, i3 = idx[k + 1], idx[k + 2], idx[k + 3]
                    v1, v2, v3 = x[i1], x[i2], x[i3]
                    c1 = np.int64(params[tab + 2 * n_in + i1])
                    c2 = np.int64(params[tab + 2 * n_in + i2])
                    c3 = np.int64(params[tab + 2 * n_in + i3])
                for ky in range(kh):
                    oy = iy + ph - ky
                    if oy < 0:
                        break
                    if oy >= n_ho:
                        continue
                    # Unsigned offsets into acts and params, no slices (a slice cost two
                    # atomic reference-count updates with Numba's runtime; unsigned offsets
                    # also spare the negative-index checks).
                    tap = (ky * kw + kw - 1 - kx_hi) * n_o
                    yb = np.uint64(row[OUT] + (oy * n_wo + ix + pw - kx_hi) * n_o)
                    wb = np.uint64(w0 + c * kh * kw * n_o + tap)
                    n_run = np.uint64(run)
                    if n_same == 4:
                        wb1 = np.uint64(w0 + c1 * kh * kw * n_o + tap)
                        wb2 = np.uint64(w0 + c2 * kh * kw * n_o + tap)
                        wb3 = np.uint64(w0 + c3 * kh * kw * n_o + tap)
                        for j in range(n_run):
                            acts[yb + j] = (
                                ((acts[yb + j] + v * params[wb + j]) + v1 * params[wb1 + j])
                                + v2 * params[wb2 + j]
                            ) + v3 * params[wb3 + j]
                    else:
                        for j in range(n_run):
                            acts[yb + j] += v * params[wb + j]
                    effective += run * n_same
                continue
            o0 = (c // cin_pg) * opg
            for ky in range(kh):
                ny = iy + ph - ky  # = oy * sh for the output row this tap reaches
                if ny < 0:
                    break
                if unit_stride:
                    oy = ny
                elif ny % sh != 0:
                    continue
                else:
                    oy = ny // sh
                if oy >= n_ho:
                    continue
                for kx in range(kw):
                    nx = ix + pw - kx
                    if nx < 0:
                        break
                    if unit_stride:
                        ox = nx
                    elif nx % sw != 0:
                        continue
                    else:
                        ox = nx // sw
                    if ox >= n_wo:
                        continue
                    ob = (oy * n_wo + ox) * n_o + o0
                    wb = w0 + ((c * kh + ky) * kw + kw - 1 - kx) * opg
                    y_run = y[ob : ob + opg]  # explicit slices: calls cost more than the work
                    w_run = params[wb : wb + opg]
                    for j in range(opg):
                        y_run[j] += v * w_run[j]
                    effective += opg
    else:
        for oy in range(n_ho):
            for ox in range(n_wo):
                ob = (oy * n_wo + ox) * n_o
                for ky in range(kh):
                    iy = oy * sh - ph + ky
                    if iy < 0 or iy >= n_h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw - pw + kx
                        if ix < 0 or ix >= n_w:
                            continue
                        base_in = (iy * n_w + ix) * n_c
                        for c in range(n_c):
                            v = x[base_in + c]
                            if v != 0.0:
                                effective += opg
                            o0 = ob + (c // cin_pg) * opg
                            wb = w0 + ((c * kh + ky) * kw + kw - 1 - kx) * opg
                            y_run = y[o0 : o0 + opg]
                            w_run = params[wb : wb + opg]
                            for j in range(opg):
                                y_run[j] += v * w_run[j]
    if binary:
        cnt[ACS] += effective
    else:
        cnt[MACS] += effective
    cnt[DENSE_OPS] += n_ho * n_wo * n_o * cin_pg * kh * kw


@jit(OP_SIGNATURE, nrt=False)
def pool2d_step(row, params, acts, values, cnt, t):
    """Sum (``P0 == 0``) or average (``P0 == 1``) over ``kh x kw`` windows, no padding.

    ``PH``: offset in ``params`` of the window each input falls in when windows do not
    overlap (kernel == stride), for the event-driven path; ``-1`` otherwise.

    The window is summed in float32 in ``(ky, kx)`` order, then multiplied by ``1/(kh*kw)``.
    """
    n_c, n_w = row[C], row[W]
    n_ho, n_wo = row[HO], row[WO]
    kh, kw, sh, sw = row[KH], row[KW], row[SH], row[SW]
    x = acts[row[IN] : row[IN] + row[N_IN]]
    y = acts[row[OUT] : row[OUT] + row[N_OUT]]
    average = row[P0] == 1
    inv = params[row[P1]]
    for j in range(y.shape[0]):
        y[j] = 0.0
    if row[IN2] >= 0:
        # Event-driven: the producer listed its spikes; add each to the windows it falls in.
        # An output still sums its window in (ky, kx) order, so this equals the loop below.
        n_c = row[C]
        n_in = x.shape[0]
        lst = acts[row[IN2] : row[IN2] + 1 + row[N_IN]].view(np.int32)
        dst = row[PH]  # kernel == stride: the output index of every input (floats), or -1
        if dst >= 0:
            for k in range(lst[0]):
                i = lst[1 + k]
                o = np.int64(params[dst + i])
                if o >= 0:
                    y[o] += x[i]
        else:
            tab = row[P2]  # (iy, ix, c) of every input index, as floats
            for k in range(lst[0]):
                i = lst[1 + k]
                iy = np.int64(params[tab + i])
                ix = np.int64(params[tab + n_in + i])
                c = np.int64(params[tab + 2 * n_in + i])
                v = x[i]
                for ky in range(kh):
                    ny = iy - ky
                    if ny < 0:
                        break
                    if ny % sh != 0 or ny // sh >= n_ho:
                        continue
                    for kx in range(kw):
                        nx = ix - kx
                        if nx < 0:
                            break
                        if nx % sw != 0 or nx // sw >= n_wo:
                            continue
                        y[((ny // sh) * n_wo + nx // sw) * n_c + c] += v
        if average:
            for j in range(y.shape[0]):
                y[j] *= inv
        return
    for oy in range(n_ho):
        for ox in range(n_wo):
            ob = (oy * n_wo + ox) * n_c
            for ky in range(kh):
                for kx in range(kw):
                    xb = ((oy * sh + ky) * n_w + ox * sw + kx) * n_c
                    y_run = y[ob : ob + n_c]
                    x_run = x[xb : xb + n_c]
                    for j in range(n_c):
                        y_run[j] += x_run[j]
    if average:
        for j in range(y.shape[0]):
            y[j] *= inv
