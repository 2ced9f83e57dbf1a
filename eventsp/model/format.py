"""The ``.esp`` model file: a graph, its arrays and JSON metadata, with no pickle and no torch.

Layout (all integers little-endian; the full description is ``docs/model-format.md``)::

    offset  size  field
    0       8     magic  b"\\x89ESP\\r\\n\\x1a\\n"
    8       2     format major version (readers refuse a newer major)
    10      2     format minor version (additions a reader of the same major may ignore)
    12      8     H: length of the JSON header in bytes
    20      8     P: length of the array payload in bytes
    28      4     CRC-32 of the JSON header
    32      4     CRC-32 of bytes 0..31 (this fixed prefix)
    36      H     JSON header, UTF-8
    ...           zero padding up to the next multiple of 64
    D       P     payload: the arrays' raw bytes, each at a 64-byte aligned offset from D,
                  zero padding between them

The JSON header holds ``graph`` (``Graph.to_dict()``'s spec), ``metadata`` (any JSON object)
and ``arrays``, a list of ``{name, dtype, shape, offset, nbytes, crc32}`` with ``offset``
relative to ``D``. Aligned offsets let a reader memory-map an array in place.

Loading reads bytes and JSON only: nothing in a file is executed, unpickled or imported.
Every problem found is a :class:`ModelFormatError` whose message says what is wrong and what
to do: not an eventsp file, a newer format, a truncated file (expected N bytes, got M), a
checksum mismatch, bad JSON, an unknown node type, or arrays that do not fit their node.
"""

from __future__ import annotations

import json
import math
import os
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eventsp.model.graph import Graph

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Model",
    "ModelFormatError",
    "load_model",
    "save_model",
    "validate_model",
]

MAGIC = b"\x89ESP\r\n\x1a\n"
FORMAT_VERSION = (1, 0)
ALIGN = 64
# magic, major, minor, json length, payload length, json crc32, prefix crc32.
_PREFIX = struct.Struct("<8sHHQQI")
_PREFIX_CRC = struct.Struct("<I")
PREFIX_SIZE = _PREFIX.size + _PREFIX_CRC.size
# Little-endian dtypes an array may have; anything else is refused (no object arrays).
DTYPES = ("<f4", "<f8", "<i1", "<i2", "<i4", "<i8", "|i1", "|u1", "<u2")
# Guard against headers that claim absurd sizes before anything is allocated.
MAX_JSON_BYTES = 64 * 2**20
TASKS = ("kws", "separate", "classify-events", "classify-images")


class ModelFormatError(ValueError):
    """A model file that cannot be read: corrupt, truncated, too new, or inconsistent."""


@dataclass(frozen=True)
class Model:
    """A loaded model: the graph, its metadata (a JSON object) and the file's format version."""

    graph: Graph
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: tuple[int, int] = FORMAT_VERSION


def _pad(n: int) -> int:
    return -n % ALIGN


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-tripped copy of ``metadata``; raises ``ModelFormatError`` on bad values."""
    if not isinstance(metadata, Mapping):
        raise ModelFormatError(
            f"metadata is a {type(metadata).__name__}; expected a dict of JSON values"
        )
    try:
        text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(
            f"metadata is not plain JSON ({exc}); use str keys and str/int/float/bool/None/"
            "list/dict values, with no NaN or infinity (convert numpy values with .tolist())"
        ) from None
    clean = json.loads(text)
    task = clean.get("task")
    if task is not None and task not in TASKS:
        raise ModelFormatError(f"metadata task is {task!r}; expected one of {list(TASKS)}")
    labels = clean.get("labels")
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(x, str) for x in labels)
    ):
        raise ModelFormatError(f"metadata labels is {labels!r}; expected a list of strings")
    steps = clean.get("time_steps")
    if steps is not None and not (isinstance(steps, int) and steps > 0):
        raise ModelFormatError(f"metadata time_steps is {steps!r}; expected an int > 0")
    return clean


def save_model(
    path: str | os.PathLike[str], graph: Graph, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``graph`` and ``metadata`` to ``path`` (conventionally ``*.esp``) atomically.

    Returns the path written. Raises :class:`ModelFormatError` when the metadata is not plain
    JSON or an array has a dtype the format does not store.
    """
    if not isinstance(graph, Graph):
        raise ModelFormatError(f"graph is a {type(graph).__name__}; expected eventsp.model.Graph")
    meta = _check_metadata({} if metadata is None else metadata)
    spec, arrays = graph.to_dict()
    table = []
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(arrays):
        arr = np.asarray(arrays[name])
        little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        dtype = little.dtype.str
        if dtype not in DTYPES:
            raise ModelFormatError(
                f"array {name!r} has dtype {arr.dtype}; the format stores only {list(DTYPES)}"
            )
        raw = np.ascontiguousarray(little).tobytes()
        table.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": len(raw),
                "crc32": zlib.crc32(raw),
            }
        )
        chunks += [raw, bytes(_pad(len(raw)))]
        offset += len(raw) + _pad(len(raw))
    header = {
        "format": "eventsp-model",
        "version": list(FORMAT_VERSION),
        "graph": spec,
        "metadata": meta,
        "arrays": table,
    }
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    payload = b"".join(chunks)
    prefix = _PREFIX.pack(MAGIC, *FORMAT_VERSION, len(text), len(payload), zlib.crc32(text))
    data = b"".join(
        [
            prefix,
            _PREFIX_CRC.pack(zlib.crc32(prefix)),
            text,
            bytes(_pad(PREFIX_SIZE + len(text))),
            payload,
        ]
    )
    target = Path(path)
    # A fresh name beside the target, created with the usual permissions (not mkstemp's 0600),
    # then renamed over it: readers see the old file or the new one, never half of one.
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def load_model(path: str | os.PathLike[str]) -> Model:
    """Read a model file; every check of :func:`validate_model` runs on the way.

    Raises :class:`ModelFormatError` (never another exception for a bad file) and
    ``FileNotFoundError``/``IsADirectoryError`` when there is no file at ``path``.
    """
    path = Path(path)
    data = path.read_bytes()
    return _parse(data, str(path))


