"""Sequence tasks: identity, reverse, sort, set, union, delete (input -> output, loss on the answer).

Ids follow the reference code: content tokens ``1 .. V-1`` (``V = vocab_size``), ``SEP = V``,
``PAD = V+1`` (never stored; a collation concern), model vocabulary ``V+2``. With ``eos=True`` an
end token ``EOS = V+2`` follows every answer (vocabulary ``V+3``) so the end of the answer is
learnable. Id 0 is unused. ``x`` is ``L`` tokens drawn uniformly from ``1 .. V-1``.

========  ==============================================================  ============
task      row                                                             answer_start
========  ==============================================================  ============
identity  x, SEP, x                                                       L+1
reverse   x, SEP, reversed(x)                                             L+1
sort      x, SEP, sorted(x) ascending, duplicates kept                    L+1
set       x, SEP, distinct(x) in first-appearance order                   L+1
union     a, SEP, b, SEP, distinct(a + b) in first-appearance order       L+2
delete    x, SEP, r, SEP, x without the first occurrence of r             L+3
========  ==============================================================  ============

``union`` splits the row's ``L`` input tokens into ``a`` (the first ``ceil(L/2)``) and ``b`` (the
remaining ``floor(L/2)``), so an odd ``L`` gives ``a`` one token more than ``b``; ``L >= 2``.
``delete`` draws ``r`` uniformly from ``1 .. V-1`` after ``x`` (so ``r`` is often absent and the
answer is ``x`` unchanged); ``r_present=True`` instead takes ``r`` from a uniformly chosen
position of ``x``, so every row deletes one token.

With ``min_length``/``max_length`` each row draws its own ``L`` (uniform over the range) from a
stream of its own, so row ``i`` still depends only on the seed key and ``i``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit, uint64

from procgen._rng import _GOLDEN, below, hi32, lo32, mix64, next_u64, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import (FRAME_CODES, FRAME_REASONS, MAX_VOCAB, SEMANTIC_WARMUP, end_row, frame_code,
                                   length_params, lengths_kernel, lengths_validator, longest_row, resolve_range,
                                   write_part)

_IDENTITY, _REVERSE, _SORT = 0, 1, 2  # modes of _copy_fill / _check_copy


# --- generators -------------------------------------------------------------------------------
# Every fill kernel writes rows back to back into ``out`` (sized for the longest possible rows, in
# the token dtype), records ``offsets`` (int64, count + 1) / ``answer_start`` (int32, count) and
# returns the number of tokens written (procgen.tasks._common.lengths_kernel runs it). ``lengths``
# (int64, count + 1) are the cumulative input lengths from ``row_offsets``: row r has L =
# lengths[r+1] - lengths[r]. ``vocab`` is V (SEP = V, EOS = V+2). A row's input is drawn into a
# small buffer ``x`` first and copied from there (``write_part``): ``x`` is allocated inside the
# kernel, so LLVM knows it does not alias ``out`` and vectorises the copy loops.

@njit(cache=True, inline="always")
def _draw_tokens(state, count, m, x, at):
    """Set ``x[at:at+count]`` to tokens uniform in ``1 .. m``; return the advanced stream state.

    With ``h = count // 2``, the stream's draw ``k`` (``k < h``) gives token ``k`` from its high
    and token ``h + k`` from its low 32 bits; an odd last token takes the high bits of draw ``h``.
    Draw ``k`` is computed as ``mix64(state + (k+1) * golden)`` -- exactly what ``next_u64``
    yields step by step -- so the loop has no dependency between iterations, and both stores are
    contiguous: LLVM vectorises it (about 3x faster than calling ``next_u64`` per pair).
    """
    half = count // 2
    for k in range(half):
        bits = mix64(state + uint64(k + 1) * _GOLDEN)
        x[at + k] = below(hi32(bits), m) + 1
        x[at + half + k] = below(lo32(bits), m) + 1
    if count & 1:
        bits = mix64(state + uint64(half + 1) * _GOLDEN)
        x[at + count - 1] = below(hi32(bits), m) + 1
    return state + uint64((count + 1) // 2) * _GOLDEN


@njit(cache=True, nogil=True)
def _copy_fill(base, start, lengths, vocab, mode, eos, out, offsets, answer_start):
    """identity / reverse / sort (``mode``): rows ``x, SEP, f(x) [, EOS]``.

    Draws, per row: the ``L`` tokens of ``x`` (:func:`_draw_tokens`), nothing else.
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    counts = np.zeros(vocab, np.int64)  # counting-sort buckets, left zeroed after every row
    slots = np.empty(vocab, np.int64)   # next output position of each bucket
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        _draw_tokens(row_state(base, start + r), length, m, x, 0)
        q = write_part(out, p, x, 0, length, vocab)
        if mode == _IDENTITY:
            for j in range(length):
                out[q + j] = x[j]
        elif mode == _REVERSE:
            for j in range(length):
                out[q + j] = x[length - 1 - j]
        elif m <= 4 * length:  # sort, small vocabulary: counting sort over the V-1 buckets
            for j in range(length):
                counts[x[j]] += 1
            slot = q
            for v in range(1, vocab):  # slots[v]: where v's run starts; buckets re-zeroed
                slots[v] = slot
                slot += counts[v]
                counts[v] = 0
            for j in range(length):  # scatter: never reads back what this row stored in out
                t = x[j]
                out[slots[t]] = t
                slots[t] += 1
        else:  # sort, large vocabulary: comparison sort of the row
            x[:length].sort()
            for j in range(length):
                out[q + j] = x[j]
        q += length
        p = end_row(out, q, eos, vocab + 2, r, length + 1, offsets, answer_start)
    return p


