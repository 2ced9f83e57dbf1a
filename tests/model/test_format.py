"""The .esp model file: round trips, and every kind of damage is a clear ModelFormatError."""

from __future__ import annotations

import contextlib
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsp.model.format import (
    FORMAT_VERSION,
    MAGIC,
    PREFIX_SIZE,
    Model,
    ModelFormatError,
    load_model,
    save_model,
    validate_model,
)
from eventsp.model.graph import (
    IF,
    LIF,
    NODE_TYPES,
    Add,
    AvgPool2d,
    CausalConv1d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Identity,
    Input,
    LMUMemory,
    MultiSpike,
    Output,
    Readout,
    ReLU,
    SumPool2d,
)

from support import REPO_ROOT


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def vision_graph(rng: np.random.Generator) -> Graph:
    """Conv / pool / flatten / dense, float and fixed-point layers, spiking and not."""
    w_q = rng.integers(-8, 8, size=(8, 4, 3, 3)).astype(np.int8)
    return Graph.chain(
        [
            ("in", Input((2, 12, 12), quant_bits=8, quant_scale=0.05)),
            ("c1", Conv2d(_f32(rng, 4, 1, 3, 3), _f32(rng, 4), stride=1, padding=1, groups=2)),
            ("if1", IF(threshold=0.75)),
            ("p1", AvgPool2d(kernel=2)),
            ("c2", Conv2d(w_q, None, stride=(1, 1), weight_bits=4, weight_scale=0.125)),
            ("lif2", LIF(decay=0.8, threshold=1.25)),
            ("p2", SumPool2d(kernel=2, stride=2)),
            ("flat", Flatten()),
            ("d1", Dense(_f32(rng, 6, 32), _f32(rng, 6))),
            ("relu", ReLU()),
            ("d2", Dense(rng.integers(-100, 100, size=(5, 6)).astype(np.int16), None, 8, 0.01)),
            ("id", Identity()),
            ("out", Output((5,))),
        ]
    )


def audio_graph(rng: np.random.Generator) -> Graph:
    """Causal conv, multi-spike, LMU memory, a residual Add and a readout."""
    order = 3
    nodes = {
        "in": Input((4,)),
        "tc": CausalConv1d(_f32(rng, 4, 4, 3), _f32(rng, 4), dilation=2),
        "ms": MultiSpike(dt=0.25),
        "add": Add(),
        "lmu": LMUMemory(
            order=order, theta=10.0, A_d=_f32(rng, order, order), B_d=_f32(rng, order)
        ),
        "d": Dense(_f32(rng, 2, 4 * order)),
        "ro": Readout(mode="mean"),
        "out": Output((2,)),
    }
    edges = [
        ("in", "tc"),
        ("tc", "ms"),
        ("ms", "add"),
        ("in", "add"),
        ("add", "lmu"),
        ("lmu", "d"),
        ("d", "ro"),
        ("ro", "out"),
    ]
    return Graph(nodes, edges)


METADATA = {
    "task": "kws",
    "labels": ["yes", "no"],
    "time_steps": 100,
    "sample_rate_hz": 16000,
    "frontend": {"kind": "mel", "n_mels": 40},
    "provenance": {"trainer": "stbp", "seed": 7},
    "accuracy": 0.91,
}


