"""Counter-based randomness: the seeding contract (DESIGN §5).

Row ``i`` of ``(task, params, seed, split)`` is a pure function of those values and ``i``:

* :func:`base_key` derives one 64-bit key from ``(seed, task, split)`` with
  :class:`numpy.random.SeedSequence` (never ``seed + i`` arithmetic, which makes row ``i+1`` of
  seed ``s`` equal row ``i`` of seed ``s+1``).
* Inside a kernel, :func:`row_state` turns ``(base, i)`` into the starting state of row ``i``'s own
  splitmix64 stream, and :func:`next_u64` advances it. :func:`row_length` draws a variable row
  length from a second, independent stream of the same row (:func:`length_bits`), so a two-pass
  kernel can size its output before filling it.

Nothing here depends on ``n``, shard boundaries, worker or thread counts, or call order.
"""

from __future__ import annotations

import numpy as np
from numba import int64, njit, uint64

SPLITS = ("train", "validation", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LENGTH_STREAM = np.uint64(0xD1B54A32D192ED03)  # decorrelates the length stream from the content stream
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO53_INV = 1.0 / 9007199254740992.0  # 2**-53


def base_key(seed: int, task: str, split: str = "train") -> int:
    """Derive the 64-bit base key of ``(seed, task, split)``.

    Parameters
    ----------
    seed : int
        Integer seed in ``[0, 2**63 - 1]``.
    task : str
        Registered task name; different tasks never share streams.
    split : str, default "train"
        One of ``train``, ``validation``, ``test``; each split gets an independent key.

    Example
    -------
    >>> base_key(0, "dyck", "train") != base_key(0, "dyck", "test")
    True
    """
    seed = check_seed(seed)
    split_index = check_split(split)
    task_word = int.from_bytes(task.encode("utf-8"), "little")
    state = np.random.SeedSequence([seed, task_word, split_index]).generate_state(1, np.uint64)
    return int(state[0])


MAX_SEED = 2 ** 63 - 1  # seeds are stored as int64 (Arrow metadata, manifests read by other tools)


def check_seed(seed) -> int:
    """Return ``seed`` as an int in ``[0, 2**63 - 1]``, or raise ValueError naming that range."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative integer (>= 0 and <= 2**63 - 1); got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer (>= 0 and <= 2**63 - 1); got {seed}")
    return seed


def check_split(split) -> int:
    """Return the index of ``split`` in :data:`SPLITS`, or raise ValueError listing them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return SPLITS.index(split)


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finaliser: a bijective avalanche of a uint64."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def row_state(base, row):
    """Starting state of row ``row``'s stream (``base``: uint64 key, ``row``: int64 >= 0)."""
    return mix64(uint64(base) ^ mix64((uint64(row) + _ONE) * _GOLDEN))


@njit(cache=True, inline="always")
def next_u64(state):
    """Advance a splitmix64 stream. Returns ``(new_state, 64 random bits)``."""
    state = state + _GOLDEN
    return state, mix64(state)


@njit(cache=True, inline="always")
def below(bits32, m):
    """Map 32 random bits (held in a uint64) to an integer in ``[0, m)`` (multiply-shift)."""
    return int64((bits32 * uint64(m)) >> _S32)


@njit(cache=True, inline="always")
def hi32(x):
    """Upper 32 bits of a uint64."""
    return x >> _S32


@njit(cache=True, inline="always")
def lo32(x):
    """Lower 32 bits of a uint64."""
    return x & uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def unit_float(x):
    """Map 64 random bits to a float in ``[0, 1)`` with 53 bits of precision."""
    return float(x >> _S11) * _TWO53_INV


@njit(cache=True, inline="always")
def length_bits(base, row):
    """The 64 random bits of row ``row``'s length stream (the draw :func:`row_length` makes).

    :func:`row_length` uses the high 32 bits; a kernel whose row shape needs a second draw (e.g.
    two operand sizes) takes it from the low 32 bits.
    """
    return mix64(row_state(base, row) ^ _LENGTH_STREAM)


@njit(cache=True, inline="always")
def row_length(base, row, min_length, max_length, step):
    """Length of row ``row``: uniform over ``min_length, min_length+step, ... <= max_length``.

    Drawn from a stream of its own (not the row's content stream), so kernels can size their
    output in a first pass.
    """
    if min_length == max_length:
        return min_length
    return min_length + step * below(hi32(length_bits(base, row)), (max_length - min_length) // step + 1)


@njit(cache=True)
def row_offsets(base, start, count, min_length, max_length, step):
    """int64 offsets (``count + 1`` entries, from 0) of rows ``start .. start+count-1``."""
    offsets = np.empty(count + 1, np.int64)
    offsets[0] = 0
    for r in range(count):
        offsets[r + 1] = offsets[r] + row_length(base, start + r, min_length, max_length, step)
    return offsets


def mix64_array(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` on a uint64 numpy array (vectorised; wraps on overflow like the kernel)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def probability_threshold(p: float) -> int:
    """32-bit threshold ``t`` such that ``hi32(bits) < t`` happens with probability ``p``."""
    return min(int(round(p * 4294967296.0)), 4294967296)

