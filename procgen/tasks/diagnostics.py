"""Diagnostic tasks: needle-in-a-haystack recall and digit arithmetic (the paper's downstream probes).

The defaults reproduce the paper's official harness (``downstream/algorithmic_tasks/task_*.py`` of
its released code) exactly. Every row is prompt then answer; ``answer_start`` is the index of the
first answer token. The official harness scores (and trains on) a sub-span of the answer, given by
each task's ``reference_span`` (``Task.scored_span(..., scoring="reference")``; a label at position
``t`` is predicted by the model at ``t - 1``).

haystack (vocabulary 256, uint8)
    ``k_1 v_1 ... k_p v_p q v [<eos>]``. The ``p`` keys are distinct, drawn uniformly among 30 keys
    (key ``k`` is id ``128 + k``, ``k`` in 0..29) in random order; each value is uniform in
    1..127 (id = value; values may repeat). The query is id ``158 + k`` for a key drawn uniformly
    among the row's ``p`` keys, followed by that key's value. Length ``2p + 2`` (``+1`` with
    ``eos``: id 188), ``answer_start = 2p + 1``. ``p`` is uniform in ``[min_pairs, max_pairs]``
    per row (default 1..30, as in the official harness), or fixed by ``pairs``. Pad id 0 (never a
    value). Ids 189..255 are unused.

    Official scoring: the value after the query only (label ``answer_start``; never the end token).

addition, reversed_addition, multiplication (vocabulary 32, uint8)
    ``a OP b = r <stop>``: operand digits are ids 0..9, ``'+'``/``'*'`` is 10, ``'='`` is 11, each
    answer digit ``x`` is ``20 + x``, the stop token is 30, pad is 31; ids 12..19 are unused.

    * Official layout (default). Each operand has exactly ``o`` digits and no leading zero: ``o``
      is uniform in ``[min_digits, max_digits]``, drawn for ``a`` and ``b`` independently, then
      the value is uniform in ``[10^(o-1), 10^o - 1]`` (the harness's ``drawnum()``). The answer
      is the plain decimal result without leading zeros: a sum of ``o``-digit operands has ``o``
      or ``o + 1`` digits, a product of ``o_a``- and ``o_b``-digit operands ``o_a + o_b - 1`` or
      ``o_a + o_b``. Rows therefore vary in length: ``o_a + o_b + 3 + (answer digits)``, with
      ``answer_start = o_a + o_b + 2`` (the first answer digit, right after ``'='``).
    * ``fixed_width=True`` (our earlier layout). Both operands of a row share ``d`` digits (uniform
      in ``[min_digits, max_digits]``) and are uniform in ``[0, 10^d)`` written with leading
      zeros; the answer has a fixed width too (``d + 1`` digits for a sum, ``2d`` for a product,
      leading zeros kept). Length ``3d + 4`` (sums) or ``4d + 3`` (products),
      ``answer_start = 2d + 2``.

    addition (d=5) and multiplication (d=5) write every number most significant digit first;
    reversed_addition (d=10) writes both operands *and* the sum least significant digit first.

    Official scoring: the harness pads every row with id 12 to ``W = 3*max_digits + 4`` (sums) or
    ``5*max_digits + 4`` (products) and scores every position whose *current* token is ``>= 20``,
    predicting the next one: answer digits 2..n, the stop token and, since the stop token (30) is
    itself ``>= 20``, the first pad position after the stop whenever the row is shorter than
    ``W``. So labels ``answer_start + 1 .. length - 1``, plus ``length`` if ``length < W``; the
    first answer digit (predicted at ``'='``) is never scored. With ``fixed_width=True``: labels
    ``answer_start + 1 .. length - 1``.

Example
-------
>>> import procgen
>>> procgen.addition(n=1, digits=2, seed=0).render(0)
'8 1 + 4 4 = | a1 a2 a5 <stop>'
>>> procgen.addition(n=1, digits=2, seed=0, fixed_width=True).render(0)
'7 9 + 3 7 = | a1 a1 a6 <stop>'
"""

from __future__ import annotations

import numpy as np
from numba import njit

from procgen._rng import below, hi32, length_bits, lo32, next_u64, row_offsets, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import fill_rows, range_params, resolve_range, row_validator

