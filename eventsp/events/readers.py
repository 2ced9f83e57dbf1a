"""Read event recordings as a stream of bounded packets, in constant memory.

:func:`open_recording` recognises the format (:mod:`eventsp.events.formats`), reads the header
and returns a :class:`Recording`; ``recording.packets()`` yields packets of at most about
``chunk_events`` events (:data:`~eventsp.events.contract.EVENT_DTYPE`, file order), so a 10 GB
file streams through a few MB of memory. :func:`read_events` concatenates them for small files.

Decoders: Prophesee EVT2, EVT3 and .dat through expelliarmus' chunked ``Wizard``; AEDAT4
through ``aedat`` (the library ``tonic.io.read_aedat4`` uses) packet by packet; numpy ``.npy``
through a memory map; HDF5 through h5py slices. tonic reads N-MNIST ``.bin`` and AEDAT2 files
whole, so their decoding (the bit layouts of ``tonic.io.read_mnist_file`` and
``tonic.io.read_dvs_128`` / ``read_davis_346``) is applied here chunk by chunk, carrying the
N-MNIST timestamp overflow and AEDAT2's 32-bit timestamp wrap across chunks.

Errors: every problem with a file's bytes (empty, wrong magic, truncated, corrupt, events off
the sensor) raises :class:`~eventsp.events.contract.EventFormatError`, also while iterating;
a missing file raises ``FileNotFoundError``. A file with a valid header and no events is a
recording of zero events, not an error; a zero-byte file is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eventsp.events.contract import (
    EVENT_DTYPE,
    EventContractError,
    EventFormatError,
    EventPacket,
    SensorSize,
    as_events,
    check_sensor_size,
    empty_events,
    take_events,
)
from eventsp.events.formats import detect_format, read_header

__all__ = ["DEFAULT_CHUNK_EVENTS", "Recording", "open_recording", "read_events"]

DEFAULT_CHUNK_EVENTS = 1 << 16
MAX_AEDAT4_HEADER = 1 << 24


@dataclass(frozen=True)
class Recording:
    """An opened recording: what it is and how to stream it (nothing is read until iterated)."""

    path: Path
    format: str
    sensor_size: SensorSize
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    data_offset: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensor_size", check_sensor_size(self.sensor_size))
        if int(self.chunk_events) < 1:
            raise ValueError(f"chunk_events={self.chunk_events} must be a positive event count")

    def packets(self) -> Iterator[np.ndarray]:
        """Yield the file's events in file order, in packets of about ``chunk_events``."""
        W, H, P = self.sensor_size
        for packet in _raw_packets(self):
            if packet.size == 0:
                continue
            x, y = packet["x"], packet["y"]
            if x.min() < 0 or y.min() < 0 or x.max() >= W or y.max() >= H:
                raise EventFormatError(
                    f"{self.path}: events at x up to {int(x.max())}, y up to {int(y.max())} lie "
                    f"outside the {W}x{H} sensor; the file is corrupt, or pass sensor_size="
                )
            if P == 1:
                packet = take_events(packet, slice(None))
                packet["p"] = False
            yield packet


