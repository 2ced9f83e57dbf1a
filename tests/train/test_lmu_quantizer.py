"""The diffused-error quantizer, its parallel form, the dt schedule and the bit measures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from eventsp.train.lmu.quantizer import (
    BitsAccumulator,
    DtSchedule,
    activity_bits,
    quantize_parallel,
    quantize_sequential,
    straight_through,
)


def test_fixed_sequence_diffuses_the_error_forward():
    a = torch.tensor([[0.3, 0.3, 0.3, 0.3, 0.0, 2.5]], dtype=torch.float64)
    # v: 0.3, 0.6, 0.9, 1.2 -> n=1, v=0.2; 0.2; 2.7 -> n=2, v=0.7
    n_seq, v = quantize_sequential(a, 1.0)
    assert n_seq.tolist() == [[0, 0, 0, 1, 0, 2]]
    assert v.item() == pytest.approx(0.7)
    assert quantize_parallel(a, 1.0).tolist() == [[0, 0, 0, 1, 0, 2]]


def test_large_dt_quantizes_finely_and_counts_exceed_one():
    a = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    n = quantize_parallel(a, 10.0)
    assert n.tolist() == [[2, 5]]  # v: 2.5 -> 2 (v=0.5); 0.5 + 5 = 5.5 -> 5
    assert (n / 10.0).tolist() == [[0.2, 0.5]]


@pytest.mark.parametrize("dt", [0.05, 0.7, 1.0, 3.3, 250.0])
def test_parallel_form_equals_the_recurrence(dt, rng):
    a = torch.from_numpy(rng.random((4, 300, 5)) * 3.0)
    v0 = torch.from_numpy(rng.random((4, 5)))
    n_par = quantize_parallel(a, dt, v0, dim=1)
    n_seq, _ = quantize_sequential(a, dt, v0, dim=1)
    np.testing.assert_array_equal(n_par.numpy(), n_seq.numpy())


def test_error_stays_bounded_so_the_mean_output_tracks_the_input(rng):
    """sum_t n_t / dt = sum_t a_t - v_T / dt with v_T in [0, 1): the error never grows."""
    a = torch.from_numpy(rng.random((2, 5000, 3)))
    dt = 0.2
    n, v = quantize_sequential(a, dt)
    err = a.sum(1) - n.sum(1) / dt
    assert torch.all(err >= 0)
    assert torch.all(err < 1 / dt)
    np.testing.assert_allclose(err.numpy(), (v / dt).numpy(), rtol=1e-9)
    assert set(np.unique(n.numpy())) <= {0.0, 1.0}  # a*dt < 1: a spiking neuron


def test_float32_parallel_form_agrees_except_at_rounding_ties(rng):
    a = torch.from_numpy(rng.random((8, 784, 16), dtype=np.float32) * 2)
    n_par = quantize_parallel(a, 1.0)
    n_seq, _ = quantize_sequential(a, 1.0)
    assert n_par.dtype == torch.float32
    assert (n_par != n_seq).float().mean().item() < 1e-3


def test_straight_through_forward_quantizes_backward_is_identity():
    a = torch.tensor([[0.26, 0.74, 0.1]], requires_grad=True)
    n = quantize_parallel(a, 4.0)
    out = straight_through(a, n, 4.0)
    np.testing.assert_allclose(out.detach().numpy(), n.numpy() / 4.0)
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[1.0, 2.0, 3.0]])


def test_dt_schedule_goes_from_fine_to_spiking_and_holds():
    s = DtSchedule(start=100.0, end=1.0, anneal_until=0.5)
    assert s(0.0) == pytest.approx(100.0)
    assert s(0.25) == pytest.approx(10.0)  # geometric halfway
    assert s(0.5) == pytest.approx(1.0)
    assert s(0.9) == s(1.0) == pytest.approx(1.0)
    values = [s(p) for p in np.linspace(0, 1, 21)]
    assert all(x >= y for x, y in itertools.pairwise(values))


def test_bad_settings_raise_naming_the_value():
    with pytest.raises(ValueError, match="dt 0"):
        quantize_parallel(torch.zeros(1, 2), 0)
    with pytest.raises(ValueError, match=r"dt end 5\.0 is above start 1\.0"):
        DtSchedule(start=1.0, end=5.0)
    with pytest.raises(ValueError, match="anneal_until 0"):
        DtSchedule(anneal_until=0)


def test_activity_bits_fixed_example():
    counts = np.array([[0, 1], [2, 3], [4, 0], [0, 12]])
    # neuron 0 peaks at 4 (3 bits), neuron 1 at 12 (4 bits): 3.5 bits on average.
    # non-zero counts 1, 2, 3, 4, 12 have 1, 1, 2, 1, 2 significant bits: 7 / 5.
    got = activity_bits(counts)
    assert got["bits_per_activity"] == 3.5
    assert got["significant_bits_per_multiply"] == pytest.approx(1.4)
    assert got["nonzero_fraction"] == pytest.approx(5 / 8)
    assert got["max_count"] == 12


def test_pure_spikes_cost_one_bit_and_pooling_batches_is_exact(rng):
    counts = (rng.random((6, 50, 7)) < 0.1).astype(np.float32)
    counts[0, 0] = 1  # every neuron spikes at least once
    got = activity_bits(counts)
    assert got["bits_per_activity"] == 1.0
    assert got["significant_bits_per_multiply"] == 1.0
    wide = rng.integers(0, 40, size=(6, 50, 7))
    pooled = BitsAccumulator()
    for part in np.split(wide, 3):
        pooled.update(part)
    assert pooled.result() == activity_bits(wide)
