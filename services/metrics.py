"""Service metrics: open streams, chunk-latency percentiles, operations and inputs consumed.

One :class:`Metrics` per server, updated from the event loop only (no locks needed). Chunk
latencies are kept in a ring of the most recent :data:`LATENCY_WINDOW` chunks, so percentiles
describe current behaviour and memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eventsp.services.errors import ResourceExhaustedError, UnavailableError

LATENCY_WINDOW = 16384


@dataclass
class Metrics:
    max_streams: int
    open_streams: int = 0
    streams_total: int = 0
    streams_refused: int = 0
    chunks_total: int = 0
    synops_total: float = 0.0
    dense_ops_total: float = 0.0
    samples_total: int = 0
    events_total: int = 0
    accepting: bool = True

    def __post_init__(self) -> None:
        self._latencies_ms = np.zeros(LATENCY_WINDOW, dtype=np.float64)

    def open_stream(self) -> None:
        """Count a new stream, or refuse it at the limit or while shutting down."""
        if not self.accepting:
            self.streams_refused += 1
            raise UnavailableError("the server is shutting down; retry on another replica")
        if self.open_streams >= self.max_streams:
            self.streams_refused += 1
            raise ResourceExhaustedError(
                f"the server already holds {self.open_streams} streams, its maximum "
                f"(max_streams={self.max_streams}); retry later or use another replica"
            )
        self.open_streams += 1
        self.streams_total += 1

    def close_stream(self) -> None:
        self.open_streams -= 1

    def record_chunk(self, latency_ms: float, synops: float, dense_ops: float) -> None:
        self._latencies_ms[self.chunks_total % LATENCY_WINDOW] = latency_ms
        self.chunks_total += 1
        self.synops_total += synops
        self.dense_ops_total += dense_ops

    def latency_percentiles_ms(self) -> dict[str, float]:
        """p50, p90, p99 and max of the recent chunk latencies (zeros before any chunk)."""
        window = self._latencies_ms[: min(self.chunks_total, LATENCY_WINDOW)]
        if window.size == 0:
            return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
        p50, p90, p99 = np.percentile(window, [50, 90, 99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(window.max())}
