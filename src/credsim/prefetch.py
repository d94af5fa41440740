"""Prefetch: ask the CPU for a citizen's cache line a few records before a kernel needs it.

Why: the daily kernels walk today's records (a few per thousand citizens) and update columns of
length N at those citizens. At 10^6-10^7 citizens almost every such access misses the cache,
and a kernel whose body per record is long (many columns, branches, spilled registers) waits
for the misses one at a time: the CPU never sees far enough ahead to overlap them. Naming
the lines of record ``r + AHEAD`` while working on record ``r`` overlaps those waits; it
changes no value, only when memory is read.

``prefetch(a, i)`` hints element ``a[i]`` of a 1-D array; ``prefetch2(a, j, i)`` element
``a[j, i]`` of a 2-D and ``prefetch3(a, k, j, i)`` of a 3-D one (C order, no bounds check:
a hint to an address outside the array is harmless, the CPU drops it). Inside ``@njit``
kernels only. ``AHEAD`` is compiled into each kernel as a constant, and numba's cache of a kernel
is keyed by its own module's file only: after changing ``AHEAD``, clear the ``__pycache__`` numba
files (or touch the kernels' modules) to measure the new distance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

AHEAD = 16  # records between a hint and the use: covers a miss (~100 ns) at a few ns a record


def _emit(context: Any, builder: Any, aryty: Any, ary_val: Any, idx: list[Any]) -> None:
    ary = context.make_array(aryty)(context, builder, ary_val)
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                        "llvm.prefetch.p0")
    # write intent (1), high temporal locality (3), data cache (1)
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])


def _as_intp(context: Any, builder: Any, ty: Any, val: Any) -> Any:
    return context.cast(builder, val, ty, types.intp)


def _codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    """The hint for ``args[0][args[1:]]``, whatever the array's rank (the intrinsics below check the rank)."""
    idx = [_as_intp(context, builder, t, v) for t, v in zip(sig.args[1:], args[1:], strict=True)]
    _emit(context, builder, sig.args[0], args[0], idx)
    return context.get_dummy_value()


@intrinsic
def _prefetch1(typingctx: Any, arr: Any, i: Any) -> Any:
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(i, types.Integer):
        return None
    return types.void(arr, i), _codegen


@intrinsic
def _prefetch2(typingctx: Any, arr: Any, j: Any, i: Any) -> Any:
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    return types.void(arr, j, i), _codegen


@intrinsic
def _prefetch3(typingctx: Any, arr: Any, k: Any, j: Any, i: Any) -> Any:
    if not isinstance(arr, types.Array) or arr.ndim != 3:
        return None
    return types.void(arr, k, j, i), _codegen


# the kernels' names for the hints, typed as what a kernel calls (numba sees the intrinsics)
prefetch: Callable[..., None] = _prefetch1
prefetch2: Callable[..., None] = _prefetch2
prefetch3: Callable[..., None] = _prefetch3
