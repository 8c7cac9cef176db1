"""Tests for the ww task (the copy language)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import (BATCH_ARGS, PROPERTY, check_defaults, check_determinism_and_start, check_generated,
                      check_large_vocabulary, draw_lengths, load_reference, rows_and_starts)
from hypothesis import given
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

VALIDATE = get_task("ww").validator


def parse(row, answer_start, params):
    """Plain-Python reading of a row: returns w, after checking the layout, ids and the copy."""
    row = list(row)
    vocab, sep = params["vocab_size"], int(params["separator"])
    assert (len(row) - sep) % 2 == 0
    size = (len(row) - sep) // 2
    w, rest = row[:size], row[size:]
    if sep:
        assert rest[0] == vocab
        rest = rest[1:]
    assert rest == w
    assert all(1 <= t < vocab for t in w)
    assert answer_start == (size + sep if params["loss"] == "second_half" else 0)
    return w


@st.composite
def ww_params(draw):
    params = {"vocab_size": draw(st.integers(2, 300)), "separator": draw(st.booleans()),
              "loss": draw(st.sampled_from(["all", "second_half"]))}
    return {**params, **draw_lengths(draw, 1, 90)}


@PROPERTY
@given(ww_params(), *BATCH_ARGS)
def test_rows_are_valid_for_random_params(params, n, seed, start):
    batch = check_generated("ww", params, n, seed, start)
    resolved = batch.params
    for row, answer_start in rows_and_starts(batch):
        w = parse(row, answer_start, resolved)
        assert resolved["min_length"] <= len(w) <= resolved["max_length"]


def test_defaults_layout_and_vocab():
    batch = check_defaults("ww", 300, 0)
    assert (batch.lengths == 128).all() and get_task("ww").is_lm_style(get_task("ww").resolve_params({}))
    assert batch.vocab[0] == "<unused>" and len(batch.vocab) == 102
    assert not ((batch.tokens == 0) | (batch.tokens >= 100)).any()  # no SEP, PAD or id 0 by default
    for i in range(len(batch)):
        parse(batch[i].tolist(), 0, batch.params)


def test_separator_and_second_half_loss():
    batch = procgen.ww(n=50, length=10, separator=True, loss="second_half")
    assert (batch.lengths == 21).all() and (batch.answer_start == 11).all()
    assert (batch.to_numpy()[:, 10] == 100).all()
    plain = procgen.ww(n=50, length=10, loss="second_half")
    assert (plain.answer_start == 10).all()
    lm = procgen.ww(n=50, length=10, separator=True)
    assert (lm.answer_start == 0).all()


def test_variable_lengths_cover_the_range_uniformly():
    batch = procgen.ww(n=14_000, min_length=3, max_length=9, vocab_size=20)
    halves = batch.lengths // 2
    counts = np.bincount(halves, minlength=10)[3:]
    assert set(halves.tolist()) == set(range(3, 10))
    assert np.abs(counts - 2000).max() < 5 * np.sqrt(2000 * 6 / 7)


def test_tokens_are_uniform_over_the_content_ids():
    batch = procgen.ww(n=4000, length=32, vocab_size=21)
    first_halves = batch.to_numpy()[:, :32].ravel()
    counts = np.bincount(first_halves, minlength=21)[1:]
    expected = len(first_halves) / 20
    assert counts.sum() == len(first_halves)
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected * 19 / 20)


def test_large_vocabulary_uses_int32():
    check_large_vocabulary("ww", 100, 30)


def test_matches_the_reference_process():
    fn, params = load_reference("reference_frontier_a").REFERENCE["ww"]
    rows = fn(500, random.Random(0), **params)
    assert all(len(r) == 128 and r[:64] == r[64:] for r in rows)
    ours = procgen.ww(n=500, **params).to_numpy()
    ref = np.array(rows)
    # same token distribution: means of uniform 1..99 draws agree within 5 standard errors
    se = np.sqrt(ours.var() / ours.size + ref.var() / ref.size) * np.sqrt(2)  # copies are not independent
    assert abs(ours.mean() - ref.mean()) < 5 * se


# --- validator rejects corrupted rows ---------------------------------------------------------------

def arrays(batch):
    return batch.tokens.astype(np.int64), batch.offsets.copy(), batch.answer_start.copy()


def corrupt(batch, row, kind):
    tokens, offsets, answer_start = arrays(batch)
    first, end = int(offsets[row]), int(offsets[row + 1])
    vocab = batch.params["vocab_size"]
    size = (end - first - int(batch.params["separator"])) // 2
    if kind == "length":             # one token dropped: the halves no longer fit
        tokens = np.delete(tokens, end - 1)
        offsets[row + 1:] -= 1
    elif kind == "too_long":         # both copies one token longer than max_length
        tokens = np.insert(tokens, [first + size, end], [5, 5])
        offsets[row + 1:] += 2
    elif kind == "answer_start":
        answer_start[row] += 1
    elif kind == "zero_id":
        tokens[first] = tokens[end - size] = 0
    elif kind == "out_of_range":
        tokens[first + 1] = tokens[end - size + 1] = vocab + 1
    elif kind == "sep":              # a separator inside w (no separator in this layout)
        tokens[first + 2] = tokens[end - size + 2] = vocab
    elif kind == "copy":
        tokens[end - 1] = tokens[end - 1] % (vocab - 1) + 1
    else:
        raise AssertionError(kind)
    return tokens, offsets, answer_start


@pytest.mark.parametrize("kind, words", [
    ("length", "row length"), ("too_long", "row length"), ("answer_start", "answer_start"),
    ("zero_id", "content range"), ("out_of_range", "content range"), ("sep", "separator"),
    ("copy", "not a copy"),
])
def test_validator_rejects_corruption(kind, words):
    batch = procgen.ww(n=12, seed=5, length=16, vocab_size=30)
    assert VALIDATE(*arrays(batch), batch.params) is None
    found = VALIDATE(*corrupt(batch, 7, kind), batch.params)
    assert found is not None and found[0] == 7 and words in found[1], (kind, found)


def test_validator_checks_the_separator_and_the_loss_mode():
    batch = procgen.ww(n=10, seed=2, length=12, separator=True, loss="second_half")
    params = batch.params
    tokens, offsets, answer_start = arrays(batch)
    tokens[offsets[4] + 12] = 3  # the separator of row 4 replaced by a content id
    found = VALIDATE(tokens, offsets, answer_start, params)
    assert found[0] == 4 and "separator" in found[1]
    # the same rows read as loss='all' have the wrong answer_start; without a separator, the wrong length
    assert VALIDATE(*arrays(batch), {**params, "loss": "all"})[0] == 0
    assert "row length" in VALIDATE(*arrays(batch), {**params, "separator": False})[1]


# --- determinism and golden rows --------------------------------------------------------------------

def test_determinism_and_start():
    check_determinism_and_start("ww", {"min_length": 1, "max_length": 40, "vocab_size": 12}, 3, "test", 40)


def test_the_layout_options_do_not_change_w():
    plain = procgen.ww(n=30, seed=1, min_length=2, max_length=20)
    other = procgen.ww(n=30, seed=1, min_length=2, max_length=20, separator=True, loss="second_half")
    for i in range(30):
        assert parse(plain[i].tolist(), 0, plain.params) == parse(other[i].tolist(), int(other.answer_start[i]),
                                                                   other.params)


W0 = [23, 49, 81, 30, 8, 98, 87, 33, 31, 44, 20, 30, 89, 9, 92, 72, 99, 2, 13, 69, 84, 41, 70, 75, 30, 99, 17, 16, 34,
      67, 36, 5, 74, 42, 30, 88, 39, 77, 23, 67, 83, 22, 6, 14, 3, 8, 36, 56, 85, 64, 92, 70, 56, 94, 88, 2, 65, 89, 34,
      50, 18, 96, 4, 63]
W1 = [95, 7, 67, 54, 17, 72, 35, 85, 47, 20, 33, 16, 36, 81, 46, 64, 22, 86, 88, 93, 12, 64, 9, 68, 16, 41, 32, 53, 2,
      60, 99, 52, 47, 96, 11, 81, 70, 85, 59, 30, 15, 26, 80, 8, 89, 33, 44, 12, 4, 58, 85, 40, 99, 26, 84, 23, 28, 79,
      78, 16, 52, 48, 73, 28]
GOLDEN = [W0 + W0, W1 + W1]


def test_golden_rows():
    batch = procgen.ww(n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == GOLDEN


# --- parameter errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("params, name", [
    ({"vocab_size": 1}, "vocab_size"),
    ({"length": 0}, "length"),
    ({"min_length": 9, "max_length": 3}, "min_length"),
    ({"loss": "first_half"}, "loss"),
    ({"separator": 1}, "separator"),
    ({"eos": True}, "eos"),
])
def test_bad_params_raise_value_error_naming_the_param(params, name):
    with pytest.raises(ValueError, match=name):
        procgen.ww(n=3, **params)


def test_second_half_rows_are_not_lm_style_in_the_manifest(tmp_path):
    """lm_style follows the loss parameter: the manifest and the dataset card say what the rows are."""
    task = get_task("ww")
    assert task.is_lm_style(task.resolve_params({})) is True
    assert task.is_lm_style(task.resolve_params({"loss": "second_half"})) is False
    manifest = procgen.write("ww", tmp_path / "d", n=8, loss="second_half", progress=False)
    assert manifest["lm_style"] is False
    assert procgen.validate(tmp_path / "d")["rows"] == 8
