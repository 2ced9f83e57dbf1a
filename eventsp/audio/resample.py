r"""Streaming band-limited resampling, equal to ``torchaudio.functional.resample``.

With the rates reduced by their gcd to ``orig`` and ``new``, output sample ``j * new + p``
(phase ``p < new``) is a windowed-sinc FIR over the input block starting at ``j * orig``:

.. math:: y[j\,\mathrm{new} + p] = \sum_{k=0}^{K-1} h_p[k]\; x[j\,\mathrm{orig} - W + k],
   \qquad K = 2W + \mathrm{orig}

where ``x`` is zero before sample 0, ``W = ceil(width * orig / f_c)`` and
``h_p[k] = s\,\mathrm{sinc}(\pi t) w(t)``, ``t = f_c ((k - W) / orig - p / new)`` clamped to
``[-width, width]``, with ``f_c = rolloff * min(orig, new)``, ``s = f_c / orig``, and ``w``
the Hann window ``cos^2(pi t / (2 width))`` or a Kaiser window. These are torchaudio's kernels
(``_get_sinc_resample_kernel``), computed here in float64.

A whole signal of ``L`` samples gives ``ceil(new * L / orig)`` samples. Streaming:
:func:`resample_step` returns every output whose inputs have arrived (it lags by about
``W + orig`` input samples); :func:`resample_flush` pads the end with zeros, as the offline
function does, and returns the rest. Any chunking gives the same samples as
:func:`resample`, and the state holds fewer than ``K`` samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np

from eventsp.audio._kernels import _resample_chunk
from eventsp.audio.stft import _as_chunk

__all__ = [
    "ResampleConfig",
    "ResampleMethod",
    "ResampleState",
    "init_resample_state",
    "resample",
    "resample_flush",
    "resample_step",
]

ResampleMethod = Literal["sinc_interp_hann", "sinc_interp_kaiser"]


@dataclass(frozen=True)
class ResampleConfig:
    """From ``orig_hz`` to ``new_hz`` (integers), with torchaudio's filter options and defaults."""

    orig_hz: int
    new_hz: int
    lowpass_filter_width: int = 6
    rolloff: float = 0.99
    method: ResampleMethod = "sinc_interp_hann"
    beta: float = 14.769656459379492

    def __post_init__(self) -> None:
        for name in ("orig_hz", "new_hz", "lowpass_filter_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(
                    f"{name} is {value!r}; expected a positive integer (sample rates in whole Hz; "
                    "for a fractional rate pass the integer ratio, e.g. 2 and 1)"
                )
        if not 0.0 < self.rolloff <= 1.0:
            raise ValueError(f"rolloff is {self.rolloff!r}; expected a fraction in (0, 1]")
        if self.method not in get_args(ResampleMethod):
            raise ValueError(
                f"method is {self.method!r}; expected one of {get_args(ResampleMethod)}"
            )

    @property
    def ratio(self) -> tuple[int, int]:
        """``(orig, new)``: the rates divided by their gcd."""
        gcd = math.gcd(int(self.orig_hz), int(self.new_hz))
        return int(self.orig_hz) // gcd, int(self.new_hz) // gcd


class _Plan(NamedTuple):
    kernel: np.ndarray  # (new, K) float64
    lo: np.ndarray  # (new,) int64: phase p's taps are zero outside [lo[p], hi[p])
    hi: np.ndarray
    width: int
    orig: int
    new: int