def open_recording(
    path: str | Path,
    *,
    sensor_size: SensorSize | None = None,
    chunk_events: int = DEFAULT_CHUNK_EVENTS,
) -> Recording:
    """Recognise and open ``path``; ``sensor_size`` overrides what the file says or implies."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording at {path}")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise EventFormatError(f"{path}: the file is empty (0 bytes)")
    fmt = detect_format(path, head)
    header = read_header(path, fmt)
    size = sensor_size or header.sensor_size
    if size is None and fmt == "aedat4":
        size = _aedat4_stream(path)[1]
    if size is None and fmt == "hdf5":
        size = _hdf5_sensor_size(path)
    if size is None:
        size = _infer_sensor_size(
            Recording(path, fmt, (32767, 32767, 2), chunk_events, header.data_offset), fmt
        )
    return Recording(path, fmt, size, int(chunk_events), header.data_offset, header.detail)


def read_events(
    path: str | Path, *, sensor_size: SensorSize | None = None
) -> tuple[EventPacket, Recording]:
    """The whole recording at once (small files): the packet and the opened recording."""
    recording = open_recording(path, sensor_size=sensor_size)
    chunks = list(recording.packets())
    events = np.concatenate(chunks) if chunks else empty_events()
    return EventPacket(events, recording.sensor_size), recording


def _infer_sensor_size(recording: Recording, fmt: str) -> SensorSize:
    """Sensor size from the data: N-MNIST from its first packet, numpy/HDF5 from a full scan."""
    xmax = ymax = 0
    for packet in _raw_packets(recording):
        if packet.size:
            xmax = max(xmax, int(packet["x"].max()))
            ymax = max(ymax, int(packet["y"].max()))
            if fmt == "nmnist":
                break
    if fmt == "nmnist":
        side = 34 if max(xmax, ymax) < 34 else 128 if max(xmax, ymax) < 128 else 256
        return (side, side, 2)
    return (xmax + 1, ymax + 1, 2)


def _raw_packets(recording: Recording) -> Iterator[np.ndarray]:
    decoders = {
        "nmnist": _nmnist_packets,
        "bs1": _bs1_packets,
        "aedat2": _aedat2_packets,
        "aedat4": _aedat4_packets,
        "evt2": _prophesee_packets,
        "evt3": _prophesee_packets,
        "dat": _prophesee_packets,
        "npy": _npy_packets,
        "hdf5": _hdf5_packets,
    }
    try:
        yield from decoders[recording.format](recording)
    except (EventFormatError, FileNotFoundError):
        raise
    except EventContractError as exc:
        raise EventFormatError(f"{recording.path}: {exc}") from exc
    except Exception as exc:
        # Decoders fail on corrupt bytes with anything from OSError to SyntaxError (np.load's
        # header parser); every failure while decoding the file's bytes is a format error.
        raise _decode_error(recording.path, recording.format, exc) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        # aedat (Rust, pyo3) panics on some corrupt headers; a panic is not an Exception.
        raise _decode_error(recording.path, recording.format, exc) from exc


def _decode_error(path: Path, fmt: str, exc: BaseException) -> EventFormatError:
    return EventFormatError(
        f"{path}: cannot decode this {fmt} file ({exc}); it is corrupt or truncated"
    )


def _nmnist_packets(recording: Recording) -> Iterator[np.ndarray]:
    """N-MNIST 40-bit events, decoded as ``tonic.io.read_mnist_file`` does, chunk by chunk."""
    chunk_bytes = 5 * int(recording.chunk_events)
    overflows = 0  # overflow records seen in earlier chunks, each worth 2**13 µs
    with open(recording.path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            if not raw:
                return
            if len(raw) % 5:
                raise EventFormatError(
                    f"{recording.path}: {len(raw) % 5} trailing bytes after the last whole "
                    "40-bit event; the N-MNIST file is truncated"
                )
            data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
            is_overflow = data[:, 1] == 240
            count = np.cumsum(is_overflow) + overflows
            overflows = int(count[-1])
            t = ((data[:, 2] & 127) << 16) | (data[:, 3] << 8) | data[:, 4]
            keep = ~is_overflow
            out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
            out["x"] = data[keep, 0]
            out["y"] = data[keep, 1]
            out["t"] = t[keep] + (count[keep] << 13)
            out["p"] = (data[keep, 2] & 128) != 0
            yield out


def _bs1_packets(recording: Recording) -> Iterator[np.ndarray]:
    """slayerPytorch 1-D spikes (``read1Dspikes``): ``channel 16 | p 1 | t 23`` big-endian."""
    with open(recording.path, "rb") as f:
        while True:
            raw = f.read(5 * int(recording.chunk_events))
            if not raw:
                return
            if len(raw) % 5:
                raise EventFormatError(
                    f"{recording.path}: {len(raw) % 5} trailing bytes after the last whole "
                    "40-bit spike; the .bs1 file is truncated"
                )
            data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
            out = np.zeros(data.shape[0], dtype=EVENT_DTYPE)
            channel = (data[:, 0] << 8) | data[:, 1]
            if channel.max() > 32767:
                raise EventFormatError(
                    f"{recording.path}: channel {int(channel.max())} exceeds the int16 x range"
                )
            out["x"] = channel
            out["t"] = ((data[:, 2] << 16) | (data[:, 3] << 8) | data[:, 4]) & 0x7FFFFF
            out["p"] = (data[:, 2] >> 7) != 0
            yield out


def _aedat2_packets(recording: Recording) -> Iterator[np.ndarray]:
    """jAER AEDAT 2: big-endian (address u32, timestamp u32) records after the ``#`` header.

    Address bits as in tonic's ``read_dvs_128`` and ``read_davis_346`` (DAVIS240 alike);
    DAVIS records with bit 31 set (APS frames, IMU) are not polarity events and are skipped.
    """
    chip = recording.detail.split("|", 1)[0] or "dvs128"
    W, H = recording.sensor_size[:2]
    record = np.dtype([("a", ">u4"), ("t", ">u4")])
    wraps = 0
    last_t = -1
    with open(recording.path, "rb") as f:
        f.seek(recording.data_offset)
        while True:
            raw = f.read(8 * int(recording.chunk_events))
            if not raw:
                return
            if len(raw) % 8:
                raise EventFormatError(
                    f"{recording.path}: {len(raw) % 8} trailing bytes after the last whole "
                    "8-byte AEDAT2 record; the file is truncated"
                )
            data = np.frombuffer(raw, dtype=record)
            a = data["a"].astype(np.int64)
            t = data["t"].astype(np.int64)
            # 32-bit µs timestamps wrap every ~71.6 min: a drop of more than 2**31 is a wrap.
            prev = np.concatenate(([last_t if last_t >= 0 else t[0]], t[:-1]))
            wrap_count = np.cumsum(prev - t > (1 << 31)) + wraps
            last_t, wraps = int(t[-1]), int(wrap_count[-1])
            t = t + (wrap_count << 32)
            if chip == "dvs128":
                x, y, p = (a >> 8) & 0x7F, (a >> 1) & 0x7F, a & 1
                keep = np.ones(a.shape, dtype=bool)
            else:
                keep = (a >> 31) == 0
                x = (W - 1) - ((a & 0x3FF000) >> 12)
                y = (H - 1) - ((a & 0x7FC00000) >> 22)
                p = (a & 2048) >> 11
            out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
            out["x"], out["y"], out["t"], out["p"] = x[keep], y[keep], t[keep], p[keep] != 0
            yield out


def _check_aedat4_header(path: Path) -> None:
    """Check the AEDAT4 header's XML description is whole UTF-8 before ``aedat`` parses it:
    aedat 2.x aborts the whole process (a Rust panic during a panic) on invalid UTF-8 there."""
    with open(path, "rb") as f:
        head = f.read(18)
        size = int.from_bytes(head[14:18], "little") if len(head) == 18 else -1
        header = f.read(size) if 0 < size <= MAX_AEDAT4_HEADER else b""
    start = header.find(b"<")
    length = int.from_bytes(header[start - 4 : start], "little") if start >= 4 else -1
    try:
        if length < 1 or start + length > len(header):
            raise ValueError("no description")
        header[start : start + length].decode("utf-8")
    except ValueError as exc:
        raise EventFormatError(
            f"{path}: the AEDAT4 header (IOHeader of {size} bytes) is truncated or corrupt"
        ) from exc


def _aedat4_stream(path: Path) -> tuple[int, SensorSize]:
    import aedat

    _check_aedat4_header(path)
    try:
        streams = aedat.Decoder(str(path)).id_to_stream()
    except BaseException as exc:
        if not isinstance(exc, RuntimeError) and type(exc).__name__ != "PanicException":
            raise
        raise EventFormatError(f"{path}: not a readable AEDAT4 file ({exc})") from exc
    ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if not ids:
        raise EventFormatError(f"{path}: the AEDAT4 file has no event stream")
    info = streams[ids[0]]
    return ids[0], (int(info["width"]), int(info["height"]), 2)


def _aedat4_packets(recording: Recording) -> Iterator[np.ndarray]:
    """AEDAT4 through ``aedat.Decoder``, one file packet at a time (as tonic.io.read_aedat4)."""
    import aedat

    stream_id = _aedat4_stream(recording.path)[0]
    for packet in aedat.Decoder(str(recording.path)):
        if packet["stream_id"] == stream_id and "events" in packet:
            yield as_events(packet["events"])


def _prophesee_packets(recording: Recording) -> Iterator[np.ndarray]:
    """EVT2, EVT3 and .dat through expelliarmus' chunked reader."""
    from expelliarmus import Wizard

    encoding = {"evt2": "EVT2", "evt3": "EVT3", "dat": "DAT"}[recording.format]
    suffix = ".dat" if recording.format == "dat" else ".raw"
    if recording.path.suffix.lower() != suffix:
        raise EventFormatError(
            f"{recording.path}: its header says {encoding}, but expelliarmus reads {encoding} "
            f"only from files named *{suffix}; rename the file (or link it) with that extension"
        )
    wizard = Wizard(
        encoding=encoding, fpath=str(recording.path), chunk_size=int(recording.chunk_events)
    )
    for chunk in wizard.read_chunk():
        yield as_events(chunk)


