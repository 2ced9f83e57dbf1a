"""The bit-mask index lists of the kernels against ``np.flatnonzero`` (every block boundary)."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.kernels.dense import list_active
from eventsp.kernels.neurons import spike_list


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


@pytest.mark.parametrize("n", [1, 64, 65, 130, 18496])
def test_spike_list_writes_count_then_indices(rng, n):
    y = (rng.random(n) < 0.05).astype(np.float32)
    y[-1] = 1.0
    acts = np.zeros(n + 3, np.float32)
    count = spike_list(y, acts, 2)
    lst = acts[2 : 3 + n].view(np.int32)
    expected = np.flatnonzero(y)
    assert count == lst[0] == expected.size
    np.testing.assert_array_equal(lst[1 : 1 + count], expected)
    assert spike_list(y, acts, -1) == expected.size
