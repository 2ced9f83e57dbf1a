"""``eventsp stream-events``: replay an event recording through the service.

The recording (any format ``eventsp inspect`` reads) is cut into packets of ``--packet-ms``
of events and streamed; predictions are printed as they arrive (``--json``: one JSON object
per line, ``type`` ``prediction`` or ``summary``). With ``--realtime`` packets are sent at the
recording's own pace.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from eventsp.cli import UsageError

HELP = "replay an event-camera recording through an eventsp server and print its predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="event recording (N-MNIST .bin, AEDAT, ...)")
    parser.add_argument(
        "--packet-ms",
        type=float,
        default=10.0,
        help="events per packet, in ms (default: %(default)s)",
    )
    parser.add_argument(
        "--every", action="store_true", help="print every prediction, not only changes and the last"
    )
    from eventsp.clients.common import add_connection_arguments

    add_connection_arguments(parser)


def time_packets(packets: Iterator, packet_us: int) -> Iterator:
    """Regroup time-sorted event packets into packets spanning ``packet_us`` microseconds."""
    import numpy as np

    pending: list = []
    start = None
    for packet in packets:
        if packet.size == 0:
            continue
        if start is None:
            start = int(packet["t"][0])
        pending.append(packet)
        joined = np.concatenate(pending)
        edge = start + packet_us
        while joined.size and int(joined["t"][-1]) >= edge:
            cut = int(np.searchsorted(joined["t"], edge, side="left"))
            yield joined[:cut]
            joined, start = joined[cut:], edge
            edge = start + packet_us
        pending = [joined]
    if pending and pending[0].size:
        yield pending[0]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from eventsp.clients.client import ServiceCallError
    from eventsp.clients.common import connect, emit, emit_prediction, fail
    from eventsp.events.readers import open_recording

    if args.packet_ms <= 0:
        raise UsageError(f"--packet-ms is {args.packet_ms}; expected milliseconds > 0")
    try:
        recording = open_recording(args.recording)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    latencies: list[float] = []
    last_label = None
    events_total = 0
    with connect(args) as client:
        try:
            packets = time_packets(recording.packets(), round(args.packet_ms * 1000))
            responses = client.stream_events(
                packets,
                sensor_size=recording.sensor_size,
                model=args.model,
                realtime=args.realtime,
            )
            for response in responses:
                latencies.append(response.latency_ms)
                events_total = response.events_total
                for p in response.predictions:
                    if args.every or p.final or p.label != last_label:
                        emit_prediction(args, p, response.latency_ms)
                    last_label = p.label
        except ServiceCallError as exc:
            return fail(f"eventsp stream-events: {exc}")
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        emit(
            args,
            {
                "type": "summary",
                "packets": len(latencies),
                "events": events_total,
                "p50_ms": p50,
                "p99_ms": p99,
            },
            f"{events_total} events in {len(latencies)} packets, server latency p50 "
            f"{p50:.2f} ms, p99 {p99:.2f} ms",
        )
    return 0