def _npy_packets(recording: Recording) -> Iterator[np.ndarray]:
    """A ``.npy`` structured array with fields x, y, t, p, memory-mapped and sliced."""
    array = np.load(recording.path, mmap_mode="r", allow_pickle=False)
    if array.dtype.names is None or array.ndim != 1:
        raise EventFormatError(
            f"{recording.path}: holds a {array.ndim}-D {array.dtype} array; expected a 1-D "
            "structured array with fields x, y, t, p (save it with eventsp.events.EVENT_DTYPE)"
        )
    step = int(recording.chunk_events)
    for start in range(0, array.shape[0], step):
        yield as_events(np.asarray(array[start : start + step]))


def _hdf5_sensor_size(path: Path) -> SensorSize | None:
    """``sensor_size`` (W, H, P) or ``width``/``height`` attributes of the file or ``events``."""
    import h5py

    found = None
    try:
        with h5py.File(path, "r") as h5:
            for node in (h5, h5.get("events")):
                attrs = getattr(node, "attrs", {})
                if "sensor_size" in attrs:
                    found = np.asarray(attrs["sensor_size"]).tolist()
                elif "width" in attrs and "height" in attrs:
                    found = [int(attrs["width"]), int(attrs["height"]), 2]
                if found is not None:
                    break
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        # h5py reports corrupt bytes as any of these (a damaged header can look like a
        # missing key): all are format errors.
        raise _decode_error(path, "hdf5", exc) from exc
    if found is None:
        return None
    try:
        return check_sensor_size(found)
    except EventContractError as exc:  # the file's attribute, not the caller's argument
        raise EventFormatError(f"{path}: the file's sensor size attribute: {exc}") from exc


