"""The API's wire formats for samples and events, both directions, numpy only.

Audio travels as mono little-endian PCM (``PCM_S16LE``: int16, full scale 32768;
``PCM_F32LE``: float32 in [-1, 1]). Events travel as packed 13-byte records
(``XYTP_PACKED_V1``): ``x`` uint16, ``y`` uint16, ``t`` int64 microseconds, ``p`` uint8.
The client encodes with :func:`encode_pcm` / :func:`pack_events`; the server decodes with
:func:`decode_pcm` / :func:`unpack_events`, which raise ``ValueError`` with a message for the
sender on anything malformed.
"""

from __future__ import annotations

import numpy as np

#: ``XYTP_PACKED_V1`` records on the wire.
WIRE_EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])

#: Names of the SampleFormat enum values and their numpy dtypes.
SAMPLE_DTYPES = {"PCM_S16LE": np.dtype("<i2"), "PCM_F32LE": np.dtype("<f4")}


_S16_SCALE = np.float32(1.0 / 32768.0)


def encode_pcm(samples: np.ndarray, sample_format: str = "PCM_S16LE") -> bytes:
    """Mono samples (float in [-1, 1] or int16) -> PCM bytes in ``sample_format``."""
    if sample_format not in SAMPLE_DTYPES:
        raise ValueError(f"sample_format {sample_format!r} is not one of {sorted(SAMPLE_DTYPES)}")
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(
            f"samples have shape {x.shape}; expected mono (n,); mix channels down first"
        )
    if sample_format == "PCM_S16LE":
        if x.dtype != np.int16:
            x = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767)
        return x.astype("<i2").tobytes()
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    return x.astype("<f4").tobytes()


def decode_pcm(data: bytes, sample_format: str) -> np.ndarray:
    """PCM bytes -> float32 samples in [-1, 1]; raises ``ValueError`` on malformed input."""
    if sample_format not in SAMPLE_DTYPES:
        raise ValueError(
            f"sample_format is {sample_format}; set it to one of {sorted(SAMPLE_DTYPES)}"
        )
    dtype = SAMPLE_DTYPES[sample_format]
    if len(data) % dtype.itemsize:
        raise ValueError(
            f"pcm has {len(data)} bytes, not a multiple of {dtype.itemsize} ({sample_format} "
            f"samples are {dtype.itemsize} bytes); send whole samples"
        )
    raw = np.frombuffer(data, dtype=dtype)
    if sample_format == "PCM_S16LE":
        return np.multiply(raw, _S16_SCALE, dtype=np.float32)
    samples = raw.astype(np.float32)
    if not np.isfinite(samples).all():
        bad = int(np.flatnonzero(~np.isfinite(samples))[0])
        raise ValueError(
            f"pcm sample {bad} is {samples[bad]}; samples must be finite floats in [-1, 1]"
        )
    return samples


def pack_events(events: np.ndarray) -> bytes:
    """A structured array with fields ``x, y, t, p`` -> ``XYTP_PACKED_V1`` bytes."""
    names = getattr(events.dtype, "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise ValueError(
            f"events have fields {names}; expected a structured array with x, y, t, p "
            "(tonic's layout)"
        )
    out = np.empty(len(events), dtype=WIRE_EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        out[name] = events[name]
    return out.tobytes()


def unpack_events(data: bytes) -> np.ndarray:
    """``XYTP_PACKED_V1`` bytes -> records in :data:`WIRE_EVENT_DTYPE` (a read-only view)."""
    size = WIRE_EVENT_DTYPE.itemsize
    if len(data) % size:
        raise ValueError(
            f"events have {len(data)} bytes, not a multiple of {size} (XYTP_PACKED_V1 records "
            f"are {size} bytes: x u16, y u16, t i64, p u8); send whole records"
        )
    return np.frombuffer(data, dtype=WIRE_EVENT_DTYPE)
