"""``eventsp separate MIXTURE... --out DIR``: split two talkers with the spiking separator.

Each file (WAV, FLAC; any sample rate; channels are averaged) is resampled to the model's rate
when needed, streamed through :class:`eventsp.apps.separate.Separator` in 10 ms chunks as a
live stream would be, resampled back, and written as ``DIR/<name>.s1.wav`` and
``DIR/<name>.s2.wav``: mono 16-bit WAV with the input's sample rate and number of samples.
Prints one JSON object per file: ``file``, ``outputs``, ``duration_s``, ``sample_rate_hz``,
``rtf`` (processing seconds per second of audio), ``synops_per_s`` (the runtime's effective
synaptic operations per second of audio) and ``latency_ms`` (the model's algorithmic latency).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eventsp.cli import UsageError

HELP = "separate two talkers in audio files (default: the bundled spiking separator)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="MIXTURE", help="WAV/FLAC files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the separated WAVs")
    parser.add_argument("--model", type=Path, default=None, help="a 'separate' .esp model")


def _resample(signal, orig_hz: int, new_hz: int, length: int):
    import numpy as np

    from eventsp.audio import ResampleConfig, resample

    if orig_hz != new_hz:
        signal = resample(signal, ResampleConfig(orig_hz, new_hz))
    signal = np.asarray(signal, np.float32)[:length]
    return np.pad(signal, (0, length - signal.shape[0]))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from eventsp.apps.separate import Separator
    from eventsp.audio import AudioFileError, read_audio, write_audio
    from eventsp.model.format import ModelFormatError

    try:
        separator = Separator(args.model)
    except (FileNotFoundError, ValueError, ModelFormatError) as exc:
        raise UsageError(str(exc)) from exc
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {str(args.out)!r} is a file; pass a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    rate = separator.sample_rate
    chunk = rate // 100
    for path in args.files:
        if not path.is_file():
            raise UsageError(f"audio file {str(path)!r} does not exist")
        try:
            signal, file_rate = read_audio(path)
        except AudioFileError as exc:
            raise UsageError(str(exc)) from exc
        n_model = round(signal.shape[0] * rate / file_rate)
        mixture = _resample(signal, file_rate, rate, n_model)
        start = time.perf_counter()
        tracks, state = separator.separate(mixture, chunk)
        took = time.perf_counter() - start
        outputs = []
        for k in range(2):
            track = _resample(tracks[k], rate, file_rate, signal.shape[0])
            target = args.out / f"{path.stem}.s{k + 1}.wav"
            write_audio(target, np.clip(track, -1.0, 1.0), file_rate)
            outputs.append(str(target))
        duration = signal.shape[0] / file_rate
        synops, _ = separator.synops(state)
        record = {
            "file": str(path),
            "outputs": outputs,
            "duration_s": round(duration, 3),
            "sample_rate_hz": int(file_rate),
            "rtf": round(took / max(duration, 1e-9), 4),
            "synops_per_s": round(synops / max(duration, 1e-9), 1),
            "latency_ms": round(1000 * separator.latency_s, 2),
        }
        print(json.dumps(record), flush=True)
    return 0
