"""Event encoders against tonic's offline transforms: events per second on one core.

    .venv/bin/python bench/encoders.py            # about a minute on an idle core
    .venv/bin/python bench/encoders.py --quick    # fewer recordings and repeats
    .venv/bin/python bench/encoders.py --keep     # keep every output alive (see below)

Workloads, on the real recordings in ``../shared/data`` (read once, outside the timings):

- ``nmnist-rec``: the N-MNIST recordings of ``nmnist_small/train`` (34x34, ~4,000 events
  each), one call per recording, 30 ms count frames: ``FrameEncoder.encode`` against
  ``tonic.transforms.ToFrame``;
- ``nmnist-stream``: the same recordings laid end to end as one live stream, pushed in packets
  of 4,096 events (eventsp) against ``ToFrame`` on the whole stream at once (tonic);
- ``dvs128``: the ten DVS128 clips (128x128, 63k-181k events), one call per clip, 50 ms
  count frames;
- ``dvs128-overlap``: the same with 50 ms windows every 25 ms;
- ``voxel`` and ``timesurface``: 5-bin voxel grids of whole N-MNIST recordings against
  ``ToVoxelGrid``; 10 ms time surfaces (tau 5 ms) against ``ToTimesurface``.

Each side runs ``--repeats`` times; the table shows the median CPU time of the thread (on a
shared machine wall time mostly measures the other processes; the wall-clock rate of eventsp is
printed too). Every workload first checks
that both sides produce the same frames (voxel grids: tonic with an integer ``p``; see
:mod:`eventsp.events.encoders`). One thread everywhere: ``NUMBA_NUM_THREADS=1`` and
``torch.set_num_threads(1)`` (tonic imports torch). On a shared machine other processes slow
both sides alike; the load average is printed with the results.

Outputs are consumed as a data loader or a live stream does: each call's frames are dropped
before the next call, on both sides (the frames of a live stream's packet are dropped when the
next packet comes). ``--keep`` keeps every output of a repeat alive instead (the first version
of this bench did), which adds the cost of fresh pages to both sides: the outputs of 1,000
N-MNIST recordings are 92 MB of float32 frames for eventsp (46 MB of int16 for tonic), and each
new 4 KiB page costs a page fault (a few µs in a VM).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eventsp.events import FrameEncoder, read_events

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median CPU seconds of this thread and median wall seconds of ``run()``."""
    run()  # warm-up (compilation, caches)
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.thread_time(), time.perf_counter()
        run()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu), statistics.median(wall)


def _stream(recordings: list[np.ndarray]) -> np.ndarray:
    """Recordings end to end in time, 10 ms apart: one long monotonic stream."""
    parts, offset = [], 0
    for events in recordings:
        shifted = events.copy()
        shifted["t"] += offset - int(events["t"][0])
        offset = int(shifted["t"][-1]) + 10_000
        parts.append(shifted)
    return np.concatenate(parts)


def _push_all(
    encoder: FrameEncoder, events: np.ndarray, packet: int, keep: bool = True
) -> np.ndarray | None:
    """Push ``events`` in packets; the frames of all packets, or ``None`` (``keep=False``: each
    packet's frames are dropped when the next packet comes)."""
    state = encoder.init_state()
    frames = []
    for start in range(0, len(events), packet):
        out, state = encoder.push(events[start : start + packet], state)
        if keep:
            frames.append(out)
    out = encoder.flush(state)[0]
    return np.concatenate([*frames, out]) if keep else None


