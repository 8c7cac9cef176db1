"""Plain-Python processes for ww, QUEUE and the n-gram control (the benchmark baseline).

Each ``ref_<task>(n_rows, rng, **params) -> list[list[int]]`` builds rows of the same process as
``procgen.tasks.ww`` / ``procgen.tasks.queue`` / ``procgen.tasks.ngram`` in straightforward
Python with ``random.Random`` (one row = one Python list, one ``random`` call per decision), with
procgen's ids. The distributions are the same; the random streams are not.

``REFERENCE`` maps each task name to ``(function, params)`` for the benchmark runner::

    >>> import random
    >>> fn, params = REFERENCE["ww"]
    >>> row = fn(1, random.Random(0), **params)[0]
    >>> row[:params["length"]] == row[params["length"]:]
    True
"""

from __future__ import annotations

import bisect
import importlib.util
import random
from pathlib import Path


def ref_ww(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100, min_length: int | None = None,
           max_length: int | None = None, separator: bool = False) -> list[list[int]]:
    """w, [SEP,] w with w uniform over 1 .. V-1 and its length uniform over [min_length, max_length]."""
    lo = length if min_length is None else min_length
    hi = length if max_length is None else max_length
    rows = []
    for _ in range(n_rows):
        size = rng.randint(lo, hi)
        w = [rng.randint(1, vocab_size - 1) for _ in range(size)]
        rows.append(w + [vocab_size] + w if separator else w + w)
    return rows


def ref_queue(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100,
              enqueue_prob_early: float = 0.75, dequeue_prob_late: float = 0.75,
              split_frac: float = 2 / 3) -> list[list[int]]:
    """length enqueue/dequeue operations (dequeue = 0), SEP, final queue front -> back (the STACK
    reference process with a first-in-first-out list)."""
    rows = []
    split = int(split_frac * length)
    for _ in range(n_rows):
        queue: list[int] = []
        queued: set[int] = set()
        ops = []
        for step in range(length):
            if len(queue) <= 1:
                enqueue = True
            elif step == length - 1 or len(queue) == vocab_size - 1:
                enqueue = False
            elif step < split:
                enqueue = rng.random() < enqueue_prob_early
            else:
                enqueue = rng.random() >= dequeue_prob_late
            if enqueue:
                token = rng.choice([t for t in range(1, vocab_size) if t not in queued])
                queue.append(token)
                queued.add(token)
                ops.append(token)
            else:
                queued.discard(queue.pop(0))
                ops.append(0)
        rows.append(ops + [vocab_size] + queue)
    return rows


# --- the n-gram control --------------------------------------------------------------------------

def _sibling(name: str):
    """A reference module of this folder, loaded by path (works without the benchmarks package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SOURCES = {"dyck": ("reference_dyck", "ref_dyck"), "dyck_shuffle": ("reference_dyck", "ref_dyck_shuffle"),
            "stack": ("reference_sequence", "ref_stack"), "identity": ("reference_sequence", "ref_identity"),
            "sort": ("reference_sequence", "ref_sort"), "set": ("reference_sequence", "ref_set"),
            "union": ("reference_sequence", "ref_union"), "ww": (None, "ref_ww"), "queue": (None, "ref_queue")}
_MODELS: dict = {}


def _model(source: str, source_params: tuple, order: int, sample_rows: int):
    """(sample rows, {context: (next tokens, cumulative counts)}, (unigram tokens, cumulative counts)),
    built once per setting from a sample of the source's plain-Python process (seed 0)."""
    key = (source, source_params, order, sample_rows)
    if key not in _MODELS:
        module, name = _SOURCES[source]
        fn = globals()[name] if module is None else getattr(_sibling(module), name)
        sample = fn(sample_rows, random.Random(0), **dict(source_params))
        counts: dict = {}
        unigram: dict = {}
        for row in sample:
            for j, token in enumerate(row):
                unigram[token] = unigram.get(token, 0) + 1
                if j >= order:
                    following = counts.setdefault(tuple(row[j - order:j]), {})
                    following[token] = following.get(token, 0) + 1
        table = {}
        for context, following in counts.items():
            tokens = sorted(following)
            cumulative, total = [], 0
            for token in tokens:
                total += following[token]
                cumulative.append(total)
            table[context] = (tokens, cumulative)
        tokens = sorted(unigram)
        cumulative, total = [], 0
        for token in tokens:
            total += unigram[token]
            cumulative.append(total)
        _MODELS[key] = (sample, table, (tokens, cumulative))
    return _MODELS[key]


def ref_ngram(n_rows: int, rng: random.Random, source: str = "dyck", order: int = 2, sample_rows: int = 4096,
              source_params: dict | None = None) -> list[list[int]]:
    """Rows of an order-k Markov chain fitted to ``sample_rows`` rows of the source: a uniformly
    chosen sample row gives the length and the first k tokens, then each token follows the counts
    of its k predecessors (the unigram counts for a context the sample never continues)."""
    sample, table, fallback = _model(source, tuple(sorted((source_params or {}).items())), order, sample_rows)
    rows = []
    for _ in range(n_rows):
        shape = rng.choice(sample)
        row = shape[:order]
        for _ in range(len(shape) - len(row)):
            tokens, cumulative = table.get(tuple(row[-order:]), fallback)
            pick = rng.randrange(cumulative[-1])
            row.append(tokens[bisect.bisect_right(cumulative, pick)])
        rows.append(row)
    return rows


REFERENCE = {
    "ww": (ref_ww, {"length": 64, "vocab_size": 100}),
    "queue": (ref_queue, {"length": 64, "vocab_size": 100, "enqueue_prob_early": 0.75, "dequeue_prob_late": 0.75,
                          "split_frac": 2 / 3}),
    "ngram": (ref_ngram, {"source": "dyck", "order": 2, "sample_rows": 4096}),
}
