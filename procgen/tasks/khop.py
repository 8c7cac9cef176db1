"""khop: k-hop pointer chasing over a shuffled successor list (multi-hop variable binding).

No reference code exists for this task; this module is our documented process.

Process, per row (``N = nodes``, ``M = node_vocab`` or ``N`` when unset):

1. The hop count ``k``: fixed by ``hops``, or uniform in ``[min_hops, max_hops]`` (drawn from the
   row's length stream, so a row's ``k`` never shifts its content).
2. The nodes, in the order their pairs are written: ``N`` distinct ids ``s_0 .. s_{N-1}`` drawn
   uniformly from ``0 .. M-1`` (a partial Fisher–Yates shuffle; with ``M = N`` a uniformly random
   order of all ids). Drawing the sources in random order *is* writing the pairs in a uniformly
   random order.
3. The successor of each node: uniform over the ``N`` nodes (a random mapping; self-loops allowed),
   or, with ``self_loops=False``, uniform over the other ``N - 1``. With ``permutation=True`` the
   successors form a uniformly random permutation instead (every node also has exactly one
   predecessor: disjoint cycles), a uniformly random derangement with ``self_loops=False``
   (rejection: about ``e`` permutations drawn per row).
4. The query node ``q``, uniform over the ``N`` nodes; the answer is the node reached from ``q``
   after ``k`` hops, or with ``path=True`` the whole path (the ``k`` nodes after ``q``).

Ids and layout (``<sep> = M``, ``<query> = M+1``, the hop count ``k`` is the token ``k=<k>`` with id
``M+1+k`` for ``k = 1 .. max_hops``, then ``<pad> = M+2+max_hops``, never stored):

===========  ==============================================================  ==============
part         tokens                                                          positions
===========  ==============================================================  ==============
pairs        ``s_j succ(s_j) <sep>`` for ``j = 0 .. N-1``                     ``0 .. 3N-1``
query        ``<query> q k=<k>``                                             ``3N .. 3N+2``
answer       ``succ^k(q)``, or ``succ(q) succ^2(q) .. succ^k(q)`` with path   ``3N+3 ..``
===========  ==============================================================  ==============

A row has ``3N + 4`` tokens (``3N + 3 + k`` with ``path=True``) and ``answer_start = 3N + 3``.
Defaults N=32, k=4: 100 tokens, 39 ids (uint8). The id of ``k=<k>`` does not depend on
``max_hops``, so rows of different hop ranges over the same ``M`` share their ids.

The graph is fresh in every row, so a model must bind each node to its successor in context. With
``node_vocab = M > N`` each row also names its nodes with a fresh subset of the ``M`` ids (which
ids occur varies from row to row); ``node_vocab=None`` and ``node_vocab=nodes`` give identical rows.

Draws, per row, from the row's stream: 32-bit halves of ``next_u64`` draws (draw ``d`` gives half
``2d`` from its high and half ``2d+1`` from its low 32 bits): halves ``0 .. N-1`` shuffle the
sources, halves ``N .. 2N-1`` draw the successors (or the permutation's Fisher–Yates picks), half
``2N`` the query, and further halves redraw rejected derangements. The validator parses the pairs
into a successor map keyed by id (checking that every node is a source exactly once), then follows
the pointers ``k`` times.

Example
-------
>>> import procgen
>>> b = procgen.khop(n=1, nodes=4, hops=2, seed=0)
>>> len(b[0]), int(b.answer_start[0])
(16, 15)
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit, uint64

from procgen._rng import _GOLDEN, below, hi32, lo32, mix64, row_offsets, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import MAX_VOCAB, fill_rows, range_params, resolve_range, row_validator

MAX_HOPS = 4096  # hop counts have one token each: 1 .. max_hops


# --- generator ------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _half(state, h):
    """Half ``h`` of the row's stream (``state``: the row's starting state): the high (even ``h``) or
    low (odd ``h``) 32 bits of the stream's draw ``h // 2``, computed as ``next_u64`` would give it."""
    bits = mix64(state + uint64((h >> 1) + 1) * _GOLDEN)
    return hi32(bits) if (h & 1) == 0 else lo32(bits)


