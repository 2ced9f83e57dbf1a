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
- :func:`lif_run64` and :func:`if_run64`: 64 LIF or IF neurons updated as ``<64 x float>``
  vectors, returning the bit mask of their spikes from the same compare, so a spike list
  needs no second pass over the outputs (a 64 x 256 LIF layer: 10.1 -> 8.3 µs, against the
  update loop followed by :func:`nonzero_mask64`). The arithmetic is the scalar kernels',
  operation for operation (no fused multiply-add), so the bits are the same.
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

# LIF membranes below this magnitude are flushed to zero: a decaying membrane would otherwise
# pass through float32 denormals, which are ~100x slower on x86 (the float32 nearest 1e-30).
TINY = float(np.float32(1e-30))

__all__ = [
    "append_set_bits",
    "flat_view",
    "if_run64",
    "lif_run64",
    "nonzero_mask64",
    "popcount64",
    "unequal_mask64",
]


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


def _splat(builder, value: ir.Value) -> ir.Value:
    """A ``<64 x float>`` of ``value``."""
    vector = ir.VectorType(ir.FloatType(), 64)
    one = builder.insert_element(
        ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)
    )
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), zeros)


def _run_pointer(context, builder, array_type, array_value, start) -> ir.Value:
    array = context.make_array(array_type)(context, builder, array_value)
    vector = ir.VectorType(ir.FloatType(), 64)
    return builder.bitcast(builder.gep(array.data, [start]), vector.as_pointer())


def _neuron_run(mem, v0, acts, x0, y0, th, decay=None):
    """Typing and code of :func:`lif_run64` (with ``decay``) and :func:`if_run64`."""
    leaky = decay is not None
    ok = (
        _is_float32_run(mem, v0)
        and _is_float32_run(acts, x0)
        and isinstance(y0, types.Integer)
        and th == types.float32
        and (decay == types.float32 or not leaky)
    )
    if not ok:
        return None
    sig = types.uint64(mem, v0, acts, x0, y0, th, *([decay] if leaky else []))

    def codegen(context, builder, signature, args):
        mem, v0, acts, x0, y0, th = args[:6]
        p_v = _run_pointer(context, builder, signature.args[0], mem, v0)
        p_x = _run_pointer(context, builder, signature.args[2], acts, x0)
        p_y = _run_pointer(context, builder, signature.args[2], acts, y0)
        v = builder.load(p_v, align=4)
        x = builder.load(p_x, align=4)
        zero = ir.Constant(v.type, None)
        if leaky:  # u = decay*v + x; v = 0 where fired or |u| < 1e-30
            u = builder.fadd(builder.fmul(_splat(builder, args[6]), v), x)
            fire = builder.fcmp_ordered(">=", u, _splat(builder, th))
            fabs = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(u.type, [u.type]), "llvm.fabs.v64f32"
            )
            tiny = _splat(builder, ir.Constant(ir.FloatType(), TINY))
            flush = builder.or_(fire, builder.fcmp_ordered("<", builder.call(fabs, [u]), tiny))
            new_v = builder.select(flush, zero, u)
        else:  # u = v + x; v = u - th where fired
            u = builder.fadd(v, x)
            fire = builder.fcmp_ordered(">=", u, _splat(builder, th))
            new_v = builder.select(fire, builder.fsub(u, _splat(builder, th)), u)
        builder.store(new_v, p_v, align=4)
        one = _splat(builder, ir.Constant(ir.FloatType(), 1.0))
        builder.store(builder.select(fire, one, zero), p_y, align=4)
        return builder.bitcast(fire, ir.IntType(64))

    return sig, codegen


@intrinsic
def lif_run64(typingctx, mem, v0, acts, x0, y0, th, decay):
    """64 LIF neurons: for ``j < 64``, ``u = decay*mem[v0+j] + acts[x0+j]``;
    ``acts[y0+j] = 1.0 if u >= th else 0.0``; ``mem[v0+j] = 0 if u >= th or |u| < 1e-30 else
    u``. Returns the spikes as a ``uint64`` bit mask. Float32 throughout; the caller
    guarantees the three runs lie inside their arrays and do not overlap (nothing is
    checked: these are vector loads and stores)."""
    return _neuron_run(mem, v0, acts, x0, y0, th, decay)


@intrinsic
def if_run64(typingctx, mem, v0, acts, x0, y0, th):
    """64 IF neurons (reset by subtraction): ``u = mem[v0+j] + acts[x0+j]``; spike where
    ``u >= th``; ``mem[v0+j] = u - th`` where spiked, else ``u``. The same contract."""
    return _neuron_run(mem, v0, acts, x0, y0, th)


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
