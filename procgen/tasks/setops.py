"""Simple set and lookup tasks of Wu, Li & Liang (2022): intersect, difference, count, search, duplicate, replace.

Ids follow the sequence tasks (:mod:`procgen.tasks.sequence`): content tokens ``1 .. V-1``
(``V = vocab_size``), ``SEP = V``, ``PAD = V+1`` (never stored), and with ``eos=True`` an end token
``EOS = V+2`` after every answer. Id 0 is unused. Every input token is uniform in ``1 .. V-1``.

==========  ==================================================================  ============
task        row                                                                 answer_start
==========  ==================================================================  ============
intersect   x, SEP, y, SEP, distinct tokens of x that occur in y                L+2
difference  x, SEP, y, SEP, distinct tokens of x that do not occur in y         L+2
count       x, SEP, t, SEP, ``#c`` (c = occurrences of t in x)                  L+3
search      x, SEP, t, SEP, ``@i`` (i = index of the first t in x) or NOT_FOUND L+3
duplicate   x, SEP, x1 x1 x2 x2 ... (each token of x twice)                     L+1
replace     x, SEP, a, SEP, b, SEP, x with every a replaced by b                L+5
==========  ==================================================================  ============

``intersect`` and ``difference`` split the row's ``L`` input tokens like ``union``: ``x`` is the
first ``ceil(L/2)``, ``y`` the remaining ``floor(L/2)`` (``L >= 2``). The answer lists each
qualifying token once, in order of its first appearance in ``x``; it may be empty (then the row
ends at the second SEP, or at EOS).

``count`` and ``search`` answer with one numbered token. Their ids sit above EOS and never move
with ``eos``: id ``V+2`` is EOS (emitted only with ``eos=True``, reserved otherwise), ``#c`` is
``V+3+c`` for ``c = 0 .. max_length``, NOT_FOUND is ``V+3`` and ``@i`` is ``V+4+i`` for the
0-based index ``i = 0 .. max_length-1`` (so the search answer is ``V+4+index`` with index -1 for
"absent", the reference's ``get_index`` convention). Both vocabularies have ``V+4+max_length``
ids, which is why these two tasks bound ``max_length`` by 2**20. The query ``t`` is drawn after
``x``: with probability ``p_present`` from a uniformly chosen position of ``x`` (so frequent
tokens are asked more often), otherwise uniformly from ``1 .. V-1`` (it may then still occur).

``replace`` draws ``a`` uniformly among the *distinct* tokens of ``x`` (so ``a`` always occurs)
and ``b`` uniformly from ``1 .. V-1``; ``b`` may equal ``a``, and then the answer is ``x``.

With ``min_length``/``max_length`` each row draws its own ``L`` (uniform over the range) from a
stream of its own, so row ``i`` still depends only on the seed key and ``i``.

Differences from the reference code
-----------------------------------

The paper's generator (``simpler_tasks_data_gen/tasks_with_tokens.py`` in
``felixzli/synthetic_pretraining``) writes T5 token ids with a task-name prefix; procgen keeps the
layouts above instead. Decisions, task by task:

* **duplicate** is the paper's definition exactly ("Duplicate each char": ``abc -> aabbcc``).
* **intersect / difference** (the paper's ``intersect`` and ``set_1_minus_2``) output
  ``list(set(x) & set(y))`` / ``list(set(x) - set(y))``, in CPython's set iteration order;
  procgen uses first-appearance order in ``x``, which is reproducible. The reference splits the
  input at a uniform point and draws both sides from a per-row sample of ``L/2`` ids (so they
  overlap heavily), and writes a placeholder token for an empty answer; procgen uses the
  ``union`` split, uniform ids, and an empty answer.
* **count**: the reference plants a uniform number ``0 .. n`` of copies of ``t`` among uniform
  tokens and writes the count as decimal text; procgen draws ``x`` uniformly (counts are small
  unless ``vocab_size`` is small) and writes one ``#c`` token.
* **search**: the reference's ``search`` asks whether a multi-token query string occurs and
  answers yes/no (its ``get_index``, not among the paper's 18 tasks, answers the index).
  procgen's ``search`` takes a one-token query and answers its first index or NOT_FOUND;
  ``p_present=0.5`` matches the reference's 50% planted queries.
* **replace**: as in the reference (``a`` uniform among the distinct tokens of ``x``, ``b``
  uniform, possibly equal to ``a``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit

from procgen._rng import below, hi32, lo32, next_u64, probability_threshold, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import (FRAME_CODES, FRAME_REASONS, MAX_LENGTH, MAX_ROW_TOKENS, MAX_VOCAB, end_row,
                                   frame_code, lengths_kernel, lengths_validator, longest_row, range_params,
                                   resolve_range, write_part)
from procgen.tasks.sequence import _draw_tokens  # the sequence tasks' input draw (two tokens per 64 bits)

MAX_NUMBERED = 2 ** 20  # count / search: max_length bound (one id per count or position)


# --- generators -------------------------------------------------------------------------------
# Fill kernels as in procgen.tasks.sequence: rows back to back into ``out`` (token dtype, sized for
# the longest possible rows), ``offsets`` (int64, count + 1) and ``answer_start`` (int32, count);
# they return the tokens written. ``lengths`` (int64, count + 1) are the cumulative input lengths
# from ``row_offsets``; ``vocab`` is V. Inputs are drawn into the kernel's own buffer ``x`` first
# and written out with ``write_part``.

@njit(cache=True, nogil=True)
def _setop_fill(base, start, lengths, vocab, keep_common, eos, out, offsets, answer_start):
    """intersect (``keep_common``) / difference: ``x, SEP, y, SEP`` and the distinct tokens of x
    that do / do not occur in y, in first-appearance order.

    Draws, per row: the ``L`` input tokens with one ``_draw_tokens`` call; ``x`` is the first
    ``ceil(L/2)`` of them, ``y`` the rest.
    """
    count = offsets.shape[0] - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    # mark[t]: 2(r+1) when t occurs in row r's y, 2(r+1)+1 once t was considered for row r's
    # answer; anything smaller belongs to an earlier row (no clearing between rows)
    mark = np.zeros(vocab, np.int64)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        len_x = (length + 1) // 2
        _draw_tokens(row_state(base, start + r), length, vocab - 1, x, 0)
        q = write_part(out, p, x, 0, len_x, vocab)
        q = write_part(out, q, x, len_x, length, vocab)
        in_y = 2 * (r + 1)
        for j in range(len_x, length):
            mark[x[j]] = in_y
        if keep_common:
            for j in range(len_x):
                t = x[j]
                out[q] = t  # always written; kept (q advances) only for a new token of y
                q += mark[t] == in_y
                mark[t] = in_y + 1
        else:
            for j in range(len_x):
                t = x[j]
                out[q] = t  # kept only for a new token not in y
                q += mark[t] < in_y
                mark[t] = in_y + 1
        p = end_row(out, q, eos, vocab + 2, r, length + 2, offsets, answer_start)
    return p


@njit(cache=True, nogil=True)
def _lookup_fill(base, start, lengths, vocab, threshold, search, eos, out, offsets, answer_start):
    """count / search (``search``): ``x, SEP, t, SEP`` and ``#c`` (id V+3+c) / ``@i`` (V+4+i) or
    NOT_FOUND (V+3). ``threshold``: uint64, the 32-bit threshold of ``p_present``.

    Draws, per row: the ``L`` tokens of ``x`` (``_draw_tokens``), then one ``next_u64``: its high
    32 bits against ``threshold`` choose how ``t`` is drawn, its low 32 bits draw it (a position of
    ``x``, or a token in ``1 .. V-1``).
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        state = _draw_tokens(row_state(base, start + r), length, m, x, 0)
        state, bits = next_u64(state)
        if hi32(bits) < threshold:
            target = np.int64(x[below(lo32(bits), length)])
        else:
            target = below(lo32(bits), m) + 1
        q = write_part(out, p, x, 0, length, vocab)
        out[q] = target
        out[q + 1] = vocab
        if search:
            hit = 0
            while hit < length and x[hit] != target:
                hit += 1
            out[q + 2] = vocab + 3 if hit == length else vocab + 4 + hit
        else:
            occurrences = 0
            for j in range(length):
                occurrences += x[j] == target
            out[q + 2] = vocab + 3 + occurrences
        p = end_row(out, q + 3, eos, vocab + 2, r, length + 3, offsets, answer_start)
    return p


