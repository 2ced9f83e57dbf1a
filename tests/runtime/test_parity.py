"""Float-mode parity of the compiled runtime with the plain reference in ``tests/naive.py``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network, lmu_memory

from naive import naive_run


def mlp(rng, sizes=(40, 32, 24, 5), neuron=lambda: g.LIF(0.9, 1.0), scale=0.35):
    items = [("in", g.Input((sizes[0],)))]
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(0, scale, (n_out, n_in))
        items += [(f"fc{k}", g.Dense(w, rng.normal(0, 0.05, n_out))), (f"n{k}", neuron())]
    items += [("read", g.Readout("sum")), ("out", g.Output((sizes[-1],)))]
    return g.Graph.chain(items)


def convnet(rng, groups=1):
    return g.Graph.chain(
        [
            ("in", g.Input((2, 12, 12))),
            ("c1", g.Conv2d(rng.normal(0, 0.6, (8, 2, 3, 3)), rng.normal(0, 0.1, 8), padding=1)),
            ("n1", g.LIF(0.8, 1.0)),
            ("p1", g.AvgPool2d(2)),
            ("c2", g.Conv2d(rng.normal(0, 0.5, (8, 8 // groups, 3, 3)), None, 2, 1, groups)),
            ("n2", g.IF(0.9)),
            ("p2", g.SumPool2d(3, stride=1)),
            ("f", g.Flatten()),
            ("fc", g.Dense(rng.normal(0, 0.3, (4, 8)))),
            ("n3", g.LIF(0.9, 0.5)),
            ("out", g.Output((4,))),
        ]
    )


def audio_net(rng):
    """Causal conv -> multi-spike -> LMU memory -> ReLU -> dense -> mean readout."""
    return g.Graph.chain(
        [
            ("in", g.Input((6,))),
            ("tc", g.CausalConv1d(rng.normal(0, 0.5, (5, 6, 3)), rng.normal(0, 0.1, 5), 2)),
            ("ms", g.MultiSpike(dt=0.25)),
            ("mem", lmu_memory(4, 8.0)),
            ("relu", g.ReLU()),
            ("id", g.Identity()),
            ("fc", g.Dense(rng.normal(0, 0.4, (3, 20)))),
            ("read", g.Readout("mean")),
            ("out", g.Output((3,))),
        ]
    )


def residual(rng):
    d = 10
    return g.Graph(
        {
            "in": g.Input((d,)),
            "a": g.Dense(rng.normal(0, 0.5, (d, d))),
            "na": g.IF(1.0),
            "b": g.Dense(rng.normal(0, 0.5, (d, d))),
            "sum": g.Add(),
            "nb": g.LIF(0.7, 1.0),
            "out_fc": g.Dense(rng.normal(0, 0.5, (3, d))),
            "read": g.Readout("last"),
            "out": g.Output((3,)),
        },
        [
            ("in", "a"),
            ("a", "na"),
            ("na", "b"),
            ("b", "sum"),
            ("na", "sum"),
            ("in", "sum"),
            ("sum", "nb"),
            ("nb", "out_fc"),
            ("out_fc", "read"),
            ("read", "out"),
        ],
    )


def spikes_in(rng, shape, density=0.2):
    return (rng.random(shape) < density).astype(np.float32)


def check_parity(graph, xs, min_agree=0.9999, atol=1e-5):
    net = Network(graph)
    state = net.init_state(xs.shape[1])
    outs, state = net.run(xs, state)
    ref_outs, traces = naive_run(graph, xs)
    assert outs.shape == ref_outs.shape
    # Per stateful node: state after the last frame within atol; spike agreement on the way.
    for name, trace in traces.items():
        if "/" in name:
            continue
        got = net.node_state(state, name).reshape(trace.shape[1], -1)
        # atol 1e-5, plus 1e-6 relative: a float32 membrane near 100 has an ulp of 7.6e-6.
        np.testing.assert_allclose(got, trace[-1].reshape(got.shape), atol=atol, rtol=1e-6)
    agree = np.mean(np.isclose(outs, ref_outs, atol=atol, rtol=1e-5))
    assert agree >= min_agree, f"outputs agree on {agree:.6f} of entries"
    return net, state, outs, ref_outs


def test_mlp_lif_1000_steps_spikes_and_membranes(rng):
    """Spikes of every layer on >= 99.99% of neuron-steps, membranes within 1e-5, 1,000 steps."""
    graph = mlp(rng)
    xs = spikes_in(rng, (1000, 2, 40), 0.3)
    net = Network(graph)
    state = net.init_state(2)
    spikes, membranes = [], []
    for t in range(xs.shape[0]):
        _, state = net.step(xs[t], state)
        spikes.append(np.concatenate([net.node_output(state, f"n{k}") for k in range(3)], 1))
        membranes.append(np.concatenate([net.node_state(state, f"n{k}") for k in range(3)], 1))
    _, traces = naive_run(graph, xs)
    ref_v = np.concatenate([traces[f"n{k}"].reshape(1000, 2, -1) for k in range(3)], axis=2)
    got_v, got_s = np.stack(membranes), np.stack(spikes)
    ref_s = _naive_spikes(graph, xs)
    assert got_s.mean() > 0.01, "the test network should spike"
    agree = np.mean(got_s == ref_s)
    assert agree >= 0.9999, f"spikes agree on {agree:.6f} of neuron-steps"
    close = np.isclose(got_v, ref_v, atol=1e-5, rtol=0)
    assert close.mean() >= 0.9999, f"membranes agree on {close.mean():.6f} of neuron-steps"


def _naive_spikes(graph, xs):
    """Reference spikes of the three LIF layers: run the reference truncated after each."""
    outs = []
    for k in range(3):
        names = graph.order()
        cut = names[: names.index(f"n{k}") + 1]
        size = graph.shapes()[f"n{k}"]
        items = [(n, graph.nodes[n]) for n in cut] + [("o", g.Output(size))]
        outs.append(naive_run(g.Graph.chain(items), xs)[0])
    return np.concatenate(outs, axis=2)


@pytest.mark.parametrize("density", [0.02, 0.9])
def test_convnet_matches_reference_sparse_and_dense_paths(rng, density):
    xs = spikes_in(rng, (30, 2, 2, 12, 12), density)
    graph = convnet(rng)
    net, state, _, _ = check_parity(graph, xs)
    # Intermediate outputs in the graph's (C, H, W) order: the first conv layer's spikes.
    cut = g.Graph.chain(
        [(n, graph.nodes[n]) for n in ("in", "c1", "n1")] + [("o", g.Output((8, 12, 12)))]
    )
    np.testing.assert_array_equal(net.node_output(state, "n1"), naive_run(cut, xs)[0][-1])


def test_grouped_conv_with_analog_input(rng):
    xs = rng.normal(0, 1, (20, 1, 2, 12, 12)).astype(np.float32)
    check_parity(convnet(rng, groups=4), xs)


def test_audio_net_causal_conv_multispike_lmu(rng):
    xs = rng.normal(0, 1, (200, 2, 6)).astype(np.float32)
    check_parity(audio_net(rng), xs, atol=1e-4)


def test_residual_add_with_three_inputs(rng):
    xs = spikes_in(rng, (300, 3, 10), 0.3)
    check_parity(residual(rng), xs)


def test_if_mlp_with_analog_input(rng):
    xs = rng.random((300, 1, 40)).astype(np.float32)
    check_parity(mlp(rng, neuron=lambda: g.IF(1.0)), xs)
