"""Streaming encoders against tonic's offline transforms on real recordings, cut anywhere."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsp.events import (
    EVENT_DTYPE,
    Denoise,
    FrameEncoder,
    RefractoryPeriod,
    center_crop,
    encode_stream,
    read_events,
)

from support import DATA_ROOT

RECORDINGS = [
    DATA_ROOT / "events" / "dvs128" / "clip2.bin",  # 128x128 DVS128, ~84k events
    DATA_ROOT / "events" / "formats" / "sample_nmnist.bin",  # 34x34 ATIS
    DATA_ROOT / "nmnist_small" / "train" / "00007.bin",
]
_CACHE: dict[int, tuple[np.ndarray, tuple[int, int, int]]] = {}


def _recording(index: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    if index not in _CACHE:
        packet = read_events(RECORDINGS[index])[0]
        _CACHE[index] = (packet.events, packet.sensor_size)
    return _CACHE[index]


def _streamed(encoder: FrameEncoder, events: np.ndarray, cuts: list[float]) -> np.ndarray:
    bounds = sorted({0, len(events), *(int(c * len(events)) for c in cuts)})
    packets = [events[a:b] for a, b in itertools.pairwise(bounds)]
    frames = list(encode_stream(encoder, packets))
    return np.concatenate(frames) if frames else np.zeros((0, *encoder.frame_shape), np.float32)


cuts_strategy = st.lists(st.floats(0, 1), min_size=0, max_size=12)
# Windows scale with the sensor so that no example builds more than a few hundred frames.
SCALE_US = (10_000, 1000, 1000)  # per recording: DVS128 128x128, then two 34x34 N-MNIST
settings_ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tonic_frames(events, size, **kwargs):
    import tonic.transforms as tt

    return tt.ToFrame(sensor_size=size, **kwargs)(events.copy()).astype(np.float32)


@settings_
@given(
    index=st.integers(0, 2),
    window_ms=st.integers(1, 120),
    overlap_frac=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
    incomplete=st.booleans(),
    cuts=cuts_strategy,
)
def test_time_window_counts_equal_tonic(index, window_ms, overlap_frac, incomplete, cuts):
    events, size = _recording(index)
    window = window_ms * SCALE_US[index]
    overlap = int(window * overlap_frac)
    expected = _tonic_frames(
        events, size, time_window=window, overlap=overlap, include_incomplete=incomplete
    )
    encoder = FrameEncoder(
        size, time_window_us=window, overlap=overlap, include_incomplete=incomplete
    )
    np.testing.assert_array_equal(_streamed(encoder, events, cuts), expected)


@settings_
@given(
    index=st.integers(0, 2),
    count_frac=st.floats(0.01, 0.6),
    overlap_frac=st.sampled_from([0.0, 0.3, 0.75]),
    incomplete=st.booleans(),
    cuts=cuts_strategy,
)
def test_count_window_counts_and_binary_equal_tonic(
    index, count_frac, overlap_frac, incomplete, cuts
):
    events, size = _recording(index)
    count = max(1, int(count_frac * len(events)))
    overlap = int(count * overlap_frac)
    expected = _tonic_frames(
        events, size, event_count=count, overlap=overlap, include_incomplete=incomplete
    )
    kwargs = dict(event_count=count, overlap=overlap, include_incomplete=incomplete)
    np.testing.assert_array_equal(_streamed(FrameEncoder(size, **kwargs), events, cuts), expected)
    binary = _streamed(FrameEncoder(size, representation="binary", **kwargs), events, cuts)
    np.testing.assert_array_equal(binary, np.minimum(expected, 1))


@settings_
@given(index=st.integers(0, 2), window_ms=st.integers(5, 200), n_bins=st.integers(1, 9),
       cuts=cuts_strategy)  # fmt: skip
def test_voxel_grids_equal_tonic_per_window(index, window_ms, n_bins, cuts):
    import tonic.transforms as tt
    from tonic.slicers import slice_events_by_time

    events, size = _recording(index)
    # tonic's voxel grid on its own bool p flips no sign (see eventsp.events.encoders);
    # give it an integer p so that it computes the +1/-1 grid it documents.
    signed = np.zeros(len(events), dtype=[("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")])
    for field in "xytp":
        signed[field] = events[field]
    window = window_ms * SCALE_US[index] // 5
    voxel = tt.ToVoxelGrid(sensor_size=size, n_time_bins=n_bins)
    expected = [
        voxel(part.copy())[:, 0]
        for part in slice_events_by_time(signed, window)
        if len(part) > 1 and part["t"][-1] > part["t"][0]
    ]
    got = _streamed(
        FrameEncoder(size, time_window_us=window, representation="voxel", n_time_bins=n_bins),
        events,
        cuts,
    )
    kept = [g for g, part in zip(got, slice_events_by_time(signed, window), strict=True)
            if len(part) > 1 and part["t"][-1] > part["t"][0]]  # fmt: skip
    assert len(kept) == len(expected) > 0
    for g, e in zip(kept, expected, strict=True):
        np.testing.assert_array_equal(g, e.astype(np.float32))


@settings_
@given(index=st.integers(0, 2), dt_ms=st.integers(2, 100), tau_ms=st.integers(1, 100),
       cuts=cuts_strategy)  # fmt: skip
def test_time_surfaces_equal_tonic(index, dt_ms, tau_ms, cuts):
    import tonic.transforms as tt

    events, size = _recording(index)
    dt = dt_ms * SCALE_US[index] // 2
    expected = tt.ToTimesurface(sensor_size=size, dt=dt, tau=tau_ms * 1000.0)(events.copy())
    encoder = FrameEncoder(
        size, time_window_us=dt, representation="timesurface", tau_us=tau_ms * 1000.0
    )
    got = _streamed(encoder, events, cuts)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=2e-6, atol=1e-30)


@settings_
@given(index=st.integers(0, 2), which=st.integers(0, 4), param=st.integers(1, 30),
       cuts=cuts_strategy)  # fmt: skip
def test_filters_equal_tonic_through_the_encoder(index, which, param, cuts):
    import tonic.transforms as tt

    from eventsp.events import Downsample

    events, size = _recording(index)
    W, H, _ = size
    if which == 0:
        ours, theirs = Denoise(param * 1000), tt.Denoise(filter_time=param * 1000)
    elif which == 1:
        ours, theirs = RefractoryPeriod(param * 500), tt.RefractoryPeriod(delta=param * 500)
    elif which == 2:
        crop = (max(1, W - param), max(1, H - 2 * param))
        ours, theirs = center_crop(size, crop), tt.CenterCrop(sensor_size=size, size=crop)
    elif which == 3:
        ours, theirs = (
            Downsample(spatial_factor=1 / (1 + param % 4)),
            tt.Downsample(spatial_factor=1 / (1 + param % 4)),
        )
    else:
        target = (max(1, W // (1 + param % 5)), max(1, H // (1 + param % 3)))
        ours = Downsample(target_size=target)
        theirs = tt.Downsample(sensor_size=size, target_size=target)
    kept = theirs(events.copy())
    encoder = FrameEncoder(size, time_window_us=20_000, filters=(ours,))
    expected = _tonic_frames(kept, encoder.output_size, time_window=20_000)
    np.testing.assert_array_equal(_streamed(encoder, events, cuts), expected)


def test_empty_input_keeps_the_frame_layout():
    encoder = FrameEncoder((34, 34, 2), time_window_us=1000)
    frames = encoder.encode(np.zeros(0, dtype=EVENT_DTYPE))
    assert frames.shape == (0, 2, 34, 34)
    assert frames.dtype == np.float32
    state = encoder.init_state()
    frames, state = encoder.push(np.zeros(0, dtype=EVENT_DTYPE), state)
    assert frames.shape == (0, 2, 34, 34)


def test_late_events_are_dropped_and_counted_not_lost():
    events, size = _recording(1)
    encoder = FrameEncoder(size, time_window_us=10_000)
    state = encoder.init_state()
    _, state = encoder.push(events[1000:2000], state)
    late = events[:1000]  # all earlier than what was passed on
    _, state = encoder.push(late[::-1].copy(), state)  # reversed: sorted within the packet
    _, state = encoder.push(events[2000:], state)
    _frames, final = encoder.flush(state)
    assert int(state.order.late) == int((late["t"] < events["t"][1999]).sum())
    assert int(state.order.passed) + int(state.order.late) == len(events)
    assert int(final.order.seen) == len(events), "flush keeps the order counters"


def test_configuration_errors_name_the_problem():
    with pytest.raises(ValueError, match="exactly one"):
        FrameEncoder((34, 34, 2))
    with pytest.raises(ValueError, match="overlap"):
        FrameEncoder((34, 34, 2), time_window_us=100, overlap=100)
    with pytest.raises(ValueError, match="representation"):
        FrameEncoder((34, 34, 2), time_window_us=100, representation="spikes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two polarities"):
        FrameEncoder((34, 34, 1), time_window_us=100, representation="voxel")
    with pytest.raises(ValueError, match="without overlap"):
        FrameEncoder((34, 34, 2), event_count=100, representation="timesurface")
    encoder = FrameEncoder((34, 34, 2), time_window_us=100)
    bad = np.zeros(1, dtype=EVENT_DTYPE)
    bad["x"] = 50
    with pytest.raises(ValueError, match="outside the sensor"):
        encoder.push(bad, encoder.init_state())


def test_strided_views_and_the_callers_array_are_handled():
    events, size = _recording(1)
    view = events[::2]  # not contiguous
    before = view.copy()
    encoder = FrameEncoder(size, time_window_us=25_000, filters=(RefractoryPeriod(100),))
    frames = encoder.encode(view)
    np.testing.assert_array_equal(frames, encoder.encode(view.copy()))
    np.testing.assert_array_equal(view, before)
    assert frames.sum() > 0


@pytest.mark.parametrize("representation", ["count", "binary", "timesurface"])
def test_encode_sorts_unsorted_recordings_and_rejects_bad_ones(representation, rng):
    events, size = _recording(1)
    shuffled = events[rng.permutation(len(events))]
    encoder = FrameEncoder(size, time_window_us=20_000, representation=representation)
    np.testing.assert_array_equal(encoder.encode(shuffled), encoder.encode(events))
    bad = events.copy()
    bad["y"][len(bad) // 2] = 40
    with pytest.raises(ValueError, match="outside the sensor"):
        encoder.encode(bad)


def test_filters_and_pushes_never_modify_or_keep_the_callers_events():
    from eventsp.events import Downsample, take_events

    events, size = _recording(1)
    original = events.copy()
    for f in (Downsample(spatial_factor=0.5), center_crop(size, 20), Denoise(5000)):
        f.apply(events, size, f.init_state(size))
        np.testing.assert_array_equal(events, original)
    assert not np.shares_memory(take_events(events, slice(None)), events)
    encoder = FrameEncoder(size, time_window_us=10**9)  # nothing completes: all is buffered
    packet = events.copy()
    _, state = encoder.push(packet, encoder.init_state())
    packet["x"] = 0  # the caller reuses its buffer
    np.testing.assert_array_equal(encoder.flush(state)[0], encoder.encode(events))


@settings_
@given(
    index=st.integers(0, 2),
    window_ms=st.integers(1, 120),
    overlap_frac=st.sampled_from([0.0, 0.5]),
    representation=st.sampled_from(["count", "binary"]),
    cuts=cuts_strategy,
    seed=st.integers(0, 2**32 - 1),
)
def test_disorder_inside_packets_is_sorted_away(
    index, window_ms, overlap_frac, representation, cuts, seed
):
    # Packets whose ends are in order but whose middle is not look sorted to the fast path;
    # its checks must catch the disorder and sort the packet (the frames are tonic's).
    events, size = _recording(index)
    window = window_ms * SCALE_US[index]
    overlap = int(window * overlap_frac)
    expected = _tonic_frames(events, size, time_window=window, overlap=overlap)
    if representation == "binary":
        expected = np.minimum(expected, 1)
    encoder = FrameEncoder(
        size, time_window_us=window, overlap=overlap, representation=representation
    )
    rng = np.random.default_rng(seed)
    bounds = sorted({0, len(events), *(int(c * len(events)) for c in cuts)})
    packets = []
    for a, b in itertools.pairwise(bounds):
        packet = events[a:b].copy()
        if len(packet) > 3:
            i, j = rng.integers(1, len(packet) - 1, size=2)
            packet[[i, j]] = packet[[j, i]]
        packets.append(packet)
    frames = list(encode_stream(encoder, packets))
    got = np.concatenate(frames) if frames else np.zeros((0, *encoder.frame_shape), np.float32)
    np.testing.assert_array_equal(got, expected)
    shuffled = np.concatenate(packets)
    if len(shuffled) > 3:  # one swap between two events inside the whole recording
        shuffled[[1, -2]] = shuffled[[-2, 1]]
        np.testing.assert_array_equal(encoder.encode(shuffled), expected)


@pytest.mark.parametrize("where", [0, 1, 2])
def test_invalid_events_anywhere_in_a_packet_raise(where):
    events, size = _recording(1)
    position = [0, len(events) // 2, len(events) - 1][where]
    off_sensor = events.copy()
    off_sensor["x"][position] = -1
    on_events = events.copy()
    on_events["p"] = False
    on_events["p"][position] = True
    for bad, sensor, message in [
        (off_sensor, size, "outside the sensor"),
        (on_events, (*size[:2], 1), "both polarities"),
    ]:
        for representation in ("count", "binary"):
            encoder = FrameEncoder(sensor, time_window_us=5000, representation=representation)
            with pytest.raises(ValueError, match=message):
                encoder.encode(bad)
            with pytest.raises(ValueError, match=message):
                encoder.push(bad, encoder.init_state())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(time_window_us=40_000, overlap=30_000),
        dict(time_window_us=7000, include_incomplete=True),
        dict(event_count=500, overlap=100, include_incomplete=True),
        dict(event_count=300, representation="binary"),
    ],
)
def test_count_frames_buffer_events_when_open_windows_would_take_too_much_memory(
    kwargs, monkeypatch
):
    from eventsp.events import encoders

    events, size = _recording(0)
    monkeypatch.setattr(encoders, "_MAX_OPEN_BYTES", 0)  # read when the encoder is made
    encoder = FrameEncoder(size, **kwargs)
    _, state = encoder.push(events[:1000], encoder.init_state())
    assert state.buffer.size > 0, "events of open windows are buffered"
    assert state.memory.size == 0, "no frames are kept"
    tonic_kwargs = {
        "time_window" if k == "time_window_us" else k: v
        for k, v in kwargs.items()
        if k != "representation"
    }
    expected = _tonic_frames(events, size, **tonic_kwargs)
    if kwargs.get("representation") == "binary":
        expected = np.minimum(expected, 1)
    np.testing.assert_array_equal(_streamed(encoder, events, [0.1, 0.35, 0.36, 0.9]), expected)


@pytest.mark.parametrize("buffered", [False, True])
def test_a_filter_that_breaks_the_contract_is_named(buffered, monkeypatch):
    from eventsp.events import encoders

    class Shift:  # a user-written filter whose output leaves its own sensor size
        def output_size(self, sensor_size):
            return sensor_size

        def init_state(self, sensor_size):
            return np.zeros(0)

        def apply(self, events, sensor_size, state):
            out = events.copy()
            out["x"] += sensor_size[0]
            return out, state

    events, size = _recording(1)
    if buffered:
        monkeypatch.setattr(encoders, "_MAX_OPEN_BYTES", 0)
    encoder = FrameEncoder(size, time_window_us=5000, filters=(Shift(),))
    with pytest.raises(ValueError, match="filters"):
        encoder.push(events, encoder.init_state())
