"""khop task: layout, pointer chasing, the process's distributions, validator, determinism, golden rows."""

from __future__ import annotations

import importlib.util
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

TASK = get_task("khop")
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chi2_sf(statistic, dof):
    """P(chi-square with ``dof`` degrees of freedom >= statistic), Wilson-Hilferty approximation
    (scipy is not a dependency; accurate to a few percent of the tail probability for dof >= 5)."""
    scale = 2 / (9 * dof)
    z = ((statistic / dof) ** (1 / 3) - (1 - scale)) / math.sqrt(scale)
    return 0.5 * math.erfc(z / math.sqrt(2))


def load_reference():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_frontier_b.py"
    spec = importlib.util.spec_from_file_location("reference_frontier_b", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows_of(batch):
    return [batch[i].tolist() for i in range(len(batch))]


def parse(row, params):
    """Plain-Python reading of one row: checks the layout and the graph's rules and returns
    ``(successor dict in written order, query, k, answer tokens)``; asserts the answer is the walk."""
    n = params["nodes"]
    ids = params["node_vocab"] or n
    successor = {}
    for j in range(n):
        a, b, sep = row[3 * j: 3 * j + 3]
        assert sep == ids and 0 <= a < ids and 0 <= b < ids
        assert a not in successor
        successor[a] = b
    assert set(successor.values()) <= set(successor)
    if not params["self_loops"]:
        assert all(a != b for a, b in successor.items())
    if params["permutation"]:
        assert sorted(successor.values()) == sorted(successor)
    assert row[3 * n] == ids + 1
    query, k = row[3 * n + 1], row[3 * n + 2] - ids - 1
    assert query in successor and params["min_hops"] <= k <= params["max_hops"]
    walk, node = [], query
    for _ in range(k):
        node = successor[node]
        walk.append(node)
    answer = row[3 * n + 3:]
    assert answer == (walk if params["path"] else walk[-1:])
    return successor, query, k, answer


def to_arrays(rows, answer_starts):
    tokens = np.array([t for row in rows for t in row], np.int64)
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    return tokens, offsets, np.array(answer_starts, np.int32)


# --- property test over random valid parameters -----------------------------------------------

@st.composite
def khop_params(draw):
    nodes = draw(st.integers(1, 60))
    params = {"nodes": nodes, "path": draw(st.booleans()), "permutation": draw(st.booleans()),
              "self_loops": True if nodes == 1 else draw(st.booleans())}
    if draw(st.booleans()):
        params["hops"] = draw(st.integers(1, 40))
    else:
        params["min_hops"], params["max_hops"] = sorted(draw(st.lists(st.integers(1, 40), min_size=2, max_size=2)))
    if draw(st.booleans()):
        params["node_vocab"] = nodes + draw(st.sampled_from([0, 1, 7, 300]))
    return params


@PROPERTY
@given(khop_params(), st.integers(1, 40), st.integers(0, 2 ** 40), st.integers(0, 10 ** 6))
def test_rows_are_valid_for_random_params(params, n, seed, start):
    b = procgen.khop(n=n, seed=seed, start=start, **params)
    assert b.validate() is None
    resolved = b.params
    assert (b.answer_start == 3 * params["nodes"] + 3).all()
    assert b.lengths.max() <= TASK.max_row_length(resolved)
    assert int(b.tokens.max()) < TASK.vocab_size(resolved) - 1  # the pad id (last) is never stored
    for row in rows_of(b):
        successor, _, k, _ = parse(row, resolved)
        assert len(successor) == params["nodes"]
        assert len(row) == 3 * params["nodes"] + 3 + (k if params["path"] else 1)


def test_defaults_layout_and_vocab():
    b = procgen.khop(n=300, seed=2)
    assert b.tokens.dtype == np.uint8 and (b.lengths == 100).all() and (b.answer_start == 99).all()
    assert len(b.vocab) == 39 and b.vocab[31] == "31" and b.vocab[32] == "<sep>" and b.vocab[33] == "<query>"
    assert b.vocab[34:38] == ["k=1", "k=2", "k=3", "k=4"] and b.pad_id == 38 and b.vocab[38] == "<pad>"
    for row in rows_of(b):
        successor, _, k, _ = parse(row, b.params)
        assert sorted(successor) == list(range(32)) and k == 4  # node_vocab unset: every id 0..31 is a node


def test_hop_token_ids_do_not_depend_on_the_hop_range():
    a = procgen.khop(n=1, nodes=5, hops=3, seed=1)
    b = procgen.khop(n=1, nodes=5, min_hops=1, max_hops=9, seed=1)
    assert a.vocab[a[0][17]] == "k=3" and b.vocab.index("k=3") == a.vocab.index("k=3")
    assert len(b.vocab) == 5 + 3 + 9


def test_node_vocab_none_equals_node_vocab_nodes():
    assert rows_of(procgen.khop(n=50, seed=4, nodes=9)) == rows_of(procgen.khop(n=50, seed=4, nodes=9, node_vocab=9))


def test_large_ids_use_wider_dtypes():
    assert procgen.khop(n=10, nodes=20, node_vocab=1000).tokens.dtype == np.uint16
    b = procgen.khop(n=10, nodes=50, node_vocab=70_000, path=True, hops=6)
    assert b.tokens.dtype == np.int32 and b.validate() is None


# --- the process's distributions ---------------------------------------------------------------------

def uniform_chi2(counts):
    counts = np.asarray(counts, np.float64)
    expected = counts.sum() / len(counts)
    return chi2_sf(((counts - expected) ** 2 / expected).sum(), len(counts) - 1)


@pytest.mark.parametrize("nodes, self_loops, permutation, outcomes", [
    (3, True, False, 27),   # every mapping of 3 nodes
    (3, False, False, 8),   # 2 choices per node
    (3, True, True, 6),     # every permutation
    (4, False, True, 9),    # every derangement of 4 nodes
])
def test_successor_maps_are_uniform(nodes, self_loops, permutation, outcomes):
    b = procgen.khop(n=20_000, seed=7, nodes=nodes, hops=1, self_loops=self_loops, permutation=permutation)
    maps = Counter()
    for row in rows_of(b):
        successor, _, _, _ = parse(row, b.params)
        maps[tuple(successor[i] for i in range(nodes))] += 1
    assert len(maps) == outcomes
    assert uniform_chi2(list(maps.values())) > 1e-4


def test_pair_order_query_and_hops_are_uniform():
    b = procgen.khop(n=30_000, seed=8, nodes=6, min_hops=2, max_hops=5)
    a = b.to_numpy()
    orders = Counter(tuple(row[0:18:3]) for row in a.tolist())
    assert len(orders) == 720 and uniform_chi2([orders[o] for o in sorted(orders)]) > 1e-4
    assert uniform_chi2(np.bincount(a[:, 19], minlength=6)) > 1e-4          # the query node
    assert uniform_chi2(np.bincount(a[:, 20] - 7, minlength=6)[2:]) > 1e-4   # k = 2..5


def test_node_ids_are_drawn_uniformly_from_node_vocab():
    b = procgen.khop(n=20_000, seed=9, nodes=5, node_vocab=40, hops=1)
    sources = b.to_numpy()[:, 0:15:3]
    assert all(len(set(row)) == 5 for row in sources.tolist())
    assert uniform_chi2(np.bincount(sources.ravel(), minlength=40)) > 1e-4
    assert uniform_chi2(np.bincount(sources[:, 0], minlength=40)) > 1e-4


def test_self_loop_rate_matches_the_process():
    b = procgen.khop(n=5_000, seed=10, nodes=10)
    a = b.to_numpy()
    loops = (a[:, 0:30:3] == a[:, 1:30:3]).mean()
    assert abs(loops - 0.1) < 5 * np.sqrt(0.1 * 0.9 / a[:, 0:30:3].size)
    b = procgen.khop(n=5_000, seed=10, nodes=10, self_loops=False)
    a = b.to_numpy()
    assert not (a[:, 0:30:3] == a[:, 1:30:3]).any()


def test_reference_process_has_the_same_layout_and_answer_distribution():
    fn, params = load_reference().REFERENCE["khop"]
    resolved = TASK.resolve_params(params)
    ref_rows = fn(4000, random.Random(11), **params)
    ours = rows_of(procgen.khop(n=4000, seed=11, **params))
    for row in ref_rows:
        parse(row, resolved)
    # P(answer == query): the walk returns to its start within k hops exactly; compare the two processes
    back_ref = np.mean([row[-1] == row[3 * 32 + 1] for row in ref_rows])
    back_ours = np.mean([row[-1] == row[3 * 32 + 1] for row in ours])
    se = np.sqrt(back_ours * (1 - back_ours) * 2 / 4000) + 1e-9
    assert abs(back_ref - back_ours) < 5 * se


# --- validator rejects corrupted rows ------------------------------------------------------------

def corrupt(kind):
    """(rows, answer_starts, params, row index) with row ``i`` broken in the way ``kind`` names."""
    params = {"nodes": 8, "min_hops": 2, "max_hops": 5}
    if kind == "not_a_node_target" or kind == "not_a_node_query":
        params["node_vocab"] = 20
    if kind == "self_loop":
        params["self_loops"] = False
    if kind == "repeated_target":
        params["permutation"] = True
    if kind == "truncated_path":
        params["path"] = True
    b = procgen.khop(n=10, seed=12, **params)
    rows, starts, i = rows_of(b), b.answer_start.tolist(), 6
    ids = b.params["node_vocab"] or 8
    assert TASK.validator(*to_arrays(rows, starts), b.params) is None
    row = rows[i]
    if kind == "answer_start":
        starts[i] += 1
    elif kind in ("truncated", "truncated_path"):
        row.pop()
    elif kind == "sep":
        row[5] = row[0]
    elif kind == "id":
        row[3] = ids + 5
    elif kind == "duplicate_source":
        row[3] = row[0]
    elif kind == "not_a_node_target":
        row[1] = next(t for t in range(ids) if t not in row[0:24:3])
    elif kind == "not_a_node_query":
        row[25] = next(t for t in range(ids) if t not in row[0:24:3])
    elif kind == "self_loop":
        row[1] = row[0]
    elif kind == "repeated_target":
        row[4] = row[1]
    elif kind == "query":
        row[24] = ids
    elif kind == "hops_high":
        row[26] = ids + 1 + 6
    elif kind == "hops_low":
        row[26] = ids + 1 + 1
    elif kind == "answer":
        row[-1] = (row[-1] + 1) % ids
    else:
        raise AssertionError(kind)
    return to_arrays(rows, starts), b.params, i


@pytest.mark.parametrize("kind, words", [
    ("answer_start", "answer_start"), ("truncated", "row length"), ("truncated_path", "row length"),
    ("sep", "separator"), ("id", "outside 0 .. node_vocab-1"), ("duplicate_source", "source of two pairs"),
    ("not_a_node_target", "not one of the row's nodes"), ("not_a_node_query", "not one of the row's nodes"),
    ("self_loop", "self_loops=False"), ("repeated_target", "permutation=True"), ("query", "query token"),
    ("hops_high", "hop-count token"), ("hops_low", "hop-count token"), ("answer", "following the successors"),
])
def test_validator_rejects_corruption(kind, words):
    arrays, params, i = corrupt(kind)
    found = TASK.validator(*arrays, params)
    assert found is not None and found[0] == i and words in found[1], (kind, found)


def test_validator_checks_the_process_flags():
    plain = procgen.khop(n=200, seed=13, nodes=6, hops=2)
    strict = dict(plain.params, self_loops=False, permutation=True)
    found = TASK.validator(plain.tokens, plain.offsets, plain.answer_start, strict)
    assert found is not None and ("self_loops" in found[1] or "permutation" in found[1])
    path = dict(plain.params, path=True)
    found = TASK.validator(plain.tokens, plain.offsets, plain.answer_start, path)
    assert found == (0, found[1]) and "row length" in found[1]


# --- determinism and golden rows -------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"nodes": 12, "min_hops": 1, "max_hops": 6, "path": True, "permutation": True, "self_loops": False},
    {"nodes": 12, "node_vocab": 500, "min_hops": 1, "max_hops": 6},  # the shuffle of 500 ids is undone per row
    {"nodes": 12, "node_vocab": 30, "self_loops": False},             # the ids are rewritten per row
])
def test_start_and_seed_determinism(params):
    whole = procgen.khop(n=40, seed=3, **params)
    part = procgen.khop(n=15, seed=3, start=20, **params)
    assert rows_of(part) == rows_of(whole)[20:35]
    assert rows_of(procgen.khop(n=40, seed=3, **params)) == rows_of(whole)
    assert rows_of(procgen.khop(n=40, seed=4, **params)) != rows_of(whole)
    assert rows_of(procgen.khop(n=40, seed=3, split="test", **params)) != rows_of(whole)


