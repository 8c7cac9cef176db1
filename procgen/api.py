"""In-memory generation: ``procgen.generate`` and the per-task shortcuts (``procgen.dyck`` ...)."""

from __future__ import annotations

import math
import os
from fractions import Fraction


from procgen._checks import MAX_INDEX, check_count, check_seed, check_split  # noqa: F401 (re-exported)
from procgen._rng import base_key
from procgen.batch import Batch
from procgen.tasks import get_task

_FALLBACK_MEMORY = 1 << 40  # the in-memory cap where the machine's memory cannot be read


def memory_limit() -> int:
    """Bytes one in-memory generation may need at most: the machine's physical memory.

    Where the operating system does not report it (``os.sysconf`` is POSIX-only), 1 TiB.
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY


def check_memory(spec, n: int, params: dict, given: str | None = None) -> int:
    """Refuse (ValueError) ``n`` rows that could not fit in memory; return the bytes they may need.

    The estimate is what the kernels allocate: ``n`` rows of the task's longest row, plus int64
    offsets and int32 answer starts (8 + 4 bytes a row). ``given`` names the argument that asked
    for the rows in the message (default ``n=<n>``).
    """
    longest = spec.max_row_length(params)
    itemsize = spec.token_dtype(params).itemsize
    needed = n * (longest * itemsize + 12) + 8
    limit = memory_limit()
    if needed > limit:
        raise ValueError(f"{given or f'n={n}'}: {n} rows of {spec.name} need up to {_size(needed)} in memory "
                         f"({longest} tokens of {itemsize} byte{'s' * (itemsize > 1)} a row at most, plus 12 bytes "
                         f"of offsets and answer_start), more than this machine's {_size(limit)}; write them to "
                         f"disk with procgen.write (procgen generate on the command line) or iterate over them in "
                         f"batches with procgen.stream")
    return needed


def _size(num_bytes: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size, unit = float(num_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"):
        if size < 1024 or unit == "YiB":
            break
        size /= 1024
    return f"{num_bytes} B" if unit == "B" else f"{size:.1f} {unit}"


def generate(task: str, n, seed: int = 0, split: str = "train", start: int = 0, **params) -> Batch:
    """Generate rows ``start .. start+n-1`` of a task in memory.

    Parameters
    ----------
    task : str
        A registered task name (``procgen.tasks()`` lists them).
    n : int or integral float
        Number of rows (``1e6`` is accepted). Rows that could not fit in this machine's memory
        (``n`` times the longest row, see :func:`check_memory`) are refused: write them with
        ``procgen.write`` or iterate over them with ``procgen.stream``.
    seed : int, default 0
        Seed in ``[0, 2**63 - 1]``. Row ``i`` depends only on (task, params, seed, split, i).
    split : {"train", "validation", "test"}, default "train"
        Each split has an independent stream, so splits never share rows.
    start : int, default 0
        Global index of the first row (``generate(..., n=10, start=5)`` equals rows 5..14 of a
        larger call); ``start + n <= 2**63``.
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
    if start > MAX_INDEX + 1 - n:  # the last row's index, start + n - 1, must be an int64
        raise ValueError(f"start must be an integer >= 0 and <= 2**63 - n = {MAX_INDEX + 1 - n} for n={n} "
                         f"(row indices are int64); got {start}")
    seed = check_seed(seed)
    check_split(split)
    resolved = spec.resolve_params(params)
    check_memory(spec, n, resolved)
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
             "seed : int, default 0", "    Seed in [0, 2**63 - 1].",
             'split : {"train", "validation", "test"}, default "train"', "    Independent stream per split.",
             "start : int, default 0", "    Global index of the first row."]
    for p in spec.params:
        lines += [f"{p.name} : {p.kind.__name__}, default {p.default!r}", f"    {p.help}; {p.allowed()}."]
    lines += ["", "Example", "-------", f">>> b = procgen.{name}(n=10, seed=0)", ">>> b.show(2)  # doctest: +SKIP"]
    shortcut.__name__ = shortcut.__qualname__ = name
    shortcut.__doc__ = "\n".join(lines)
    shortcut.__module__ = "procgen"
    return shortcut