# haystack ids
N_KEYS = 30
KEY_BASE = 128
QUERY_BASE = KEY_BASE + N_KEYS  # 158
HAYSTACK_EOS = QUERY_BASE + N_KEYS  # 188
MAX_VALUE = 127
HAYSTACK_PAD = 0
HAYSTACK_VOCAB = 256

# arithmetic ids
OP = 10
EQUALS = 11
ANSWER_BASE = 20
STOP = 30
ARITH_PAD = 31
MAX_DIGITS = 1000

_ADD, _MUL = 0, 1
_ONE_U = np.uint64(1)


# --- haystack generator -------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _haystack_fill(base, start, offsets, eos, out, answer_start):
    """Write the haystack rows of ``offsets`` (int64; lengths ``2p + 2 + eos`` from the length
    stream) into ``out`` and their ``answer_start`` (int32, ``2p + 1``).

    Draws, per row: one ``next_u64`` per pair (high 32 bits: the key, by a partial Fisher-Yates
    shuffle of the 30 keys; low 32 bits: the value), then one whose high 32 bits pick the queried pair.
    """
    count = offsets.shape[0] - 1
    keys = np.empty(N_KEYS, np.int64)
    for r in range(count):
        state = row_state(base, start + r)
        first = offsets[r]
        pairs = (offsets[r + 1] - first - 2 - eos) // 2
        for k in range(N_KEYS):  # reset per row: a row must not depend on the previous one
            keys[k] = k
        for j in range(pairs):  # partial Fisher-Yates: keys[:pairs] is a uniform ordered sample
            state, bits = next_u64(state)
            pick = j + below(hi32(bits), N_KEYS - j)
            key = keys[pick]
            keys[pick] = keys[j]
            keys[j] = key
            at = np.uint64(first + 2 * j)  # unsigned index: no wraparound check
            out[at] = KEY_BASE + key
            out[at + _ONE_U] = 1 + below(lo32(bits), MAX_VALUE)
        state, bits = next_u64(state)
        asked = below(hi32(bits), pairs)
        out[first + 2 * pairs] = QUERY_BASE + keys[asked]
        out[first + 2 * pairs + 1] = out[first + 2 * asked + 1]
        if eos:
            out[first + 2 * pairs + 2] = HAYSTACK_EOS
        answer_start[r] = 2 * pairs + 1


def _haystack_kernel(base, start, count, params, dtype):
    # row lengths 2p + 2 + eos in steps of 2 from the length stream: p uniform in [min_pairs, max_pairs]
    eos = int(params["eos"])
    offsets = row_offsets(np.uint64(base), start, count, 2 * params["min_pairs"] + 2 + eos,
                          2 * params["max_pairs"] + 2 + eos, 2)
    tokens = np.empty(offsets[-1], dtype)
    answer_start = np.empty(count, np.int32)
    _haystack_fill(np.uint64(base), start, offsets, eos, tokens, answer_start)
    return tokens, offsets, answer_start


# --- arithmetic generator (whole-number draws; uint64 arithmetic when it fits, else digit-wise) --
# Two passes: the operand digit counts come from each row's length stream (procgen._rng.length_bits),
# so a first pass sizes the output from them alone; the second draws the operands from the row's
# content stream and writes rows back to back. A row's size bound exceeds its length by at most
# one token (a sum without carry out, a product one digit short), so at most ``count`` tokens of
# the buffer are trimmed.

_CHUNK = 9  # digits per 64-bit draw: 10^9 / 2^64 keeps the draw's non-uniformity below 1e-10
_POW10 = np.array([10 ** k for k in range(_CHUNK + 1)], np.uint64)
# numba turns uint64 <op> Python int into float64: keep every constant of the uint64 math uint64
_TEN = np.uint64(10)
_NINE = np.uint64(9)
_S32 = np.uint64(32)
_ANSWER_BASE_U = np.uint64(ANSWER_BASE)
_SUM_FITS = 18  # a + b < 2 * 10^18 < 2^64 when both have at most 18 digits
_PRODUCT_FITS = 18  # a * b < 10^(o_a + o_b) <= 10^18 < 2^64


@njit(cache=True, inline="always")
def _scale(bits, m):
    """floor(bits * m / 2^64): an integer in [0, m) from 64 random bits (m < 2^32).

    Multiply-shift with 64-bit input: each value has probability within m / 2^64 (relative) of
    uniform. The 64x32-bit high product is assembled from 32-bit halves (no 128-bit ints).
    """
    return (hi32(bits) * m + ((lo32(bits) * m) >> _S32)) >> _S32


