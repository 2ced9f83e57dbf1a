"""The event contract: dtype, validation errors, and the time-order policy for streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.events import (
    EVENT_DTYPE,
    EventContractError,
    EventPacket,
    as_events,
    check_sensor_size,
    init_order,
    order_packet,
    validate_events,
)


def _events(x, y, t, p) -> np.ndarray:
    out = np.zeros(len(t), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def test_dtype_is_tonics():
    import tonic.io

    assert tonic.io.events_struct == EVENT_DTYPE


@pytest.mark.parametrize("size", [(34, 34), (0, 34, 2), (34, 34, 3), "abc", None, (40000, 2, 2)])
def test_bad_sensor_sizes_raise_with_the_value(size):
    with pytest.raises(EventContractError, match="sensor_size"):
        check_sensor_size(size)


def test_validation_names_coordinates_outside_the_sensor():
    events = _events([0, 40], [0, 3], [0, 1], [True, False])
    with pytest.raises(EventContractError, match=r"x in \[0, 40\].*34x34"):
        validate_events(events, (34, 34, 2))
    with pytest.raises(EventContractError, match="P=1"):
        validate_events(_events([0], [0], [0], [True]), (34, 34, 1))
    with pytest.raises(EventContractError, match=r"negative|outside"):
        validate_events(_events([-1], [0], [0], [False]), (34, 34, 2))


def test_validation_rejects_wrong_dtypes_and_fields():
    with pytest.raises(EventContractError, match="dtype"):
        validate_events(np.zeros((3, 4), dtype=np.int64), (34, 34, 2))
    with pytest.raises(EventContractError, match=r"lack the fields \['y'\]"):
        as_events(np.zeros(2, dtype=[("x", "i2"), ("t", "i8"), ("p", "u1")]))
    with pytest.raises(EventContractError, match="integer microseconds"):
        as_events(np.zeros(2, dtype=[("x", "i2"), ("y", "i2"), ("t", "f8"), ("p", "u1")]))
    with pytest.raises(EventContractError):
        EventPacket(np.zeros(2, dtype=[("x", "i2")]), (34, 34, 2))


def test_as_events_converts_other_layouts():
    raw = np.zeros(3, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    raw["t"], raw["x"], raw["y"], raw["on"] = [5, 6, 7], [1, 2, 3], [4, 5, 6], [1, 0, 1]
    out = as_events(raw)
    assert out.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(out["t"], [5, 6, 7])
    np.testing.assert_array_equal(out["p"], [True, False, True])


def test_empty_packet_is_valid():
    packet = EventPacket(np.zeros(0, dtype=EVENT_DTYPE), (34, 34, 2))
    assert len(packet) == 0
    events, state = order_packet(packet.events, init_order())
    assert events.size == 0
    assert int(state.seen) == 0


packets_strategy = st.lists(
    st.lists(st.integers(0, 50), min_size=0, max_size=20), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(packets=packets_strategy)
def test_order_policy_sorts_drops_late_and_counts_everything(packets):
    state = init_order()
    passed = []
    for times in packets:
        events = _events(np.arange(len(times)) % 7, 0, times, False)
        before = events.copy()
        out, state = order_packet(events, state)
        np.testing.assert_array_equal(events, before)  # the caller's array is untouched
        assert np.all(np.diff(out["t"]) >= 0)
        # Dropped events are exactly those earlier than what was already passed on.
        watermark = passed[-1] if passed else None
        expected = (
            sorted(times) if watermark is None else sorted(t for t in times if t >= watermark)
        )
        assert out["t"].tolist() == expected
        passed.extend(out["t"].tolist())
    assert passed == sorted(passed), "the passed stream is in time order"
    total = sum(len(p) for p in packets)
    assert int(state.seen) == total
    assert int(state.passed) == len(passed)
    assert int(state.passed) + int(state.late) == int(state.seen)


def test_order_is_stable_for_equal_times():
    events = _events([3, 1, 2, 0], 0, [5, 2, 5, 2], False)
    out, state = order_packet(events, init_order())
    assert out["x"].tolist() == [1, 0, 3, 2]
    late = _events([9, 8], 0, [4, 5], False)
    out, state = order_packet(late, state)
    assert out["x"].tolist() == [8]
    assert int(state.late) == 1
