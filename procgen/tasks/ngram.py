"""ngram: an order-k Markov chain fitted to a sample of another task -- the "no structure beyond
k-grams" control.

Shuffling a row's tokens keeps its unigrams and destroys everything else; the n-gram control keeps
more: every k-gram -> next-token transition of the source task, with its frequency, and nothing
beyond it (no bracket matching, no copy, no stack). A warm-up that helps only because of the
source's local statistics helps just as well from its n-gram control.

The model (built once per ``(source, source_params, order, sample_rows)`` and cached):

* the **sample**: rows ``0 .. sample_rows-1`` of the source task's own stream (seed 0, split
  ``train``: the rows ``procgen.generate(source, sample_rows, **source_params)`` returns);
* the **transition counts**: for every row of the sample and every position ``j >= k``, the
  context ``(t[j-k], .., t[j-1])`` -> next token ``t[j]`` (never across rows). Per context, the
  observed next tokens with their counts, as an alias table (one draw, no search): ``V`` contexts
  for order 1, ``V*V`` for order 2 (which needs ``V <= 2048``);
* the **unigram** counts of every token of the sample: the fallback of a context that the sample
  never continues (one seen only at the end of rows).

A row (``row`` of the ngram task's stream):

================================  ==============================================================
part                              drawn from
================================  ==============================================================
``s``                             the row's length stream: a sample row, uniform over the sample
length                            ``len(sample row s)``: the source's length distribution
first ``min(k, length)`` tokens   the first tokens of sample row ``s``: the start-state
                                  distribution
every further token               the chain: the previous ``k`` tokens' observed next tokens, in
                                  proportion to their counts (unigram counts for an unseen
                                  context); one 64-bit draw of the row's stream per token
answer_start                      sample row ``s``'s (so within the row; 0 for an LM-style source)
================================  ==============================================================

The vocabulary, its names, the padding id and the token dtype are the source's. A token draw
uses 32 bits to pick one of the context's ``m`` next tokens uniformly and 32 bits to keep it or
take its alias (Walker's alias method, built in integer arithmetic), so each transition's
probability is its count over the context's total to within about ``m * 2**-32``.
"""

from __future__ import annotations

import functools
import json
from fractions import Fraction

import numpy as np
from numba import njit, uint64

from procgen._rng import _GOLDEN, base_key, below, hi32, length_bits, lo32, mix64, row_state
from procgen.tasks import Param, Task, get_task
from procgen.tasks._common import row_validator

ORDERS = (1, 2)
MAX_ORDER2_VOCAB = 2048  # order 2 indexes V*V contexts: one int64 each, 32 MiB at V = 2048
MAX_SAMPLE_TOKENS = 2 ** 24  # the sample's longest possible size: sample_rows * the source's longest row
_NOT_SOURCES = ("ngram", "mix")
_S5 = np.uint64(5)
_LOW32 = np.uint64(0xFFFFFFFF)


# --- parameters -----------------------------------------------------------------------------------

def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _lm_style(params: dict) -> bool:
    """LM-style exactly when the source is: rows keep the answer_start of a source row."""
    source, source_params = _source(params)
    return source.is_lm_style(source_params)


def _source(params: dict):
    """``(source Task, its resolved params)`` of resolved ngram ``params``."""
    source = get_task(params["source"])
    return source, source.resolve_params(params["source_params"])