@njit(cache=True, inline="always")
def _operand_digits(base, row, min_digits, max_digits, fixed_width):
    """Digit counts ``(o_a, o_b)`` of row ``row``, drawn from its length stream.

    Each is uniform in ``[min_digits, max_digits]``, independently (the official ``drawnum()``);
    with ``fixed_width`` both operands take the first draw (the earlier layout's row length draw).
    """
    if min_digits == max_digits:
        return min_digits, min_digits
    bits = length_bits(base, row)
    span = max_digits - min_digits + 1
    o_a = min_digits + below(hi32(bits), span)
    o_b = o_a if fixed_width else min_digits + below(lo32(bits), span)
    return o_a, o_b


@njit(cache=True, inline="always")
def _result_digits(op, o_a, o_b):
    """Most digits the result can have: ``max(o_a, o_b) + 1`` for a sum, ``o_a + o_b`` for a product."""
    return max(o_a, o_b) + 1 if op == _ADD else o_a + o_b


@njit(cache=True, nogil=True)
def _arith_capacity(base, start, count, op, fixed_width, min_digits, max_digits):
    """Size pass: the most tokens rows ``start .. start+count-1`` can take."""
    total = 0
    for r in range(count):
        o_a, o_b = _operand_digits(base, start + r, min_digits, max_digits, fixed_width)
        total += o_a + o_b + 3 + _result_digits(op, o_a, o_b)
    return total


@njit(cache=True, inline="always")
def _draw_operand(state, out, at, d, reverse, leading):
    """Write a uniform d-digit number at ``out[at:at+d]``.

    ``leading``: the number is uniform in ``[10^(d-1), 10^d)`` (no leading zero); otherwise uniform
    in ``[0, 10^d)`` with leading zeros kept. Drawn in chunks of up to 9 digits, least significant
    first, one 64-bit draw per chunk; with ``leading`` the most significant chunk of ``k`` digits
    is uniform in ``[10^(k-1), 10^k)`` (a leading digit uniform in 1..9 and uniform digits below
    it: exactly a uniform number without leading zero). Digits of significance ``i`` go to
    ``at + i`` if ``reverse`` else ``at + d-1-i``. Returns ``(state, value)``; ``value`` is the
    number itself when d <= 19 (it wraps beyond, unused).
    """
    value = np.uint64(0)
    scale = np.uint64(1)
    i = 0
    while i < d:
        k = min(_CHUNK, d - i)
        state, bits = next_u64(state)
        if leading and i + k == d:
            x = _POW10[k - 1] + _scale(bits, _NINE * _POW10[k - 1])
        else:
            x = _scale(bits, _POW10[k])
        value += x * scale
        scale *= _POW10[k]
        for _ in range(k):
            q = x // _TEN
            out[np.uint64(at + (i if reverse else d - 1 - i))] = x - q * _TEN  # unsigned: no wraparound check
            x = q
            i += 1
    return state, value


@njit(cache=True, inline="always")
def _digit(out, at, d, reverse, i):
    """Digit of significance ``i`` of the d-digit number written at ``out[at:at+d]`` (0 beyond it)."""
    if i >= d:
        return np.uint64(0)
    return np.uint64(out[at + (i if reverse else d - 1 - i)])


