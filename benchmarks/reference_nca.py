"""Vectorised numpy baseline for ``nca`` (neural cellular automata).

``ref_nca(n_rows, rng, **params) -> list[list[int]]`` runs the process of ``procgen.tasks.nca``
the way a careful numpy user would write it: per row, draw the integer network and the grid from a
``numpy.random.Generator`` seeded by ``rng``, then per rule application take the 3x3 convolution
as nine ``np.roll``-shifted grids indexing the per-offset weight tables (``w1[dy, dx][grid]``,
which equals the one-hot convolution and is faster than an ``einsum`` over one-hot planes), a
ReLU, the 1x1 layer as a matrix product and the argmax (or a softmax sample); frames become 2x2
patch ids with one reshape and a dot product. Same layout and distributions as procgen (not the
same random streams). The gzip band, when asked for, redraws whole rows until one passes.

``REFERENCE`` maps the task name to ``(function, parameters)`` for ``benchmarks/bench_generate.py``.

>>> import random
>>> rows = ref_nca(2, random.Random(0), height=4, width=4, steps=2)
>>> [len(row) for row in rows]
[14, 14]
"""

from __future__ import annotations

import random
import zlib

import numpy as np

WEIGHT_RANGE = 1024


def _row(gen, height, width, states, hidden, steps, burn_in, temperature, wrap):
    w1 = gen.integers(-WEIGHT_RANGE, WEIGHT_RANGE + 1, (3, 3, states, hidden))
    w2 = gen.integers(-WEIGHT_RANGE, WEIGHT_RANGE + 1, (hidden, states))
    grid = gen.integers(0, states, (height, width))
    powers = states ** np.arange(4)
    frames = []
    for t in range(burn_in + steps + 1):
        if t >= burn_in:
            patches = grid.reshape(height // 2, 2, width // 2, 2).transpose(0, 2, 1, 3).reshape(-1, 4)
            frames.append(patches @ powers)
        if t == burn_in + steps:
            break
        hid = np.zeros((height, width, hidden), np.int64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                hid += w1[dy + 1, dx + 1][np.roll(grid, (-dy, -dx), axis=(0, 1))]  # neighbour (y+dy, x+dx)
        logits = np.maximum(hid, 0) @ w2
        if temperature == 0:
            grid = logits.argmax(-1)
        else:
            scaled = logits / (WEIGHT_RANGE ** 2 * temperature)
            p = np.exp(scaled - scaled.max(-1, keepdims=True))
            cumulative = np.cumsum(p, -1)
            u = gen.random((height, width, 1)) * cumulative[..., -1:]
            grid = np.minimum((u >= cumulative).sum(-1), states - 1)
    grid_id = states ** 4
    row = []
    for t, frame in enumerate(frames):
        if wrap:
            row += [grid_id, *frame.tolist(), grid_id + 1]
        else:
            row += ([grid_id] if t else []) + frame.tolist()
    return row, np.concatenate(frames)


def ref_nca(n_rows: int, rng: random.Random, height: int = 12, width: int = 12, states: int = 10, hidden: int = 16,
            steps: int = 25, burn_in: int = 0, temperature: float = 0.0, framing: str = "separate",
            max_tokens: int = 1024, min_gzip_ratio=None, max_gzip_ratio=None, max_attempts: int = 1000
            ) -> list[list[int]]:
    """NCA rows: frames of 2x2-patch ids, separated (or wrapped) by the grid delimiter."""
    gen = np.random.default_rng(rng.getrandbits(64))
    rows = []
    for _ in range(n_rows):
        for _ in range(max_attempts):
            row, patch_ids = _row(gen, height, width, states, hidden, steps, burn_in, temperature, framing == "wrap")
            if min_gzip_ratio is None and max_gzip_ratio is None:
                break
            data = patch_ids.astype("<i4").tobytes()
            ratio = (len(zlib.compress(data, 9, -15)) + 18) / len(data)
            above = min_gzip_ratio is None or ratio >= min_gzip_ratio
            if above and (max_gzip_ratio is None or ratio <= max_gzip_ratio):
                break
        else:
            raise ValueError("ref_nca: the gzip band is too narrow")
        rows.append(row)
    return rows


REFERENCE = {
    "nca": (ref_nca, {}),
}
