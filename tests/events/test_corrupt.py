"""Corrupted bytes thrown at every reader: a clean EventFormatError or events, never a crash or
a hang (pytest-timeout bounds each test)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventsp.events import EVENT_DTYPE, EventFormatError, open_recording

from support import DATA_ROOT

FORMATS = DATA_ROOT / "events" / "formats"


def _npy_bytes() -> bytes:
    import io

    events = np.zeros(300, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"] = np.arange(300) % 30, 3, np.arange(300) * 7
    buffer = io.BytesIO()
    np.save(buffer, events)
    return buffer.getvalue()


def _hdf5_bytes() -> bytes:
    import h5py

    events = np.zeros(300, dtype=EVENT_DTYPE)
    events["x"], events["t"] = np.arange(300) % 30, np.arange(300) * 7
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "e.h5"
        with h5py.File(path, "w") as h5:
            h5.create_dataset("events", data=events)
        return path.read_bytes()


def _aedat2_bytes() -> bytes:
    header = (FORMATS / "sample_aedat_header.aedat").read_bytes()
    records = np.zeros(200, dtype=[("a", ">u4"), ("t", ">u4")])
    records["a"] = (np.arange(200) % 300) << 12
    records["t"] = np.arange(200) * 11
    return header + records.tobytes()


# suffix -> a valid file's bytes (real files, cut to keep examples fast, or small synthetic ones)
SOURCES = {
    ".bin": lambda: (FORMATS / "sample_nmnist.bin").read_bytes()[:4000],
    ".bs1": lambda: (FORMATS / "ntidigits_sample.bs1").read_bytes(),
    ".aedat": _aedat2_bytes,
    ".aedat4": lambda: (FORMATS / "sample.aedat4").read_bytes()[:60000],
    ".raw": lambda: (FORMATS / "evt2_sample.raw").read_bytes()[:6000],
    ".raw3": lambda: (FORMATS / "evt3_sample.raw").read_bytes()[:6000],
    ".dat": lambda: (FORMATS / "sample_ncars.dat").read_bytes()[:6000],
    ".npy": _npy_bytes,
    ".h5": _hdf5_bytes,
}

mutations = st.lists(
    st.tuples(st.sampled_from(["set", "cut", "insert"]), st.floats(0, 1), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


def _mutate(data: bytes, edits: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = int(where * len(out))
        if kind == "set" and out:
            out[min(i, len(out) - 1)] = value
        elif kind == "cut":
            del out[i:]
        else:
            out[i:i] = bytes([value]) * (value % 7 + 1)
    return bytes(out)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suffix", sorted(SOURCES))
def test_corrupted_bytes_give_events_or_a_format_error(suffix):
    source = SOURCES[suffix]()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("f.raw" if suffix == ".raw3" else f"f{suffix}")

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(edits=mutations)
        # Once made h5py raise KeyError while reading the sensor size (now a format error).
        @example(edits=[("insert", 0.009765625, 255)])
        def check(edits):
            path.write_bytes(_mutate(source, edits))
            try:
                recording = open_recording(path, chunk_events=512)
                for packet in recording.packets():
                    assert packet.dtype == EVENT_DTYPE
                    W, H, _ = recording.sensor_size
                    assert packet["x"].max() < W
                    assert packet["y"].max() < H
            except EventFormatError as exc:
                message = str(exc)
            else:
                return
            assert str(path) in message, f"error does not name the file: {message}"

        check()
