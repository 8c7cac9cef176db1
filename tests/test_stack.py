"""Tests for STACK and its first-in-first-out twin QUEUE: every property they share, parametrised over
both (what only QUEUE does is in tests/test_queue.py)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from conftest import (BATCH_ARGS, OPERATIONS, PROPERTY, assert_close, check_defaults,
                      check_determinism_and_start, check_generated, check_large_vocabulary, draw_lengths,
                      load_reference, replay, rows_and_starts, rows_to_arrays, two_sample_close)
from hypothesis import given
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

TASKS = ["stack", "queue"]


def named(task, add_prob_early=None, remove_prob_late=None, **params):
    """``params`` with the add / remove probabilities under the task's names (push_prob_early, ...)."""
    ops = OPERATIONS[task]
    if add_prob_early is not None:
        params[f"{ops['add']}_prob_early"] = add_prob_early
    if remove_prob_late is not None:
        params[f"{ops['remove']}_prob_late"] = remove_prob_late
    return params


@st.composite
def operations_params(draw, task):
    params = named(
        task,
        vocab_size=draw(st.integers(3, 300)),
        add_prob_early=draw(st.sampled_from([0.01, 0.3, 0.75, 1.0])),
        remove_prob_late=draw(st.sampled_from([0.01, 0.5, 0.75, 1.0])),
        split_frac=draw(st.sampled_from([0.0, 0.25, 2 / 3, 1.0])),
        eos=draw(st.booleans()),
    )
    return {**params, **draw_lengths(draw, 1, 120)}


@pytest.mark.parametrize("task", TASKS)
@PROPERTY
@given(st.data(), *BATCH_ARGS)
def test_rows_are_valid_for_random_params(task, data, n, seed, start):
    batch = check_generated(task, data.draw(operations_params(task)), n, seed, start)
    resolved = batch.params
    for row, answer_start in rows_and_starts(batch):
        assert resolved["min_length"] <= answer_start - 1 <= resolved["max_length"]
        _, answer = replay(task, row, answer_start, resolved)
        assert len(answer) >= 1
        assert len(row) == answer_start + len(answer) + int(resolved["eos"])


@pytest.mark.parametrize("task", TASKS)
def test_defaults_layout_and_vocab(task):
    batch = check_defaults(task, 300, 65)
    assert batch.vocab[0] == OPERATIONS[task]["remove"] and len(batch.vocab) == 102
    for row, answer_start in rows_and_starts(batch):
        replay(task, row, answer_start, batch.params)


@pytest.mark.parametrize("task", TASKS)
def test_full_structure_forces_a_removal(task):
    # V=3: two tokens; a stack or queue holding both cannot add, so the step after it fills must remove
    batch = procgen.generate(task, n=200, **named(task, length=50, vocab_size=3, add_prob_early=1.0, split_frac=1.0))
    assert batch.validate() is None
    ops = batch.to_numpy()[:, :50]
    assert (ops[:, :2] != 0).all() and (ops[:, 2] == 0).all()
    assert ((ops[:, 2:49:2] == 0) & (ops[:, 3:50:2] != 0)).all()  # remove, add, remove, add ...
    if task == "queue":
        # FIFO at V=3: each enqueue re-enqueues the token just dequeued (the only free one), which is the
        # older of the two, so the tokens alternate
        assert (ops[:, 3] == ops[:, 0]).all() and (ops[:, 5] == ops[:, 1]).all()
        assert (ops[:, 7:50:2] == ops[:, 3:46:2]).all() and (ops[:, 3] != ops[:, 5]).all()
    else:  # LIFO: each push re-pushes the token just popped, the one pushed at step 1, every time
        assert (ops[:, 3:50:2] == ops[:, 1:2]).all()


@pytest.mark.parametrize("task", TASKS)
def test_large_vocabulary_uses_int32(task):
    check_large_vocabulary(task, 100, 30)


# --- validator rejects corrupted rows -------------------------------------------------------------