@njit(cache=True, nogil=True)
def _arith_fill(base, start, op, reverse, fixed_width, min_digits, max_digits, out, offsets, answer_start):
    """Fill pass: write rows ``start ..`` back to back into ``out``; return the tokens written.

    ``offsets`` (``count + 1`` entries, from 0) and ``answer_start`` receive each row's bounds and
    first answer position; ``column`` holds the result's digits, least significant first. Draws,
    per row: the operand digit counts from the length stream (:func:`_operand_digits`), then from
    the content stream ``a``'s chunks and ``b``'s chunks (:func:`_draw_operand`).
    """
    count = offsets.shape[0] - 1
    column = np.empty(2 * max_digits, np.uint64)
    leading = not fixed_width
    offsets[0] = 0
    p = 0
    for r in range(count):
        o_a, o_b = _operand_digits(base, start + r, min_digits, max_digits, fixed_width)
        state = row_state(base, start + r)
        at_b = p + o_a + 1
        state, value_a = _draw_operand(state, out, p, o_a, reverse, leading)
        state, value_b = _draw_operand(state, out, at_b, o_b, reverse, leading)
        answer = at_b + o_b + 1
        out[at_b - 1] = OP
        out[answer - 1] = EQUALS
        width = _result_digits(op, o_a, o_b)
        if (op == _ADD and max(o_a, o_b) <= _SUM_FITS) or (op != _ADD and o_a + o_b <= _PRODUCT_FITS):
            value = value_a + value_b if op == _ADD else value_a * value_b
            for i in range(width):
                q = value // _TEN
                column[i] = value - q * _TEN
                value = q
        elif op == _ADD:  # long addition, digit by digit
            carry = np.uint64(0)
            for i in range(width - 1):
                total = _digit(out, p, o_a, reverse, i) + _digit(out, at_b, o_b, reverse, i) + carry
                carry = np.uint64(1) if total >= _TEN else np.uint64(0)
                column[i] = total - carry * _TEN
            column[width - 1] = carry
        else:  # long multiplication: column sums, then carries
            column[:width] = 0
            for i in range(o_a):
                a_i = _digit(out, p, o_a, reverse, i)
                for j in range(o_b):
                    column[i + j] += a_i * _digit(out, at_b, o_b, reverse, j)
            carry = np.uint64(0)
            for i in range(width):
                total = column[i] + carry
                carry = total // _TEN
                column[i] = total - carry * _TEN
        if leading and column[width - 1] == 0:
            width -= 1  # operands without leading zeros: the result is at most one digit short
        for i in range(width):
            out[np.uint64(answer + (i if reverse else width - 1 - i))] = _ANSWER_BASE_U + column[i]
        out[answer + width] = STOP
        answer_start[r] = answer - p
        p = answer + width + 1
        offsets[r + 1] = p
    return p


def _arith_kernel(op, reverse):
    def kernel(base, start, count, params, dtype):
        base = np.uint64(base)
        fixed_width = bool(params["fixed_width"])
        low, high = params["min_digits"], params["max_digits"]
        return fill_rows(_arith_fill, _arith_capacity(base, start, count, op, fixed_width, low, high), count, dtype,
                         base, start, op, reverse, fixed_width, low, high)

    return kernel


# --- validators ---------------------------------------------------------------------------------

_OK, _BAD_LENGTH, _BAD_ANSWER_START, _BAD_KEY, _DUPLICATE_KEY, _BAD_VALUE, _BAD_QUERY, _QUERY_ABSENT, \
    _WRONG_VALUE, _BAD_EOS, _BAD_DIGIT, _BAD_OPERATOR, _BAD_EQUALS, _BAD_ANSWER_DIGIT, _BAD_STOP, \
    _WRONG_ANSWER, _BAD_DIGIT_COUNT, _UNEQUAL_OPERANDS, _BAD_ANSWER_LENGTH, _LEADING_ZERO_OPERAND, \
    _LEADING_ZERO_ANSWER = range(21)
_REASONS = {
    _BAD_LENGTH: "row length does not match an allowed pair count",
    _BAD_ANSWER_START: "answer_start is not the position of the first answer token",
    _BAD_KEY: "key token outside 128..157",
    _DUPLICATE_KEY: "a key appears twice",
    _BAD_VALUE: "value token outside 1..127",
    _BAD_QUERY: "query token outside 158..187",
    _QUERY_ABSENT: "the queried key is not among the row's keys",
    _WRONG_VALUE: "answer is not the value paired with the queried key",
    _BAD_EOS: "end token (188) missing",
    _BAD_DIGIT: "operand token outside 0..9",
    _BAD_OPERATOR: "operator token (10) missing",
    _BAD_EQUALS: "'=' (11) missing after the operator",
    _BAD_ANSWER_DIGIT: "answer token outside 20..29",
    _BAD_STOP: "stop token (30) missing at the end",
    _WRONG_ANSWER: "answer digits are not the result of the operation",
    _BAD_DIGIT_COUNT: "an operand's digit count is outside [min_digits, max_digits]",
    _UNEQUAL_OPERANDS: "fixed_width: the two operands have different digit counts",
    _BAD_ANSWER_LENGTH: "answer digit count does not fit the operands (fixed_width: exactly d+1 for a sum, "
                        "2d for a product; else at most that, and at least 1)",
    _LEADING_ZERO_OPERAND: "an operand starts with a 0 (leading zeros only with fixed_width=True)",
    _LEADING_ZERO_ANSWER: "the answer starts with a 0 (leading zeros only with fixed_width=True)",
}