@functools.lru_cache(maxsize=32)
def _plan(config: ResampleConfig) -> _Plan:
    orig, new = config.ratio
    width_taps = config.lowpass_filter_width
    base = min(orig, new) * config.rolloff
    width = math.ceil(width_taps * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx
    t = t * base
    # Taps with |t| >= width are sinc(+-width) * window(+-width): zero but for rounding
    # (torchaudio keeps them, ~1e-50); the kernel skips them.
    inside = np.abs(t) < width_taps
    lo = np.argmax(inside, axis=1).astype(np.int64)
    hi = (inside.shape[1] - np.argmax(inside[:, ::-1], axis=1)).astype(np.int64)
    t = np.clip(t, -width_taps, width_taps)
    if config.method == "sinc_interp_hann":
        window = np.cos(t * math.pi / width_taps / 2) ** 2
    else:
        # torchaudio holds beta, and so I0(beta), in float32; round the same way to match it.
        beta = float(np.float32(config.beta))
        norm = float(np.float32(np.i0(beta)))
        window = np.i0(beta * np.sqrt(1 - (t / width_taps) ** 2)) / norm
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel = np.ascontiguousarray(kernel * window * (base / orig))
    return _Plan(kernel, lo, hi, width, orig, new)


class ResampleState(NamedTuple):
    """A stream's resampler state.

    Attributes
    ----------
    tail: ``(K,)`` float64; the first ``fill[0]`` entries are inputs still needed, the first
        of them at input position ``blocks[0] * orig - W`` (negative positions are zeros).
    fill: ``(1,)`` int64, number of held samples (fewer than ``K``).
    blocks: ``(1,)`` int64, output blocks of ``new`` samples emitted so far.
    consumed: ``(1,)`` int64, input samples received so far.
    """

    tail: np.ndarray
    fill: np.ndarray
    blocks: np.ndarray
    consumed: np.ndarray


def init_resample_state(config: ResampleConfig) -> ResampleState:
    """State of a new stream: ``W`` zeros before the first sample (torchaudio's left padding)."""
    plan = _plan(config)
    fill = np.array([plan.width], np.int64)
    zeros = np.zeros(1, np.int64)
    return ResampleState(np.zeros(plan.kernel.shape[1]), fill, zeros, zeros.copy())


def _run(
    samples: np.ndarray, state: ResampleState, plan: _Plan
) -> tuple[np.ndarray, ResampleState]:
    if state.tail.shape != (plan.kernel.shape[1],):
        raise ValueError(
            f"state holds {state.tail.shape} samples but this resampler's filter has "
            f"{plan.kernel.shape[1]} taps; create the state with the same config"
        )
    tail = state.tail.copy()
    fill = state.fill.copy()
    total = int(fill[0]) + samples.shape[0]
    taps = plan.kernel.shape[1]
    n = 0 if total < taps else (total - taps) // plan.orig + 1
    out = np.empty(n * plan.new)
    _resample_chunk(tail, fill, samples, plan.kernel, plan.lo, plan.hi, plan.orig, out)
    return out, ResampleState(tail, fill, state.blocks + n, state.consumed)


def resample_step(
    chunk: np.ndarray, state: ResampleState, config: ResampleConfig
) -> tuple[np.ndarray, ResampleState]:
    """Output samples (float64) that ``chunk`` completes at ``new_hz``, and the new state.

    When the rates are equal the chunk passes through unchanged (as float64).
    """
    samples = _as_chunk(chunk)
    if config.orig_hz == config.new_hz:
        passed = samples.astype(np.float64)
        return passed, state._replace(consumed=state.consumed + samples.shape[0])
    out, state = _run(samples, state, _plan(config))
    return out, state._replace(consumed=state.consumed + samples.shape[0])


def resample_flush(state: ResampleState, config: ResampleConfig) -> np.ndarray:
    """The remaining output of a stream that has ended, up to ``ceil(new * L / orig)`` in all."""
    if config.orig_hz == config.new_hz:
        return np.zeros(0)
    plan = _plan(config)
    consumed = int(state.consumed[0])
    target = -(-plan.new * consumed // plan.orig)
    out, _ = _run(np.zeros(plan.width + plan.orig), state, plan)
    emitted = int(state.blocks[0]) * plan.new
    return out[: max(target - emitted, 0)]


def resample(signal: np.ndarray, config: ResampleConfig) -> np.ndarray:
    """A whole 1-D signal at ``new_hz`` (float64): :func:`resample_step` then the flush."""
    state = init_resample_state(config)
    body, state = resample_step(signal, state, config)
    return np.concatenate([body, resample_flush(state, config)])
