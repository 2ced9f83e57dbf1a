"""Weights and large state arrays on 2 MiB pages (``eventsp.runtime.memory``) behave as plain
numpy arrays, and a network runs the same bits on them."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network, memory, restore, snapshot

HUGE = sys.platform == "linux" and hasattr(mmap, "MADV_HUGEPAGE")


def _mapped(arr: np.ndarray) -> bool:
    """Whether ``arr``'s memory is an mmap of memory.zeros (numpy's own buffer otherwise)."""
    return isinstance(arr.base.base, memoryview)


def test_small_arrays_are_zeros_on_a_cache_line():
    for _ in range(20):  # numpy alone promises 16-byte alignment
        a = memory.zeros((3, 5), np.float32)
        assert a.ctypes.data % memory.LINE == 0
        assert a.dtype == np.float32
        assert a.shape == (3, 5)
        assert a.flags.c_contiguous
        assert a.flags.writeable
        assert not a.any()


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float64])
def test_large_arrays_are_zeroed_aligned_and_independent(dtype):
    n = (memory.MIN_BYTES // np.dtype(dtype).itemsize) + 5
    a, b = memory.zeros((n,), dtype), memory.zeros((2, n), dtype)
    for arr in (a, b):
        assert arr.dtype == dtype
        assert arr.flags.c_contiguous
        assert arr.flags.writeable
        assert not arr.any()
    assert b.shape == (2, n)
    if HUGE:
        assert a.ctypes.data % memory.HUGE_PAGE == 0
    a[:] = 7
    b[1] = 3
    assert (a == 7).all()
    assert not b[0].any()
    assert (b[1] == 3).all()
    c = memory.zeros((n,), dtype, min_bytes=1 << 62)  # the threshold is respected
    assert not c.any()
    assert _mapped(a) == hasattr(mmap, "MADV_HUGEPAGE")
    assert not _mapped(c)


def _wide(seed: int) -> g.Graph:
    rng = np.random.default_rng(seed)
    return g.Graph.chain(
        [
            ("in", g.Input((700,))),
            ("fc1", g.Dense(rng.normal(0, 0.2, (256, 700)), rng.normal(0, 0.05, 256))),
            ("lif1", g.LIF(0.9, 1.0)),
            ("fc2", g.Dense(rng.normal(0, 0.3, (20, 256)))),
            ("lif2", g.LIF(0.9, 1.0)),
            ("out", g.Output((20,))),
        ]
    )


def test_network_on_huge_pages_runs_the_same_bits(monkeypatch, rng):
    batch = 64  # acts of 64 streams: over STATE_MIN_BYTES
    xs = (rng.random((20, batch, 700)) < 0.05).astype(np.float32)
    net = Network(_wide(1))
    state = net.init_state(batch)
    assert state.acts.nbytes >= memory.STATE_MIN_BYTES
    assert net._params.nbytes >= memory.MIN_BYTES
    assert net._params is net.program.params  # one copy of the weights
    if HUGE:
        assert state.acts.ctypes.data % memory.HUGE_PAGE == 0
    monkeypatch.setattr(memory, "MIN_BYTES", 1 << 62)
    monkeypatch.setattr(memory, "STATE_MIN_BYTES", 1 << 62)
    plain = Network(_wide(1))
    plain_state = plain.init_state(batch)
    want, _ = plain.run(xs, plain_state)
    got, _ = net.run(xs[:10], state)
    saved = snapshot(state)
    rest, _ = net.run(xs[10:], state)
    np.testing.assert_array_equal(np.concatenate([got, rest]), want)
    for a, b in zip(state, plain_state, strict=True):
        np.testing.assert_array_equal(a, b)
    restore(state, saved)  # snapshot, restore and reset work on the mapped arrays
    again, _ = net.run(xs[10:], state)
    np.testing.assert_array_equal(again, rest)
    net.reset(state)
    assert not state.acts.any()
