"""Counter-based randomness: the seeding contract (DESIGN §5).

Row ``i`` of ``(task, params, seed, split)`` is a pure function of those values and ``i``:

* :func:`base_key` derives one 64-bit key from ``(seed, task, split)`` with
  :class:`numpy.random.SeedSequence` (never ``seed + i`` arithmetic, which makes row ``i+1`` of
  seed ``s`` equal row ``i`` of seed ``s+1``).
* :func:`derive_key` derives every other key (a mixture's component streams, the training loop's
  per-step seeds, the token-shuffle control, the reproduction's seeds) from a seed and a *path*
  of names and integers, with SeedSequence spawn keys: two different paths never give the same
  key, and no derived key equals a :func:`base_key`.
* Inside a kernel, :func:`row_state` turns ``(base, i)`` into the starting state of row ``i``'s own
  splitmix64 stream, and :func:`next_u64` advances it. :func:`row_length` draws a variable row
  length from a second, independent stream of the same row (:func:`length_bits`), so a two-pass
  kernel can size its output before filling it.

Nothing here depends on ``n``, shard boundaries, worker or thread counts, or call order.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import int64, njit, uint64

from procgen._checks import SPLITS, check_seed, check_split  # noqa: F401 (re-exported: the seeding contract's checks)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LENGTH_STREAM = np.uint64(0xD1B54A32D192ED03)  # decorrelates the length stream from the content stream
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_ONE = np.uint64(1)


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


_STR_TAG, _INT_TAG = 1, 2  # each path element: a tag, then a fixed number of words (prefix-free)


def derive_key(seed: int, *path) -> int:
    """A 64-bit key for ``path`` under ``seed``: the one way procgen derives keys besides :func:`base_key`.

    Each element of ``path`` (a ``str``, or an ``int`` in ``[0, 2**64)``) becomes a tag word and a
    fixed number of 32-bit words (a string: its 128-bit BLAKE2b digest; an int: two words), and the
    words form the spawn key of ``SeedSequence(seed, spawn_key=...)``: the numpy idiom for
    independent child streams. Because every element has a fixed width, different paths give
    different spawn keys (``("a", 0)`` is not ``("a",)``, ``("ab",)`` is not ``("a", "b")``), and a
    spawn key is never the all-entropy input :func:`base_key` hashes. (Plain entropy lists alias:
    ``SeedSequence([b, w]) == SeedSequence([b, w, 0])``, which once made a mixture component draw
    the rows of a standalone task.)

    Parameters
    ----------
    seed : int
        A non-negative integer (a user seed, or another 64-bit key).
    *path : str or int
        What the key is for, outermost first, e.g. ``("component", "set")`` or ``("step", 10, 0)``.

    >>> derive_key(0, "step", 1, 0) != derive_key(0, "step", 1)
    True
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    words = []
    for part in path:
        if isinstance(part, str):
            digest = hashlib.blake2b(part.encode("utf-8"), digest_size=16).digest()
            words += [_STR_TAG, *np.frombuffer(digest, dtype="<u4").tolist()]
        elif isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)) and 0 <= part < 1 << 64:
            words += [_INT_TAG, int(part) & 0xFFFFFFFF, int(part) >> 32]
        else:
            raise ValueError(f"derive_key: path elements must be strings or integers in [0, 2**64); got {part!r}")
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(words)).generate_state(1, np.uint64)
    return int(state[0])


def derive_seed(seed: int, *path) -> int:
    """:func:`derive_key` as a non-negative int64, for ``torch.manual_seed`` and other int64 seeds.

    >>> 0 <= derive_seed(0, "step", 1, 0) < 2 ** 63
    True
    """
    return derive_key(seed, *path) >> 1


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


@njit(cache=True, nogil=True)
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

