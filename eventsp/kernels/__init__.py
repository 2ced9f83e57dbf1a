"""Jitted Numba kernels of the runtime, one family per module (see ``eventsp.runtime``)."""