def _same_graph(a: Graph, b: Graph) -> None:
    spec_a, arrays_a = a.to_dict()
    spec_b, arrays_b = b.to_dict()
    assert spec_a == spec_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for name, arr in arrays_a.items():
        assert arrays_b[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(arrays_b[name], arr, err_msg=name)


@pytest.fixture
def model_file(tmp_path, rng):
    return save_model(tmp_path / "vision.esp", vision_graph(rng), METADATA)


@pytest.fixture
def small_file(tmp_path, rng):
    """A small file with every section (header, JSON, padding, two arrays and the gap
    between them), for the tests that damage it at every byte."""
    graph = Graph.chain(
        [
            ("in", Input((5,))),
            ("d", Dense(_f32(rng, 3, 5), _f32(rng, 3))),
            ("lif", LIF()),
            ("out", Output((3,))),
        ]
    )
    return save_model(tmp_path / "small.esp", graph, {"task": "kws"})


def test_every_node_type_is_covered(rng):
    used = {n.type for g in (vision_graph(rng), audio_graph(rng)) for n in g.nodes.values()}
    assert used == set(NODE_TYPES), f"round-trip graphs miss {set(NODE_TYPES) - used}"


@pytest.mark.parametrize("make", [vision_graph, audio_graph])
def test_round_trip(tmp_path, rng, make):
    graph = make(rng)
    path = save_model(tmp_path / "m.esp", graph, METADATA)
    model = load_model(path)
    assert isinstance(model, Model)
    assert model.format_version == FORMAT_VERSION
    assert model.metadata == METADATA
    _same_graph(graph, model.graph)
    assert validate_model(path).metadata == METADATA
    # Saving what was loaded gives the same bytes: the format is deterministic.
    again = save_model(tmp_path / "again.esp", model.graph, model.metadata)
    assert again.read_bytes() == path.read_bytes()


def test_arrays_are_aligned_for_memory_mapping(model_file):
    data = model_file.read_bytes()
    json_len = struct.unpack_from("<Q", data, 12)[0]
    header = json.loads(data[PREFIX_SIZE : PREFIX_SIZE + json_len])
    start = PREFIX_SIZE + json_len + (-(PREFIX_SIZE + json_len) % 64)
    assert start % 64 == 0
    for entry in header["arrays"]:
        assert entry["offset"] % 64 == 0
        mapped = np.memmap(
            model_file,
            dtype=entry["dtype"],
            mode="r",
            offset=start + entry["offset"],
            shape=tuple(entry["shape"]),
        )
        assert zlib.crc32(mapped.tobytes()) == entry["crc32"]


def test_wrong_magic(tmp_path):
    path = tmp_path / "x.esp"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFormatError, match="not an eventsp model file"):
        load_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        load_model(path)


def _rewrite_prefix(data: bytes, major: int, minor: int) -> bytes:
    prefix = struct.pack("<8sHH", MAGIC, major, minor) + data[12:32]
    return prefix + struct.pack("<I", zlib.crc32(prefix)) + data[36:]


def test_newer_major_version_is_refused_and_newer_minor_is_read(tmp_path, model_file):
    data = model_file.read_bytes()
    path = tmp_path / "new.esp"
    path.write_bytes(_rewrite_prefix(data, FORMAT_VERSION[0] + 1, 0))
    with pytest.raises(ModelFormatError, match=r"format version 2\.0, newer .* upgrade eventsp"):
        load_model(path)
    path.write_bytes(_rewrite_prefix(data, FORMAT_VERSION[0], FORMAT_VERSION[1] + 3))
    assert load_model(path).format_version == (FORMAT_VERSION[0], FORMAT_VERSION[1] + 3)


def test_truncation_at_every_offset(tmp_path, small_file):
    data = small_file.read_bytes()
    path = tmp_path / "cut.esp"
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match=f"truncated.*got {cut}"):
            load_model(path)


def test_trailing_bytes(tmp_path, model_file):
    path = tmp_path / "long.esp"
    path.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ModelFormatError, match="1 unexpected bytes"):
        load_model(path)


def test_every_flipped_byte_is_detected(tmp_path, small_file):
    data = bytearray(small_file.read_bytes())
    path = tmp_path / "flip.esp"
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.raises(ModelFormatError):
            load_model(path)
    path.write_bytes(bytes(data))
    load_model(path)


def test_checksum_messages(tmp_path, model_file):
    data = bytearray(model_file.read_bytes())
    path = tmp_path / "flip.esp"
    damaged = bytearray(data)
    damaged[-200] ^= 1  # inside the last array's bytes or padding
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelFormatError, match=r"checksum|non-zero"):
        load_model(path)
    damaged = bytearray(data)
    damaged[PREFIX_SIZE + 5] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelFormatError, match=r"JSON header.*checksum"):
        load_model(path)


def _forge(tmp_path, header: dict, payload: bytes) -> object:
    """A file with valid checksums around an arbitrary header: reaches the semantic checks."""
    text = json.dumps(header).encode()
    prefix = struct.pack(
        "<8sHHQQI", MAGIC, *FORMAT_VERSION, len(text), len(payload), zlib.crc32(text)
    )
    pad = bytes(-(PREFIX_SIZE + len(text)) % 64)
    path = tmp_path / "forged.esp"
    path.write_bytes(prefix + struct.pack("<I", zlib.crc32(prefix)) + text + pad + payload)
    return path


