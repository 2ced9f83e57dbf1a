"""Neuron and readout dynamics on hand-computed sequences (exact binary fractions)."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network


def run_node(node: g.Node, inputs: list[float]) -> tuple[np.ndarray, np.ndarray | None]:
    net = Network(g.Graph.chain([("in", g.Input((1,))), ("n", node), ("out", g.Output((1,)))]))
    state = net.init_state(1)
    outs, trace = [], []
    for value in inputs:
        out, state = net.step(np.array([[value]], np.float32), state)
        outs.append(out[0, 0])
        if not isinstance(node, g.ReLU):
            trace.append(net.node_state(state, "n")[0, 0])
    return np.array(outs), (np.array(trace) if trace else None)


def test_lif_leaks_fires_and_resets_to_zero():
    spikes, v = run_node(g.LIF(decay=0.5, threshold=1.0), [0.625] * 6)
    # v: 0.625, 0.9375, 1.09375 -> fire, reset to 0, then the same again.
    np.testing.assert_array_equal(spikes, [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(v, [0.625, 0.9375, 0, 0.625, 0.9375, 0])


def test_lif_fires_at_exactly_threshold():
    spikes, _ = run_node(g.LIF(decay=1.0, threshold=1.0), [0.5, 0.5, 0.25])
    np.testing.assert_array_equal(spikes, [0, 1, 0])


def test_if_resets_by_subtraction_and_keeps_the_remainder():
    spikes, v = run_node(g.IF(threshold=1.0), [0.375] * 6 + [-0.5])
    np.testing.assert_array_equal(spikes, [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(v, [0.375, 0.75, 0.125, 0.5, 0.875, 0.25, -0.25])


def test_if_fires_once_per_step_even_far_above_threshold():
    spikes, v = run_node(g.IF(threshold=0.5), [2.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(spikes, [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(v, [1.5, 1.0, 0.5, 0.0, 0.0])


def test_multispike_emits_counts_over_dt_with_diffused_error():
    out, v = run_node(g.MultiSpike(dt=0.5), [3.0, 3.0, 3.0, -1.0, -1.0, 0.25])
    # v: 1.5 -> n=1 (rest .5); 2.0 -> n=2 (0); 1.5 -> n=1 (.5); 0 -> 0; -0.5 -> n=-1 (.5); .625
    np.testing.assert_array_equal(out, [2.0, 4.0, 2.0, 0.0, -2.0, 0.0])
    np.testing.assert_array_equal(v, [0.5, 0.0, 0.5, 0.0, 0.5, 0.625])


def test_relu_and_identity_pass_through():
    out, _ = run_node(g.ReLU(), [-1.0, 0.0, 2.5])
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.5])
    net = Network(
        g.Graph.chain([("in", g.Input((3,))), ("i", g.Identity()), ("o", g.Output((3,)))])
    )
    x = np.array([[1.5, -2.0, 0.0]], np.float32)
    np.testing.assert_array_equal(net.step(x, net.init_state(1))[0], x)


@pytest.mark.parametrize(
    ("mode", "want"),
    [("sum", [1, 3, 6, 2]), ("mean", [1, 1.5, 2, 0.5]), ("last", [1, 2, 3, -4])],
)
def test_readout_modes(mode, want):
    out, _ = run_node(g.Readout(mode), [1.0, 2.0, 3.0, -4.0])
    np.testing.assert_array_equal(out, want)


def test_causal_conv1d_uses_dilated_past_frames():
    # One channel, k=3, dilation 2: y_t = 1*x_{t-4} + 10*x_{t-2} + 100*x_t.
    w = np.array([[[1.0, 10.0, 100.0]]])
    net = Network(
        g.Graph.chain(
            [("in", g.Input((1,))), ("c", g.CausalConv1d(w, dilation=2)), ("o", g.Output((1,)))]
        )
    )
    xs = np.array([1, 2, 3, 4, 5, 6], np.float32).reshape(6, 1, 1)
    out, _ = net.run(xs, net.init_state(1))
    np.testing.assert_array_equal(out.ravel(), [100, 200, 310, 420, 531, 642])