@njit(cache=True, nogil=True)
def _haystack_check(tokens, offsets, answer_start, eos, min_pairs, max_pairs):
    """A bitmask of seen keys and a key -> value table (no sampling replay): distinct keys, values
    and query in range, the query among the keys, the answer its value. Returns ``(row or -1, code)``."""
    count = offsets.shape[0] - 1
    value_of = np.zeros(N_KEYS, np.int64)
    for r in range(count):
        first = offsets[r]
        body = offsets[r + 1] - first - 2 - eos
        pairs = body // 2
        if body % 2 != 0 or pairs < min_pairs or pairs > max_pairs:
            return r, _BAD_LENGTH
        if answer_start[r] != 2 * pairs + 1:
            return r, _BAD_ANSWER_START
        seen = 0
        for j in range(pairs):
            key = np.int64(tokens[first + 2 * j]) - KEY_BASE
            if key < 0 or key >= N_KEYS:
                return r, _BAD_KEY
            if (seen >> key) & 1:
                return r, _DUPLICATE_KEY
            seen |= 1 << key
            value = np.int64(tokens[first + 2 * j + 1])
            if value < 1 or value > MAX_VALUE:
                return r, _BAD_VALUE
            value_of[key] = value
        query = np.int64(tokens[first + 2 * pairs]) - QUERY_BASE
        if query < 0 or query >= N_KEYS:
            return r, _BAD_QUERY
        if not (seen >> query) & 1:
            return r, _QUERY_ABSENT
        if np.int64(tokens[first + 2 * pairs + 1]) != value_of[query]:
            return r, _WRONG_VALUE
        if eos and np.int64(tokens[first + 2 * pairs + 2]) != HAYSTACK_EOS:
            return r, _BAD_EOS
    return -1, _OK


_LIMB = 10_000  # the validator does its arithmetic on base-10^4 limbs, not digit by digit
_LIMB_DIGITS = 4


