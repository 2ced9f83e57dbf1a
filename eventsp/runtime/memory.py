"""Buffers for weights and stream state, on 2 MiB pages where the system offers them.

A step of the event-driven kernels touches a few rows of a weight matrix at random and every
stream's activations, so with 4 KiB pages a large model spends part of each step on TLB misses
(the first-level data TLB covers 256 KiB). Linux backs memory with transparent huge pages only
where a program asks (``/sys/kernel/mm/transparent_hugepage/enabled`` is usually
``madvise``), and numpy asks only for arrays of 4 MiB and more. :func:`zeros` asks for
smaller ones: an anonymous private ``mmap`` aligned to 2 MiB, advised ``MADV_HUGEPAGE``.
Measured on the development machine (bench workloads, the two kinds of pages alternating in
one process, four runs each): weights and large state arrays on huge pages made a step
4-5 % faster on (a) (3.67 → 3.51 µs) and (c) (142 → 134 µs), 2-3 % on (b).

Elsewhere (no ``MADV_HUGEPAGE``: macOS, Windows) and for small arrays, :func:`zeros` is
``np.zeros`` moved to a 64-byte boundary (numpy promises 16; the compiled program aligns
every buffer in a row to 64 bytes too, ``eventsp.runtime.program.ALIGN``): with both, no
vector load or store of a layer's output straddles two cache lines (measured: (c) 2 %
faster). The arrays are ordinary writeable, C-contiguous numpy arrays either way; the mapping
lives as long as any array or view of it.
"""

from __future__ import annotations

import contextlib
import math
import mmap

import numpy as np

__all__ = ["HUGE_PAGE", "MIN_BYTES", "STATE_MIN_BYTES", "zeros"]

HUGE_PAGE = 2 << 20
LINE = 64
# Below this an array is not worth a 2 MiB page of its own: a network's weights (one copy,
# shared by every state) from 256 KiB, a state's arrays (one per state: a server may hold
# thousands) from 512 KiB: whole pages cost at most 8x the weights' size (one copy) and 4x
# a state array's.
MIN_BYTES = 256 << 10
STATE_MIN_BYTES = 512 << 10


def zeros(
    shape: tuple[int, ...], dtype: np.dtype | type, min_bytes: int | None = None
) -> np.ndarray:
    """``np.zeros(shape, dtype)`` starting on a 64-byte cache line, and on 2 MiB pages when
    it is at least ``min_bytes`` (by default :data:`MIN_BYTES`)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if nbytes < (MIN_BYTES if min_bytes is None else min_bytes) or advice is None:
        raw = np.zeros(nbytes + LINE, np.uint8)  # on a 64-byte cache line: see program.ALIGN
        start = -raw.ctypes.data % LINE
        return raw[start : start + nbytes].view(dtype).reshape(shape)
    span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    # Private and anonymous (mmap's default for -1 is shared, which huge pages skip):
    # zero-filled, page-aligned.
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    area = mmap.mmap(-1, span + HUGE_PAGE, flags=flags)
    raw = np.frombuffer(area, np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE  # a multiple of the 4 KiB page size
    with contextlib.suppress(OSError):  # no transparent huge pages: ordinary pages then
        area.madvise(advice, start, span)
    return raw[start : start + nbytes].view(dtype).reshape(shape)