@njit(cache=True, nogil=True)
def _khop_fill(base, start, hops, n, m, self_loops, permutation, path, out, offsets, answer_start):
    """Rows ``pairs, <query> q k=<k>, answer`` back to back into ``out`` (token dtype); returns the
    tokens written (see ``procgen.tasks._common``). ``hops``: int64 cumulative hop counts from
    ``row_offsets`` (row r has ``k = hops[r+1] - hops[r]``); ``n`` nodes named by ids ``0 .. m-1``.

    Scratch: ``halves`` (the row's first ``2n + 2`` 32-bit halves, computed up front: the draws do
    not depend on each other, so the loop vectorises), ``pool`` (the ids ``0 .. m-1``; a row's
    partial Fisher–Yates shuffle leaves its nodes in ``pool[:n]`` and is undone after the row, so
    every row starts from the identity), ``picks`` (the shuffle's swaps), ``succ`` (the successor
    of the j-th written node, as an index into the written order).
    Draws, per row: see the module docstring.
    """
    count = offsets.shape[0] - 1
    sep = m
    query = m + 1
    pool = np.arange(m).astype(np.int32)
    picks = np.empty(n, np.int64)
    succ = np.empty(n, np.int64)
    halves = np.empty(2 * n + 2, np.uint64)
    restore = m <= 4 * n  # few ids: rewrite pool[:m] instead of undoing the swaps one by one
    offsets[0] = 0
    p = 0
    for r in range(count):
        k = hops[r + 1] - hops[r]
        state = row_state(base, start + r)
        for d in range(n + 1):
            bits = mix64(state + uint64(d + 1) * _GOLDEN)
            halves[2 * d] = hi32(bits)
            halves[2 * d + 1] = lo32(bits)
        for j in range(n):  # sources: pool[0 .. n-1] after a partial Fisher-Yates shuffle
            pick = j + below(halves[j], m - j)
            picks[j] = pick
            t = pool[j]
            pool[j] = pool[pick]
            pool[pick] = t
        if not permutation:
            if self_loops:
                for j in range(n):
                    succ[j] = below(halves[n + j], n)
            else:
                for j in range(n):
                    t = below(halves[n + j], n - 1)
                    succ[j] = t + (t >= j)
        else:
            h = n
            while True:
                for j in range(n):
                    succ[j] = j
                deranged = True
                for j in range(n):
                    pick = j + below(halves[h + j] if h + j < 2 * n else _half(state, h + j), n - j)
                    t = succ[j]
                    succ[j] = succ[pick]
                    succ[pick] = t
                    deranged &= succ[j] != j  # position j is final after step j
                h += n
                if self_loops or deranged:
                    break
                if h == 2 * n:
                    h += 1  # half 2N is the query's: retries start after it
        qi = below(halves[2 * n], n)
        for j in range(n):
            out[p + 3 * j] = pool[j]
            out[p + 3 * j + 1] = pool[succ[j]]
            out[p + 3 * j + 2] = sep
        q = p + 3 * n
        out[q] = query
        out[q + 1] = pool[qi]
        out[q + 2] = query + k
        q += 3
        node = qi
        if path:
            for step in range(k):
                node = succ[node]
                out[q + step] = pool[node]
            q += k
        else:
            for step in range(k):
                node = succ[node]
            out[q] = pool[node]
            q += 1
        if restore:
            for i in range(m):
                pool[i] = i
        else:
            for j in range(n - 1, -1, -1):  # undo the shuffle: the next row starts from the identity
                t = pool[j]
                pool[j] = pool[picks[j]]
                pool[picks[j]] = t
        answer_start[r] = 3 * n + 3
        offsets[r + 1] = q
        p = q
    return p


def _node_ids(params) -> int:
    """M: node ids are 0 .. M-1."""
    return params["node_vocab"] if params["node_vocab"] is not None else params["nodes"]


