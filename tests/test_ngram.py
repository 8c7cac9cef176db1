"""Tests for the ngram task (an order-k Markov chain fitted to a sample of another task)."""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task
from procgen.tasks import ngram as ngram_module

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TASK = get_task("ngram")
VALIDATE = TASK.validator


def load_reference():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_frontier_a.py"
    spec = importlib.util.spec_from_file_location("reference_frontier_a", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- a plain-Python model of the sample, from the public API --------------------------------------

@lru_cache(maxsize=None)
def model(source, source_params_json, order, sample_rows):
    """(transitions {context: Counter of next tokens}, unigram Counter, {(length, first k, answer_start)},
    starts Counter) of the source's first ``sample_rows`` rows, seed 0, train."""
    batch = procgen.generate(source, sample_rows, seed=0, split="train", **json.loads(source_params_json))
    transitions, unigram, shapes, starts = {}, Counter(), set(), Counter()
    for i in range(len(batch)):
        row = batch[i].tolist()
        unigram.update(row)
        shapes.add((len(row), tuple(row[:order]), int(batch.answer_start[i])))
        starts[tuple(row[:order])] += 1
        for j in range(order, len(row)):
            transitions.setdefault(tuple(row[j - order:j]), Counter())[row[j]] += 1
    return transitions, unigram, shapes, starts


def model_of(batch):
    p = batch.params
    return model(p["source"], json.dumps(p["source_params"], sort_keys=True), p["order"], p["sample_rows"])


def check_rows(batch):
    """Every row, in plain Python: its shape is a sample row's, every transition was observed (or,
    after a context the sample never continues, the token occurs in the sample). Returns the
    number of fallback draws."""
    transitions, unigram, shapes, _ = model_of(batch)
    order = batch.params["order"]
    fallbacks = 0
    for i in range(len(batch)):
        row = batch[i].tolist()
        assert (len(row), tuple(row[:order]), int(batch.answer_start[i])) in shapes
        for j in range(order, len(row)):
            following = transitions.get(tuple(row[j - order:j]))
            if following is None:
                fallbacks += 1
                assert unigram[row[j]] > 0
            else:
                assert following[row[j]] > 0
    return fallbacks


SOURCES = [
    ("dyck", {}), ("dyck", {"k": 2, "min_length": 2, "max_length": 40}), ("dyck_shuffle", {"k": 3, "length": 30}),
    ("stack", {"length": 12, "vocab_size": 6, "eos": True}), ("queue", {"length": 10, "vocab_size": 5}),
    ("sort", {"vocab_size": 20, "min_length": 1, "max_length": 12}), ("ww", {"min_length": 1, "max_length": 6}),
    ("eca", {"width": 8, "steps": 2}), ("haystack", {"pairs": 3}), ("identity", {"length": 1, "vocab_size": 3}),
]


@PROPERTY
@given(st.sampled_from(SOURCES), st.sampled_from([1, 2]), st.sampled_from([1, 7, 200]), st.integers(1, 60),
       st.integers(0, 2 ** 40), st.integers(0, 10 ** 6))
def test_rows_are_valid_for_random_params(source, order, sample_rows, n, seed, start):
    name, source_params = source
    batch = procgen.ngram(n=n, seed=seed, start=start, source=name, source_params=source_params, order=order,
                          sample_rows=sample_rows)
    assert batch.validate() is None
    check_rows(batch)
    source_task = get_task(name)
    resolved_source = source_task.resolve_params(source_params)
    assert batch.vocab == source_task.vocab(resolved_source)
    assert batch.tokens.dtype == source_task.token_dtype(resolved_source)
    assert batch.pad_id == source_task.pad_id(resolved_source)
    assert batch.lengths.max() <= TASK.max_row_length(batch.params)


def test_generate_with_the_briefs_arguments():
    batch = procgen.generate("ngram", source="dyck", order=2, n=500)
    assert len(batch) == 500 and batch.validate() is None and (batch.lengths == 64).all()
    assert (batch.answer_start == 0).all() and batch.vocab == procgen.dyck(n=1).vocab
    check_rows(batch)


def test_structure_beyond_k_grams_is_gone():
    """Dyck rows are balanced; rows of their 2-gram chain almost never are, though every 3-gram is Dyck's."""
    def balanced(row, k=4):
        stack = []
        for t in row:
            if t < k:
                stack.append(t)
            elif not stack or stack.pop() != t - k:
                return False
        return not stack

    source = procgen.dyck(n=2000)
    chain = procgen.ngram(n=2000, order=2)
    assert all(balanced(row) for row in source.to_numpy())
    assert np.mean([balanced(row) for row in chain.to_numpy()]) < 0.05


@pytest.mark.parametrize("order", [1, 2])
def test_transition_frequencies_match_the_sample(order):
    """Each context's next tokens follow the sample's counts (5 standard errors per transition)."""
    batch = procgen.ngram(n=20_000, seed=3, source="dyck", source_params={"k": 2, "length": 24}, order=order)
    transitions, _, _, starts = model_of(batch)
    seen: dict = {}
    rows = batch.to_numpy()
    for row in rows:
        for j in range(order, len(row)):
            seen.setdefault(tuple(row[j - order:j].tolist()), Counter())[int(row[j])] += 1
    for context, counts in seen.items():
        total = sum(counts.values())
        expected = transitions[context]
        for token, count in expected.items():
            p = count / sum(expected.values())
            assert abs(counts[token] - total * p) <= 5 * np.sqrt(total * p * (1 - p)) + 1, (context, token)
    # the start states follow the sample's first k tokens
    first = Counter(tuple(row[:order].tolist()) for row in rows)
    for state, count in starts.items():
        p = count / sum(starts.values())
        assert abs(first[state] - len(rows) * p) <= 5 * np.sqrt(len(rows) * p * (1 - p)) + 1


def test_unseen_contexts_fall_back_to_the_unigram_counts():
    # EOS (id 7) ends every stack row: the sample never continues it, but the chain reaches it mid-row
    params = {"source": "stack", "source_params": {"length": 8, "vocab_size": 5, "eos": True}, "order": 1}
    batch = procgen.ngram(n=20_000, seed=1, **params)
    assert batch.validate() is None
    assert check_rows(batch[:2000]) > 0
    _, unigram, _, _ = model_of(batch)
    after = Counter()
    for row in batch.to_numpy():
        for j in np.flatnonzero(row[:-1] == 7):
            after[int(row[j + 1])] += 1
    total, n = sum(after.values()), sum(unigram.values())
    assert total > 1000 and set(after) <= set(unigram)
    for token, count in unigram.items():
        p = count / n
        assert abs(after[token] - total * p) <= 5 * np.sqrt(total * p * (1 - p)) + 1, token


def test_input_output_sources_keep_their_answer_start():
    batch = procgen.ngram(n=500, source="sort", source_params={"vocab_size": 30, "min_length": 2, "max_length": 20})
    lengths = (batch.lengths - 1) // 2  # sort rows: x (L), SEP, sorted x (L): length 2L + 1
    assert (batch.lengths % 2 == 1).all() and (batch.answer_start == lengths + 1).all()
    assert batch.validate() is None


def test_one_sample_row_gives_every_row_its_shape():
    batch = procgen.ngram(n=50, source="dyck", source_params={"min_length": 2, "max_length": 60}, sample_rows=1)
    first = procgen.dyck(n=1, min_length=2, max_length=60)
    assert (batch.lengths == first.lengths[0]).all()
    assert (batch.to_numpy()[:, :2] == first[0][:2]).all()


def test_matches_the_reference_process():
    fn, params = load_reference().REFERENCE["ngram"]
    ref = np.array(fn(3000, random.Random(0), **params))
    ours = procgen.ngram(n=3000, **params).to_numpy()
    assert ref.shape == ours.shape
    for token in range(8):  # the token frequencies of both chains agree
        a, b = (ref == token).mean(axis=1), (ours == token).mean(axis=1)
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 5 * se + 1e-9, token


def test_the_table_is_cached_and_rows_do_not_depend_on_it():
    first = procgen.ngram(n=100, seed=2, order=1, sample_rows=300)
    info = ngram_module._table.cache_info()
    again = procgen.ngram(n=100, seed=2, order=1, sample_rows=300)
    assert ngram_module._table.cache_info().hits > info.hits
    ngram_module._table.cache_clear()
    ngram_module._sample.cache_clear()
    ngram_module._observed.cache_clear()
    rebuilt = procgen.ngram(n=100, seed=2, order=1, sample_rows=300)
    assert np.array_equal(first.tokens, again.tokens) and np.array_equal(first.tokens, rebuilt.tokens)


def test_resolve_is_idempotent_and_survives_json():
    params = TASK.resolve_params({"source": "eca", "source_params": {"rule": [30, 110], "width": 8}})
    assert params["source_params"]["rule"] == [30, 110] and params["source_params"]["steps"] == 3
    assert TASK.resolve_params(params) == params
    assert TASK.resolve_params(json.loads(json.dumps(params))) == params
    batch = procgen.ngram(n=50, **params)
    assert batch.validate() is None and batch.vocab == procgen.eca(n=1, rule=[30, 110], width=8).vocab


def test_a_mixture_can_contain_ngram():
    spec = {"tasks": {"dyck": {"weight": 1}, "ngram": {"weight": 1, "source": "dyck", "order": 2}}}
    batch = procgen.generate("mix", 400, spec=spec)
    assert batch.validate() is None and batch.params["spec"]["vocab"] == "shared"
    names = batch.params["spec"]["resolved"]["names"]
    assert set(np.array(names)[batch.row_task].tolist()) == {"dyck", "ngram"}
    other = procgen.mix({"set": 1, "ngram": 1}, rows=300, params={"ngram": {"source": "union",
                                                                           "source_params": {"length": 8}}})
    assert other.validate() is None


# --- validator rejects corrupted rows ---------------------------------------------------------------

def arrays(batch):
    return batch.tokens.astype(np.int64), batch.offsets.copy(), batch.answer_start.copy()


def test_validator_rejects_corruption():
    batch = procgen.ngram(n=12, seed=5)  # dyck k=4 (V = 9, pad 8), order 2
    params = batch.params
    assert VALIDATE(*arrays(batch), params) is None

    def rejected(tokens, offsets, answer_start, words, row=6):
        found = VALIDATE(tokens, offsets, answer_start, params)
        assert found is not None and found[0] == row and words in found[1], found

    first = int(batch.offsets[6])
    tokens, offsets, answer_start = arrays(batch)
    tokens[first + 10] = 9
    rejected(tokens, offsets, answer_start, "outside the source's vocabulary")

    tokens, offsets, answer_start = arrays(batch)
    tokens = np.insert(tokens, offsets[7], tokens[offsets[7] - 1])  # row 6 one token longer (65)
    offsets[7:] += 1
    rejected(tokens, offsets, answer_start, "length of any sample row")

    tokens, offsets, answer_start = arrays(batch)
    tokens[first] = 4  # a Dyck row never starts with a closing bracket
    rejected(tokens, offsets, answer_start, "start of a sample row")

    tokens, offsets, answer_start = arrays(batch)
    answer_start[6] = 1
    rejected(tokens, offsets, answer_start, "answer_start")

    tokens, offsets, answer_start = arrays(batch)
    row = tokens[first:offsets[7]]
    j = next(j for j in range(2, 64) if row[j - 1] < 4)  # after an open bracket t: t's close or an open
    tokens[first + j] = (row[j - 1] + 1) % 4 + 4  # the close of another type
    rejected(tokens, offsets, answer_start, "never shows")


def test_validator_rejects_a_fallback_token_the_sample_never_has():
    params = {"source": "stack", "source_params": {"length": 8, "vocab_size": 5, "eos": True}, "order": 1}
    batch = procgen.ngram(n=200, seed=1, **params)
    tokens, offsets, answer_start = arrays(batch)
    row = next(r for r in range(len(batch)) if 7 in batch[r][:-1].tolist())
    j = int(offsets[row]) + batch[row][:-1].tolist().index(7)
    assert VALIDATE(tokens, offsets, answer_start, batch.params) is None
    tokens[j + 1] = 6  # the pad id: a valid id that never occurs, drawn after the unseen context EOS
    found = VALIDATE(tokens, offsets, answer_start, batch.params)
    assert found == (row, ngram_module._REASONS[ngram_module._BAD_FALLBACK])


# --- determinism and golden rows --------------------------------------------------------------------

def test_determinism_and_start():
    params = {"source": "dyck", "source_params": {"min_length": 2, "max_length": 50}, "order": 2}
    full = procgen.ngram(n=20, seed=3, **params)
    part = procgen.ngram(n=10, seed=3, start=5, **params)
    window = full[5:15]
    assert np.array_equal(part.tokens, window.tokens) and np.array_equal(part.offsets, window.offsets)
    assert not np.array_equal(full.tokens[:40], procgen.ngram(n=20, seed=4, **params).tokens[:40])
    assert not np.array_equal(full.tokens[:40], procgen.ngram(n=20, seed=3, split="test", **params).tokens[:40])


GOLDEN = [
    [2, 1, 2, 6, 2, 0, 2, 3, 0, 4, 5, 0, 1, 1, 0, 4, 1, 5, 6, 3, 1, 2, 1, 5, 7, 3, 7, 4, 1, 5, 5, 7, 7, 4, 4, 4, 1, 5, 2,
     1, 5, 1, 1, 3, 7, 0, 4, 7, 6, 5, 4, 7, 3, 2, 1, 5, 1, 1, 5, 1, 5, 6, 6, 4],
    [3, 7, 0, 1, 5, 3, 7, 0, 0, 4, 2, 6, 3, 3, 0, 4, 0, 4, 2, 6, 3, 2, 2, 6, 1, 3, 3, 7, 1, 5, 7, 4, 5, 2, 6, 7, 5, 6, 0,
     4, 0, 4, 2, 6, 1, 5, 0, 4, 4, 5, 0, 3, 7, 4, 3, 7, 2, 6, 4, 2, 6, 4, 1, 1],
]


def test_golden_rows():
    batch = procgen.ngram(n=2, seed=0, split="train")
    assert [batch[0].tolist(), batch[1].tolist()] == GOLDEN


# --- parameter errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("params, words", [
    ({"source": "mix"}, "ngram: source must be a single task, not 'mix'"),
    ({"source": "ngram"}, "ngram: source must be a single task, not 'ngram'"),
    ({"source": "no_such_task"}, "ngram: source must be a registered task"),
    ({"order": 3}, "ngram: order must be one of 1, 2"),
    ({"sample_rows": 0}, "ngram: sample_rows must be"),
    ({"sample_rows": 2 ** 20}, "ngram: sample_rows=1048576 rows of dyck"),
    ({"source_params": {"kk": 1}}, "ngram: source_params: dyck: unknown parameter 'kk'"),
    ({"source_params": {"k": 0}}, "ngram: source_params: dyck: k must be"),
    ({"source_params": [1]}, "ngram: source_params must be"),
    ({"source": "identity", "source_params": {"vocab_size": 5000}}, "at most 2048 ids"),
])
def test_bad_params_raise_one_line_value_errors(params, words):
    with pytest.raises(ValueError) as info:
        procgen.ngram(n=3, **params)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_order_1_allows_a_large_vocabulary():
    batch = procgen.ngram(n=20, source="identity", source_params={"vocab_size": 5000, "length": 8}, order=1,
                          sample_rows=64)
    assert batch.tokens.dtype == np.uint16 and batch.validate() is None
