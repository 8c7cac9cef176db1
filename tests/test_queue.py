"""Tests for the QUEUE task (the first-in-first-out twin of STACK)."""

from __future__ import annotations

import importlib.util
import math
import random
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procgen
from procgen._rng import base_key
from procgen.tasks import get_task

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALIDATE = get_task("queue").validator


def load_reference():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_frontier_a.py"
    spec = importlib.util.spec_from_file_location("reference_frontier_a", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replay(row, answer_start, params):
    """Plain-Python replay of one row on a deque: checks the process rules, returns (ops, answer)."""
    vocab = params["vocab_size"]
    length = answer_start - 1
    row = list(row)
    if params["eos"]:
        assert row[-1] == vocab + 2
        row = row[:-1]
    assert row[length] == vocab
    ops, answer = row[:length], row[length + 1:]
    split = math.floor(params["split_frac"] * length)
    queue = deque()
    for step, op in enumerate(ops):
        forced_dequeue = len(queue) > 1 and (step == length - 1 or len(queue) == vocab - 1
                                             or (step >= split and params["dequeue_prob_late"] == 1.0))
        if forced_dequeue:
            assert op == 0, "forced dequeue"
        elif len(queue) <= 1 or (step < split and params["enqueue_prob_early"] == 1.0):
            assert op != 0, "forced enqueue"
        if op == 0:
            queue.popleft()
        else:
            assert 1 <= op < vocab and op not in queue
            queue.append(op)
    assert answer == list(queue)
    return ops, answer


@st.composite
def queue_params(draw):
    params = {
        "vocab_size": draw(st.integers(3, 300)),
        "enqueue_prob_early": draw(st.sampled_from([0.01, 0.3, 0.75, 1.0])),
        "dequeue_prob_late": draw(st.sampled_from([0.01, 0.5, 0.75, 1.0])),
        "split_frac": draw(st.sampled_from([0.0, 0.25, 2 / 3, 1.0])),
        "eos": draw(st.booleans()),
    }
    if draw(st.booleans()):
        params["length"] = draw(st.integers(1, 120))
    else:
        a, b = sorted(draw(st.lists(st.integers(1, 120), min_size=2, max_size=2)))
        params["min_length"], params["max_length"] = a, b
    return params


@PROPERTY
@given(queue_params(), st.integers(1, 60), st.integers(0, 2 ** 40), st.integers(0, 10 ** 6))
def test_rows_are_valid_for_random_params(params, n, seed, start):
    batch = procgen.queue(n=n, seed=seed, start=start, **params)
    assert batch.validate() is None
    resolved = batch.params
    for i in range(len(batch)):
        answer_start = int(batch.answer_start[i])
        assert resolved["min_length"] <= answer_start - 1 <= resolved["max_length"]
        _, answer = replay(batch[i].tolist(), answer_start, resolved)
        assert len(answer) >= 1
        assert len(batch[i]) == answer_start + len(answer) + int(resolved["eos"])
    assert batch.lengths.max() <= get_task("queue").max_row_length(resolved)


def test_defaults_layout_and_vocab():
    batch = procgen.queue(n=300)
    assert (batch.answer_start == 65).all() and batch.tokens.dtype == np.uint8
    assert batch.vocab[0] == "dequeue" and batch.vocab[100] == "<sep>" and batch.vocab[101] == "<pad>"
    assert len(batch.vocab) == 102 and batch.pad_id == 101
    for i in range(len(batch)):
        replay(batch[i].tolist(), 65, batch.params)


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


def test_full_queue_forces_a_dequeue():
    # V=3: two tokens; a queue holding both cannot enqueue, so the step after it fills must dequeue
    batch = procgen.queue(n=200, length=50, vocab_size=3, enqueue_prob_early=1.0, split_frac=1.0)
    assert batch.validate() is None
    ops = batch.to_numpy()[:, :50]
    assert (ops[:, :2] != 0).all() and (ops[:, 2] == 0).all()
    assert ((ops[:, 2:49:2] == 0) & (ops[:, 3:50:2] != 0)).all()
    # FIFO at V=3: each enqueue re-enqueues the token just dequeued (the only free one), which is the
    # older of the two, so the tokens alternate (a stack would push the same token every time)
    assert (ops[:, 3] == ops[:, 0]).all() and (ops[:, 5] == ops[:, 1]).all()
    assert (ops[:, 7:50:2] == ops[:, 3:46:2]).all() and (ops[:, 3] != ops[:, 5]).all()


def test_large_vocabulary_uses_int32():
    batch = procgen.queue(n=100, vocab_size=70_000, length=30)
    assert batch.tokens.dtype == np.int32 and batch.validate() is None


# --- validator rejects corrupted rows -------------------------------------------------------------

def rows_to_arrays(rows, answer_starts):
    tokens = np.array([t for row in rows for t in row], np.int64)
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    return tokens, offsets, np.array(answer_starts, np.int32)


def queue_rows(**params):
    batch = procgen.queue(n=12, seed=5, **params)
    return batch, [batch[i].tolist() for i in range(len(batch))], batch.answer_start.tolist()


def target_row(rows, length=40):
    """A row past the first few whose final queue holds at least two items."""
    return next(i for i in range(3, len(rows)) if len(rows[i]) - length - 1 >= 2)


def first_enqueue_on_big_queue(ops):
    """(step, tokens in the queue before it) of the first enqueue made with at least two items."""
    queue = deque()
    for step, op in enumerate(ops):
        if op and len(queue) >= 2:
            return step, list(queue)
        if op:
            queue.append(op)
        else:
            queue.popleft()
    raise AssertionError("no enqueue with two items in the queue")


def corrupt(rows, answer_starts, vocab, kind, i):
    rows = [list(r) for r in rows]
    answer_starts = list(answer_starts)
    row, length = rows[i], answer_starts[i] - 1
    if kind == "answer_reversed":    # the final queue listed back to front (the stack's order)
        row[length + 1:] = row[length + 1:][::-1]
    elif kind == "answer_value":     # front item replaced by another token
        row[length + 1] = row[length + 1] % (vocab - 1) + 1
    elif kind == "answer_missing":   # the last item dropped
        row.pop()
    elif kind == "sep":
        row[length] = 1
    elif kind == "op_out_of_range":
        row[0] = vocab + 1
    elif kind == "answer_out_of_range":
        row[-1] = vocab + 1
    elif kind == "answer_start":
        answer_starts[i] += 1
    elif kind == "duplicate_enqueue":  # an enqueue of a token already in the queue (its oldest item)
        step, queue = first_enqueue_on_big_queue(row[:length])
        row[step] = queue[0]
    elif kind == "forced_enqueue":   # one item in the queue after step 0: step 1 must enqueue
        row[1] = 0
    elif kind == "forced_dequeue":   # the last operation must dequeue (queue > 1 before it)
        free = [t for t in range(1, vocab) if t not in row[length + 1:]]
        row[length - 1] = free[0]
    else:
        raise AssertionError(kind)
    rows[i] = row
    return rows, answer_starts


@pytest.mark.parametrize("kind, words", [
    ("answer_reversed", "replayed final queue"), ("answer_value", "replayed final queue"),
    ("answer_missing", "row length"), ("sep", "separator"), ("op_out_of_range", "out of range"),
    ("answer_out_of_range", "out of range"), ("answer_start", "answer_start"),
    ("duplicate_enqueue", "already in the queue"), ("forced_enqueue", "must enqueue"),
    ("forced_dequeue", "must dequeue"),
])
def test_validator_rejects_corruption(kind, words):
    batch, rows, starts = queue_rows(length=40, vocab_size=30)
    i = target_row(rows)
    assert VALIDATE(*rows_to_arrays(rows, starts), batch.params) is None
    found = VALIDATE(*rows_to_arrays(*corrupt(rows, starts, 30, kind, i)), batch.params)
    assert found is not None and found[0] == i and words in found[1], (kind, found)


def test_validator_rejects_a_stack_answer():
    """A valid STACK row (same ids) is rejected as a queue row once its final stack has two items."""
    stack = procgen.stack(n=50, length=40, vocab_size=30, seed=1)
    params = get_task("queue").resolve_params({"length": 40, "vocab_size": 30})
    found = VALIDATE(stack.tokens, stack.offsets, stack.answer_start, params)
    assert found is not None


def test_validator_rejects_dequeue_from_an_empty_queue():
    params = get_task("queue").resolve_params({"length": 3, "vocab_size": 5})
    found = VALIDATE(*rows_to_arrays([[0, 1, 2, 5, 1, 2]], [4]), params)
    assert found is not None and "empty" in found[1]


def test_validator_checks_probability_one_moves_and_eos():
    batch = procgen.queue(n=20, length=30, enqueue_prob_early=1.0, dequeue_prob_late=1.0, eos=True)
    params = batch.params
    assert VALIDATE(batch.tokens, batch.offsets, batch.answer_start, params) is None
    normal = procgen.queue(n=50, length=30, eos=True, seed=1)
    assert VALIDATE(normal.tokens, normal.offsets, normal.answer_start, params) is not None
    found = VALIDATE(batch.tokens, batch.offsets, batch.answer_start, {**params, "eos": False})
    assert found is not None and found[0] == 0
    tokens = batch.tokens.copy()
    tokens[batch.offsets[3 + 1] - 1] = 1  # EOS of row 3 replaced
    found = VALIDATE(tokens, batch.offsets, batch.answer_start, params)
    assert found is not None and found[0] == 3 and "end token" in found[1]


def test_validator_handles_a_queue_that_wraps_its_ring():
    # V=4 (3 tokens): the ring has 3 slots and wraps many times in 200 operations
    batch = procgen.queue(n=300, length=200, vocab_size=4, split_frac=1.0, enqueue_prob_early=0.9)
    assert batch.validate() is None
    for i in range(len(batch)):
        replay(batch[i].tolist(), 201, batch.params)


# --- determinism and golden rows -------------------------------------------------------------------

def test_determinism_and_start():
    params = {"min_length": 1, "max_length": 90, "vocab_size": 12}
    full = procgen.queue(n=20, seed=3, **params)
    part = procgen.queue(n=10, seed=3, start=5, **params)
    window = full[5:15]
    assert np.array_equal(part.tokens, window.tokens) and np.array_equal(part.offsets, window.offsets)
    assert np.array_equal(part.answer_start, window.answer_start)
    assert not np.array_equal(full.tokens[:40], procgen.queue(n=20, seed=4, **params).tokens[:40])
    assert not np.array_equal(full.tokens[:40], procgen.queue(n=20, seed=3, split="test", **params).tokens[:40])


GOLDEN = [
    [43, 69, 87, 10, 55, 0, 62, 59, 57, 53, 0, 71, 85, 0, 28, 41, 16, 64, 34, 95, 0, 24, 73, 0, 26, 69, 23, 45, 60, 51,
     55, 79, 4, 52, 91, 96, 0, 25, 74, 0, 70, 58, 66, 0, 0, 0, 0, 0, 0, 0, 0, 90, 0, 28, 0, 0, 0, 59, 57, 29, 83, 0, 5,
     0, 100, 23, 45, 60, 51, 55, 79, 4, 52, 91, 96, 25, 74, 70, 58, 66, 90, 28, 59, 57, 29, 83, 5],
    [59, 40, 0, 78, 0, 44, 14, 86, 55, 26, 74, 38, 91, 96, 84, 5, 0, 46, 98, 4, 0, 65, 54, 0, 0, 0, 29, 45, 79, 21, 0,
     80, 87, 1, 69, 56, 76, 0, 0, 78, 0, 49, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 75, 100,
     40, 75],
]


def test_golden_rows():
    batch = procgen.queue(n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == GOLDEN


# --- parameter errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("params, name", [
    ({"vocab_size": 2}, "vocab_size"),
    ({"length": 0}, "length"),
    ({"split_frac": 1.5}, "split_frac"),
    ({"enqueue_prob_early": 0.0}, "enqueue_prob_early"),
    ({"dequeue_prob_late": float("nan")}, "dequeue_prob_late"),
    ({"min_length": 9, "max_length": 3}, "min_length"),
    ({"push_prob_early": 0.5}, "push_prob_early"),
    ({"eos": 1}, "eos"),
])
def test_bad_params_raise_value_error_naming_the_param(params, name):
    with pytest.raises(ValueError, match=name):
        procgen.queue(n=3, **params)


