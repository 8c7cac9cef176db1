"""Tests for the set and lookup tasks: intersect, difference, count, search, duplicate, replace."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from conftest import (BATCH_ARGS, PROPERTY, assert_close, check_defaults, check_determinism_and_start,
                      check_generated, check_large_vocabulary, check_reference_rows_pass_validator,
                      draw_lengths, length_bounds, load_reference, rows_and_starts, rows_to_arrays, strip_eos,
                      two_sample_close)
from hypothesis import given
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task, setops

TASKS = ["intersect", "difference", "count", "search", "duplicate", "replace"]
# answer_start = L + OFFSET[task]
OFFSET = {"intersect": 2, "difference": 2, "count": 3, "search": 3, "duplicate": 1, "replace": 5}


# --- an independent, plain-Python reading of every row --------------------------------------------

def parse_row(task, row, answer_start, vocab, eos):
    """Split a row into its parts using the documented layout; assert the separators."""
    row = strip_eos(row, vocab, eos)
    length = answer_start - OFFSET[task]
    parts = {"answer": row[answer_start:]}
    if task in ("intersect", "difference"):
        len_x = (length + 1) // 2
        assert row[len_x] == vocab and row[length + 1] == vocab
        parts.update(x=row[:len_x], y=row[len_x + 1:length + 1])
    elif task in ("count", "search"):
        assert row[length] == vocab and row[length + 2] == vocab and len(parts["answer"]) == 1
        parts.update(x=row[:length], t=row[length + 1])
    elif task == "duplicate":
        assert row[length] == vocab
        parts.update(x=row[:length])
    else:
        assert row[length] == row[length + 2] == row[length + 4] == vocab
        parts.update(x=row[:length], a=row[length + 1], b=row[length + 3])
    return parts


def expected_answer(task, parts, vocab):
    x = parts["x"]
    if task == "intersect":
        return [t for t in dict.fromkeys(x) if t in parts["y"]]
    if task == "difference":
        return [t for t in dict.fromkeys(x) if t not in parts["y"]]
    if task == "count":
        return [vocab + 3 + x.count(parts["t"])]
    if task == "search":
        return [vocab + 4 + x.index(parts["t"]) if parts["t"] in x else vocab + 3]
    if task == "duplicate":
        return [t for t in x for _ in range(2)]
    return [parts["b"] if t == parts["a"] else t for t in x]


def check_rows(task, batch, params):
    """Every row: layout, ids, lengths and the answer, checked in plain Python."""
    vocab, eos = params["vocab_size"], params.get("eos", False)
    lo, hi = length_bounds(params)
    for row, answer_start in rows_and_starts(batch):
        assert lo <= answer_start - OFFSET[task] <= hi
        parts = parse_row(task, row, answer_start, vocab, eos)
        inputs = parts["x"] + parts.get("y", []) + [parts[k] for k in ("t", "a", "b") if k in parts]
        assert all(1 <= t < vocab for t in inputs)
        assert len(parts["x"]) + len(parts.get("y", [])) == answer_start - OFFSET[task]
        if params.get("p_present") == 1.0:
            assert parts["t"] in parts["x"]
        if task == "replace":
            assert parts["a"] in parts["x"]
        assert parts["answer"] == expected_answer(task, parts, vocab)


# --- properties over random valid parameters ------------------------------------------------------

@st.composite
def setops_params(draw):
    task = draw(st.sampled_from(TASKS))
    low = 2 if task in ("intersect", "difference") else 1
    params = {"vocab_size": draw(st.integers(2, 300)), "eos": draw(st.booleans()), **draw_lengths(draw, low, 80)}
    if task in ("count", "search"):
        params["p_present"] = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))
    return task, params


@PROPERTY
@given(setops_params(), *BATCH_ARGS)
def test_rows_are_valid_for_random_params(task_params, n, seed, start):
    task, params = task_params
    check_rows(task, check_generated(task, params, n, seed, start), params)


@pytest.mark.parametrize("task", TASKS)
def test_large_vocabulary_uses_int32(task):
    check_rows(task, check_large_vocabulary(task, 200, 20), {"vocab_size": 70_000, "length": 20})


@pytest.mark.parametrize("task", TASKS)
def test_defaults_layout(task):
    check_rows(task, check_defaults(task, 500, 64 + OFFSET[task]), {"vocab_size": 100, "length": 64})


def test_numbered_ids_do_not_move_with_eos():
    for eos in (False, True):
        count, search = procgen.count(n=5, eos=eos), procgen.search(n=5, eos=eos)
        assert len(count.vocab) == len(search.vocab) == 100 + 4 + 64
        assert count.vocab[102] == search.vocab[102] == "<eos>"
        assert count.vocab[103] == "#0" and count.vocab[103 + 64] == "#64"
        assert search.vocab[103] == "<not_found>" and search.vocab[104] == "@0" and search.vocab[104 + 63] == "@63"
        assert all((row[-1] == 102) == eos for row in count)
    plain = procgen.duplicate(n=3)
    assert len(plain.vocab) == 102 and len(procgen.duplicate(n=3, eos=True).vocab) == 103


def test_variable_lengths_and_odd_split():
    batch = procgen.intersect(n=4000, min_length=3, max_length=9, vocab_size=20)
    assert set((batch.answer_start - 2).tolist()) == set(range(3, 10))
    for row, answer_start in zip(batch, batch.answer_start):
        length = int(answer_start) - 2
        assert row[(length + 1) // 2] == 20 and row[length + 1] == 20  # x gets ceil(L/2) tokens


def test_empty_answers_end_at_the_separator_or_eos():
    batch = procgen.intersect(n=300, length=2, vocab_size=50)
    empty = batch.lengths == batch.answer_start
    assert empty.any() and (~empty).any()  # x and y of one token each: a match in 1/49 of rows
    assert batch.validate() is None
    with_eos = procgen.intersect(n=300, length=2, vocab_size=50, eos=True)
    assert (with_eos.lengths[empty] == with_eos.answer_start[empty] + 1).all()


# --- validators reject corrupted rows ----------------------------------------------------------

def make_row(task, vocab, eos, x, y=None, t=None, a=None, b=None, answer=None):
    """A row of ``task`` (``answer`` defaults to the right one) and its answer_start."""
    if task in ("intersect", "difference"):
        inputs = x + [vocab] + y + [vocab]
    elif task in ("count", "search"):
        inputs = x + [vocab, t, vocab]
    elif task == "duplicate":
        inputs = x + [vocab]
    else:
        inputs = x + [vocab, a, vocab, b, vocab]
    if answer is None:
        answer = expected_answer(task, {"x": x, "y": y, "t": t, "a": a, "b": b}, vocab)
    return inputs + answer + ([vocab + 2] if eos else []), len(inputs)


def run_validator(task, rows, params):
    arrays = rows_to_arrays([row for row, _ in rows], [start for _, start in rows], np.uint8)
    return get_task(task).validator(*arrays, params)


V = 10  # vocabulary of the hand-made rows; SEP = 10, EOS = 12, #c = 13 + c, NOT_FOUND = 13, @i = 14 + i
X = [1, 2, 1, 3, 4, 5]
GOOD = {  # one valid row per task (length 6)
    "intersect": {"x": [1, 2, 3], "y": [3, 4, 1]},
    "difference": {"x": [1, 2, 3], "y": [3, 4, 5]},
    "count": {"x": X, "t": 1},
    "search": {"x": X, "t": 1},
    "duplicate": {"x": X},
    "replace": {"x": X, "a": 1, "b": 7},
}


def frame_corruption(code):
    """(row, answer_start) -> damaged copy, for the layout checks every task shares."""
    def damage(row, answer_start):
        row = list(row)
        if code == setops._BAD_ANSWER_START:
            return row, answer_start + 1
        if code == setops._BAD_LENGTH:
            return row[:answer_start - 1], answer_start
        if code == setops._BAD_ID:
            row[0] = 0
        elif code == setops._BAD_SEP:
            row[row.index(V)] = 1
        elif code == setops._BAD_EOS:
            row[-1] = 1
        return row, answer_start
    return damage


# (task, reason code) -> (extra params, corrupted row parts or a damage of the good row)
CASES = {
    ("intersect", setops._NOT_IN_X): ({}, {**GOOD["intersect"], "answer": [1, 4]}),
    ("intersect", setops._Y_SIDE): ({}, {**GOOD["intersect"], "answer": [1, 2]}),
    ("intersect", setops._BAD_ORDER): ({}, {**GOOD["intersect"], "answer": [3, 1]}),
    ("intersect", setops._MISSING): ({}, {**GOOD["intersect"], "answer": [1]}),
    ("difference", setops._NOT_IN_X): ({}, {**GOOD["difference"], "answer": [1, 6]}),
    ("difference", setops._Y_SIDE): ({}, {**GOOD["difference"], "answer": [1, 3]}),
    ("difference", setops._BAD_ORDER): ({}, {**GOOD["difference"], "answer": [2, 1]}),
    ("difference", setops._MISSING): ({}, {**GOOD["difference"], "answer": [2]}),
    ("count", setops._BAD_ANSWER): ({}, {"x": X, "t": 1, "answer": [5]}),
    ("count", setops._WRONG_COUNT): ({}, {"x": X, "t": 1, "answer": [V + 3 + 3]}),
    ("count", setops._T_ABSENT): ({"p_present": 1.0}, {"x": X, "t": 9, "answer": [V + 3]}),
    ("search", setops._BAD_ANSWER): ({}, {"x": X, "t": 1, "answer": [V + 4 + 6]}),
    ("search", setops._NOT_AT): ({}, {"x": X, "t": 1, "answer": [V + 4 + 1]}),
    ("search", setops._NOT_FIRST): ({}, {"x": X, "t": 1, "answer": [V + 4 + 2]}),
    ("search", setops._MISSED): ({}, {"x": X, "t": 1, "answer": [V + 3]}),
    ("search", setops._T_ABSENT): ({"p_present": 1.0}, {"x": X, "t": 9, "answer": [V + 3]}),
    ("duplicate", setops._WRONG_DUPLICATE): ({}, {"x": X, "answer": [1, 1, 2, 1, 2, 1, 3, 3, 4, 4, 5, 5]}),
    ("replace", setops._A_ABSENT): ({}, {"x": X, "a": 9, "b": 7, "answer": X}),
    ("replace", setops._WRONG_REPLACE): ({}, {"x": X, "a": 1, "b": 7, "answer": [7, 2, 1, 3, 4, 5]}),
}
for _task in TASKS:
    for _code in setops._FRAME:
        CASES[(_task, _code)] = ({"eos": True} if _code == setops._BAD_EOS else {}, frame_corruption(_code))


def test_every_reason_has_a_corruption_case():
    assert {key for key in CASES} == {(task, code) for task in TASKS for code in setops._REASONS[task]}


@pytest.mark.parametrize("task, code", sorted(CASES), ids=lambda v: v if isinstance(v, str) else str(v))
def test_validator_rejects_corruption_with_its_reason(task, code):
    extra, corruption = CASES[(task, code)]
    params = get_task(task).resolve_params({"length": 6, "vocab_size": V, **extra})
    good = make_row(task, V, params["eos"], **GOOD[task])
    assert run_validator(task, [good, good], params) is None
    if callable(corruption):
        bad = corruption(*good)
    else:
        bad = make_row(task, V, params["eos"], **corruption)
    assert run_validator(task, [good, bad, good], params) == (1, setops._REASONS[task][code])


@pytest.mark.parametrize("task", ["count", "search"])
def test_absent_query_is_valid_unless_p_present_is_one(task):
    params = get_task(task).resolve_params({"length": 6, "vocab_size": V})
    row = make_row(task, V, False, x=X, t=9)
    assert row[0][-1] == V + 3  # #0 / NOT_FOUND
    assert run_validator(task, [row], params) is None


def test_replace_with_b_equal_a_keeps_x():
    params = get_task("replace").resolve_params({"length": 6, "vocab_size": V})
    row = make_row("replace", V, False, x=X, a=3, b=3)
    assert row[0][-6:] == X and run_validator("replace", [row], params) is None


@pytest.mark.parametrize("task", TASKS)
def test_validator_rejects_rows_outside_the_length_range(task):
    batch = procgen.generate(task, n=5, length=10)
    found = get_task(task).validator(batch.tokens, batch.offsets, batch.answer_start,
                                     {**batch.params, "min_length": 11, "max_length": 12})
    assert found == (0, setops._REASONS[task][setops._BAD_ANSWER_START])


@pytest.mark.parametrize("task", TASKS)
def test_rows_with_an_end_token_are_invalid_without_eos(task):
    batch = procgen.generate(task, n=10, length=12, vocab_size=20, eos=True)
    validator = get_task(task).validator
    assert validator(batch.tokens, batch.offsets, batch.answer_start, batch.params) is None
    found = validator(batch.tokens, batch.offsets, batch.answer_start, {**batch.params, "eos": False})
    assert found is not None and found[0] == 0


# --- the plain-Python reference agrees with our validators -----------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_reference_rows_pass_our_validators(task):
    check_reference_rows_pass_validator("reference_setops", task, OFFSET[task])


# --- determinism and the seeding contract -------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_determinism_and_start(task):
    check_determinism_and_start(task, {"min_length": 2, "max_length": 30, "vocab_size": 40}, 7, "validation", 50)


GOLDEN = {
    "intersect": [
        [23, 63, 95, 46, 36, 83, 53, 68, 3, 24, 25, 34, 76, 68, 18, 85, 50, 83, 44, 60, 49, 92, 41, 72, 46, 78,
         12, 61, 26, 22, 39, 73, 100, 79, 64, 82, 64, 51, 47, 49, 28, 82, 21, 12, 67, 42, 23, 52, 7, 46, 31, 26,
         85, 4, 44, 66, 48, 66, 10, 32, 37, 43, 80, 32, 29, 100, 23, 46, 85, 44, 49, 12, 26],
        [36, 87, 64, 71, 25, 66, 89, 67, 90, 4, 21, 13, 36, 54, 58, 59, 5, 25, 54, 78, 21, 27, 67, 20, 80, 17,
         53, 93, 54, 96, 30, 47, 100, 66, 72, 68, 64, 37, 82, 95, 41, 24, 45, 23, 99, 44, 35, 73, 3, 22, 38, 6,
         76, 29, 53, 27, 57, 20, 5, 57, 15, 63, 46, 50, 83, 100, 64, 66, 5, 27, 20, 53],
    ],
    "difference": [
        [85, 92, 9, 74, 92, 49, 66, 63, 93, 41, 16, 99, 39, 52, 12, 1, 15, 94, 50, 15, 62, 47, 1, 33, 15, 68, 5,
         33, 94, 65, 11, 35, 100, 5, 24, 28, 91, 86, 3, 55, 95, 93, 1, 66, 98, 96, 40, 24, 27, 6, 93, 55, 22, 65,
         16, 77, 4, 84, 68, 44, 72, 68, 58, 2, 36, 100, 85, 92, 9, 74, 49, 63, 41, 99, 39, 52, 12, 15, 94, 50,
         62, 47, 33, 11, 35],
        [20, 6, 15, 43, 80, 37, 59, 1, 58, 23, 32, 86, 79, 47, 82, 1, 3, 35, 89, 80, 9, 43, 4, 74, 12, 32, 99,
         95, 92, 46, 20, 2, 100, 92, 18, 22, 26, 25, 23, 16, 2, 34, 70, 60, 43, 91, 74, 2, 66, 53, 69, 69, 2, 88,
         88, 91, 49, 5, 82, 48, 88, 67, 42, 98, 15, 100, 20, 6, 80, 37, 59, 1, 58, 32, 86, 79, 47, 3, 35, 89, 9,
         4, 12, 99, 95, 46],
    ],
    "count": [
        [85, 57, 35, 40, 68, 11, 23, 62, 6, 30, 43, 29, 17, 47, 6, 32, 87, 97, 68, 27, 92, 3, 58, 9, 43, 70, 7,
         84, 38, 2, 64, 4, 62, 17, 10, 21, 11, 73, 31, 44, 81, 63, 40, 60, 14, 93, 24, 36, 93, 97, 79, 88, 97,
         20, 77, 45, 50, 29, 97, 22, 7, 62, 84, 44, 100, 73, 100, 104],
        [50, 22, 80, 43, 86, 75, 86, 10, 34, 1, 41, 57, 51, 34, 25, 47, 96, 64, 62, 23, 80, 91, 70, 24, 88, 47,
         34, 23, 20, 12, 73, 7, 88, 74, 65, 47, 91, 52, 84, 40, 51, 34, 37, 75, 5, 65, 49, 98, 67, 34, 28, 37,
         95, 32, 63, 75, 35, 5, 40, 93, 45, 73, 90, 13, 100, 47, 100, 106],
    ],
    "search": [
        [84, 34, 61, 4, 82, 53, 50, 35, 98, 43, 53, 93, 13, 62, 90, 30, 20, 35, 42, 86, 14, 81, 69, 30, 89, 36,
         88, 79, 5, 53, 16, 60, 35, 12, 10, 54, 33, 25, 45, 21, 92, 69, 75, 2, 72, 45, 97, 13, 25, 80, 75, 67,
         60, 89, 37, 13, 57, 81, 94, 12, 56, 36, 7, 15, 100, 56, 100, 164],
        [99, 36, 85, 10, 18, 49, 10, 75, 39, 30, 41, 60, 84, 19, 52, 56, 24, 37, 56, 41, 50, 80, 98, 8, 38, 13,
         9, 77, 40, 14, 30, 81, 45, 75, 38, 9, 21, 8, 56, 32, 93, 15, 48, 44, 26, 11, 15, 48, 30, 76, 66, 5, 45,
         25, 91, 91, 60, 73, 29, 7, 62, 46, 20, 53, 100, 21, 100, 140],
    ],
    "duplicate": [
        [94, 21, 85, 68, 51, 28, 73, 57, 45, 23, 29, 91, 99, 10, 17, 50, 17, 62, 70, 71, 63, 57, 91, 91, 50, 72,
         23, 54, 8, 41, 46, 77, 82, 8, 28, 60, 50, 22, 34, 58, 27, 64, 50, 45, 43, 34, 37, 89, 78, 19, 54, 95,
         70, 74, 23, 44, 59, 8, 58, 62, 32, 63, 88, 35, 100, 94, 94, 21, 21, 85, 85, 68, 68, 51, 51, 28, 28, 73,
         73, 57, 57, 45, 45, 23, 23, 29, 29, 91, 91, 99, 99, 10, 10, 17, 17, 50, 50, 17, 17, 62, 62, 70, 70, 71,
         71, 63, 63, 57, 57, 91, 91, 91, 91, 50, 50, 72, 72, 23, 23, 54, 54, 8, 8, 41, 41, 46, 46, 77, 77, 82,
         82, 8, 8, 28, 28, 60, 60, 50, 50, 22, 22, 34, 34, 58, 58, 27, 27, 64, 64, 50, 50, 45, 45, 43, 43, 34,
         34, 37, 37, 89, 89, 78, 78, 19, 19, 54, 54, 95, 95, 70, 70, 74, 74, 23, 23, 44, 44, 59, 59, 8, 8, 58,
         58, 62, 62, 32, 32, 63, 63, 88, 88, 35, 35],
        [88, 7, 14, 15, 12, 8, 36, 24, 52, 32, 9, 99, 88, 24, 69, 30, 53, 6, 60, 72, 32, 1, 36, 20, 26, 98, 58,
         60, 30, 76, 61, 82, 93, 20, 97, 16, 38, 47, 23, 26, 65, 95, 33, 92, 55, 98, 63, 23, 46, 28, 65, 3, 11,
         63, 38, 92, 95, 7, 50, 1, 89, 25, 19, 38, 100, 88, 88, 7, 7, 14, 14, 15, 15, 12, 12, 8, 8, 36, 36, 24,
         24, 52, 52, 32, 32, 9, 9, 99, 99, 88, 88, 24, 24, 69, 69, 30, 30, 53, 53, 6, 6, 60, 60, 72, 72, 32, 32,
         1, 1, 36, 36, 20, 20, 26, 26, 98, 98, 58, 58, 60, 60, 30, 30, 76, 76, 61, 61, 82, 82, 93, 93, 20, 20,
         97, 97, 16, 16, 38, 38, 47, 47, 23, 23, 26, 26, 65, 65, 95, 95, 33, 33, 92, 92, 55, 55, 98, 98, 63, 63,
         23, 23, 46, 46, 28, 28, 65, 65, 3, 3, 11, 11, 63, 63, 38, 38, 92, 92, 95, 95, 7, 7, 50, 50, 1, 1, 89,
         89, 25, 25, 19, 19, 38, 38],
    ],
    "replace": [
        [44, 50, 78, 13, 8, 34, 70, 66, 91, 5, 57, 29, 57, 81, 70, 10, 11, 56, 18, 17, 27, 97, 18, 29, 7, 63, 34,
         88, 99, 72, 10, 37, 64, 15, 39, 87, 83, 2, 47, 78, 17, 61, 3, 72, 74, 37, 99, 45, 43, 48, 99, 24, 8, 26,
         72, 83, 96, 26, 42, 92, 2, 2, 11, 9, 100, 29, 100, 98, 100, 44, 50, 78, 13, 8, 34, 70, 66, 91, 5, 57,
         98, 57, 81, 70, 10, 11, 56, 18, 17, 27, 97, 18, 98, 7, 63, 34, 88, 99, 72, 10, 37, 64, 15, 39, 87, 83,
         2, 47, 78, 17, 61, 3, 72, 74, 37, 99, 45, 43, 48, 99, 24, 8, 26, 72, 83, 96, 26, 42, 92, 2, 2, 11, 9],
        [65, 30, 31, 55, 17, 19, 81, 48, 87, 31, 16, 89, 41, 3, 19, 89, 46, 84, 6, 40, 1, 7, 49, 35, 18, 68, 42,
         14, 5, 28, 64, 92, 24, 59, 89, 78, 54, 13, 7, 73, 42, 2, 67, 15, 30, 43, 23, 40, 14, 11, 75, 54, 66, 86,
         14, 43, 79, 10, 91, 64, 55, 47, 83, 12, 100, 5, 100, 89, 100, 65, 30, 31, 55, 17, 19, 81, 48, 87, 31,
         16, 89, 41, 3, 19, 89, 46, 84, 6, 40, 1, 7, 49, 35, 18, 68, 42, 14, 89, 28, 64, 92, 24, 59, 89, 78, 54,
         13, 7, 73, 42, 2, 67, 15, 30, 43, 23, 40, 14, 11, 75, 54, 66, 86, 14, 43, 79, 10, 91, 64, 55, 47, 83, 12],
    ],
}


@pytest.mark.parametrize("task", TASKS)
def test_golden_rows(task):
    batch = procgen.generate(task, n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == GOLDEN[task]


# --- parameter errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("task, params, name", [
    ("intersect", {"length": 1}, "length"),
    ("difference", {"min_length": 10, "max_length": 5}, "min_length"),
    ("count", {"max_length": 2 ** 20 + 1}, "max_length"),
    ("search", {"p_present": 1.5}, "p_present"),
    ("search", {"vocab_size": 1}, "vocab_size"),
    ("duplicate", {"length": (2 ** 31 - 3) // 3 + 1}, "length"),
    ("replace", {"eos": "yes"}, "eos"),
    ("intersect", {"p_present": 0.5}, "p_present"),
])
def test_bad_params_raise_value_error_naming_the_param(task, params, name):
    with pytest.raises(ValueError, match=name):
        procgen.generate(task, n=3, **params)


# --- statistics (tolerance: 5 standard errors estimated from the sample) -----------------------------

def test_count_and_search_presence_rates():
    absent = (98 / 99) ** 64  # a uniform t is absent from x
    count = procgen.count(n=20_000, seed=1).to_numpy()
    assert_close(count[:, -1] == 103, 0.5 * absent)  # #0 only when t was drawn uniformly and is absent
    search = procgen.search(n=20_000, seed=2).to_numpy()
    assert_close(search[:, -1] == 103, 0.5 * absent)
    assert (procgen.search(n=2000, seed=3, p_present=1.0).to_numpy()[:, -1] != 103).all()


def test_count_with_a_present_query_matches_its_expectation():
    # t taken at a uniform position of x: E[count of t] = E[sum_t c_t^2] / L = 1 + (L - 1) / (V - 1)
    rows = procgen.count(n=20_000, seed=4, length=16, vocab_size=5, p_present=1.0).to_numpy()
    assert_close(rows[:, -1] - 5 - 3, 1 + 15 / 4)


def test_replace_picks_a_uniformly_among_distinct_tokens():
    # 8 tokens from 3: E[occurrences of a] = 8 E[1/D] with D the number of distinct tokens, = 2.824
    # (a uniform *position* would give E[sum c_t^2] / 8 = 10/3)
    expected = 8 * (3 * 1 + 762 / 2 + 5796 / 3) / 6561
    rows = procgen.replace(n=20_000, seed=5, length=8, vocab_size=4).to_numpy()
    assert_close((rows[:, :8] == rows[:, 9:10]).sum(axis=1), expected)


def test_search_index_of_a_present_query():
    # p_present=1, V=3 (two content tokens), L=4: t at a uniform position of x, answer its first index
    rows = procgen.search(n=20_000, seed=6, length=4, vocab_size=3, p_present=1.0).to_numpy()
    index = rows[:, -1] - 3 - 4
    x, t = rows[:, :4], rows[:, 5]
    assert (index >= 0).all() and (index == np.argmax(x == t[:, None], axis=1)).all()
    exact = np.zeros(4)  # P(first index = i), by enumerating the 16 inputs and 4 positions
    for x_tuple in itertools.product((1, 2), repeat=4):
        for position in range(4):
            exact[x_tuple.index(x_tuple[position])] += 1 / 64
    for i in range(4):
        assert_close(index == i, exact[i])


def test_statistics_match_the_plain_python_reference():
    reference = load_reference("reference_setops")
    rng = random.Random(7)
    measures = {
        "intersect": lambda row: len(row) - 66,
        "difference": lambda row: len(row) - 66,
        "count": lambda row: row[-1] - 103,
        "search": lambda row: row[-1] == 103,
        "replace": lambda row: row[:64].count(row[65]),
    }
    for task, measure in measures.items():
        fn, params = reference.REFERENCE[task]
        ref = np.array([measure(row) for row in fn(4000, rng, **params)], np.float64)
        ours = procgen.generate(task, n=20_000, seed=8, **params)
        ours = np.array([measure(row.tolist()) for row in ours], np.float64)
        two_sample_close(ref, ours, task)
