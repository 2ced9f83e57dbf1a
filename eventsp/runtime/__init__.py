"""The streaming spiking runtime (numpy + Numba only). See ``eventsp.runtime`` modules."""