# --- statistics --------------------------------------------------------------------------------------

def exact_moments(length=64, early=0.75, late=0.75, split_frac=2 / 3):
    """Exact E[final queue size] and E[share of dequeues] (dynamic programme over sizes)."""
    split = math.floor(split_frac * length)
    dist = np.zeros(length + 2)
    dist[0] = 1.0
    dequeues = 0.0
    for step in range(length):
        new = np.zeros_like(dist)
        for size, prob in enumerate(dist):
            if prob == 0:
                continue
            if size <= 1:
                p_enqueue = 1.0
            elif step == length - 1:
                p_enqueue = 0.0
            else:
                p_enqueue = early if step < split else 1 - late
            new[size + 1] += prob * p_enqueue
            if size:
                new[size - 1] += prob * (1 - p_enqueue)
            dequeues += prob * (1 - p_enqueue)
        dist = new
    return float((dist * np.arange(length + 2)).sum()), dequeues / length


def two_sample_close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert abs(a.mean() - b.mean()) < 5 * se, (a.mean(), b.mean(), se)


def test_statistics_match_the_exact_process_and_the_reference():
    size, dequeue_share = exact_moments()
    assert abs(size - 11.04) < 0.01 and abs(dequeue_share - 0.414) < 0.001  # the module docstring's numbers
    batch = procgen.queue(n=40_000, seed=11)
    sizes = batch.lengths - 65
    dequeues = (batch.tokens[batch.offsets[:-1, None] + np.arange(64)] == 0).mean(axis=1)
    assert abs(sizes.mean() - size) < 5 * sizes.std(ddof=1) / np.sqrt(len(sizes))
    assert abs(dequeues.mean() - dequeue_share) < 5 * dequeues.std(ddof=1) / np.sqrt(len(dequeues))
    fn, params = load_reference().REFERENCE["queue"]
    ref_rows = fn(3000, random.Random(12), **params)
    two_sample_close([len(r) - 65 for r in ref_rows], sizes)
    two_sample_close([r[:64].count(0) / 64 for r in ref_rows], dequeues)
    # which items survive: the front item's enqueue step (FIFO keeps the newest, in arrival order)
    ours = [batch[i].tolist() for i in range(3000)]
    two_sample_close([r[:64].index(r[65]) for r in ref_rows], [r[:64].index(r[65]) for r in ours])


def test_enqueued_tokens_are_uniform():
    batch = procgen.queue(n=20_000, seed=13, length=64, vocab_size=20)
    ops = batch.tokens[batch.offsets[:-1, None] + np.arange(64)].ravel()
    enqueued = ops[ops != 0]
    counts = np.bincount(enqueued, minlength=20)[1:]
    se = np.sqrt(len(enqueued) * (1 / 19) * (18 / 19))
    assert np.abs(counts - len(enqueued) / 19).max() < 5 * se