def _resolve(params: dict) -> dict:
    """Check the source and resolve its parameters (cheap: nothing is generated here)."""
    name = params["source"]
    if name in _NOT_SOURCES:
        raise ValueError(f"ngram: source must be a single task, not {name!r} (an n-gram of an n-gram or of a "
                         f"mixture is not a control of a task)")
    try:
        source = get_task(name)
    except ValueError:
        raise ValueError(f"ngram: source must be a registered task; got {name!r}") from None
    if source.row_task is not None:
        raise ValueError(f"ngram: source must be a single task; {name!r} mixes tasks")
    given = params["source_params"]
    if not isinstance(given, dict):
        raise ValueError(f"ngram: source_params must be a mapping of {name}'s parameters; got {given!r}")
    try:
        resolved = source.resolve_params(given)
    except ValueError as err:
        raise ValueError(f"ngram: source_params: {err}") from None
    params["source_params"] = _jsonable(resolved)  # JSON-shaped, so resolving again changes nothing
    vocab = source.vocab_size(resolved)
    if params["order"] == 2 and vocab > MAX_ORDER2_VOCAB:
        raise ValueError(f"ngram: order=2 needs a source vocabulary of at most {MAX_ORDER2_VOCAB} ids (V*V contexts "
                         f"must fit in memory); {name} has {vocab} (use order=1 or a smaller vocabulary)")
    longest = params["sample_rows"] * source.max_row_length(resolved)
    if longest > MAX_SAMPLE_TOKENS:
        raise ValueError(f"ngram: sample_rows={params['sample_rows']} rows of {name} may hold up to {longest} tokens, "
                         f"more than the {MAX_SAMPLE_TOKENS} a sample may have; lower sample_rows")
    return params


def _cache_key(params: dict) -> str:
    return json.dumps([params["source"], params["source_params"], params["order"], params["sample_rows"]],
                      sort_keys=True)


# --- the sample and the transition table (cached) -----------------------------------------------

@functools.lru_cache(maxsize=16)
def _sample(source_json: str, rows: int):
    """The source's first ``rows`` rows (seed 0, train) as ``(tokens int64, offsets, answer_start, V)``."""
    name, source_params = json.loads(source_json)
    source = get_task(name)
    params = source.resolve_params(source_params)
    tokens, offsets, answer_start = source.kernel(base_key(0, name, "train"), 0, rows, params,
                                                  source.token_dtype(params))
    arrays = (tokens.astype(np.int64), np.asarray(offsets, np.int64), np.asarray(answer_start, np.int32))
    for array in arrays:
        array.setflags(write=False)
    return (*arrays, source.vocab_size(params))


def _sample_of(params: dict):
    return _sample(json.dumps([params["source"], params["source_params"]], sort_keys=True), params["sample_rows"])


def _transitions(tokens, offsets, order: int, vocab: int):
    """``(context code, next token)`` of every position ``j >= order`` of every row (int64 arrays)."""
    position = np.arange(len(tokens), dtype=np.int64)
    row_first = np.repeat(offsets[:-1], np.diff(offsets))
    at = position[position - row_first >= order]
    context = tokens[at - 1]
    if order == 2:
        context = tokens[at - 2] * vocab + context
    return context, tokens[at]


@njit(cache=True, nogil=True)
def _alias(starts, counts):
    """Walker/Vose alias tables, one per block ``starts[b] .. starts[b+1]`` of ``counts``, in integer
    arithmetic. Entry ``i`` of a block of ``n`` entries (total count ``T``) keeps itself with
    probability ``keep[i] / 2**32`` and otherwise gives entry ``other[i]``, so that drawing ``i``
    uniformly and then keeping or not returns entry ``e`` with probability ``counts[e] / T`` (up to
    the rounding of ``keep`` to 32 bits). Returns ``(keep uint64, other int64 global entry index)``."""
    size = counts.shape[0]
    keep = np.empty(size, np.uint64)
    other = np.empty(size, np.int64)
    small = np.empty(size, np.int64)
    large = np.empty(size, np.int64)
    scaled = np.empty(size, np.int64)
    for b in range(starts.shape[0] - 1):
        lo, hi = np.int64(starts[b]), np.int64(starts[b + 1])
        n = hi - lo
        total = np.int64(0)
        for e in range(lo, hi):
            total += counts[e]
        ns = 0
        nl = 0
        for e in range(lo, hi):  # each column holds `total` units; entry e brings counts[e] * n of them
            scaled[e] = counts[e] * n
            other[e] = e
            if scaled[e] < total:
                small[ns] = e
                ns += 1
            else:
                large[nl] = e
                nl += 1
        while ns > 0 and nl > 0:
            ns -= 1
            s = small[ns]
            g = large[nl - 1]
            keep[s] = (np.uint64(scaled[s]) << np.uint64(32)) // np.uint64(total)
            other[s] = g
            scaled[g] -= total - scaled[s]
            if scaled[g] < total:
                nl -= 1
                small[ns] = g
                ns += 1
        for i in range(nl):  # full columns (and, by rounding, any left in small) always keep
            keep[large[i]] = np.uint64(1) << np.uint64(32)
        for i in range(ns):
            keep[small[i]] = np.uint64(1) << np.uint64(32)
    return keep, other