@njit(cache=True, nogil=True)
def _distinct_fill(base, start, lengths, vocab, union, eos, out, offsets, answer_start):
    """set: ``x, SEP, distinct(x)``; union: ``a, SEP, b, SEP, distinct(a + b)`` (first-appearance order).

    Draws, per row: set, the ``L`` tokens of ``x``; union, the ``ceil(L/2)`` tokens of ``a``, then
    the ``floor(L/2)`` tokens of ``b`` (each with :func:`_draw_tokens`).
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    seen = np.zeros(vocab, np.int64)  # seen[t] == r + 1 <=> t already emitted in row r (no clearing)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        state = row_state(base, start + r)
        if union:  # a = x[:len_a], b = x[len_a:]; b starts at a fresh 64-bit draw
            len_a = (length + 1) // 2
            state = _draw_tokens(state, len_a, m, x, 0)
            _draw_tokens(state, length - len_a, m, x, len_a)
            q = write_part(out, p, x, 0, len_a, vocab)
            q = write_part(out, q, x, len_a, length, vocab)
        else:
            _draw_tokens(state, length, m, x, 0)
            q = write_part(out, p, x, 0, length, vocab)
        answer = q - p
        stamp = r + 1
        for j in range(length):
            t = x[j]
            out[q] = t  # always written; kept (q advances) only at t's first appearance
            q += seen[t] != stamp
            seen[t] = stamp
        p = end_row(out, q, eos, vocab + 2, r, answer, offsets, answer_start)
    return p


@njit(cache=True, nogil=True)
def _delete_fill(base, start, lengths, vocab, r_present, eos, out, offsets, answer_start):
    """delete: ``x, SEP, r, SEP, x`` without the first occurrence of ``r``.

    Draws, per row: the ``L`` tokens of ``x`` (:func:`_draw_tokens`), then one ``next_u64`` whose
    high 32 bits pick ``r`` (a position of ``x`` if ``r_present``, else a token in ``1 .. V-1``).
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        state = _draw_tokens(row_state(base, start + r), length, m, x, 0)
        state, bits = next_u64(state)  # r is drawn after x
        if r_present:
            target = x[below(hi32(bits), length)]
        else:
            target = below(hi32(bits), m) + 1
        q = write_part(out, p, x, 0, length, vocab)
        out[q] = target
        out[q + 1] = vocab
        q += 2
        hit = 0  # index of the first occurrence of r, or length when r is absent
        while hit < length and x[hit] != target:
            hit += 1
        for j in range(hit):
            out[q + j] = x[j]
        for j in range(hit + 1, length):
            out[q + j - 1] = x[j]
        q += length - 1 if hit < length else length
        p = end_row(out, q, eos, vocab + 2, r, length + 3, offsets, answer_start)
    return p


# --- validators (independent of the generators: they check properties, never regenerate) -------

_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_ID, _BAD_SEP, _BAD_EOS = FRAME_CODES
(_WRONG_COPY, _NOT_SORTED, _NOT_PERMUTATION, _NOT_IN_INPUT, _BAD_ORDER, _MISSING, _BAD_DELETE,
 _R_ABSENT) = range(len(FRAME_CODES), 14)
_REASONS = {
    **FRAME_REASONS,
    _WRONG_COPY: "answer is not the input (identity) / the reversed input (reverse)",
    _NOT_SORTED: "answer is not in ascending order",
    _NOT_PERMUTATION: "answer is not a rearrangement of the input (token counts differ)",
    _NOT_IN_INPUT: "answer holds a token that is not in the input",
    _BAD_ORDER: "answer repeats a token or breaks first-appearance order",
    _MISSING: "answer misses a distinct input token",
    _BAD_DELETE: "answer is not the input without the first occurrence of r",
    _R_ABSENT: "r does not occur in x although r_present=True",
}


