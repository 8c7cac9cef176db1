"""Complexity bands: keep only rows whose gzip ratio lies in ``[lo, hi]``, deterministically.

Lee et al. (2026) keep neural-cellular-automaton rules by the gzip compression ratio of their
trajectories. A task that offers such a band (``nca``) gives each row ``i`` a sequence of
candidates ``j = 0, 1, 2, ...`` drawn from streams derived from ``(base, i, j)`` and keeps the
first candidate in the band, so row ``i`` is still a pure function of the seed and ``i``; after
``max_attempts`` candidates it raises instead of returning a row outside the band. The ratio is
computed in Python (:mod:`zlib`), so a banded task is much slower than its plain kernel, and the
sizes are those of the zlib library Python links (builds that compress differently, such as
zlib-ng, can keep other candidates).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

CANDIDATE_TOKENS = 1 << 23  # at most about this many candidate tokens are held at once


def gzip_ratio(ids) -> float:
    """``len(gzip.compress(data, 9)) / len(data)`` for ``data`` = ``ids`` as little-endian int32.

    Computed as the raw deflate stream (level 9) plus gzip's 18 bytes of header and trailer, which
    is exactly the size ``gzip.compress`` returns, without its checksum pass.

    >>> round(gzip_ratio([0] * 1000), 3)
    0.012
    """
    data = np.ascontiguousarray(ids, dtype="<i4").tobytes()
    return (len(zlib.compress(data, 9, -15)) + 18) / len(data)


def in_band(ratio: float, lo: float | None, hi: float | None) -> bool:
    """``lo <= ratio <= hi``, a ``None`` bound being open."""
    return (lo is None or ratio >= lo) and (hi is None or ratio <= hi)


def first_in_band(candidates, start: int, count: int, row_length: int, columns, lo, hi, max_attempts: int,
                  dtype, task: str) -> np.ndarray:
    """Rows ``start .. start+count-1``: for each, the first of its candidates whose ratio is in the band.

    Parameters
    ----------
    candidates : callable
        ``candidates(rows, attempts) -> (len(rows), row_length)`` token array: candidate
        ``attempts[k]`` of row ``rows[k]`` (int64 arrays), a pure function of both.
    columns : array of int
        Positions of a row whose ids the ratio measures (e.g. every position but the delimiters).
    lo, hi : float or None
        The band.
    max_attempts : int
        Candidates tried per row before the band is declared too narrow (ValueError naming ``task``).

    Candidates are generated in rounds (one call for every row still open, a few attempts each,
    more when few pass) and tested in order, so the row kept is the first passing candidate
    whatever the batching. Returns the rows' tokens, flat.
    """
    tokens = np.empty((count, row_length), dtype)
    open_rows = np.arange(count, dtype=np.int64)
    next_attempt, per_round, tried, passed = 0, 1, 0, 0
    while open_rows.size:
        if next_attempt >= max_attempts:
            raise ValueError(
                f"{task}: no candidate of row {start + int(open_rows[0])} has a gzip ratio in "
                f"[{lo if lo is not None else 0}, {hi if hi is not None else 'inf'}] within max_attempts="
                f"{max_attempts}; the band is too narrow for these parameters (widen min_gzip_ratio/"
                f"max_gzip_ratio or raise max_attempts)")
        batch = min(per_round, max_attempts - next_attempt)
        still_open = []
        chunk = max(1, CANDIDATE_TOKENS // (batch * row_length))  # bounds the candidates held at once
        for first in range(0, open_rows.size, chunk):
            chunk_rows = open_rows[first:first + chunk]
            rows = np.repeat(start + chunk_rows, batch)
            attempts = np.tile(np.arange(next_attempt, next_attempt + batch, dtype=np.int64), chunk_rows.size)
            found = candidates(rows, attempts).reshape(chunk_rows.size, batch, row_length)
            for k, local in enumerate(chunk_rows):
                for a in range(batch):
                    tried += 1
                    if in_band(gzip_ratio(found[k, a, columns]), lo, hi):
                        passed += 1
                        tokens[local] = found[k, a]
                        break
                else:
                    still_open.append(local)
        open_rows = np.asarray(still_open, dtype=np.int64)
        next_attempt += batch
        rate = passed / tried if tried else 1.0  # a few attempts per round where few pass
        per_round = int(min(64, max(1, math.ceil(1.0 / max(rate, 1e-3)))))
    return tokens.reshape(-1)