@functools.lru_cache(maxsize=16)
def _table(key: str):
    """The generator's model of the cached sample: ``(V, arrays)``, the arrays read-only (shared).

    The entries are every observed ``(context, next token)``, sorted, then the tokens of the
    sample (the unigram block). ``contexts`` (int64, ``V**k``): context ``c``'s block of entries,
    ``first << 32 | size`` (the unigram block for a context the sample never continues). Per
    entry, its alias table: ``keep`` (uint64, at most ``2**32``: keep the entry if the draw's low
    32 bits are below it, else take its alias), ``tokens`` (uint64: the entry's token in the low,
    the alias's in the high 32 bits) and ``follow_keep`` / ``follow_alias`` (int64: the block of
    the context that each choice leads to, so that the chain needs one table look-up per token;
    -1 in the unigram block, whose next context depends on the token before). Per sample row: its
    length, the index of its first token in the sample and its answer_start; the sample (int64).
    """
    source, source_params, order, rows = json.loads(key)
    tokens, offsets, answer_start, vocab = _sample_of(
        {"source": source, "source_params": source_params, "sample_rows": rows})
    context, nxt = _transitions(tokens, offsets, order, vocab)
    codes, counts = np.unique(context * vocab + nxt, return_counts=True)
    starts = np.searchsorted(codes // vocab, np.arange(vocab ** order + 1, dtype=np.int64))
    unigram = np.bincount(tokens, minlength=vocab)
    present = np.flatnonzero(unigram)
    entries = np.concatenate([codes % vocab, present]).astype(np.int64)
    keep, other = _alias(np.append(starts, len(entries)), np.concatenate([counts, unigram[present]]).astype(np.int64))
    sizes = np.diff(starts)
    unseen = sizes == 0  # contexts the sample never continues: the unigram block
    contexts = (np.where(unseen, starts[-1], starts[:-1]).astype(np.int64) << 32) | np.where(unseen, len(present), sizes)
    # the context after entry e of context c: (c's last token, e's token) for order 2, e's token for order 1
    after = (codes // vocab % vocab) * vocab + codes % vocab if order == 2 else codes % vocab
    follow = np.concatenate([contexts[after], np.full(len(present), -1, np.int64)])
    table = (contexts, keep, (entries[other].astype(np.uint64) << np.uint64(32)) | entries.astype(np.uint64),
             follow, follow[other], np.diff(offsets), offsets[:-1].copy(), answer_start, tokens)
    for array in table:
        array.setflags(write=False)
    return vocab, table


# --- generator ------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _sample_rows(base, start, count, sample_lengths):
    """Per row, the sample row ``s`` it copies its shape from (the row's length stream, high 32 bits,
    uniform over the sample), and the int64 offsets of the rows (``count + 1``, from 0)."""
    rows = sample_lengths.shape[0]
    chosen = np.empty(count, np.int64)
    offsets = np.empty(count + 1, np.int64)
    offsets[0] = 0
    for r in range(count):
        s = below(hi32(length_bits(base, start + r)), rows)
        chosen[r] = s
        offsets[r + 1] = offsets[r] + sample_lengths[s]
    return chosen, offsets


@njit(cache=True, inline="always")
def _start_row(r, base, start, chosen, order, scale, contexts, sample_first, sample_answer, sample_tokens, out,
               offsets, answer_start, draws):
    """Write row r's first ``min(order, length)`` tokens and its answer_start and fill ``draws`` with
    its draws; return ``(where its chain starts in out, tokens to draw, last token, block of the
    current context)``."""
    s = chosen[r]
    p = offsets[r]
    n = offsets[r + 1] - p
    head = min(order, n)
    for j in range(head):
        out[p + j] = sample_tokens[sample_first[s] + j]
    answer_start[r] = sample_answer[s]
    state = row_state(base, start + r)
    for j in range(n - head):  # independent of the tokens: computed up front, vectorised
        draws[j] = mix64(state + uint64(j + 1) * _GOLDEN)
    previous = np.int64(sample_tokens[sample_first[s] + head - 1]) if head > 0 else np.int64(0)
    before = np.int64(sample_tokens[sample_first[s]]) if head > 1 else np.int64(0)
    return p + head, n - head, previous, contexts[before * scale + previous]


@njit(cache=True, nogil=True)
def _ngram_fill(base, start, chosen, order, vocab, contexts, keep, tokens, follow_keep, follow_alias, sample_first,
                sample_answer, sample_tokens, out, offsets, answer_start):
    """Rows of the chain into ``out`` (``offsets`` already holds their bounds).

    ``chosen[r]``: row r's sample row (its length, first ``order`` tokens and answer_start);
    ``contexts`` / ``keep`` / ``tokens`` / ``follow_keep`` / ``follow_alias``: the transition
    table with its alias tables (see :func:`_table`); ``sample_first`` / ``sample_answer`` /
    ``sample_tokens``: the sample.

    Draws, per row: one 64-bit draw of the row's stream per token after the first ``order``
    (draw ``j`` is ``mix64(state + (j+1) * golden)``, what ``next_u64`` yields step by step): its
    high 32 bits pick an entry of the context's block uniformly (multiply-shift), its low 32 bits
    keep that entry if below ``keep``, else take the entry's alias.

    A chain is a sequence of dependent table look-ups, so rows go two at a time with their chains
    interleaved (the processor overlaps them); each row still uses only its own draws. A row
    continues its chain in ``(at, left, previous, block)``: where its next token goes, how many
    are left, its last token and the block (``first << 32 | size``) of its current context.
    """
    count = chosen.shape[0]
    scale = vocab if order == 2 else 0  # a context's index: token before * scale + last token
    longest = 0
    for r in range(count):
        longest = max(longest, offsets[r + 1] - offsets[r])
    draws = np.empty((2, longest), np.uint64)
    for r in range(0, count, 2):
        at_a, left_a, previous_a, block_a = _start_row(r, base, start, chosen, order, scale, contexts, sample_first,
                                                       sample_answer, sample_tokens, out, offsets, answer_start,
                                                       draws[0])
        at_b, left_b, previous_b, block_b = at_a, 0, previous_a, block_a
        if r + 1 < count:
            at_b, left_b, previous_b, block_b = _start_row(r + 1, base, start, chosen, order, scale, contexts,
                                                           sample_first, sample_answer, sample_tokens, out, offsets,
                                                           answer_start, draws[1])
        j = 0
        while j < left_a or j < left_b:
            if j < left_a:
                bits = draws[0, j]
                e = (block_a >> 32) + below(hi32(bits), block_a & 0xFFFFFFFF)
                alias = lo32(bits) >= keep[e]
                token = np.int64((tokens[e] >> (uint64(alias) << _S5)) & _LOW32)
                block_a = follow_alias[e] if alias else follow_keep[e]
                if block_a < 0:  # drawn from the unigram block: the next context is (previous, token)
                    block_a = contexts[previous_a * scale + token]
                out[at_a + j] = token
                previous_a = token
            if j < left_b:
                bits = draws[1, j]
                e = (block_b >> 32) + below(hi32(bits), block_b & 0xFFFFFFFF)
                alias = lo32(bits) >= keep[e]
                token = np.int64((tokens[e] >> (uint64(alias) << _S5)) & _LOW32)
                block_b = follow_alias[e] if alias else follow_keep[e]
                if block_b < 0:
                    block_b = contexts[previous_b * scale + token]
                out[at_b + j] = token
                previous_b = token
            j += 1


def _ngram_kernel(base, start, count, params, dtype):
    vocab, (contexts, keep, tokens, follow_keep, follow_alias, lengths, first, answers, sample) = \
        _table(_cache_key(params))
    base = np.uint64(base)
    chosen, offsets = _sample_rows(base, start, count, lengths)
    out = np.empty(int(offsets[-1]), dtype)
    answer_start = np.empty(count, np.int32)
    _ngram_fill(base, start, chosen, params["order"], vocab, contexts, keep, tokens, follow_keep, follow_alias,
                first, answers, sample, out, offsets, answer_start)
    return out, offsets, answer_start


# --- validator: membership of every transition in the sample's set of observed k-grams ----------

@functools.lru_cache(maxsize=16)
def _observed(key: str):
    """The validator's own view of the sample: the sorted distinct transition codes
    ``context * V + next``, the tokens that occur at all, and the sorted distinct row starts
    ``(length, first k tokens (-1 past the row's end), answer_start)``."""
    source, source_params, order, rows = json.loads(key)
    tokens, offsets, answer_start, vocab = _sample_of(
        {"source": source, "source_params": source_params, "sample_rows": rows})
    context, nxt = _transitions(tokens, offsets, order, vocab)
    codes = np.sort(context * vocab + nxt)
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes
    occurs = np.zeros(vocab, np.bool_)
    occurs[tokens] = True
    lengths = np.diff(offsets)
    heads = np.full((len(lengths), order), -1, np.int64)
    for j in range(order):
        has = lengths > j
        heads[has, j] = tokens[offsets[:-1][has] + j]
    shapes = np.unique(np.column_stack([lengths, heads, answer_start.astype(np.int64)]), axis=0)
    return codes, occurs, np.ascontiguousarray(shapes), vocab


(_OK, _BAD_ID, _BAD_LENGTH, _BAD_START, _BAD_ANSWER_START, _UNSEEN_TRANSITION, _BAD_FALLBACK) = range(7)
_REASONS = {
    _BAD_ID: "token id outside the source's vocabulary",
    _BAD_LENGTH: "row length is not the length of any sample row",
    _BAD_START: "the row's first k tokens are not the start of a sample row of its length",
    _BAD_ANSWER_START: "answer_start is not that of a sample row of this length and start",
    _UNSEEN_TRANSITION: "a k-gram -> next-token transition that the sample never shows",
    _BAD_FALLBACK: "after a context the sample never continues, a token that never occurs in the sample",
}


@njit(cache=True, nogil=True)
def _has_prefix(shapes, key, width):
    """Whether a row of the lexicographically sorted int64 table ``shapes`` starts with ``key[:width]``."""
    lo, hi = 0, shapes.shape[0]
    while lo < hi:  # the first row >= key[:width] in lexicographic order
        mid = (lo + hi) >> 1
        less = False
        for c in range(width):
            if shapes[mid, c] != key[c]:
                less = shapes[mid, c] < key[c]
                break
        if less:
            lo = mid + 1
        else:
            hi = mid
    if lo == shapes.shape[0]:
        return False
    for c in range(width):
        if shapes[lo, c] != key[c]:
            return False
    return True


@njit(cache=True, nogil=True)
def _contains(sorted_codes, value):
    i = np.searchsorted(sorted_codes, value)
    return i < sorted_codes.shape[0] and sorted_codes[i] == value


@njit(cache=True, nogil=True)
def _ngram_check(tokens, offsets, answer_start, order, vocab, codes, occurs, shapes):
    """Each row: ids below V; ``(length)``, ``(length, first k tokens)`` and ``(length, first k
    tokens, answer_start)`` are prefixes of a sample row's shape; every later token is a transition
    the sample shows after its ``k`` predecessors (a binary search in the sorted codes), or, for a
    context the sample never continues (no code in ``[c*V, (c+1)*V)``), a token of the sample.
    Returns ``(first bad row or -1, reason code)``."""
    key = np.empty(order + 2, np.int64)
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        n = offsets[r + 1] - first
        for j in range(n):
            t = np.int64(tokens[first + j])
            if t < 0 or t >= vocab:
                return r, _BAD_ID
        key[0] = n
        for j in range(order):
            key[1 + j] = np.int64(tokens[first + j]) if j < n else -1
        key[order + 1] = answer_start[r]
        if not _has_prefix(shapes, key, 1):
            return r, _BAD_LENGTH
        if not _has_prefix(shapes, key, order + 1):
            return r, _BAD_START
        if not _has_prefix(shapes, key, order + 2):
            return r, _BAD_ANSWER_START
        for j in range(order, n):
            context = np.int64(tokens[first + j - 1])
            if order == 2:
                context += np.int64(tokens[first + j - 2]) * vocab
            t = np.int64(tokens[first + j])
            i = np.searchsorted(codes, context * vocab)
            if i < codes.shape[0] and codes[i] < (context + 1) * vocab:
                if not _contains(codes, context * vocab + t):
                    return r, _UNSEEN_TRANSITION
            elif not occurs[t]:
                return r, _BAD_FALLBACK
    return -1, _OK


def _check_args(params):
    codes, occurs, shapes, vocab = _observed(_cache_key(params))
    return params["order"], vocab, codes, occurs, shapes


# --- the task -------------------------------------------------------------------------------------

def _mean_length(params) -> Fraction:
    """The mean row length: the sample's (every sample row is equally likely)."""
    _, offsets, _, _ = _sample_of(params)
    return Fraction(int(offsets[-1]), len(offsets) - 1)


TASKS = [
    Task(
        name="ngram",
        summary="an order-k Markov chain fitted to a sample of another task (the n-gram control)",
        params=(
            Param("source", str, "dyck", "the task whose k-gram statistics the rows copy (not ngram or mix)"),
            Param("source_params", dict, {}, "parameters of the source task (its defaults where unset)"),
            Param("order", int, 2, "k: each token depends on the k tokens before it", low=1, high=2, choices=ORDERS),
            Param("sample_rows", int, 4096, "rows of the source (seed 0, train) the counts are estimated from",
                  low=1, high=2 ** 20),
        ),
        kernel=_ngram_kernel,
        validator=row_validator(_ngram_check, _REASONS, _check_args),
        vocab=lambda params: _source(params)[0].vocab(_source(params)[1]),
        size=lambda params: _source(params)[0].vocab_size(_source(params)[1]),
        max_row_length=lambda params: _source(params)[0].max_row_length(_source(params)[1]),
        pad_id=lambda params: _source(params)[0].pad_id(_source(params)[1]),
        expected_row_length=_mean_length,
        resolve=_resolve,
        lm_style=_lm_style,
        notes="Rows take their length, first k tokens and answer_start from a uniformly drawn row of the sample, "
              "so rows of an LM-style source (dyck, ww) have answer_start 0 and rows of an input -> output source "
              "keep its answer position (the chain does not know where the answer is: it is a marker, not a "
              "layout). A context the sample never continues (seen only at the end of rows) falls back to the "
              "unigram counts of the sample. The table is built on first use (seconds for large samples) and "
              "cached per (source, source_params, order, sample_rows) in each process.",
        finding="The null model that shuffled-token controls call for: it keeps the source's k-gram statistics "
                "(unigrams and local transitions, with their frequencies) and removes every longer-range structure, "
                "so a warm-up gain that survives it comes from local statistics, and one that vanishes needs the "
                "structure. The papers behind procgen report token-shuffled controls (e.g. a Dyck warm-up lifts "
                "haystack recall to 96.9%, its shuffled tokens to 10.3%); the n-gram control sits between the two, "
                "and `procgen train reproduce haystack_controls` measures it.",
    ),
]
