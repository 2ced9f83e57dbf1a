"""The bit-mask index list of the Dense/Conv kernels against ``np.flatnonzero`` (every block
boundary). The IF/LIF spike lists are checked in ``test_batch_kernels.py``."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.kernels.dense import list_active


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