def _khop_kernel(base, start, count, params, dtype):
    base = np.uint64(base)
    hops = row_offsets(base, start, count, params["min_hops"], params["max_hops"], 1)  # cumulative k
    n, path = params["nodes"], params["path"]
    capacity = count * (3 * n + 3) + (int(hops[-1]) if path else count)
    return fill_rows(_khop_fill, capacity, count, dtype, base, start, hops, n, _node_ids(params),
                     params["self_loops"], params["permutation"], path)


# --- validator: parses the pairs into a successor map keyed by id, then follows it -------------------

(_OK, _BAD_ANSWER_START, _BAD_LENGTH, _BAD_SEP, _BAD_ID, _DUPLICATE_SOURCE, _NOT_A_NODE, _SELF_LOOP,
 _REPEATED_TARGET, _BAD_QUERY, _BAD_HOPS, _WRONG_ANSWER) = range(12)
_REASONS = {
    _BAD_ANSWER_START: "answer_start is not 3*nodes + 3 (the first token after the hop count)",
    _BAD_LENGTH: "row length is not 3*nodes + 4 (3*nodes + 3 + k with path=True)",
    _BAD_SEP: "separator (id node_vocab) missing after a pair",
    _BAD_ID: "a node position holds an id outside 0 .. node_vocab-1",
    _DUPLICATE_SOURCE: "a node is the source of two pairs (every node has exactly one successor)",
    _NOT_A_NODE: "a successor or the query is not one of the row's nodes (no pair starts with it)",
    _SELF_LOOP: "a node is its own successor although self_loops=False",
    _REPEATED_TARGET: "a node is the successor of two nodes although permutation=True",
    _BAD_QUERY: "query token (id node_vocab+1) missing after the pairs",
    _BAD_HOPS: "hop-count token is not k=<k> for a k in [min_hops, max_hops]",
    _WRONG_ANSWER: "answer is not the node(s) reached by following the successors k times from the query",
}


@njit(cache=True, nogil=True)
def _khop_check(tokens, offsets, answer_start, n, m, min_hops, max_hops, self_loops, permutation, path):
    """Parse each row's pairs into ``succ`` (indexed by id; ``source[id] == r + 1`` marks the ids that
    are sources in row r, ``target[id] == r + 1`` those already a successor), check that the pairs
    list ``n`` distinct sources and that every successor and the query is one of them, then follow
    ``succ`` ``k`` times from the query. Returns ``(first bad row or -1, reason code)``."""
    count = offsets.shape[0] - 1
    succ = np.zeros(m, np.int64)
    source = np.zeros(m, np.int64)
    target = np.zeros(m, np.int64)
    for r in range(count):
        first = offsets[r]
        length = offsets[r + 1] - first
        stamp = r + 1
        if answer_start[r] != 3 * n + 3:
            return r, _BAD_ANSWER_START
        if length < 3 * n + 4:
            return r, _BAD_LENGTH
        for j in range(n):
            a = np.int64(tokens[first + 3 * j])
            b = np.int64(tokens[first + 3 * j + 1])
            if a < 0 or a >= m or b < 0 or b >= m:
                return r, _BAD_ID
            if np.int64(tokens[first + 3 * j + 2]) != m:
                return r, _BAD_SEP
            if source[a] == stamp:
                return r, _DUPLICATE_SOURCE
            if a == b and not self_loops:
                return r, _SELF_LOOP
            source[a] = stamp
            succ[a] = b
        for j in range(n):  # only now is every source known
            b = np.int64(tokens[first + 3 * j + 1])
            if source[b] != stamp:
                return r, _NOT_A_NODE
            if permutation:
                if target[b] == stamp:
                    return r, _REPEATED_TARGET
                target[b] = stamp
        at = first + 3 * n
        if np.int64(tokens[at]) != m + 1:
            return r, _BAD_QUERY
        node = np.int64(tokens[at + 1])
        if node < 0 or node >= m:
            return r, _BAD_ID
        if source[node] != stamp:
            return r, _NOT_A_NODE
        k = np.int64(tokens[at + 2]) - (m + 1)
        if k < min_hops or k > max_hops:
            return r, _BAD_HOPS
        if length != 3 * n + 3 + (k if path else 1):
            return r, _BAD_LENGTH
        for step in range(k):
            node = succ[node]
            if path and np.int64(tokens[at + 3 + step]) != node:
                return r, _WRONG_ANSWER
        if not path and np.int64(tokens[at + 3]) != node:
            return r, _WRONG_ANSWER
    return -1, _OK


