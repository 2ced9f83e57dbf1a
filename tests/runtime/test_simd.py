"""``nonzero_mask64`` against the plain loop it replaces, on every kind of float32 value."""

from __future__ import annotations

import numpy as np

from eventsp._jit import jit
from eventsp.kernels.simd import nonzero_mask64


@jit("uint64[::1](float32[::1])", cache=False)
def masks(a):
    out = np.empty(a.shape[0] - 63, np.uint64)
    for start in range(out.shape[0]):
        out[start] = nonzero_mask64(a, start)
    return out


def reference(a: np.ndarray, start: int) -> int:
    return sum(1 << j for j in range(64) if a[start + j] != 0.0)


def test_nonzero_mask64_matches_the_loop_at_every_offset(rng):
    a = np.where(rng.random(400) < 0.3, rng.normal(size=400), 0.0).astype(np.float32)
    a[[3, 70, 130]] = [np.nan, -0.0, np.inf]  # NaN counts as nonzero, -0.0 as zero
    a[200:264] = 1.0  # a full run
    a[300:364] = 0.0  # an empty run
    got = masks(a)
    assert [int(m) for m in got] == [reference(a, s) for s in range(a.size - 63)]
    assert int(got[200]) == 2**64 - 1
    assert int(got[300]) == 0
    assert int(got[3]) & 1 == 1  # NaN
    assert int(got[70 - 63]) >> 63 == 0  # -0.0
    assert int(got[130 - 63]) >> 63 == 1  # inf
