"""Server configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`eventsp.services.server.create_server` needs.

    host, port: where to listen; port 0 picks a free port (``create_server`` returns it).
    models_dir: folder of ``.esp`` model files; ``None`` serves the bundled defaults.
    token: when set, every call except health checks needs metadata
        ``authorization: Bearer <token>`` (UNAUTHENTICATED otherwise).
    tls_cert, tls_key: PEM files; both or neither. With them the port speaks TLS only.
    max_message_bytes: largest request or response message (RESOURCE_EXHAUSTED beyond).
    max_streams: streaming calls held at once (RESOURCE_EXHAUSTED beyond).
    stream_deadline_s: longest a streaming call may stay open (DEADLINE_EXCEEDED after).
    idle_timeout_s: longest a stream may wait for its next message (DEADLINE_EXCEEDED after).
    max_recording_bytes: largest upload ProcessRecording accepts.
    grace_s: on SIGTERM, how long open streams may run to completion before being cancelled.
    compute_threads: run the models' ``push``/``finish`` on this many threads instead of the
        event loop (0: on the loop, cheapest for small models).
    reuse_port: bind with SO_REUSEPORT, so that several worker processes share one port (the
        kernel spreads connections over them; see ``eventsp serve --workers``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    models_dir: Path | None = None
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 4 * 1024 * 1024
    max_streams: int = 256
    stream_deadline_s: float = 3600.0
    idle_timeout_s: float = 60.0
    max_recording_bytes: int = 64 * 1024 * 1024
    grace_s: float = 10.0
    compute_threads: int = 0
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port is {self.port}; expected 0 (any free port) to 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                f"tls_cert is {self.tls_cert} and tls_key is {self.tls_key}; give both (PEM "
                "certificate and private key) for TLS, or neither for a plaintext port"
            )
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {str(path)!r} is not a file; pass a PEM file")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise ValueError(
                f"models_dir {str(self.models_dir)!r} is not a folder; pass a folder of .esp "
                "files, or none for the bundled defaults"
            )
        if self.token is not None and not self.token.strip():
            raise ValueError("token is empty; pass a non-empty token or none to disable auth")
        for name in ("max_message_bytes", "max_streams", "max_recording_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; expected at least 1")
        for name in ("stream_deadline_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} is {getattr(self, name)}; expected seconds > 0")
        if self.compute_threads < 0:
            raise ValueError(f"compute_threads is {self.compute_threads}; expected 0 or more")
        if self.grace_s < 0:
            raise ValueError(f"grace_s is {self.grace_s}; expected seconds >= 0")
