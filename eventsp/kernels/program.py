"""The interpreter: one jitted call runs a compiled network over frames and streams.

:func:`execute_step` (one frame) and :func:`execute_run` (a block of frames) walk the
``code`` table (see :mod:`eventsp.kernels.layout`) once per frame and stream, dispatching each
row to its kernel. Row 0 of ``code`` is a header: ``N_IN``/``N_OUT`` the frame sizes, ``H`` the
size of ``acts`` and ``W`` the size of ``values`` per stream; both entry points check the
arrays they are given against it before touching memory and return a status code.

Streams are independent: stream ``b`` reads ``xs[:, b]``, writes ``outs[:, b]`` and touches
only row ``b`` of ``values``, ``acts``, ``steps`` and ``counters``, so any split of a batch
gives the same results.

Numba caches these functions on disk keyed on the *contents* of this file only (a hash: touching
the file changes nothing), yet the cached code includes the kernels they call. So this file
records the hash of those kernel modules in :data:`KERNEL_SOURCES_SHA256`: after editing
any other module of ``eventsp/kernels``, set it to the value that
``tests/runtime/test_kernel_cache.py`` prints (the test fails until then), which rebuilds the
cache. A stale cache would silently run the old kernels.
"""

from __future__ import annotations

from eventsp._jit import jit
from eventsp.kernels.batch import dense_batch, if_batch, lif_batch, move_batch
from eventsp.kernels.conv import conv2d_step, pool2d_step
from eventsp.kernels.dense import OP_SIGNATURE, causal_conv1d_step
from eventsp.kernels.layout import (
    ADD,
    CCONV1D,
    CONV2D,
    DENSE,
    FLATTEN,
    IF,
    INPUT,
    LIF,
    LMU,
    MSPIKE,
    N_IN,
    N_OUT,
    NCOUNT,
    OP,
    OUTPUT,
    POOL,
    READOUT,
    RELU,
    H,
    W,
)
from eventsp.kernels.neurons import (
    add_step,
    lmu_step,
    multispike_step,
    readout_step,
    relu_step,
)

# sha256 over the other modules of eventsp/kernels, by name (see the docstring).
KERNEL_SOURCES_SHA256 = "892672aecd6a457b1d87c1d749f42f32ab2edf638307fa02dc0bd076217a66aa"

STATE_TYPES = "float32[:, ::1], float32[:, ::1], int64[::1], float64[:, :, ::1]"

# Status codes returned by execute_run / execute_step.
OK = 0
BAD_INPUT = 1
BAD_BATCH = 2
BAD_STATE = 3


@jit(OP_SIGNATURE, nrt=False)
def run_op(row, params, a, v, c, t):
    """Row ``row`` of the program for one stream, for the ops that :func:`_frame` does not run
    as batch kernels: activations ``a``, state ``v``, this op's counters ``c``, ``t`` frames
    run before."""
    op = row[OP]
    if op == MSPIKE:
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


@jit(
    "void(int64[:, ::1], float32[::1], float32[:, ::1], float32[:, ::1], " + STATE_TYPES + ")",
    nrt=False,
)
def _frame(code, params, x, out, values, acts, steps, counters):
    """One frame of every stream, op by op: each layer runs for all streams before the next,
    so its weights stay in cache across streams (streams stay independent). The commonest
    ops run as one batch-level call (``batch.py``), the others once per stream."""
    for k in range(1, code.shape[0]):
        row = code[k]
        op = row[OP]
        if op == DENSE:
            dense_batch(row, params, acts, values, counters, k)
        elif op == LIF:
            lif_batch(row, params, acts, values, counters, k)
        elif op == IF:
            if_batch(row, params, acts, values, counters, k)
        elif op in (INPUT, OUTPUT, FLATTEN):
            move_batch(row, x, out, acts)
        elif op == CONV2D:  # direct calls: run_op's own slices cost more than its dispatch
            for b in range(x.shape[0]):
                conv2d_step(row, params, acts[b], values[b], counters[b, k], steps[b])
        elif op == POOL:
            for b in range(x.shape[0]):
                pool2d_step(row, params, acts[b], values[b], counters[b, k], steps[b])
        else:
            for b in range(x.shape[0]):
                run_op(row, params, acts[b], values[b], counters[b, k], steps[b])
    for b in range(x.shape[0]):
        steps[b] += 1


@jit("int64(int64[:, ::1], int64, int64, int64, " + STATE_TYPES + ")", nrt=False)
def check_shapes(code, n_in, n_out, batch, values, acts, steps, counters):
    """Status of a call: frame sizes, batch and state sizes against the header row."""
    head = code[0]
    if n_in != head[N_IN] or n_out != head[N_OUT]:
        return BAD_INPUT
    if steps.shape[0] != batch:
        return BAD_BATCH
    if (
        values.shape[0] != batch
        or acts.shape[0] != batch
        or counters.shape[0] != batch
        or acts.shape[1] != head[H]
        or values.shape[1] != head[W]
        or counters.shape[1] != code.shape[0]
        or counters.shape[2] != NCOUNT
    ):
        return BAD_STATE
    return OK


@jit(
    "int64(int64[:, ::1], float32[::1], float32[:, :, ::1], float32[:, :, ::1], "
    + STATE_TYPES
    + ")",
    nrt=False,
)
def execute_run(code, params, xs, outs, values, acts, steps, counters):
    """Run ``xs`` (T, batch, n_in) into ``outs`` (T, batch, n_out); returns a status code.

    ``values`` (batch, n_values), ``acts`` (batch, n_acts), ``steps`` (batch,) and
    ``counters`` (batch, n_rows, NCOUNT) are the streams' state, updated in place. Nothing
    runs unless the status is ``OK``.
    """
    batch = xs.shape[1]
    if outs.shape[0] != xs.shape[0] or outs.shape[1] != batch:
        return BAD_INPUT
    status = check_shapes(code, xs.shape[2], outs.shape[2], batch, values, acts, steps, counters)
    if status != OK:
        return status
    for f in range(xs.shape[0]):
        _frame(code, params, xs[f], outs[f], values, acts, steps, counters)
    return OK


@jit(
    "int64(int64[:, ::1], float32[::1], float32[:, ::1], float32[:, ::1], " + STATE_TYPES + ")",
    nrt=False,
)
def execute_step(code, params, x, out, values, acts, steps, counters):
    """One frame for every stream: ``x`` (batch, n_in) into ``out`` (batch, n_out)."""
    batch = x.shape[0]
    if out.shape[0] != batch:
        return BAD_INPUT
    status = check_shapes(code, x.shape[1], out.shape[1], batch, values, acts, steps, counters)
    if status != OK:
        return status
    _frame(code, params, x, out, values, acts, steps, counters)
    return OK
