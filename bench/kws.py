"""Real-time factor of the whole keyword-spotting path at 10 ms hops (issue 6).

    python bench/kws.py [--model PATH] [--data ../shared/data] [--seconds 60]

Streams real Speech Commands clips of the held-out (validation and test) speakers, concatenated
into one continuous stream, through the bundled hybrid-spiking LMU keyword spotter in 160-sample
(10 ms) chunks: streaming log-mel, the runtime, posterior smoothing and the event rule, one
thread. Prints per-chunk median and p99 µs and the real-time factor by wall and by process CPU
time (for synops per second of audio, run ``python -m eventsp.train.lmu.kws_measure``). There
is no peer library for this whole path; the goal (RTF ≤ 0.005 on one core) is printed beside
the figure. Last line:
``kws_rtf_cpu=<x> kws_rtf_wall=<y>``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

from eventsp.apps.kws import KeywordSpotter, speaker_of, speaker_split
from eventsp.audio import read_audio

HOP = 160
GOAL_RTF = 0.005


def held_out_stream(root: Path, rate: int, seconds: float) -> np.ndarray:
    clips = []
    total = 0
    for path in sorted(root.glob("*/*.flac")):
        if speaker_split(speaker_of(path)) == "train":
            continue
        signal, _ = read_audio(path, rate)
        clips.append(signal)
        total += len(signal)
        if total >= seconds * rate:
            break
    if not clips:
        raise SystemExit(f"no held-out clips under {root}; pass --data pointing at shared/data")
    return np.concatenate(clips)[: int(seconds * rate)].astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    spotter = KeywordSpotter(args.model)
    rate = spotter.sample_rate
    audio = held_out_stream(
        args.data / "speech" / "speech_commands_v2_test_dev", rate, args.seconds
    )
    spotter.step(audio[: 10 * HOP], spotter.init_state())  # compile or load the kernels

    state = spotter.init_state()
    times = np.empty(len(audio) // HOP)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(len(times)):
        start = time.perf_counter()
        _, _, state = spotter.step(audio[k * HOP : (k + 1) * HOP], state)
        times[k] = time.perf_counter() - start
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    duration = len(times) * HOP / rate

    median_us, p99_us = np.percentile(times, [50, 99]) * 1e6
    print(f"model: {spotter.path.name}, {duration:.1f} s of held-out speech, 10 ms chunks")
    print(f"{'per chunk':<12}{'median µs':>12}{'p99 µs':>10}{'RTF wall':>10}{'RTF CPU':>10}")
    print(
        f"{'eventsp':<12}{median_us:>12.1f}{p99_us:>10.1f}"
        f"{wall / duration:>10.4f}{cpu / duration:>10.4f}"
    )
    print(f"median-chunk RTF {median_us * 1e-6 / (HOP / rate):.4f}; goal RTF <= {GOAL_RTF}")
    print(f"kws_rtf_cpu={cpu / duration:.4f} kws_rtf_wall={wall / duration:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