@njit(cache=True, nogil=True)
def _check_copy(tokens, offsets, answer_start, vocab, mode, eos, min_length, max_length):
    """identity / reverse: the answer equals x / reversed x; sort: it is ascending and has x's token
    counts (a +1/-1 balance per token, not a sort). Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    balance = np.zeros(vocab, np.int64)  # sort: +1 per input token, -1 per answer token
    for r in range(count):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 1
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n != 2 * length + 1 + eos:
            return r, _BAD_LENGTH
        code = frame_code(tokens, first, n, n - eos, length, -1, -1, vocab, eos)
        if code != _OK:
            return r, code
        x = first
        y = first + length + 1
        if mode == _IDENTITY:
            for j in range(length):
                if tokens[y + j] != tokens[x + j]:
                    return r, _WRONG_COPY
        elif mode == _REVERSE:
            for j in range(length):
                if tokens[y + j] != tokens[x + length - 1 - j]:
                    return r, _WRONG_COPY
        else:
            for j in range(1, length):
                if tokens[y + j] < tokens[y + j - 1]:
                    return r, _NOT_SORTED
            for j in range(length):
                balance[tokens[x + j]] += 1
                balance[tokens[y + j]] -= 1
            for j in range(length):  # every token's count must balance; this also re-zeroes them
                if balance[tokens[x + j]] != 0 or balance[tokens[y + j]] != 0:
                    return r, _NOT_PERMUTATION
    return -1, _OK


@njit(cache=True, nogil=True)
def _check_distinct(tokens, offsets, answer_start, vocab, union, eos, min_length, max_length):
    """set / union: the answer must list each input token once, ordered by its first position
    (tables of each token's owner row and first input position). Returns ``(row or -1, code)``."""
    count = offsets.shape[0] - 1
    owner = np.zeros(vocab, np.int64)       # owner[t] == r + 1 <=> t occurs in row r's input
    first_pos = np.zeros(vocab, np.int64)   # position of t's first occurrence in the input
    for r in range(count):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - (2 if union else 1)
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n < answer_start[r] + 1 + eos:
            return r, _BAD_LENGTH
        if union:
            code = frame_code(tokens, first, n, n - eos, (length + 1) // 2, length + 1, -1, vocab, eos)
        else:
            code = frame_code(tokens, first, n, n - eos, length, -1, -1, vocab, eos)
        if code != _OK:
            return r, code
        distinct = 0
        for j in range(answer_start[r] - 1):
            t = np.int64(tokens[first + j])
            if t != vocab and owner[t] != r + 1:
                owner[t] = r + 1
                first_pos[t] = j
                distinct += 1
        previous = -1
        answer_end = n - eos
        for j in range(answer_start[r], answer_end):
            t = np.int64(tokens[first + j])
            if owner[t] != r + 1:
                return r, _NOT_IN_INPUT
            if first_pos[t] <= previous:
                return r, _BAD_ORDER
            previous = first_pos[t]
        if answer_end - answer_start[r] != distinct:
            return r, _MISSING
    return -1, _OK


@njit(cache=True, nogil=True)
def _check_delete(tokens, offsets, answer_start, vocab, r_present, eos, min_length, max_length):
    """delete: the answer is x with the first occurrence of r (if any) skipped, compared position by
    position. Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    for r in range(count):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 3
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n < answer_start[r] + eos:
            return r, _BAD_LENGTH
        code = frame_code(tokens, first, n, n - eos, length, length + 2, -1, vocab, eos)
        if code != _OK:
            return r, code
        target = tokens[first + length + 1]
        hit = -1  # index of the first occurrence of r in x
        for j in range(length):
            if tokens[first + j] == target:
                hit = j
                break
        if hit < 0 and r_present:
            return r, _R_ABSENT
        kept = length - (1 if hit >= 0 else 0)
        if n - eos - answer_start[r] != kept:
            return r, _BAD_LENGTH
        y = first + answer_start[r]
        for j in range(kept):  # answer[j] is x[j] before the deleted position, x[j+1] from it on
            if tokens[y + j] != tokens[first + j + (1 if 0 <= hit <= j else 0)]:
                return r, _BAD_DELETE
    return -1, _OK


# --- vocabulary and parameters ------------------------------------------------------------------

def _vocab(params) -> list[str]:
    """Printable names: ``<unused>`` (id 0), ``1 .. V-1``, ``<sep>``, ``<pad>`` (+ ``<eos>``)."""
    vocab = params["vocab_size"]
    names = ["<unused>", *map(str, range(1, vocab)), "<sep>", "<pad>"]
    return names + ["<eos>"] if params["eos"] else names


def _vocab_size(params) -> int:
    return params["vocab_size"] + 2 + int(params["eos"])


_VOCAB = Param("vocab_size", int, 100, "V: content tokens are 1..V-1, SEP = V, PAD = V+1", low=2, high=MAX_VOCAB)
_EOS = Param("eos", bool, False, "append an end token (id V+2) after the answer")
_R_PRESENT = Param("r_present", bool, False, "draw r from a uniformly chosen position of x (every row deletes)")

def _mean_absent(params) -> float:
    """Mean over the row length range of P(a given content token is absent from L uniform draws).

    With ``q = 1 - 1/(V-1)``: ``(q**lo + ... + q**hi) / (hi - lo + 1)``, a geometric sum.
    """
    lo, hi, content = params["min_length"], params["max_length"], params["vocab_size"] - 1
    q = 1 - 1 / content
    count = hi - lo + 1
    return 0.0 if q == 0 else q ** lo * (1 - q ** count) * content / count


def _mean_length(name):
    """``expected_row_length`` of a sequence task: the row layout averaged over L (uniform range).

    Distinct counts use E[distinct of L uniform draws from V-1 tokens] = (V-1) * (1 - q**L), and
    delete's answer is one token shorter exactly when r occurs in x (probability 1 - q**L).
    """
    def mean(params):
        length = Fraction(params["min_length"] + params["max_length"], 2)
        eos = int(params["eos"])
        if name in ("identity", "reverse", "sort"):
            return 2 * length + 1 + eos
        if name == "delete":
            return 2 * length + 2 + eos + (0 if params["r_present"] else _mean_absent(params))
        distinct = (params["vocab_size"] - 1) * (1 - _mean_absent(params))
        return float(length) + (1 if name == "set" else 2) + eos + distinct
    return mean


def _task(name, summary, finding, fill, check, options, extra, length_low=1, more=()):
    """The Task of ``fill`` / ``check``, which both take ``options(params)``; a row is at most twice
    its input tokens plus ``extra`` separators (and EOS)."""
    return Task(
        name=name,
        summary=summary,
        params=(*length_params(64, low=length_low, what="input tokens"), _VOCAB, _EOS, *more),
        kernel=lengths_kernel(fill, lambda total, rows, eos: 2 * total + rows * (extra + eos), options),
        validator=lengths_validator(check, _REASONS, options),
        vocab=_vocab,
        size=_vocab_size,
        max_row_length=lambda params: 2 * params["max_length"] + extra + int(params["eos"]),
        expected_row_length=_mean_length(name),
        pad_id=lambda params: params["vocab_size"] + 1,
        resolve=lambda params: resolve_range(name, params),
        finding=finding,
        differences=("Sequence tasks and STACK",),
    )


TASKS = [
    _task("identity", "x, SEP, x", f"Copying: {SEMANTIC_WARMUP}.",
          _copy_fill, _check_copy, lambda params: (_IDENTITY,), 1),
    _task("reverse", "x, SEP, reversed(x)", f"Reversal: {SEMANTIC_WARMUP}.",
          _copy_fill, _check_copy, lambda params: (_REVERSE,), 1),
    _task("sort", "x, SEP, sorted(x) (ascending, duplicates kept)",
          f"Sorting is {SEMANTIC_WARMUP}, and doubles as the sorting diagnostic (82.7% without warm-up).",
          _copy_fill, _check_copy, lambda params: (_SORT,), 1),
    _task("set", "x, SEP, distinct tokens of x in first-appearance order",
          f"SET is {SEMANTIC_WARMUP}. Its attention layers carry the useful structure: transferring only "
          "SET attention lifts haystack recall to 88.9% (the full model: 18.9%), and SET attention "
          "assembled with ECA MLPs raises the mean over four diagnostics from 57.4% to 89.3%.",
          _distinct_fill, _check_distinct, lambda params: (False,), 1),
    _task("union", "a, SEP, b, SEP, distinct tokens of a+b in first-appearance order (a gets ceil(L/2))",
          f"UNION is {SEMANTIC_WARMUP}. A UNION warm-up lifts 5×5-digit multiplication from 42.7% to "
          "63.5% (tokens-shuffled control: 48.4%).",
          _distinct_fill, _check_distinct, lambda params: (True,), 2, length_low=2),
    _task("delete", "x, SEP, r, SEP, x without the first occurrence of r", f"Deletion: {SEMANTIC_WARMUP}.",
          _delete_fill, _check_delete, lambda params: (params["r_present"],), 3, more=(_R_PRESENT,)),
]
