"""Low-level helpers for the sim kernel: a log that numba can vectorise, and a load pin.

:func:`log`. Why: ``math.log`` inside an njit loop is a call into libm, and a call stops LLVM
from vectorising the loop around it. This machine's numba has no SVML (Intel's vector libm),
so the reward loop over 1024 accounts ran scalar, and the log calls alone were ~4.5 us of a
~23 us kernel. Here it is straight-line arithmetic (bit tricks, one division, a polynomial,
selects instead of branches), which LLVM turns into SIMD code.

The algorithm is fdlibm's ``__ieee754_log`` (also musl's until 2018; error < 1 ulp), with its
branches rewritten as selects. Write x = 2^k * (1 + f) with sqrt(2)/2 < 1 + f < sqrt(2); then

    log(x) = k*ln2 + log(1 + f),   log(1 + f) = f - s*(f - R(z)),   s = f/(2 + f), z = s^2

where R is a degree-14 minimax polynomial in s (even powers: 7 coefficients). ln2 is split in
a high part with trailing zero bits (so k*ln2_hi is exact) and a low part. The original
returns early when k == 0 or when f is tiny; those are only shortcuts: with k == 0 the k terms
are exactly +0.0 (same result), and the general formula stays within 1 ulp for tiny f (and
gives log(1) == 0.0 exactly), so dropping them keeps the accuracy and removes the branches.
Zero, negative, infinite and NaN inputs give numpy's answers (-inf, nan, inf, nan);
subnormals are scaled up by 2^54 first.

:func:`loaded` (see ``_loaded``) keeps a select from turning into a jump.
"""

from __future__ import annotations

import platform
from typing import Any

import numba
from llvmlite import ir  # type: ignore[import-untyped]  # numba's own dependency
from numba import types
from numba.extending import intrinsic

_LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42 FEE00000: k * LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10  # 0x3DEA39EF 35793C76
_LG1 = 6.666666666666735130e-01  # 0x3FE55555 55555593
_LG2 = 3.999999999940941908e-01  # 0x3FD99999 9997FA04
_LG3 = 2.857142874366239149e-01  # 0x3FD24924 94229359
_LG4 = 2.222219843214978396e-01  # 0x3FCC71C5 1D8E78AF
_LG5 = 1.818357216161805012e-01  # 0x3FC74664 96CB03DE
_LG6 = 1.531383769920937332e-01  # 0x3FC39A09 D078C69F
_LG7 = 1.479819860511658591e-01  # 0x3FC2F112 DF3E5244
_TWO54 = 1.80143985094819840000e16  # 2^54: scales subnormals into the normal range
_MIN_NORMAL = 2.2250738585072014e-308
_INF = float("inf")
_NAN = float("nan")


# The intrinsics are typed Any where they are called (numba's stubs type them by their
# typing-time signature, which takes the typing context too).
def _bits_of(typingctx: Any, x: Any) -> Any:
    """The IEEE-754 bits of a float64 as an int64 (a register move, unlike a libm frexp)."""
    if x != types.float64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


def _float_of(typingctx: Any, bits: Any) -> Any:
    """The float64 whose IEEE-754 bits are the int64 ``bits``."""
    if bits != types.int64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_bits: Any = intrinsic(_bits_of)
_float: Any = intrinsic(_float_of)


@numba.njit(cache=True, error_model="numpy", inline="always")
def log(x: float) -> float:
    """Natural logarithm of ``x``, within 1 ulp of the correctly rounded result; vectorisable."""
    tiny = x < _MIN_NORMAL
    y = x * _TWO54 if tiny else x
    hx = _bits(y) >> 32  # the high word, as in fdlibm (x > 0 here, so it is non-negative)
    k = (hx >> 20) - 1023 - (54 if tiny else 0)
    hx &= 0x000FFFFF
    # Pick the binade that puts 1 + f in [sqrt(2)/2, sqrt(2)): i is 0x100000 when the
    # mantissa is >= sqrt(2) (then halve it and count one more power of two).
    i = (hx + 0x95F64) & 0x100000
    k += i >> 20
    reduced = _float(((hx | (i ^ 0x3FF00000)) << 32) | (_bits(y) & 0xFFFFFFFF))
    f = reduced - 1.0
    s = f / (2.0 + f)
    dk = float(k)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    # fdlibm's two accurate forms: with the f^2/2 term split off when 1 + f is far from 1.
    far = ((hx - 0x6147A) | (0x6B851 - hx)) > 0
    hfsq = 0.5 * f * f
    near_1 = dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)
    away = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    result = away if far else near_1
    # Special inputs, as numpy's log: log(0) = -inf, log(<0) = nan, log(inf) = inf, nan -> nan.
    result = x if x == _INF else result
    result = -_INF if x == 0.0 else result
    return result if x >= 0.0 else _NAN


def _loaded(typingctx: Any, x: Any) -> Any:
    """``x`` unchanged, but always computed, here: for a load that feeds a select.

    LLVM sinks a load that only one arm of a select uses into that arm, and must then jump
    around it. In the sim kernel's accounting pass that turned the position-change selects
    (random, so mispredicted on about half of the accounts) into jumps costing a third of
    the pass. An empty inline-asm statement marked as having side effects can be neither
    sunk nor skipped, so the value is loaded on every path and the select stays a select.
    Scalar loops only: it stops LLVM from vectorising the loop.
    """
    if x != types.float64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if _FP_REGISTER is None:  # an architecture we have no constraint for: plain value
            return args[0]
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()])
        constraint = f"={_FP_REGISTER},0"
        return builder.call(ir.InlineAsm(fnty, "", constraint, side_effect=True), [args[0]])

    return types.float64(types.float64), codegen


# The inline-asm register class of a float64 per architecture (SSE "x" on x86-64, SIMD/FP
# "w" on arm64); elsewhere the pin is skipped (correct, just possibly slower).
_FP_REGISTER = {"x86_64": "x", "amd64": "x", "aarch64": "w", "arm64": "w"}.get(
    platform.machine().lower()
)


loaded: Any = intrinsic(_loaded)
