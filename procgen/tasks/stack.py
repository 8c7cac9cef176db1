"""STACK: a sequence of push/pop operations, then the final stack from top to bottom.

Ids: 0 = pop, ``1 .. V-1`` = push of that token (and, after SEP, the stack's items),
``SEP = V``, ``PAD = V+1`` (never stored); ``eos=True`` appends ``EOS = V+2``. A row is
``ops (L of them), SEP, final stack top -> bottom`` with ``answer_start = L + 1``.

The reference process, with its defaults: at step ``j`` (0-based) of ``L``

* stack size <= 1 -> push;
* otherwise, on the last step -> pop;
* otherwise, the first ``floor(split_frac * L)`` steps push with probability ``push_prob_early``
  (0.75) and later steps pop with probability ``pop_prob_late`` (0.75);
* a push draws its token uniformly among the tokens *not* on the stack, so the stack never holds a
  token twice. When all ``V-1`` tokens are on the stack no push is possible and the step pops
  (never happens at the defaults: the stack stays far below 99 items).

At V=100, L=64 the final stack holds 11.04 items on average and 41.4% of operations are pops
(exact expectations of the process).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

from procgen._rng import _GOLDEN, below, hi32, lo32, mix64, next_u64, probability_threshold, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import (FRAME_CODES, MAX_VOCAB, SEMANTIC_WARMUP, end_row, length_params, lengths_kernel,
                                   lengths_validator, longest_row, resolve_range)


# --- generator: the operation process (shared with the queue task) and the stack -----------------

@njit(cache=True, inline="always")
def step_draws(state, length, draws):
    """Set ``draws[j]``, for the ``length`` steps of a row, to draw ``j`` of the row's stream: it
    decides step ``j`` (high 32 bits) and gives the token an add puts in (low 32 bits). Returns the
    state after them, which rejected adds draw on from.

    Draw ``j`` is ``mix64(state + (j+1) * golden)``, as ``next_u64`` would give it; computing them up
    front vectorises.
    """
    for j in range(length):
        draws[j] = mix64(state + uint64(j + 1) * _GOLDEN)
    return state + uint64(length) * _GOLDEN


@njit(cache=True, inline="always")
def step_adds(bits, j, length, split, size, m, add_early, remove_late):
    """Whether step ``j`` of ``length`` adds (push, enqueue) rather than removes, with ``size`` items
    held out of ``m`` tokens: forced to add at size <= 1 and to remove on the last step or when every
    token is held; otherwise the high 32 bits of its draw against the 32-bit threshold of the early
    add (``j < split``) or late remove probability."""
    if j < split:
        chosen = hi32(bits) < add_early
    else:
        chosen = hi32(bits) >= remove_late
    return size <= 1 or (chosen and j != length - 1 and size != m)


@njit(cache=True, inline="always")
def new_token(state, bits, m, held, stamp):
    """The token an add puts in, uniform over the tokens ``1 .. m`` not held (``held[t] == stamp``):
    the low 32 bits of its draw, redrawn from the stream (high 32 bits) while it is held (rejection).
    Marks it held; returns ``(state, token)``."""
    token = below(lo32(bits), m) + 1
    while held[token] == stamp:
        state, bits = next_u64(state)
        token = below(hi32(bits), m) + 1
    held[token] = stamp
    return state, token


@njit(cache=True, nogil=True)
def _stack_fill(base, start, lengths, vocab, push_threshold, pop_threshold, split_frac, eos,
                out, offsets, answer_start):
    """Rows ``ops, SEP, final stack top -> bottom [, EOS]`` back to back into ``out``; returns the
    tokens written (see ``procgen.tasks._common``). ``lengths``: int64 cumulative op counts (row r
    has ``L = lengths[r+1] - lengths[r]`` ops); ``push_threshold`` / ``pop_threshold``: 32-bit
    thresholds of the early push and late pop probabilities.

    Draws, per row: ``L`` draws (:func:`step_draws`), draw ``j`` decides step ``j``
    (:func:`step_adds`) and gives its pushed token; then, in step order, a further draw (high 32
    bits) each time a push's token is already on the stack (:func:`new_token`).
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    longest = longest_row(lengths)
    draws = np.empty(longest, np.uint64)
    stack = np.empty(min(longest, m) + 1, np.int64)  # items at stack[1..size] (index 0 unused)
    on_stack = np.zeros(vocab, np.int64)  # on_stack[t] == r + 1 <=> t is on row r's stack (no clearing)
    push_early = uint64(push_threshold)
    pop_late = uint64(pop_threshold)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        split = np.int64(math.floor(split_frac * length))
        state = step_draws(row_state(base, start + r), length, draws)
        stamp = r + 1
        size = 0
        for j in range(length):
            if step_adds(draws[j], j, length, split, size, m, push_early, pop_late):
                state, token = new_token(state, draws[j], m, on_stack, stamp)
                size += 1
                stack[size] = token
                out[p + j] = token
            else:
                on_stack[stack[size]] = 0
                size -= 1
                out[p + j] = 0
        out[p + length] = vocab
        q = p + length + 1
        for i in range(size):
            out[q + i] = stack[size - i]
        q += size
        p = end_row(out, q, eos, vocab + 2, r, length + 1, offsets, answer_start)
    return p


