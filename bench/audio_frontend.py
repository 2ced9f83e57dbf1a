"""Audio front-end speed: eventsp's streaming log-mel against torchaudio, on one core.

Run with the dev or bench environment::

    .venv/bin/python bench/audio_frontend.py [--data ../shared/data] [--seconds 30] [--repeat 5]

The audio is real speech: Speech Commands clips from ``<data>/speech`` back to back. Every
path computes the same features: 40 log-mel bands, 25 ms Hann windows (n_fft=400), 10 ms hops,
16 kHz, ``log(mel + 1e-6)``, ``center=False``. Timed, one thread everywhere:

- ``eventsp stream numba``: :func:`eventsp.audio.logmel_step` on 10 ms chunks (160 samples), the
  default one-call Numba path (framing, mixed-radix FFT, mel, log);
- ``eventsp stream numpy``: the same with ``fft="numpy"`` (numpy's rfft between two kernels);
- ``eventsp offline``: :func:`eventsp.audio.logmel` on the whole signal;
- ``torchaudio offline``: ``MelSpectrogram`` + log on the whole signal (float32);
- ``torchaudio per hop``: ``MelSpectrogram`` + log on the last 400 samples every 10 ms, the way a
  stream would use it.

Printed per path: the real-time factor (compute time / audio time; the best of ``--repeat``
runs), median and p95 µs per 10 ms chunk for the streaming ones (median / 10 ms is the RTF
without the scheduler's interruptions, which dominate the total on a busy machine), the ratio
to torchaudio offline, and the largest difference from torchaudio's features in float32
(``ta32``, whose own rounding reaches ~4e-4 in near-silent bands) and in float64 (``ta64``).
Then: the cost
per chunk at the start and after ``--long`` minutes of stream (it must not grow); the FFT alone
(median µs per frame of 400 and 512 samples, the Numba FFT against ``numpy.fft.rfft``); a
streaming STFT -> iSTFT round trip per 10 ms chunk with either FFT; and the streaming resampler
(44.1 kHz -> 16 kHz in 10 ms chunks). The last line is
``rtf_stream=<x> rtf_stream_median=<y> rtf_torchaudio=<z>``.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOP = 160
RATE = 16000


def _speech(data: Path, seconds: float) -> np.ndarray:
    import soundfile

    root = data / "speech" / "speech_commands_v2_test_dev"
    files = sorted(root.glob("*/*.flac"))
    if not files:
        raise SystemExit(f"no Speech Commands clips under {root}; pass --data")
    clips, total = [], 0
    for path in files[:: max(1, len(files) // int(seconds + 1))]:
        clip, rate = soundfile.read(str(path), dtype="float32")
        if rate != RATE:
            continue
        clips.append(clip)
        total += clip.shape[0]
        if total >= seconds * RATE:
            break
    return np.concatenate(clips)[: int(seconds * RATE)]


def _stream(step: Callable, signal: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Feed 10 ms chunks; (total s, µs per chunk, features)."""
    times = np.empty(signal.shape[0] // HOP)
    outs = []
    step(None)  # reset
    for i in range(times.shape[0]):
        chunk = signal[i * HOP : (i + 1) * HOP]
        start = time.perf_counter_ns()
        out = step(chunk)
        times[i] = time.perf_counter_ns() - start
        outs.append(out)
    return times.sum() * 1e-9, times * 1e-3, np.concatenate(outs)


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _median_us(fn: Callable[[], object], calls: int = 20000) -> float:
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        fn()
        times[i] = time.perf_counter_ns() - start
    return float(np.median(times)) * 1e-3


def _eventsp_stepper(fft: str) -> Callable:
    from eventsp.audio import LogMelConfig, init_logmel_state, logmel_step

    config = LogMelConfig(fft=fft)
    box = {}

    def step(chunk):
        if chunk is None:
            box["state"] = init_logmel_state(config)
            return None
        out, box["state"] = logmel_step(chunk, box["state"], config)
        return out

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--long", type=float, default=10.0, help="minutes for the growth check")
    args = parser.parse_args()

    import torch
    import torchaudio

    torch.set_num_threads(1)
    from eventsp.audio import (
        LogMelConfig,
        ResampleConfig,
        init_resample_state,
        logmel,
        resample,
        resample_step,
    )
    from eventsp.audio._fft import _rfft_frame, fft_plan

    signal = _speech(args.data, args.seconds)
    duration = signal.shape[0] / RATE
    config = LogMelConfig()
    transform = torchaudio.transforms.MelSpectrogram(
        RATE, n_fft=400, hop_length=HOP, n_mels=40, center=False
    )
    tensor = torch.from_numpy(signal)
    with torch.no_grad():
        reference = torch.log(transform(tensor) + 1e-6).T.numpy()
    # The same transform in float64 throughout (its filterbank follows the default dtype).
    torch.set_default_dtype(torch.float64)
    transform64 = torchaudio.transforms.MelSpectrogram(
        RATE, n_fft=400, hop_length=HOP, n_mels=40, center=False
    )
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        reference64 = torch.log(transform64(tensor.double()) + 1e-6).T.numpy()
    logmel(signal[:800], config)  # compile / load the cached kernels
    logmel(signal[:800], LogMelConfig(fft="numpy"))
    print(f"audio: {duration:.1f} s of real speech, 10 ms hops, best of {args.repeat} runs")

    rows = []
    for name, fft in (("eventsp stream numba", "numba"), ("eventsp stream numpy", "numpy")):
        step = _eventsp_stepper(fft)
        runs = [_stream(step, signal) for _ in range(args.repeat)]
        total, per_chunk, feats = min(runs, key=lambda r: r[0])
        rows.append((name, total, per_chunk, feats))

    total = _best(lambda: logmel(signal, config), args.repeat)
    rows.append(("eventsp offline", total, None, logmel(signal, config)))

    def ta_offline():
        with torch.no_grad():
            return torch.log(transform(tensor) + 1e-6)

    rows.append(("torchaudio offline", _best(ta_offline, args.repeat), None, reference))

    def ta_step(chunk, box={}):  # noqa: B006
        if chunk is None:
            box["held"] = np.zeros(0, np.float32)
            return None
        held = np.concatenate([box["held"], chunk])
        outs = []
        while held.shape[0] >= 400:
            with torch.no_grad():
                mel = transform(torch.from_numpy(held[:400]))
            outs.append(torch.log(mel + 1e-6).T.numpy())
            held = held[HOP:]
        box["held"] = held
        return np.concatenate(outs) if outs else np.zeros((0, 40), np.float32)

    runs = [_stream(ta_step, signal) for _ in range(max(1, args.repeat // 2))]
    total, per_chunk, feats = min(runs, key=lambda r: r[0])
    rows.append(("torchaudio per hop", total, per_chunk, feats))

    ta_total = rows[3][1]
    print(
        f"{'path':22s} {'RTF':>9s} {'µs/chunk med':>13s} {'p95':>8s} {'vs ta offline':>14s}"
        f" {'|diff| ta32':>11s} {'|diff| ta64':>11s}"
    )
    for name, total, per_chunk, feats in rows:
        med = f"{np.median(per_chunk):13.1f}" if per_chunk is not None else f"{'-':>13s}"
        p95 = f"{np.percentile(per_chunk, 95):8.1f}" if per_chunk is not None else f"{'-':>8s}"
        diff, diff64 = np.abs(feats - reference).max(), np.abs(feats - reference64).max()
        print(
            f"{name:22s} {total / duration:9.5f} {med} {p95} {total / ta_total:13.2f}x "
            f"{diff:11.2e} {diff64:11.2e}"
        )

    step = _eventsp_stepper("numba")
    minutes = np.tile(signal, int(np.ceil(args.long * 60 / duration)))[: int(args.long * 60 * RATE)]
    _, per_chunk, _ = _stream(step, minutes)
    head, tail = np.median(per_chunk[:3000]), np.median(per_chunk[-3000:])
    print(f"cost per chunk: first 30 s {head:.1f} µs, last 30 s of {args.long:g} min {tail:.1f} µs")

    print("FFT of one frame, median µs over 20000 calls:")
    for n in (400, 512):
        plan = fft_plan(n)
        frame = np.random.default_rng(0).standard_normal(n)
        work = np.empty(n // 2, np.complex128)
        tmp = np.empty(8, np.complex128)
        out = np.empty(n // 2 + 1, np.complex128)

        def ours(frame=frame, plan=plan, work=work, tmp=tmp, out=out):
            _rfft_frame(frame, *plan, work, tmp, out)

        ours()
        t_numba, t_numpy = _median_us(ours), _median_us(lambda x=frame: np.fft.rfft(x))
        print(f"  n_fft={n}: numba {t_numba:.2f}, numpy.fft.rfft {t_numpy:.2f}")

    from eventsp.audio import STFTConfig, init_istft_state, init_stft_state, istft_step, stft_step

    print("STFT -> iSTFT round trip per 10 ms chunk (n_fft=320, sqrt-Hann, 50 % overlap):")
    for fft in ("numba", "numpy"):
        cola = STFTConfig(n_fft=320, hop_length=HOP, window="sqrt_hann", fft=fft)
        box = {}

        def round_trip(chunk, box=box, cola=cola):
            if chunk is None:
                box["a"], box["s"] = init_stft_state(cola), init_istft_state(cola)
                return np.zeros((0, 1))
            spectra, box["a"] = stft_step(chunk, box["a"], cola)
            out, box["s"] = istft_step(spectra, box["s"], cola)
            return out[:, None]

        runs = [_stream(round_trip, signal) for _ in range(args.repeat)]
        total, per_chunk, _ = min(runs, key=lambda r: r[0])
        print(
            f"  {fft}: median {np.median(per_chunk):.1f} µs per chunk, RTF {total / duration:.5f}"
        )

    loud = resample(signal, ResampleConfig(RATE, 44100)).astype(np.float32)
    rconfig = ResampleConfig(44100, RATE)
    chunk = 441

    def stream_resample():
        state = init_resample_state(rconfig)
        for start in range(0, loud.shape[0], chunk):
            _, state = resample_step(loud[start : start + chunk], state, rconfig)

    stream_resample()
    t_stream = _best(stream_resample, args.repeat)
    loud_t = torch.from_numpy(loud)
    t_torch = _best(lambda: torchaudio.functional.resample(loud_t, 44100, RATE), args.repeat)
    print(
        f"resample 44.1k -> 16k: eventsp stream (10 ms chunks) RTF {t_stream / duration:.5f}, "
        f"torchaudio offline RTF {t_torch / duration:.5f}"
    )
    median_rtf = np.median(rows[0][2]) * 1e-6 / (HOP / RATE)
    print(
        f"rtf_stream={rows[0][1] / duration:.5f} rtf_stream_median={median_rtf:.5f} "
        f"rtf_torchaudio={ta_total / duration:.5f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