def _parts(path):
    data = path.read_bytes()
    json_len, payload_len = struct.unpack_from("<QQ", data, 12)
    header = json.loads(data[PREFIX_SIZE : PREFIX_SIZE + json_len])
    return header, data[len(data) - payload_len :]


def test_unknown_node_type(tmp_path, model_file):
    header, payload = _parts(model_file)
    header["graph"]["nodes"]["if1"]["type"] = "Spiky"
    with pytest.raises(ModelFormatError, match="node 'if1' has unknown type 'Spiky'"):
        load_model(_forge(tmp_path, header, payload))
    header["graph"]["nodes"]["if1"]["type"] = ["IF"]  # not even a string
    with pytest.raises(ModelFormatError, match=r"node 'if1' has unknown type \['IF'\]"):
        load_model(_forge(tmp_path, header, payload))


def test_array_inconsistent_with_node(tmp_path, rng):
    graph = Graph.chain([("in", Input((4,))), ("d", Dense(_f32(rng, 3, 4))), ("out", Output((3,)))])
    header, payload = _parts(save_model(tmp_path / "ok.esp", graph))
    entry = header["arrays"][0]
    entry["shape"] = [4, 3]  # same bytes, transposed shape: the Dense no longer fits its input
    with pytest.raises(ModelFormatError, match=r"node 'd'.*expects input shape \(3,\)"):
        load_model(_forge(tmp_path, header, payload))
    entry["shape"] = [3, 5]
    with pytest.raises(ModelFormatError, match=r"needs 60 bytes but the table says 48"):
        load_model(_forge(tmp_path, header, payload))
    entry["shape"], entry["dtype"] = [3, 4], "|O"
    with pytest.raises(ModelFormatError, match=r"dtype '\|O'"):
        load_model(_forge(tmp_path, header, payload))


def test_bad_json(tmp_path, model_file):
    _, payload = _parts(model_file)
    text = b"{not json"
    prefix = struct.pack(
        "<8sHHQQI", MAGIC, *FORMAT_VERSION, len(text), len(payload), zlib.crc32(text)
    )
    pad = bytes(-(PREFIX_SIZE + len(text)) % 64)
    path = tmp_path / "bad.esp"
    path.write_bytes(prefix + struct.pack("<I", zlib.crc32(prefix)) + text + pad + payload)
    with pytest.raises(ModelFormatError, match="does not parse"):
        load_model(path)


def test_bad_metadata_is_refused_on_save(tmp_path, rng):
    graph = vision_graph(rng)
    with pytest.raises(ModelFormatError, match="not plain JSON"):
        save_model(tmp_path / "m.esp", graph, {"accuracy": np.float32(0.5)})
    with pytest.raises(ModelFormatError, match="task is 'dance'"):
        save_model(tmp_path / "m.esp", graph, {"task": "dance"})
    with pytest.raises(ModelFormatError, match="not plain JSON"):
        save_model(tmp_path / "m.esp", graph, {"accuracy": float("nan")})
    assert not list(tmp_path.iterdir()), "a refused save must leave no file behind"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=8,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_random_corruption_only_raises_model_format_error(tmp_path, model_file, edits, cut):
    data = bytearray(model_file.read_bytes())
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzz.esp"
    path.write_bytes(bytes(data))
    with contextlib.suppress(ModelFormatError):
        load_model(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["graph", "arrays", "metadata", "nodes", "edges", "node"]),
    value=JSON_VALUES,
)
def test_forged_headers_only_raise_model_format_error(tmp_path, model_file, key, value):
    """Structurally wrong JSON behind valid checksums: still only ModelFormatError."""
    header, payload = _parts(model_file)
    if key in ("nodes", "edges"):
        header["graph"][key] = value
    elif key == "node":
        header["graph"]["nodes"]["c1"] = value
    else:
        header[key] = value
    with contextlib.suppress(ModelFormatError):
        load_model(_forge(tmp_path, header, payload))


