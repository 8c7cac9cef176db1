"""Plain-Python baselines for eca, haystack, addition, reversed_addition and multiplication.

Each ``ref_<task>(n_rows, rng, **params) -> list[list[int]]`` is a straightforward pure-Python
implementation of the same process and token layout as ``procgen.tasks.eca`` /
``procgen.tasks.diagnostics`` (the way a research script would write it: ``random.Random``,
Python lists and ints, string formatting). They are the speed baseline of the benchmark runner,
not a bit-exact replica of procgen's streams.

``REFERENCE`` maps each task name to ``(function, default parameters)``.

>>> import random
>>> rows = ref_addition(2, random.Random(0))
>>> [len(row) for row in rows]
[18, 19]
"""

from __future__ import annotations

import random

SEP = 2
N_KEYS, KEY_BASE, QUERY_BASE, MAX_VALUE = 30, 128, 158, 127
OP, EQUALS, ANSWER_BASE, STOP = 10, 11, 20, 30


def _eca_next(cells, rule, periodic):
    width = len(cells)
    nxt = []
    for i in range(width):
        if periodic:
            left, right = cells[i - 1], cells[(i + 1) % width]
        else:
            left = cells[i - 1] if i > 0 else 0
            right = cells[i + 1] if i + 1 < width else 0
        nxt.append((rule >> (4 * left + 2 * cells[i] + right)) & 1)
    return nxt


def ref_eca(n_rows: int, rng: random.Random, rule=110, width: int = 32, steps: int = 3, density: float = 0.5,
            burn_in: int = 0, boundary: str = "periodic") -> list[list[int]]:
    """ECA rows: [3+rule] state_0 SEP state_1 ... SEP state_steps (rule token only for a rule list)."""
    rules = list(rule) if isinstance(rule, (list, tuple)) else [rule]
    periodic = boundary == "periodic"
    rows = []
    for _ in range(n_rows):
        chosen = rng.choice(rules)
        cells = [1 if rng.random() < density else 0 for _ in range(width)]
        for _ in range(burn_in):
            cells = _eca_next(cells, chosen, periodic)
        row = [3 + chosen] if len(rules) > 1 else []
        row.extend(cells)
        for _ in range(steps):
            cells = _eca_next(cells, chosen, periodic)
            row.append(SEP)
            row.extend(cells)
        rows.append(row)
    return rows


def ref_haystack(n_rows: int, rng: random.Random, pairs=None, min_pairs: int = 1, max_pairs: int = 30,
                 eos: bool = False) -> list[list[int]]:
    """Haystack rows: k_1 v_1 ... k_p v_p q v [eos], p uniform in [min_pairs, max_pairs] (or ``pairs``)."""
    lo, hi = (pairs, pairs) if pairs is not None else (min_pairs, max_pairs)
    rows = []
    for _ in range(n_rows):
        p = rng.randint(lo, hi)
        keys = rng.sample(range(N_KEYS), p)
        values = [rng.randint(1, MAX_VALUE) for _ in range(p)]
        row = []
        for key, value in zip(keys, values):
            row += [KEY_BASE + key, value]
        asked = rng.randrange(p)
        row += [QUERY_BASE + keys[asked], values[asked]]
        if eos:
            row.append(QUERY_BASE + N_KEYS)
        rows.append(row)
    return rows


def _arith_rows(n_rows, rng, digits, min_digits, max_digits, multiply, reverse, fixed_width):
    lo = min_digits if min_digits is not None else digits
    hi = max_digits if max_digits is not None else digits
    rows = []
    for _ in range(n_rows):
        if fixed_width:  # both operands share d, leading zeros kept, fixed-width answer
            d = rng.randint(lo, hi)
            a, b = rng.randrange(10 ** d), rng.randrange(10 ** d)
            result, width = (a * b, 2 * d) if multiply else (a + b, d + 1)
            text_a, text_b, text_c = f"{a:0{d}d}", f"{b:0{d}d}", f"{result:0{width}d}"
        else:  # the official harness: each operand o digits (o uniform), no leading zero, plain answer
            a, b = (rng.randint(10 ** (o - 1), 10 ** o - 1) for o in (rng.randint(lo, hi), rng.randint(lo, hi)))
            text_a, text_b, text_c = str(a), str(b), str(a * b if multiply else a + b)
        if reverse:
            text_a, text_b, text_c = text_a[::-1], text_b[::-1], text_c[::-1]
        rows.append([int(c) for c in text_a] + [OP] + [int(c) for c in text_b] + [EQUALS]
                    + [ANSWER_BASE + int(c) for c in text_c] + [STOP])
    return rows


def ref_addition(n_rows: int, rng: random.Random, digits: int = 5, min_digits=None, max_digits=None,
                 fixed_width: bool = False):
    """Addition rows: a + b = s <stop>, most significant digit first."""
    return _arith_rows(n_rows, rng, digits, min_digits, max_digits, False, False, fixed_width)


def ref_reversed_addition(n_rows: int, rng: random.Random, digits: int = 10, min_digits=None, max_digits=None,
                          fixed_width: bool = False):
    """Addition rows with every number least significant digit first."""
    return _arith_rows(n_rows, rng, digits, min_digits, max_digits, False, True, fixed_width)


def ref_multiplication(n_rows: int, rng: random.Random, digits: int = 5, min_digits=None, max_digits=None,
                       fixed_width: bool = False):
    """Multiplication rows: a * b = p <stop>, most significant digit first."""
    return _arith_rows(n_rows, rng, digits, min_digits, max_digits, True, False, fixed_width)


REFERENCE = {
    "eca": (ref_eca, {"rule": 110, "width": 32, "steps": 3, "density": 0.5, "burn_in": 0, "boundary": "periodic"}),
    "haystack": (ref_haystack, {"min_pairs": 1, "max_pairs": 30}),
    "addition": (ref_addition, {"digits": 5}),
    "reversed_addition": (ref_reversed_addition, {"digits": 10}),
    "multiplication": (ref_multiplication, {"digits": 5}),
}