@njit(cache=True, nogil=True)
def _duplicate_fill(base, start, lengths, vocab, unused, eos, out, offsets, answer_start):
    """duplicate: ``x, SEP, x1 x1 x2 x2 ...``. Draws, per row: the ``L`` tokens of ``x``."""
    count = offsets.shape[0] - 1
    x = np.empty(longest_row(lengths) + 1, out.dtype)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        _draw_tokens(row_state(base, start + r), length, vocab - 1, x, 0)
        q = write_part(out, p, x, 0, length, vocab)
        for j in range(length):
            out[q + 2 * j] = x[j]
            out[q + 2 * j + 1] = x[j]
        p = end_row(out, q + 2 * length, eos, vocab + 2, r, length + 1, offsets, answer_start)
    return p


@njit(cache=True, nogil=True)
def _replace_fill(base, start, lengths, vocab, unused, eos, out, offsets, answer_start):
    """replace: ``x, SEP, a, SEP, b, SEP`` and x with every ``a`` replaced by ``b``.

    Draws, per row: the ``L`` tokens of ``x`` (``_draw_tokens``), then one ``next_u64``: its high
    32 bits pick ``a`` among the distinct tokens of ``x`` (in first-appearance order), its low 32
    bits ``b`` in ``1 .. V-1``.
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    longest = longest_row(lengths) + 1
    x = np.empty(longest, out.dtype)
    distinct = np.empty(longest, np.int64)  # row r's distinct tokens, first-appearance order
    seen = np.zeros(vocab, np.int64)        # seen[t] == r + 1 <=> t already listed for row r
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        state = _draw_tokens(row_state(base, start + r), length, m, x, 0)
        state, bits = next_u64(state)
        stamp = r + 1
        k = 0
        for j in range(length):
            t = x[j]
            distinct[k] = t
            k += seen[t] != stamp
            seen[t] = stamp
        a = distinct[below(hi32(bits), k)]
        b = below(lo32(bits), m) + 1
        q = write_part(out, p, x, 0, length, vocab)
        out[q] = a
        out[q + 1] = vocab
        out[q + 2] = b
        out[q + 3] = vocab
        q += 4
        for j in range(length):
            t = x[j]
            out[q + j] = b if t == a else t
        p = end_row(out, q + length, eos, vocab + 2, r, length + 5, offsets, answer_start)
    return p


def _threshold(params):
    return np.uint64(probability_threshold(params["p_present"]))


# --- validators (independent of the generators: they check properties, never regenerate) -------

_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_ID, _BAD_SEP, _BAD_EOS = FRAME_CODES
(_NOT_IN_X, _Y_SIDE, _BAD_ORDER, _MISSING, _BAD_ANSWER, _WRONG_COUNT, _T_ABSENT, _NOT_AT, _NOT_FIRST, _MISSED,
 _WRONG_DUPLICATE, _A_ABSENT, _WRONG_REPLACE) = range(len(FRAME_CODES), 19)
_FRAME = FRAME_REASONS
_SETOP = {
    _NOT_IN_X: "answer holds a token that is not in x",
    _BAD_ORDER: "answer repeats a token or breaks first-appearance order in x",
    _MISSING: "answer misses a qualifying token of x",
}
_REASONS = {
    "intersect": {**_FRAME, **_SETOP, _Y_SIDE: "answer holds a token that does not occur in y"},
    "difference": {**_FRAME, **_SETOP, _Y_SIDE: "answer holds a token that occurs in y"},
    "count": {**_FRAME, _BAD_ANSWER: "answer is not a count token #0 .. #L (id vocab_size+3+c)",
              _T_ABSENT: "t does not occur in x although p_present=1",
              _WRONG_COUNT: "answer is not the number of occurrences of t in x"},
    "search": {**_FRAME, _BAD_ANSWER: "answer is not NOT_FOUND (id vocab_size+3) or a position @0 .. @L-1",
               _T_ABSENT: "t does not occur in x although p_present=1",
               _NOT_AT: "the token at the answered position is not t",
               _NOT_FIRST: "t occurs before the answered position",
               _MISSED: "answer is NOT_FOUND but t occurs in x"},
    "duplicate": {**_FRAME, _WRONG_DUPLICATE: "answer is not each token of x written twice"},
    "replace": {**_FRAME, _A_ABSENT: "a does not occur in x",
                _WRONG_REPLACE: "answer is not x with every a replaced by b"},
}


@njit(cache=True, nogil=True)
def _check_setop(tokens, offsets, answer_start, vocab, keep_common, eos, min_length, max_length):
    """intersect / difference: tables of each x token's owner row and first position and of the y
    tokens; every answer token must be in x, on the right side of y, after the previous one in x;
    their number must equal the qualifying distinct tokens. Returns ``(row or -1, code)``."""
    owner = np.zeros(vocab, np.int64)      # owner[t] == r + 1 <=> t occurs in row r's x
    first_pos = np.zeros(vocab, np.int64)  # position of t's first occurrence in x
    in_y = np.zeros(vocab, np.int64)       # in_y[t] == r + 1 <=> t occurs in row r's y
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 2
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n < answer_start[r] + eos:
            return r, _BAD_LENGTH
        len_x = (length + 1) // 2
        code = frame_code(tokens, first, n, n - eos, len_x, length + 1, -1, vocab, eos)
        if code != _OK:
            return r, code
        stamp = r + 1
        for j in range(len_x):
            t = tokens[first + j]
            if owner[t] != stamp:
                owner[t] = stamp
                first_pos[t] = j
        for j in range(len_x + 1, length + 1):
            in_y[tokens[first + j]] = stamp
        qualifying = 0
        for j in range(len_x):
            t = tokens[first + j]
            if first_pos[t] == j and (in_y[t] == stamp) == keep_common:
                qualifying += 1
        previous = -1
        for j in range(answer_start[r], n - eos):
            t = tokens[first + j]
            if owner[t] != stamp:
                return r, _NOT_IN_X
            if (in_y[t] == stamp) != keep_common:
                return r, _Y_SIDE
            if first_pos[t] <= previous:
                return r, _BAD_ORDER
            previous = first_pos[t]
        if n - eos - answer_start[r] != qualifying:
            return r, _MISSING
    return -1, _OK


@njit(cache=True, inline="always")
def _count_code(tokens, first, length, count, always_present, histogram):
    """count's answer ``#count``: at most ``length``, and a histogram of x's tokens (cleared again
    before returning) read at t must equal it."""
    if count < 0 or count > length:
        return _BAD_ANSWER
    for j in range(length):
        histogram[tokens[first + j]] += 1
    occurrences = histogram[tokens[first + length + 1]]
    for j in range(length):
        histogram[tokens[first + j]] = 0
    if always_present and occurrences == 0:
        return _T_ABSENT
    return _OK if count == occurrences else _WRONG_COUNT


@njit(cache=True, inline="always")
def _search_code(tokens, first, length, index, always_present):
    """search's answer ``@index`` (-1: NOT_FOUND): a backward scan finds t's first index; NOT_FOUND
    needs none, ``@i`` needs t at i and nowhere before."""
    if index < -1 or index >= length:
        return _BAD_ANSWER
    target = tokens[first + length + 1]
    first_hit = length  # the last assignment of a backward scan is the first occurrence
    for j in range(length - 1, -1, -1):
        if tokens[first + j] == target:
            first_hit = j
    if index == -1:
        if first_hit < length:
            return _MISSED
        return _T_ABSENT if always_present else _OK
    if tokens[first + index] != target:
        return _NOT_AT
    return _NOT_FIRST if first_hit < index else _OK


@njit(cache=True, nogil=True)
def _check_lookup(tokens, offsets, answer_start, vocab, always_present, search, eos, min_length, max_length):
    """count / search (``search``): the frame ``x, SEP, t, SEP``, then one numbered answer token, which
    :func:`_count_code` / :func:`_search_code` check. Returns ``(row or -1, code)``."""
    histogram = np.zeros(vocab, np.int64)  # count: left zeroed after every row
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 3
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n != length + 4 + eos:
            return r, _BAD_LENGTH
        code = frame_code(tokens, first, n, length + 3, length, length + 2, -1, vocab, eos)
        if code != _OK:
            return r, code
        answer = np.int64(tokens[first + length + 3])
        if answer == vocab + 2:
            return r, _BAD_EOS
        if search:
            code = _search_code(tokens, first, length, answer - vocab - 4, always_present)
        else:
            code = _count_code(tokens, first, length, answer - vocab - 3, always_present, histogram)
        if code != _OK:
            return r, code
    return -1, _OK


@njit(cache=True, nogil=True)
def _check_duplicate(tokens, offsets, answer_start, vocab, unused, eos, min_length, max_length):
    """duplicate: answer token ``j`` must be x's token ``j // 2``. Returns ``(row or -1, code)``."""
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 1
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n != 3 * length + 1 + eos:
            return r, _BAD_LENGTH
        code = frame_code(tokens, first, n, n - eos, length, -1, -1, vocab, eos)
        if code != _OK:
            return r, code
        y = first + length + 1
        for j in range(2 * length):
            if tokens[y + j] != tokens[first + (j >> 1)]:
                return r, _WRONG_DUPLICATE
    return -1, _OK