def validate_model(path: str | os.PathLike[str], *, runtime: bool = True) -> Model:
    """Check a model file completely and return the model.

    Checks the header, checksums, array table and graph (every :func:`load_model` check) and,
    with ``runtime=True``, that ``eventsp.runtime.Network`` compiles the graph. Raises
    :class:`ModelFormatError` naming the first problem found.
    """
    model = load_model(path)
    if runtime:
        from eventsp.runtime import Network

        try:
            Network(model.graph)
        # Whatever the compiler refuses, the file is not runnable here: report it as such.
        except Exception as exc:
            raise ModelFormatError(
                f"{path}: the graph is valid but the runtime cannot run it: {exc}"
            ) from None
    return model


def _parse(data: bytes, where: str) -> Model:
    if not data:
        raise ModelFormatError(f"{where} is empty (0 bytes); pass a .esp model file")
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise ModelFormatError(
            f"{where} is truncated: expected at least {PREFIX_SIZE} bytes, got {len(data)}; "
            "the file was cut short, copy or download it again"
        )
    if data[: len(MAGIC)] != MAGIC:
        raise ModelFormatError(
            f"{where} is not an eventsp model file (its first bytes are {data[:8]!r}, expected "
            f"{MAGIC!r}); pass a .esp file written by eventsp.model.save_model"
        )
    if len(data) < PREFIX_SIZE:
        raise ModelFormatError(
            f"{where} is truncated: expected at least {PREFIX_SIZE} bytes, got {len(data)}; "
            "the file was cut short, copy or download it again"
        )
    _, major, minor, json_len, payload_len, json_crc = _PREFIX.unpack_from(data)
    (prefix_crc,) = _PREFIX_CRC.unpack_from(data, _PREFIX.size)
    if zlib.crc32(data[: _PREFIX.size]) != prefix_crc:
        raise ModelFormatError(
            f"{where} has a damaged fixed header (checksum mismatch in bytes 0..{_PREFIX.size})"
            "; the file is corrupt, copy it again or re-export the model"
        )
    if major > FORMAT_VERSION[0]:
        raise ModelFormatError(
            f"{where} has format version {major}.{minor}, newer than the {FORMAT_VERSION[0]}.x "
            "this eventsp reads; upgrade eventsp to load it"
        )
    if major < 1:
        raise ModelFormatError(f"{where} has format version {major}.{minor}; no such version")
    if json_len > MAX_JSON_BYTES:
        raise ModelFormatError(
            f"{where} claims a {json_len}-byte JSON header, over the {MAX_JSON_BYTES} limit"
        )
    data_start = PREFIX_SIZE + json_len + _pad(PREFIX_SIZE + json_len)
    expected = data_start + payload_len
    if len(data) < expected:
        raise ModelFormatError(
            f"{where} is truncated: expected {expected} bytes, got {len(data)}; "
            "the file was cut short, copy or download it again"
        )
    if len(data) > expected:
        raise ModelFormatError(
            f"{where} has {len(data) - expected} unexpected bytes after its end (expected "
            f"{expected} bytes, got {len(data)}); the file is damaged, copy it again"
        )
    text = data[PREFIX_SIZE : PREFIX_SIZE + json_len]
    if zlib.crc32(text) != json_crc:
        raise ModelFormatError(
            f"{where} has a damaged JSON header (checksum mismatch); the file is corrupt, "
            "copy it again or re-export the model"
        )
    if any(data[PREFIX_SIZE + json_len : data_start]):
        raise ModelFormatError(f"{where} has non-zero padding after its JSON header; corrupt file")
    header = _decode_json(text, where)
    arrays = _read_arrays(header.get("arrays"), data, data_start, payload_len, where)
    meta = header.get("metadata", {})
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{where}: metadata is a {type(meta).__name__}, not a JSON object")
    graph = _build_graph(header.get("graph"), arrays, where)
    return Model(graph=graph, metadata=meta, format_version=(major, minor))


