"""SIMD building blocks that LLVM does not find on its own in Numba loops.

:func:`nonzero_mask64` is the only one: a 64-bit mask of the nonzero values in a run of 64
float32. The loop ``mask |= uint64(a[i] != 0) << i`` (the kernels' first version) compiles to
64-bit lanes with shifts and shuffles, about 15 ns per run of 64 on the development machine;
this intrinsic hands LLVM the comparison of a ``<64 x float>`` vector and the bit cast of its
``<64 x i1>`` result to ``i64``, which it lowers to eight compares and eight ``vmovmskps``
(about 3 ns). Every spike list and active-input scan of the runtime goes through it.

The semantics are those of ``a[i] != 0.0`` in Python: NaN counts as nonzero, ``-0.0`` as
zero. ``tests/runtime/test_simd.py`` checks it against that loop.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["nonzero_mask64"]


@intrinsic
def nonzero_mask64(typingctx, arr, start):
    """``uint64`` with bit ``j`` set where ``arr[start + j] != 0`` for ``j < 64``.

    ``arr`` is a contiguous 1-D float32 array and ``start`` an integer index; the caller
    guarantees ``start + 64 <= arr.shape[0]`` (nothing is checked: this is one vector load).
    """
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.dtype == types.float32
        and arr.layout == "C"
        and isinstance(start, types.Integer)
    ):
        return None
    sig = types.uint64(arr, start)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(array.data, [args[1]])
        vector = ir.VectorType(ir.FloatType(), 64)
        values = builder.load(builder.bitcast(ptr, vector.as_pointer()), align=4)
        nonzero = builder.fcmp_unordered("!=", values, ir.Constant(vector, None))
        return builder.bitcast(nonzero, ir.IntType(64))

    return sig, codegen
