"""The interpreter's on-disk cache is rebuilt whenever a kernel module changes.

Numba keys the cache of ``eventsp/kernels/program.py`` on that file's contents only, while the
cached code includes the kernels it calls; program.py therefore records a hash of the kernel
modules, and this test keeps that record current.
"""

from __future__ import annotations

import hashlib

from eventsp.kernels import program

from support import REPO_ROOT

KERNELS = REPO_ROOT / "eventsp" / "kernels"


def kernel_sources_sha256() -> str:
    """sha256 over every module of eventsp/kernels but program.py and __init__.py, by name:
    a new kernel module is covered without anyone listing it."""
    digest = hashlib.sha256()
    for path in sorted(KERNELS.glob("*.py")):
        if path.name not in ("program.py", "__init__.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_program_records_the_hash_of_the_kernels_it_calls():
    expected = kernel_sources_sha256()
    assert expected == program.KERNEL_SOURCES_SHA256, (
        "a kernel module changed: set KERNEL_SOURCES_SHA256 in eventsp/kernels/program.py to "
        f"{expected!r} so that the interpreter's Numba cache is rebuilt"
    )
