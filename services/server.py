"""Create, start, stop and run the gRPC server.

``server, port = await create_server(config)`` builds everything (models loaded, port bound,
health and reflection registered) without serving; ``await server.start()`` starts serving,
warms every model, and only then reports SERVING on the standard health service.
``await server.stop(grace_s)`` refuses new streams, reports NOT_SERVING, lets open streams run
to completion for up to ``grace_s`` seconds, then cancels the rest (their state is released by
their handlers). :func:`serve` runs a server until SIGTERM or SIGINT and stops it that way;
:func:`run` runs ``serve`` on a new event loop (uvloop's when installed).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from eventsp.services.auth import TokenAuthInterceptor
from eventsp.services.config import ServerConfig
from eventsp.services.metrics import Metrics
from eventsp.services.registry import ModelRegistry
from eventsp.services.servicer import StreamingServicer
from eventsp.services.tasks import StreamingTask
from eventsp.v1 import service_pb2, service_pb2_grpc

T = TypeVar("T")

log = logging.getLogger("eventsp.services")

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["StreamingService"].full_name


class Server:
    """A created server: the grpc.aio server, its models, metrics and health state."""

    def __init__(
        self,
        grpc_server: grpc.aio.Server,
        registry: ModelRegistry,
        metrics: Metrics,
        health: grpc_health.aio.HealthServicer,
        config: ServerConfig,
        address: str,
        servicer: StreamingServicer,
    ) -> None:
        self.grpc_server = grpc_server
        self.servicer = servicer
        self.registry = registry
        self.metrics = metrics
        self.health = health
        self.config = config
        self.address = address

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def start(self) -> None:
        """Serve (health NOT_SERVING), warm every model, then report SERVING."""
        await self.grpc_server.start()
        await asyncio.to_thread(self.registry.warm)
        # Move the loaded models and compiled code out of the garbage collector's way: they
        # live as long as the server, and scanning them would pause every stream.
        gc.collect()
        gc.freeze()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "event": "serving",
                "address": self.address,
                "models": [t.info.name for t in self.registry.tasks()],
                "tls": self.config.tls_cert is not None,
                "auth": self.config.token is not None,
                "loop": type(asyncio.get_running_loop()).__module__,
            },
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new streams, drain open ones for ``grace_s`` (config default), then stop."""
        grace = self.config.grace_s if grace_s is None else grace_s
        self.metrics.accepting = False
        await self.health.enter_graceful_shutdown()
        log.info(
            "stopping",
            extra={
                "event": "stopping",
                "open_streams": self.metrics.open_streams,
                "grace_s": grace,
            },
        )
        await self.grpc_server.stop(grace)
        await asyncio.to_thread(self.servicer.shutdown)
        log.info("stopped", extra={"event": "stopped", "open_streams": self.metrics.open_streams})

    async def wait_for_termination(self) -> None:
        await self.grpc_server.wait_for_termination()


async def create_server(
    config: ServerConfig, tasks: Sequence[StreamingTask] | None = None
) -> tuple[Server, int]:
    """Build a server for ``config``; returns it (not started) and the port it bound.

    ``tasks`` serves these tasks instead of loading ``config.models_dir`` / the bundled
    defaults (for embedding the service in another program).
    """
    registry = (
        ModelRegistry(tasks) if tasks is not None else ModelRegistry.from_dir(config.models_dir)
    )
    metrics = Metrics(max_streams=config.max_streams)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", int(config.reuse_port)),
        # Ping idle connections so that a client that vanished without closing its socket
        # (power loss, network cut) is noticed and its streams are cancelled and freed.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    interceptors = [TokenAuthInterceptor(config.token)] if config.token else []
    grpc_server = grpc.aio.server(interceptors=interceptors, options=options)
    servicer = StreamingServicer(registry, metrics, config)
    service_pb2_grpc.add_StreamingServiceServicer_to_server(servicer, grpc_server)
    health = grpc_health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        grpc_server,
    )
    bind = f"{config.host}:{config.port}"
    try:
        if config.tls_cert is not None and config.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
            )
            port = grpc_server.add_secure_port(bind, credentials)
        else:
            port = grpc_server.add_insecure_port(bind)
    except RuntimeError:  # grpc reports a failed bind as RuntimeError
        port = 0
    if port == 0:
        raise OSError(
            f"could not bind {bind}; the port is in use or the address is not local; pass "
            "--port 0 for a free port"
        )
    server = Server(
        grpc_server, registry, metrics, health, config, f"{config.host}:{port}", servicer
    )
    return server, port


def run(config: ServerConfig, on_listening: Callable[[str], None] | None = None) -> None:
    """Run :func:`serve` to the end on a new event loop: uvloop's when it is installed.

    uvloop (in the ``serve`` extra) makes the server's per-message work cheaper: about a fifth
    less CPU per streamed chunk on the dev machine (bench/README.md). Without it, asyncio's
    own loop serves the same way.
    """
    run_on_loop(serve(config, on_listening))


def run_on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` on uvloop's loop when it is installed (the loop the server
    runs on; load generators use it too)."""
    try:
        import uvloop
    except ModuleNotFoundError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


async def serve(config: ServerConfig, on_listening: Callable[[str], None] | None = None) -> None:
    """Run a server until SIGTERM/SIGINT, then stop it gracefully (``config.grace_s``)."""
    server, _ = await create_server(config)
    if on_listening is not None:
        on_listening(server.address)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start()
    await stopping.wait()
    await server.stop()
