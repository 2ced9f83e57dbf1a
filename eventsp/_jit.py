"""The one project decorator for Numba kernels.

Every kernel in eventsp is compiled through :func:`jit`, so that compilation options are the
same everywhere:

- ``nopython`` mode always, ``nogil=True`` so that the service can run kernels from threads;
- ``cache=True``: compiled machine code is written next to the module (``__pycache__``) and
  reused by later processes, so the first step after import takes milliseconds, not seconds;
- explicit signatures where practical: a signature compiles eagerly at import, when the cache
  is cold, and pins the dtypes a kernel accepts, so a wrong dtype is a clear ``TypeError``
  rather than a silent second specialisation.

Cache location
--------------
Numba tries, in order: ``NUMBA_CACHE_DIR`` when set; the ``__pycache__`` folder beside the
module; and, when the package directory is read-only (a system-wide install, a container
image, a device's firmware partition), a per-user folder, ``$XDG_CACHE_HOME/numba`` (by default
``~/.cache/numba``). ``tests/test_jit.py`` checks that last case by running a kernel from a
read-only copy of the package. :func:`cache_dir` tells which location a module's kernels use.

Kernels never read mutable globals: Numba freezes globals at compile time, so a changed global
would silently be ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["cache_dir", "jit"]


def jit(
    signature: str | list[str] | None = None,
    *,
    parallel: bool = False,
    fastmath: bool = False,
    cache: bool = True,
    inline: str = "never",
    nrt: bool = True,
) -> Callable[[F], F]:
    """Compile a kernel with the project's Numba options.

    Parameters
    ----------
    signature:
        A Numba signature string (``"void(float32[:, ::1], float32[::1])"``) or a list of them.
        ``None`` compiles lazily on the first call; use that only where the argument types vary
        too much to list (say why in the kernel's docstring).
    parallel:
        Compile with ``parallel=True`` (``numba.prange`` loops). Keep serial kernels serial: the
        parallel layer is a thin loop over a serial kernel.
    fastmath:
        Allow reassociation. Never for kernels whose results are compared bit for bit.
    cache:
        Write compiled code to disk. Turn it off only for kernels built at run time from
        closures, which Numba cannot cache.
    inline:
        Numba's IR inlining policy, for tiny helpers called from other kernels.
    nrt:
        Compile with Numba's runtime (reference-counted arrays). ``False`` for kernels that
        never allocate and never return an array: each array argument then crosses the call
        boundary without a reference-counting record (about 35 ns less each), and slices
        inside cost no atomic reference counting. Such a kernel raises at compile time if it
        allocates. Every kernel it calls must be compiled the same way.
    """
    options: dict[str, Any] = {
        "nopython": True,
        "nogil": True,
        "cache": cache,
        "parallel": parallel,
        "fastmath": fastmath,
        "inline": inline,
        "error_model": "numpy",
    }
    if not nrt:
        options["_nrt"] = False

    def decorate(func: F) -> F:
        if signature is None:
            return numba.jit(**options)(func)
        return numba.jit(signature, **options)(func)

    return decorate


def cache_dir(kernel: Any) -> str | None:
    """Directory where ``kernel``'s compiled code is cached, or ``None`` when it is not cached."""
    cache = getattr(kernel, "_cache", None)
    impl = getattr(cache, "_impl", None)
    locator = getattr(impl, "_locator", None)
    if locator is None:
        return None
    return str(locator.get_cache_path())
