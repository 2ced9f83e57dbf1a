"""The ``eventsp`` command line.

Each sub-command lives in its own module under ``eventsp.cli`` and defines:

- ``HELP``: one line for ``eventsp --help``;
- ``add_arguments(parser)``: its options;
- ``run(args) -> int``: the exit status.

Modules import their heavy dependencies (torch, grpc, sounddevice) inside ``run``, so that
``eventsp --help`` stays instant and works with only the core dependencies installed.
To add a command, write its module and add its name to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from eventsp import __version__

# Sub-command name -> module. Order is the order in `eventsp --help`.
COMMANDS: dict[str, str] = {
    "demo": "eventsp.cli.demo",
    "info": "eventsp.cli.info",
    "classify-events": "eventsp.cli.classify_events",
    "classify-images": "eventsp.cli.classify_images",
    "kws": "eventsp.cli.kws",
    "separate": "eventsp.cli.separate",
    "train-ptl": "eventsp.cli.train_ptl",
    "inspect": "eventsp.cli.inspect",
    "serve": "eventsp.cli.serve",
    "stream-audio": "eventsp.cli.stream_audio",
    "stream-events": "eventsp.cli.stream_events",
}


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback, exit status 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Measures sub-command names at the indent they are printed at (argparse counts them two
    columns short, which wraps names longer than nine characters, like ``stream-events``)."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        names = [len(a.dest) for a in getattr(action, "_choices_actions", ())]
        if names and action.help is not argparse.SUPPRESS:
            indent = self._current_indent + self._indent_increment
            self._action_max_length = max(self._action_max_length, max(names) + indent)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventsp",
        description="Streaming spiking neural networks for event cameras and audio.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"eventsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except UsageError as exc:
        print(f"eventsp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
