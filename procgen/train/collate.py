"""Collation: rows of a task into ``input_ids`` / ``labels`` / ``attention_mask`` tensors.

* :func:`collate` / :func:`collate_batch` right-pad ragged rows; labels follow the HF causal-LM
  convention (``-100`` before a row's ``answer_start`` and on padding; the model shifts them), or
  carry only the positions a scoring scores (:meth:`procgen.tasks.Task.scored_span`).
* :func:`pack` concatenates rows (optionally separated by an end token) and cuts them into
  fixed blocks, the usual way to train on LM-style tasks such as Dyck.
* :class:`DataCollatorForProcgen` is the same collation as a ``transformers.Trainer`` data
  collator, and :func:`trainer_dataset` a dataset on disk that the Trainer's default settings keep
  whole (see its docstring).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from procgen._checks import check_int
from procgen.batch import IGNORE_INDEX, Batch


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
    block_size = check_int(block_size, "block_size", 1)
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
