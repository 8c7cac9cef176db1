"""Plain-Python baselines for khop and for eca's in-context rules (``random_rule=True``).

Each ``ref_<task>(n_rows, rng, **params) -> list[list[int]]`` is a straightforward pure-Python
implementation of the same process and token layout as ``procgen.tasks.khop`` / the in-context
variant of ``procgen.tasks.eca`` (``random.Random``, Python lists and dicts, the way a research
script would write it). They are the speed baseline of the benchmark runner, not a bit-exact
replica of procgen's streams.

``REFERENCE`` maps each task name to ``(function, parameters)`` for ``benchmarks.bench_generate``.
The in-context ECA rows are a parameter of the ``eca`` task, which the runner already times with
the fixed-rule reference (``reference_eca_diagnostics``) under the same name; ``VARIANTS`` keeps
``ref_eca_random`` and its parameters for a side-by-side measurement instead.

>>> import random
>>> rows = ref_khop(2, random.Random(0), nodes=4, hops=2)
>>> [len(row) for row in rows]
[16, 16]
"""

from __future__ import annotations

import random

ECA_SEP = 2


def ref_khop(n_rows: int, rng: random.Random, nodes: int = 32, hops: int = 4, min_hops=None, max_hops=None,
             path: bool = False, self_loops: bool = True, permutation: bool = False, node_vocab=None
             ) -> list[list[int]]:
    """khop rows: ``s succ(s) <sep>`` per node in random order, ``<query> q k=<k>``, the answer."""
    lo = min_hops if min_hops is not None else hops
    hi = max_hops if max_hops is not None else hops
    ids = node_vocab if node_vocab is not None else nodes
    sep, query = ids, ids + 1
    rows = []
    for _ in range(n_rows):
        k = rng.randint(lo, hi)
        names = rng.sample(range(ids), nodes)  # the nodes' ids, in the order their pairs are written
        if permutation:
            while True:
                targets = rng.sample(names, nodes)
                if self_loops or all(a != b for a, b in zip(names, targets)):
                    break
        elif self_loops:
            targets = [rng.choice(names) for _ in names]
        else:
            targets = [rng.choice([other for other in names if other != name]) for name in names]
        successor = dict(zip(names, targets))
        row = []
        for name, target in zip(names, targets):
            row += [name, target, sep]
        node = rng.choice(names)
        row += [query, node, query + k]
        walk = []
        for _ in range(k):
            node = successor[node]
            walk.append(node)
        row += walk if path else walk[-1:]
        rows.append(row)
    return rows


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


def ref_eca_random(n_rows: int, rng: random.Random, width: int = 32, steps: int = 3, density: float = 0.5,
                   burn_in: int = 0, boundary: str = "periodic") -> list[list[int]]:
    """In-context ECA rows: a rule drawn per row from 0..255, then state_0 SEP ... SEP state_steps (no rule token)."""
    periodic = boundary == "periodic"
    rows = []
    for _ in range(n_rows):
        rule = rng.randrange(256)
        cells = [1 if rng.random() < density else 0 for _ in range(width)]
        for _ in range(burn_in):
            cells = _eca_next(cells, rule, periodic)
        row = list(cells)
        for _ in range(steps):
            cells = _eca_next(cells, rule, periodic)
            row.append(ECA_SEP)
            row.extend(cells)
        rows.append(row)
    return rows


REFERENCE = {
    "khop": (ref_khop, {"nodes": 32, "hops": 4}),
}

# variant label -> (function, task, parameters procgen runs at, parameters the function takes)
VARIANTS = {
    "eca random_rule": (ref_eca_random, "eca", {"random_rule": True, "width": 32, "steps": 3},
                        {"width": 32, "steps": 3}),
}
