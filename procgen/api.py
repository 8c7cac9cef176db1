"""In-memory generation: ``procgen.generate`` and the per-task shortcuts (``procgen.dyck`` ...)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from procgen._rng import base_key, check_seed, check_split
from procgen.batch import Batch
from procgen.tasks import get_task


def check_count(value, name: str = "n", minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum``; integral floats such as ``1e6`` are accepted.

    >>> check_count(1e6)
    1000000
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ValueError(f"{name} must be an integer >= {minimum} (floats such as 1e6 are allowed only "
                             f"when integral); got {value!r}")
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def generate(task: str, n, seed: int = 0, split: str = "train", start: int = 0, **params) -> Batch:
    """Generate rows ``start .. start+n-1`` of a task in memory.

    Parameters
    ----------
    task : str
        A registered task name (``procgen.tasks()`` lists them).
    n : int or integral float
        Number of rows (``1e6`` is accepted).
    seed : int, default 0
        Non-negative seed. Row ``i`` depends only on (task, params, seed, split, i).
    split : {"train", "validation", "test"}, default "train"
        Each split has an independent stream, so splits never share rows.
    start : int, default 0
        Global index of the first row (``generate(..., n=10, start=5)`` equals rows 5..14 of a
        larger call).
    **params
        Task parameters; unknown names or out-of-range values raise ValueError.

    Example
    -------
    >>> b = generate("dyck", n=1000, k=4, length=64, seed=0)
    >>> b.num_tokens
    64000
    """
    spec = get_task(task)
    n = check_count(n, "n")
    start = check_count(start, "start", minimum=0)
    seed = check_seed(seed)
    check_split(split)
    resolved = spec.resolve_params(params)
    tokens, offsets, answer_start = spec.kernel(base_key(seed, task, split), start, n, resolved,
                                                spec.token_dtype(resolved))
    row_task = None if spec.row_task is None else spec.row_task(resolved, start, n)
    return Batch(tokens, offsets, answer_start, task, resolved, seed, split, start, row_task)


def rows_for_tokens(task: str, tokens, seed: int = 0, split: str = "train", **params) -> int:
    """Rows to generate for ``tokens`` tokens: ``ceil(tokens / mean row length)``.

    The mean is exact when the task states it (fixed-length rows, uniform length ranges: see
    :meth:`procgen.tasks.Task.mean_row_length`), else measured on the stream's first rows. With
    rows all of one length the rows hold at least ``tokens`` tokens (less than one row more);
    with variable lengths their total is ``tokens`` up to sampling noise (a fraction of a percent
    for large datasets).

    Parameters
    ----------
    task : str
        A registered task name.
    tokens : int or integral float
        Target token count, >= 1 (``2e8`` is accepted).
    seed : int, default 0
    split : {"train", "validation", "test"}, default "train"
    **params
        Task parameters.

    Example
    -------
    >>> rows_for_tokens("dyck", 1000, length=64)
    16
    """
    spec = get_task(task)
    tokens = check_count(tokens, "tokens")
    seed = check_seed(seed)
    check_split(split)
    resolved = spec.resolve_params(params)
    mean = Fraction(spec.mean_row_length(resolved, seed=seed, split=split))
    return max(1, math.ceil(Fraction(tokens) / mean))


def task_function(name: str):
    """Build the public shortcut ``procgen.<name>(n=..., seed=0, split="train", **params)``."""
    spec = get_task(name)

    def shortcut(n=1000, seed: int = 0, split: str = "train", start: int = 0, **params) -> Batch:
        return generate(name, n, seed=seed, split=split, start=start, **params)

    lines = [f"{spec.summary}.", "", "Generate ``n`` rows in memory and return a :class:`procgen.Batch`.",
             "", "Parameters", "----------",
             "n : int or integral float, default 1000", "    Number of rows.",
             "seed : int, default 0", "    Non-negative seed.",
             'split : {"train", "validation", "test"}, default "train"', "    Independent stream per split.",
             "start : int, default 0", "    Global index of the first row."]
    for p in spec.params:
        lines += [f"{p.name} : {p.kind.__name__}, default {p.default!r}", f"    {p.help}; {p.allowed()}."]
    lines += ["", "Example", "-------", f">>> b = procgen.{name}(n=10, seed=0)", ">>> b.show(2)  # doctest: +SKIP"]
    shortcut.__name__ = shortcut.__qualname__ = name
    shortcut.__doc__ = "\n".join(lines)
    shortcut.__module__ = "procgen"
    return shortcut
