"""Streaming encoders: the per-packet fast path, its state, and time surfaces over long gaps."""

from __future__ import annotations

import numpy as np
import pytest
from events.naive_encoders import time_surfaces_naive

from eventsp.events import FrameEncoder, encode_stream, read_events

from support import DATA_ROOT

NMNIST = DATA_ROOT / "nmnist_small" / "train" / "00007.bin"  # 34x34, 2,979 events, 307 ms
SIZE = (34, 34, 2)


def _events() -> np.ndarray:
    return read_events(NMNIST)[0].events


def _streamed(encoder: FrameEncoder, events: np.ndarray, packet: int) -> np.ndarray:
    packets = [events[i : i + packet] for i in range(0, len(events), packet)]
    frames = list(encode_stream(encoder, packets))
    return np.concatenate(frames) if frames else np.zeros((0, *encoder.frame_shape), np.float32)


@pytest.mark.parametrize(
    ("dt_us", "tau_us", "gap_windows"),
    [
        (1000, 100.0, 150),  # surfaces fall through float32 subnormals to 0 and stay there
        (5000, 20_000.0, 40),
        (100_000, 30_000.0, 3),  # ages beyond the exp table (2**16 µs): exp computed directly
    ],
)
@pytest.mark.parametrize("packet", [None, 1, 997])
def test_time_surfaces_equal_the_direct_formula_across_long_gaps(
    dt_us, tau_us, gap_windows, packet
):
    events = _events()
    later = events.copy()  # the same recording again after a quiet gap
    later["t"] += int(events["t"][-1]) + gap_windows * dt_us
    stream = np.concatenate([events, later])
    encoder = FrameEncoder(SIZE, time_window_us=dt_us, representation="timesurface", tau_us=tau_us)
    want = time_surfaces_naive(stream, SIZE, dt_us, tau_us)
    got = encoder.encode(stream) if packet is None else _streamed(encoder, stream, packet)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got == 0, want == 0, err_msg="zeros differ")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    if dt_us == 1000:
        tiny = (want > 0) & (want < np.finfo(np.float32).tiny)
        assert tiny.any(), "the case must reach float32 subnormals"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(time_window_us=10_000),
        dict(time_window_us=10_000, overlap=7500, representation="binary"),
        dict(event_count=300, overlap=100, include_incomplete=True),
    ],
)
@pytest.mark.parametrize("packet", [1, 7, 4096])
def test_tiny_and_large_packets_give_the_frames_of_one_call(kwargs, packet):
    events = _events()[:1500] if packet == 1 else _events()
    encoder = FrameEncoder(SIZE, **kwargs)
    np.testing.assert_array_equal(_streamed(encoder, events, packet), encoder.encode(events))


def test_push_updates_counters_in_place_and_a_copy_keeps_the_old_state():
    events = _events()
    encoder = FrameEncoder(SIZE, time_window_us=20_000, overlap=5000)
    half = len(events) // 2
    _, state = encoder.push(events[:half], encoder.init_state())
    kept = state.copy()
    before = kept.counters.copy()
    first, state = encoder.push(events[half:], state)
    np.testing.assert_array_equal(kept.counters, before, err_msg="a copy must not change")
    again, kept = encoder.push(events[half:], kept)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(state.counters, kept.counters)
    np.testing.assert_array_equal(encoder.flush(state)[0], encoder.flush(kept)[0])
    # A packet that fails the fast path's checks (late events) leaves the counters untouched
    # by the fast kernel; the general path drops and counts the late events.
    late = events[:10]
    _, state = encoder.push(late, state)
    assert int(state.order.late) == 10
    assert int(state.order.seen) == len(events) + 10


@pytest.mark.parametrize("representation", ["count", "binary", "voxel", "timesurface"])
def test_read_only_events_are_encoded(representation):
    events = _events()
    frozen = events.copy()
    frozen.flags.writeable = False
    encoder = FrameEncoder(SIZE, time_window_us=30_000, representation=representation)
    want = encoder.encode(events)
    np.testing.assert_array_equal(encoder.encode(frozen), want)
    np.testing.assert_array_equal(_streamed(encoder, frozen, 1000), want)
