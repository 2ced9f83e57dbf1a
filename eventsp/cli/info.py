"""``eventsp info``: what this installation has, and where it keeps compiled kernels."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform

HELP = "show the installed version, optional extras, CPU threads and the Numba cache location"

# Extra -> the distributions it installs, in the order pyproject.toml lists them.
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "torchaudio"),
    "serve": ("grpcio", "grpcio-health-checking", "grpcio-reflection", "protobuf"),
    "audio": ("sounddevice", "soundfile"),
    "events": ("expelliarmus", "aedat", "h5py"),
    "nir": ("nir",),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, object]:
    """Facts about this installation; imports nothing heavy."""
    import numba

    from eventsp import __version__
    from eventsp._jit import cache_dir
    from eventsp._selfcheck import selfcheck_kernel

    selfcheck_kernel(1)  # compiles (or loads from cache) one kernel, so the cache dir is real
    extras = {extra: {dist: _version(dist) for dist in dists} for extra, dists in EXTRAS.items()}
    return {
        "eventsp": __version__,
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": numba.__version__,
        "tonic": _version("tonic"),
        "extras": {
            extra: all(v is not None for v in dists.values()) for extra, dists in extras.items()
        },
        "extra_versions": extras,
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_cache_dir": cache_dir(selfcheck_kernel),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"eventsp {info['eventsp']} on Python {info['python']}")
    print(f"  numpy {info['numpy']}, numba {info['numba']}, tonic {info['tonic']}")
    for extra, present in info["extras"].items():  # type: ignore[union-attr]
        versions = info["extra_versions"][extra]  # type: ignore[index]
        shown = ", ".join(f"{d} {v or '-'}" for d, v in versions.items())
        print(f"  extra {extra:<6} {'yes' if present else 'no ':<4} ({shown})")
    print(f"  cpus {info['cpu_count']}, numba threads {info['numba_threads']}")
    print(f"  numba cache: {info['numba_cache_dir']}")
    return 0