def test_hop_count_never_shifts_the_content():
    """k comes from the row's length stream: the graph and query do not depend on the hop range."""
    short = procgen.khop(n=30, seed=5, nodes=10, hops=1)
    varied = procgen.khop(n=30, seed=5, nodes=10, min_hops=1, max_hops=20, path=True)
    for a, b in zip(rows_of(short), rows_of(varied)):
        assert a[:32] == b[:32]


GOLDEN = [
    [4, 28, 32, 0, 25, 32, 1, 21, 32, 13, 15, 32, 15, 27, 32, 2, 28, 32, 14, 18, 32, 7, 26, 32, 31, 23, 32, 5, 26,
     32, 17, 14, 32, 24, 26, 32, 10, 5, 32, 16, 1, 32, 20, 13, 32, 22, 24, 32, 18, 6, 32, 28, 24, 32, 29, 4, 32, 25,
     23, 32, 30, 20, 32, 27, 18, 32, 9, 7, 32, 23, 27, 32, 8, 20, 32, 11, 20, 32, 12, 14, 32, 21, 2, 32, 6, 23, 32,
     26, 31, 32, 3, 2, 32, 19, 11, 32, 33, 17, 37, 23],
    [11, 14, 32, 3, 13, 32, 16, 7, 32, 15, 31, 32, 29, 17, 32, 18, 27, 32, 17, 12, 32, 8, 28, 32, 20, 3, 32, 14, 24,
     32, 10, 19, 32, 12, 1, 32, 1, 5, 32, 6, 14, 32, 19, 20, 32, 30, 10, 32, 9, 0, 32, 13, 29, 32, 22, 7, 32, 2, 12,
     32, 23, 28, 32, 24, 21, 32, 7, 13, 32, 31, 21, 32, 0, 14, 32, 28, 17, 32, 21, 28, 32, 5, 29, 32, 4, 19, 32, 27,
     25, 32, 26, 0, 32, 25, 9, 32, 33, 17, 37, 29],
]


def test_golden_rows():
    b = procgen.khop(n=2, seed=0, split="train")
    assert rows_of(b) == GOLDEN
    assert b.answer_start.tolist() == [99, 99]


# --- parameter errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("params, name", [
    ({"nodes": 0}, "nodes"), ({"nodes": 2 ** 20 + 1}, "nodes"), ({"hops": 0}, "hops"), ({"hops": 4097}, "hops"),
    ({"min_hops": 5, "max_hops": 2}, "min_hops"), ({"node_vocab": 10, "nodes": 11}, "node_vocab"),
    ({"node_vocab": 0}, "node_vocab"), ({"self_loops": False, "nodes": 1}, "self_loops"), ({"path": 1}, "path"),
    ({"permutation": "yes"}, "permutation"), ({"colour": 3}, "colour"),
])
def test_bad_params_raise(params, name):
    with pytest.raises(ValueError, match=name):
        procgen.khop(n=1, **params)


def test_resolve_is_idempotent():
    params = TASK.resolve_params({"nodes": 7, "min_hops": 2, "max_hops": 3, "node_vocab": 9})
    assert TASK.resolve_params(dict(params)) == params
