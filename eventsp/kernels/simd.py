"""Vector and bit building blocks that LLVM does not find on its own in Numba loops.

- :func:`nonzero_mask64` and :func:`unequal_mask64`: a 64-bit mask of the values in a run of
  64 float32 that differ from 0 (or from a given value). The loop ``mask |= uint64(a[i] != 0)
  << i`` (the kernels' first version) compiles to 64-bit lanes with shifts and shuffles, about
  15 ns per run of 64 on the development machine; these intrinsics hand LLVM the comparison of
  a ``<64 x float>`` vector and the bit cast of its ``<64 x i1>`` result to ``i64``, which it
  lowers to eight compares and eight ``vmovmskps`` (about 3 ns). The semantics are those of
  ``a[i] != value`` in Python: NaN differs from everything, ``-0.0`` equals ``0.0``.
- :func:`popcount64`: the number of set bits (one ``popcnt``).
- :func:`append_set_bits`: the positions of a mask's set bits, written to an index list with
  no branch per bit for the first eight (a spike list's loop used to mispredict once per
  run of 64 and spend a few cycles per bit).
- :func:`flat_view`: a C-contiguous array seen as 1-D, with no call. Numba's
  ``a.reshape(-1)`` calls a C helper (``numba_attempt_nocopy_reshape``) that works out
  whether a copy is needed: about 11 ns a call on the development machine, 13 calls a step of
  a three-layer MLP.

Every spike list and active-input scan of the runtime goes through them;
``tests/runtime/test_simd.py`` checks them against plain loops.
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from eventsp._jit import jit

__all__ = ["append_set_bits", "flat_view", "nonzero_mask64", "popcount64", "unequal_mask64"]


def _is_float32_run(arr, start) -> bool:
    return (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.dtype == types.float32
        and arr.layout == "C"
        and isinstance(start, types.Integer)
    )


def _load_run(context, builder, array_type, array_value, start) -> ir.Value:
    array = context.make_array(array_type)(context, builder, array_value)
    ptr = builder.gep(array.data, [start])
    vector = ir.VectorType(ir.FloatType(), 64)
    return builder.load(builder.bitcast(ptr, vector.as_pointer()), align=4)


@intrinsic
def nonzero_mask64(typingctx, arr, start):
    """``uint64`` with bit ``j`` set where ``arr[start + j] != 0`` for ``j < 64``.

    ``arr`` is a contiguous 1-D float32 array and ``start`` an integer index; the caller
    guarantees ``start + 64 <= arr.shape[0]`` (nothing is checked: this is one vector load).
    """
    if not _is_float32_run(arr, start):
        return None
    sig = types.uint64(arr, start)

    def codegen(context, builder, signature, args):
        values = _load_run(context, builder, signature.args[0], args[0], args[1])
        nonzero = builder.fcmp_unordered("!=", values, ir.Constant(values.type, None))
        return builder.bitcast(nonzero, ir.IntType(64))

    return sig, codegen


@intrinsic
def unequal_mask64(typingctx, arr, start, value):
    """``uint64`` with bit ``j`` set where ``arr[start + j] != value`` (a float32) for
    ``j < 64``; the same contract as :func:`nonzero_mask64`."""
    if not _is_float32_run(arr, start) or value != types.float32:
        return None
    sig = types.uint64(arr, start, value)

    def codegen(context, builder, signature, args):
        values = _load_run(context, builder, signature.args[0], args[0], args[1])
        one = builder.insert_element(
            ir.Constant(values.type, ir.Undefined), args[2], ir.Constant(ir.IntType(32), 0)
        )
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
        splat = builder.shuffle_vector(one, ir.Constant(values.type, ir.Undefined), zeros)
        unequal = builder.fcmp_unordered("!=", values, splat)
        return builder.bitcast(unequal, ir.IntType(64))

    return sig, codegen


@intrinsic
def popcount64(typingctx, mask):
    """The number of set bits of a ``uint64``."""
    if mask != types.uint64:
        return None
    sig = types.uint64(mask)

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), [ir.IntType(64)]), "llvm.ctpop.i64"
        )
        return builder.call(fn, [args[0]])

    return sig, codegen


@intrinsic
def flat_view(typingctx, arr):
    """``arr.reshape(-1)`` for a C-contiguous array, as a view built in place: the same
    data, meminfo and parent, one dimension of ``arr.size`` items (no helper call, no
    copy). Other layouts do not type (use ``reshape``, which may copy)."""
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        return None
    sig = arr.copy(ndim=1, layout="C")(arr)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        dst = context.make_array(signature.return_type)(context, builder)
        size = functools.reduce(builder.mul, cgutils.unpack_tuple(builder, src.shape))
        context.populate_array(
            dst,
            data=src.data,
            shape=cgutils.pack_array(builder, [size]),
            strides=cgutils.pack_array(builder, [src.itemsize]),
            itemsize=src.itemsize,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, signature.return_type, dst._getvalue())

    return sig, codegen


@jit("uint64(int32[::1], uint64, uint64, uint64)", inline="always", nrt=False)
def append_set_bits(idx, pos, i0, mask):
    """Write ``i0 + j`` for every set bit ``j`` of ``mask``, in increasing order, at
    ``idx[pos:]``; return ``pos + popcount(mask)``.

    The first eight entries are written unconditionally (no branch to mispredict), so up to
    eight entries are written even for fewer bits (those past the count hold ``i0 + 64`` and
    mean nothing). Callers list a run of 64 values starting at ``i0`` into a list with room for
    every value, having listed fewer than ``i0`` before it (``pos <= i0``, ``i0 + 64 <=``
    room), so those writes stay inside the list.
    """
    end = pos + popcount64(mask)
    for k in range(np.uint64(8)):
        idx[pos + k] = np.int32(i0 + trailing_zeros(mask))
        mask &= mask - np.uint64(1)
    pos += np.uint64(8)
    while mask != 0:  # more than eight bits in this run
        idx[pos] = np.int32(i0 + trailing_zeros(mask))
        pos += np.uint64(1)
        mask &= mask - np.uint64(1)
    return end