# --- validator: replays the operations on an explicit stack --------------------------------------

_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_ID, _BAD_SEP, _BAD_EOS = FRAME_CODES


def operations_frame_reasons(structure: str) -> dict:
    """What the frame codes mean for an operations row that ends with the final ``structure``
    (shared with the queue task)."""
    return {
        _BAD_ANSWER_START: "answer_start implies a number of operations outside [min_length, max_length]",
        _BAD_LENGTH: f"row length does not match the number of operations and the final {structure}",
        _BAD_ID: f"token id out of range (ops: 0 .. vocab_size-1; {structure} items: 1 .. vocab_size-1)",
        _BAD_SEP: "separator (id vocab_size) missing after the operations",
        _BAD_EOS: "end token (id vocab_size+2) missing at the end of the row, or present without eos=True",
    }


@njit(cache=True, inline="always")
def operations_frame_code(tokens, first, n, ops, vocab, eos, min_length, max_length):
    """The frame of the ``n``-token operations row at ``tokens[first:]`` (shared with the queue's
    check): ``ops`` operations within [min_length, max_length], room for them and SEP (and EOS), the
    SEP after them, EOS last if ``eos``. The ids in between are the replay's to check."""
    if ops < min_length or ops > max_length:
        return _BAD_ANSWER_START
    if n < ops + 1 + eos:
        return _BAD_LENGTH
    if tokens[first + ops] != vocab:
        return _BAD_SEP
    if eos and tokens[first + n - 1] != vocab + 2:
        return _BAD_EOS
    return _OK


_DUPLICATE_PUSH, _EMPTY_POP, _FORCED_PUSH, _FORCED_POP, _WRONG_STACK = range(len(FRAME_CODES), 11)
_REASONS = {
    **operations_frame_reasons("stack"),
    _DUPLICATE_PUSH: "push of a token that is already on the stack",
    _EMPTY_POP: "pop from an empty stack",
    _FORCED_PUSH: "the process must push here (stack size <= 1, or push probability 1)",
    _FORCED_POP: "the process must pop here (last step with size > 1, full stack, or pop probability 1)",
    _WRONG_STACK: "answer is not the replayed final stack from top to bottom",
}


