"""2-D convolution and pooling kernels on ``(C, H, W)`` activations in C order.

Convolution is cross-correlation as in torch, with stride, zero padding and groups. The dense
path gathers (for each output channel, input channel, kernel tap, output pixel); the
event-driven path scatters one kernel patch per nonzero input pixel, from weights stored
``(C_in, kh, kw, out_per_group)`` at ``params[P2:]``. Every output is summed as bias, then the
taps in ``(input channel, ky, kx)`` order on both paths, so they agree bit for bit. The path is
chosen per frame from the fraction of nonzero inputs (:data:`SPARSE_MAX_DENSITY`).
"""

from __future__ import annotations

from eventsp._jit import jit
from eventsp.kernels.dense import OP_SIGNATURE
from eventsp.kernels.layout import (
    ACS,
    DENSE_OPS,
    HO,
    IN,
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


@jit(OP_SIGNATURE)
def conv2d_step(row, params, acts, values, cnt, t):
    """One frame of Conv2d; weights ``(O, C/G, kh, kw)`` at ``P0``, scatter copy at ``P2``."""
    n_c, n_h, n_w = row[C], row[H], row[W]
    n_o, n_ho, n_wo = row[OC], row[HO], row[WO]
    kh, kw, sh, sw, ph, pw = row[KH], row[KW], row[SH], row[SW], row[PH], row[PW]
    groups = row[G]
    cin_pg = n_c // groups
    opg = n_o // groups
    x = acts[row[IN] : row[IN] + row[N_IN]]
    y = acts[row[OUT] : row[OUT] + row[N_OUT]]
    plane = n_ho * n_wo
    b_off = row[P1]
    for o in range(n_o):
        b = params[b_off + o] if b_off >= 0 else 0.0
        for p in range(plane):
            y[o * plane + p] = b
    nnz = 0
    binary = True
    for i in range(x.shape[0]):
        v = x[i]
        if v != 0.0:
            nnz += 1
            if v != 1.0:
                binary = False
    effective = 0
    if nnz < SPARSE_MAX_DENSITY * x.shape[0]:
        ws = row[P2]
        for c in range(n_c):
            g = c // cin_pg
            for iy in range(n_h):
                for ix in range(n_w):
                    v = x[(c * n_h + iy) * n_w + ix]
                    if v == 0.0:
                        continue
                    for ky in range(kh):
                        ny = iy + ph - ky
                        if ny < 0 or ny % sh != 0 or ny // sh >= n_ho:
                            continue
                        oy = ny // sh
                        for kx in range(kw):
                            nx = ix + pw - kx
                            if nx < 0 or nx % sw != 0 or nx // sw >= n_wo:
                                continue
                            ox = nx // sw
                            wbase = ws + ((c * kh + ky) * kw + kx) * opg
                            obase = (g * opg * n_ho + oy) * n_wo + ox
                            for ol in range(opg):
                                y[obase + ol * plane] += v * params[wbase + ol]
                            effective += opg
    else:
        w0 = row[P0]
        for o in range(n_o):
            g = o // opg
            for cl in range(cin_pg):
                c = g * cin_pg + cl
                for ky in range(kh):
                    for kx in range(kw):
                        w = params[w0 + ((o * cin_pg + cl) * kh + ky) * kw + kx]
                        ox_lo = max(0, (pw - kx + sw - 1) // sw)
                        ox_hi = min(n_wo, (n_w - 1 + pw - kx) // sw + 1)
                        for oy in range(n_ho):
                            iy = oy * sh - ph + ky
                            if iy < 0 or iy >= n_h:
                                continue
                            xb = (c * n_h + iy) * n_w - pw + kx
                            yb = (o * n_ho + oy) * n_wo
                            for ox in range(ox_lo, ox_hi):
                                xv = x[xb + ox * sw]
                                if xv != 0.0:
                                    effective += 1
                                y[yb + ox] += w * xv
    if binary:
        cnt[ACS] += effective
    else:
        cnt[MACS] += effective
    cnt[DENSE_OPS] += n_o * plane * cin_pg * kh * kw


@jit(OP_SIGNATURE)
def pool2d_step(row, params, acts, values, cnt, t):
    """Sum (``P0 == 0``) or average (``P0 == 1``) over ``kh x kw`` windows, no padding."""
    n_c, n_h, n_w = row[C], row[H], row[W]
    n_ho, n_wo = row[HO], row[WO]
    kh, kw, sh, sw = row[KH], row[KW], row[SH], row[SW]
    x = acts[row[IN] : row[IN] + row[N_IN]]
    y = acts[row[OUT] : row[OUT] + row[N_OUT]]
    average = row[P0] == 1
    inv = 1.0 / (kh * kw)
    for c in range(n_c):
        for oy in range(n_ho):
            for ox in range(n_wo):
                s = 0.0
                for ky in range(kh):
                    base = (c * n_h + oy * sh + ky) * n_w + ox * sw
                    for kx in range(kw):
                        s += x[base + kx]
                if average:
                    s = s * inv
                y[(c * n_ho + oy) * n_wo + ox] = s