@njit(cache=True, nogil=True)
def _check_replace(tokens, offsets, answer_start, vocab, unused, eos, min_length, max_length):
    """replace: ``a`` occurs in x; where x holds ``a`` the answer holds ``b``, elsewhere x's token.
    Returns ``(row or -1, code)``."""
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        length = np.int64(answer_start[r]) - 5
        if length < min_length or length > max_length:
            return r, _BAD_ANSWER_START
        if n != 2 * length + 5 + eos:
            return r, _BAD_LENGTH
        code = frame_code(tokens, first, n, n - eos, length, length + 2, length + 4, vocab, eos)
        if code != _OK:
            return r, code
        a = tokens[first + length + 1]
        b = tokens[first + length + 3]
        present = False
        for j in range(length):
            present |= tokens[first + j] == a
        if not present:
            return r, _A_ABSENT
        y = first + length + 5
        for j in range(length):
            source = tokens[first + j]
            if tokens[y + j] != (b if source == a else source):
                return r, _WRONG_REPLACE
    return -1, _OK


# --- vocabulary, lengths and parameters ---------------------------------------------------------

def _vocab(numbered=None):
    """Printable names: ``<unused>``, ``1 .. V-1``, ``<sep>``, ``<pad>``, ``<eos>`` (with eos, or always
    for the numbered tasks), then ``numbered(params)``'s names (count/search)."""
    def names(params):
        vocab = params["vocab_size"]
        result = ["<unused>", *map(str, range(1, vocab)), "<sep>", "<pad>"]
        if numbered is None:
            return result + ["<eos>"] if params["eos"] else result
        return result + ["<eos>"] + numbered(params["max_length"])
    return names


