"""Options and output shared by the streaming commands (``stream-audio``, ``stream-events``).

Importing this module imports no grpc (``eventsp --help`` builds every parser).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default="127.0.0.1:50051",
        help="HOST:PORT of the service (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("EVENTSP_TOKEN"),
        help="token for servers that need one (default: $EVENTSP_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca", type=Path, default=None, help="PEM certificate to trust; enables TLS"
    )
    parser.add_argument("--model", default="", help="model name (default: the server's default)")
    parser.add_argument(
        "--realtime", action="store_true", help="pace the input at real time (default: fast)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line per result")


def connect(args: argparse.Namespace) -> Any:
    """A :class:`eventsp.clients.client.Client` for the command's connection options."""
    from eventsp.clients.client import Client

    return Client(args.server, token=args.token, tls_ca=args.tls_ca)


def emit(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    """Print one result: a JSON line with ``--json``, else a human line."""
    print(json.dumps(record) if args.json else text, flush=True)


def prediction_record(p: Any, latency_ms: float) -> dict[str, Any]:
    return {
        "type": "prediction",
        "label": p.label,
        "index": p.index,
        "score": max(p.scores) if p.scores else 0.0,
        "time_s": round(p.time_s, 6),
        "final": p.final,
        "latency_ms": round(latency_ms, 3),
    }


def emit_prediction(args: argparse.Namespace, p: Any, latency_ms: float) -> None:
    record = prediction_record(p, latency_ms)
    tag = "final" if p.final else "so far"
    emit(args, record, f"{p.time_s:8.3f} s  {tag:6s} {p.label:12s} {record['score']:.3f}")


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
