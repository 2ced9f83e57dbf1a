"""The interpreter: one jitted call runs a compiled network over frames and streams.

:func:`execute` walks the ``code`` table (see :mod:`eventsp.kernels.layout`) once per frame
and stream, dispatching each row to its kernel. Streams are independent: stream ``b`` reads
``xs[:, b]``, writes ``outs[:, b]`` and touches only row ``b`` of ``values``, ``acts``,
``steps`` and ``counters``, so any split of a batch gives the same results.

Numba caches this function on disk keyed on this file only: after editing any kernel it calls
(``dense.py``, ``conv.py``, ``neurons.py``, ``layout.py``), touch this file too.
"""

from __future__ import annotations

from eventsp._jit import jit
from eventsp.kernels.conv import conv2d_step, pool2d_step
from eventsp.kernels.dense import causal_conv1d_step, dense_step
from eventsp.kernels.layout import (
    ADD,
    CCONV1D,
    CONV2D,
    DENSE,
    IF,
    IN,
    INPUT,
    LIF,
    LMU,
    MSPIKE,
    N_IN,
    N_OUT,
    OP,
    OUT,
    OUTPUT,
    POOL,
    READOUT,
    RELU,
)
from eventsp.kernels.neurons import (
    add_step,
    if_step,
    lif_step,
    lmu_step,
    multispike_step,
    readout_step,
    relu_step,
)

EXECUTE_SIGNATURE = (
    "void(int64[:, ::1], float32[::1], float32[:, :, ::1], float32[:, :, ::1], "
    "float32[:, ::1], float32[:, ::1], int64[::1], float64[:, :, ::1])"
)


@jit(EXECUTE_SIGNATURE)
def execute(code, params, xs, outs, values, acts, steps, counters):
    """Run ``xs`` (T, batch, n_in) through the program; write ``outs`` (T, batch, n_out).

    ``values`` (batch, n_state), ``acts`` (batch, n_act), ``steps`` (batch,) and ``counters``
    (batch, n_ops, NCOUNT) are the streams' state, updated in place.
    """
    n_frames = xs.shape[0]
    n_ops = code.shape[0]
    for b in range(xs.shape[1]):
        a = acts[b]
        v = values[b]
        cnt = counters[b]
        for f in range(n_frames):
            t = steps[b]
            for k in range(n_ops):
                row = code[k]
                op = row[OP]
                c = cnt[k]
                if op == INPUT:
                    a[row[OUT] : row[OUT] + row[N_OUT]] = xs[f, b]
                elif op == DENSE:
                    dense_step(row, params, a, v, c, t)
                elif op == LIF:
                    lif_step(row, params, a, v, c, t)
                elif op == IF:
                    if_step(row, params, a, v, c, t)
                elif op == CONV2D:
                    conv2d_step(row, params, a, v, c, t)
                elif op == POOL:
                    pool2d_step(row, params, a, v, c, t)
                elif op == OUTPUT:
                    outs[f, b] = a[row[IN] : row[IN] + row[N_IN]]
                elif op == MSPIKE:
                    multispike_step(row, params, a, v, c, t)
                elif op == RELU:
                    relu_step(row, params, a, v, c, t)
                elif op == ADD:
                    add_step(row, params, a, v, c, t)
                elif op == CCONV1D:
                    causal_conv1d_step(row, params, a, v, c, t)
                elif op == LMU:
                    lmu_step(row, params, a, v, c, t)
                elif op == READOUT:
                    readout_step(row, params, a, v, c, t)
            steps[b] = t + 1