@njit(cache=True, nogil=True)
def _stack_check(tokens, offsets, answer_start, vocab, always_push_early, always_pop_late, split_frac, eos,
                 min_length, max_length):
    """Replays each row's operations on an explicit stack: no pop from an empty stack, no push of a
    token already on it, the process's forced moves (``always_push_early`` / ``always_pop_late``:
    the probabilities are 1), and the answer equal to the replayed stack from top to bottom.
    Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    present = np.zeros(vocab, np.bool_)  # tokens on the replayed stack; cleared at the end of a row
    replay = np.empty(max_length + 1, np.int64)
    for r in range(count):
        first = offsets[r]
        n = offsets[r + 1] - first
        ops = np.int64(answer_start[r]) - 1
        code = operations_frame_code(tokens, first, n, ops, vocab, eos, min_length, max_length)
        if code != _OK:
            return r, code
        split = np.int64(math.floor(split_frac * ops))
        depth = 0
        for j in range(ops):
            t = np.int64(tokens[first + j])
            if t < 0 or t >= vocab:
                return r, _BAD_ID
            # forced moves, in the generator's order of precedence
            must_pop = depth > 1 and (j == ops - 1 or depth == vocab - 1 or (j >= split and always_pop_late))
            must_push = depth <= 1 or (not must_pop and j < split and always_push_early)
            if t == 0:
                if depth == 0:
                    return r, _EMPTY_POP
                if must_push:
                    return r, _FORCED_PUSH
                depth -= 1
                present[replay[depth]] = False
            else:
                if must_pop:
                    return r, _FORCED_POP
                if present[t]:
                    return r, _DUPLICATE_PUSH
                present[t] = True
                replay[depth] = t
                depth += 1
        for i in range(depth):  # clear the presence marks for the next row
            present[replay[i]] = False
        if n - eos - ops - 1 != depth:
            return r, _BAD_LENGTH
        for i in range(depth):
            t = np.int64(tokens[first + ops + 1 + i])
            if t < 1 or t >= vocab:
                return r, _BAD_ID
            if t != replay[depth - 1 - i]:
                return r, _WRONG_STACK
    return -1, _OK


# --- vocabulary and parameters (shared with the queue task, its FIFO twin) -----------------------

def _probability(name, default, help):
    return Param(name, float, default, help, low=0.0, high=1.0, low_open=True)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def operations_task(name: str, summary: str, fill, check, reasons: dict, *, add: str, remove: str, structure: str,
                    finding: str, differences: tuple = ()) -> Task:
    """The Task of an operations family: ``add t`` / ``remove`` operations (remove = 0), SEP, the final
    ``structure``. ``stack`` (push/pop) and ``queue`` (enqueue/dequeue) share the parameters (named
    after ``add`` / ``remove``), the vocabulary and the row-size bounds, and the arguments of their
    ``fill`` (the 32-bit thresholds of the early add / late remove probabilities, ``split_frac``)
    and their ``check`` (whether those probabilities are 1, ``split_frac``)."""
    add_early, remove_late = f"{add}_prob_early", f"{remove}_prob_late"

    def vocab(params) -> list[str]:
        names = [remove, *map(str, range(1, params["vocab_size"])), "<sep>", "<pad>"]
        return names + ["<eos>"] if params["eos"] else names

    return Task(
        name=name,
        summary=summary,
        params=(
            *length_params(64, what="operations"),
            Param("vocab_size", int, 100, f"V: {add}able tokens 1..V-1, {remove} = 0, SEP = V, PAD = V+1", low=3,
                  high=MAX_VOCAB),
            _probability(add_early, 0.75,
                         f"probability of {_article(add)} {add} in the early phase (size > 1)"),
            _probability(remove_late, 0.75,
                         f"probability of {_article(remove)} {remove} in the late phase (size > 1)"),
            Param("split_frac", float, 2 / 3, "the early phase is the first floor(split_frac * L) steps",
                  low=0.0, high=1.0),
            Param("eos", bool, False, f"append an end token (id V+2) after the final {structure}"),
        ),
        # ops + final structure (<= number of ops) + SEP (+ EOS) per row; trimmed after filling
        kernel=lengths_kernel(fill, lambda total, rows, eos: 2 * total + rows * (1 + eos), lambda params: (
            probability_threshold(params[add_early]), probability_threshold(params[remove_late]),
            params["split_frac"])),
        validator=lengths_validator(check, reasons, lambda params: (
            params[add_early] == 1.0, params[remove_late] == 1.0, params["split_frac"])),
        vocab=vocab,
        size=lambda params: params["vocab_size"] + 2 + int(params["eos"]),
        max_row_length=lambda params: (params["max_length"] + 1 + min(params["max_length"], params["vocab_size"] - 1)
                                       + int(params["eos"])),
        pad_id=lambda params: params["vocab_size"] + 1,
        resolve=lambda params: resolve_range(name, params),
        finding=finding,
        differences=differences,
    )


TASKS = [
    operations_task("stack", "push/pop operations (pop = 0), SEP, final stack top -> bottom", _stack_fill,
                    _stack_check, _REASONS, add="push", remove="pop", structure="stack",
                    finding=f"STACK (replaying push/pop operations) is {SEMANTIC_WARMUP}.",
                    differences=("Sequence tasks and STACK",)),
]