def _size(numbered):
    if numbered:
        return lambda params: params["vocab_size"] + 4 + params["max_length"]
    return lambda params: params["vocab_size"] + 2 + int(params["eos"])


def _power_sums(q, lo, hi):
    """Sums over ``L = lo .. hi`` of ``q**ceil(L/2)``, ``q**floor(L/2)`` and ``q**L``, in closed form."""
    def halves(count):  # sum of q**floor(M/2) over M = 0 .. count-1
        k = count // 2
        total = 2 * k if q == 1 else 2 * (1 - q ** k) / (1 - q)
        return total + (q ** k if count & 1 else 0)
    ceil = halves(hi + 2) - halves(lo + 1)
    floor = halves(hi + 1) - halves(lo)
    full = (hi - lo + 1) if q == 1 else (q ** lo - q ** (hi + 1)) / (1 - q)
    return ceil, floor, full


def _mean_length(name):
    """``expected_row_length``: exact for the fixed layouts; for intersect / difference the
    expected answer is (V-1) * P(t in x) * P(t in y) (resp. P(t not in y)), with
    P(t in a run of k uniform tokens) = 1 - q**k, q = 1 - 1/(V-1), averaged over L."""
    def mean(params):
        lo, hi, eos = params["min_length"], params["max_length"], int(params["eos"])
        length = Fraction(lo + hi, 2)
        if name in ("count", "search"):
            return length + 4 + eos
        if name == "duplicate":
            return 3 * length + 1 + eos
        if name == "replace":
            return 2 * length + 5 + eos
        content = params["vocab_size"] - 1
        ceil, floor, full = _power_sums(1 - 1 / content, lo, hi)
        rows = hi - lo + 1
        if name == "intersect":  # (1 - q**ceil)(1 - q**floor) = 1 - q**ceil - q**floor + q**L
            answer = content * (rows - ceil - floor + full) / rows
        else:                    # (1 - q**ceil) q**floor = q**floor - q**L
            answer = content * (floor - full) / rows
        return float(length) + 2 + eos + answer
    return mean


