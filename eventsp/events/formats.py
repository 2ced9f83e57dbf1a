"""Recognise an event recording's format from its first bytes (magic) and its extension.

=============  =========================================  ==================================
format         how it is recognised                       sensor size from
=============  =========================================  ==================================
``aedat4``     magic ``#!AER-DAT4``                       the file's event stream info
``aedat2``     magic ``#!AER-DAT2`` (jAER, DVS128/DAVIS)  the ``# AEChip:`` header line
``evt2``       ``% evt 2.0`` / ``format EVT2`` header     ``% geometry`` or the plugin name
``evt3``       ``% evt 3.0`` / ``format EVT3`` header     ``% geometry`` or the plugin name
``dat``        ``%`` header and a ``.dat`` extension      ``% Width/Height`` or ATIS 304x240
``npy``        magic ``\\x93NUMPY``                        the caller, or the data's extent
``hdf5``       magic ``\\x89HDF\\r\\n\\x1a\\n``               attributes, or the data's extent
``nmnist``     ``.bin`` extension (no magic in format)    34x34 ATIS; 128x128 past 34
``bs1``        ``.bs1`` extension (no magic in format)    channels seen: (C, 1, 2)
=============  =========================================  ==================================

The N-MNIST ``.bin`` format (Orchard et al. 2015; also used for DVS128 clips) has no header:
40-bit big-endian events ``x 8 | y 8 | p 1 | t 23`` (µs), plus overflow records (``y == 240``)
that add 2**13 µs to every later timestamp. The ``.bs1`` format (slayerPytorch's 1-D binary
spikes, e.g. N-TIDIGITS cochlea recordings) is 40-bit big-endian ``channel 16 | p 1 | t 23``
(µs); its events have ``y = 0`` and the channel as ``x``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from eventsp.events.contract import EventFormatError, SensorSize

__all__ = ["FORMATS", "Header", "detect_format", "read_header"]

FORMATS = ("aedat4", "aedat2", "evt2", "evt3", "dat", "npy", "hdf5", "nmnist", "bs1")

#: The most header bytes a text header may take; more means the file is not what it claims.
MAX_HEADER_BYTES = 1 << 20

# Prophesee camera generations (plugin name fragment) -> (W, H).
_PROPHESEE_PLUGINS = (
    ("gen41", (1280, 720)),
    ("imx636", (1280, 720)),
    ("gen4", (1280, 720)),
    ("gen31", (640, 480)),
    ("gen3", (640, 480)),
    ("imx8", (320, 320)),
)

# jAER chip class fragment (lower case) -> (decoder name, W, H).
AEDAT2_CHIPS = (
    ("davis346", ("davis346", 346, 260)),
    ("davis240", ("davis240", 240, 180)),
    ("dvs128", ("dvs128", 128, 128)),
    ("tmpdiff128", ("dvs128", 128, 128)),
)


@dataclass(frozen=True)
class Header:
    """What a file's header says: format, where events start, sensor size, extra details."""

    format: str
    data_offset: int
    sensor_size: SensorSize | None
    detail: str = ""


def detect_format(path: Path, head: bytes) -> str:
    """The format name for a file whose first bytes are ``head``; raises on unknown formats."""
    suffix = path.suffix.lower()
    if head.startswith(b"#!AER-DAT4"):
        return "aedat4"
    if head.startswith(b"#!AER-DAT"):
        return "aedat2"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"%"):
        lowered = head.lower()
        if b"evt 3" in lowered or b"format evt3" in lowered:
            return "evt3"
        if b"evt 2" in lowered or b"format evt2" in lowered:
            return "evt2"
        if suffix == ".dat":
            return "dat"
        if suffix == ".raw":
            raise EventFormatError(
                f"{path}: a Prophesee .raw file whose header names no EVT 2.0 or 3.0 encoding; "
                "only EVT2 and EVT3 are supported"
            )
    if suffix == ".bin":
        return "nmnist"
    if suffix == ".bs1":
        return "bs1"
    if suffix in (".aedat", ".aedat4", ".raw", ".dat", ".npy", ".h5", ".hdf5"):
        raise EventFormatError(
            f"{path}: the extension says {suffix} but the first bytes {head[:12]!r} are not that "
            "format's magic; the file is corrupt or misnamed"
        )
    raise EventFormatError(
        f"{path}: unknown event format (first bytes {head[:12]!r}); supported: {', '.join(FORMATS)}"
    )


def _text_header(path: Path, marker: bytes) -> tuple[list[str], int]:
    """Lines of a header made of lines starting with ``marker``, and the offset after it."""
    lines: list[str] = []
    offset = 0
    with open(path, "rb") as f:
        while offset < MAX_HEADER_BYTES:
            first = f.read(1)
            if first != marker:
                break
            line = f.readline(MAX_HEADER_BYTES)
            if not line.endswith(b"\n"):
                raise EventFormatError(f"{path}: the text header ends mid-line (truncated file)")
            offset += 1 + len(line)
            lines.append(line.decode("latin-1").strip())
        else:
            raise EventFormatError(f"{path}: the text header exceeds {MAX_HEADER_BYTES} bytes")
    return lines, offset


def _geometry(lines: list[str]) -> tuple[int, int] | None:
    for line in lines:
        match = re.search(r"geometry\s+(\d+)\s*x\s*(\d+)", line, re.I) or re.search(
            r"width=(\d+).*height=(\d+)", line, re.I
        )
        if match:
            return int(match.group(1)), int(match.group(2))
        match = re.search(r"height=(\d+).*width=(\d+)", line, re.I)
        if match:
            return int(match.group(2)), int(match.group(1))
    width = height = None
    for line in lines:
        match = re.match(r"(width|height)\s+(\d+)", line.strip(), re.I)
        if match:
            if match.group(1).lower() == "width":
                width = int(match.group(2))
            else:
                height = int(match.group(2))
    return (width, height) if width and height else None


def read_header(path: Path, fmt: str) -> Header:
    """Parse the header of a file already recognised as ``fmt``."""
    if fmt in ("evt2", "evt3", "dat"):
        lines, offset = _text_header(path, b"%")
        geometry = _geometry(lines)
        if geometry is None and fmt != "dat":
            plugin = " ".join(line for line in lines if "plugin" in line.lower()).lower()
            geometry = next((size for key, size in _PROPHESEE_PLUGINS if key in plugin), None)
        if geometry is None and fmt == "dat":
            geometry = (304, 240)  # ATIS, the camera of the Event2D .dat datasets (N-CARS)
        size = (geometry[0], geometry[1], 2) if geometry else None
        return Header(fmt, offset, size, "; ".join(lines[:3]))
    if fmt == "aedat2":
        lines, offset = _text_header(path, b"#")
        version = next((ln for ln in lines if ln.startswith("!AER-DAT")), "")
        if not version.startswith("!AER-DAT2"):
            raise EventFormatError(
                f"{path}: AEDAT version {version[8:] or '?'} is not supported here; only AEDAT 2 "
                "(jAER) and AEDAT 4 are; convert the file with dv or jAER"
            )
        chip_line = next((ln for ln in lines if "aechip" in ln.lower()), "")
        chip = next((info for key, info in AEDAT2_CHIPS if key in chip_line.lower()), None)
        if chip is None:
            chip = ("dvs128", 128, 128)
            detail = f"chip {chip_line or 'unnamed'}: decoded as DVS128"
        else:
            detail = f"chip {chip_line.split(':', 1)[-1].strip()}"
        return Header(fmt, offset, (chip[1], chip[2], 2), f"{chip[0]}|{detail}")
    return Header(fmt, 0, None)
