"""Fixed-point mode: bit-exact against the integer reference, and the quantiser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network, quantize_graph, quantize_weights

from naive import naive_fixed_run


def q_mlp(rng, bits=4, analog=True):
    graph = g.Graph.chain(
        [
            ("in", g.Input((12,), *((8, 0.05) if analog else (None, None)))),
            ("fc1", g.Dense(rng.normal(0, 0.5, (10, 12)), rng.normal(0, 0.2, 10))),
            ("lif", g.LIF(0.8, 1.0)),
            ("fc2", g.Dense(rng.normal(0, 0.6, (8, 10)))),
            ("ifn", g.IF(0.7)),
            ("fc3", g.Dense(rng.normal(0, 0.6, (3, 8)), rng.normal(0, 0.1, 3))),
            ("ms", g.MultiSpike(0.5)),
            ("read", g.Readout("mean")),
            ("out", g.Output((3,))),
        ]
    )
    return quantize_graph(graph, bits)


def q_conv(rng, bits=6):
    graph = g.Graph(
        {
            "in": g.Input((2, 7, 7)),
            "c1": g.Conv2d(rng.normal(0, 0.6, (4, 2, 3, 3)), rng.normal(0, 0.1, 4), 1, 1),
            "n1": g.IF(1.0),
            "c2": g.Conv2d(rng.normal(0, 0.6, (4, 2, 3, 3)), None, 1, 1, groups=2),
            "n2": g.LIF(0.9, 1.0),
            "sum": g.Add(),
            "pool": g.AvgPool2d(2),
            "relu": g.ReLU(),
            "flat": g.Flatten(),
            "fc": g.Dense(rng.normal(0, 0.5, (3, 36))),
            "read": g.Readout("sum"),
            "out": g.Output((3,)),
        },
        [
            ("in", "c1"),
            ("c1", "n1"),
            ("n1", "c2"),
            ("c2", "n2"),
            ("n2", "sum"),
            ("n1", "sum"),
            ("sum", "pool"),
            ("pool", "relu"),
            ("relu", "flat"),
            ("flat", "fc"),
            ("fc", "read"),
            ("read", "out"),
        ],
    )
    return quantize_graph(graph, bits)


def test_quantize_weights_is_symmetric_round_half_up():
    q, scale = quantize_weights(np.array([[-1.0, 0.5, 0.25, 0.0, 1.0 / 6.0]]), 3)
    assert scale == pytest.approx(1.0 / 3.0)
    # w/scale = -3, 1.5, 0.75, 0, 0.5 -> round half up -> -3, 2, 1, 0, 1
    np.testing.assert_array_equal(q, [[-3, 2, 1, 0, 1]])
    assert q.dtype == np.int8
    q, scale = quantize_weights(np.zeros((2, 2)), 8)
    assert scale == 1.0
    assert not q.any()
    with pytest.raises(ValueError, match="bits is 9"):
        quantize_weights(np.ones(3), 9)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fixed_mlp_is_bit_exact_with_the_integer_reference(rng, bits):
    graph = q_mlp(rng, bits)
    xs = rng.normal(0, 1.5, (40, 2, 12)).astype(np.float32)
    net = Network(graph, mode="fixed")
    outs, state = net.run(xs, net.init_state(2))
    want = naive_fixed_run(graph, xs)
    np.testing.assert_array_equal(outs, want)
    assert state.values.dtype == np.int64
    assert np.abs(outs).sum() > 0, "the test network should produce output"


def test_fixed_conv_residual_spike_input_is_bit_exact(rng):
    graph = q_conv(rng)
    xs = (rng.random((12, 2, 2, 7, 7)) < 0.3).astype(np.float32)
    net = Network(graph, mode="fixed")
    outs, state = net.run(xs, net.init_state(2))
    np.testing.assert_array_equal(outs, naive_fixed_run(graph, xs))
    assert net.node_output(state, "n1").shape == (2, 4, 7, 7)
    assert set(np.unique(net.node_output(state, "n1"))) <= {0, 1}
    c = net.counters(state)[0]
    assert c["effective_acs"] > 0
    assert 0 < c["activation_sparsity"] < 1


def _causal(rng: np.random.Generator, bits: int) -> g.Graph:
    """A quantised causal temporal convolution (dilation 2) into IF neurons and a sum."""
    return quantize_graph(
        g.Graph.chain(
            [
                ("in", g.Input((3,), 6, 0.1)),
                ("tc", g.CausalConv1d(rng.normal(0, 0.5, (4, 3, 3)), rng.normal(0, 0.1, 4), 2)),
                ("n", g.IF(0.5)),
                ("r", g.Readout("sum")),
                ("out", g.Output((4,))),
            ]
        ),
        bits,
    )


def test_fixed_causal_conv_is_bit_exact(rng):
    graph = _causal(rng, 5)
    xs = rng.normal(0, 1, (25, 3, 3)).astype(np.float32)
    net = Network(graph, mode="fixed")
    np.testing.assert_array_equal(net.run(xs, net.init_state(3))[0], naive_fixed_run(graph, xs))


def test_fixed_step_equals_run_and_streams_are_independent(rng):
    graph = q_mlp(rng, 6)
    net = Network(graph, mode="fixed")
    xs = rng.normal(0, 1.5, (20, 3, 12)).astype(np.float32)
    block, _ = net.run(xs, net.init_state(3))
    state = net.init_state(3)
    steps = np.stack([net.step(x, state)[0] for x in xs])
    np.testing.assert_array_equal(steps, block)
    alone, _ = net.run(xs[:, 1:2], net.init_state(1))
    np.testing.assert_array_equal(alone, block[:, 1:2])


def test_fixed_mode_tracks_float_mode_closely(rng):
    graph = q_mlp(rng, 8, analog=False)
    xs = (rng.random((60, 1, 12)) < 0.4).astype(np.float32)
    fixed, _ = Network(graph, mode="fixed").run(xs, Network(graph, "fixed").init_state(1))
    flt, _ = Network(graph).run(xs, Network(graph).init_state(1))
    # Integer thresholds and Q15 decay shift a few spikes, but the readouts stay close.
    assert np.abs(fixed - flt).mean() < 0.25 * max(np.abs(flt).mean(), 1e-6) + 0.05


def test_fixed_mode_refuses_what_it_cannot_run(rng):
    float_graph = g.Graph.chain(
        [("in", g.Input((4,))), ("fc", g.Dense(np.ones((2, 4)))), ("out", g.Output((2,)))]
    )
    with pytest.raises(g.GraphError, match="quantised weights"):
        Network(float_graph, mode="fixed")
    from eventsp.runtime import lmu_memory

    lmu = g.Graph.chain([("in", g.Input((2,))), ("m", lmu_memory(3, 4.0)), ("o", g.Output((6,)))])
    with pytest.raises(g.GraphError, match="LMUMemory"):
        Network(lmu, mode="fixed")
    net = Network(q_mlp(rng), mode="fixed")
    with pytest.raises(ValueError, match="does not belong"):
        net.run(np.zeros((1, 1, 12)), Network(q_mlp(rng)).init_state(1))


def _with_shifts(graph: g.Graph, shifts: dict[str, int]) -> g.Graph:
    nodes = {n: dataclasses.replace(v, acc_shift=shifts[n]) if n in shifts else v
             for n, v in graph.nodes.items()}  # fmt: skip
    return g.Graph(nodes, graph.edges)


def _expanded(graph: g.Graph) -> g.Graph:
    """The spec's equivalent without shifts: ``(sum(q*x) << k) == sum((q * 2**k) * x)`` with
    weight scale ``scale / 2**k``, so the accumulator scale ``s_out`` is the same. Run through
    the slow reference ``naive_fixed_run`` (which knows nothing of ``acc_shift``)."""
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, g.Dense | g.Conv2d | g.CausalConv1d) and node.acc_shift:
            k = node.acc_shift
            w = node.weight.astype(np.int16) * 2**k
            assert np.abs(w).max() <= 127, "keep the expanded weights within 8 bits"
            node = dataclasses.replace(
                node, weight=w, weight_bits=8, weight_scale=node.weight_scale / 2**k, acc_shift=0
            )
        nodes[name] = node
    return g.Graph(nodes, graph.edges)


@pytest.mark.parametrize("shift", [1, 4])
def test_acc_shift_mlp_is_bit_exact_with_the_reference(rng, shift):
    graph = _with_shifts(q_mlp(rng, 3), {"fc1": shift, "fc2": 3, "fc3": shift})
    xs = rng.normal(0, 1.5, (40, 2, 12)).astype(np.float32)
    outs, _ = Network(graph, mode="fixed").run(xs, Network(graph, "fixed").init_state(2))
    np.testing.assert_array_equal(outs, naive_fixed_run(_expanded(graph), xs))
    assert np.abs(outs).sum() > 0, "the test network should produce output"
    plain = _with_shifts(graph, {"fc1": 0, "fc2": 0, "fc3": 0})  # the same net, no shifts
    assert not np.array_equal(
        outs, Network(plain, "fixed").run(xs, Network(plain, "fixed").init_state(2))[0]
    )


def test_acc_shift_conv_and_causal_conv_are_bit_exact(rng):
    graph = _with_shifts(q_conv(rng, 4), {"c1": 2, "c2": 2, "fc": 3})  # Add: equal scales
    xs = (rng.random((12, 2, 2, 7, 7)) < 0.3).astype(np.float32)
    outs, _ = Network(graph, mode="fixed").run(xs, Network(graph, "fixed").init_state(2))
    np.testing.assert_array_equal(outs, naive_fixed_run(_expanded(graph), xs))
    tc = _with_shifts(_causal(rng, 4), {"tc": 3})
    xs = rng.normal(0, 1, (25, 3, 3)).astype(np.float32)
    net = Network(tc, mode="fixed")
    np.testing.assert_array_equal(
        net.run(xs, net.init_state(3))[0], naive_fixed_run(_expanded(tc), xs)
    )


def test_acc_shift_refines_threshold_and_bias_rounding():
    # One 4-bit weight q=3 of scale 0.25 (w = 0.75), bias 0.3, IF threshold 1.1, input 1.
    # k=0: unit 0.25: b = rnd(1.2) = 1, T = rnd(4.4) = 4; v = 3+1 = 4 per frame -> spikes 1,1,1.
    # k=3: unit 1/32: b = rnd(9.6) = 10, T = rnd(35.2) = 35; v += 24+10 = 34 per frame:
    #   34 (no), 68 -> 33, 67 -> 32, 66 -> 31  => spikes 0,1,1,1 (the real rate 1.05/1.1 < 1).
    def run(k):
        graph = g.Graph.chain(
            [
                ("in", g.Input((1,))),
                (
                    "fc",
                    g.Dense(
                        np.array([[3]], np.int8),
                        np.array([0.3], np.float32),
                        weight_bits=4,
                        weight_scale=0.25,
                        acc_shift=k,
                    ),
                ),
                ("n", g.IF(1.1)),
                ("r", g.Readout("last")),
                ("out", g.Output((1,))),
            ]
        )
        net = Network(graph, mode="fixed")
        return net.run(np.ones((4, 1, 1), np.float32), net.init_state(1))[0][:, 0, 0]

    np.testing.assert_array_equal(run(0), [1, 1, 1, 1])
    np.testing.assert_array_equal(run(3), [0, 1, 1, 1])


def test_acc_shift_is_ignored_in_float_mode(rng):
    base = q_mlp(rng, 4, analog=False)
    shifted = _with_shifts(base, {"fc1": 5, "fc2": 2})
    xs = (rng.random((20, 2, 12)) < 0.4).astype(np.float32)
    a, _ = Network(base).run(xs, Network(base).init_state(2))
    b, _ = Network(shifted).run(xs, Network(shifted).init_state(2))
    np.testing.assert_array_equal(a, b)
    fa, _ = Network(base, "fixed").run(xs, Network(base, "fixed").init_state(2))
    fb, _ = Network(shifted, "fixed").run(xs, Network(shifted, "fixed").init_state(2))
    assert not np.array_equal(fa, fb), "in fixed mode the shift changes the rounding"
