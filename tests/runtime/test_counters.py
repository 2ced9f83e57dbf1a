"""NeuroBench counters per stream: effective ACs/MACs, dense ops, sparsity, spikes."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network


def dense_lif(rng, n_in=30, n_out=8):
    return g.Graph.chain(
        [
            ("in", g.Input((n_in,))),
            ("fc", g.Dense(rng.normal(0, 0.5, (n_out, n_in)))),
            ("lif", g.LIF(0.9, 1.0)),
            ("out", g.Output((n_out,))),
        ]
    )


def test_dense_counters_from_first_principles(rng):
    net = Network(dense_lif(rng))
    xs = (rng.random((50, 2, 30)) < 0.2).astype(np.float32)
    outs, state = net.run(xs, net.init_state(2))
    for b, c in enumerate(net.counters(state)):
        assert c["steps"] == 50
        assert c["effective_acs"] == np.count_nonzero(xs[:, b]) * 8
        assert c["effective_macs"] == 0
        assert c["dense_ops"] == 50 * 30 * 8
        assert c["spikes"] == {"lif": outs[:, b].sum()}
        assert c["activation_sparsity"] == pytest.approx(1 - outs[:, b].mean())
        assert c["neurons"] == {"lif": 8}


def test_analog_input_counts_macs(rng):
    net = Network(dense_lif(rng))
    xs = rng.normal(size=(10, 1, 30)).astype(np.float32)
    xs[:, :, :5] = 0
    _, state = net.run(xs, net.init_state(1))
    (c,) = net.counters(state)
    assert c["effective_acs"] == 0
    assert c["effective_macs"] == 10 * 25 * 8
    assert c["effective_synops"] == c["effective_macs"]


def _conv_effective(x, w_shape, stride, pad):
    """Nonzero input pixels times the output taps they reach (one output channel)."""
    _, h, w = x.shape
    _, _, kh, kw = w_shape
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    count = 0
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                    if 0 <= iy < h and 0 <= ix < w:
                        count += np.count_nonzero(x[:, iy, ix])
    return count, ho * wo


@pytest.mark.parametrize("density", [0.05, 0.8])
def test_conv_counters_on_both_paths(rng, density):
    w = rng.normal(size=(6, 2, 3, 3))
    graph = g.Graph.chain(
        [
            ("in", g.Input((2, 9, 9))),
            ("c", g.Conv2d(w, stride=2, padding=1)),
            ("relu", g.ReLU()),
            ("o", g.Output((6, 5, 5))),
        ]
    )
    net = Network(graph)
    xs = (rng.random((4, 1, 2, 9, 9)) < density).astype(np.float32)
    outs, state = net.run(xs, net.init_state(1))
    (c,) = net.counters(state)
    per_out = [_conv_effective(x[0], w.shape, 2, 1) for x in xs]
    assert c["effective_acs"] == sum(n for n, _ in per_out) * 6
    assert c["dense_ops"] == 4 * 6 * 25 * 2 * 9
    assert c["activation_sparsity"] == pytest.approx(1 - np.count_nonzero(outs) / outs.size)


def test_parameter_bytes_counts_every_array(rng):
    graph = dense_lif(rng)
    quant = g.Graph.chain(
        [
            ("in", g.Input((30,))),
            ("fc", g.Dense(np.zeros((8, 30), np.int8), np.zeros(8), 4, 0.1)),
            ("out", g.Output((8,))),
        ]
    )
    assert Network(graph).parameter_bytes == 8 * 30 * 4
    assert Network(quant).parameter_bytes == 8 * 30 + 8 * 4