def target_row(rows, length=40):
    """A row past the first few whose final stack / queue holds at least two items."""
    return next(i for i in range(3, len(rows)) if len(rows[i]) - length - 1 >= 2)


def first_add_on_two_items(task, ops):
    """(step, items held before it, oldest first) of the first add made with at least two items held."""
    items = []
    for step, op in enumerate(ops):
        if op and len(items) >= 2:
            return step, list(items)
        if op:
            items.append(op)
        else:
            items.pop(-1 if task == "stack" else 0)
    raise AssertionError("no add with two items held")


def corrupt(task, rows, answer_starts, vocab, kind, i):
    rows = [list(r) for r in rows]
    answer_starts = list(answer_starts)
    row, length = rows[i], answer_starts[i] - 1
    if kind == "answer_swap":          # top and bottom of the final stack swapped
        if len(row[length + 1:]) < 2:
            raise AssertionError("need a final stack of at least two items")
        row[length + 1], row[-1] = row[-1], row[length + 1]
    elif kind == "answer_reversed":    # the final queue listed back to front (the stack's order)
        row[length + 1:] = row[length + 1:][::-1]
    elif kind == "answer_value":       # first answer item replaced by another token
        row[length + 1] = row[length + 1] % (vocab - 1) + 1
    elif kind == "answer_missing":     # the last item dropped
        row.pop()
    elif kind == "sep":
        row[length] = 1
    elif kind == "op_out_of_range":
        row[0] = vocab + 1
    elif kind == "answer_out_of_range":
        row[-1] = vocab + 1
    elif kind == "answer_start":
        answer_starts[i] += 1
    elif kind == "duplicate_add":      # an add of a token already held (the oldest item)
        step, items = first_add_on_two_items(task, row[:length])
        row[step] = items[0]
    elif kind == "forced_add":         # one item held after step 0: step 1 must add
        row[1] = 0
    elif kind == "forced_remove":      # the last operation must remove (more than one item before it)
        free = [t for t in range(1, vocab) if t not in row[length + 1:]]
        row[length - 1] = free[0]
    else:
        raise AssertionError(kind)
    rows[i] = row
    return rows, answer_starts


REASON_WORDS = {  # corruption -> words of the validator's reason, with the task's names filled in
    "answer_value": "replayed final {structure}", "answer_missing": "row length", "sep": "separator",
    "op_out_of_range": "out of range", "answer_start": "answer_start", "duplicate_add": "already {held}",
    "forced_add": "must {add}", "forced_remove": "must {remove}",
}
CORRUPTIONS = [(task, kind, words.format(**OPERATIONS[task])) for task in TASKS for kind, words in REASON_WORDS.items()]
CORRUPTIONS += [("stack", "answer_swap", "replayed final stack"), ("queue", "answer_reversed", "replayed final queue"),
                ("queue", "answer_out_of_range", "out of range")]


@pytest.mark.parametrize("task, kind, words", CORRUPTIONS)
def test_validator_rejects_corruption(task, kind, words):
    batch = procgen.generate(task, n=12, seed=5, length=40, vocab_size=30)
    rows, starts = [batch[i].tolist() for i in range(len(batch))], batch.answer_start.tolist()
    i = target_row(rows)
    validator = get_task(task).validator
    assert validator(*rows_to_arrays(rows, starts), batch.params) is None
    found = validator(*rows_to_arrays(*corrupt(task, rows, starts, 30, kind, i)), batch.params)
    assert found is not None and found[0] == i and words in found[1], (kind, found)


@pytest.mark.parametrize("task, row", [("stack", [0, 1, 2, 5, 2, 1]), ("queue", [0, 1, 2, 5, 1, 2])])
def test_validator_rejects_a_removal_from_nothing(task, row):
    params = get_task(task).resolve_params({"length": 3, "vocab_size": 5})
    found = get_task(task).validator(*rows_to_arrays([row], [4]), params)
    assert found is not None and "empty" in found[1]


