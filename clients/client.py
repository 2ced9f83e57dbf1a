"""A small Python client for the eventsp service (blocking; one channel per :class:`Client`).

>>> with Client("127.0.0.1:50051") as client:                       # doctest: +SKIP
...     for response in client.stream_audio(chunks, sample_rate_hz=16000, task="kws"):
...         print(response.keywords, response.latency_ms)

Streaming methods take an iterable of numpy chunks (audio samples or event packets) and yield
the server's responses as they arrive, while the chunks are still being sent. Pass
``realtime=True`` to pace the chunks at the speed they would arrive live. Errors surface as
:class:`ServiceCallError` with the status code name and the server's message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventsp.clients.wire import encode_pcm, pack_events
from eventsp.v1 import (
    audio_pb2,
    events_pb2,
    models_pb2,
    recording_pb2,
    service_pb2,
    service_pb2_grpc,
)

RECORDING_CHUNK_BYTES = 256 * 1024


class ServiceCallError(Exception):
    """A call failed: ``code`` is the gRPC status name (``"INVALID_ARGUMENT"``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _raise(error: grpc.RpcError) -> None:
    code = error.code().name if hasattr(error, "code") else "UNKNOWN"
    details = error.details() if hasattr(error, "details") else str(error)
    raise ServiceCallError(code, details or "") from None


class Client:
    """Connect to ``address`` (``host:port``), optionally with a token and TLS root cert.

    ``tls_ca``: PEM file of the CA (or self-signed certificate) to trust; ``server_name``
    overrides the name checked against the certificate.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        server_name: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        timeout_s: float | None = None,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(Path(tls_ca).read_bytes())
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout_s
        self.stub = service_pb2_grpc.StreamingServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            _raise(error)

    def _stream(self, method: Any, requests: Iterator[Any]) -> Iterator[Any]:
        call = method(requests, metadata=self._metadata, timeout=self._timeout)
        try:
            yield from call
        except grpc.RpcError as error:
            _raise(error)
        finally:
            call.cancel()  # no-op after a normal end; stops the call if the caller breaks off

    # Unary calls --------------------------------------------------------------------------

    def health(self, service: str = "") -> str:
        """``"SERVING"``, ``"NOT_SERVING"``, ... for ``service`` ("" is the whole server)."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Block until the server reports SERVING (models loaded and warmed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except ServiceCallError as error:
                if error.code not in ("UNAVAILABLE", "NOT_FOUND"):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not SERVING within {timeout_s} s")
            time.sleep(0.05)

    def list_models(self) -> list[models_pb2.ModelInfo]:
        return list(self._call(self.stub.ListModels, models_pb2.ListModelsRequest()).models)

    def get_model(self, name: str) -> models_pb2.ModelInfo:
        return self._call(self.stub.GetModel, models_pb2.GetModelRequest(name=name)).model

    def metrics(self) -> service_pb2.GetMetricsResponse:
        return self._call(self.stub.GetMetrics, service_pb2.GetMetricsRequest())

    # Streaming calls ----------------------------------------------------------------------

    def stream_audio(
        self,
        chunks: Iterable[np.ndarray],
        *,
        sample_rate_hz: int,
        model: str = "",
        task: str = "",
        sample_format: str = "PCM_S16LE",
        realtime: bool = False,
    ) -> Iterator[audio_pb2.StreamAudioResponse]:
        """Send mono audio chunks; yield one response per chunk (plus a final one, if any)."""
        fmt = audio_pb2.SampleFormat.Value(sample_format)

        def requests() -> Iterator[audio_pb2.StreamAudioRequest]:
            start = time.monotonic()
            sent = 0
            for chunk in chunks:
                yield audio_pb2.StreamAudioRequest(
                    model=model,
                    task=task,
                    sample_rate_hz=sample_rate_hz,
                    sample_format=fmt,
                    pcm=encode_pcm(chunk, sample_format),
                )
                sent += len(chunk)
                if realtime:
                    time.sleep(max(0.0, start + sent / sample_rate_hz - time.monotonic()))

        return self._stream(self.stub.StreamAudio, requests())

    def stream_events(
        self,
        packets: Iterable[np.ndarray],
        *,
        sensor_size: tuple[int, int, int],
        model: str = "",
        realtime: bool = False,
    ) -> Iterator[events_pb2.StreamEventsResponse]:
        """Send event packets (structured x, y, t, p); yield one response per packet + a final.

        With ``realtime`` each packet is sent when the recording's clock reaches its last event.
        """

        def requests() -> Iterator[events_pb2.StreamEventsRequest]:
            start, t0 = time.monotonic(), None
            for packet in packets:
                if realtime and len(packet):
                    t0 = int(packet["t"][0]) if t0 is None else t0
                    due = start + (int(packet["t"][-1]) - t0) * 1e-6
                    time.sleep(max(0.0, due - time.monotonic()))
                yield events_pb2.StreamEventsRequest(
                    model=model,
                    sensor_size=list(sensor_size),
                    layout=events_pb2.XYTP_PACKED_V1,
                    events=pack_events(packet),
                )

        return self._stream(self.stub.StreamEvents, requests())

    def process_recording(
        self, data: bytes, *, filename: str = "", fmt: str = "", model: str = ""
    ) -> recording_pb2.ProcessRecordingResponse:
        """Upload a recording's bytes in chunks; its predictions and keyword events."""

        def requests() -> Iterator[recording_pb2.RecordingChunk]:
            for i in range(0, max(len(data), 1), RECORDING_CHUNK_BYTES):
                yield recording_pb2.RecordingChunk(
                    model=model if i == 0 else "",
                    format=fmt if i == 0 else "",
                    filename=filename if i == 0 else "",
                    data=data[i : i + RECORDING_CHUNK_BYTES],
                )

        return self._call(self.stub.ProcessRecording, requests())

    def process_file(self, path: Path, *, model: str = "", fmt: str = "") -> Any:
        path = Path(path)
        return self.process_recording(path.read_bytes(), filename=path.name, fmt=fmt, model=model)
