"""The bit-mask index list of the Dense/Conv kernels against ``np.flatnonzero`` (every block
boundary). The IF/LIF spike lists are checked in ``test_batch_kernels.py``."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.kernels.dense import list_active, list_active_at


@pytest.mark.parametrize("n", [1, 63, 64, 65, 127, 128, 700, 1000])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 1.0])
def test_list_active_lists_nonzero_inputs_in_order(rng, n, density):
    x = (rng.random(n) < density).astype(np.float32)
    idx = np.full(n, -7, np.int32)
    listed = list_active(x, idx)
    expected = np.flatnonzero(x)
    assert listed == expected.size
    np.testing.assert_array_equal(idx[: expected.size], expected)
    if expected.size:
        # One non-binary value anywhere (block or tail) makes the count negative.
        for pos in (expected[0], expected[-1]):
            y = x.copy()
            y[pos] = 0.5
            assert list_active(y, idx) == -expected.size
            np.testing.assert_array_equal(idx[: expected.size], expected)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 72, 100, 700])
@pytest.mark.parametrize("density", [0.03, 0.5, 1.0])
def test_list_active_at_inside_a_larger_buffer_ignores_what_follows(rng, n, density):
    # The batch kernels list a row of a whole batch's buffer: a last, partial run of 64 is
    # read as a masked full run when the buffer goes on. Nonzero values and non-binary values
    # right after the row must neither be listed nor make the row look non-binary.
    start, dst = 5, 3
    buf = np.full(start + n + 64, 2.5, np.float32)
    row = (rng.random(n) < density).astype(np.float32)
    buf[start : start + n] = row
    idx = np.full(dst + n, -7, np.int32)
    expected = np.flatnonzero(row)
    assert list_active_at(buf, idx, start, n, dst) == expected.size
    np.testing.assert_array_equal(idx[dst : dst + expected.size], expected)
    assert (idx[:dst] == -7).all()  # nothing written before the list
    if expected.size:
        buf[start + expected[-1]] = 0.5
        assert list_active_at(buf, idx, start, n, dst) == -expected.size