@pytest.mark.parametrize("task", TASKS)
def test_validator_checks_probability_one_moves_and_eos(task):
    validator = get_task(task).validator
    batch = procgen.generate(task, n=20, **named(task, length=30, add_prob_early=1.0, remove_prob_late=1.0, eos=True))
    params = batch.params
    assert validator(batch.tokens, batch.offsets, batch.answer_start, params) is None
    # a valid row of the default process breaks "always add early / always remove late"
    normal = procgen.generate(task, n=50, length=30, eos=True, seed=1)
    assert validator(normal.tokens, normal.offsets, normal.answer_start, params) is not None
    # without the end token the rows are too long for eos=False
    found = validator(batch.tokens, batch.offsets, batch.answer_start, {**params, "eos": False})
    assert found is not None and found[0] == 0
    tokens = batch.tokens.copy()
    tokens[batch.offsets[3 + 1] - 1] = 1  # EOS of row 3 replaced
    found = validator(tokens, batch.offsets, batch.answer_start, params)
    assert found is not None and found[0] == 3 and "end token" in found[1]


# --- determinism and golden rows -------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_determinism_and_start(task):
    check_determinism_and_start(task, {"min_length": 1, "max_length": 90, "vocab_size": 12}, 3, "test", 40)


GOLDEN_STACK = [
    [81, 8, 59, 47, 0, 28, 1, 65, 0, 50, 12, 0, 42, 2, 43, 0, 24, 0, 63, 64, 33, 41, 91, 0, 79, 35, 0, 0, 53, 0, 39,
     92, 38, 23, 46, 0, 0, 21, 10, 22, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 78, 38, 0, 0, 0, 99, 75, 29, 0, 0, 0, 0, 0,
     100, 2, 42, 50, 1, 28, 59, 8, 81],
    [8, 3, 11, 0, 0, 35, 0, 53, 23, 0, 83, 0, 58, 0, 88, 16, 24, 41, 34, 92, 73, 0, 96, 93, 91, 43, 94, 39, 20, 50,
     79, 69, 15, 74, 0, 0, 5, 59, 56, 82, 0, 0, 76, 77, 0, 0, 0, 0, 0, 0, 0, 42, 0, 28, 0, 0, 0, 31, 55, 0, 0, 0, 0,
     0, 100, 93, 96, 92, 34, 41, 24, 16, 88, 53, 8],
]
GOLDEN_QUEUE = [
    [43, 69, 87, 10, 55, 0, 62, 59, 57, 53, 0, 71, 85, 0, 28, 41, 16, 64, 34, 95, 0, 24, 73, 0, 26, 69, 23, 45, 60, 51,
     55, 79, 4, 52, 91, 96, 0, 25, 74, 0, 70, 58, 66, 0, 0, 0, 0, 0, 0, 0, 0, 90, 0, 28, 0, 0, 0, 59, 57, 29, 83, 0, 5,
     0, 100, 23, 45, 60, 51, 55, 79, 4, 52, 91, 96, 25, 74, 70, 58, 66, 90, 28, 59, 57, 29, 83, 5],
    [59, 40, 0, 78, 0, 44, 14, 86, 55, 26, 74, 38, 91, 96, 84, 5, 0, 46, 98, 4, 0, 65, 54, 0, 0, 0, 29, 45, 79, 21, 0,
     80, 87, 1, 69, 56, 76, 0, 0, 78, 0, 49, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 75, 100,
     40, 75],
]


