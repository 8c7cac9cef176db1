"""Tests for what only QUEUE (the first-in-first-out twin of STACK) does; the properties the two share
are tested for both in tests/test_stack.py."""

from __future__ import annotations

import numpy as np
from conftest import replay

import procgen
from procgen._rng import base_key
from procgen.tasks import get_task

VALIDATE = get_task("queue").validator


def test_same_operation_process_as_stack():
    """Under one key, QUEUE and STACK make the same enqueue/dequeue (push/pop) decisions: the
    decisions use the same draws and the sizes evolve alike; only the tokens differ."""
    queue, stack = get_task("queue"), get_task("stack")
    for given in ({}, {"min_length": 1, "max_length": 90, "vocab_size": 6, "split_frac": 0.3}):
        key = base_key(7, "stack", "train")
        q_params = queue.resolve_params(given)
        s_params = stack.resolve_params(given)
        q_tokens, q_offsets, q_answer = queue.kernel(key, 100, 500, q_params, np.dtype(np.uint8))
        s_tokens, s_offsets, s_answer = stack.kernel(key, 100, 500, s_params, np.dtype(np.uint8))
        assert np.array_equal(q_offsets, s_offsets) and np.array_equal(q_answer, s_answer)
        ops = np.concatenate([np.arange(o, o + a - 1) for o, a in zip(q_offsets[:-1], q_answer)])
        assert np.array_equal(q_tokens[ops] == 0, s_tokens[ops] == 0)


def test_validator_rejects_a_stack_answer():
    """A valid STACK row (same ids) is rejected as a queue row once its final stack has two items."""
    stack = procgen.stack(n=50, length=40, vocab_size=30, seed=1)
    params = get_task("queue").resolve_params({"length": 40, "vocab_size": 30})
    found = VALIDATE(stack.tokens, stack.offsets, stack.answer_start, params)
    assert found is not None


def test_validator_handles_a_queue_that_wraps_its_ring():
    # V=4 (3 tokens): the ring has 3 slots and wraps many times in 200 operations
    batch = procgen.queue(n=300, length=200, vocab_size=4, split_frac=1.0, enqueue_prob_early=0.9)
    assert batch.validate() is None
    for i in range(len(batch)):
        replay("queue", batch[i].tolist(), 201, batch.params)
