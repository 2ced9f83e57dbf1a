"""The batch-level kernels (``eventsp/kernels/batch.py``) against the per-stream kernels.

``Network.step`` runs Input, Output, Flatten, Dense, IF and LIF as one call per batch; the
same program run op by op and stream by stream through ``run_op`` (the per-stream kernels)
must leave every state array identical, bit for bit, spike lists and counters included.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.kernels.program import run_op
from eventsp.model import graph as g
from eventsp.runtime import Network, snapshot


def _mlp(rng: np.random.Generator) -> g.Graph:
    def w(n_out, n_in, gain):
        return rng.normal(0, gain / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)

    return g.Graph.chain(
        [
            ("in", g.Input((150,))),
            ("fc1", g.Dense(w(70, 150, 3.0), rng.normal(0, 0.1, 70).astype(np.float32))),
            ("lif1", g.LIF(decay=0.9, threshold=1.0)),
            ("fc2", g.Dense(w(66, 70, 2.5), None)),
            ("if2", g.IF(threshold=0.8)),
            ("fc3", g.Dense(w(9, 66, 2.0), np.zeros(9, np.float32))),
            ("lif3", g.LIF(decay=0.8, threshold=0.5)),
            ("out", g.Output((9,))),
        ]
    )


def _conv(rng: np.random.Generator) -> g.Graph:
    kernel = rng.normal(0, 1.0, (4, 2, 3, 3)).astype(np.float32)
    dense = rng.normal(0, 1.0, (5, 4 * 3 * 3)).astype(np.float32)
    return g.Graph.chain(
        [
            ("in", g.Input((2, 7, 6))),
            ("conv", g.Conv2d(kernel, np.full(4, 0.1, np.float32), padding=1)),
            ("lif", g.LIF(decay=0.9, threshold=1.0)),
            ("pool", g.AvgPool2d(kernel=2)),
            ("flat", g.Flatten()),
            ("fc", g.Dense(dense, None)),
            ("if", g.IF(threshold=0.5)),
            ("out", g.Output((5,))),
        ]
    )


def _per_stream_step(net: Network, x: np.ndarray, state) -> np.ndarray:
    """One frame through the per-stream kernels only (``run_op`` per op and stream)."""
    p = net.program
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)
    out = np.zeros((x.shape[0], p.n_out), np.float32)
    values, acts, steps, counters = state
    for k in range(1, p.code.shape[0]):
        for b in range(x.shape[0]):
            run_op(p.code[k], p.params, x[b], out[b], acts[b], values[b], counters[b, k], steps[b])
    steps += 1
    return out


@pytest.mark.parametrize("make", [_mlp, _conv])
@pytest.mark.parametrize("binary", [True, False])
def test_batch_kernels_equal_per_stream_kernels(rng, make, binary):
    net = Network(make(rng))
    batch, frames = 5, 30
    xs = (rng.random((frames, batch, *net.input_shape)) < 0.2).astype(np.float32)
    if not binary:
        xs *= rng.integers(1, 4, xs.shape).astype(np.float32) * 0.5
    fast = net.init_state(batch)
    slow = snapshot(fast)
    for t in range(frames):
        out_fast, _ = net.step(xs[t], fast)
        out_slow = _per_stream_step(net, xs[t], slow)
        np.testing.assert_array_equal(out_fast.reshape(batch, -1), out_slow, err_msg=f"frame {t}")
        for name, a, b in zip(fast._fields, fast, slow, strict=True):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{name} at frame {t}"
    spikes = net.counters(fast)[0]["spikes"]
    assert all(count > 0 for count in spikes.values()), spikes  # every layer was exercised
