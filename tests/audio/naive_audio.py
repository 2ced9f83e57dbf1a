"""Slow, plainly correct references for the audio front-end (loops over the formulas)."""

from __future__ import annotations

import math

import numpy as np


def resample_naive(x: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99):
    """Band-limited interpolation, one output sample at a time, Hann-windowed sinc.

    ``y[m] = sum_i x[i] s sinc(pi t) cos^2(pi t / (2 width))`` with
    ``t = f_c (i / orig - m / new)`` (clamped to ``+-width``), ``f_c = rolloff min(orig, new)``
    (rates reduced by their gcd), over the inputs within ``W = ceil(width orig / f_c)`` of the
    output's block; ``ceil(new len(x) / orig)`` outputs.
    """
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    base = min(orig, new) * rolloff
    span = math.ceil(width * orig / base)
    n_out = -(-new * len(x) // orig)
    y = np.zeros(n_out)
    for m in range(n_out):
        block = m // new
        total = 0.0
        for i in range(block * orig - span, block * orig + span + orig):
            if not 0 <= i < len(x):
                continue
            t = min(max(base * (i / orig - m / new), -width), width)
            window = math.cos(t * math.pi / width / 2) ** 2
            sinc = 1.0 if t == 0 else math.sin(math.pi * t) / (math.pi * t)
            total += x[i] * sinc * window * base / orig
        y[m] = total
    return y
