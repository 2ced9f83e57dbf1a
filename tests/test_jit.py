"""The project Numba decorator: eager signatures, and an on-disk cache that survives a
read-only package directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from eventsp._jit import cache_dir, jit
from eventsp._selfcheck import selfcheck_kernel

from support import REPO_ROOT


def test_signature_is_compiled_eagerly_and_enforced():
    assert selfcheck_kernel(4) == 0 + 1 + 4 + 9
    assert len(selfcheck_kernel.signatures) == 1
    with pytest.raises(TypeError, match="No matching definition"):
        selfcheck_kernel(np.ones(3))


def test_lazy_kernel_without_signature():
    @jit(cache=False)
    def add(a, b):
        return a + b

    assert add(2, 3) == 5
    assert cache_dir(add) is None


PROBE = """
from eventsp._jit import cache_dir
from eventsp._selfcheck import selfcheck_kernel
print(selfcheck_kernel(10), cache_dir(selfcheck_kernel), sum(selfcheck_kernel._cache_hits.values()))
"""


def _run_read_only(package_root: Path, env: dict[str, str]) -> str:
    """Run PROBE with ``package_root`` read-only: a read-only bind mount when root (root
    ignores file modes), file modes otherwise."""
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.fail("running as root needs `unshare` (util-linux) to make a read-only mount")
        script = (
            f"mount --bind {package_root} {package_root} && "
            f"mount -o remount,bind,ro {package_root} && "
            f"exec {sys.executable} -c '{PROBE}'"
        )
        cmd = ["unshare", "-m", "sh", "-c", script]
    else:
        for path in package_root.rglob("*"):
            path.chmod(path.stat().st_mode & ~0o222)
        package_root.chmod(0o555)
        cmd = [sys.executable, "-c", PROBE]
    # cwd matters: `python -c` puts it first on sys.path, and the repo root holds eventsp/.
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=package_root.parent)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_cache_works_from_read_only_package(tmp_path):
    package_root = tmp_path / "site"
    target = package_root / "eventsp"
    target.mkdir(parents=True)
    for name in ("__init__.py", "_jit.py", "_selfcheck.py"):
        shutil.copy(REPO_ROOT / "eventsp" / name, target / name)
    user_cache = tmp_path / "user-cache"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(package_root), XDG_CACHE_HOME=str(user_cache))

    value, where, hits = _run_read_only(package_root, env)
    assert value == "285"
    assert Path(where).is_relative_to(user_cache), f"cache went to {where}"
    assert any(Path(where).glob("*.nbi")), "no cache index written"
    assert not (target / "__pycache__").exists()
    assert hits == "0"

    value, where_again, hits = _run_read_only(package_root, env)
    assert (value, where_again) == ("285", where)
    assert int(hits) >= 1, "second process compiled again instead of loading the cache"


def test_kernel_without_numba_runtime_refuses_to_allocate():
    @jit("float32(float32[::1])", cache=False, nrt=False)
    def total(a):
        s = np.float32(0.0)
        for v in a[1:]:  # a slice is fine: it allocates nothing
            s += v
        return s

    assert total(np.arange(4, dtype=np.float32)) == 6.0
    with pytest.raises(numba.core.errors.TypingError, match="zeros"):

        @jit("float32(int64)", cache=False, nrt=False)
        def allocates(n):
            return np.zeros(n, np.float32).sum()

    with pytest.raises(numba.core.errors.NumbaTypeError, match="returning of array"):

        @jit("float32[::1](float32[::1])", cache=False, nrt=False)
        def returns_a_view(a):
            return a[:2]
