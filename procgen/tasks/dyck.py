"""Dyck-k and shuffle-Dyck: bracket languages, LM-style (loss on every token).

Ids: opening bracket of type ``t`` is ``t`` (0..k-1), its closing bracket ``t + k``; ``2k`` is the
padding id (never stored). Printable names: ``( [ { <`` / ``) ] } >`` for k <= 4, else ``(7`` /
``)7``.

``dyck`` follows the reference process: empty stack -> open a uniform type; remaining tokens <=
stack size -> close the top; otherwise open with probability ``p_open``, else close the top. An
even length therefore always yields a balanced string (possibly several words concatenated), an
odd length a valid prefix with exactly one bracket left open. ``max_depth`` forces a close at that
depth.

``dyck_shuffle`` keeps one counter per type, so types may interleave (``( [ ) ]`` is valid):
depth 0 -> open; depth >= ``max_depth`` -> close; otherwise open with ``p_open``, else close a type
drawn uniformly among the distinct types currently open. Like the reference it truncates at the
row length (rows may end with brackets open); ``closed=True`` closes everything by the end. The
uniform draw ``idx`` picks the ``idx``-th smallest open type for ``k <= 64`` (format version 4:
the open types are one uint64, see :func:`_shuffle_fill_lanes`) and the ``idx``-th of the list of
open types for larger ``k`` (:func:`_shuffle_fill`); either way each open type is equally likely.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import int64, njit, uint64

from procgen._bits import popcount64, select_bit
from procgen._rng import _S32, below, hi32, lo32, next_u64, probability_threshold, row_offsets, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import MAX_LENGTH, SEMANTIC_WARMUP, length_params, longest_row, resolve_range, row_validator

_BRACKETS_OPEN = "([{<"
_BRACKETS_CLOSE = ")]}>"


# --- generators -------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _dyck_step(state, top_slot, remaining, threshold, k, max_depth, stack):
    """One token of the reference process. Returns ``(state, top_slot, token)``.

    Branch-free (selects instead of jumps), which matters because the open/close coin is
    unpredictable by design. ``stack[d]`` holds the open bracket at depth ``d``; ``stack[0]`` is a
    dummy so "the top" can be read unconditionally. ``top_slot`` is the current depth.
    """
    state, bits = next_u64(state)
    must_close = (remaining <= top_slot) | (top_slot >= max_depth)
    opening = (top_slot == 0) | ((hi32(bits) < threshold) & (not must_close))
    bracket = below(lo32(bits), k)
    closing_token = stack[top_slot] + k
    stack[top_slot + 1] = bracket
    token = bracket if opening else closing_token
    return state, top_slot + (1 if opening else -1), token


_LANES = 16  # rows generated side by side by _dyck_fill_lanes


@njit(cache=True, nogil=True)
def _dyck_fill(base, start, offsets, k, open_threshold, max_depth, out):
    """Write the Dyck rows of ``offsets`` (int64, from the length stream) into ``out`` (token dtype).

    Draws, per row: one ``next_u64`` per token (:func:`_dyck_step`: high 32 bits open-or-close
    against ``open_threshold``, low 32 bits the bracket type of an open). Used for the rows that
    :func:`_dyck_fill_lanes` leaves (its stack does not fit, or the last ``count % 16`` rows).
    """
    count = offsets.shape[0] - 1
    longest = longest_row(offsets)
    stack_a = np.zeros(longest + 2, np.int64)
    stack_b = np.zeros(longest + 2, np.int64)
    threshold = uint64(open_threshold)
    r = 0
    while r < count:
        first_a = offsets[r]
        length = offsets[r + 1] - first_a
        state_a, depth_a = row_state(base, start + r), 0
        if r + 1 < count and offsets[r + 2] - offsets[r + 1] == length:
            # two rows of equal length in lockstep: their dependency chains overlap (~1.3x faster)
            first_b = offsets[r + 1]
            state_b, depth_b = row_state(base, start + r + 1), 0
            for j in range(length):
                state_a, depth_a, out[first_a + j] = _dyck_step(state_a, depth_a, length - j, threshold, k,
                                                                max_depth, stack_a)
                state_b, depth_b, out[first_b + j] = _dyck_step(state_b, depth_b, length - j, threshold, k,
                                                                max_depth, stack_b)
            r += 2
        else:
            for j in range(length):
                state_a, depth_a, out[first_a + j] = _dyck_step(state_a, depth_a, length - j, threshold, k,
                                                                max_depth, stack_a)
            r += 1


@njit(cache=True, nogil=True)
def _dyck_fill_lanes(base, start, offsets, k, open_threshold, max_depth, type_bits, out):
    """The rows of :func:`_dyck_fill`, the same draws and tokens, 16 rows at a time; returns how many
    rows it wrote (a multiple of 16: the caller writes the rest with :func:`_dyck_fill`).

    Each of the 16 lanes keeps its row's stack in one uint64 (``type_bits`` bits per open bracket,
    the innermost in the low bits), so a token is a few register operations with no branch and no
    memory access, and the lane loop has no dependency between iterations: the compiler runs the
    lanes in SIMD registers. The caller uses it only when the deepest reachable stack fits in 64 bits
    (``type_bits * min(max_depth, (max_length + 1) // 2) <= 64``). Tokens go to a lane-major scratch
    buffer first (contiguous stores), then to their rows; a lane whose row is shorter than the
    group's longest keeps running on garbage that is never copied.
    """
    count = offsets.shape[0] - 1
    groups = count // _LANES
    mask = (uint64(1) << uint64(type_bits)) - uint64(1)
    shift, threshold, kk = uint64(type_bits), uint64(open_threshold), uint64(k)
    state = np.empty(_LANES, np.uint64)
    stack = np.empty(_LANES, np.uint64)
    depth = np.empty(_LANES, np.int64)
    length = np.empty(_LANES, np.int64)
    scratch = np.empty(longest_row(offsets) * _LANES, out.dtype)
    for g in range(groups):
        r = g * _LANES
        longest = 0
        for lane in range(_LANES):
            state[lane] = row_state(base, start + r + lane)
            stack[lane] = 0
            depth[lane] = 0
            length[lane] = offsets[r + lane + 1] - offsets[r + lane]
            longest = max(longest, length[lane])
        for j in range(longest):
            for lane in range(_LANES):
                state[lane], bits = next_u64(state[lane])
                d = depth[lane]
                must_close = (length[lane] - j <= d) | (d >= max_depth)
                opening = (d == 0) | ((hi32(bits) < threshold) & (~must_close))
                bracket = (lo32(bits) * kk) >> _S32  # below(lo32(bits), k)
                held = stack[lane]
                ones = uint64(0) - uint64(opening)  # all ones when opening: selects without a branch
                stack[lane] = (((held << shift) | bracket) & ones) | ((held >> shift) & ~ones)
                scratch[j * _LANES + lane] = (bracket & ones) | (((held & mask) + kk) & ~ones)
                depth[lane] = d + 2 * int64(opening) - 1
        for lane in range(_LANES):
            first = offsets[r + lane]
            for j in range(length[lane]):
                out[first + j] = scratch[j * _LANES + lane]
    return groups * _LANES


@njit(cache=True, nogil=True)
def _shuffle_fill(base, start, offsets, k, open_threshold, max_depth, closed, out):
    """Write the shuffle-Dyck rows of ``offsets`` (int64, from the length stream) into ``out``.

    Draws, per row: one ``next_u64`` per token; its high 32 bits decide open-or-close (when both
    are allowed), its low 32 bits the bracket type of an open or the open type that a close closes
    (uniform among the distinct open types: the ``idx``-th of a list kept by swap-remove). Used for
    ``k > 64``; :func:`_shuffle_fill_lanes` writes smaller ``k``.
    """
    count = offsets.shape[0] - 1
    open_count = np.zeros(k, np.int64)   # open brackets per type
    open_types = np.empty(k, np.int64)   # distinct types with open_count > 0 ...
    slot = np.empty(k, np.int64)         # ... and where each sits in open_types
    threshold = uint64(open_threshold)
    for r in range(count):
        state = row_state(base, start + r)
        first = offsets[r]
        length = offsets[r + 1] - first
        open_count[:] = 0
        n_types = 0
        depth = 0
        for j in range(length):
            state, bits = next_u64(state)
            if depth == 0:
                opening = True
            elif depth >= max_depth or (closed and length - j <= depth):
                opening = False
            else:
                opening = hi32(bits) < threshold
            if opening:
                bracket = below(lo32(bits), k)
                if open_count[bracket] == 0:
                    open_types[n_types] = bracket
                    slot[bracket] = n_types
                    n_types += 1
                open_count[bracket] += 1
                depth += 1
                out[first + j] = bracket
            else:
                bracket = open_types[below(lo32(bits), n_types)]
                open_count[bracket] -= 1
                if open_count[bracket] == 0:  # swap-remove from the list of open types
                    n_types -= 1
                    moved = open_types[n_types]
                    open_types[slot[bracket]] = moved
                    slot[moved] = slot[bracket]
                depth -= 1
                out[first + j] = bracket + k


_SHUFFLE_LANES = 4  # rows generated side by side by _shuffle_fill_lanes
_MASK_TYPES = 64  # the most bracket types _shuffle_fill_lanes handles (its open-type set is one uint64)


@njit(cache=True, nogil=True)
def _shuffle_fill_lanes(base, start, offsets, k, open_threshold, max_depth, closed, out):
    """Shuffle-Dyck rows for ``k <= 64``: the draws of :func:`_shuffle_fill`, but a close takes the
    ``idx``-th *smallest* open type (not the ``idx``-th of the open-type list), 4 rows at a time.

    Each lane keeps its set of open types as one uint64 (bit ``t``: type ``t`` is open) next to
    its counts, so a close is a :func:`~procgen._bits.select_bit` and every step is branch-free
    except the open/close coin; the lanes' independent chains overlap. Rows past ``count`` run as
    empty lanes whose tokens are never copied. Writes every row.
    """
    count = offsets.shape[0] - 1
    threshold, kk = uint64(open_threshold), uint64(k)
    state = np.empty(_SHUFFLE_LANES, np.uint64)
    open_set = np.empty(_SHUFFLE_LANES, np.uint64)
    depth = np.empty(_SHUFFLE_LANES, np.int64)
    length = np.empty(_SHUFFLE_LANES, np.int64)
    open_count = np.empty(_SHUFFLE_LANES * _MASK_TYPES, np.int64)
    scratch = np.empty(longest_row(offsets) * _SHUFFLE_LANES, out.dtype)
    for r in range(0, count, _SHUFFLE_LANES):
        longest = 0
        for lane in range(_SHUFFLE_LANES):
            state[lane] = row_state(base, start + r + lane)
            open_set[lane] = 0
            depth[lane] = 0
            length[lane] = offsets[r + lane + 1] - offsets[r + lane] if r + lane < count else 0
            longest = max(longest, length[lane])
        open_count[:] = 0
        for j in range(longest):
            for lane in range(_SHUFFLE_LANES):
                state[lane], bits = next_u64(state[lane])
                d = depth[lane]
                must_close = (d >= max_depth) | (closed & (length[lane] - j <= d))
                opening = (d == 0) | ((hi32(bits) < threshold) & (~must_close))
                held = open_set[lane]
                n_types = popcount64(held)
                # (an empty set only occurs at depth 0, where the lane opens: | (held == 0) keeps the
                # select defined there)
                bracket = select_bit(held | uint64(held == 0), (lo32(bits) * n_types) >> _S32)
                if opening:  # compiled to a select
                    bracket = (lo32(bits) * kk) >> _S32
                slot = lane * _MASK_TYPES + int64(bracket)
                left_open = open_count[slot] + 2 * int64(opening) - 1
                open_count[slot] = left_open
                bit = uint64(1) << bracket
                open_set[lane] = (held & ~bit) | (bit & (uint64(0) - uint64(left_open > 0)))
                scratch[j * _SHUFFLE_LANES + lane] = bracket + (kk & (uint64(0) - uint64(not opening)))
                depth[lane] = d + 2 * int64(opening) - 1
        for lane in range(min(_SHUFFLE_LANES, count - r)):
            first = offsets[r + lane]
            for j in range(length[lane]):
                out[first + j] = scratch[j * _SHUFFLE_LANES + lane]


def _max_depth(params) -> int:
    """``max_depth``, with None (unlimited) as one more than the longest row."""
    return params["max_depth"] if params["max_depth"] is not None else params["max_length"] + 1


def _dyck_kernel(base, start, count, params, dtype):
    offsets = row_offsets(np.uint64(base), start, count, params["min_length"], params["max_length"], 1)
    tokens = np.empty(offsets[-1], dtype)
    k, threshold, max_depth = params["k"], probability_threshold(params["p_open"]), _max_depth(params)
    type_bits = max(1, (k - 1).bit_length())
    done = 0
    if type_bits * min(max_depth, (params["max_length"] + 1) // 2) <= 64:  # every stack fits one uint64
        done = _dyck_fill_lanes(np.uint64(base), start, offsets, k, threshold, max_depth, type_bits, tokens)
    if done < count:
        _dyck_fill(np.uint64(base), start + done, offsets[done:] - offsets[done], k, threshold, max_depth,
                   tokens[offsets[done]:])
    return tokens, offsets, np.zeros(count, np.int32)


def _shuffle_kernel(base, start, count, params, dtype):
    step = 2 if params["closed"] else 1
    offsets = row_offsets(np.uint64(base), start, count, params["min_length"], params["max_length"], step)
    tokens = np.empty(offsets[-1], dtype)
    fill = _shuffle_fill_lanes if params["k"] <= _MASK_TYPES else _shuffle_fill
    fill(np.uint64(base), start, offsets, params["k"], probability_threshold(params["p_open"]), _max_depth(params),
         params["closed"], tokens)
    return tokens, offsets, np.zeros(count, np.int32)


# --- validators (independent of the generators: depth counters, no simulation of the process) --

_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_ID, _UNOPENED, _MISMATCH, _TOO_DEEP, _UNBALANCED = range(8)
_REASONS = {
    _BAD_ANSWER_START: "answer_start must be 0 for an LM-style task",
    _BAD_LENGTH: "row length outside [min_length, max_length]",
    _BAD_ID: "token id outside 0 .. 2k-1",
    _UNOPENED: "closing bracket with no open bracket of its type",
    _MISMATCH: "closing bracket does not match the innermost open bracket",
    _TOO_DEEP: "nesting depth exceeds max_depth",
    _UNBALANCED: "row does not end balanced (or, for odd length, with exactly one bracket open)",
}


@njit(cache=True, inline="always")
def _row_frame(offsets, answer_start, r, min_length, max_length):
    """``(first token, length, code)`` of row ``r``: ``_OK``, or why its frame is wrong (LM-style
    rows start their answer at 0; lengths lie in ``[min_length, max_length]``)."""
    first = offsets[r]
    length = offsets[r + 1] - first
    if answer_start[r] != 0:
        return first, length, _BAD_ANSWER_START
    if length < min_length or length > max_length:
        return first, length, _BAD_LENGTH
    return first, length, _OK


@njit(cache=True, nogil=True)
def _dyck_check(tokens, offsets, answer_start, k, max_depth, min_length, max_length):
    """A depth counter and the type open at each depth: every close matches the innermost open, the
    depth stays within ``max_depth`` and ends at ``length % 2``. Returns ``(row or -1, code)``."""
    count = offsets.shape[0] - 1
    level_type = np.empty(max_length + 1, np.int64)  # type of the open bracket at each depth
    for r in range(count):
        first, length, code = _row_frame(offsets, answer_start, r, min_length, max_length)
        if code != _OK:
            return r, code
        depth = 0
        for j in range(length):
            token = np.int64(tokens[first + j])
            if token < 0 or token >= 2 * k:
                return r, _BAD_ID
            if token < k:
                level_type[depth] = token
                depth += 1
                if depth > max_depth:
                    return r, _TOO_DEEP
            else:
                if depth == 0:
                    return r, _UNOPENED
                depth -= 1
                if level_type[depth] != token - k:
                    return r, _MISMATCH
        if depth != length % 2:
            return r, _UNBALANCED
    return -1, _OK


@njit(cache=True, nogil=True)
def _shuffle_check(tokens, offsets, answer_start, k, max_depth, closed, min_length, max_length):
    """One counter per type: every close has an open of its type, the total depth stays within
    ``max_depth`` (and ends at 0 if ``closed``). Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    open_count = np.zeros(k, np.int64)
    for r in range(count):
        first, length, code = _row_frame(offsets, answer_start, r, min_length, max_length)
        if code != _OK:
            return r, code
        open_count[:] = 0
        depth = 0
        for j in range(length):
            token = np.int64(tokens[first + j])
            if token < 0 or token >= 2 * k:
                return r, _BAD_ID
            if token < k:
                open_count[token] += 1
                depth += 1
                if depth > max_depth:
                    return r, _TOO_DEEP
            else:
                if open_count[token - k] == 0:
                    return r, _UNOPENED
                open_count[token - k] -= 1
                depth -= 1
        if closed and depth != 0:
            return r, _UNBALANCED
    return -1, _OK


_dyck_validate = row_validator(_dyck_check, _REASONS, lambda params: (
    params["k"], _max_depth(params), params["min_length"], params["max_length"]))
_shuffle_validate = row_validator(_shuffle_check, _REASONS, lambda params: (
    params["k"], _max_depth(params), params["closed"], params["min_length"], params["max_length"]))


# --- vocabulary and parameters ------------------------------------------------------------------

def _vocab(params) -> list[str]:
    k = params["k"]
    if k <= len(_BRACKETS_OPEN):
        opens, closes = list(_BRACKETS_OPEN[:k]), list(_BRACKETS_CLOSE[:k])
    else:
        opens, closes = [f"({t}" for t in range(k)], [f"){t}" for t in range(k)]
    return opens + closes + ["<pad>"]


def _resolve_shuffle(params):
    params = resolve_range("dyck_shuffle", params)
    if params["closed"]:
        lo, hi = params["min_length"], params["max_length"]
        if lo % 2:  # closed rows need even lengths: draw among the even lengths of the range
            lo += 1
        if lo > hi:
            raise ValueError(f"dyck_shuffle: closed=True needs an even length; got length range "
                             f"[{params['min_length']}, {params['max_length']}] with no even value")
        params["min_length"], params["max_length"] = lo, hi - (hi - lo) % 2
    return params


def _mean_length(params):
    """Rows are exactly their drawn length, uniform over the (even, for closed rows) range."""
    return Fraction(params["min_length"] + params["max_length"], 2)


_K = Param("k", int, 4, "number of bracket types (ids: opens 0..k-1, closes k..2k-1)", low=1, high=2 ** 20)
_P_OPEN = Param("p_open", float, 0.5, "probability of opening when both moves are allowed", low=0.0, high=1.0,
                low_open=True, high_open=True)

def _task(name, summary, finding, kernel, validator, resolve, more):
    return Task(
        name=name,
        summary=summary,
        params=(_K, *length_params(64), _P_OPEN, *more),
        kernel=kernel,
        validator=validator,
        vocab=_vocab,
        max_row_length=lambda params: params["max_length"],
        expected_row_length=_mean_length,
        pad_id=lambda params: 2 * params["k"],
        size=lambda params: 2 * params["k"] + 1,  # opens, closes, pad: no name list for a large k
        resolve=resolve,
        lm_style=True,
        finding=finding,
        differences=("Dyck and shuffle-Dyck",),
    )


TASKS = [
    _task("dyck", "Dyck-k: well-nested brackets of k types (reference process; even length => balanced)",
          "Warming a tiny transformer up on Dyck lifts needle-in-a-haystack recall from 11.3% (random "
          "initialisation) to 96.9%; with the Dyck tokens shuffled (same tokens, no structure) it stays at "
          f"10.3%. Dyck is also {SEMANTIC_WARMUP}.",
          _dyck_kernel, _dyck_validate, lambda params: resolve_range("dyck", params),
          (Param("max_depth", int, None, "maximum nesting depth (None: unlimited)", low=1, high=MAX_LENGTH,
                 nullable=True),)),
    _task("dyck_shuffle", "Shuffle-Dyck-k: one counter per bracket type, types may interleave",
          f"Shuffle-Dyck (types may interleave, one counter per type) is {SEMANTIC_WARMUP}; it is the "
          "long-range variant of [dyck](dyck.md).",
          _shuffle_kernel, _shuffle_validate, _resolve_shuffle,
          (Param("max_depth", int, 16, "maximum total number of open brackets (None: unlimited)", low=1,
                 high=MAX_LENGTH, nullable=True),
           Param("closed", bool, False, "end every row with all brackets closed (needs even lengths)"))),
]