_khop_validate = row_validator(_khop_check, _REASONS, lambda params: (
    params["nodes"], _node_ids(params), params["min_hops"], params["max_hops"], params["self_loops"],
    params["permutation"], params["path"]))


# --- vocabulary and parameters ------------------------------------------------------------------

def _vocab(params) -> list[str]:
    """``0 .. M-1``, ``<sep>``, ``<query>``, ``k=1 .. k=max_hops``, ``<pad>``."""
    return [*map(str, range(_node_ids(params))), "<sep>", "<query>",
            *(f"k={k}" for k in range(1, params["max_hops"] + 1)), "<pad>"]


def _vocab_size(params) -> int:
    return _node_ids(params) + 3 + params["max_hops"]


def _row_length(params, hops) -> int:
    return 3 * params["nodes"] + 3 + (hops if params["path"] else 1)


def _mean_length(params):
    return _row_length(params, Fraction(params["min_hops"] + params["max_hops"], 2))


def _resolve(params):
    resolve_range("khop", params, "hops")
    n, m = params["nodes"], params["node_vocab"]
    if m is not None and m < n:
        raise ValueError(f"khop: node_vocab must be >= nodes (each row names its {n} nodes with distinct ids); "
                         f"got node_vocab={m} < nodes={n}")
    if not params["self_loops"] and n < 2:
        raise ValueError(f"khop: self_loops=False needs nodes >= 2 (a lone node can only point to itself); "
                         f"got nodes={n}")
    return params


TASKS = [
    Task(
        name="khop",
        summary="k-hop pointer chasing: N shuffled (node, successor) pairs, a query node and k, then the "
                "node k hops away",
        params=(
            Param("nodes", int, 32, "N: nodes in the graph, one (node, successor) pair each", low=1, high=MAX_VOCAB),
            *range_params("hops", 4, 1, MAX_HOPS, "hop count k", "fewest hops", "most hops"),
            Param("path", bool, False, "answer with the whole path (the k nodes after the query), not only its end"),
            Param("self_loops", bool, True, "a node may be its own successor (False: successors uniform over the "
                  "other N-1 nodes)"),
            Param("permutation", bool, False, "successors form a random permutation (disjoint cycles) instead of a "
                  "random mapping"),
            Param("node_vocab", int, None, "M: node ids 0..M-1, each row names its N nodes with N distinct ids drawn "
                  "uniformly; None: M = N", low=1, high=MAX_VOCAB, nullable=True),
        ),
        kernel=_khop_kernel,
        validator=_khop_validate,
        vocab=_vocab,
        size=_vocab_size,
        max_row_length=lambda params: _row_length(params, params["max_hops"]),
        expected_row_length=_mean_length,
        pad_id=lambda params: _node_ids(params) + 2 + params["max_hops"],
        resolve=_resolve,
        notes="Our process (no reference code). Pairs `s succ(s) <sep>` in uniformly random order, then "
              "`<query> q k=<k>` and the answer; `answer_start = 3N + 3`. Self-loops are allowed by default "
              "(a uniformly random mapping); `self_loops=False` forbids them, `permutation=True` makes the "
              "successor map a permutation, `node_vocab` draws fresh node ids per row.",
        finding="Multi-hop pointer chasing is the synthetic probe of reasoning depth in Allen-Zhu's *Physics of "
                "Language Models, Part 4.1* (2025): its Depo tasks list the edges of a directed permutation in "
                "random order and ask for the k-th successor of a query node, to compare how deep a chain "
                "each architecture resolves (as we read the paper, its Canon layers increase that depth). "
                "`permutation=True` gives that kind of graph; we have not checked the paper's exact sizes, "
                "hop ranges and accuracies, so none are quoted here. Sanford, Hsu and Telgarsky (2024) study the "
                "related k-hop induction-head task theoretically (depth logarithmic in k suffices).",
    ),
]
