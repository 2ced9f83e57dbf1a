"""The ``eventsp.v1.StreamingService`` servicer: plumbing between gRPC and the tasks.

Each streaming call:

1. counts itself against ``max_streams`` (RESOURCE_EXHAUSTED at the limit);
2. reads each request only when it is ready for it (``_Stream``): nothing is read ahead, so
   a request it has not taken stays in gRPC's HTTP/2 flow-control window and a slow stream
   pushes back on its client (backpressure);
3. picks the model from the first request, then creates the stream's state with
   ``task.open_stream()``; the state lives in this call's frame only;
4. for each request: validate and convert (``convert``), ``task.push``, answer with the
   chunk's latency (from the moment the handler took the request to its response);
5. in ``finally`` (normal end, error, client gone, server stopping): ``task.close(state)``,
   stop the stream's deadline timer, uncount the stream.

``push``/``finish`` run on the event loop, or with ``compute_threads > 0`` on a thread pool
(the runtime's kernels release the GIL, so heavy models use more cores and the loop stays
responsive; each stream still runs one chunk at a time, in order).

A stream ends with DEADLINE_EXCEEDED after ``stream_deadline_s`` in total or
``idle_timeout_s`` without a message. Errors are mapped by :func:`grpc_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from eventsp.events.contract import init_order
from eventsp.services import convert
from eventsp.services.config import ServerConfig
from eventsp.services.errors import DeadlineExceededError, InvalidArgumentError, grpc_errors
from eventsp.services.metrics import Metrics
from eventsp.services.recordings import decode_recording, run_recording
from eventsp.services.registry import ModelRegistry
from eventsp.services.tasks import StepResult, StreamingTask
from eventsp.v1 import models_pb2, service_pb2, service_pb2_grpc

log = logging.getLogger("eventsp.services")

# asyncio may run a timer up to its clock resolution early.
_TIMER_SLACK_S = 1e-3


class _Stream:
    """One call's requests, read one at a time when the handler asks for the next.

    Nothing is read ahead: a request the handler has not asked for stays in gRPC's HTTP/2
    flow-control window, so a slow stream pushes back on its client (backpressure). The
    deadlines cost nothing per request: one timer per stream wakes at the earliest moment a
    deadline could pass, re-arms itself while the stream is busy or fresh, and cancels the
    handler only while it waits for a request (``next`` turns that into DEADLINE_EXCEEDED).
    """

    def __init__(self, read: Callable[[], Awaitable[Any]], config: ServerConfig) -> None:
        self._read = read
        self._idle_s = config.idle_timeout_s
        self._limit_s = config.stream_deadline_s
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._deadline = self._loop.time() + self._limit_s
        self._waiting_since: float | None = None  # loop time the handler began waiting
        self._expired: str | None = None
        self._timer = self._loop.call_at(
            min(self._deadline, self._loop.time() + self._idle_s), self._check
        )

    def _check(self) -> None:
        now = self._loop.time()
        waiting = self._waiting_since
        if waiting is None:  # busy: only a wait can time out; look again later
            due = min(self._deadline, now + self._idle_s) if now < self._deadline else now + 1
        else:
            idle_due = waiting + self._idle_s
            due = min(self._deadline, idle_due)
            if now >= due - _TIMER_SLACK_S and self._task is not None:
                self._expired = (
                    self._deadline_message() if self._deadline <= idle_due else self._idle_message()
                )
                self._task.cancel()
                return
        self._timer = self._loop.call_at(due, self._check)

    async def next(self) -> tuple[Any, float] | None:
        """The next (request, receipt time), or ``None`` at the end of the client's stream."""
        if self._loop.time() >= self._deadline:
            raise DeadlineExceededError(self._deadline_message())
        self._waiting_since = self._loop.time()
        try:
            request = await self._read()
        except asyncio.CancelledError:
            if self._expired is None or self._task is None or self._task.uncancel() > 0:
                raise  # the call was cancelled (client gone, server stopping)
            raise DeadlineExceededError(self._expired) from None
        finally:
            self._waiting_since = None
        if request is grpc.aio.EOF:
            return None
        return request, time.perf_counter()

    def _deadline_message(self) -> str:
        return (
            f"the stream reached the server's limit of {self._limit_s} s "
            "(stream_deadline_s); open a new stream to continue"
        )

    def _idle_message(self) -> str:
        return (
            f"no message for {self._idle_s} s (idle_timeout_s); send chunks more often or "
            "close the stream"
        )

    def close(self) -> None:
        self._timer.cancel()


