"""What the task modules share: bounds, range parameters, and the plumbing around njit kernels.

A task module writes the parts that are its own -- the njit fill kernel, the njit check kernel of
its validator, the vocabulary -- and takes the rest from here (docs/adding-a-task.md):

* :func:`fill_rows` sizes a token buffer, lets a fill kernel write the rows back to back, and trims
  the buffer to what was written;
* :func:`row_validator` turns an njit check kernel that returns ``(row, reason code)`` into a
  task ``validator`` that returns ``None`` or ``(row, reason)``;
* :func:`range_params` / :func:`resolve_range` give the ``x`` / ``min_x`` / ``max_x`` trio of a
  per-row range (row lengths, operand digits) and its resolution;
* :func:`longest_row` (njit) sizes a kernel's scratch buffers, :func:`write_part` (njit) writes a
  row's input part and its separator, and :func:`end_row` (njit) closes a row of a fill kernel
  (optional end token, ``offsets``, ``answer_start``);
* :func:`lengths_kernel` / :func:`lengths_validator` are the kernel and the validator of a task
  whose rows have ``min_length .. max_length`` input tokens, ``vocab_size`` and ``eos`` (the
  sequence, set-operation and stack/queue tasks); their check kernels start with the
  :data:`FRAME_CODES` of a row's frame, and :func:`frame_code` (njit) checks that frame for rows of
  content tokens and separators.

Conventions of every kernel here: ``base`` is the uint64 key of ``(seed, task, split)`` and row
``r`` of a call is global row ``start + r``, whose stream starts at ``row_state(base, start + r)``;
``out`` / ``tokens`` hold the token ids in the task's token dtype; ``offsets`` is int64 with
``count + 1`` entries from 0 (row ``r`` is ``tokens[offsets[r]:offsets[r+1]]``); ``answer_start``
is int32 with ``count`` entries, relative to the row's first token.

This module loads numba, so the registry (``procgen.tasks``, imported by ``import procgen``) never
imports it; task modules do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from procgen._rng import row_offsets
from procgen.tasks import Param

# Upper bounds of length-like parameters (row lengths, widths, step counts). Every integer parameter
# has a ``high``: numba wraps int64 arithmetic silently, so an unbounded value could reach a kernel
# as a negative count or an endless loop. MAX_LENGTH keeps the longest row of every task (at most
# about twice its length parameter, plus a few separators) within MAX_ROW_TOKENS, the most tokens a
# row may have: answer_start is int32 and so are a shard's row offsets.
MAX_ROW_TOKENS = 2 ** 31 - 1
MAX_LENGTH = 10 ** 9
MAX_VOCAB = 2 ** 20  # content ids up to ~1e6 (sequence tasks, stack): keeps the per-call lookup tables small

# The paper's headline result, which most warm-up tasks' ``finding`` cites.
SEMANTIC_WARMUP = ("one of the procedural warm-up tasks that, front-loaded before C4/code/math pretraining, "
                   "let a model reach the same loss with 55–86% of the semantic data")


# --- parameters ---------------------------------------------------------------------------------

def range_params(name: str, default: int, low: int, high: int, value: str, fewest: str, most: str
                 ) -> tuple[Param, ...]:
    """The ``name`` / ``min_<name>`` / ``max_<name>`` trio of a quantity drawn per row.

    ``value``, ``fewest`` and ``most`` describe the quantity, its smallest and its largest value
    (e.g. ``"row length in tokens"``, ``"shortest row in tokens"``, ``"longest row in tokens"``);
    :func:`resolve_range` fills the bounds from ``name`` when they are unset.
    """
    return (
        Param(name, int, default, f"{value} (used when min/max_{name} are unset)", low=low, high=high),
        Param(f"min_{name}", int, None, f"{fewest}; defaults to {name}", low=low, high=high, nullable=True),
        Param(f"max_{name}", int, None, f"{most}; defaults to {name}", low=low, high=high, nullable=True),
    )


def length_params(default_length: int = 64, low: int = 1, what: str = "tokens") -> tuple[Param, ...]:
    """The ``length`` / ``min_length`` / ``max_length`` trio every variable-length task takes.

    Each is at most :data:`MAX_LENGTH`, so that a row (input, separators, answer) stays within
    :data:`MAX_ROW_TOKENS`.
    """
    return range_params("length", default_length, low, MAX_LENGTH, f"row length in {what}",
                        f"shortest row in {what}", f"longest row in {what}")


def resolve_range(task: str, params: dict, name: str = "length") -> dict:
    """Fill ``min_<name>``/``max_<name>`` from ``<name>`` and check ``min_<name> <= max_<name>``.

    Idempotent, as ``Task.resolve`` must be: resolving resolved parameters changes nothing.
    """
    lo_name, hi_name = f"min_{name}", f"max_{name}"
    lo = params[lo_name] if params[lo_name] is not None else params[name]
    hi = params[hi_name] if params[hi_name] is not None else params[name]
    if lo > hi:
        lo_label = lo_name if params[lo_name] is not None else f"{lo_name} (defaulting to {name})"
        hi_label = hi_name if params[hi_name] is not None else f"{hi_name} (defaulting to {name})"
        raise ValueError(f"{task}: {lo_label} must be <= {hi_label}; got {lo} > {hi}")
    params[lo_name], params[hi_name] = lo, hi
    return params


# --- kernels and validators -----------------------------------------------------------------------

@njit(cache=True, nogil=True)
def longest_row(offsets):
    """The largest ``offsets[r+1] - offsets[r]`` of an int64 offsets array (0 for no rows)."""
    longest = 0
    for r in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[r + 1] - offsets[r])
    return longest


@njit(cache=True, inline="always")
def write_part(out, p, x, lo, hi, sep):
    """Write ``x[lo:hi]`` at ``out[p:]`` and ``sep`` after it; return the position after ``sep``.

    A row's input parts (``x, SEP``; ``a, SEP, b, SEP``) go out through here. ``x`` should be the
    kernel's own buffer: LLVM then knows it does not alias ``out`` and vectorises the copy.
    """
    for j in range(hi - lo):
        out[p + j] = x[lo + j]
    out[p + hi - lo] = sep
    return p + hi - lo + 1


@njit(cache=True, inline="always")
def end_row(out, q, eos, eos_id, r, answer, offsets, answer_start):
    """Close row ``r`` of a fill kernel whose answer ends before ``out[q]``: append ``eos_id`` if
    ``eos``, record ``answer_start[r] = answer`` and the row's end in ``offsets[r + 1]``; return
    that end (where the next row starts)."""
    if eos:
        out[q] = eos_id
        q += 1
    answer_start[r] = answer
    offsets[r + 1] = q
    return q


def fill_rows(fill, capacity: int, count: int, dtype, *args):
    """Run ``fill(*args, out, offsets, answer_start) -> tokens written`` on fresh buffers.

    ``out`` has room for ``capacity`` tokens of ``dtype`` (the most the rows can take); the fill
    kernel writes the rows back to back and sets ``offsets`` (int64, ``count + 1``) and
    ``answer_start`` (int32, ``count``). Returns ``(tokens, offsets, answer_start)`` with the token
    buffer trimmed to what was written.
    """
    out = np.empty(capacity, dtype)
    offsets = np.empty(count + 1, np.int64)
    answer_start = np.empty(count, np.int32)
    total = fill(*args, out, offsets, answer_start)
    if total < out.shape[0]:
        out.resize(total, refcheck=False)  # realloc in place: nothing else references the buffer
    return out, offsets, answer_start


def row_validator(check, reasons: dict, args):
    """A task ``validator`` from an njit check kernel.

    ``check(tokens, offsets, answer_start, *args(params))`` gets int64 offsets and int32
    answer starts (whatever the caller passed: Arrow buffers, lists) and returns ``(row, code)``:
    row -1 when every row is valid, else the first bad row and a code that ``reasons`` maps to a
    sentence. The validator returns None or ``(row, reason)``.
    """
    def validate(tokens, offsets, answer_start, params):
        row, code = check(tokens, np.asarray(offsets, np.int64), np.asarray(answer_start, np.int32), *args(params))
        return None if row < 0 else (int(row), reasons[int(code)])

    return validate


# --- tasks of min_length .. max_length input tokens, vocab_size and eos ---------------------------
# Their fill kernels take ``(base, start, lengths, vocab, *options, eos, out, offsets, answer_start)``
# (``lengths``: int64 cumulative input lengths from ``row_offsets``), their check kernels
# ``(tokens, offsets, answer_start, vocab, *options, eos, min_length, max_length)``.

def lengths_kernel(fill, capacity, options):
    """The task kernel of ``fill``: rows of ``min_length .. max_length`` input tokens (``row_offsets``),
    ``options(params)`` (a tuple) the fill's task-specific arguments. ``capacity(input tokens, rows,
    eos)`` bounds the tokens the rows can take (:func:`fill_rows` trims the rest)."""
    def kernel(base, start, count, params, dtype):
        base = np.uint64(base)
        lengths = row_offsets(base, start, count, params["min_length"], params["max_length"], 1)
        eos = params["eos"]
        return fill_rows(fill, capacity(int(lengths[-1]), count, int(eos)), count, dtype,
                         base, start, lengths, params["vocab_size"], *options(params), eos)
    return kernel


def lengths_validator(check, reasons: dict, options):
    """The :func:`row_validator` of ``check``, ``options(params)`` (a tuple) its task-specific arguments."""
    return row_validator(check, reasons, lambda params: (
        params["vocab_size"], *options(params), params["eos"], params["min_length"], params["max_length"]))


# Reason codes of a row's frame, which a check kernel of these tasks tests before the answer; a task
# module numbers its own codes on from len(FRAME_CODES).
FRAME_CODES = range(6)
OK, BAD_ANSWER_START, BAD_LENGTH, BAD_ID, BAD_SEP, BAD_EOS = FRAME_CODES
# What they mean for rows of content tokens 1 .. V-1, SEP = V and EOS = V+2 (sequence and set operations)
FRAME_REASONS = {
    BAD_ANSWER_START: "answer_start implies an input length outside [min_length, max_length]",
    BAD_LENGTH: "row length does not match its answer_start and answer",
    BAD_ID: "token id outside the content range 1 .. vocab_size-1",
    BAD_SEP: "separator (id vocab_size) missing where the layout puts it",
    BAD_EOS: "end token (id vocab_size+2) missing at the end of the row, or present without eos=True",
}


@njit(cache=True, nogil=True)
def frame_code(tokens, first, n, content_end, sep_a, sep_b, sep_c, vocab, eos):
    """The frame of the ``n``-token row at ``tokens[first:]``: row positions ``0 .. content_end-1``
    hold SEP (id ``vocab``) at ``sep_a`` / ``sep_b`` / ``sep_c`` (-1: none) and a content id
    ``1 .. vocab-1`` elsewhere; the row ends with EOS (``vocab + 2``) iff ``eos``. Returns the code
    of the first fault in reading order, or OK. Positions from ``content_end`` to the EOS are the
    caller's (numbered answers)."""
    for j in range(content_end):
        t = np.int64(tokens[first + j])
        if j == sep_a or j == sep_b or j == sep_c:
            if t != vocab:
                return BAD_SEP
        elif t == vocab + 2:
            return BAD_EOS
        elif t < 1 or t >= vocab:
            return BAD_ID
    if eos and tokens[first + n - 1] != vocab + 2:
        return BAD_EOS
    return OK
