"""Argument checks shared by every layer: one place for "an integer in [low, high]" and its message.

Each check returns the value coerced to its type or raises ``ValueError`` with one line that names
the parameter, the allowed range and the value given. Nothing here imports the rest of procgen
(the bottom layer; see docs/architecture.md).
"""

from __future__ import annotations

import math

import numpy as np

MAX_INDEX = 2 ** 63 - 1  # row indices, counts and seeds are int64 in kernels, Arrow and manifests
MAX_SEED = MAX_INDEX  # seeds are stored as int64 (Arrow metadata, manifests read by other tools)
SPLITS = ("train", "validation", "test")


def _bound(value: int) -> str:
    return "2**63 - 1" if value == MAX_INDEX else str(value)


def allowed_range(low: int, high: int | None = None) -> str:
    """How a message spells an integer range: ``an integer >= 1`` or ``an integer in [1, 64]``.

    >>> allowed_range(1), allowed_range(1, 64)
    ('an integer >= 1', 'an integer in [1, 64]')
    """
    if high is None:
        return f"an integer >= {low}"
    if high == MAX_INDEX:
        return f"an integer >= {low} and <= {_bound(high)}"
    return f"an integer in [{low}, {high}]"


def check_int(value, name: str, low: int = 0, high: int | None = None, why: str = "",
              integral_floats: bool = False, allow_none: bool = False) -> int | None:
    """Return ``value`` as an int in ``[low, high]`` (``high=None``: no upper bound), else ValueError.

    Parameters
    ----------
    value : the value to check; ``bool`` is rejected (``True`` is not a count).
    name : str, the parameter's name as the caller spells it.
    low, high : int, inclusive bounds.
    why : str, optional reason appended to the allowed range, e.g. ``"one row per shard"``.
    integral_floats : bool, default False; accept floats such as ``1e6`` when they are integral.
    allow_none : bool, default False; ``None`` passes through (the message then says "None or ...").

    >>> check_int(3, "workers", 1, 1024)
    3
    >>> check_int(0, "workers", 1, 1024)
    Traceback (most recent call last):
    ValueError: workers must be an integer in [1, 1024]; got 0
    >>> check_int(None, "eval_every", 1, allow_none=True) is None
    True
    """
    if allow_none and value is None:
        return None
    allowed = ("None or " if allow_none else "") + allowed_range(low, high) + (f" ({why})" if why else "")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    if integral_floats and isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ValueError(f"{name} must be {allowed} (floats such as 1e6 are allowed only when integral); "
                             f"got {value!r}")
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value}")
    return value


def check_count(value, name: str = "n", minimum: int = 1, maximum: int = MAX_INDEX) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]``; integral floats such as ``1e6`` are accepted.

    The default ``maximum`` is ``2**63 - 1``: counts and row indices are int64 inside kernels, so a
    larger value would overflow there (or wrap silently).

    >>> check_count(1e6)
    1000000
    """
    allowed = f"an integer >= {minimum} and <= {_bound(maximum)}"
    try:
        return check_int(value, name, minimum, maximum, integral_floats=True)
    except ValueError as err:  # counts keep their documented wording "an integer >= k and <= m"
        raise ValueError(str(err).replace(allowed_range(minimum, maximum), allowed)) from None


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


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them.

    >>> check_choice("bin", "format", ("bin", "parquet"))
    'bin'
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
