"""Evaluate a separation model on the streaming runtime, on held-out-speaker mixtures.

::

    python -m eventsp.train.separation.evaluate --model eventsp/models/separate_snn.esp \\
        --data ../shared/data --mixtures 100 [--chunk 128]

Mixtures: ``--mixtures`` two-talker mixtures of "test" speakers (never trained on or used for
model selection), made by :func:`eventsp.train.data.mixtures.make_mixture` with the default
:class:`MixConfig` and ``numpy.random.default_rng(seed)`` (seed 2024 by default).

Metrics (each source against its estimate under the better of the two pairings, by SI-SNR):

- ``si_snri_db``: SI-SNR(estimate) - SI-SNR(mixture), mean over sources and mixtures;
- ``sdri_db``: the same with plain SDR ``10 log10(|s|^2 / |s - s_hat|^2)`` (not BSS-eval: no
  distortion filter is allowed, so it is stricter than BSS-eval SDR);
- ``pesq``: wide-band PESQ (``pesq`` package, 16 kHz) of the estimates, and of the mixture
  (``pesq_mixture``) for reference; sources PESQ cannot score (no utterance) are skipped;
- ``stoi`` / ``stoi_mixture``: STOI (``pystoi``);
- ``synops_per_s``: the runtime's effective synaptic operations per second of audio, and
  ``dense_ops_per_s`` for a dense network of the same shape;
- ``rtf``: seconds of one core (the process runs with one Numba thread) per second of audio,
  streaming chunks of ``--chunk`` samples through :class:`eventsp.apps.separate.Separator`;
- ``latency_ms``: :func:`measure_latency` (an impulse through the streaming path).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from eventsp.apps.separate import Separator, si_snr
from eventsp.train.data.mixtures import MixConfig, list_clips, load_clips, make_mixture

__all__ = ["evaluate", "measure_latency", "sdr"]


def sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Plain signal-to-distortion ratio in dB (no scaling, no filter)."""
    est, ref = np.asarray(est, np.float64), np.asarray(ref, np.float64)
    return float(10 * np.log10(max(ref @ ref, 1e-12) / max((ref - est) @ (ref - est), 1e-12)))


def measure_latency(separator: Separator, positions: int = 16) -> dict[str, float]:
    """Delay between an input sample and the output sample estimating it, streamed sample by
    sample.

    An impulse is pushed at sample ``t0`` (``positions`` values of ``t0`` spread over one
    hop); samples are then pushed one at a time until the output sample ``t0`` has been
    emitted. The delay is the number of samples pushed after ``t0`` by then. Also checks that
    the estimates' sum peaks at ``t0`` (the output is aligned with the input).
    """
    hop = separator.stft.hop_length
    delays, peaks = [], []
    for k in range(positions):
        t0 = 1024 + (k * hop) // positions
        signal = np.zeros(t0 + 2 * separator.stft.n_fft, np.float32)
        signal[t0] = 0.5
        state = separator.init_state()
        parts = []
        for n in range(signal.shape[0]):
            out, state = separator.step(signal[n : n + 1], state)
            parts.append(out)
            if state.emitted > t0:
                delays.append(n - t0)
                break
        rest, _ = separator.step(signal[n + 1 :], state)
        total = np.concatenate([*parts, rest], axis=1).sum(axis=0)
        peaks.append(int(np.argmax(np.abs(total))) - t0)
    rate = separator.sample_rate
    return {
        "latency_ms": 1000 * max(delays) / rate,
        "latency_mean_ms": 1000 * float(np.mean(delays)) / rate,
        "window_ms": 1000 * separator.latency_s,
        "impulse_peak_offset_samples": int(max(np.abs(peaks))),
    }


def _pesq(ref: np.ndarray, est: np.ndarray, rate: int) -> float | None:
    from pesq import pesq
    from pesq.cypesq import PesqError

    try:
        return float(pesq(rate, ref.astype(np.float64), est.astype(np.float64), "wb"))
    except PesqError:
        return None


def evaluate(
    separator: Separator,
    data: Path,
    n_mixtures: int = 100,
    seed: int = 2024,
    chunk: int = 128,
    quality: bool = True,
) -> dict[str, Any]:
    """Metrics of ``separator`` on ``n_mixtures`` test-speaker mixtures (module docstring)."""
    from pystoi import stoi

    clips = load_clips(list_clips(data, "test"))
    rng = np.random.default_rng(seed)
    rate = separator.sample_rate
    rows: dict[str, list[float]] = {
        k: [] for k in ("si_snri", "sdri", "si_snr", "pesq", "pesq_mix", "stoi", "stoi_mix")
    }
    seconds = audio_s = synops = dense = 0.0
    separator.separate(np.zeros(2 * chunk, np.float32), chunk)  # compile before timing
    for _ in range(n_mixtures):
        mix = make_mixture(rng, clips, MixConfig())
        start = time.perf_counter()
        est, state = separator.separate(mix.mixture, chunk)
        seconds += time.perf_counter() - start
        audio_s += mix.mixture.shape[0] / rate
        s, d = separator.synops(state)
        synops, dense = synops + s, dense + d
        src = mix.sources
        direct = si_snr(est[0], src[0]) + si_snr(est[1], src[1])
        swapped = si_snr(est[0], src[1]) + si_snr(est[1], src[0])
        order = (0, 1) if direct >= swapped else (1, 0)
        for k in range(2):
            e, r = est[order[k]], src[k]
            value = si_snr(e, r)
            rows["si_snr"].append(value)
            rows["si_snri"].append(value - si_snr(mix.mixture, r))
            rows["sdri"].append(sdr(e, r) - sdr(mix.mixture, r))
            if quality:
                p, pm = _pesq(r, e, rate), _pesq(r, mix.mixture, rate)
                if p is not None and pm is not None:
                    rows["pesq"].append(p)
                    rows["pesq_mix"].append(pm)
                rows["stoi"].append(float(stoi(r, e, rate, extended=False)))
                rows["stoi_mix"].append(float(stoi(r, mix.mixture, rate, extended=False)))
    result: dict[str, Any] = {
        "model": str(separator.path),
        "mixtures": n_mixtures,
        "si_snri_db": float(np.mean(rows["si_snri"])),
        "si_snr_db": float(np.mean(rows["si_snr"])),
        "sdri_db": float(np.mean(rows["sdri"])),
        "synops_per_s": synops / audio_s,
        "dense_ops_per_s": dense / audio_s,
        "rtf": seconds / audio_s,
        "chunk_samples": chunk,
        "parameter_bytes": separator.network.parameter_bytes,
    }
    if quality:
        result.update(
            pesq=float(np.mean(rows["pesq"])) if rows["pesq"] else None,
            pesq_mixture=float(np.mean(rows["pesq_mix"])) if rows["pesq_mix"] else None,
            stoi=float(np.mean(rows["stoi"])),
            stoi_mixture=float(np.mean(rows["stoi_mix"])),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="evaluate a separation model on held-out speakers")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--mixtures", type=int, default=100)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--no-quality", action="store_true", help="skip PESQ and STOI")
    args = p.parse_args(argv)
    import numba

    numba.set_num_threads(1)  # the real-time factor is for one core
    separator = Separator(args.model)
    result = evaluate(
        separator, args.data, args.mixtures, args.seed, args.chunk, not args.no_quality
    )
    result.update(measure_latency(separator))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
