"""The committed gRPC/protobuf modules match what protos/generate.py writes now."""

from __future__ import annotations

import importlib.util

from support import REPO_ROOT


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate", REPO_ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_fresh(tmp_path):
    generator = _load_generator()
    fresh = generator.generate(tmp_path)
    assert fresh, "protos/generate.py produced nothing"
    committed_dir = REPO_ROOT / "eventsp" / "v1"
    stale = []
    for path in fresh:
        committed = committed_dir / path.name
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(path.name)
    extra = {p.name for p in committed_dir.glob("*_pb2*")} - {p.name for p in fresh}
    assert not stale, f"{stale} are stale: run `make protos` and commit the result"
    assert not extra, f"{sorted(extra)} have no .proto any more: delete them"


def test_generated_modules_import():
    from eventsp.v1 import models_pb2

    info = models_pb2.ModelInfo(name="kws-lmu", task="kws", sample_rate_hz=16000)
    assert models_pb2.ModelInfo.FromString(info.SerializeToString()) == info