def test_loading_needs_no_torch_and_no_pickle(model_file):
    """In a fresh interpreter, loading imports no torch and never unpickles anything."""
    code = f"""
import pickle, sys
import numpy as np
def refuse(*a, **k):
    raise SystemExit("pickle was used")
pickle.loads = pickle.load = pickle.Unpickler = refuse
real_load = np.load
def checked_load(*a, **k):
    if k.get("allow_pickle"):
        raise SystemExit("np.load with allow_pickle")
    return real_load(*a, **k)
np.load = checked_load
from eventsp.model.format import load_model
model = load_model({str(model_file)!r})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "nir", "h5py"))
print(len(model.graph.nodes), heavy)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["13", "[]"], out.stdout


def test_validate_compiles_the_graph_for_the_runtime(small_file, monkeypatch):
    import eventsp.runtime

    assert len(validate_model(small_file).graph.nodes) == 4

    def refuse(graph):
        raise ValueError("no kernel for this node")

    monkeypatch.setattr(eventsp.runtime, "Network", refuse)
    with pytest.raises(ModelFormatError, match="runtime cannot run it: no kernel for this node"):
        validate_model(small_file)
    assert len(validate_model(small_file, runtime=False).graph.nodes) == 4


@pytest.mark.parametrize(
    "shape",
    [[0, 2**60], [0] * 70, [-1, 0], [0.0], [True]],
    ids=["huge", "axes", "neg", "float", "bool"],
)
def test_absurd_shapes_behind_valid_checksums(tmp_path, small_file, shape):
    """An empty array (its CRC-32 is 0) with an impossible shape is refused, not reshaped."""
    header, payload = _parts(small_file)
    header["arrays"].append(
        {"name": "x/y", "dtype": "<f4", "shape": shape, "offset": 0, "nbytes": 0, "crc32": 0}
    )
    with pytest.raises(ModelFormatError, match="array 'x/y'"):
        load_model(_forge(tmp_path, header, payload))


def _leaf_paths(obj, path=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaf_paths(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaf_paths(value, (*path, i))
    if path:
        yield path


def _has(obj, key) -> bool:
    if isinstance(obj, dict):
        return isinstance(key, str) and key in obj
    return isinstance(obj, list) and isinstance(key, int) and 0 <= key < len(obj)


def _set_leaf(obj, path, value) -> None:
    """Set ``obj[path...] = value`` where the path still exists (earlier edits may cut it)."""
    for key in path[:-1]:
        if not _has(obj, key):
            return
        obj = obj[key]
    if _has(obj, path[-1]) or (isinstance(obj, dict) and isinstance(path[-1], str)):
        obj[path[-1]] = value


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_header_values_only_raise_model_format_error(tmp_path, model_file, data):
    """Any value anywhere in the JSON replaced by other JSON: still only ModelFormatError."""
    header, payload = _parts(model_file)
    paths = sorted(_leaf_paths(header), key=repr)
    values = JSON_VALUES | st.sampled_from(["|O", "<f4", "LIF", "c1/weight"])
    for _ in range(data.draw(st.integers(1, 3))):
        _set_leaf(header, data.draw(st.sampled_from(paths)), data.draw(values))
    with contextlib.suppress(ModelFormatError):
        load_model(_forge(tmp_path, header, payload))


def test_saved_file_has_the_usual_permissions(tmp_path, rng):
    import os

    umask = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m.esp", vision_graph(rng))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.esp"], "no temporary file may remain"


def test_acc_shift_round_trips_and_old_files_resave_bit_identical(tmp_path, rng):
    graph = Graph.chain(
        [
            ("in", Input((6,))),
            ("fc", Dense(rng.integers(-7, 8, (3, 6)).astype(np.int8), _f32(rng, 3), 4, 0.25, 6)),
            ("n", IF(threshold=1.0)),
            ("r", Readout("sum")),
            ("out", Output((3,))),
        ]
    )
    loaded = load_model(save_model(tmp_path / "s.esp", graph, METADATA)).graph
    assert loaded.nodes["fc"].acc_shift == 6
    _same_graph(graph, loaded)
    # Every bundled model (written before acc_shift existed) loads with shift 0 and saves to
    # the same bytes: the field's default changes no file.
    bundled = sorted((REPO_ROOT / "eventsp" / "models").glob("*.esp"))
    assert bundled
    for path in bundled:
        model = load_model(path)
        synaptic = [n for n in model.graph.nodes.values() if isinstance(n, Dense | Conv2d)]
        assert synaptic
        assert all(n.acc_shift == 0 for n in synaptic)
        again = save_model(tmp_path / path.name, model.graph, model.metadata)
        assert again.read_bytes() == path.read_bytes(), path.name