def _timed(
    inputs: list[np.ndarray], encode: Callable[[np.ndarray], object], keep: bool
) -> Callable[[], object]:
    """One repeat: ``encode`` every input, keeping the outputs or dropping each in turn."""
    if keep:
        return lambda: [encode(e) for e in inputs]

    def drop() -> None:
        for e in inputs:
            encode(e)

    return drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer recordings and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--keep", action="store_true", help="keep every output of a repeat alive (see above)"
    )
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)

    import tonic.transforms as tt
    import torch

    torch.set_num_threads(1)
    n_nmnist = 100 if args.quick else 1000
    nmnist_files = sorted((args.data / "nmnist_small" / "train").glob("*.bin"))[:n_nmnist]
    nmnist = [read_events(path)[0].events for path in nmnist_files]
    dvs = [read_events(path)[0].events for path in sorted(args.data.glob("events/dvs128/*.bin"))]
    stream = _stream(nmnist)
    nm_size, dvs_size = (34, 34, 2), (128, 128, 2)

    def signed(events: np.ndarray) -> np.ndarray:
        out = np.zeros(len(events), dtype=[("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")])
        for field in "xytp":
            out[field] = events[field]
        return out

    nmnist_signed = [signed(e) for e in nmnist]
    ours_frame = FrameEncoder(nm_size, time_window_us=30_000)
    theirs_frame = tt.ToFrame(sensor_size=nm_size, time_window=30_000)
    ours_dvs = FrameEncoder(dvs_size, time_window_us=50_000)
    theirs_dvs = tt.ToFrame(sensor_size=dvs_size, time_window=50_000)
    ours_ovl = FrameEncoder(dvs_size, time_window_us=50_000, overlap=25_000)
    theirs_ovl = tt.ToFrame(sensor_size=dvs_size, time_window=50_000, overlap=25_000)
    ours_vox = FrameEncoder(nm_size, event_count=10**9, representation="voxel", n_time_bins=5)
    theirs_vox = tt.ToVoxelGrid(sensor_size=nm_size, n_time_bins=5)
    ours_ts = FrameEncoder(
        nm_size, time_window_us=10_000, representation="timesurface", tau_us=5000.0
    )
    theirs_ts = tt.ToTimesurface(sensor_size=nm_size, dt=10_000, tau=5000.0)

    quarter = nmnist[: len(nmnist) // 4]
    workloads: dict[str, tuple[list[np.ndarray], Callable, Callable, list[np.ndarray]]] = {
        # name: (inputs, eventsp, tonic, tonic's inputs)
        "nmnist-rec": (nmnist, ours_frame.encode, theirs_frame, nmnist),
        "nmnist-stream": (
            [stream],
            lambda s: _push_all(ours_frame, s, 4096, keep=args.keep),
            theirs_frame,
            [stream],
        ),
        "dvs128": (dvs, ours_dvs.encode, theirs_dvs, dvs),
        "dvs128-overlap": (dvs, ours_ovl.encode, theirs_ovl, dvs),
        "voxel": (nmnist, ours_vox.encode, theirs_vox, nmnist_signed),
        "timesurface": (quarter, ours_ts.encode, theirs_ts, quarter),
    }
    mode = "outputs kept (--keep)" if args.keep else "outputs dropped call by call"
    print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machines: above 1 is shared)")
    print(f"median thread CPU time of {repeats} repeats; {mode}")
    print(
        f"{'workload':<15} {'events':>10} {'eventsp Mev/s':>14} {'tonic Mev/s':>12} "
        f"{'ratio':>7} {'eventsp wall Mev/s':>19}"
    )
    for name, (recordings, ours, theirs, their_inputs) in workloads.items():
        n_events = sum(len(e) for e in recordings)
        if name == "nmnist-stream":
            ours_out = [_push_all(ours_frame, stream, 4096)]
        else:
            ours_out = [ours(e) for e in recordings]
        for a, b in zip(ours_out, [theirs(e) for e in their_inputs], strict=True):
            b = np.asarray(b, dtype=np.float32).reshape(a.shape)
            if name == "timesurface":
                np.testing.assert_allclose(a, b, rtol=2e-6)
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: frames differ from tonic")
        t_ours, wall_ours = _median_seconds(_timed(recordings, ours, args.keep), repeats)
        t_theirs, _ = _median_seconds(_timed(their_inputs, theirs, args.keep), max(1, repeats // 2))
        print(
            f"{name:<15} {n_events:>10} {n_events / t_ours / 1e6:>14.1f} "
            f"{n_events / t_theirs / 1e6:>12.2f} {t_theirs / t_ours:>6.1f}x "
            f"{n_events / wall_ours / 1e6:>19.1f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
