"""Load benchmark of the gRPC service: concurrent real-time audio streams and event ingest.

Runs ``eventsp serve`` in its own process (as in production) and drives it from this process
with ``grpc.aio``:

1. **Real-time audio streams.** For each N in ``--streams``, N StreamAudio calls each send
   ``--chunk-ms`` of PCM (int16, 16 kHz) every ``--chunk-ms``, paced at real time, for
   ``--seconds``. Reported: the server's per-chunk latency (receipt to answer, from the
   responses) and the client's round trip, p50/p99; and whether the streams kept up (every
   answer arrived, the last within one chunk period of the end). N is *sustained* when
   they kept up and the server p99 is within ``--p99-budget-ms``.
2. **Event ingest.** ``--event-streams`` StreamEvents calls each send packets of
   ``--packet-events`` real N-MNIST events (recordings concatenated in time, like a long live
   feed) as fast as the server takes them; reported: events per second through the whole
   path (transport, decode, validation, time order, 10 ms count framing, and the network on
   the windows the classifier uses: its first ``time_steps``, as for one N-MNIST digit; the
   rest of the feed is framed but not classified).
3. **Replay.** ``--replays`` real N-MNIST recordings, one StreamEvents call each in 10 ms
   packets, 8 calls at a time: recordings and events per second including every stream's
   setup, the network on every window and the final prediction.

Models: ``--models DIR`` serves the models there (the KWS model is the first ``kws`` model,
the event model the first ``classify-events`` one). Without it the benchmark writes two
SYNTHETIC load models with random weights to a temporary folder: a log-mel KWS-shaped net
(40 mels -> 256 LIF -> 256 LIF -> 12, sum readout) and an N-MNIST-shaped event classifier
(2x34x34 count frames of 10 ms -> 10, mean readout, 30 windows). Their answers mean
nothing; their cost per chunk is that of a small real model. The last line is
``sustained_realtime_kws_streams=<n> p99_ms=<x>``.

Usage: ``python bench/service_load.py [--streams 25,50,100,150] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def write_synthetic_models(folder: Path) -> None:
    from eventsp.model import LIF, Dense, Flatten, Graph, Input, Output, Readout
    from eventsp.model.format import save_model

    rng = np.random.default_rng(0)

    def dense(n_out: int, n_in: int, scale: float) -> Dense:
        w = (rng.standard_normal((n_out, n_in)) * scale / np.sqrt(n_in)).astype(np.float32)
        return Dense(w, np.full(n_out, 0.1, np.float32))

    kws = Graph.chain(
        [
            ("in", Input((40,))),
            ("fc1", dense(256, 40, 0.5)),
            ("lif1", LIF(0.9, 1.0)),
            ("fc2", dense(256, 256, 3.0)),
            ("lif2", LIF(0.9, 1.0)),
            ("fc3", dense(12, 256, 1.0)),
            ("sum", Readout("sum")),
            ("out", Output((12,))),
        ]
    )
    save_model(
        folder / "synthetic-kws.esp",
        kws,
        {
            "task": "kws",
            "labels": [f"class{i}" for i in range(12)],
            "sample_rate_hz": 16000,
            "frontend": {"kind": "logmel", "n_mels": 40},
            "note": "synthetic load model, random weights",
        },
    )
    events = Graph.chain(
        [
            ("in", Input((2, 34, 34))),
            ("flat", Flatten()),
            ("fc", dense(10, 2 * 34 * 34, 1.0)),
            ("mean", Readout("mean")),
            ("out", Output((10,))),
        ]
    )
    save_model(
        folder / "synthetic-events.esp",
        events,
        {
            "task": "classify-events",
            "labels": [str(d) for d in range(10)],
            "time_steps": 30,
            "sensor_size": [34, 34, 2],
            "frontend": {"kind": "count-frames", "window_us": 10_000, "layout": "TPHW"},
            "note": "synthetic load model, random weights",
        },
    )


def start_server(models: Path, max_streams: int, workers: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "eventsp", "serve", "--port", "0", "--models", str(models),
         "--max-streams", str(max_streams), "--log-level", "warning", "--grace", "1",
         "--workers", str(workers)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"eventsp serve did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its child processes (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def wait_serving(channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(600):
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest())
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the server never reported SERVING")


async def audio_stream(stub, model: str, pcm: bytes, chunk: int, n_chunks: int, start: float):
    """One real-time stream; returns (server latencies ms, round trips ms, lag s)."""
    from eventsp.v1 import audio_pb2

    period = chunk / 16000
    sent_at: list[float] = []

    async def requests():
        for i in range(n_chunks):
            due = start + i * period
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            offset = (i * chunk * 2) % (len(pcm) - chunk * 2)
            sent_at.append(time.perf_counter())
            yield audio_pb2.StreamAudioRequest(
                model=model,
                sample_rate_hz=16000,
                sample_format=audio_pb2.PCM_S16LE,
                pcm=pcm[offset : offset + chunk * 2],
            )

    server, rtt, last = [], [], 0.0
    async for response in stub.StreamAudio(requests()):
        now = time.perf_counter()
        if response.sequence < n_chunks:
            server.append(response.latency_ms)
            rtt.append((now - sent_at[response.sequence]) * 1e3)
        last = now
    lag = last - (start + n_chunks * period)
    return server, rtt, lag


async def run_audio(address: str, model: str, n: int, seconds: float, chunk_ms: float, pcm):
    import grpc

    from eventsp.v1 import service_pb2_grpc

    chunk = int(16000 * chunk_ms / 1000)
    n_chunks = int(seconds * 1000 / chunk_ms)
    # Channels (connections) of 10 streams each, so that SO_REUSEPORT workers share them.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, n // 10))
    ]
    try:
        stubs = [service_pb2_grpc.StreamingServiceStub(c) for c in channels]
        start = time.perf_counter() + 0.5
        period = chunk_ms / 1000
        # Streams start spread over one chunk period, as independent live sources would.
        results = await asyncio.gather(
            *(
                audio_stream(
                    stubs[i % len(stubs)], model, pcm, chunk, n_chunks, start + period * i / n
                )
                for i in range(n)
            ),
            return_exceptions=True,
        )
    finally:
        for c in channels:
            await c.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    server = np.concatenate([r[0] for r in ok]) if ok else np.zeros(1)
    rtt = np.concatenate([r[1] for r in ok]) if ok else np.zeros(1)
    complete = all(len(r[0]) == n_chunks for r in ok)
    max_lag = max((r[2] for r in ok), default=float("inf"))
    return {
        "n": n,
        "errors": len(errors),
        "first_error": repr(errors[0])[:200] if errors else "",
        "server_p50": float(np.percentile(server, 50)),
        "server_p99": float(np.percentile(server, 99)),
        "rtt_p50": float(np.percentile(rtt, 50)),
        "rtt_p99": float(np.percentile(rtt, 99)),
        "kept_up": not errors and complete and max_lag <= chunk_ms / 1000 + 0.05,
        "max_lag_ms": max_lag * 1e3,
    }


def nmnist_events(n_events: int) -> np.ndarray:
    from eventsp.events import read_events

    files = sorted((DATA / "nmnist_small" / "train").rglob("*.bin"))
    parts, offset, total = [], 0, 0
    for path in files:
        packet, _ = read_events(path)
        events = packet.events.copy()
        events["t"] += offset
        offset = int(events["t"][-1]) + 1
        parts.append(events)
        total += events.size
        if total >= n_events:
            break
    return np.concatenate(parts)[:n_events]


async def run_events(address: str, model: str, events: np.ndarray, packet: int, streams: int):
    import grpc

    from eventsp.clients.wire import pack_events
    from eventsp.v1 import events_pb2, service_pb2_grpc

    payloads = [pack_events(events[i : i + packet]) for i in range(0, events.size, packet)]

    async def one(stub):
        def requests():
            for data in payloads:
                yield events_pb2.StreamEventsRequest(
                    model=model,
                    sensor_size=[34, 34, 2],
                    layout=events_pb2.XYTP_PACKED_V1,
                    events=data,
                )

        total = 0
        async for response in stub.StreamEvents(requests()):
            total = response.events_total
        return total

    options = [("grpc.max_send_message_length", 64 << 20)]
    channel = grpc.aio.insecure_channel(address, options=options)
    try:
        stub = service_pb2_grpc.StreamingServiceStub(channel)
        await one(stub)  # warm-up pass
        start = time.perf_counter()
        totals = await asyncio.gather(*(one(stub) for _ in range(streams)))
        elapsed = time.perf_counter() - start
    finally:
        await channel.close()
    return sum(totals), elapsed


async def run_replays(address: str, model: str, n_recordings: int, concurrency: int):
    """Replay real N-MNIST recordings, one stream each, 10 ms packets, ``concurrency`` at once."""
    import grpc

    from eventsp.cli.stream_events import time_packets
    from eventsp.clients.wire import pack_events
    from eventsp.events import read_events
    from eventsp.v1 import events_pb2, service_pb2_grpc

    files = sorted((DATA / "nmnist_small" / "train").rglob("*.bin"))[:n_recordings]
    recordings = []
    for path in files:
        packet, _ = read_events(path)
        recordings.append([pack_events(p) for p in time_packets(iter([packet.events]), 10_000)])
    queue = list(range(len(recordings)))
    channel = grpc.aio.insecure_channel(address)
    stub = service_pb2_grpc.StreamingServiceStub(channel)

    async def worker() -> int:
        done = 0
        while queue:
            payloads = recordings[queue.pop()]
            requests = (
                events_pb2.StreamEventsRequest(
                    model=model, sensor_size=[34, 34, 2], layout=events_pb2.XYTP_PACKED_V1,
                    events=data,
                )
                for data in payloads
            )  # fmt: skip
            total = 0
            async for response in stub.StreamEvents(requests):
                total = response.events_total
            done += total
        return done

    try:
        start = time.perf_counter()
        totals = await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        await channel.close()
    return sum(totals), len(recordings), elapsed


async def main_async(args: argparse.Namespace, address: str, kws: str, ev: str, pid: int) -> int:
    import grpc
    import soundfile

    channel = grpc.aio.insecure_channel(address)
    await wait_serving(channel)
    await channel.close()
    speech = sorted((DATA / "speech" / "speech_commands_v2_test_dev").rglob("*.flac"))[:20]
    pcm = np.concatenate([soundfile.read(p, dtype="int16")[0] for p in speech]).tobytes()

    print(f"# real-time audio streams: model {kws}, {args.chunk_ms:g} ms chunks, "
          f"{args.seconds:g} s each, p99 budget {args.p99_budget_ms:g} ms, "
          f"{args.workers} server process(es)")  # fmt: skip
    header = (f"{'streams':>8} {'server p50':>11} {'server p99':>11} {'rtt p50':>9} "
              f"{'rtt p99':>9} {'max lag':>9} {'kept up':>8} {'errors':>7} "
              f"{'server CPU/chunk':>17}")  # fmt: skip
    print(header)
    sustained, sustained_p99 = 0, float("nan")
    cpu_per_chunk: list[float] = []
    for n in args.streams:
        cpu_before = server_cpu_s(pid)
        r = await run_audio(address, kws, n, args.seconds, args.chunk_ms, pcm)
        chunks = n * int(args.seconds * 1000 / args.chunk_ms)
        cpu_us = (server_cpu_s(pid) - cpu_before) / chunks * 1e6
        cpu_per_chunk.append(cpu_us)
        print(
            f"{n:>8} {r['server_p50']:>9.2f}ms {r['server_p99']:>9.2f}ms {r['rtt_p50']:>7.2f}ms "
            f"{r['rtt_p99']:>7.2f}ms {r['max_lag_ms']:>7.0f}ms {r['kept_up']!s:>8} "
            f"{r['errors']:>7} {cpu_us:>15.0f}us",
            flush=True,
        )
        if r["errors"]:
            print(f"         first error: {r['first_error']}")
        if r["kept_up"] and r["server_p99"] <= args.p99_budget_ms:
            sustained, sustained_p99 = n, r["server_p99"]
        else:
            break

    per_core = 1e6 / np.median(cpu_per_chunk) / (1000 / args.chunk_ms)
    print(f"# server CPU per chunk (median) {np.median(cpu_per_chunk):.0f} us: one fully used "
          f"core would carry about {per_core:.0f} real-time streams of {args.chunk_ms:g} ms "
          f"chunks")  # fmt: skip
    events = nmnist_events(args.events)
    total, elapsed = await run_events(address, ev, events, args.packet_events, args.event_streams)
    print(f"# event ingest: model {ev}, {args.event_streams} streams, packets of "
          f"{args.packet_events} real N-MNIST events")  # fmt: skip
    print(f"events_ingested={total} seconds={elapsed:.3f} events_per_s={total / elapsed:,.0f}")
    total, count, elapsed = await run_replays(address, ev, args.replays, 8)
    print(f"# replay: {count} real N-MNIST recordings, one stream each, 10 ms packets, 8 at once")
    print(f"recordings_per_s={count / elapsed:.1f} events_per_s={total / elapsed:,.0f}")
    print(f"sustained_realtime_kws_streams={sustained} p99_ms={sustained_p99:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="folder of .esp models")
    parser.add_argument(
        "--streams", type=lambda s: [int(v) for v in s.split(",")], default=[25, 50, 100, 150]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--p99-budget-ms", type=float, default=20.0)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--packet-events", type=int, default=50_000)
    parser.add_argument("--event-streams", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="eventsp serve --workers")
    parser.add_argument("--replays", type=int, default=200, help="recordings replayed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.models
        if folder is None:
            folder = Path(tmp)
            write_synthetic_models(folder)
        from eventsp.model.format import load_model

        by_task: dict[str, str] = {}
        for path in sorted(folder.glob("*.esp")):
            by_task.setdefault(load_model(path).metadata.get("task", ""), path.stem)
        if "kws" not in by_task or "classify-events" not in by_task:
            raise SystemExit(f"{folder} needs a 'kws' and a 'classify-events' model")
        process, address = start_server(folder, max(args.streams) + 8, args.workers)
        try:
            return asyncio.run(
                main_async(args, address, by_task["kws"], by_task["classify-events"], process.pid)
            )
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
