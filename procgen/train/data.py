"""Rows for training: row sources, the token-shuffle control, and a worker- and rank-disjoint IterableDataset.

(Collation and packing live in :mod:`procgen.train.collate`; the names are importable from here too.)

* :class:`ProcgenIterableDataset` yields collated batches of rows made on the fly (or read from
  an in-memory :class:`~procgen.Batch` or a dataset on disk). Rows are handed out in blocks of
  ``batch_size`` consecutive row indices, block ``b`` going to consumer
  ``b % (world_size * num_workers)`` (see :func:`row_ranges`), so DataLoader workers and DDP ranks
  never see the same row, and a run resumes exactly by restarting at a saved row index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from procgen._checks import check_int
from procgen._rng import _GOLDEN, derive_key
from procgen._rng import mix64_array as _mix64
from procgen.batch import Batch
from procgen.train.collate import (DataCollatorForProcgen, _collate_flat, _label_span, collate,  # noqa: F401
                                   collate_batch, pack, trainer_dataset)


# --- token shuffling (control experiment) -------------------------------------------------------

def shuffle_within_rows(tokens, offsets, row_index, seed: int = 0) -> np.ndarray:
    """Permute the tokens of every row (the "same unigrams, no structure" control).

    Row ``i``'s permutation depends only on ``(seed, row_index[i], its length)``, so a row is
    shuffled the same way whichever batch, worker or rank it lands in. ``answer_start`` is kept
    as it is by the callers.

    >>> shuffle_within_rows(np.arange(6), np.array([0, 3, 6]), np.array([0, 1])).reshape(2, 3).sum(1).tolist()
    [3, 12]
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    tokens = np.asarray(tokens)[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    row_of_token = np.repeat(np.arange(len(lengths)), lengths)
    position = (np.arange(len(tokens)) - offsets[row_of_token]).astype(np.uint64)
    base = derive_key(int(seed), "shuffle_tokens")
    row_keys = _mix64(np.uint64(base) ^ _mix64((np.asarray(row_index, dtype=np.uint64) + np.uint64(1)) * _GOLDEN))
    keys = _mix64(row_keys[row_of_token] + (position + np.uint64(1)) * _GOLDEN)
    order = np.lexsort((keys, row_of_token))  # sorts within each row by its random keys
    return tokens[order]


# --- row sources --------------------------------------------------------------------------------

class TaskRows:
    """Rows of a task generated on demand: ``rows(lo, hi)`` is ``procgen.generate(..., start=lo)``."""

    def __init__(self, task: str, seed: int = 0, split: str = "train", params: dict | None = None):
        from procgen.tasks import get_task

        self.task, self.seed, self.split = task, seed, split
        self.params = get_task(task).resolve_params(params or {})  # fail on bad parameters before any work
        self.num_rows = None

    def rows(self, lo: int, hi: int) -> Batch:
        from procgen.api import generate

        return generate(self.task, hi - lo, seed=self.seed, split=self.split, start=lo, **self.params)

    def describe(self) -> dict:
        return {"source": "task", "task": self.task, "seed": self.seed, "split": self.split, "params": self.params}


class BatchRows:
    """Rows of an in-memory :class:`procgen.Batch` (row indices relative to the batch)."""

    def __init__(self, batch: Batch):
        if len(batch) < 1:
            raise ValueError("a Batch used as training data needs at least 1 row; got 0")
        self.batch = batch
        self.task, self.params = batch.task, batch.params
        self.num_rows = len(batch)

    def rows(self, lo: int, hi: int) -> Batch:
        return self.batch[lo:hi]

    def describe(self) -> dict:
        return {"source": "batch", "task": self.task, "params": self.params, "seed": self.batch.seed,
                "split": self.batch.split, "start": self.batch.start, "rows": self.num_rows}


class DiskRows:
    """Rows of a procgen dataset on disk, read shard by shard with ``procgen.dataset.iter_batches``.

    Shards are memory-mapped, so holding one Batch per shard costs address space, not RAM.
    """

    def __init__(self, path):
        from procgen.dataset import iter_batches

        self.path = str(path)
        self.shards = [batch for batch in iter_batches(self.path) if len(batch)]
        if not self.shards:
            raise ValueError(f"dataset {self.path} has no rows")
        self.task, self.params = self.shards[0].task, self.shards[0].params
        self.firsts = np.cumsum([0] + [len(batch) for batch in self.shards])
        self.num_rows = int(self.firsts[-1])

    def rows(self, lo: int, hi: int) -> Batch:
        pieces = []
        shard = int(np.searchsorted(self.firsts, lo, side="right")) - 1
        while lo < hi:
            first = int(self.firsts[shard])
            take = min(hi, int(self.firsts[shard + 1])) - lo
            pieces.append(self.shards[shard][lo - first:lo - first + take])
            lo += take
            shard += 1
        return concat_batches(pieces)

    def describe(self) -> dict:
        return {"source": "disk", "path": self.path, "task": self.task, "params": self.params,
                "rows": self.num_rows}


def concat_batches(batches: list[Batch]) -> Batch:
    """Rows of several Batches of one task as one Batch (``start`` of the first)."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    lengths = np.concatenate([batch.lengths for batch in batches])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate([batch.tokens[batch.offsets[0]:batch.offsets[-1]] for batch in batches])
    answer_start = np.concatenate([batch.answer_start for batch in batches])
    row_task = None if first.row_task is None else np.concatenate([batch.row_task for batch in batches])
    return Batch(tokens, offsets, answer_start, first.task, first.params, first.seed, first.split, first.start,
                 row_task=row_task)


def as_source(data, seed: int = 0, split: str = "train", params: dict | None = None):
    """Turn ``data`` into a row source: a task name, a :class:`procgen.Batch`, or a dataset directory.

    ``seed``/``split``/``params`` apply to task names only.
    """
    if isinstance(data, (TaskRows, BatchRows, DiskRows)):
        return data
    if isinstance(data, Batch):
        return BatchRows(data)
    if isinstance(data, (str, os.PathLike)):
        from procgen.tasks import task_names

        if isinstance(data, str) and data in task_names():
            return TaskRows(data, seed=seed, split=split, params=params)
        if Path(data).is_dir():
            if params:
                raise ValueError(f"task parameters cannot be applied to a dataset on disk ({data}); "
                                 f"got {sorted(params)}")
            return DiskRows(data)
        raise ValueError(f"data must be a task name ({', '.join(task_names())}), a procgen dataset "
                         f"directory or a procgen.Batch; got {str(data)!r}")
    raise ValueError(f"data must be a task name, a procgen dataset directory or a procgen.Batch; "
                     f"got {type(data).__name__}")


# --- disjoint row ranges ------------------------------------------------------------------------

def row_ranges(start: int, stop: int | None, block_rows: int, rank: int = 0, world_size: int = 1,
               worker_id: int = 0, num_workers: int = 1):
    """Yield the ``(lo, hi)`` row ranges one consumer reads, in order.

    Rows ``start, start+1, ...`` are cut into blocks of ``block_rows``; block ``b`` belongs to
    consumer ``b % (world_size * num_workers)``, where the consumer of (rank, worker) is
    ``rank + world_size * worker_id``. Over all consumers each row of ``[start, stop)`` is read
    exactly once. Because a DataLoader takes batches from its workers round-robin, rank ``r``
    receives blocks ``r, r + world_size, r + 2 world_size, ...`` whatever the worker count, so
    a global step always covers consecutive rows. ``stop=None`` never ends.

    >>> list(row_ranges(0, 10, 2, rank=1, world_size=2))
    [(2, 4), (6, 8)]
    """
    for name, value, low in (("block_rows", block_rows, 1), ("world_size", world_size, 1),
                             ("num_workers", num_workers, 1), ("start", start, 0)):
        check_int(value, name, low)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}]; got {rank!r}")
    if not 0 <= worker_id < num_workers:
        raise ValueError(f"worker_id must be in [0, {num_workers - 1}]; got {worker_id!r}")
    consumers = world_size * num_workers
    block = rank + world_size * worker_id
    while True:
        lo = start + block * block_rows
        if stop is not None and lo >= stop:
            return
        hi = lo + block_rows if stop is None else min(lo + block_rows, stop)
        yield lo, hi
        block += consumers


def distributed_rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: torch.distributed if initialised, else torchrun's env."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# --- the dataset --------------------------------------------------------------------------------

class ProcgenIterableDataset(IterableDataset):
    """Collated training batches of procgen rows, disjoint across DataLoader workers and DDP ranks.

    Each item is one block of ``batch_size`` consecutive rows (see :func:`row_ranges`), collated
    into ``input_ids`` / ``labels`` / ``attention_mask`` (or packed into fixed blocks with
    ``pack=True``), plus ``row_index``: the global index of every row of the block. Use it with
    ``DataLoader(dataset, batch_size=None, num_workers=...)``.

    Parameters
    ----------
    task : str, procgen.Batch or path
        A task name (rows generated on the fly from their indices), an in-memory Batch, or a
        procgen dataset directory.
    seed : int, default 0
        Seed of the generated rows (task names only).
    split : str, default "train"
        Split of the generated rows; evaluation uses ``test``, so it never sees training rows.
    batch_size : int, default 32
        Rows per item (per rank and micro-step).
    start, stop : int, default 0 and None
        Row range to read; ``stop=None`` means endless for tasks, one pass for finite data. To
        resume, restart at the row index where the previous run stopped.
    repeat : bool, default False
        Cycle over finite data (row ``v`` reads row ``v % len``) instead of stopping.
    pack : bool, default False
        Pack rows into blocks of ``block_size`` tokens (for LM-style tasks such as dyck).
    block_size : int or None
        Context length: the packing block size, and the longest row allowed when not packing.
    eos_id : int or None
        End token appended to every row when packing.
    shuffle_tokens : bool, default False
        Permute tokens within each row (seeded per row index) -- a control experiment.
    scoring : str, default "all"
        Labels on every answer token, or ``"reference"``: on the positions the paper's official
        harness trains on (see :func:`collate_batch`). Not with ``pack``.
    rank, world_size : int or None
        Default: from ``torch.distributed`` when initialised, else the ``RANK``/``WORLD_SIZE``
        environment variables that torchrun sets.
    **params
        Task parameters (task names only).

    Example
    -------
    >>> ds = ProcgenIterableDataset("dyck", batch_size=8, k=2, length=16)
    >>> next(iter(ds))["input_ids"].shape
    torch.Size([8, 16])
    """

    def __init__(self, task, seed: int = 0, split: str = "train", batch_size: int = 32, start: int = 0,
                 stop: int | None = None, *, repeat: bool = False, pack: bool = False,
                 block_size: int | None = None, eos_id: int | None = None, shuffle_tokens: bool = False,
                 scoring: str = "all", rank: int | None = None, world_size: int | None = None, **params):
        super().__init__()
        self.source = as_source(task, seed=seed, split=split, params=params)
        batch_size = check_int(batch_size, "batch_size", 1)
        start = check_int(start, "start", 0)
        if stop is not None and (not isinstance(stop, (int, np.integer)) or stop < start):
            raise ValueError(f"stop must be None or an integer >= start ({start}); got {stop!r}")
        if pack and block_size is None:
            raise ValueError("block_size must be given when pack=True (tokens per packed block)")
        _label_span(self.source.task, self.source.params, np.zeros(1, np.int64), np.zeros(1, np.int64), scoring)
        if pack and scoring != "all":
            raise ValueError(f"scoring={scoring!r} needs row-wise batches; packing (pack=True) labels every "
                             f"answer token (scoring='all')")
        finite = self.source.num_rows
        if finite is not None and not repeat:
            stop = finite if stop is None else min(stop, finite)
        self.seed, self.batch_size, self.start, self.stop, self.repeat = seed, int(batch_size), int(start), stop, repeat
        self.pack, self.block_size, self.eos_id, self.shuffle_tokens = pack, block_size, eos_id, shuffle_tokens
        self.scoring = scoring
        self.rank, self.world_size = rank, world_size
        from procgen.tasks import get_task

        self.pad_id = get_task(self.source.task).pad_id(self.source.params)

    def consumer(self) -> tuple[int, int, int, int]:
        """``(rank, world_size, worker_id, num_workers)`` of the calling process."""
        rank, world_size = distributed_rank_world()
        rank = rank if self.rank is None else self.rank
        world_size = world_size if self.world_size is None else self.world_size
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank, world_size, worker_id, num_workers

    def ranges(self):
        """The ``(lo, hi)`` row ranges this consumer reads (see :func:`row_ranges`)."""
        rank, world_size, worker_id, num_workers = self.consumer()
        return row_ranges(self.start, self.stop, self.batch_size, rank, world_size, worker_id, num_workers)

    def __iter__(self):
        for lo, hi in self.ranges():
            yield self.block(lo, hi)

    def block(self, lo: int, hi: int) -> dict:
        """The collated (or packed) batch of rows ``[lo, hi)``, with their ``row_index``."""
        batch = self._rows(lo, hi)
        tokens = batch.tokens[batch.offsets[0]:batch.offsets[-1]]
        offsets = batch.offsets - batch.offsets[0]
        row_index = np.arange(lo, hi, dtype=np.int64)
        if self.shuffle_tokens:
            num_rows = self.source.num_rows
            tokens = shuffle_within_rows(tokens, offsets, row_index if num_rows is None else row_index % num_rows,
                                         self.seed)
        if self.pack:
            out = pack(tokens, offsets, batch.answer_start, self.block_size, eos_id=self.eos_id, pad_id=self.pad_id)
        else:
            span = _label_span(batch.task, batch.params, np.diff(offsets), batch.answer_start, self.scoring)
            out = _collate_flat(tokens, offsets, batch.answer_start, self.pad_id, self.block_size, span)
        out["row_index"] = torch.from_numpy(row_index)
        return out

    def _rows(self, lo: int, hi: int) -> Batch:
        size = self.source.num_rows
        if size is None:
            return self.source.rows(lo, hi)
        pieces = []
        while lo < hi:  # virtual rows wrap around finite data when repeat=True
            begin = lo % size
            take = min(hi - lo, size - begin)
            pieces.append(self.source.rows(begin, begin + take))
            lo += take
        return concat_batches(pieces)

    def with_start(self, start: int) -> "ProcgenIterableDataset":
        """A copy reading from row ``start`` on (how a resumed run continues where it stopped)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.start = int(start)
        if clone.stop is not None and clone.stop < clone.start:
            clone.stop = clone.start
        return clone

    def describe(self) -> dict:
        """JSON-able description of the rows this dataset reads (recorded in checkpoints)."""
        return {**self.source.describe(), "batch_size": self.batch_size, "start": self.start, "stop": self.stop,
                "repeat": self.repeat, "pack": self.pack, "block_size": self.block_size, "eos_id": self.eos_id,
                "shuffle_tokens": self.shuffle_tokens, "scoring": self.scoring}