def _decode_json(text: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFormatError(
            f"{where} has a JSON header that does not parse ({exc}); re-export the model"
        ) from None
    if not isinstance(header, dict) or header.get("format") != "eventsp-model":
        raise ModelFormatError(
            f"{where}: the JSON header is not an eventsp model description "
            '(no "format": "eventsp-model"); re-export the model'
        )
    return header


def _read_arrays(
    table: Any, data: bytes, start: int, payload_len: int, where: str
) -> dict[str, np.ndarray]:
    if not isinstance(table, list):
        raise ModelFormatError(f"{where}: the array table is missing or not a list")
    arrays: dict[str, np.ndarray] = {}
    ranges: list[tuple[int, int]] = []
    for i, entry in enumerate(table):
        name, dtype, shape, offset, nbytes, crc = _entry(entry, i, where)
        if name in arrays:
            raise ModelFormatError(f"{where}: array {name!r} is listed twice in the array table")
        if offset % ALIGN or offset + nbytes > payload_len:
            raise ModelFormatError(
                f"{where}: array {name!r} at offset {offset} with {nbytes} bytes does not lie "
                f"{ALIGN}-byte aligned inside the {payload_len}-byte payload; corrupt file"
            )
        itemsize = np.dtype(dtype).itemsize
        if math.prod(shape) * itemsize != nbytes:
            raise ModelFormatError(
                f"{where}: array {name!r} of shape {tuple(shape)} and dtype {dtype} needs "
                f"{math.prod(shape) * itemsize} bytes but the table says {nbytes}; corrupt file"
            )
        raw = data[start + offset : start + offset + nbytes]
        if zlib.crc32(raw) != crc:
            raise ModelFormatError(
                f"{where}: array {name!r} fails its checksum (CRC-32 mismatch); the file is "
                "corrupt, copy it again or re-export the model"
            )
        arr = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)
        arrays[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        ranges.append((offset, offset + nbytes))
    # Every payload byte that belongs to no array must be zero padding.
    position = 0
    payload = memoryview(data)[start : start + payload_len]
    for lo, hi in [*sorted(ranges), (payload_len, payload_len)]:
        if lo < position:
            raise ModelFormatError(f"{where}: arrays overlap in the payload; corrupt file")
        if any(payload[position:lo]):
            raise ModelFormatError(f"{where}: non-zero bytes between arrays; corrupt file")
        position = hi
    return arrays


def _entry(entry: Any, i: int, where: str) -> tuple[str, str, list[int], int, int, int]:
    keys = {"name", "dtype", "shape", "offset", "nbytes", "crc32"}
    if not isinstance(entry, dict) or set(entry) != keys:
        raise ModelFormatError(
            f"{where}: array table entry {i} is {entry!r:.120}; expected the keys {sorted(keys)}"
        )
    name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    numbers = [entry["offset"], entry["nbytes"], entry["crc32"]]
    if not isinstance(name, str) or dtype not in DTYPES:
        raise ModelFormatError(
            f"{where}: array table entry {i} has name {name!r} and dtype {dtype!r}; expected a "
            f"string name and one of {list(DTYPES)}"
        )
    ints = [*numbers, *(shape if isinstance(shape, list) else [None])]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**48 for v in ints):
        raise ModelFormatError(
            f"{where}: array {name!r} has shape {shape!r}, offset, nbytes or crc32 that are "
            "not integers in [0, 2**48); corrupt file"
        )
    if len(shape) > 32 or math.prod(max(d, 1) for d in shape) >= 2**48:
        raise ModelFormatError(
            f"{where}: array {name!r} has an impossible shape {shape!r:.80}; corrupt file"
        )
    return name, dtype, shape, *numbers


def _build_graph(spec: Any, arrays: dict[str, np.ndarray], where: str) -> Graph:
    if not isinstance(spec, dict):
        raise ModelFormatError(f"{where}: the graph description is missing or not an object")
    nodes = spec.get("nodes")
    if not isinstance(nodes, dict) or not all(isinstance(n, dict) for n in nodes.values()):
        raise ModelFormatError(f"{where}: the graph's nodes are missing or not JSON objects")
    from eventsp.model.graph import NODE_TYPES

    for name, node in nodes.items():
        if not isinstance(node.get("type"), str) or node["type"] not in NODE_TYPES:
            raise ModelFormatError(
                f"{where}: node {name!r} has unknown type {node.get('type')!r}; this eventsp "
                f"knows {sorted(NODE_TYPES)}; upgrade eventsp or re-export the model"
            )
    used = {v for node in nodes.values() for v in node.values() if isinstance(v, str)}
    unused = sorted(set(arrays) - used)
    if unused:
        raise ModelFormatError(f"{where}: arrays {unused} belong to no node; corrupt file")
    try:
        return Graph.from_dict(spec, arrays)
    # The file is untrusted input: whatever a node's validation raises on a malformed spec
    # (GraphError, or TypeError/ValueError from a value of the wrong JSON type) is reported as
    # one ModelFormatError that names the cause.
    except Exception as exc:
        raise ModelFormatError(
            f"{where}: the graph does not fit its arrays or is invalid: {exc}; re-export the "
            "model with this eventsp"
        ) from None
