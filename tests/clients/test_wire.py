"""The wire formats: PCM and packed events round trip, malformed bytes are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsp.clients.wire import (
    WIRE_EVENT_DTYPE,
    decode_pcm,
    encode_pcm,
    pack_events,
    unpack_events,
)
from eventsp.events.contract import EVENT_DTYPE


def test_pcm_round_trips_in_both_formats(rng):
    x = np.clip(rng.standard_normal(1000) * 0.3, -1, 1).astype(np.float32)
    np.testing.assert_array_equal(decode_pcm(encode_pcm(x, "PCM_F32LE"), "PCM_F32LE"), x)
    s16 = decode_pcm(encode_pcm(x, "PCM_S16LE"), "PCM_S16LE")
    np.testing.assert_allclose(s16, x, atol=1 / 32768)
    ints = (x * 32767).astype(np.int16)
    decoded = decode_pcm(encode_pcm(ints), "PCM_S16LE")
    assert decoded.dtype == np.float32
    assert decoded.flags.writeable
    np.testing.assert_array_equal(decoded * 32768, ints)
    np.testing.assert_array_equal(decoded, ints.astype(np.float32) / np.float32(32768))
    assert (
        encode_pcm(np.array([2.0, -2.0]), "PCM_S16LE") == np.array([32767, -32768], "<i2").tobytes()
    )  # clipped, not wrapped


@pytest.mark.parametrize(
    ("data", "fmt", "fragment"),
    [
        (b"\0" * 3, "PCM_S16LE", "multiple of 2"),
        (b"\0" * 6, "PCM_F32LE", "multiple of 4"),
        (np.array([np.inf], "<f4").tobytes(), "PCM_F32LE", "finite"),
        (b"", "PCM_U8", "PCM_U8"),
    ],
)
def test_malformed_pcm_is_refused(data, fmt, fragment):
    with pytest.raises(ValueError, match=fragment):
        decode_pcm(data, fmt)


def test_encode_refuses_multichannel_audio():
    with pytest.raises(ValueError, match="mono"):
        encode_pcm(np.zeros((2, 10)))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 639), st.integers(0, 479), st.integers(0, 2**40), st.booleans()),
        max_size=50,
    )
)
def test_events_round_trip(rows):
    events = np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, EVENT_DTYPE)
    data = pack_events(events)
    assert len(data) == events.size * 13 == events.size * WIRE_EVENT_DTYPE.itemsize
    back = unpack_events(data)
    for name in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(back[name].astype(np.int64), events[name].astype(np.int64))


def test_truncated_events_and_wrong_fields_are_refused():
    with pytest.raises(ValueError, match="multiple of 13"):
        unpack_events(b"\0" * 14)
    with pytest.raises(ValueError, match="x, y, t, p"):
        pack_events(np.zeros(3, dtype=[("x", "i2"), ("t", "i8")]))
