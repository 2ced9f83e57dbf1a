"""``eventsp serve``: run the gRPC service until SIGTERM or Ctrl-C.

The first line printed is ``listening on HOST:PORT`` (with the real port when ``--port 0``
picks a free one); logs follow on stderr as JSON lines. Health reports SERVING once every
model is loaded and warmed. On SIGTERM the server stops taking streams and lets open ones
finish for ``--grace`` seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
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
    parser.add_argument(
        "--compute-threads",
        type=int,
        default=0,
        help="run models on this many threads instead of the event loop (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT; connections are spread over "
        "them, metrics are per process; default: %(default)s)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT to ``port`` (0: a free one), held while workers start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"could not bind {host}:{port} ({exc}); pass --port 0 for a free port"
        ) from None
    return sock


def _run_workers(args: argparse.Namespace) -> int:
    """Start ``--workers`` server processes on one port; forward SIGTERM/SIGINT; wait."""
    import signal
    import subprocess
    import sys

    sock = _reserve_port(args.host, args.port)
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "eventsp", "serve", *_worker_args(args, port)]
    workers = []
    try:
        for _ in range(args.workers):
            workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        for worker in workers:
            line = worker.stdout.readline().strip()
            if not line.startswith("listening on "):
                raise UsageError(f"a worker failed to start (it printed {line!r}); see its log")
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    finally:
        sock.close()
    print(f"listening on {args.host}:{port}", flush=True)

    def forward(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [worker.wait() for worker in workers]
    return max(codes)


def _worker_args(args: argparse.Namespace, port: int) -> list[str]:
    out = ["--host", args.host, "--port", str(port), "--reuse-port", "--workers", "1"]
    out += ["--max-streams", str(args.max_streams), "--grace", str(args.grace)]
    out += ["--compute-threads", str(args.compute_threads)]
    out += ["--max-message-bytes", str(args.max_message_bytes), "--log-level", args.log_level]
    for flag, value in (
        ("--models", args.models),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError(f"--workers is {args.workers}; expected 1 or more processes")
    if args.workers > 1:
        return _run_workers(args)

    from eventsp.services.config import ServerConfig
    from eventsp.services.logs import configure_logging
    from eventsp.services.server import run as run_server

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
            reuse_port=args.reuse_port,
            compute_threads=args.compute_threads,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    configure_logging(args.log_level)

    def listening(address: str) -> None:
        print(f"listening on {address}", flush=True)

    try:
        run_server(config, on_listening=listening)
    except OSError as exc:
        raise UsageError(str(exc)) from None
    return 0
