"""A tiny kernel used by ``eventsp info`` and the cache tests to prove the Numba set-up works."""

from __future__ import annotations

from eventsp._jit import jit


@jit("int64(int64)")
def selfcheck_kernel(n: int) -> int:
    """Sum of the squares 0..n-1 (so a wrong compile is visible, not just a crash)."""
    total = 0
    for i in range(n):
        total += i * i
    return total
