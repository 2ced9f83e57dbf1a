"""Generate the Python protobuf/gRPC modules and .pyi stubs from ``protos/``.

Run from anywhere: ``python protos/generate.py`` (or ``make protos``). The generated modules are
committed under ``eventsp/v1/`` so that users of the service need no code generator;
``tests/test_protos.py`` regenerates them into a temporary folder and checks they match.

Proto files live at ``protos/eventsp/v1/*.proto`` with ``package eventsp.v1``; with ``protos/``
as the include root, protoc names the Python modules ``eventsp.v1.<name>_pb2``, which is where
they land in the package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "eventsp" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write ``eventsp/v1/*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_dir``."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    files = proto_files()
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / 'eventsp' / 'v1'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(f.relative_to(PROTO_ROOT)) for f in files),
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    return sorted((out_dir / "eventsp" / "v1").glob("*_pb2*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
