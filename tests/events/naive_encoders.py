"""Slow, plainly correct references for the event encoders (one formula per window)."""

from __future__ import annotations

import numpy as np


def time_surfaces_naive(
    events: np.ndarray, sensor_size: tuple[int, int, int], dt_us: int, tau_us: float
) -> np.ndarray:
    """Time surfaces of sorted ``events`` at the end of every ``dt_us`` window (tonic's windows
    without overlap): ``float32(exp(-(t_end - M) / tau))`` from each window's memory ``M``
    (latest t per pixel, ``-inf`` before any event), computed directly for every pixel."""
    W, H, P = sensor_size
    t = events["t"].astype(np.int64)
    t0 = int(t[0])
    n_windows = max((int(t[-1]) - t0 - dt_us) // dt_us + 1, 1)
    memory = np.full((P, H, W), -np.inf)
    out = np.zeros((n_windows, P, H, W), dtype=np.float32)
    channel = events["p"].astype(np.int64) if P == 2 else np.zeros(len(events), np.int64)
    done = 0
    for k in range(n_windows):
        t_end = t0 + (k + 1) * dt_us
        stop = int(np.searchsorted(t, t_end))
        for i in range(done, stop):  # in order: the latest event of a pixel wins
            memory[channel[i], events["y"][i], events["x"][i]] = float(t[i])
        done = stop
        out[k] = np.exp(-(float(t_end) - memory) / tau_us).astype(np.float32)
    return out
