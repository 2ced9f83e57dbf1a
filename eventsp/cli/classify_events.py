"""``eventsp classify-events``: classify event recordings on the streaming runtime.

Prints one line per recording. With ``--json`` each line is a JSON object::

    {"file": ..., "label": "5", "confidence": 0.998, "decided_at_us": 90000,
     "early": true, "early_label": "5", "windows": 10}

``label`` and ``confidence`` are the FINAL answer (evidence of every window). ``decided_at_us``
is when the answer was known: the time of the early answer (see the decision rule in
:mod:`eventsp.apps.classify_events`) when it agrees with the final answer, else the end of the
last window used. Times are µs after the recording's first event.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eventsp.cli import UsageError

HELP = "classify event recordings (N-MNIST by default) window by window on the runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING")
    parser.add_argument(
        "--model", type=Path, default=None, help="model file (.esp); default: bundled N-MNIST"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="softmax confidence for an early answer (default %(default)s)",
    )
    parser.add_argument(
        "--min-windows",
        type=int,
        default=3,
        help="windows to see before an early answer (default %(default)s)",
    )


def describe(path: Path, final, early) -> dict:
    """The JSON record of one classification."""
    agreed = early is not None and early.index == final.index
    return {
        "file": str(path),
        "label": final.label,
        "confidence": round(final.confidence, 6),
        "decided_at_us": early.decided_at_us if agreed else final.decided_at_us,
        "early": agreed,
        "early_label": None if early is None else early.label,
        "windows": final.windows,
    }


def run(args: argparse.Namespace) -> int:
    from eventsp.apps.classify_events import DEFAULT_MODEL, EventClassifier, classify_recording

    model = args.model or DEFAULT_MODEL
    if not Path(model).is_file():
        raise UsageError(f"model file {str(model)!r} does not exist; pass --model PATH (.esp)")
    missing = [str(p) for p in args.recordings if not p.is_file()]
    if missing:
        raise UsageError(f"no recording at {', '.join(missing)}; pass existing files")
    try:
        classifier = EventClassifier(
            model, confidence=args.confidence, min_windows=args.min_windows
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    status = 0
    for path in args.recordings:
        try:
            final, early = classify_recording(path, classifier)
        except ValueError as exc:
            record = {"file": str(path), "error": str(exc)}
            status = 1
        else:
            record = describe(path, final, early)
        if args.json:
            print(json.dumps(record), flush=True)
        elif "error" in record:
            print(f"{path}: error: {record['error']}", flush=True)
        else:
            print(
                f"{path}: {record['label']} (confidence {record['confidence']:.3f}, decided at "
                f"{record['decided_at_us'] / 1000:.0f} ms, {record['windows']} windows)",
                flush=True,
            )
    return status
