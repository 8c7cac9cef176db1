"""Batches for training: collation, packing, and a worker- and rank-disjoint IterableDataset.

* :func:`collate` / :func:`collate_batch` right-pad ragged rows into ``input_ids`` / ``labels`` /
  ``attention_mask`` tensors; labels follow the HF causal-LM convention (``-100`` before a row's
  ``answer_start`` and on padding; the model shifts them).
* :func:`pack` concatenates rows (optionally separated by an end token) and cuts them into
  fixed blocks, the usual way to train on LM-style tasks such as Dyck.
* :class:`DataCollatorForProcgen` is the same collation as a ``transformers.Trainer`` data
  collator, and :func:`trainer_dataset` a dataset on disk that the Trainer's default settings keep
  whole (see its docstring).
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

from procgen._rng import _GOLDEN
from procgen._rng import mix64_array as _mix64
from procgen.batch import IGNORE_INDEX, Batch

_SHUFFLE_STREAM = 0x5348554646  # "SHUFF": keeps the token-shuffle stream apart from any generator key


# --- collation ----------------------------------------------------------------------------------

def collate(rows, answer_starts, pad_id: int | None = 0, block_size: int | None = None) -> dict:
    """Right-pad ragged rows into a training batch.

    Parameters
    ----------
    rows : sequence of 1-D integer arrays
        Token ids of each row.
    answer_starts : sequence of int
        Per row, the first position that is a label (0 for LM-style rows).
    pad_id : int or None, default 0
        Id written into padding (it is masked out of labels and attention; None means 0).
    block_size : int or None
        The model's context length: a row longer than this raises ValueError instead of being
        truncated silently.

    Returns
    -------
    dict
        ``input_ids``, ``labels`` and ``attention_mask``, int64 tensors of shape
        ``(rows, longest row)``.

    Example
    -------
    >>> out = collate([np.array([5, 6, 7]), np.array([5, 6])], [1, 1], pad_id=0)
    >>> out["labels"].tolist()
    [[-100, 6, 7], [-100, 6, -100]]
    """
    rows = [np.asarray(row) for row in rows]
    if not rows:
        raise ValueError("collate needs at least one row; got 0")
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(rows) if offsets[-1] else np.zeros(0, dtype=np.int64)
    return _collate_flat(tokens, offsets, np.asarray(answer_starts), pad_id, block_size)


def collate_batch(batch: Batch, pad_id: int | None = None, block_size: int | None = None,
                  scoring: str = "all") -> dict:
    """:func:`collate` of every row of a :class:`procgen.Batch` (default padding: the task's pad id).

    ``scoring`` chooses the labels: ``"all"`` every answer token, ``"reference"`` the positions the
    paper's official harness scores and trains on (see :meth:`procgen.tasks.Task.scored_span`;
    for arithmetic that can include the pad token after a row, which then becomes a label).

    >>> import procgen
    >>> collate_batch(procgen.dyck(n=4, length=8))["input_ids"].shape
    torch.Size([4, 8])
    """
    if pad_id is None:
        pad_id = batch.pad_id
    return _collate_flat(batch.tokens, batch.offsets, batch.answer_start, pad_id, block_size,
                         _label_span(batch.task, batch.params, np.diff(batch.offsets), batch.answer_start, scoring))


def _label_span(task: str, params: dict, lengths, answer_start, scoring: str):
    """Per-row label positions ``(lo, hi)`` for ``scoring`` (None: every answer token)."""
    from procgen.tasks import SCORINGS, get_task

    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(map(repr, SCORINGS))}; got {scoring!r}")
    if scoring == "all":
        return None
    return get_task(task).scored_span(lengths, answer_start, params, scoring)


def _collate_flat(tokens, offsets, answer_start, pad_id, block_size, span=None) -> dict:
    """Vectorised :func:`collate` over flat ``tokens`` + ``offsets`` (no per-row Python loop).

    ``span``: per-row label positions ``(lo, hi)`` (default: ``answer_start`` to the row's end);
    positions past a row's end are labelled with ``pad_id``.
    """
    count = len(offsets) - 1
    if count < 1:
        raise ValueError("collate needs at least one row; got 0")
    if len(answer_start) != count:
        raise ValueError(f"answer_starts must have one entry per row ({count}); got {len(answer_start)}")
    lengths = np.diff(offsets)
    lo, hi = (np.asarray(answer_start, dtype=np.int64), lengths) if span is None else span
    width = int(max(lengths.max(), hi.max()))
    if block_size is not None and width > block_size:
        longest = int(np.argmax(np.maximum(lengths, hi)))
        what = f"{lengths[longest]} tokens" + (" and a scored pad token after them" if hi[longest] > lengths[longest]
                                               else "")
        raise ValueError(f"block_size must be >= the longest row; row {longest} has {what} but "
                         f"block_size={block_size}")
    column = np.arange(width)
    real = column[None, :] < lengths[:, None]
    input_ids = np.full((count, width), 0 if pad_id is None else pad_id, dtype=np.int64)
    input_ids[real] = tokens[offsets[0]:offsets[-1]]
    answer = (column[None, :] >= lo[:, None]) & (column[None, :] < hi[:, None])
    labels = np.where(answer, input_ids, IGNORE_INDEX)
    return {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels),
            "attention_mask": torch.from_numpy(real.astype(np.int64))}


# --- Hugging Face Trainer -----------------------------------------------------------------------

TRAINER_SPAN_COLUMN = "label"  # the name answer_start takes in trainer_dataset (see its docstring)


def trainer_dataset(data):
    """A procgen dataset ready for ``transformers.Trainer`` with its default settings.

    The Trainer drops every column that its model's ``forward`` does not take before the data
    collator sees a row (``remove_unused_columns=True``), so ``answer_start`` would never reach
    :class:`DataCollatorForProcgen`. Besides the forward arguments it keeps exactly two names for
    every model, ``label`` and ``label_ids``: the per-row supervision a data collator turns into
    the ``labels`` tensor, which is what ``answer_start`` is here. So this returns the memory-mapped
    :func:`procgen.load` dataset with ``answer_start`` renamed to ``label`` (a zero-copy rename;
    nothing is rewritten). The alternatives were worse: a Trainer setting
    (``remove_unused_columns=False``, or ``label_names``, which evaluation then also looks up in
    the collated batch), a
    column named after a forward argument the model would misread, or a Trainer subclass.
    ``procgen.load(path)`` itself keeps ``answer_start``, which the collator reads too (use it with
    your own DataLoader, or with ``remove_unused_columns=False``).

    Parameters
    ----------
    data : path or datasets.Dataset
        A procgen dataset directory, or a ``datasets.Dataset`` with an ``answer_start`` column
        (e.g. ``procgen.load(path).train_test_split(...)["test"]``).

    Example
    -------
    >>> ds = trainer_dataset("data/sort")   # doctest: +SKIP
    >>> ds.column_names                     # doctest: +SKIP
    ['input_ids', 'label']
    """
    import datasets

    if isinstance(data, (str, os.PathLike)):
        from procgen.dataset import load

        data = load(data)
    if not isinstance(data, datasets.Dataset) or "answer_start" not in data.column_names:
        what = data.column_names if isinstance(data, datasets.Dataset) else type(data).__name__
        raise ValueError(f"data must be a procgen dataset directory or a datasets.Dataset with an 'answer_start' "
                         f"column; got {what}")
    return data.rename_column("answer_start", TRAINER_SPAN_COLUMN)


class DataCollatorForProcgen:
    """Data collator for ``transformers.Trainer`` (or any DataLoader) over procgen rows.

    Takes the rows a DataLoader hands over -- dicts with ``input_ids`` and ``answer_start``
    (``label`` in :func:`trainer_dataset`; other keys are ignored) -- and returns
    :func:`collate`'s batch: right-padded ``input_ids``, ``attention_mask`` and ``labels``
    (``-100`` before ``answer_start`` and on padding; the model shifts them), int64 tensors.
    The same rows give the same tensors as :func:`collate_batch`.

    Parameters
    ----------
    pad_id : int or None, default 0
        Id written into padding (masked out of labels and attention; None means 0). Use the
        dataset's pad id (``procgen.info(path)["pad_id"]``) or :meth:`from_dataset`.
    scoring : str, default "all"
        ``"all"`` labels every answer token; ``"reference"`` only the positions the paper's
        official harness trains on (see :func:`collate_batch`), which needs ``task``.
    task : str, optional
        The rows' task (needed by ``scoring="reference"``).
    params : dict, optional
        The task's parameters (defaults for those not given).
    block_size : int or None, default None
        The model's context length: a longer row raises ValueError instead of being truncated.

    Example
    -------
    >>> collator = DataCollatorForProcgen(pad_id=0)
    >>> rows = [{"input_ids": [5, 6, 7], "answer_start": 1}, {"input_ids": [5, 6], "answer_start": 1}]
    >>> collator(rows)["labels"].tolist()
    [[-100, 6, 7], [-100, 6, -100]]

    With the Trainer (the whole recipe is in docs/training.md)::

        trainer = Trainer(model, TrainingArguments("runs/sort"), train_dataset=trainer_dataset("data/sort"),
                          data_collator=DataCollatorForProcgen.from_dataset("data/sort"))
    """

    def __init__(self, pad_id: int | None = 0, scoring: str = "all", task: str | None = None,
                 params: dict | None = None, block_size: int | None = None):
        from procgen.tasks import SCORINGS, get_task

        if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer))
                                   or pad_id < 0):
            raise ValueError(f"pad_id must be None or an integer >= 0; got {pad_id!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(map(repr, SCORINGS))}; got {scoring!r}")
        if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer))
                                       or block_size < 1):
            raise ValueError(f"block_size must be None or an integer >= 1; got {block_size!r}")
        if task is None:
            if scoring != "all":
                raise ValueError(f"task must be given with scoring={scoring!r} (the scored positions depend on "
                                 f"the task); use DataCollatorForProcgen.from_dataset(path, scoring=...)")
            if params:
                raise ValueError(f"params need a task; got params={params!r} and task=None")
        else:
            params = get_task(task).resolve_params(params)
        self.pad_id, self.scoring, self.task, self.params, self.block_size = pad_id, scoring, task, params, block_size

    @classmethod
    def from_dataset(cls, path, scoring: str = "all", block_size: int | None = None) -> "DataCollatorForProcgen":
        """The collator of the procgen dataset at ``path``: its task, parameters and pad id.

        >>> collator = DataCollatorForProcgen.from_dataset("data/sort", scoring="reference")  # doctest: +SKIP
        """
        from procgen.dataset import info

        from procgen.tasks import get_task

        manifest = info(path)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
        pad_id = get_task(manifest["task"]).pad_id(params)  # as collate_batch pads the same rows
        return cls(pad_id=pad_id, scoring=scoring, task=manifest["task"], params=params, block_size=block_size)

    def __call__(self, features) -> dict:
        if not isinstance(features, (list, tuple)) or not features:
            raise ValueError(f"features must be a non-empty list of rows (dicts with input_ids and answer_start); "
                             f"got {features!r:.80}")
        first = features[0]
        if not hasattr(first, "keys") or "input_ids" not in first:
            raise ValueError(f"features must be dicts with input_ids and answer_start; got a row {first!r:.80}")
        span_key = next((k for k in ("answer_start", TRAINER_SPAN_COLUMN) if k in first), None)
        if span_key is None:
            raise ValueError(f"rows need answer_start; got only {sorted(first.keys())} (transformers.Trainer drops "
                             f"columns its model does not take: pass train_dataset=procgen.train.trainer_dataset"
                             f"(path), or set remove_unused_columns=False)")
        rows = [np.asarray(feature["input_ids"]).reshape(-1) for feature in features]
        answer_start = np.array([int(feature[span_key]) for feature in features], dtype=np.int64)
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.concatenate(rows).astype(np.int64, copy=False) if offsets[-1] else np.zeros(0, np.int64)
        span = None if self.task is None else _label_span(self.task, self.params, lengths, answer_start, self.scoring)
        return _collate_flat(tokens, offsets, answer_start, self.pad_id, self.block_size, span)

    def __repr__(self) -> str:
        return (f"DataCollatorForProcgen(pad_id={self.pad_id!r}, scoring={self.scoring!r}, task={self.task!r}, "
                f"block_size={self.block_size!r})")


# --- packing ------------------------------------------------------------------------------------

def pack(tokens, offsets, answer_start, block_size: int, eos_id: int | None = None, pad_id: int | None = 0,
         drop_last: bool = False) -> dict:
    """Concatenate rows and cut them into blocks of exactly ``block_size`` tokens.

    Labels are the tokens at in-row positions ``>= answer_start`` (every token for LM-style rows)
    and the end token when ``eos_id`` is given; attention crosses row boundaries, as usual for
    packed pretraining. The last, partial block is right-padded (labels ``-100``, attention 0)
    unless ``drop_last``.

    Parameters
    ----------
    tokens, offsets, answer_start : arrays
        Flat rows as in :class:`procgen.Batch`.
    block_size : int
        Tokens per block (the model's context length).
    eos_id : int or None, default None
        Appended after every row when given (use an id of the model's vocabulary, e.g. the task's
        pad id, so the end of a row is learnable).
    pad_id : int or None, default 0
        Id of the padding in the last block.
    drop_last : bool, default False
        Drop the final partial block instead of padding it.

    Example
    -------
    >>> import procgen
    >>> b = procgen.dyck(n=10, length=64)
    >>> pack(b.tokens, b.offsets, b.answer_start, 256)["input_ids"].shape
    torch.Size([3, 256])
    """
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1; got {block_size!r}")
    offsets = np.asarray(offsets, dtype=np.int64)
    tokens = np.asarray(tokens)[offsets[0]:offsets[-1]]
    offsets = offsets - offsets[0]
    count = len(offsets) - 1
    lengths = np.diff(offsets)
    row_of_token = np.repeat(np.arange(count), lengths)
    position = np.arange(len(tokens)) - offsets[row_of_token]
    supervised = position >= np.asarray(answer_start, dtype=np.int64)[row_of_token]
    if eos_id is not None:
        grown = offsets + np.arange(count + 1)  # each row gains one token
        keep = np.ones(len(tokens) + count, dtype=bool)
        keep[grown[1:] - 1] = False
        flat = np.full(len(tokens) + count, eos_id, dtype=np.int64)
        flat[keep] = tokens
        flat_supervised = np.ones(len(flat), dtype=bool)
        flat_supervised[keep] = supervised
    else:
        flat, flat_supervised = tokens.astype(np.int64), supervised
    total = len(flat)
    blocks = total // block_size if drop_last else -(-total // block_size)
    if blocks == 0:
        raise ValueError(f"pack: {total} tokens do not fill one block of block_size={block_size} "
                         f"(use drop_last=False or more rows)")
    used = min(total, blocks * block_size)
    input_ids = np.full(blocks * block_size, 0 if pad_id is None else pad_id, dtype=np.int64)
    input_ids[:used] = flat[:used]
    real = np.zeros(blocks * block_size, dtype=bool)
    real[:used] = True
    labels = np.full(blocks * block_size, IGNORE_INDEX, dtype=np.int64)
    labels[:used] = np.where(flat_supervised[:used], flat[:used], IGNORE_INDEX)
    shape = (blocks, block_size)
    return {"input_ids": torch.from_numpy(input_ids.reshape(shape)),
            "labels": torch.from_numpy(labels.reshape(shape)),
            "attention_mask": torch.from_numpy(real.reshape(shape).astype(np.int64))}


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
    base = np.random.SeedSequence([int(seed), _SHUFFLE_STREAM]).generate_state(1, np.uint64)[0]
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
    return Batch(tokens, offsets, answer_start, first.task, first.params, first.seed, first.split, first.start)


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
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
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
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be an integer >= 0; got {start!r}")
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
