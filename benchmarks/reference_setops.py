"""Plain-Python processes of the set and lookup tasks (``procgen.tasks.setops``), the benchmark baseline.

Each ``ref_<task>(n_rows, rng, **params) -> list[list[int]]`` builds rows in straightforward
Python with ``random.Random`` (one row = one Python list, one ``randint`` per token), the way the
paper's released generator does. Ids and layouts match ``procgen`` (content ``1 .. V-1``,
``SEP = V``; count ``#c = V+3+c``; search NOT_FOUND ``= V+3``, ``@i = V+4+i``), so the
*distributions* are the same as procgen's; the random streams are not.

``REFERENCE`` maps each task name to ``(function, default params)`` for the benchmark runner::

    >>> import random
    >>> fn, params = REFERENCE["duplicate"]
    >>> rows = fn(2, random.Random(0), **params)
    >>> len(rows[0]) == 3 * params["length"] + 1
    True
"""

from __future__ import annotations

import random


def _draw(rng: random.Random, length: int, vocab_size: int) -> list[int]:
    return [rng.randint(1, vocab_size - 1) for _ in range(length)]


def _setop(n_rows, rng, length, vocab_size, keep_common):
    rows = []
    len_x = (length + 1) // 2
    for _ in range(n_rows):
        x = _draw(rng, len_x, vocab_size)
        y = _draw(rng, length - len_x, vocab_size)
        in_y = set(y)
        answer = [t for t in dict.fromkeys(x) if (t in in_y) == keep_common]
        rows.append(x + [vocab_size] + y + [vocab_size] + answer)
    return rows


def ref_intersect(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100) -> list[list[int]]:
    """x, SEP, y, SEP, distinct tokens of x that occur in y (x: ceil(length/2) tokens)."""
    return _setop(n_rows, rng, length, vocab_size, True)


def ref_difference(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100) -> list[list[int]]:
    """x, SEP, y, SEP, distinct tokens of x that do not occur in y."""
    return _setop(n_rows, rng, length, vocab_size, False)


def _query(rng, x, vocab_size, p_present):
    """t: from a uniform position of x with probability p_present, else uniform in 1 .. V-1."""
    if rng.random() < p_present:
        return x[rng.randrange(len(x))]
    return rng.randint(1, vocab_size - 1)


def ref_count(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100,
              p_present: float = 0.5) -> list[list[int]]:
    """x, SEP, t, SEP, #c (id V+3+c, c = occurrences of t in x)."""
    rows = []
    for _ in range(n_rows):
        x = _draw(rng, length, vocab_size)
        t = _query(rng, x, vocab_size, p_present)
        rows.append(x + [vocab_size, t, vocab_size, vocab_size + 3 + x.count(t)])
    return rows


def ref_search(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100,
               p_present: float = 0.5) -> list[list[int]]:
    """x, SEP, t, SEP, @i (id V+4+i, i = index of the first t) or NOT_FOUND (id V+3)."""
    rows = []
    for _ in range(n_rows):
        x = _draw(rng, length, vocab_size)
        t = _query(rng, x, vocab_size, p_present)
        answer = vocab_size + 4 + x.index(t) if t in x else vocab_size + 3
        rows.append(x + [vocab_size, t, vocab_size, answer])
    return rows


def ref_duplicate(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100) -> list[list[int]]:
    """x, SEP, x1 x1 x2 x2 ..."""
    rows = []
    for _ in range(n_rows):
        x = _draw(rng, length, vocab_size)
        answer = []
        for t in x:
            answer += [t, t]
        rows.append(x + [vocab_size] + answer)
    return rows


def ref_replace(n_rows: int, rng: random.Random, length: int = 64, vocab_size: int = 100) -> list[list[int]]:
    """x, SEP, a, SEP, b, SEP, x with every a replaced by b (a uniform among x's distinct tokens)."""
    rows = []
    for _ in range(n_rows):
        x = _draw(rng, length, vocab_size)
        a = rng.choice(list(dict.fromkeys(x)))
        b = rng.randint(1, vocab_size - 1)
        rows.append(x + [vocab_size, a, vocab_size, b, vocab_size] + [b if t == a else t for t in x])
    return rows


_DEFAULTS = {"length": 64, "vocab_size": 100}

REFERENCE = {
    "intersect": (ref_intersect, dict(_DEFAULTS)),
    "difference": (ref_difference, dict(_DEFAULTS)),
    "count": (ref_count, {**_DEFAULTS, "p_present": 0.5}),
    "search": (ref_search, {**_DEFAULTS, "p_present": 0.5}),
    "duplicate": (ref_duplicate, dict(_DEFAULTS)),
    "replace": (ref_replace, dict(_DEFAULTS)),
}