@pytest.mark.parametrize("task, golden", [("stack", GOLDEN_STACK), ("queue", GOLDEN_QUEUE)])
def test_golden_rows(task, golden):
    batch = procgen.generate(task, n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == golden


# --- parameter errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("task, params, name", [
    ("stack", {"vocab_size": 2}, "vocab_size"),
    ("stack", {"length": 0}, "length"),
    ("stack", {"split_frac": 1.5}, "split_frac"),
    ("stack", {"split_frac": -0.1}, "split_frac"),
    ("stack", {"push_prob_early": 0.0}, "push_prob_early"),
    ("stack", {"push_prob_early": 1.5}, "push_prob_early"),
    ("stack", {"pop_prob_late": -0.2}, "pop_prob_late"),
    ("stack", {"pop_prob_late": float("nan")}, "pop_prob_late"),
    ("stack", {"min_length": 9, "max_length": 3}, "min_length"),
    ("stack", {"eos": 1}, "eos"),
    ("stack", {"r_present": True}, "r_present"),
    ("queue", {"vocab_size": 2}, "vocab_size"),
    ("queue", {"length": 0}, "length"),
    ("queue", {"split_frac": 1.5}, "split_frac"),
    ("queue", {"enqueue_prob_early": 0.0}, "enqueue_prob_early"),
    ("queue", {"dequeue_prob_late": float("nan")}, "dequeue_prob_late"),
    ("queue", {"min_length": 9, "max_length": 3}, "min_length"),
    ("queue", {"push_prob_early": 0.5}, "push_prob_early"),
    ("queue", {"eos": 1}, "eos"),
])
def test_bad_params_raise_value_error_naming_the_param(task, params, name):
    with pytest.raises(ValueError, match=name):
        procgen.generate(task, n=3, **params)


# --- statistics --------------------------------------------------------------------------------------

def exact_moments(length=64, add_early=0.75, remove_late=0.75, split_frac=2 / 3):
    """Exact E[final size] and E[share of removals] of the process both tasks share (dynamic programme
    over sizes)."""
    split = math.floor(split_frac * length)
    dist = np.zeros(length + 2)
    dist[0] = 1.0
    removals = 0.0
    for step in range(length):
        new = np.zeros_like(dist)
        for size, prob in enumerate(dist):
            if prob == 0:
                continue
            if size <= 1:
                p_add = 1.0
            elif step == length - 1:
                p_add = 0.0
            else:
                p_add = add_early if step < split else 1 - remove_late
            new[size + 1] += prob * p_add
            if size:
                new[size - 1] += prob * (1 - p_add)
            removals += prob * (1 - p_add)
        dist = new
    return float((dist * np.arange(length + 2)).sum()), removals / length


def operations(batch, length):
    """The first ``length`` tokens (the operations) of every row, as a 2-D array."""
    return batch.tokens[batch.offsets[:-1, None] + np.arange(length)]


REFERENCE = {"stack": "reference_sequence", "queue": "reference_frontier_a"}  # benchmarks/<module>.py


@pytest.mark.parametrize("task", TASKS)
def test_statistics_match_the_exact_process_and_the_reference(task):
    size, removal_share = exact_moments()
    # the numbers both module docstrings give (one process drives both tasks' sizes)
    assert abs(size - 11.04) < 0.01 and abs(removal_share - 0.414) < 0.001
    batch = procgen.generate(task, n=40_000, seed=11)
    sizes = batch.lengths - 65
    removals = (operations(batch, 64) == 0).mean(axis=1)
    assert_close(sizes, size)
    assert_close(removals, removal_share)
    fn, params = load_reference(REFERENCE[task]).REFERENCE[task]
    ref_rows = fn(3000, random.Random(12), **params)
    two_sample_close([len(r) - 65 for r in ref_rows], sizes)
    two_sample_close([r[:64].count(0) / 64 for r in ref_rows], removals)
    # which items survive: the step that first added the first answer item (stack top, queue front)
    ours = [batch[i].tolist() for i in range(3000)]
    two_sample_close([r[:64].index(r[65]) for r in ref_rows], [r[:64].index(r[65]) for r in ours])


@pytest.mark.parametrize("task", TASKS)
def test_added_tokens_are_uniform(task):
    batch = procgen.generate(task, n=20_000, seed=13, length=64, vocab_size=20)
    added = operations(batch, 64).ravel()
    added = added[added != 0]
    counts = np.bincount(added, minlength=20)[1:]
    se = np.sqrt(len(added) * (1 / 19) * (18 / 19))
    assert np.abs(counts - len(added) / 19).max() < 5 * se
