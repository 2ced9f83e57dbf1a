"""Legendre (A, B), the numpy matrix exponential and ZOH against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from eventsp.runtime import expm, legendre_ab, lmu_memory, zoh


def test_legendre_ab_small_case_by_hand():
    A, B = legendre_ab(3, 2.0)
    want_A = np.array([[-1, -1, -1], [3, -3, -3], [-5, 5, -5]]) / 2.0
    np.testing.assert_array_equal(A, want_A)
    np.testing.assert_array_equal(B, np.array([1, -3, 5]) / 2.0)


@pytest.mark.parametrize("scale", [1e-3, 0.3, 4.0, 60.0])
def test_expm_matches_scipy(rng, scale):
    M = rng.normal(size=(7, 7)) * scale
    np.testing.assert_allclose(expm(M), scipy.linalg.expm(M), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("order", "theta", "dt"), [(1, 1.0, 1.0), (6, 10.0, 1.0), (12, 100.0, 0.5)]
)
def test_zoh_matches_scipy_cont2discrete(order, theta, dt):
    A, B = legendre_ab(order, theta)
    A_d, B_d = zoh(A, B, dt)
    C, D = np.eye(order), np.zeros((order, 1))
    want_A, want_B, *_ = scipy.signal.cont2discrete((A, B[:, None], C, D), dt, method="zoh")
    np.testing.assert_allclose(A_d, want_A, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(B_d, want_B[:, 0], rtol=1e-9, atol=1e-12)


def test_lmu_memory_node_and_errors():
    node = lmu_memory(5, 20.0)
    A_d, B_d = zoh(*legendre_ab(5, 20.0))
    np.testing.assert_allclose(node.A_d, A_d, rtol=1e-6)
    np.testing.assert_allclose(node.B_d, B_d, rtol=1e-6)
    with pytest.raises(ValueError, match="order is 0"):
        legendre_ab(0, 1.0)
    with pytest.raises(ValueError, match="theta is -1"):
        legendre_ab(3, -1.0)
    with pytest.raises(ValueError, match="square"):
        expm(np.zeros((2, 3)))
