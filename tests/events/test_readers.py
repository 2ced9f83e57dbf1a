"""Readers on the real files of every format, chunked equals whole, bounded memory, errors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from eventsp.events import EVENT_DTYPE, EventFormatError, open_recording, read_events

FORMATS_DIR = ("events", "formats")

# file -> (format, sensor size, event count); counts cross-checked against tonic, expelliarmus
# and the reference decode below, sizes from the file headers / the cameras.
REAL_FILES = {
    "sample_nmnist.bin": ("nmnist", (34, 34, 2), 4325),
    "sample.aedat4": ("aedat4", (320, 240, 2), 111954),
    "sample_aedat_header.aedat": ("aedat2", (346, 260, 2), 0),
    "evt2_sample.raw": ("evt2", (640, 480, 2), 539481),
    "evt3_sample.raw": ("evt3", (1280, 720, 2), 219596),
    "evt3_sample.npy": ("npy", (1280, 720, 2), 219596),
    "sample_ncars.dat": ("dat", (304, 240, 2), 2009),
    "ntidigits_sample.bs1": ("bs1", (64, 1, 2), 898),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_every_format_reads_its_real_file(data_root, name):
    fmt, size, count = REAL_FILES[name]
    packet, recording = read_events(data_root.joinpath(*FORMATS_DIR, name))
    assert recording.format == fmt
    assert packet.sensor_size == size
    assert packet.events.dtype == EVENT_DTYPE
    assert len(packet) == count
    if count:
        assert np.all(np.diff(packet.events["t"]) >= 0), f"{name} is not time-sorted"


@pytest.mark.parametrize("name", ["sample_nmnist.bin", "evt2_sample.raw", "sample.aedat4"])
def test_chunked_reading_equals_whole_reading(data_root, name):
    path = data_root.joinpath(*FORMATS_DIR, name)
    whole = read_events(path)[0].events
    small = open_recording(path, chunk_events=997)
    packets = list(small.packets())
    assert len(packets) > 1
    if name != "sample.aedat4":  # AEDAT4 packets are the file's own packets
        assert max(len(p) for p in packets) <= 997 + 12
    np.testing.assert_array_equal(np.concatenate(packets), whole)


def test_nmnist_equals_tonic(data_root):
    import tonic.io

    paths = [
        data_root / "events" / "formats" / "sample_nmnist.bin",
        data_root / "events" / "dvs128" / "clip1.bin",
        *sorted((data_root / "nmnist_small" / "train").glob("*.bin"))[:5],
    ]
    for path in paths:
        expected = tonic.io.read_mnist_file(str(path), tonic.io.events_struct)
        recording = open_recording(path, chunk_events=501)  # overflow carried across chunks
        got = np.concatenate(list(recording.packets()))
        np.testing.assert_array_equal(got, expected)
    assert open_recording(paths[1]).sensor_size == (128, 128, 2)


def test_evt3_equals_reference_decode(data_root):
    reference = np.load(data_root.joinpath(*FORMATS_DIR, "evt3_sample.npy"))
    got = read_events(data_root.joinpath(*FORMATS_DIR, "evt3_sample.raw"))[0].events
    for field in "xytp":
        np.testing.assert_array_equal(got[field].astype(np.int64), reference[field])


def test_aedat4_equals_aedat_decoder(data_root):
    import aedat

    path = data_root.joinpath(*FORMATS_DIR, "sample.aedat4")
    parts = [p["events"] for p in aedat.Decoder(str(path)) if p["stream_id"] == 0]
    expected = np.concatenate(parts)
    got = read_events(path)[0].events
    np.testing.assert_array_equal(got["t"], expected["t"].astype(np.int64))
    np.testing.assert_array_equal(got["x"], expected["x"])
    np.testing.assert_array_equal(got["p"], expected["on"])


def _aedat2_file(path: Path, header: bytes, address: np.ndarray, t: np.ndarray) -> Path:
    records = np.zeros(len(t), dtype=[("a", ">u4"), ("t", ">u4")])
    records["a"], records["t"] = address, t
    path.write_bytes(header + records.tobytes())
    return path


def test_aedat2_davis346_equals_tonic(data_root, tmp_path, rng):
    import tonic.io

    header = data_root.joinpath(*FORMATS_DIR, "sample_aedat_header.aedat").read_bytes()
    n = 3000
    x, y, p = rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)
    address = ((259 - y) << 22) | ((345 - x) << 12) | (p << 11)
    t = np.sort(rng.integers(0, 10**6, n))
    path = _aedat2_file(tmp_path / "davis.aedat", header, address, t)
    expected = tonic.io.read_davis_346(str(path))[2]
    got = np.concatenate(list(open_recording(path, chunk_events=700).packets()))
    np.testing.assert_array_equal(got, expected)


def test_aedat2_dvs128_and_timestamp_wrap(tmp_path, rng):
    header = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"
    n = 1000
    x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 2**33, n)) % 2**32  # wraps at 2**32 µs
    path = _aedat2_file(tmp_path / "dvs.aedat", header, (y << 1) | (x << 8) | p, t)
    recording = open_recording(path, chunk_events=64)
    assert recording.sensor_size == (128, 128, 2)
    got = np.concatenate(list(recording.packets()))
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got["p"], p == 1)
    assert np.all(np.diff(got["t"]) >= 0), "wrapped timestamps were not unwrapped"
    np.testing.assert_array_equal(got["t"] % 2**32, t)


def test_hdf5_layouts_and_npy(tmp_path, rng):
    import h5py

    n = 5000
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["x"], events["y"] = rng.integers(0, 60, n), rng.integers(0, 50, n)
    events["t"], events["p"] = np.sort(rng.integers(0, 10**7, n)), rng.integers(0, 2, n)
    with h5py.File(tmp_path / "compound.h5", "w") as h5:
        h5.create_dataset("events", data=events)
        h5.attrs["sensor_size"] = (64, 64, 2)
    with h5py.File(tmp_path / "split.hdf5", "w") as h5:
        group = h5.create_group("events")
        for field in "xytp":
            group.create_dataset(field, data=events[field].astype(np.int64))
        group.attrs["width"], group.attrs["height"] = 80, 60
    np.save(tmp_path / "events.npy", events)
    for name, size in [("compound.h5", (64, 64, 2)), ("split.hdf5", (80, 60, 2))]:
        recording = open_recording(tmp_path / name, chunk_events=999)
        assert (recording.format, recording.sensor_size) == ("hdf5", size)
        np.testing.assert_array_equal(np.concatenate(list(recording.packets())), events)
    packet, recording = read_events(tmp_path / "events.npy")
    assert recording.format == "npy"
    assert packet.sensor_size == (int(events["x"].max()) + 1, int(events["y"].max()) + 1, 2)
    np.testing.assert_array_equal(packet.events, events)


def test_a_bad_hdf5_sensor_size_attribute_is_a_format_error_naming_the_file(tmp_path):
    import h5py

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("events", data=np.zeros(3, dtype=EVENT_DTYPE))
        h5.attrs["sensor_size"] = (-5, 34, 2)
    with pytest.raises(EventFormatError, match=r"bad\.h5: the file's sensor size attribute"):
        open_recording(path)


def _nmnist_bytes(n: int, rng: np.random.Generator) -> bytes:
    raw = np.zeros((n, 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = rng.integers(0, 34, n), rng.integers(0, 34, n)
    t = np.sort(rng.integers(0, 2**23, n))
    raw[:, 2] = (t >> 16) | (rng.integers(0, 2, n) << 7)
    raw[:, 3], raw[:, 4] = (t >> 8) & 255, t & 255
    return raw.tobytes()


def test_streaming_memory_does_not_grow_with_file_size(tmp_path, rng):
    chunk = 4096
    block = _nmnist_bytes(chunk * 10, rng)
    peaks = []
    for copies in (2, 16):  # 20x and 160x the chunk size (5 bytes per event)
        path = tmp_path / f"big{copies}.bin"
        path.write_bytes(block * copies)
        recording = open_recording(path, sensor_size=(34, 34, 2), chunk_events=chunk)
        tracemalloc.start()
        count = sum(len(p) for p in recording.packets())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == 10 * chunk * copies
    assert peaks[1] < 1.25 * peaks[0] + 64 * 1024, f"peak memory grew with file size: {peaks}"
    # Decoding widens each 5-byte event to a few int64s: a bound in chunks, not in files.
    assert peaks[1] < 40 * 5 * chunk, f"peak {peaks[1]} B is not bounded by the chunk size"


def test_clear_errors_for_empty_wrong_magic_and_truncated(tmp_path, data_root):
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(EventFormatError, match="empty"):
        open_recording(tmp_path / "empty.bin")
    (tmp_path / "bad.aedat4").write_bytes(b"not an aedat file at all")
    with pytest.raises(EventFormatError, match="magic"):
        open_recording(tmp_path / "bad.aedat4")
    (tmp_path / "what.xyz").write_bytes(b"\x00\x01\x02")
    with pytest.raises(EventFormatError, match="unknown event format"):
        open_recording(tmp_path / "what.xyz")
    source = data_root.joinpath(*FORMATS_DIR, "sample_nmnist.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(source[:-2])
    with pytest.raises(EventFormatError, match="truncated"):
        read_events(tmp_path / "cut.bin")
    source = data_root.joinpath(*FORMATS_DIR, "sample.aedat4").read_bytes()
    (tmp_path / "cut.aedat4").write_bytes(source[: len(source) // 2])
    with pytest.raises(EventFormatError, match="corrupt or truncated"):
        read_events(tmp_path / "cut.aedat4")
    with pytest.raises(FileNotFoundError):
        open_recording(tmp_path / "missing.bin")


def test_events_outside_the_stated_sensor_are_a_format_error(data_root):
    path = data_root / "events" / "dvs128" / "clip1.bin"
    with pytest.raises(EventFormatError, match="outside the 34x34 sensor"):
        read_events(path, sensor_size=(34, 34, 2))


def test_prophesee_file_with_another_extension_says_so(data_root, tmp_path):
    renamed = tmp_path / "recording.evt3"
    renamed.write_bytes(data_root.joinpath(*FORMATS_DIR, "evt3_sample.raw").read_bytes())
    recording = open_recording(renamed)
    assert recording.format == "evt3"
    with pytest.raises(EventFormatError, match=r"named \*\.raw"):
        next(recording.packets())


def test_bs1_decodes_slayer_layout(data_root):
    events = read_events(data_root.joinpath(*FORMATS_DIR, "ntidigits_sample.bs1"))[0].events
    # First bytes 00 3f 80 00 00 | 00 3f 80 04 00 | 00 3f 80 09 00: channel 63, ON, t 0/1024/2304.
    assert events["x"][:3].tolist() == [63, 63, 63]
    assert events["t"][:3].tolist() == [0, 0x400, 0x900]
    assert events["p"].all()
    assert not events["y"].any()
