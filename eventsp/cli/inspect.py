"""``eventsp inspect``: format, sensor size, event count, duration and rate of recordings.

Each file is streamed in bounded packets (constant memory, any size). A file that cannot be
read is reported on stderr and the others are still inspected; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eventsp.cli import UsageError

HELP = "print format, sensor size, event count, duration and event rate of event recordings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    parser.add_argument(
        "--sensor-size",
        type=int,
        nargs=3,
        metavar=("W", "H", "P"),
        help="override the sensor size the file states or implies",
    )


def inspect_file(path: Path, sensor_size: tuple[int, int, int] | None = None) -> dict:
    """Stream ``path`` once and summarise it (see :func:`eventsp.events.open_recording`)."""
    from eventsp.events import open_recording

    recording = open_recording(path, sensor_size=sensor_size)
    count = 0
    start = end = None
    for packet in recording.packets():
        t = packet["t"]
        count += int(t.size)
        lo, hi = int(t.min()), int(t.max())
        start = lo if start is None else min(start, lo)
        end = hi if end is None else max(end, hi)
    duration = (end - start) if count else 0
    return {
        "file": str(path),
        "format": recording.format,
        "sensor_size": list(recording.sensor_size),
        "events": count,
        "start_us": start,
        "end_us": end,
        "duration_us": duration,
        "rate_hz": count / (duration * 1e-6) if duration > 0 else None,
    }


def _line(info: dict) -> str:
    W, H, P = info["sensor_size"]
    rate = info["rate_hz"]
    shown = f"{rate / 1e6:.3f} M events/s" if rate is not None else "- events/s"
    return (
        f"{info['file']}: {info['format']}, {W}x{H}x{P}, {info['events']} events, "
        f"{info['duration_us'] / 1e6:.6f} s, {shown}"
    )


def run(args: argparse.Namespace) -> int:
    from eventsp.events import EventContractError, EventFormatError

    sensor_size = tuple(args.sensor_size) if args.sensor_size else None
    failed = 0
    for path in args.recordings:
        try:
            info = inspect_file(path, sensor_size)  # type: ignore[arg-type]
        except EventContractError as exc:
            raise UsageError(str(exc)) from exc
        except (EventFormatError, FileNotFoundError, ImportError) as exc:
            print(f"eventsp inspect: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(info) if args.json else _line(info), flush=True)
    return 1 if failed else 0
