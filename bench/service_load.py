"""Load benchmark of the gRPC service: concurrent real-time audio streams and event ingest.

Runs ``eventsp serve`` in its own process (as in production) and drives it with ``grpc.aio``
from ``--client-procs`` client processes (the load generator needs more than one core's worth
of Python at 20 ms chunks, so one process would measure the client, not the server). On the
2-core dev machine the server, the clients and everything else running share the two cores.

1. **Real-time audio streams**, once per chunk size in ``--chunk-ms`` (default 20 and 100 ms).
   For each N in ``--streams``, N StreamAudio calls each send one chunk of real speech (int16,
   16 kHz) every chunk period, paced at real time, for ``--seconds``; the streams start spread
   over one period, as independent live sources would. 100 ms is the usual chunk size of
   streaming speech APIs (cloud speech-to-text services recommend about 100 ms frames); 20 ms
   is a low-latency setting that costs five times as many messages per second of audio. Per
   N: the server's per-chunk latency (``latency_ms`` in each answer: from the moment the
   handler takes the request to its answer) and the client's round trip (chunk sent to answer
   received: transport, queueing on both sides and the server's work), p50/p99; the worst lag
   of a stream's last answer behind real time; server and client CPU per chunk. N is
   *sustained* when every answer arrived, the last within one chunk period (+50 ms) of the
   end, and the round-trip p99 is within ``--p99-budget-ms``. Each ladder stops at the first
   N that is not sustained.
2. **Event ingest.** ``--event-streams`` StreamEvents calls each send packets of
   ``--packet-events`` real N-MNIST events (recordings concatenated in time, like a long live
   feed) as fast as the server takes them; reported: events per second through the whole
   path (transport, decode, validation, time order, 10 ms count framing, and the network on
   the windows the classifier uses: its first ``time_steps``, as for one N-MNIST digit; the
   rest of the feed is framed but not classified).
3. **Replay.** ``--replays`` real N-MNIST recordings, one StreamEvents call each in 10 ms
   packets, 8 calls at a time: recordings and events per second including every stream's
   setup, the network on every window and the final prediction.

Models: the bundled defaults (``eventsp/models``: the real keyword-spotting model
``kws_lmu`` and the N-MNIST classifier), or ``--models DIR`` (the KWS model is the first
``kws`` model, the event model the first ``classify-events`` one). ``--synthetic`` serves two
SYNTHETIC load models with random weights instead: a log-mel KWS-shaped net (40 mels -> 256
LIF -> 256 LIF -> 12, sum readout) and an N-MNIST-shaped event classifier (2x34x34 count
frames of 10 ms -> 10, mean readout, 30 windows); their answers mean nothing.

The last line is ``sustained_realtime_kws_streams=<n> p99_ms=<x>`` (the round-trip p99) for
the chunk size ``--headline-chunk-ms`` (default 100 ms, the usual streaming chunk); the line
before it names that chunk size and repeats the other chunk sizes' results.

Usage: ``python bench/service_load.py [--chunk-ms 20,100] [--streams 10,25,50,100,150]``.
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

from eventsp.services.registry import bundled_models_dir
from eventsp.services.server import run_on_loop

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


def speech_pcm() -> bytes:
    """20 real Speech Commands clips (int16, 16 kHz) back to back, as PCM_S16LE bytes."""
    import soundfile

    speech = sorted((DATA / "speech" / "speech_commands_v2_test_dev").rglob("*.flac"))[:20]
    return np.concatenate([soundfile.read(p, dtype="int16")[0] for p in speech]).tobytes()


_PCM = b""


def _init_client() -> None:
    """Client process set-up: the speech and the gRPC modules, before any timed work."""
    global _PCM
    import grpc  # noqa: F401

    from eventsp.v1 import audio_pb2, service_pb2_grpc  # noqa: F401

    _PCM = speech_pcm()


def _client_ready(delay_s: float) -> int:
    time.sleep(delay_s)  # keeps this worker busy so the pool starts the next one
    return os.getpid()


async def audio_stream(stub, requests: list, period: float, start: float):
    """One real-time stream; returns (server latencies ms, round trips ms, lag s)."""
    n_chunks = len(requests)
    sent_at = [0.0] * n_chunks

    async def paced():
        for i, request in enumerate(requests):
            delay = start + i * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[i] = time.monotonic()
            yield request

    server, rtt, last = [], [], 0.0
    async for response in stub.StreamAudio(paced()):
        now = time.monotonic()
        if response.sequence < n_chunks:
            server.append(response.latency_ms)
            rtt.append((now - sent_at[response.sequence]) * 1e3)
        last = now
    return server, rtt, last - (start + n_chunks * period)


async def _audio_share(address, model, chunk_ms, seconds, streams, n, start):
    import grpc

    from eventsp.v1 import audio_pb2, service_pb2_grpc

    chunk = int(16000 * chunk_ms / 1000)
    n_chunks = int(seconds * 1000 / chunk_ms)
    size = chunk * 2
    requests = [
        audio_pb2.StreamAudioRequest(
            model=model,
            sample_rate_hz=16000,
            sample_format=audio_pb2.PCM_S16LE,
            pcm=_PCM[offset : offset + size],
        )
        for offset in ((i * size) % (len(_PCM) - size) for i in range(n_chunks))
    ]
    period = chunk_ms / 1000
    # Channels (connections) of 10 streams each, so that SO_REUSEPORT workers share them.
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, len(streams) // 10))
    ]
    try:
        # Connect before the first chunk is due, so no chunk's round trip holds a handshake.
        await asyncio.gather(*(c.channel_ready() for c in channels))
        stubs = [service_pb2_grpc.StreamingServiceStub(c) for c in channels]
        return await asyncio.gather(
            *(
                audio_stream(stubs[k % len(stubs)], requests, period, start + period * i / n)
                for k, i in enumerate(streams)
            ),
            return_exceptions=True,
        )
    finally:
        for c in channels:
            await c.close()


def audio_client(address, model, chunk_ms, seconds, streams, n, start) -> dict:
    """Run ``streams`` (indices among ``n``) in this client process; raw results and CPU."""
    cpu = time.process_time()
    results = run_on_loop(_audio_share(address, model, chunk_ms, seconds, streams, n, start))
    ok = [r for r in results if not isinstance(r, BaseException)]
    return {
        "server": np.asarray([v for r in ok for v in r[0]]),
        "rtt": np.asarray([v for r in ok for v in r[1]]),
        "lags": [r[2] for r in ok],
        "answered": [len(r[0]) for r in ok],
        "errors": [repr(r)[:200] for r in results if isinstance(r, BaseException)],
        "cpu_s": time.process_time() - cpu,
    }


def run_audio(pool, procs, address, model, n, seconds, chunk_ms, server_pid) -> dict:
    """N real-time streams over ``procs`` client processes (stream i in process i % procs)."""
    n_chunks = int(seconds * 1000 / chunk_ms)
    start = time.monotonic() + 1.5  # time for the clients to connect
    cpu_before = server_cpu_s(server_pid)
    futures = [
        pool.submit(
            audio_client, address, model, chunk_ms, seconds, list(range(k, n, procs)), n, start
        )
        for k in range(min(procs, n))
    ]
    parts = [f.result() for f in futures]
    server_cpu = server_cpu_s(server_pid) - cpu_before
    errors = [e for p in parts for e in p["errors"]]
    server = np.concatenate([p["server"] for p in parts] + [np.zeros(0)])
    rtt = np.concatenate([p["rtt"] for p in parts] + [np.zeros(0)])
    lags = [lag for p in parts for lag in p["lags"]]
    complete = all(a == n_chunks for p in parts for a in p["answered"])
    max_lag = max(lags, default=float("inf"))
    chunks = n * n_chunks

    def pct(x: np.ndarray, q: float) -> float:
        return float(np.percentile(x, q)) if x.size else float("nan")

    return {
        "n": n,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "server_p50": pct(server, 50),
        "server_p99": pct(server, 99),
        "rtt_p50": pct(rtt, 50),
        "rtt_p99": pct(rtt, 99),
        "kept_up": not errors and complete and max_lag <= chunk_ms / 1000 + 0.05,
        "max_lag_ms": max_lag * 1e3,
        "server_cpu_us": server_cpu / chunks * 1e6,
        "client_cpu_us": sum(p["cpu_s"] for p in parts) / chunks * 1e6,
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


def audio_ladder(args, pool, address: str, kws: str, chunk_ms: float, pid: int) -> dict:
    """One table: the ``--streams`` ladder at ``chunk_ms``; the last sustained level."""
    print(f"# real-time audio streams: model {kws}, {chunk_ms:g} ms chunks, {args.seconds:g} s "
          f"each, round-trip p99 budget {args.p99_budget_ms:g} ms, {args.workers} server "
          f"process(es), {args.client_procs} client process(es); load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'streams':>8} {'server p50':>11} {'server p99':>11} {'rtt p50':>9} {'rtt p99':>9} "
          f"{'max lag':>9} {'kept up':>8} {'errors':>7} {'server CPU/chunk':>17} "
          f"{'client CPU/chunk':>17}")  # fmt: skip
    best = {"n": 0, "rtt_p99": float("nan"), "server_p99": float("nan")}
    cpu: list[float] = []
    for n in args.streams:
        r = run_audio(pool, args.client_procs, address, kws, n, args.seconds, chunk_ms, pid)
        cpu.append(r["server_cpu_us"])
        print(
            f"{n:>8} {r['server_p50']:>9.2f}ms {r['server_p99']:>9.2f}ms {r['rtt_p50']:>7.2f}ms "
            f"{r['rtt_p99']:>7.2f}ms {r['max_lag_ms']:>7.0f}ms {r['kept_up']!s:>8} "
            f"{r['errors']:>7} {r['server_cpu_us']:>15.0f}us {r['client_cpu_us']:>15.0f}us",
            flush=True,
        )
        if r["errors"]:
            print(f"         first error: {r['first_error']}")
        if not (r["kept_up"] and r["rtt_p99"] <= args.p99_budget_ms):
            break
        best = r
    per_core = 1e6 / np.median(cpu) / (1000 / chunk_ms)
    print(f"# {chunk_ms:g} ms chunks: sustained {best['n']} streams (round-trip p99 "
          f"{best['rtt_p99']:.2f} ms, server p99 {best['server_p99']:.2f} ms); server CPU per "
          f"chunk (median) {np.median(cpu):.0f} us: one fully used core would carry about "
          f"{per_core:.0f} streams of {chunk_ms:g} ms chunks, without the clients")  # fmt: skip
    return best


async def events_section(args: argparse.Namespace, address: str, ev: str) -> None:
    events = nmnist_events(args.events)
    total, elapsed = await run_events(address, ev, events, args.packet_events, args.event_streams)
    print(f"# event ingest: model {ev}, {args.event_streams} streams, packets of "
          f"{args.packet_events} real N-MNIST events")  # fmt: skip
    print(f"events_ingested={total} seconds={elapsed:.3f} events_per_s={total / elapsed:,.0f}")
    total, count, elapsed = await run_replays(address, ev, args.replays, 8)
    print(f"# replay: {count} real N-MNIST recordings, one stream each, 10 ms packets, 8 at once")
    print(f"recordings_per_s={count / elapsed:.1f} events_per_s={total / elapsed:,.0f}")


async def wait_ready(address: str) -> None:
    import grpc

    channel = grpc.aio.insecure_channel(address)
    try:
        await wait_serving(channel)
    finally:
        await channel.close()


def run_all(args: argparse.Namespace, address: str, kws: str, ev: str, pid: int) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    asyncio.run(wait_ready(address))
    context = multiprocessing.get_context("spawn")
    results: dict[float, dict] = {}
    with ProcessPoolExecutor(args.client_procs, context, initializer=_init_client) as pool:
        pids = set(pool.map(_client_ready, [1.0] * args.client_procs))
        if len(pids) != args.client_procs:
            raise SystemExit(f"started {len(pids)} client processes, not {args.client_procs}")
        # Untimed warm-up: each client's first gRPC calls, the server's first streams.
        run_audio(pool, args.client_procs, address, kws, 10, 1.0, 20.0, pid)
        for chunk_ms in args.chunk_ms:
            results[chunk_ms] = audio_ladder(args, pool, address, kws, chunk_ms, pid)
    asyncio.run(events_section(args, address, ev))
    head = results[args.headline_chunk_ms]
    others = "; ".join(
        f"{c:g} ms chunks: sustained={r['n']} p99_ms={r['rtt_p99']:.2f}"
        for c, r in results.items()
        if c != args.headline_chunk_ms
    )
    print(f"# headline: {args.headline_chunk_ms:g} ms chunks (the usual streaming chunk size), "
          f"round-trip p99; {others or 'no other chunk size run'} (tables above); load "
          f"average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"sustained_realtime_kws_streams={head['n']} p99_ms={head['rtt_p99']:.2f}")
    return 0


def main() -> int:
    def numbers(kind):
        return lambda text: [kind(v) for v in text.split(",")]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=Path, default=bundled_models_dir(), help="folder of .esp models"
    )
    parser.add_argument("--synthetic", action="store_true", help="random-weight load models")
    parser.add_argument(
        "--streams",
        type=numbers(int),
        default=[10, 25, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300],
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--chunk-ms", type=numbers(float), default=[20.0, 100.0])
    parser.add_argument("--headline-chunk-ms", type=float, default=100.0)
    parser.add_argument("--p99-budget-ms", type=float, default=20.0)
    parser.add_argument("--client-procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--packet-events", type=int, default=50_000)
    parser.add_argument("--event-streams", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="eventsp serve --workers")
    parser.add_argument("--replays", type=int, default=200, help="recordings replayed")
    args = parser.parse_args()
    if args.headline_chunk_ms not in args.chunk_ms:
        parser.error(
            f"--headline-chunk-ms {args.headline_chunk_ms:g} is not among --chunk-ms "
            f"{args.chunk_ms}; add it there"
        )
    if args.client_procs < 1:
        parser.error(f"--client-procs is {args.client_procs}; expected 1 or more")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.models
        if args.synthetic:
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
            return run_all(args, address, by_task["kws"], by_task["classify-events"], process.pid)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
