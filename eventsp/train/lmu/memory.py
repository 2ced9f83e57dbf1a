"""The Legendre memory of the LMU (Voelker, Kajić, Eliasmith 2019), in torch.

Continuous time, the memory ``m`` (``order`` = d coefficients) of a scalar input ``u`` over a
sliding window of ``theta`` steps obeys ``theta * m'(t) = A m(t) + B u(t)`` with

    A[i, j] = (2i + 1) * (-1 if i < j else (-1) ** (i - j + 1))
    B[i]    = (2i + 1) * (-1) ** i

(``legendre_ab`` returns ``A / theta`` and ``B / theta``, KerasLMU's convention). Zero-order
hold with a step of 1 gives the discrete system (``zoh``)

    m_t = A_d m_{t-1} + B_d u_t,        A_d = e^A,  B_d = A^{-1} (e^A - I) B,

computed exactly from the matrix exponential of the block matrix ``[[A, B], [0, 0]]``.

The memory is linear, so over a whole sequence (``m_{-1} = 0``) it is a causal convolution of
``u`` with the impulse response ``H[k] = A_d^k B_d``:

    m_t = sum_{k=0}^{t} H[k] u_{t-k}.

``memory_parallel`` evaluates it for all ``t`` at once with the FFT (``O(T log T)`` per
channel, no loop over time, which is what makes 784-step psMNIST train fast on a CPU);
``memory_sequential`` is the step-by-step recurrence that the streaming runtime runs, kept as
the reference. Any fixed linear map ``W`` of the memory is itself a convolution, with the
kernel ``H @ W.T``: the model uses that to go from ``u`` straight to the hidden layer's input.
"""

from __future__ import annotations

import torch

__all__ = [
    "impulse_response",
    "legendre_ab",
    "memory_parallel",
    "memory_sequential",
    "zoh",
]


def legendre_ab(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous-time ``A (order, order)`` and ``B (order,)`` of the LMU, float64.

    ``theta``: the window length, in time steps (784 for psMNIST).
    """
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"order {order!r} must be a positive int (the LMU's memory size d)")
    if not theta > 0:
        raise ValueError(f"theta {theta!r} must be > 0 (the window length in time steps)")
    i = torch.arange(order, dtype=torch.float64)
    r = (2 * i + 1)[:, None]
    j = i[None, :]
    sign = torch.where(i[:, None] < j, -1.0, (-1.0) ** (i[:, None] - j + 1))
    A = r * sign / theta
    B = (2 * i + 1) * (-1.0) ** i / theta
    return A, B


def zoh(A: torch.Tensor, B: torch.Tensor, dt: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order-hold discretisation: ``(A_d, B_d)`` for one step of ``dt``, float64."""
    d = A.shape[0]
    if A.shape != (d, d) or B.shape != (d,):
        raise ValueError(f"A {tuple(A.shape)} and B {tuple(B.shape)} must be (d, d) and (d,)")
    block = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    block[:d, :d] = A.to(torch.float64)
    block[:d, d] = B.to(torch.float64)
    e = torch.linalg.matrix_exp(block * dt)
    return e[:d, :d].contiguous(), e[:d, d].contiguous()


def impulse_response(A_d: torch.Tensor, B_d: torch.Tensor, steps: int) -> torch.Tensor:
    """``H (steps, d)`` with ``H[k] = A_d^k B_d`` (float64)."""
    if steps < 1:
        raise ValueError(f"steps {steps} must be >= 1")
    A_d = A_d.to(torch.float64)
    h = B_d.to(torch.float64)
    rows = [h]
    for _ in range(steps - 1):
        h = A_d @ h
        rows.append(h)
    return torch.stack(rows)


def _fft_size(n: int) -> int:
    """The smallest ``m >= n`` with no prime factor above 5 (a fast size for the FFT)."""
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def memory_parallel(u: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y[b, t, c] = sum_{k<=t} H[k, c] u[b, t-k]`` by FFT.

    ``u``: ``(batch, T)``; ``H``: ``(K, C)`` with ``K >= T`` rows used (the first ``T``).
    Returns ``(batch, T, C)`` in ``u``'s dtype. Differentiable in both ``u`` and ``H``.
    """
    if u.ndim != 2:
        raise ValueError(f"u has shape {tuple(u.shape)}; expected (batch, T)")
    T = u.shape[1]
    if H.ndim != 2 or H.shape[0] < T:
        raise ValueError(
            f"kernel H has shape {tuple(H.shape)}; expected (K, C) with K >= T = {T} steps"
        )
    n = _fft_size(2 * T - 1)
    U = torch.fft.rfft(u, n=n, dim=1)  # (batch, F)
    Hf = torch.fft.rfft(H[:T].to(u.dtype), n=n, dim=0)  # (F, C)
    y = torch.fft.irfft(U[:, :, None] * Hf[None], n=n, dim=1)
    return y[:, :T]


def memory_sequential(
    u: torch.Tensor, A_d: torch.Tensor, B_d: torch.Tensor, m0: torch.Tensor | None = None
) -> torch.Tensor:
    """The recurrence ``m_t = A_d m_{t-1} + B_d u_t`` step by step: ``(batch, T, d)``."""
    if u.ndim != 2:
        raise ValueError(f"u has shape {tuple(u.shape)}; expected (batch, T)")
    A_d = A_d.to(u.dtype)
    B_d = B_d.to(u.dtype)
    m = torch.zeros(u.shape[0], A_d.shape[0], dtype=u.dtype) if m0 is None else m0
    out = []
    for t in range(u.shape[1]):
        m = m @ A_d.T + u[:, t, None] * B_d
        out.append(m)
    return torch.stack(out, dim=1)
