"""Numba kernels of the event encoders and filters (serial; the drivers are in
:mod:`eventsp.events.encoders` and :mod:`eventsp.events.filters`).

Every kernel takes the event fields as 1-D arrays (strided views of a structured array are
fine: signatures use layout ``A``), window bounds as index arrays into them, and writes into a
preallocated output. Frames are ``(n_windows, C, H, W)`` float32.

Math (one window holds the events ``[start, end)``):

- count frame: ``F[c, y, x] = #events at (x, y)`` with ``c = p`` when the sensor has two
  polarities, else 0; a binary frame is ``F > 0``.
- voxel grid (Zhu et al. 2019, as tonic's ``to_voxel_grid_numpy``): with ``B`` bins,
  ``τ = B (t - t_first) / (t_last - t_first)``, ``i = ⌊τ⌋``, ``s = ±1`` for ON/OFF; the event adds
  ``s (1 - (τ - i))`` to bin ``i`` and ``s (τ - i)`` to bin ``i + 1`` where those bins exist.
- time surface (Lagorce et al. 2016, as tonic's ``to_timesurface_numpy``): memory
  ``M[p, y, x]`` is the latest timestamp at each pixel; at the end ``t_e`` of each window the
  surface is ``exp(-(t_e - M) / τ)`` (0 where no event ever came).
"""

from __future__ import annotations

import math

import numpy as np

from eventsp._jit import jit

__all__: list[str] = []


@jit("void(int16[:], int16[:], boolean[:], int64[::1], int64[::1], boolean, float32[:, :, :, ::1])")
def _count_frames(x, y, p, starts, ends, two_polarities, out):
    """Add one to ``out[w, p, y, x]`` for each event of window ``w``."""
    for w in range(starts.shape[0]):
        frame = out[w]
        if two_polarities:
            for i in range(starts[w], ends[w]):
                frame[np.int64(p[i]), y[i], x[i]] += np.float32(1.0)
        else:
            for i in range(starts[w], ends[w]):
                frame[0, y[i], x[i]] += np.float32(1.0)


@jit(
    "void(int16[:], int16[:], int64[:], boolean[:], int64[::1], int64[::1], "
    "float64[:, :, ::1], float32[:, :, :, ::1])"
)
def _voxel_grids(x, y, t, p, starts, ends, scratch, out):
    """Voxel grid of each window's events into ``out[w]`` (bins as channels).

    ``scratch`` is a float64 ``(B, H, W)`` buffer: sums are taken in float64 in event order,
    as tonic's ``np.add.at`` does, and rounded to float32 once.
    """
    B = scratch.shape[0]
    for w in range(starts.shape[0]):
        s, e = starts[w], ends[w]
        scratch[:] = 0.0
        if e > s:
            t_first = t[s]
            span = np.float64(t[e - 1] - t_first)
            for i in range(s, e):
                ts = B * (np.float64(t[i]) - np.float64(t_first)) / span if span > 0.0 else 0.0
                bin_ = np.int64(ts)
                frac = ts - bin_
                sign = 1.0 if p[i] else -1.0
                if bin_ < B:
                    scratch[bin_, y[i], x[i]] += sign * (1.0 - frac)
                if bin_ + 1 < B:
                    scratch[bin_ + 1, y[i], x[i]] += sign * frac
        for b in range(B):
            for r in range(scratch.shape[1]):
                for c in range(scratch.shape[2]):
                    out[w, b, r, c] = np.float32(scratch[b, r, c])


@jit(
    "void(int16[:], int16[:], int64[:], boolean[:], int64[::1], int64[::1], int64[::1], "
    "boolean, float64, float64[:, :, ::1], float32[:, :, :, ::1])"
)
def _time_surfaces(x, y, t, p, starts, ends, end_times, two_polarities, tau, memory, out):
    """For each window: write its events' times into ``memory``, then the surface at its end.

    ``memory`` holds ``-inf`` where no event came yet; it is updated in place (stream state).
    """
    P, H, W = memory.shape
    for w in range(starts.shape[0]):
        for i in range(starts[w], ends[w]):
            c = np.int64(p[i]) if two_polarities else 0
            memory[c, y[i], x[i]] = np.float64(t[i])
        t_end = np.float64(end_times[w])
        for c in range(P):
            for r in range(H):
                for col in range(W):
                    m = memory[c, r, col]
                    if m == -np.inf:
                        out[w, c, r, col] = 0.0
                    else:
                        out[w, c, r, col] = np.float32(math.exp(-(t_end - m) / tau))


@jit("int64(int16[:], int16[:], int64[:], int64, int64[:, ::1], boolean[::1])")
def _denoise(x, y, t, filter_time, memory, keep):
    """tonic's Denoise: keep an event when a 4-neighbour pixel fired within ``filter_time``.

    ``memory[x, y]`` holds (last event time + filter_time) per pixel; returns the kept count.
    """
    W, H = memory.shape
    kept = 0
    for i in range(x.shape[0]):
        xi, yi, ti = np.int64(x[i]), np.int64(y[i]), t[i]
        memory[xi, yi] = ti + filter_time
        ok = (
            (xi > 0 and memory[xi - 1, yi] > ti)
            or (xi < W - 1 and memory[xi + 1, yi] > ti)
            or (yi > 0 and memory[xi, yi - 1] > ti)
            or (yi < H - 1 and memory[xi, yi + 1] > ti)
        )
        keep[i] = ok
        kept += ok
    return kept


@jit("int64(int16[:], int16[:], int64[:], int64, int64[:, ::1], boolean[::1])")
def _refractory(x, y, t, period, memory, keep):
    """tonic's RefractoryPeriod: keep an event when ``t - last[x, y] > period``; every event,
    kept or not, updates ``last``. Returns the kept count."""
    kept = 0
    for i in range(x.shape[0]):
        xi, yi, ti = np.int64(x[i]), np.int64(y[i]), t[i]
        ok = ti - memory[xi, yi] > period
        keep[i] = ok
        kept += ok
        memory[xi, yi] = ti
    return kept