def _lengths(low, high):
    return range_params("length", 64, low, high, "row length in input tokens", "shortest row in input tokens",
                        "longest row in input tokens")


_VOCAB = Param("vocab_size", int, 100, "V: content tokens are 1..V-1, SEP = V, PAD = V+1", low=2, high=MAX_VOCAB)
_EOS = Param("eos", bool, False, "append an end token (id V+2) after the answer")
_P_PRESENT = Param("p_present", float, 0.5, "probability that t is taken from a uniform position of x "
                   "(else t is uniform in 1..V-1)", low=0.0, high=1.0)
_PAPER = ("Wu, Li & Liang (2022, *Insights into Pre-training via Simpler Synthetic Tasks*) pre-train a "
          "T5-small model on each of 18 simple synthetic tasks, this one among them, and fine-tune it on six "
          "downstream tasks; the best, Set, recovers 65% of the benefit of natural pre-training (LIME: 67%). "
          "Their data: inputs of 10-220 tokens over T5's 32k vocabulary (`min_length=10, max_length=220, "
          "vocab_size=32000` here; see the layout differences in the task family description).")


def _task(name, summary, kernel, validator, max_row, low=1, high=MAX_LENGTH, numbered=None, more=()):
    return Task(
        name=name,
        summary=summary,
        params=(*_lengths(low, high), _VOCAB, _EOS, *more),
        kernel=kernel,
        validator=validator,
        vocab=_vocab(numbered),
        size=_size(numbered is not None),
        max_row_length=lambda params: max_row(params["max_length"]) + int(params["eos"]),
        expected_row_length=_mean_length(name),
        pad_id=lambda params: params["vocab_size"] + 1,
        resolve=lambda params: resolve_range(name, params),
        finding=_PAPER, differences=("Simple set operations (Wu, Li and Liang 2022)",),
    )