@njit(cache=True, nogil=True)
def _read_limbs(tokens, at, n_digits, reverse, offset, limbs):
    """Number written at ``tokens[at : at+n_digits]`` (ids ``offset + digit``) into base-10^4 limbs."""
    n_limbs = (n_digits + _LIMB_DIGITS - 1) // _LIMB_DIGITS
    limbs[:n_limbs] = 0
    for i in range(n_digits):  # i: significance of the digit
        digit = np.int64(tokens[at + (i if reverse else n_digits - 1 - i)]) - offset
        limbs[i // _LIMB_DIGITS] += digit * 10 ** (i % _LIMB_DIGITS)
    return n_limbs


@njit(cache=True, inline="always")
def _find(tokens, first, begin, end, token):
    """Row position (``begin <= j < end``) of the first ``token`` in the row starting at ``first``, or -1."""
    for j in range(begin, end):
        if np.int64(tokens[first + j]) == token:
            return j
    return -1


@njit(cache=True, nogil=True)
def _arith_check(tokens, offsets, answer_start, op, reverse, fixed_width, min_digits, max_digits):
    """Parse each row from its tokens (operator and '=' located by scanning), check its shape and
    leading zeros, then recompute the result in base-10^4 limbs (no replay of the sampling)."""
    count = offsets.shape[0] - 1
    size = 2 * ((max_digits + _LIMB_DIGITS - 1) // _LIMB_DIGITS) + 2
    a = np.zeros(size, np.int64)
    b = np.zeros(size, np.int64)
    expected = np.zeros(size, np.int64)
    given = np.zeros(size, np.int64)
    for r in range(count):
        first = offsets[r]
        length = offsets[r + 1] - first
        op_at = _find(tokens, first, 0, length, OP)
        if op_at < 0:
            return r, _BAD_OPERATOR
        eq_at = _find(tokens, first, op_at + 1, length, EQUALS)
        if eq_at < 0:
            return r, _BAD_EQUALS
        for j in range(eq_at):
            token = np.int64(tokens[first + j])
            if j != op_at and (token < 0 or token > 9):
                return r, _BAD_DIGIT
        n_a, n_b = op_at, eq_at - op_at - 1
        if n_a < min_digits or n_a > max_digits or n_b < min_digits or n_b > max_digits:
            return r, _BAD_DIGIT_COUNT
        if fixed_width and n_a != n_b:
            return r, _UNEQUAL_OPERANDS
        if answer_start[r] != eq_at + 1:
            return r, _BAD_ANSWER_START
        if np.int64(tokens[first + length - 1]) != STOP:
            return r, _BAD_STOP
        n_answer = length - eq_at - 2
        for j in range(eq_at + 1, length - 1):
            token = np.int64(tokens[first + j])
            if token < ANSWER_BASE or token > ANSWER_BASE + 9:
                return r, _BAD_ANSWER_DIGIT
        most = max(n_a, n_b) + 1 if op == _ADD else n_a + n_b
        if n_answer < 1 or n_answer > most or (fixed_width and n_answer != most):
            return r, _BAD_ANSWER_LENGTH
        if not fixed_width:  # the most significant digit of each number is not 0
            if tokens[first + (n_a - 1 if reverse else 0)] == 0 \
                    or tokens[first + op_at + 1 + (n_b - 1 if reverse else 0)] == 0:
                return r, _LEADING_ZERO_OPERAND
            if tokens[first + eq_at + 1 + (n_answer - 1 if reverse else 0)] == ANSWER_BASE:
                return r, _LEADING_ZERO_ANSWER
        limbs_a = _read_limbs(tokens, first, n_a, reverse, 0, a)
        limbs_b = _read_limbs(tokens, first + op_at + 1, n_b, reverse, 0, b)
        n_given = _read_limbs(tokens, first + eq_at + 1, n_answer, reverse, ANSWER_BASE, given)
        n_expected = limbs_a + limbs_b + 1
        expected[:n_expected] = 0
        if op == _ADD:
            for i in range(max(limbs_a, limbs_b)):
                expected[i] = (a[i] if i < limbs_a else 0) + (b[i] if i < limbs_b else 0)
        else:
            for i in range(limbs_a):
                for j in range(limbs_b):
                    expected[i + j] += a[i] * b[j]
        for i in range(n_expected - 1):  # carry propagation in base 10^4
            expected[i + 1] += expected[i] // _LIMB
            expected[i] %= _LIMB
        for i in range(max(n_given, n_expected)):
            if (given[i] if i < n_given else 0) != (expected[i] if i < n_expected else 0):
                return r, _WRONG_ANSWER
    return -1, _OK


_haystack_validate = row_validator(_haystack_check, _REASONS, lambda params: (
    int(params["eos"]), params["min_pairs"], params["max_pairs"]))


def _arith_validator(op, reverse):
    return row_validator(_arith_check, _REASONS, lambda params: (
        op, reverse, bool(params["fixed_width"]), params["min_digits"], params["max_digits"]))


# --- the positions the official harness scores --------------------------------------------------

def _haystack_reference_span(lengths, answer_start, params):
    """The value after the query only: the harness scores the positions whose current token is a
    query (ids >= 158), never the end token."""
    return answer_start, answer_start + 1


def _arith_reference_span(op):
    def reference_span(lengths, answer_start, params):
        """Answer digits 2..n and the stop token; in the official layout also the first pad
        position when the row is shorter than the harness's padded width (it scores every
        position whose current token is >= 20, and the stop token 30 is one)."""
        if params["fixed_width"]:
            return answer_start + 1, lengths
        padded_width = (3 if op == _ADD else 5) * params["max_digits"] + 4
        return answer_start + 1, lengths + (lengths < padded_width)

    return reference_span


# --- vocabularies, parameters, tasks ------------------------------------------------------------

def _haystack_vocab(params) -> list[str]:
    return (["<pad>"] + [f"v{v}" for v in range(1, MAX_VALUE + 1)] + [f"k{k}" for k in range(N_KEYS)]
            + [f"q{k}" for k in range(N_KEYS)] + ["<eos>"]
            + [f"<unused{i}>" for i in range(HAYSTACK_EOS + 1, HAYSTACK_VOCAB)])


def _arith_vocab(operator):
    def vocab(params) -> list[str]:
        return ([str(x) for x in range(10)] + [operator, "="] + [f"<unused{i}>" for i in range(12, ANSWER_BASE)]
                + [f"a{x}" for x in range(10)] + ["<stop>", "<pad>"])

    return vocab


def _resolve_pairs(params):
    """``pairs``, when set, fixes the count (it must lie in ``[min_pairs, max_pairs]``)."""
    lo, hi, pairs = params["min_pairs"], params["max_pairs"], params["pairs"]
    if lo > hi:
        raise ValueError(f"haystack: min_pairs must be <= max_pairs; got {lo} > {hi}")
    if pairs is not None:
        if not lo <= pairs <= hi:
            raise ValueError(f"haystack: pairs must lie in [min_pairs, max_pairs] = [{lo}, {hi}]; got {pairs}")
        params["min_pairs"] = params["max_pairs"] = pairs
    return params


_HAYSTACK_PARAMS = (
    Param("pairs", int, None, "fixed number of key/value pairs in every row (sets min_pairs = max_pairs)",
          low=1, high=N_KEYS, nullable=True),
    Param("min_pairs", int, 1, "fewest key/value pairs in a row (the count is uniform per row)", low=1,
          high=N_KEYS),
    Param("max_pairs", int, N_KEYS, "most key/value pairs in a row", low=1, high=N_KEYS),
    Param("eos", bool, False, "append an end token (188) after the answer"),
)


def _arith_params(default_digits):
    return (
        *range_params("digits", default_digits, 1, MAX_DIGITS, "number of digits per operand",
                      "fewest digits per operand", "most digits per operand"),
        Param("fixed_width", bool, False,
              "earlier procgen layout: both operands share d digits, uniform in [0, 10^d) with leading zeros, "
              "and a fixed-width answer (d+1 or 2d digits, leading zeros kept); default: the official layout "
              "(each operand's digit count drawn separately, no leading zeros)"),
    )


_ARITH_NOTES = ("Default: the official harness's layout (operands without leading zeros, each with its own "
                "digit count; plain decimal answer). fixed_width=True: leading zeros, fixed-width answer. "
                "Answer digit x is 20+x, stop 30.")


def _arith_task(name, op, reverse, default_digits, summary, finding):
    per_digit, extra = (3, 4) if op == _ADD else (4, 3)  # longest row: both operands at max_digits
    return Task(
        name=name,
        summary=summary,
        params=_arith_params(default_digits),
        kernel=_arith_kernel(op, reverse),
        validator=_arith_validator(op, reverse),
        vocab=_arith_vocab("+" if op == _ADD else "*"),
        max_row_length=lambda params: per_digit * params["max_digits"] + extra,
        pad_id=lambda params: ARITH_PAD,
        resolve=lambda params: resolve_range(name, params, "digits"),
        reference_span=_arith_reference_span(op),
        notes=_ARITH_NOTES,
        finding=finding,
        differences=("ECA and diagnostics",),
    )


TASKS = [
    Task(
        name="haystack",
        summary="Needle in a haystack: distinct key/value pairs, then a query key; answer its value",
        params=_HAYSTACK_PARAMS,
        kernel=_haystack_kernel,
        validator=_haystack_validate,
        vocab=_haystack_vocab,
        max_row_length=lambda params: 2 * params["max_pairs"] + 2 + int(params["eos"]),
        pad_id=lambda params: HAYSTACK_PAD,
        resolve=_resolve_pairs,
        reference_span=_haystack_reference_span,
        notes="1..30 pairs per row (uniform); keys 128+k (k in 0..29), values 1..127, query 158+k, then the "
              "value. Official scoring: the value only.",
        finding="Diagnostic probe: recall the value of a queried key among up to 30 pairs. 11.3% from a "
                "random initialisation, 96.9% after a Dyck warm-up.",
        differences=("ECA and diagnostics",),
    ),
    _arith_task("addition", _ADD, False, 5,
                "Addition a + b of two d-digit numbers (no leading zeros), most significant digit first",
                "Diagnostic probe: 5-digit addition (59.1% without warm-up)."),
    _arith_task("reversed_addition", _ADD, True, 10,
                "Addition with both operands and the sum written least significant digit first",
                "Diagnostic probe: 10-digit addition written least significant digit first (76.4% without "
                "warm-up, 91.0% after an ECA warm-up)."),
    _arith_task("multiplication", _MUL, False, 5, "Multiplication a * b of two d-digit numbers (no leading zeros)",
                "Diagnostic probe: 5×5-digit multiplication (42.7% without warm-up, 63.5% after a UNION warm-up)."),
]
