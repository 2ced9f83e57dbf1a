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


STEPS: list[tuple[str, Callable[[Path], None]]] = [
    ("installation", _step_info),
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
