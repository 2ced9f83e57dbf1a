"""The LMU's Legendre memory: A/B, ZOH, impulse response, parallel (FFT) == recurrence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventsp.train.lmu.memory import (
    impulse_response,
    legendre_ab,
    memory_parallel,
    memory_sequential,
    zoh,
)


def test_legendre_ab_matches_the_lmu_paper_for_order_3():
    A, B = legendre_ab(3, theta=2.0)
    # (2i+1)/theta * [-1 if i<j else (-1)^(i-j+1)], B_i = (2i+1)(-1)^i / theta
    expected_A = np.array([[-1, -1, -1], [3, -3, -3], [-5, 5, -5]]) / 2.0
    np.testing.assert_array_equal(A.numpy(), expected_A)
    np.testing.assert_array_equal(B.numpy(), np.array([1, -3, 5]) / 2.0)


@pytest.mark.parametrize(("order", "theta"), [(1, 5.0), (6, 10.0), (64, 784.0)])
def test_zoh_matches_scipy_cont2discrete(order, theta):
    signal = pytest.importorskip("scipy.signal")
    A, B = legendre_ab(order, theta)
    A_d, B_d = zoh(A, B)
    ref = signal.cont2discrete(
        (A.numpy(), B.numpy()[:, None], np.eye(order), np.zeros((order, 1))), dt=1.0, method="zoh"
    )
    np.testing.assert_allclose(A_d.numpy(), ref[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(B_d.numpy(), ref[1][:, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("r", [0.25, 0.5, 0.75])
def test_memory_holds_a_delayed_input_over_its_window(r):
    """The memory is a delay line: shifted Legendre decoding of m_t gives u(t - theta*r)."""
    order, theta, T = 12, 50.0, 160
    A_d, B_d = zoh(*legendre_ab(order, theta))
    t = np.arange(T)
    u = torch.from_numpy(np.sin(2 * np.pi * t / 80.0))[None]
    m = memory_sequential(u, A_d, B_d)[0].numpy()
    P = np.polynomial.legendre.legvander(np.array([2 * r - 1]), order - 1)[0]  # P_i(2r - 1)
    decoded = m @ P
    # ZOH holds u_t over the step that ends at t: the delay is theta * r - 1/2 steps.
    delayed = np.sin(2 * np.pi * (t - theta * r + 0.5) / 80.0)
    tail = slice(int(theta) + 10, None)
    np.testing.assert_allclose(decoded[tail], delayed[tail], atol=5e-3)


@pytest.mark.parametrize("T", [1, 7, 97, 784])
def test_parallel_memory_equals_the_recurrence(T, rng):
    order = 16
    A_d, B_d = zoh(*legendre_ab(order, float(max(T, 4))))
    H = impulse_response(A_d, B_d, T)
    u = torch.from_numpy(rng.standard_normal((3, T)))
    par = memory_parallel(u, H)
    seq = memory_sequential(u, A_d, B_d)
    assert par.shape == seq.shape == (3, T, order)
    np.testing.assert_allclose(par.numpy(), seq.numpy(), rtol=1e-9, atol=1e-10)


def test_parallel_memory_is_equal_in_float32_too(rng):
    A_d, B_d = zoh(*legendre_ab(128, 784.0))
    H = impulse_response(A_d, B_d, 784).float()
    u = torch.from_numpy(rng.random((2, 784), dtype=np.float32))
    par = memory_parallel(u, H)
    seq = memory_sequential(u, A_d, B_d)
    assert par.dtype == torch.float32
    scale = seq.abs().max().item()
    assert (par - seq).abs().max().item() < 1e-4 * scale


def test_parallel_memory_gradient_is_the_convolution_gradient():
    A_d, B_d = zoh(*legendre_ab(4, 6.0))
    H = impulse_response(A_d, B_d, 9)
    u = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    Hg = H.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(memory_parallel, (u, Hg), fast_mode=True)


def test_bad_inputs_raise_with_the_actual_value():
    with pytest.raises(ValueError, match="order 0"):
        legendre_ab(0, 1.0)
    with pytest.raises(ValueError, match="theta -1"):
        legendre_ab(4, -1.0)
    H = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r"expected \(batch, T\)"):
        memory_parallel(torch.zeros(2, 5, 1), H)
    with pytest.raises(ValueError, match="K >= T = 6"):
        memory_parallel(torch.zeros(2, 6), H)
