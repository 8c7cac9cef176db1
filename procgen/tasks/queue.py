"""QUEUE: a sequence of enqueue/dequeue operations, then the final queue from front to back.

The FIFO twin of :mod:`procgen.tasks.stack`: the same operation process, parameters and ids, with
"push" read as "enqueue" and "pop" as "dequeue" (which removes the *oldest* item). Ids:
0 = dequeue, ``1 .. V-1`` = enqueue of that token (and, after SEP, the queue's items),
``SEP = V``, ``PAD = V+1`` (never stored); ``eos=True`` appends ``EOS = V+2``.

=====================================================  ============
row                                                    answer_start
=====================================================  ============
ops (L of them), SEP, final queue front -> back        L+1
ops, SEP, final queue front -> back, EOS (eos=True)    L+1
=====================================================  ============

The process, with the stack task's defaults: at step ``j`` (0-based) of ``L``

* queue size <= 1 -> enqueue;
* otherwise, on the last step -> dequeue;
* otherwise, the first ``floor(split_frac * L)`` steps enqueue with probability
  ``enqueue_prob_early`` (0.75) and later steps dequeue with probability ``dequeue_prob_late``
  (0.75);
* an enqueue draws its token uniformly among the tokens *not* in the queue, so the queue never
  holds a token twice. When all ``V-1`` tokens are in the queue the step dequeues.

The sizes follow the same process as the stack's, so the final queue also holds 11.04 items on
average at V=100, L=64 and 41.4% of operations are dequeues; only which items remain differs (the
newest ones, in arrival order, instead of the survivors of a last-in-first-out history).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

from procgen._rng import row_state
from procgen.tasks._common import FRAME_CODES, SEMANTIC_WARMUP, end_row, longest_row
from procgen.tasks.stack import (new_token, operations_frame_code, operations_frame_reasons, operations_task,
                                  step_adds, step_draws)


# --- generator: the queue is a slice items[head:tail] of a flat array (never wraps) --------------

@njit(cache=True, nogil=True)
def _queue_fill(base, start, lengths, vocab, enqueue_threshold, dequeue_threshold, split_frac, eos,
                out, offsets, answer_start):
    """Rows ``ops, SEP, final queue front -> back [, EOS]`` back to back into ``out``; returns the
    tokens written (see ``procgen.tasks._common``). ``lengths``: int64 cumulative op counts (row r
    has ``L = lengths[r+1] - lengths[r]`` ops); ``enqueue_threshold`` / ``dequeue_threshold``:
    32-bit thresholds of the early enqueue and late dequeue probabilities.

    Draws, per row, as the stack task: ``L`` draws (``step_draws``), draw ``j`` decides step ``j``
    (``step_adds``) and gives its enqueued token; then, in step order, a further draw each time an
    enqueued token is already in the queue (``new_token``).
    The queue is ``items[head:tail]``: every enqueue appends at ``tail``, every dequeue advances
    ``head``, so ``L`` slots always suffice.
    """
    count = offsets.shape[0] - 1
    m = vocab - 1
    longest = longest_row(lengths)
    draws = np.empty(longest, np.uint64)
    items = np.empty(longest + 1, np.int64)  # every token enqueued in the row, in order
    in_queue = np.zeros(vocab, np.int64)  # in_queue[t] == r + 1 <=> t is in row r's queue (no clearing)
    early = uint64(enqueue_threshold)
    late = uint64(dequeue_threshold)
    offsets[0] = 0
    p = 0
    for r in range(count):
        length = lengths[r + 1] - lengths[r]
        split = np.int64(math.floor(split_frac * length))
        state = step_draws(row_state(base, start + r), length, draws)
        stamp = r + 1
        head = 0
        tail = 0
        for j in range(length):
            if step_adds(draws[j], j, length, split, tail - head, m, early, late):
                state, token = new_token(state, draws[j], m, in_queue, stamp)
                items[tail] = token
                tail += 1
                out[p + j] = token
            else:
                in_queue[items[head]] = 0
                head += 1
                out[p + j] = 0
        out[p + length] = vocab
        q = p + length + 1
        for i in range(tail - head):
            out[q + i] = items[head + i]
        q += tail - head
        p = end_row(out, q, eos, vocab + 2, r, length + 1, offsets, answer_start)
    return p


# --- validator: replays the operations on a ring buffer -------------------------------------------

_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_ID, _BAD_SEP, _BAD_EOS = FRAME_CODES
_DUPLICATE_ENQUEUE, _EMPTY_DEQUEUE, _FORCED_ENQUEUE, _FORCED_DEQUEUE, _WRONG_QUEUE = range(len(FRAME_CODES), 11)
_REASONS = {
    **operations_frame_reasons("queue"),
    _DUPLICATE_ENQUEUE: "enqueue of a token that is already in the queue",
    _EMPTY_DEQUEUE: "dequeue from an empty queue",
    _FORCED_ENQUEUE: "the process must enqueue here (queue size <= 1, or enqueue probability 1)",
    _FORCED_DEQUEUE: "the process must dequeue here (last step with size > 1, full queue, or dequeue "
                     "probability 1)",
    _WRONG_QUEUE: "answer is not the replayed final queue from front to back",
}


@njit(cache=True, nogil=True)
def _queue_check(tokens, offsets, answer_start, vocab, always_enqueue_early, always_dequeue_late, split_frac, eos,
                 min_length, max_length):
    """Replays each row's operations on a ring buffer of ``min(max_length, V-1)`` slots (front at
    ``head``, wrapping). Membership is not a flag per token but the token's latest enqueue number:
    ``t`` is queued iff it was enqueued as the ``e``-th item with ``e >= `` the number of
    dequeues so far. Checks no dequeue from an empty queue, no enqueue of a queued token, the
    process's forced moves (``always_enqueue_early`` / ``always_dequeue_late``: the probabilities
    are 1), and the answer equal to the ring's contents from the front.
    Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    capacity = max(1, min(max_length, vocab - 1))
    ring = np.empty(capacity, np.int64)
    last_enqueue = np.full(vocab, -1, np.int64)  # enqueue number (in its row) of t's latest enqueue
    last_row = np.full(vocab, -1, np.int64)  # the row of that enqueue
    for r in range(count):
        first = offsets[r]
        n = offsets[r + 1] - first
        ops = np.int64(answer_start[r]) - 1
        code = operations_frame_code(tokens, first, n, ops, vocab, eos, min_length, max_length)
        if code != _OK:
            return r, code
        split = np.int64(math.floor(split_frac * ops))
        head = 0  # ring index of the front
        size = 0
        enqueued = 0
        dequeued = 0
        for j in range(ops):
            t = np.int64(tokens[first + j])
            if t < 0 or t >= vocab:
                return r, _BAD_ID
            must_dequeue = size > 1 and (j == ops - 1 or size == vocab - 1 or (j >= split and always_dequeue_late))
            must_enqueue = size <= 1 or (not must_dequeue and j < split and always_enqueue_early)
            if t == 0:
                if size == 0:
                    return r, _EMPTY_DEQUEUE
                if must_enqueue:
                    return r, _FORCED_ENQUEUE
                head = (head + 1) % capacity
                size -= 1
                dequeued += 1
            else:
                if must_dequeue:
                    return r, _FORCED_DEQUEUE
                if last_row[t] == r and last_enqueue[t] >= dequeued:
                    return r, _DUPLICATE_ENQUEUE
                if size == capacity:  # a queue longer than V-1 or than the ops allow: a duplicate
                    return r, _DUPLICATE_ENQUEUE
                ring[(head + size) % capacity] = t
                size += 1
                last_row[t] = r
                last_enqueue[t] = enqueued
                enqueued += 1
        if n - eos - ops - 1 != size:
            return r, _BAD_LENGTH
        for i in range(size):
            t = np.int64(tokens[first + ops + 1 + i])
            if t < 1 or t >= vocab:
                return r, _BAD_ID
            if t != ring[(head + i) % capacity]:
                return r, _WRONG_QUEUE
    return -1, _OK


# --- the task (parameters, vocabulary and sizes shared with stack) -----------------------------------

TASKS = [
    operations_task("queue", "enqueue/dequeue operations (dequeue = 0), SEP, final queue front -> back",
                    _queue_fill, _queue_check, _REASONS, add="enqueue", remove="dequeue", structure="queue",
                    finding=f"A first-in-first-out twin of STACK, which is {SEMANTIC_WARMUP}. No paper reports QUEUE "
                            "itself; it is a control next to STACK: the same operation statistics, with the answer "
                            "read in arrival order instead of last-in-first-out."),
]
