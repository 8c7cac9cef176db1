"""Streaming: rows generated on the fly, never touching disk.

``stream`` yields :class:`procgen.Batch` objects of consecutive rows (the same rows, under the
seeding contract, as one big ``procgen.generate`` call); ``to_iterable_dataset`` wraps it as a
sharded Hugging Face ``datasets.IterableDataset`` (row ranges, so ``datasets`` spreads the shards
over DataLoader workers and ranks and no row is generated twice). The PyTorch adapter that yields
collated training batches lives in ``procgen.train.data``.
"""

from __future__ import annotations

import itertools
from typing import Iterator

from procgen._rng import check_seed, check_split
from procgen.api import MAX_INDEX, check_count, generate
from procgen.batch import Batch
from procgen.tasks import get_task

DEFAULT_BATCH_TOKENS = 1 << 22  # ~4 M tokens per yielded Batch: large enough to amortise the call
DEFAULT_NUM_SHARDS = 64  # to_iterable_dataset: splits evenly over 1, 2, 4, ... 64 workers x ranks
MAX_NUM_SHARDS = 100_000  # to_iterable_dataset lists its shards up front


def stream(task: str, seed: int = 0, split: str = "train", n=None, start: int = 0, batch_rows=None,
           **params) -> Iterator[Batch]:
    """Yield Batches of consecutive rows of ``task`` forever (or until ``n`` rows).

    Parameters
    ----------
    task : str
        Registered task name.
    seed : int, default 0
    split : {"train", "validation", "test"}, default "train"
    n : int or None, default None
        Total rows to produce; None streams forever.
    start : int, default 0
        Global index of the first row (resume a stream where it stopped). Row indices are int64:
        ``start + n <= 2**63``.
    batch_rows : int or None
        Rows per yielded Batch; default sizes batches to about 4 M tokens.
    **params
        Task parameters (checked before the first row is produced).

    Example
    -------
    >>> rows = 0
    >>> for batch in stream("dyck", seed=0, n=10_000, k=4):
    ...     rows += len(batch)
    >>> rows
    10000
    """
    spec = get_task(task)
    resolved = spec.resolve_params(params)
    seed = check_seed(seed)
    check_split(split)
    start, stop = _check_rows(start, n)
    if batch_rows is None:
        batch_rows = max(1, DEFAULT_BATCH_TOKENS // max(1, spec.max_row_length(resolved)))
    batch_rows = check_count(batch_rows, "batch_rows")
    return _stream(task, seed, split, start, stop, batch_rows, resolved)


def _check_rows(start, n) -> tuple[int, int | None]:
    """``start`` and ``start + n`` (None for an endless stream), all row indices int64 (< 2**63)."""
    start = check_count(start, "start", minimum=0)
    if n is None:
        return start, None
    n = check_count(n, "n")
    if start + n > MAX_INDEX + 1:
        raise ValueError(f"start + n must be <= 2**63 (row indices are int64); got start={start}, n={n}")
    return start, start + n


def _stream(task, seed, split, row, stop, batch_rows, params):
    while stop is None or row < stop:
        count = batch_rows if stop is None else min(batch_rows, stop - row)
        yield generate(task, count, seed=seed, split=split, start=row, **params)
        row += count


def to_iterable_dataset(task: str, seed: int = 0, split: str = "train", n=None, start: int = 0,
                        num_shards: int = DEFAULT_NUM_SHARDS, **params):
    """A sharded ``datasets.IterableDataset`` of ``{"input_ids": [...], "answer_start": int}`` rows.

    Rows are produced on the fly (``n=None`` streams forever); ``.shuffle`` / ``.take`` / ``.map``
    and HF ``Trainer`` work as with any iterable dataset. ``datasets`` hands whole shards to
    ``DataLoader`` workers and, through ``datasets.distributed.split_dataset_by_node``, to ranks,
    so every consumer generates only its own rows: together they read each row exactly once.

    Parameters
    ----------
    task, seed, split, n, start, **params
        As in :func:`stream`: the rows are ``stream``'s (``n=None``: forever).
    num_shards : int, default 64
        Number of shards, in ``[1, 100000]``. With ``n`` rows, shard ``s`` holds the contiguous rows
        ``start + [s*n//num_shards, (s+1)*n//num_shards)``, so one process reading every shard in
        turn gets ``procgen.generate``'s rows in order. With ``n=None`` shard ``s`` is the endless
        run of blocks ``s, s + num_shards, s + 2*num_shards, ...`` of about 4 M tokens of
        consecutive rows (one process then reads shard 0 only: distinct rows, not rows 0, 1, 2...).
        64 divides evenly among 1, 2, 4, ... 64 consumers (ranks x workers per rank); when the
        number of ranks does not divide it, ``split_dataset_by_node`` falls back to every rank
        generating every row and keeping a share, so pick a multiple of your world size.

    Example
    -------
    >>> ds = to_iterable_dataset("dyck", seed=0, n=100, k=4)
    >>> next(iter(ds))["answer_start"], ds.num_shards
    (0, 64)
    """
    import datasets

    stream(task, seed=seed, split=split, n=n, start=start, **params)  # check the arguments now, not mid-epoch
    num_shards = check_count(num_shards, "num_shards", maximum=MAX_NUM_SHARDS)  # listed up front
    start = check_count(start, "start", minimum=0)
    spec = get_task(task)
    resolved = spec.resolve_params(params)
    features = datasets.Features({
        "input_ids": datasets.List(datasets.Value(spec.token_dtype(resolved).name)),
        "answer_start": datasets.Value("int32"),
    })
    if n is None:
        block = max(1, DEFAULT_BATCH_TOKENS // max(1, spec.max_row_length(resolved)))
        shards = [(start + s * block, num_shards * block, block) for s in range(num_shards)]
    else:
        n = check_count(n, "n")
        shards = [(start + s * n // num_shards, start + (s + 1) * n // num_shards, None) for s in range(num_shards)]
    return datasets.IterableDataset.from_generator(
        _shard_rows, features=features,
        gen_kwargs={"shards": shards, "task": task, "seed": seed, "split": split, "params": params})


def _shard_rows(shards, task, seed, split, params):
    """Rows of the given shards, in order (a top-level function, so the dataset pickles).

    A shard is ``(lo, hi, None)``: rows ``lo .. hi-1``; or ``(first, step, block)``: endless,
    blocks of ``block`` rows starting at ``first``, ``first + step``, ``first + 2*step`` ...
    """
    for first, second, block in shards:
        if block is None:
            batches = stream(task, seed=seed, split=split, n=second - first, start=first, **params) \
                if second > first else ()
        else:
            batches = (generate(task, block, seed=seed, split=split, start=row, **params)
                       for row in itertools.count(first, second))
        for batch in batches:
            for record in batch.to_arrow().to_batches(max_chunksize=8192):
                yield from record.to_pylist()
