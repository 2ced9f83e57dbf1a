"""Stream lifetimes: clients vanishing, graceful shutdown, backpressure, structured logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

from eventsp.clients.client import Client
from eventsp.services.config import ServerConfig
from eventsp.services.errors import DeadlineExceededError
from eventsp.services.logs import JsonFormatter, configure_logging
from eventsp.services.servicer import _Stream

VANISHING_CLIENT = """
import sys, time
import numpy as np
from eventsp.clients.client import Client

def chunks():
    while True:
        yield np.zeros(160, np.float32)
        time.sleep(0.01)

client = Client(sys.argv[1])
for response in client.stream_audio(chunks(), sample_rate_hz=16000):
    if response.sequence == 3:
        print("streaming", flush=True)
"""


def test_client_cancelling_mid_stream_frees_its_state(served, audio_task, wait_until):
    running, client = served

    def chunks():
        while True:
            yield np.zeros(160, np.float32)

    responses = client.stream_audio(chunks(), sample_rate_hz=16000)
    for response in responses:
        if response.sequence == 5:
            break
    assert running.server.metrics.open_streams == 1
    assert audio_task.live == 1
    responses.close()  # cancels the call
    assert wait_until(lambda: running.server.metrics.open_streams == 0)
    assert wait_until(lambda: audio_task.live == 0)


def test_killed_client_process_frees_its_state(served, audio_task, wait_until):
    running, client = served
    process = subprocess.Popen(
        [sys.executable, "-c", VANISHING_CLIENT, running.address],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "streaming"
        assert running.server.metrics.open_streams == 1
        assert audio_task.live == 1
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()
    assert wait_until(lambda: running.server.metrics.open_streams == 0)
    assert wait_until(lambda: audio_task.live == 0)
    assert client.metrics().open_streams == 0


def test_shutdown_drains_open_streams_then_cancels_the_rest(
    start_server, audio_task, wait_until, held_stream
):
    running = start_server(tasks=[audio_task])
    with Client(running.address) as client:
        client.wait_serving()
        finishing, lingering = held_stream(client), held_stream(client)
        assert running.server.metrics.open_streams == 2
        stopping = asyncio.run_coroutine_threadsafe(running.server.stop(1.5), running.loop)
        assert wait_until(lambda: not running.server.metrics.accepting)
        # A stream that ends within the grace period gets every answer.
        finishing.finish()
        assert finishing.error is None
        assert len(finishing.responses) == 3
        assert [k.label for k in finishing.responses[1].keywords] == ["loud"]
        # New streams are refused while draining.
        with (
            Client(running.address, timeout_s=5) as late,
            pytest.raises(Exception, match="UNAVAILABLE"),
        ):
            list(late.stream_audio([np.zeros(10)], sample_rate_hz=16000))
        stopping.result(10)
        # The stream still open after the grace period was cancelled and its state freed.
        lingering.thread.join(5)
        assert lingering.error is not None
        assert lingering.error.code in ("UNAVAILABLE", "CANCELLED")
        lingering.finish()
    running.stopped = True
    running.loop.call_soon_threadsafe(running.loop.stop)
    running.thread.join(5)
    running.loop.close()
    assert running.server.metrics.open_streams == 0
    assert audio_task.live == 0


def test_stream_reads_only_when_asked_so_a_slow_stream_pushes_back():
    pulled = 0

    async def read():
        nonlocal pulled
        pulled += 1
        return pulled - 1 if pulled <= 10 else grpc.aio.EOF

    async def scenario():
        stream = _Stream(read, ServerConfig())
        await asyncio.sleep(0.05)
        held_back = pulled
        got = [(await stream.next())[0] for _ in range(10)]
        after_ten = pulled
        end = await stream.next()
        stream.close()
        return held_back, got, after_ten, end

    held_back, got, after_ten, end = asyncio.run(scenario())
    # Nothing is read ahead: unread requests stay in gRPC's flow-control window.
    assert held_back == 0
    assert got == list(range(10))
    assert after_ten == 10
    assert end is None


def test_stream_deadlines_cancel_only_a_wait_for_a_request():
    async def never():
        await asyncio.sleep(3600)

    async def busy_then_wait(stream):
        # Busy (not waiting) for longer than idle_timeout_s: that is not idle.
        await asyncio.sleep(0.25)
        with pytest.raises(DeadlineExceededError, match="idle_timeout_s"):
            await stream.next()
        return time.monotonic()

    async def scenario():
        stream = _Stream(never, ServerConfig(idle_timeout_s=0.1))
        start = time.monotonic()
        ended = await busy_then_wait(stream)
        stream.close()
        total = _Stream(never, ServerConfig(stream_deadline_s=0.15, idle_timeout_s=10))
        with pytest.raises(DeadlineExceededError, match="stream_deadline_s"):
            await total.next()
        total.close()
        return ended - start, asyncio.current_task().cancelling()

    waited_s, cancelling = asyncio.run(scenario())
    assert 0.3 <= waited_s < 2.0  # 0.25 s busy, then 0.1 s idle
    assert cancelling == 0  # the deadline's cancellation was consumed, not leaked


def test_logs_are_json_lines_with_fields_and_tracebacks():
    stream = io.StringIO()
    logger = configure_logging("info", stream)
    try:
        logger.info("stream opened", extra={"event": "stream_open", "peer": "ipv4:1.2.3.4:5"})
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            logger.error("unexpected error", exc_info=exc, extra={"ref": "abc"})
    finally:
        logger.handlers.clear()
        logger.propagate = True
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "stream_open"
    assert first["peer"] == "ipv4:1.2.3.4:5"
    assert first["level"] == "info"
    assert first["msg"] == "stream opened"
    assert second["ref"] == "abc"
    assert "RuntimeError: boom" in second["exc"]
    record = logging.makeLogRecord({"msg": "x", "created": time.time()})
    assert json.loads(JsonFormatter().format(record))["msg"] == "x"
