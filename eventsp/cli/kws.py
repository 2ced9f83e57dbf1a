"""``eventsp kws FILE...``: spot keywords in audio files with the hybrid-spiking LMU.

Each file (WAV, FLAC, any sample rate: resampled to the model's) is streamed through the
log-mel front-end and the runtime network in 100 ms chunks, as a live stream would be
(``eventsp.apps.kws``). Prints one line per file: ``FILE label score`` and its keyword events,
or with ``--json`` one JSON object per line with ``file``, ``label``, ``score``, ``events``
(``keyword``, ``start_s``, ``end_s``, ``score``), ``duration_s`` and ``synops_per_s`` (the
runtime's effective synaptic operations per second of audio).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eventsp.cli import UsageError

HELP = "spot keywords in audio files (default: the bundled Speech Commands LMU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="WAV/FLAC files")
    parser.add_argument("--model", type=Path, default=None, help="a kws .esp model")
    parser.add_argument("--json", action="store_true", help="one JSON line per file")
    parser.add_argument("--threshold", type=float, default=0.6, help="event threshold")


def run(args: argparse.Namespace) -> int:
    from eventsp.apps.kws import KeywordSpotter, KWSConfig
    from eventsp.audio import AudioFileError, read_audio
    from eventsp.model.format import ModelFormatError

    try:
        config = KWSConfig(threshold=args.threshold, release=min(0.4, args.threshold))
        spotter = KeywordSpotter(args.model, config)
    except (FileNotFoundError, ValueError, ModelFormatError) as exc:
        raise UsageError(str(exc)) from exc
    for path in args.files:
        if not path.is_file():
            raise UsageError(f"audio file {str(path)!r} does not exist")
        try:
            signal, _ = read_audio(path, spotter.sample_rate)
        except AudioFileError as exc:
            raise UsageError(str(exc)) from exc
        result = spotter.classify(signal)
        duration = len(signal) / spotter.sample_rate
        synops = result.synops
        record = {
            "file": str(path),
            "label": result.label,
            "score": round(result.score, 4),
            "events": [e.to_dict() for e in result.events],
            "duration_s": round(duration, 3),
            "synops_per_s": round(synops / max(duration, 1e-9), 1),
        }
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            events = " ".join(
                f"{e.keyword}@{e.start_s:.2f}-{e.end_s:.2f}s({e.score:.2f})" for e in result.events
            )
            print(f"{path} {result.label} {result.score:.3f} {events}".rstrip(), flush=True)
    return 0
