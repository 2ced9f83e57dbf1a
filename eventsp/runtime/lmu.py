"""The Legendre Memory Unit's linear memory: continuous ``(A, B)`` and zero-order hold.

The LMU memory (Voelker et al., 2019) of order ``q`` and window ``theta`` (in frames)
follows ``theta m'(t) = A m(t) + B u(t)`` with

    A[i, j] = (2i + 1) * (-1 if i < j else (-1)**(i - j + 1)),   B[i] = (2i + 1) * (-1)**i,

here already divided by ``theta``. With the input held constant over each frame (zero-order
hold) of length ``dt`` the exact discrete update is ``m_t = A_d m_{t-1} + B_d u_t`` with

    [[A_d, B_d], [0, 1]] = expm(dt * [[A, B], [0, 0]]).

:func:`expm` is a numpy-only matrix exponential (scaling and squaring with a [6/6] Padé
approximant), so the runtime needs no scipy.
"""

from __future__ import annotations

import math

import numpy as np

from eventsp.model.graph import LMUMemory

__all__ = ["expm", "legendre_ab", "lmu_memory", "zoh"]


def legendre_ab(order: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Continuous-time ``A`` (order, order) and ``B`` (order,) in float64, divided by ``theta``."""
    if int(order) != order or order < 1:
        raise ValueError(f"order is {order!r}; expected an int >= 1")
    if not (math.isfinite(theta) and theta > 0):
        raise ValueError(f"theta is {theta!r}; expected a window length > 0 (in frames)")
    i = np.arange(order)[:, None]
    j = np.arange(order)[None, :]
    r = (2 * i + 1).astype(np.float64)
    A = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * r
    B = (2 * np.arange(order) + 1) * (-1.0) ** np.arange(order)
    return A / theta, B.astype(np.float64) / theta


def expm(M: np.ndarray) -> np.ndarray:
    """Matrix exponential of a square float64 matrix (scaling and squaring, [6/6] Padé)."""
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"expm needs a square matrix, got shape {M.shape}")
    norm = np.abs(M).sum(axis=1).max() if M.size else 0.0
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    X = M / 2.0**squarings
    q = 6
    c = 1.0
    eye = np.eye(M.shape[0])
    N = eye.copy()
    D = eye.copy()
    power = eye.copy()
    for k in range(1, q + 1):
        c = c * (q - k + 1) / (k * (2 * q - k + 1))
        power = power @ X
        N = N + c * power
        D = D + (-1) ** k * c * power
    E = np.linalg.solve(D, N)
    for _ in range(squarings):
        E = E @ E
    return E


def zoh(A: np.ndarray, B: np.ndarray, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order-hold discretisation of ``x' = A x + B u``: ``(A_d, B_d)`` in float64.

    ``A`` is ``(n, n)``; ``B`` is ``(n,)`` or ``(n, m)``; ``B_d`` has ``B``'s shape.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    vector = B.ndim == 1
    B2 = B[:, None] if vector else B
    n, m = A.shape[0], B2.shape[1]
    if A.shape != (n, n) or B2.shape[0] != n:
        raise ValueError(f"zoh needs A (n, n) and B (n,) or (n, m); got {A.shape} and {B.shape}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt is {dt!r}; expected a step > 0")
    aug = np.zeros((n + m, n + m))
    aug[:n, :n] = A * dt
    aug[:n, n:] = B2 * dt
    E = expm(aug)
    A_d, B_d = E[:n, :n], E[:n, n:]
    return A_d, (B_d[:, 0] if vector else B_d)


def lmu_memory(order: int, theta: float, dt: float = 1.0) -> LMUMemory:
    """An :class:`~eventsp.model.graph.LMUMemory` node with Legendre ``A, B`` held by ZOH."""
    A_d, B_d = zoh(*legendre_ab(order, theta), dt)
    return LMUMemory(order=order, theta=theta, A_d=A_d, B_d=B_d)
