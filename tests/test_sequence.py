"""Tests for the sequence tasks: identity, reverse, sort, set, union, delete."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import (BATCH_ARGS, PROPERTY, assert_close, check_defaults, check_determinism_and_start,
                      check_generated, check_large_vocabulary, check_reference_rows_pass_validator,
                      draw_lengths, length_bounds, load_reference, rows_and_starts, strip_eos, two_sample_close)
from hypothesis import given
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

TASKS = ["identity", "reverse", "sort", "set", "union", "delete"]
# answer_start = L + OFFSET[task]
OFFSET = {"identity": 1, "reverse": 1, "sort": 1, "set": 1, "union": 2, "delete": 3}


# --- an independent, plain-Python reading of every row --------------------------------------------

def parse_row(task, row, answer_start, vocab, eos):
    """Split a row into (inputs, r, answer) using the documented layout; assert the separators."""
    row = strip_eos(row, vocab, eos)
    if task == "union":
        length = answer_start - 2
        len_a = (length + 1) // 2
        assert row[len_a] == vocab and row[length + 1] == vocab
        return row[:len_a] + row[len_a + 1:length + 1], None, row[length + 2:]
    if task == "delete":
        length = answer_start - 3
        assert row[length] == vocab and row[length + 2] == vocab
        return row[:length], row[length + 1], row[length + 3:]
    length = answer_start - 1
    assert row[length] == vocab
    return row[:length], None, row[length + 1:]


def expected_answer(task, x, r):
    if task == "identity":
        return list(x)
    if task == "reverse":
        return x[::-1]
    if task == "sort":
        return sorted(x)
    if task in ("set", "union"):
        return list(dict.fromkeys(x))
    y = list(x)
    if r in y:
        y.remove(r)
    return y


def check_rows(task, batch, params):
    """Every row: layout, ids, lengths and the answer, checked in plain Python."""
    vocab, eos = params["vocab_size"], params.get("eos", False)
    lo, hi = length_bounds(params)
    for row, answer_start in rows_and_starts(batch):
        length = answer_start - OFFSET[task]
        assert lo <= length <= hi
        x, r, answer = parse_row(task, row, answer_start, vocab, eos)
        assert len(x) == length
        assert all(1 <= t < vocab for t in x)
        if task == "delete":
            assert 1 <= r < vocab
            if params.get("r_present"):
                assert r in x
        assert answer == expected_answer(task, x, r)
        assert len(row) == answer_start + len(answer) + int(eos)


# --- properties over random valid parameters ------------------------------------------------------

@st.composite
def sequence_params(draw):
    task = draw(st.sampled_from(TASKS))
    low = 2 if task == "union" else 1
    params = {"vocab_size": draw(st.integers(2, 300)), "eos": draw(st.booleans()), **draw_lengths(draw, low, 80)}
    if task == "delete":
        params["r_present"] = draw(st.booleans())
    return task, params


@PROPERTY
@given(sequence_params(), *BATCH_ARGS)
def test_rows_are_valid_for_random_params(task_params, n, seed, start):
    task, params = task_params
    check_rows(task, check_generated(task, params, n, seed, start), params)


@pytest.mark.parametrize("task", TASKS)
def test_large_vocabulary_uses_int32_and_comparison_sort(task):
    check_rows(task, check_large_vocabulary(task, 200, 20), {"vocab_size": 70_000, "length": 20})


@pytest.mark.parametrize("task", TASKS)
def test_defaults_layout(task):
    batch = check_defaults(task, 500, 64 + OFFSET[task])
    assert len(batch.vocab) == 102
    check_rows(task, batch, {"vocab_size": 100, "length": 64})


def test_eos_is_a_new_id():
    batch = procgen.sort(n=10, eos=True)
    assert batch.vocab[102] == "<eos>" and len(batch.vocab) == 103
    assert all(row[-1] == 102 and (row[:-1] != 102).all() for row in batch)


def test_variable_lengths_cover_the_range():
    batch = procgen.set(n=4000, min_length=3, max_length=9, vocab_size=20)
    lengths = batch.answer_start - 1
    assert set(lengths.tolist()) == set(range(3, 10))


def test_union_odd_length_gives_a_the_extra_token():
    batch = procgen.union(n=5, length=7, vocab_size=50)
    for row in batch:
        assert row[4] == 50 and row[8] == 50  # a = 4 tokens, SEP, b = 3 tokens, SEP
    assert (batch.answer_start == 9).all()


def test_delete_r_present_always_deletes():
    batch = procgen.delete(n=2000, r_present=True)
    assert (batch.lengths == 2 * 64 + 2).all()


# --- validators reject corrupted rows ----------------------------------------------------------

def corrupt(batch, row, kind):
    """Return (tokens, offsets, answer_start) of ``batch`` with row ``row`` damaged as ``kind``."""
    tokens = batch.tokens.astype(np.int64)
    offsets = batch.offsets.copy()
    answer_start = batch.answer_start.copy()
    vocab = batch.params["vocab_size"]
    first, end = int(offsets[row]), int(offsets[row + 1])
    a = first + int(answer_start[row])
    answer_end = end - int(batch.params["eos"])
    if kind == "answer_value":       # first answer token replaced by another content id
        tokens[a] = tokens[a] % (vocab - 1) + 1
    elif kind == "answer_swap":      # two different answer tokens swapped
        pairs = [(i, j) for i in range(a, answer_end) for j in range(i + 1, answer_end) if tokens[i] != tokens[j]]
        i, j = pairs[0]
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif kind == "sep":              # the (first) separator replaced by a content id
        sep = first + list(tokens[first:end]).index(vocab)
        tokens[sep] = 1
    elif kind == "input_out_of_range":
        tokens[first] = vocab + 1    # PAD inside the input
    elif kind == "zero_id":
        tokens[first] = 0
    elif kind == "truncate":         # last token of the row dropped
        tokens = np.delete(tokens, end - 1)
        offsets[row + 1:] -= 1
    elif kind == "answer_start":
        answer_start[row] += 1
    elif kind == "eos":              # the end token replaced by a content id
        tokens[end - 1] = 1
    else:
        raise AssertionError(kind)
    return tokens, offsets, answer_start


KINDS = ["answer_value", "answer_swap", "sep", "input_out_of_range", "zero_id", "truncate", "answer_start"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("kind", KINDS)
def test_validator_rejects_corruption(task, kind):
    batch = procgen.generate(task, n=20, length=12, vocab_size=20, seed=3)
    assert batch.validate() is None
    validator = get_task(task).validator
    assert validator(batch.tokens, batch.offsets, batch.answer_start, batch.params) is None
    found = validator(*corrupt(batch, 7, kind), batch.params)
    assert found is not None and found[0] == 7, (kind, found)
    assert isinstance(found[1], str) and found[1]


@pytest.mark.parametrize("task", TASKS)
def test_validator_rejects_missing_eos(task):
    batch = procgen.generate(task, n=10, length=12, vocab_size=20, eos=True)
    validator = get_task(task).validator
    assert validator(batch.tokens, batch.offsets, batch.answer_start, batch.params) is None
    found = validator(*corrupt(batch, 4, "eos"), batch.params)
    assert found is not None and found[0] == 4 and "end token" in found[1]
    # rows with an end token are invalid for eos=False
    found = validator(batch.tokens, batch.offsets, batch.answer_start, {**batch.params, "eos": False})
    assert found is not None and found[0] == 0


def test_validator_rejects_rows_outside_the_length_range():
    batch = procgen.identity(n=5, length=10)
    found = get_task("identity").validator(batch.tokens, batch.offsets, batch.answer_start,
                                           {**batch.params, "min_length": 11, "max_length": 12})
    assert found == (0, found[1]) and "min_length" in found[1]


def test_sort_validator_checks_the_multiset_not_just_the_order():
    batch = procgen.sort(n=3, length=10, vocab_size=50)
    tokens = batch.tokens.copy()
    first = int(batch.offsets[1]) + 11
    tokens[first:first + 10] = np.arange(1, 11)  # sorted, but not the input's tokens
    assert get_task("sort").validator(tokens, batch.offsets, batch.answer_start, batch.params)[0] == 1


def test_set_validator_rejects_a_duplicate_and_a_missing_token():
    batch = procgen.set(n=3, length=10, vocab_size=5)
    validator = get_task("set").validator
    rows = [batch[i].tolist() for i in range(3)]
    # duplicate the first answer token in place of the last one (same length, covers less)
    row = list(rows[2])
    row[-1] = row[11]
    tokens = np.array(rows[0] + rows[1] + row, np.uint8)
    found = validator(tokens, batch.offsets, batch.answer_start, batch.params)
    assert found is not None and found[0] == 2
    # drop the last answer token: distinct and ordered, but incomplete
    tokens = np.array(rows[0] + rows[1] + rows[2][:-1], np.uint8)
    offsets = batch.offsets.copy()
    offsets[-1] -= 1
    found = validator(tokens, offsets, batch.answer_start, batch.params)
    assert found is not None and found[0] == 2 and "misses" in found[1]


def test_delete_validator_checks_first_occurrence_and_r_present():
    vocab = 10
    validator = get_task("delete").validator
    params = get_task("delete").resolve_params({"length": 4, "vocab_size": vocab})
    x = [3, 5, 3, 7]
    good = x + [vocab, 3, vocab] + [5, 3, 7]
    wrong_occurrence = x + [vocab, 3, vocab] + [3, 5, 7]  # removed the second 3
    not_removed = x + [vocab, 3, vocab] + x
    absent = x + [vocab, 9, vocab] + x
    rows = [good, wrong_occurrence, not_removed, absent]
    tokens = np.array(sum(rows, []), np.uint8)
    offsets = np.cumsum([0] + [len(r) for r in rows])
    answer_start = np.full(4, 7, np.int32)
    assert validator(tokens[:10], offsets[:2], answer_start[:1], params) is None
    found = validator(tokens, offsets, answer_start, params)
    assert found[0] == 1
    found = validator(tokens[offsets[2]:], offsets[2:] - offsets[2], answer_start[2:], params)
    assert found[0] == 0
    assert validator(tokens[offsets[3]:], offsets[3:] - offsets[3], answer_start[3:], params) is None
    found = validator(tokens[offsets[3]:], offsets[3:] - offsets[3], answer_start[3:], {**params, "r_present": True})
    assert found == (0, found[1]) and "r_present" in found[1]


# --- the plain-Python reference agrees with our validators -----------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_reference_rows_pass_our_validators(task):
    check_reference_rows_pass_validator("reference_sequence", task, OFFSET[task])


# --- determinism and the seeding contract -------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_determinism_and_start(task):
    check_determinism_and_start(task, {"min_length": 2, "max_length": 30, "vocab_size": 40}, 7, "validation", 50)


GOLDEN = {
    "identity": [
        [97, 80, 12, 45, 67, 32, 69, 55, 83, 94, 52, 27, 42, 54, 93, 6, 69, 16, 86, 73, 31, 94, 92, 43, 31, 84, 23,
         61, 80, 40, 66, 17, 84, 8, 77, 91, 97, 33, 46, 54, 48, 34, 77, 46, 77, 20, 41, 91, 41, 98, 26, 50, 14, 50,
         40, 44, 3, 4, 52, 54, 49, 54, 13, 85, 100, 97, 80, 12, 45, 67, 32, 69, 55, 83, 94, 52, 27, 42, 54, 93, 6,
         69, 16, 86, 73, 31, 94, 92, 43, 31, 84, 23, 61, 80, 40, 66, 17, 84, 8, 77, 91, 97, 33, 46, 54, 48, 34, 77,
         46, 77, 20, 41, 91, 41, 98, 26, 50, 14, 50, 40, 44, 3, 4, 52, 54, 49, 54, 13, 85],
        [21, 44, 84, 52, 87, 62, 4, 16, 81, 18, 32, 10, 15, 67, 47, 49, 59, 74, 51, 29, 83, 92, 51, 30, 48, 49, 39,
         79, 29, 60, 98, 92, 73, 50, 66, 93, 91, 24, 87, 95, 62, 54, 97, 37, 40, 44, 79, 6, 88, 47, 67, 50, 72, 59,
         86, 79, 8, 13, 95, 60, 94, 54, 88, 61, 100, 21, 44, 84, 52, 87, 62, 4, 16, 81, 18, 32, 10, 15, 67, 47, 49,
         59, 74, 51, 29, 83, 92, 51, 30, 48, 49, 39, 79, 29, 60, 98, 92, 73, 50, 66, 93, 91, 24, 87, 95, 62, 54, 97,
         37, 40, 44, 79, 6, 88, 47, 67, 50, 72, 59, 86, 79, 8, 13, 95, 60, 94, 54, 88, 61],
    ],
    "reverse": [
        [45, 33, 54, 93, 38, 42, 96, 12, 75, 8, 53, 25, 80, 53, 17, 33, 51, 44, 92, 94, 58, 23, 94, 87, 38, 8, 16,
         50, 13, 80, 73, 19, 16, 21, 38, 38, 61, 77, 15, 16, 21, 87, 63, 44, 93, 30, 42, 63, 28, 77, 47, 6, 3, 41,
         38, 24, 89, 10, 99, 41, 23, 1, 73, 50, 100, 50, 73, 1, 23, 41, 99, 10, 89, 24, 38, 41, 3, 6, 47, 77, 28,
         63, 42, 30, 93, 44, 63, 87, 21, 16, 15, 77, 61, 38, 38, 21, 16, 19, 73, 80, 13, 50, 16, 8, 38, 87, 94, 23,
         58, 94, 92, 44, 51, 33, 17, 53, 80, 25, 53, 8, 75, 12, 96, 42, 38, 93, 54, 33, 45],
        [5, 99, 33, 23, 91, 37, 92, 23, 37, 56, 3, 61, 60, 81, 55, 29, 98, 79, 57, 94, 85, 50, 93, 87, 13, 35, 70,
         80, 69, 29, 37, 54, 51, 64, 45, 53, 62, 49, 27, 61, 2, 14, 21, 41, 90, 95, 23, 22, 88, 56, 43, 99, 15, 51,
         79, 26, 56, 60, 11, 88, 29, 10, 81, 95, 100, 95, 81, 10, 29, 88, 11, 60, 56, 26, 79, 51, 15, 99, 43, 56,
         88, 22, 23, 95, 90, 41, 21, 14, 2, 61, 27, 49, 62, 53, 45, 64, 51, 54, 37, 29, 69, 80, 70, 35, 13, 87, 93,
         50, 85, 94, 57, 79, 98, 29, 55, 81, 60, 61, 3, 56, 37, 23, 92, 37, 91, 23, 33, 99, 5],
    ],
    "sort": [
        [84, 30, 33, 85, 3, 85, 78, 96, 27, 2, 31, 90, 7, 42, 46, 91, 15, 26, 15, 44, 20, 19, 56, 31, 9, 97, 18, 61,
         84, 81, 88, 25, 46, 70, 39, 13, 38, 69, 82, 84, 17, 49, 40, 43, 26, 16, 87, 14, 27, 95, 62, 21, 31, 37, 20,
         51, 8, 99, 28, 10, 90, 78, 85, 12, 100, 2, 3, 7, 8, 9, 10, 12, 13, 14, 15, 15, 16, 17, 18, 19, 20, 20, 21,
         25, 26, 26, 27, 27, 28, 30, 31, 31, 31, 33, 37, 38, 39, 40, 42, 43, 44, 46, 46, 49, 51, 56, 61, 62, 69, 70,
         78, 78, 81, 82, 84, 84, 84, 85, 85, 85, 87, 88, 90, 90, 91, 95, 96, 97, 99],
        [91, 34, 56, 62, 46, 30, 59, 54, 22, 33, 13, 97, 54, 28, 25, 16, 50, 74, 25, 15, 1, 33, 56, 72, 78, 67, 4,
         74, 28, 85, 58, 83, 34, 3, 47, 47, 74, 38, 91, 81, 20, 16, 13, 99, 91, 29, 19, 1, 12, 66, 31, 24, 19, 43,
         79, 32, 71, 24, 57, 87, 90, 47, 1, 61, 100, 1, 1, 1, 3, 4, 12, 13, 13, 15, 16, 16, 19, 19, 20, 22, 24, 24,
         25, 25, 28, 28, 29, 30, 31, 32, 33, 33, 34, 34, 38, 43, 46, 47, 47, 47, 50, 54, 54, 56, 56, 57, 58, 59, 61,
         62, 66, 67, 71, 72, 74, 74, 74, 78, 79, 81, 83, 85, 87, 90, 91, 91, 91, 97, 99],
    ],
    "set": [
        [15, 21, 20, 95, 9, 99, 12, 71, 31, 75, 16, 59, 44, 92, 33, 81, 4, 82, 25, 1, 16, 9, 70, 50, 52, 88, 30, 78,
         82, 16, 21, 32, 78, 3, 17, 40, 24, 15, 55, 90, 5, 51, 66, 16, 90, 65, 74, 62, 36, 2, 80, 97, 50, 37, 82,
         36, 91, 52, 57, 39, 50, 51, 22, 36, 100, 15, 21, 20, 95, 9, 99, 12, 71, 31, 75, 16, 59, 44, 92, 33, 81, 4,
         82, 25, 1, 70, 50, 52, 88, 30, 78, 32, 3, 17, 40, 24, 55, 90, 5, 51, 66, 65, 74, 62, 36, 2, 80, 97, 37, 91,
         57, 39, 22],
        [67, 80, 68, 7, 60, 90, 97, 70, 92, 60, 51, 18, 9, 27, 92, 4, 73, 11, 64, 63, 56, 69, 4, 60, 40, 52, 46, 5,
         80, 25, 6, 91, 16, 12, 55, 91, 4, 33, 85, 57, 11, 72, 54, 62, 78, 27, 38, 53, 77, 17, 7, 39, 63, 41, 60,
         33, 25, 94, 71, 50, 71, 41, 62, 5, 100, 67, 80, 68, 7, 60, 90, 97, 70, 92, 51, 18, 9, 27, 4, 73, 11, 64,
         63, 56, 69, 40, 52, 46, 5, 25, 6, 91, 16, 12, 55, 33, 85, 57, 72, 54, 62, 78, 38, 53, 77, 17, 39, 41, 94,
         71, 50],
    ],
    "union": [
        [39, 54, 24, 25, 84, 98, 89, 86, 26, 3, 97, 57, 10, 27, 62, 5, 24, 90, 30, 71, 6, 81, 66, 18, 74, 51, 89, 8,
         81, 75, 22, 24, 100, 29, 82, 75, 9, 89, 64, 86, 62, 76, 34, 7, 33, 87, 60, 62, 36, 78, 31, 29, 55, 69, 14,
         54, 3, 66, 51, 57, 99, 50, 65, 83, 48, 100, 39, 54, 24, 25, 84, 98, 89, 86, 26, 3, 97, 57, 10, 27, 62, 5,
         90, 30, 71, 6, 81, 66, 18, 74, 51, 8, 75, 22, 29, 82, 9, 64, 76, 34, 7, 33, 87, 60, 36, 78, 31, 55, 69, 14,
         99, 50, 65, 83, 48],
        [83, 14, 54, 93, 42, 27, 8, 3, 4, 3, 11, 49, 56, 90, 66, 60, 92, 85, 79, 43, 3, 51, 59, 44, 18, 19, 36, 45,
         67, 79, 6, 78, 100, 68, 99, 99, 23, 78, 57, 38, 22, 67, 16, 95, 97, 99, 28, 13, 50, 96, 35, 43, 11, 87, 15,
         87, 64, 35, 95, 31, 75, 81, 11, 12, 66, 100, 83, 14, 54, 93, 42, 27, 8, 3, 4, 11, 49, 56, 90, 66, 60, 92,
         85, 79, 43, 51, 59, 44, 18, 19, 36, 45, 67, 6, 78, 68, 99, 23, 57, 38, 22, 16, 95, 97, 28, 13, 50, 96, 35,
         87, 15, 64, 31, 75, 81, 12],
    ],
    "delete": [
        [59, 72, 10, 11, 78, 15, 25, 39, 52, 98, 77, 40, 81, 24, 10, 69, 14, 34, 92, 13, 22, 64, 6, 27, 39, 17, 46,
         56, 57, 47, 28, 36, 87, 60, 23, 7, 34, 96, 99, 7, 78, 59, 50, 19, 86, 12, 78, 70, 7, 42, 70, 82, 7, 76, 47,
         17, 21, 53, 2, 57, 53, 85, 83, 11, 100, 7, 100, 59, 72, 10, 11, 78, 15, 25, 39, 52, 98, 77, 40, 81, 24, 10,
         69, 14, 34, 92, 13, 22, 64, 6, 27, 39, 17, 46, 56, 57, 47, 28, 36, 87, 60, 23, 34, 96, 99, 7, 78, 59, 50,
         19, 86, 12, 78, 70, 7, 42, 70, 82, 7, 76, 47, 17, 21, 53, 2, 57, 53, 85, 83, 11],
        [72, 70, 47, 84, 8, 41, 80, 38, 33, 90, 35, 60, 53, 33, 14, 50, 90, 91, 78, 47, 97, 97, 3, 83, 80, 74, 83,
         43, 29, 99, 74, 92, 7, 67, 63, 12, 35, 56, 28, 7, 51, 15, 81, 14, 22, 68, 50, 81, 49, 68, 78, 88, 87, 33,
         20, 11, 17, 59, 8, 54, 23, 59, 86, 44, 100, 45, 100, 72, 70, 47, 84, 8, 41, 80, 38, 33, 90, 35, 60, 53, 33,
         14, 50, 90, 91, 78, 47, 97, 97, 3, 83, 80, 74, 83, 43, 29, 99, 74, 92, 7, 67, 63, 12, 35, 56, 28, 7, 51,
         15, 81, 14, 22, 68, 50, 81, 49, 68, 78, 88, 87, 33, 20, 11, 17, 59, 8, 54, 23, 59, 86, 44],
    ],
}


@pytest.mark.parametrize("task", TASKS)
def test_golden_rows(task):
    batch = procgen.generate(task, n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == GOLDEN[task]


# --- parameter errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("task, params, name", [
    ("sort", {"vocab_size": 1}, "vocab_size"),
    ("set", {"vocab_size": 2 ** 20 + 1}, "vocab_size"),
    ("identity", {"length": 0}, "length"),
    ("union", {"length": 1}, "length"),
    ("reverse", {"min_length": 10, "max_length": 5}, "min_length"),
    ("delete", {"max_length": 0}, "max_length"),
    ("sort", {"eos": "yes"}, "eos"),
    ("delete", {"r_present": 1}, "r_present"),
    ("set", {"r_present": True}, "r_present"),
    ("identity", {"vocab_size": 2.5}, "vocab_size"),
])
def test_bad_params_raise_value_error_naming_the_param(task, params, name):
    with pytest.raises(ValueError, match=name):
        procgen.generate(task, n=3, **params)


# --- statistics (tolerance: 5 standard errors estimated from the sample) -----------------------------

def test_set_and_union_distinct_counts():
    expected = 99 * (1 - (98 / 99) ** 64)  # 47.30
    assert abs(expected - 47.30) < 0.01
    for task, offset in (("set", 65), ("union", 66)):
        batch = procgen.generate(task, n=20_000, seed=1)
        assert_close(batch.lengths - offset, expected)


def test_delete_removes_nothing_in_about_52_percent_of_rows():
    expected = (98 / 99) ** 64  # r (uniform in 1..99) is absent from x
    assert abs(expected - 0.5227) < 1e-3
    batch = procgen.delete(n=20_000, seed=2)
    assert_close(batch.lengths == 2 * 64 + 3, expected)


def test_tokens_are_uniform():
    batch = procgen.identity(n=20_000, seed=3)
    x = batch.to_numpy()[:, :64].ravel()
    counts = np.bincount(x, minlength=100)[1:]
    expected = len(x) / 99
    se = np.sqrt(len(x) * (1 / 99) * (98 / 99))
    assert counts.min() > 0 and np.abs(counts - expected).max() < 5 * se
    assert np.bincount(x, minlength=100)[0] == 0


def test_delete_r_present_picks_a_uniform_position():
    batch = procgen.delete(n=20_000, seed=4, length=8, vocab_size=4, r_present=True)
    rows = batch.to_numpy()
    x, r = rows[:, :8], rows[:, 9]
    occurrences = (x == r[:, None]).sum(axis=1)
    assert (occurrences >= 1).all()
    # r taken at a uniform position: E[count of r in x] = E[sum_t c_t^2] / 8 with c ~ Multinomial(8, 1/3)
    # = 3 * (8 * 1/3 * 2/3 + (8/3) ** 2) / 8 = 10/3 (a uniform pick among distinct tokens gives less)
    assert_close(occurrences, 10 / 3)


def test_statistics_match_the_plain_python_reference():
    reference = load_reference("reference_sequence")
    rng = random.Random(5)
    for task, measure in (("set", lambda row: len(row) - 65), ("delete", lambda row: len(row) == 131)):
        fn, params = reference.REFERENCE[task]
        ref = np.array([measure(row) for row in fn(4000, rng, **params)], np.float64)
        ours = procgen.generate(task, n=20_000, seed=6)
        ours = (ours.lengths - 65) if task == "set" else (ours.lengths == 131)
        two_sample_close(ref, ours)
