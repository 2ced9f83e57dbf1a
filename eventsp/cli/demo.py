"""``eventsp demo``: the main job on the bundled defaults, step by step.

``make demo`` runs this. Each step does real work on real data from ``../shared/data`` (or
``--data``) and prints what it computed; nothing here is canned. Steps are added as the
capabilities land; a step whose data is missing says where to put it and the demo fails.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from eventsp.cli import UsageError

HELP = "run the main job on the bundled defaults (what `make demo` runs)"

DEFAULT_DATA = Path("../shared/data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with the shared recordings (default: %(default)s)",
    )


def _step_info(data: Path) -> None:
    from eventsp.cli import info

    info.run(argparse.Namespace(json=False))


def _step_audio_frontend(data: Path) -> None:
    import numpy as np

    from eventsp.audio import (
        LogMelConfig,
        ResampleConfig,
        STFTConfig,
        init_logmel_state,
        init_resample_state,
        istft,
        logmel,
        logmel_step,
        read_audio,
        resample,
        resample_flush,
        resample_step,
        stft,
    )

    clips = sorted((data / "speech" / "speech_commands_v2_test_dev" / "yes").glob("*.flac"))
    if not clips:
        raise UsageError(f"no speech clips in {data / 'speech'}; the demo reads Speech Commands")
    signal, rate = read_audio(clips[0], sample_rate=16000)
    config = LogMelConfig()
    logmel(signal[:800], config)  # load the compiled kernels before timing
    state = init_logmel_state(config)
    parts, start = [], time.perf_counter()
    for i in range(0, signal.shape[0], 160):
        frames, state = logmel_step(signal[i : i + 160], state, config)
        parts.append(frames)
    elapsed = time.perf_counter() - start
    streamed, duration = np.concatenate(parts), signal.shape[0] / rate
    chunks = -(-signal.shape[0] // 160)
    diff = np.abs(streamed - logmel(signal, config)).max()
    print(
        f"   {clips[0].name}: {duration:.2f} s at {rate} Hz, streamed in {chunks} chunks of 10 ms"
    )
    print(
        f"   -> {streamed.shape[0]} frames x {config.n_mels} log-mels, real-time factor "
        f"{elapsed / duration:.4f} ({elapsed / chunks * 1e6:.1f} µs per chunk)"
    )
    print(f"   max |streaming - offline| = {diff:.1e}")
    cola = STFTConfig(n_fft=512, hop_length=128, center=True)
    rebuilt = istft(stft(signal, cola), cola, length=signal.shape[0])
    print(f"   istft(stft(x)) max |error| = {np.abs(rebuilt - signal).max():.1e}")
    up = resample(signal, ResampleConfig(16000, 44100))
    down_config = ResampleConfig(44100, 16000)
    rstate, pieces = init_resample_state(down_config), []
    for i in range(0, up.shape[0], 441):
        out, rstate = resample_step(up[i : i + 441], rstate, down_config)
        pieces.append(out)
    down = np.concatenate([*pieces, resample_flush(rstate, down_config)])
    print(
        f"   16 kHz -> 44.1 kHz -> 16 kHz streamed: {down.shape[0]} samples, max |streaming - "
        f"offline| = {np.abs(down - resample(up, down_config)).max():.1e}"
    )


STEPS: list[tuple[str, Callable[[Path], None]]] = [
    ("installation", _step_info),
    ("audio front-end: streaming log-mel on real speech", _step_audio_frontend),
]


def run(args: argparse.Namespace) -> int:
    data: Path = args.data
    if not data.is_dir():
        raise UsageError(
            f"data folder {str(data)!r} does not exist; pass --data PATH pointing at the "
            "shared recordings (the folder with mnist/, nmnist_small/, speech/, events/)"
        )
    for number, (title, step) in enumerate(STEPS, start=1):
        print(f"== {number}. {title}")
        start = time.perf_counter()
        step(data)
        print(f"   ({time.perf_counter() - start:.2f} s)")
    return 0
