"""The building blocks of ``eventsp.kernels.simd`` against the plain loops they replace."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.errors import TypingError

from eventsp._jit import jit
from eventsp.kernels.simd import (
    append_set_bits,
    flat_view,
    if_run64,
    lif_run64,
    nonzero_mask64,
    popcount64,
    unequal_mask64,
)


@jit("uint64[:, ::1](float32[::1], float32)", cache=False)
def masks(a, value):
    out = np.empty((2, a.shape[0] - 63), np.uint64)
    for start in range(out.shape[1]):
        out[0, start] = nonzero_mask64(a, start)
        out[1, start] = unequal_mask64(a, start, value)
    return out


def reference(a: np.ndarray, start: int, value: float = 0.0) -> int:
    return sum(1 << j for j in range(64) if a[start + j] != np.float32(value))


def test_masks_match_the_loop_at_every_offset(rng):
    a = np.where(rng.random(400) < 0.3, rng.normal(size=400), 0.0).astype(np.float32)
    a[[3, 70, 130]] = [np.nan, -0.0, np.inf]  # NaN counts as nonzero, -0.0 as zero
    a[[10, 11, 90]] = 1.0
    a[200:264] = 1.0  # a full run
    a[300:364] = 0.0  # an empty run
    got = masks(a, np.float32(1.0))
    starts = range(a.size - 63)
    assert [int(m) for m in got[0]] == [reference(a, s) for s in starts]
    assert [int(m) for m in got[1]] == [reference(a, s, 1.0) for s in starts]
    assert int(got[0, 200]) == 2**64 - 1
    assert int(got[1, 200]) == 0
    assert int(got[0, 300]) == 0
    assert int(got[1, 300]) == 2**64 - 1
    assert int(got[0, 3]) & 1 == 1  # NaN
    assert int(got[1, 3]) & 1 == 1
    assert int(got[0, 70 - 63]) >> 63 == 0  # -0.0
    assert int(got[0, 130 - 63]) >> 63 == 1  # inf


@jit("int64(uint64, int32[::1], uint64, uint64)", cache=False)
def append(mask, idx, pos, i0):
    return np.int64(append_set_bits(idx, pos, i0, mask)) * 100 + np.int64(popcount64(mask))


@pytest.mark.parametrize("bits", [0, 1, 5, 8, 9, 30, 64])
def test_append_set_bits_lists_positions_in_order(rng, bits):
    positions = np.sort(rng.choice(64, bits, replace=False))
    mask = sum(1 << int(p) for p in positions)
    idx = np.full(80, -7, np.int32)
    pos, i0 = 3, 128
    result = append(np.uint64(mask), idx, np.uint64(pos), np.uint64(i0))
    assert result == (pos + bits) * 100 + bits
    np.testing.assert_array_equal(idx[pos : pos + bits], i0 + positions)
    assert (idx[:pos] == -7).all()  # nothing before pos
    written = max(bits, 8)
    assert (idx[pos + written :] == -7).all()  # at most eight entries past the count


@jit(cache=False)
def flat_then_write(a, i, value):
    flat = flat_view(a)
    flat[i] = value  # through the view, into a
    return flat


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1, 64)])
def test_flat_view_is_reshape_minus_one_sharing_memory(rng, shape):
    a = rng.normal(size=shape).astype(np.float32)
    expected = a.reshape(-1).copy()
    expected[-1] = 9.5
    flat = flat_then_write(a, a.size - 1, np.float32(9.5))
    assert flat.shape == (a.size,)
    assert np.array_equal(flat, expected)
    assert np.array_equal(a.reshape(-1), expected)  # the write went into a
    assert np.shares_memory(flat, a)


@jit(cache=False)
def flat_view_only(a):
    return flat_view(a)


def test_flat_view_of_an_empty_array_is_empty():
    assert flat_view_only(np.zeros((0, 3), np.float32)).shape == (0,)


def test_flat_view_refuses_a_non_contiguous_layout():
    with pytest.raises(TypingError):
        flat_view_only(np.zeros((4, 3), np.float32, order="F"))
    with pytest.raises(TypingError):
        flat_view_only(np.zeros((4, 6), np.float32)[:, ::2])


@jit(cache=False)
def neuron_runs(mem, acts, th, decay, leaky):
    """Every whole run of 64 of ``mem``, its input at ``acts[:n]``, output at ``acts[n:]``."""
    n = mem.shape[0]
    masks = np.empty(n // 64, np.uint64)
    for r in range(n // 64):
        i0 = np.uint64(64 * r)
        if leaky:
            masks[r] = lif_run64(mem, i0, acts, i0, np.uint64(n) + i0, th, decay)
        else:
            masks[r] = if_run64(mem, i0, acts, i0, np.uint64(n) + i0, th)
    return masks


@pytest.mark.parametrize("leaky", [True, False])
def test_neuron_runs_match_the_scalar_neurons(rng, leaky):
    n = 192
    th, decay = np.float32(0.7), np.float32(0.9)
    mem = rng.normal(0, 1, n).astype(np.float32)
    x = rng.normal(0, 1, n).astype(np.float32)
    mem[:6] = [np.nan, 1e-31, -1e-31, 0.7, 0.0, 3e-38]  # NaN, below TINY, exact threshold
    x[:6] = [0.0, 0.0, 0.0, 0.0, 0.7, 0.0]
    x[64:128] = 0.0  # a silent run: mask 0
    mem[64:128] = 0.0
    acts = np.concatenate([x, np.full(n, 7.0, np.float32)])
    want_mem, want_out = mem.copy(), np.zeros(n, np.float32)
    for i in range(n):  # the scalar kernels' arithmetic
        if leaky:
            u = decay * want_mem[i] + x[i]
            fire = u >= th
            want_mem[i] = 0.0 if (fire or abs(u) < np.float32(1e-30)) else u
        else:
            u = want_mem[i] + x[i]
            fire = u >= th
            want_mem[i] = u - th if fire else u
        want_out[i] = 1.0 if fire else 0.0
    masks = neuron_runs(mem, acts, th, decay, leaky)
    np.testing.assert_array_equal(mem, want_mem)  # bit for bit (NaN where NaN)
    np.testing.assert_array_equal(acts[n:], want_out)
    np.testing.assert_array_equal(acts[:n], x)  # the input is left alone
    for r, mask in enumerate(masks):
        assert int(mask) == reference(want_out, 64 * r)
    assert int(masks[1]) == 0
    assert want_out[4] == 1.0  # exactly at the threshold: a spike