TASKS = [
    _task("intersect", "x, SEP, y, SEP, distinct tokens of x that occur in y (first-appearance order)",
          lengths_kernel(_setop_fill, lambda total, rows, eos: total + (total + rows) // 2 + rows * (2 + eos),
                         lambda params: (True,)),
          lengths_validator(_check_setop, _REASONS["intersect"], lambda params: (True,)),
          lambda most: most + 2 + (most + 1) // 2, low=2),
    _task("difference", "x, SEP, y, SEP, distinct tokens of x that do not occur in y (first-appearance order)",
          lengths_kernel(_setop_fill, lambda total, rows, eos: total + (total + rows) // 2 + rows * (2 + eos),
                         lambda params: (False,)),
          lengths_validator(_check_setop, _REASONS["difference"], lambda params: (False,)),
          lambda most: most + 2 + (most + 1) // 2, low=2),
    _task("count", "x, SEP, t, SEP, #c: the number of occurrences of t in x",
          lengths_kernel(_lookup_fill, lambda total, rows, eos: total + rows * (4 + eos),
                         lambda params: (_threshold(params), False)),
          lengths_validator(_check_lookup, _REASONS["count"], lambda params: (params["p_present"] == 1.0, False)),
          lambda most: most + 4, high=MAX_NUMBERED,
          numbered=lambda most: [f"#{c}" for c in range(most + 1)], more=(_P_PRESENT,)),
    _task("search", "x, SEP, t, SEP, @i: the index of the first t in x, or <not_found>",
          lengths_kernel(_lookup_fill, lambda total, rows, eos: total + rows * (4 + eos),
                         lambda params: (_threshold(params), True)),
          lengths_validator(_check_lookup, _REASONS["search"], lambda params: (params["p_present"] == 1.0, True)),
          lambda most: most + 4, high=MAX_NUMBERED,
          numbered=lambda most: ["<not_found>", *(f"@{i}" for i in range(most))], more=(_P_PRESENT,)),
    _task("duplicate", "x, SEP, each token of x written twice (x1 x1 x2 x2 ...)",
          lengths_kernel(_duplicate_fill, lambda total, rows, eos: 3 * total + rows * (1 + eos), lambda params: (0,)),
          lengths_validator(_check_duplicate, _REASONS["duplicate"], lambda params: (0,)),
          lambda most: 3 * most + 1, high=(MAX_ROW_TOKENS - 2) // 3),
    _task("replace", "x, SEP, a, SEP, b, SEP, x with every a replaced by b",
          lengths_kernel(_replace_fill, lambda total, rows, eos: 2 * total + rows * (5 + eos), lambda params: (0,)),
          lengths_validator(_check_replace, _REASONS["replace"], lambda params: (0,)),
          lambda most: 2 * most + 5),
]
