"""Bit operations for kernels that numba does not expose: population count, trailing zeros, and
"the position of the idx-th set bit" of a uint64 (a select).

:func:`select_bit` is one instruction pair (BMI2 ``PDEP`` + ``TZCNT``) on CPUs where ``PDEP`` is
fast, and a portable broadword select elsewhere (AMD before Zen 3 microcodes ``PDEP`` at up to
hundreds of cycles; ARM has none). Both return the same value for every input, so a kernel's
output never depends on the machine; the choice is made once, from the host CPU, which is also
part of numba's cache key.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64
from numba.extending import intrinsic


@intrinsic
def popcount64(typingctx, x):
    """Number of set bits of a uint64."""
    def codegen(context, builder, signature, args):
        return builder.call(builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)]), args)
    return types.uint64(types.uint64), codegen


@intrinsic
def trailing_zeros64(typingctx, x):
    """Number of trailing zero bits of a uint64 (64 for 0)."""
    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.cttz", [ir.IntType(64), ir.IntType(1)])
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])
    return types.uint64(types.uint64), codegen


@intrinsic
def _pdep64(typingctx, x, mask):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(64)])
        return builder.call(builder.module.declare_intrinsic("llvm.x86.bmi.pdep.64", fnty=fnty), args)
    return types.uint64(types.uint64, types.uint64), codegen


@njit(cache=True, inline="always")
def select_bit_pdep(mask, idx):
    """Position of the ``idx``-th (from 0) set bit of ``mask`` (``idx < popcount(mask)``), with PDEP."""
    return trailing_zeros64(_pdep64(uint64(1) << idx, mask))


def _byte_select_table() -> np.ndarray:
    """``table[8 * byte + r]``: position of the ``r``-th set bit of ``byte``."""
    table = np.zeros(256 * 8, np.uint8)
    for byte in range(256):
        for r, position in enumerate(i for i in range(8) if byte >> i & 1):
            table[8 * byte + r] = position
    return table


_SELECT_IN_BYTE = _byte_select_table()
_ONES_8 = uint64(0x0101010101010101)
_HIGHS_8 = uint64(0x8080808080808080)


@njit(cache=True, inline="always")
def select_bit_broadword(mask, idx):
    """:func:`select_bit_pdep` without PDEP: byte counts, their prefix sums in one multiply, the
    byte that holds the bit by a parallel compare, then a table for the bit within that byte."""
    s = mask - ((mask >> uint64(1)) & uint64(0x5555555555555555))
    s = (s & uint64(0x3333333333333333)) + ((s >> uint64(2)) & uint64(0x3333333333333333))
    s = (s + (s >> uint64(4))) & uint64(0x0F0F0F0F0F0F0F0F)
    prefix = s * _ONES_8  # byte i: set bits in bytes 0..i (at most 64, so no carry between bytes)
    beyond = ((prefix | _HIGHS_8) - (uint64(idx) + uint64(1)) * _ONES_8) & _HIGHS_8  # bytes with prefix > idx
    byte_shift = trailing_zeros64(beyond) - uint64(7)  # 8 x the first such byte
    before = ((prefix << uint64(8)) >> byte_shift) & uint64(0xFF)  # set bits below that byte
    byte = (mask >> byte_shift) & uint64(0xFF)
    return byte_shift + uint64(_SELECT_IN_BYTE[byte * uint64(8) + uint64(idx) - before])


def fast_pdep() -> bool:
    """Whether this CPU has a fast BMI2 ``PDEP`` (Intel since Haswell, AMD since Zen 3)."""
    import platform

    from llvmlite import binding

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    features = binding.get_host_cpu_features()
    name = binding.get_host_cpu_name()
    return bool(features.get("bmi2", False)) and not name.startswith(("bdver", "znver1", "znver2"))


select_bit = select_bit_pdep if fast_pdep() else select_bit_broadword
