"""Streaming invariants of ``Network``: step == run, batches == single streams, isolation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.model import graph as g
from eventsp.runtime import Network, NetworkState, quantize_graph, restore, snapshot


def small_mlp(seed: int) -> g.Graph:
    rng = np.random.default_rng(seed)
    return g.Graph.chain(
        [
            ("in", g.Input((12,))),
            ("fc1", g.Dense(rng.normal(0, 0.6, (16, 12)), rng.normal(0, 0.1, 16))),
            ("lif", g.LIF(0.85, 1.0)),
            ("fc2", g.Dense(rng.normal(0, 0.6, (4, 16)))),
            ("ifn", g.IF(0.8)),
            ("read", g.Readout("sum")),
            ("out", g.Output((4,))),
        ]
    )


def frames(seed: int, n_frames: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n_frames, batch, 12)) < 0.3).astype(np.float32)


def test_frames_one_at_a_time_equal_a_block_call():
    net = Network(small_mlp(1))
    xs = frames(2, 120, 3)
    block, s_block = net.run(xs, net.init_state(3))
    state = net.init_state(3)
    single = np.stack([net.step(x, state)[0] for x in xs])
    np.testing.assert_array_equal(single, block)
    for a, b in zip(state, s_block, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 60), max_size=5), split=st.integers(1, 4))
def test_any_chunking_and_any_batch_split_give_the_same_result(cuts, split):
    net = Network(small_mlp(3))
    xs = frames(4, 60, 5)
    reference, ref_state = net.run(xs, net.init_state(5))
    # Time chunks at arbitrary boundaries, streams split into two batches.
    bounds = [0, *sorted(cuts), 60]
    parts = [np.arange(split), np.arange(split, 5)]
    for streams in parts:
        state = net.init_state(len(streams))
        got = [net.run(xs[a:b, streams], state)[0] for a, b in itertools.pairwise(bounds)]
        np.testing.assert_array_equal(np.concatenate(got), reference[:, streams])
        np.testing.assert_array_equal(state.values, ref_state.values[streams])
        np.testing.assert_array_equal(state.counters, ref_state.counters[streams])


def test_two_models_and_many_streams_side_by_side():
    a, b = Network(small_mlp(5)), Network(small_mlp(6))
    xs = frames(7, 40, 50)
    alone_a, _ = a.run(xs, a.init_state(50))
    alone_b, _ = b.run(xs, b.init_state(50))
    state_a, state_b = a.init_state(50), b.init_state(50)
    outs_a, outs_b = [], []
    for x in xs:  # interleaved, frame by frame
        outs_a.append(a.step(x, state_a)[0])
        outs_b.append(b.step(x, state_b)[0])
    np.testing.assert_array_equal(np.stack(outs_a), alone_a)
    np.testing.assert_array_equal(np.stack(outs_b), alone_b)
    assert not np.array_equal(alone_a, alone_b)


def test_reset_chosen_streams_restarts_them():
    net = Network(small_mlp(8))
    xs = frames(9, 30, 3)
    state = net.init_state(3)
    net.run(xs, state)
    net.reset(state, streams=[1])
    assert state.steps.tolist() == [30, 0, 30]
    fresh, _ = net.run(xs[:10, 1:2], net.init_state(1))
    after, _ = net.run(xs[:10], state)
    np.testing.assert_array_equal(after[:, 1:2], fresh)
    net.reset(state)
    assert not state.values.any()
    assert not state.counters.any()


def test_snapshot_and_restore_replay_exactly():
    net = Network(small_mlp(10))
    xs = frames(11, 50, 2)
    state = net.init_state(2)
    net.run(xs[:20], state)
    saved = snapshot(state)
    first, _ = net.run(xs[20:], state)
    assert saved.steps.tolist() == [20, 20]
    restore(state, saved)
    second, _ = net.run(xs[20:], state)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="same network and batch"):
        restore(net.init_state(3), saved)


def test_input_and_state_errors_are_clear():
    net = Network(small_mlp(12))
    state = net.init_state(2)
    with pytest.raises(ValueError, match=r"frame has shape \(2, 13\)"):
        net.step(np.zeros((2, 13), np.float32), state)
    with pytest.raises(ValueError, match=r"frames have shape \(4, 3, 12\)"):
        net.run(np.zeros((4, 3, 12), np.float32), state)
    other = Network(g.Graph.chain([("in", g.Input((12,))), ("o", g.Output((12,)))]))
    with pytest.raises(ValueError, match="does not belong to this network"):
        net.run(np.zeros((1, 1, 12)), other.init_state(1))
    with pytest.raises(ValueError, match="batch is 0"):
        net.init_state(0)
    with pytest.raises(ValueError, match="mode='bogus' is not supported"):
        Network(small_mlp(1), mode="bogus")
    with pytest.raises(ValueError, match="out of range"):
        net.reset(state, streams=[5])


def test_step_accepts_float64_and_non_contiguous_input():
    net = Network(small_mlp(13))
    xs = frames(14, 5, 2)
    want, _ = net.run(xs, net.init_state(2))
    state = net.init_state(2)
    wide = np.repeat(xs.astype(np.float64), 2, axis=2)[:, :, ::2]
    got = np.stack([net.step(x, state)[0] for x in wide])
    np.testing.assert_array_equal(got, want)
    assert isinstance(state, NetworkState)
    assert net.parameter_bytes == 4 * (16 * 12 + 16 + 4 * 16)


def small_conv(seed: int) -> g.Graph:
    rng = np.random.default_rng(seed)
    return g.Graph.chain(
        [
            ("in", g.Input((2, 6, 6))),
            ("conv", g.Conv2d(rng.normal(0, 0.8, (3, 2, 3, 3)), rng.normal(0, 0.1, 3), padding=1)),
            ("lif", g.LIF(0.9, 1.0)),
            ("out", g.Output((3, 6, 6))),
        ]
    )


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("call", ["step_into", "stepper"])
def test_no_allocation_calls_equal_run_and_reuse_out(spatial, call):
    """``step_into`` and a ``stepper``, frame by frame, give ``run``'s outputs and state,
    written into the caller's ``out`` every time."""
    net = Network(small_conv(15) if spatial else small_mlp(15))
    rng = np.random.default_rng(16)
    xs = (rng.random((30, 3, *net.input_shape)) < 0.3).astype(np.float32)
    want, want_state = net.run(xs, net.init_state(3))
    state = net.init_state(3)
    out = np.full((3, *net.output_shape), np.nan, np.float32)
    if call == "step_into":
        step = lambda x: net.step_into(x, out, state)  # noqa: E731
    else:
        step = net.stepper(state, out)
    got = []
    for x in xs:
        assert step(x) is out
        got.append(out.copy())
    np.testing.assert_array_equal(np.stack(got), want)
    for a, b in zip(state, want_state, strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_into_refuses_what_it_would_have_to_convert():
    net = Network(small_mlp(17))
    state = net.init_state(2)
    x, out = np.zeros((2, 12), np.float32), np.zeros((2, 4), np.float32)
    before = snapshot(state)
    bad = [
        (x.astype(np.float64), out, r"x is ndarray float64 \(2, 12\)"),
        (np.zeros((2, 24), np.float32)[:, ::2], out, "x is ndarray float32"),
        (np.zeros((3, 12), np.float32), out, r"shape \(2, 12\)"),
        (x, np.zeros((2, 5), np.float32), r"out is ndarray float32 \(2, 5\)"),
        (x, np.zeros((2, 4), np.int32), "out is ndarray int32"),
        ([[0.0] * 12] * 2, out, "x is list"),
    ]
    for xb, ob, message in bad:
        with pytest.raises(ValueError, match=message):
            net.step_into(xb, ob, state)
    readonly = out.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        net.step_into(x, readonly, state)
    with pytest.raises(ValueError, match="does not belong to this network"):
        net.step_into(x, out, Network(small_conv(17)).init_state(2))
    fixed = Network(quantize_graph(small_mlp(17), 8), mode="fixed")
    with pytest.raises(ValueError, match="float mode only"):
        fixed.step_into(x, out, fixed.init_state(2))
    for a, b in zip(state, before, strict=True):  # nothing ran
        np.testing.assert_array_equal(a, b)


def test_step_into_refuses_non_contiguous_spatial_buffers():
    net = Network(small_conv(18))
    state = net.init_state(2)
    x = np.zeros((2, 2, 6, 6), np.float32)
    out = np.zeros((2, 3, 6, 6), np.float32)
    wide = np.zeros((2, 3, 6, 12), np.float32)[..., ::2]  # reshaping it would copy
    with pytest.raises(ValueError, match="out is ndarray float32"):
        net.step_into(x, wide, state)
    with pytest.raises(ValueError, match="x is ndarray float32"):
        net.step_into(np.zeros((2, 2, 6, 12), np.float32)[..., ::2], out, state)
    # The right number of values in the wrong shape (a reshape would pass it) is refused too.
    with pytest.raises(ValueError, match=r"x is ndarray float32 \(2, 6, 2, 6\)"):
        net.step_into(np.zeros((2, 6, 2, 6), np.float32), out, state)
    with pytest.raises(ValueError, match=r"out is ndarray float32 \(2, 6, 6, 3\)"):
        net.step_into(x, np.zeros((2, 6, 6, 3), np.float32), state)
    assert net.step_into(x, out, state) is out
    assert state.steps.tolist() == [1, 1]


def test_stepper_refuses_bad_buffers_and_inputs():
    net = Network(small_mlp(21))
    state = net.init_state(2)
    with pytest.raises(ValueError, match=r"out is ndarray float64 \(2, 4\)"):
        net.stepper(state, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"out is ndarray float32 \(3, 4\)"):
        net.stepper(state, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="does not belong to this network"):
        net.stepper(Network(small_conv(21)).init_state(2))
    fixed = Network(quantize_graph(small_mlp(21), 8), mode="fixed")
    with pytest.raises(ValueError, match="float mode only"):
        fixed.stepper(fixed.init_state(2))
    step = net.stepper(state)
    with pytest.raises(ValueError, match=r"x is ndarray float64 \(2, 12\)"):
        step(np.zeros((2, 12)))
    with pytest.raises(ValueError, match=r"x is ndarray float32 \(1, 12\)"):
        step(np.zeros((1, 12), np.float32))
    spatial = Network(small_conv(22))
    step = spatial.stepper(spatial.init_state(1))
    with pytest.raises(ValueError, match=r"x is ndarray float32 \(1, 2, 6, 5\)"):
        step(np.zeros((1, 2, 6, 5), np.float32))
    with pytest.raises(ValueError, match="x is ndarray float32"):
        step(np.zeros((1, 2, 6, 12), np.float32)[..., ::2])
    with pytest.raises(ValueError, match=r"x is ndarray float32 \(1, 72\)"):
        step(np.zeros((1, 72), np.float32))  # the right size, the wrong shape
    assert state.steps.tolist() == [0, 0]  # nothing ran