def _hdf5_packets(recording: Recording) -> Iterator[np.ndarray]:
    """HDF5: a compound dataset ``events`` (x, y, t, p), or a group ``events`` (or the root)
    with one dataset per field, read slice by slice."""
    import h5py

    step = int(recording.chunk_events)
    with h5py.File(recording.path, "r") as h5:
        node = h5.get("events", h5)
        if isinstance(node, h5py.Dataset):
            if node.dtype.names is None or node.ndim != 1:
                raise EventFormatError(
                    f"{recording.path}: dataset 'events' is {node.dtype} {node.shape}, expected "
                    "a 1-D compound dataset with fields x, y, t, p"
                )
            for start in range(0, node.shape[0], step):
                yield as_events(node[start : start + step])
            return
        missing = [k for k in "xytp" if k not in node]
        if missing:
            raise EventFormatError(
                f"{recording.path}: no 'events' dataset and no datasets {missing} in "
                f"{node.name!r}; expected events as x, y, t, p"
            )
        n = node["t"].shape[0]
        if any(node[k].shape != (n,) for k in "xyp"):
            raise EventFormatError(f"{recording.path}: datasets x, y, t, p differ in length")
        for start in range(0, n, step):
            sl = slice(start, start + step)
            out = np.empty(min(step, n - start), dtype=EVENT_DTYPE)
            for k in "xyt":
                out[k] = node[k][sl]
            out["p"] = node["p"][sl] != 0
            yield out
