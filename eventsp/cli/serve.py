"""``eventsp serve``: run the gRPC service until SIGTERM or Ctrl-C.

The first line printed is ``listening on HOST:PORT`` (with the real port when ``--port 0``
picks a free one); logs follow on stderr as JSON lines. Health reports SERVING once every
model is loaded and warmed. On SIGTERM the server stops taking streams and lets open ones
finish for ``--grace`` seconds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from eventsp.cli import UsageError

HELP = "run the gRPC streaming service (first line: `listening on HOST:PORT`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", type=Path, default=None, help="folder of .esp models (default: bundled)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=50051, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("EVENTSP_TOKEN"),
        help="require 'authorization: Bearer TOKEN' metadata (default: $EVENTSP_TOKEN)",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate for TLS")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key for TLS")
    parser.add_argument(
        "--max-streams", type=int, default=256, help="streams held at once (default: %(default)s)"
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="largest message accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds to drain streams on SIGTERM"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def run(args: argparse.Namespace) -> int:
    import asyncio

    from eventsp.services.config import ServerConfig
    from eventsp.services.logs import configure_logging
    from eventsp.services.server import serve

    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            models_dir=args.models,
            token=args.token,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            max_streams=args.max_streams,
            max_message_bytes=args.max_message_bytes,
            grace_s=args.grace,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    configure_logging(args.log_level)

    def listening(address: str) -> None:
        print(f"listening on {address}", flush=True)

    try:
        asyncio.run(serve(config, on_listening=listening))
    except OSError as exc:
        raise UsageError(str(exc)) from None
    return 0