class StreamingServicer(service_pb2_grpc.StreamingServiceServicer):
    def __init__(self, registry: ModelRegistry, metrics: Metrics, config: ServerConfig) -> None:
        self.registry = registry
        self.metrics = metrics
        self.config = config
        self._pool = (
            ThreadPoolExecutor(config.compute_threads, thread_name_prefix="eventsp-compute")
            if config.compute_threads
            else None
        )

    async def _run(self, step: Any, state: Any, *args: Any) -> tuple[StepResult, Any]:
        """``step(state, *args)`` on the event loop, or on the compute pool when configured."""
        if self._pool is None:
            return step(state, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, step, state, *args)

    def shutdown(self) -> None:
        """Release the compute threads (after the server has stopped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def _open(self, context: Any) -> AsyncIterator[_Stream]:
        self.metrics.open_stream()
        stream = _Stream(context.read, self.config)
        log.info("stream opened", extra={"event": "stream_open", "peer": context.peer()})
        try:
            yield stream
        finally:
            stream.close()
            self.metrics.close_stream()
            log.info("stream closed", extra={"event": "stream_close", "peer": context.peer()})

    async def _first(self, stream: _Stream, rpc: str) -> tuple[Any, float]:
        item = await stream.next()
        if item is None:
            raise InvalidArgumentError(
                f"the {rpc} stream ended before its first message; send at least one request"
            )
        return item

    def _record(self, result: StepResult, received: float) -> float:
        latency_ms = (time.perf_counter() - received) * 1e3
        self.metrics.record_chunk(latency_ms, result.synops, result.dense_ops)
        return latency_ms

    @grpc_errors
    async def StreamAudio(self, request_iterator: Any, context: Any) -> None:  # noqa: N802 (gRPC names)
        async with self._open(context) as stream:
            first, received = await self._first(stream, "StreamAudio")
            task = self.registry.pick(first.model, first.task, kind="audio")
            state = task.open_stream()
            on_loop = self._pool is None
            try:
                sequence, samples_total = 0, 0
                request: Any = first
                while True:
                    samples = convert.audio_samples(request, task.info, first)
                    if on_loop:
                        result, state = task.push(state, samples)
                    else:
                        result, state = await self._run(task.push, state, samples)
                    samples_total += samples.size
                    self.metrics.samples_total += samples.size
                    latency = self._record(result, received)
                    await context.write(
                        convert.audio_response(sequence, result, task.info, latency, samples_total)
                    )
                    sequence += 1
                    item = await stream.next()
                    if item is None:
                        break
                    request, received = item
                received = time.perf_counter()
                result, state = await self._run(task.finish, state)
                if result.keywords or result.predictions or result.tracks is not None:
                    latency = self._record(result, received)
                    await context.write(
                        convert.audio_response(sequence, result, task.info, latency, samples_total)
                    )
            finally:
                task.close(state)

    @grpc_errors
    async def StreamEvents(self, request_iterator: Any, context: Any) -> None:  # noqa: N802 (gRPC names)
        async with self._open(context) as stream:
            first, received = await self._first(stream, "StreamEvents")
            task = self.registry.pick(first.model, "classify-events", kind="events")
            state = task.open_stream()
            on_loop = self._pool is None
            try:
                sequence, order = 0, init_order()
                request: Any = first
                while True:
                    events, order = convert.event_records(request, task.info, order)
                    if on_loop:
                        result, state = task.push(state, events)
                    else:
                        result, state = await self._run(task.push, state, events)
                    total, dropped = int(order.passed), int(order.late)
                    self.metrics.events_total += events.size
                    latency = self._record(result, received)
                    await context.write(
                        convert.events_response(sequence, result, latency, total, dropped)
                    )
                    sequence += 1
                    item = await stream.next()
                    if item is None:
                        break
                    request, received = item
                received = time.perf_counter()
                result, state = await self._run(task.finish, state)
                latency = self._record(result, received)
                await context.write(
                    convert.events_response(sequence, result, latency, total, dropped)
                )
            finally:
                task.close(state)

    @grpc_errors
    async def ProcessRecording(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        async with self._open(context) as stream:
            first, _ = await self._first(stream, "ProcessRecording")
            buffer = io.BytesIO()
            item: Any = (first, 0.0)
            while item is not None:
                buffer.write(item[0].data)
                if buffer.tell() > self.config.max_recording_bytes:
                    raise InvalidArgumentError(
                        f"the recording exceeds {self.config.max_recording_bytes} bytes "
                        "(max_recording_bytes); stream it with StreamAudio/StreamEvents instead"
                    )
                item = await stream.next()
            data = buffer.getvalue()
            recording = await asyncio.to_thread(
                decode_recording, data, first.format, first.filename
            )
            task = self.registry.pick(first.model, "", kind=recording.kind)
            # Off the event loop: a long recording must not stall the live streams.
            results, inputs = await asyncio.to_thread(run_recording, task, recording)
            self.metrics.synops_total += sum(r.synops for r in results)
            self.metrics.dense_ops_total += sum(r.dense_ops for r in results)
            if recording.kind == "audio":
                self.metrics.samples_total += inputs
            else:
                self.metrics.events_total += inputs
            return convert.recording_response(task.info.name, results, inputs, recording.duration_s)

    @grpc_errors
    async def ListModels(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        return models_pb2.ListModelsResponse(
            models=[convert.model_info(task.info) for task in self.registry.tasks()]
        )

    @grpc_errors
    async def GetModel(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        task: StreamingTask = self.registry.get(request.name)
        return models_pb2.GetModelResponse(model=convert.model_info(task.info))

    @grpc_errors
    async def GetMetrics(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        m = self.metrics
        pct = m.latency_percentiles_ms()
        return service_pb2.GetMetricsResponse(
            open_streams=m.open_streams,
            streams_total=m.streams_total,
            streams_refused=m.streams_refused,
            chunks_total=m.chunks_total,
            latency_p50_ms=pct["p50"],
            latency_p90_ms=pct["p90"],
            latency_p99_ms=pct["p99"],
            latency_max_ms=pct["max"],
            synops_total=m.synops_total,
            dense_ops_total=m.dense_ops_total,
            samples_total=m.samples_total,
            events_total=m.events_total,
        )
