"""Batch: the in-memory result of a generator (ragged rows, no Python object per row)."""

from __future__ import annotations

import numpy as np

from procgen._arrow import record_batch

IGNORE_INDEX = -100  # HF causal-LM convention: label positions the loss skips


class Batch:
    """Rows ``start .. start+len-1`` of one task, stored flat.

    Attributes
    ----------
    tokens : np.ndarray
        All rows concatenated; uint8 / uint16 / int32, the smallest dtype for the vocabulary.
    offsets : np.ndarray
        int64, ``len + 1`` entries from 0: row ``i`` is ``tokens[offsets[i]:offsets[i+1]]``.
    answer_start : np.ndarray
        int32 per row: labels are the tokens at positions ``>= answer_start`` (0 for LM tasks).
    task, params, seed, split, start
        What produced the rows (``params`` fully resolved); ``start`` is the index of row 0.
    row_task : np.ndarray or None
        Mixtures only: int8 index (into :attr:`task_names`) of the task each row comes from.

    Example
    -------
    >>> import procgen
    >>> b = procgen.dyck(k=2, n=3, length=8, seed=0)
    >>> len(b), b.num_tokens, b[0].dtype
    (3, 24, dtype('uint8'))
    """

    __slots__ = ("tokens", "offsets", "answer_start", "task", "params", "seed", "split", "start", "row_task",
                 "_vocab")

    def __init__(self, tokens, offsets, answer_start, task: str, params: dict, seed: int = 0,
                 split: str = "train", start: int = 0, row_task=None):
        self.tokens = tokens
        self.offsets = offsets
        self.answer_start = answer_start
        self.task = task
        self.params = params
        self.seed = seed
        self.split = split
        self.start = start
        self.row_task = row_task
        self._vocab = None

    # pickle / datasets fingerprints: the rows and what produced them, not the cached vocabulary
    # (so a Batch hashes the same before and after .vocab or .show())
    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__ if name != "_vocab"}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._vocab = None

    # --- sequence protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        """``b[i]``: row ``i`` as a numpy view; ``b[a:b]``: a Batch of those rows (contiguous)."""
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            if step != 1:
                raise ValueError(f"Batch slices must have step 1; got step={step}")
            hi = max(lo, hi)
            offsets = self.offsets[lo:hi + 1]
            return Batch(self.tokens[offsets[0]:offsets[-1]], offsets - offsets[0], self.answer_start[lo:hi],
                         self.task, self.params, self.seed, self.split, self.start + lo,
                         None if self.row_task is None else self.row_task[lo:hi])
        i = self._row_index(index)
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self):
        for i in range(len(self)):
            yield self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def _row_index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"row index must be an integer or a slice; got {type(index).__name__}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"row index must be in [{-n}, {n - 1}]; got {index}")
        return i

    def input_ids(self, i: int) -> np.ndarray:
        """Token ids of row ``i`` (same as ``b[i]``)."""
        return self[i]

    def labels(self, i: int) -> np.ndarray:
        """Labels of row ``i``: int64 ids, ``-100`` before ``answer_start`` (HF causal-LM style)."""
        labels = self[i].astype(np.int64)
        labels[: self.answer_start[self._row_index(i)]] = IGNORE_INDEX
        return labels

    @property
    def num_tokens(self) -> int:
        """Total number of tokens over all rows."""
        return int(self.offsets[-1] - self.offsets[0])

    @property
    def lengths(self) -> np.ndarray:
        """Length of every row (int64)."""
        return np.diff(self.offsets)

    @property
    def row_indices(self) -> np.ndarray:
        """Global index of every row under the seeding contract (``start .. start+len-1``)."""
        return np.arange(self.start, self.start + len(self), dtype=np.int64)

    # --- task metadata -------------------------------------------------------------------------
    @property
    def vocab(self) -> list[str]:
        """Printable name of every token id."""
        if self._vocab is None:
            self._vocab = _task(self.task).vocab(self.params)
        return self._vocab

    @property
    def task_names(self) -> list[str] | None:
        """Mixtures: the task name of each ``row_task`` index; None for single-task batches."""
        names = _task(self.task).row_task_names
        return None if names is None else names(self.params)

    @property
    def pad_id(self) -> int | None:
        """The task's padding id (never stored in rows), or None."""
        return _task(self.task).pad_id(self.params)

    # --- conversions ---------------------------------------------------------------------------
    def to_numpy(self, pad_id: int | None = None) -> np.ndarray:
        """Rows as a 2-D array ``(len, longest row)``.

        Equal-length rows give a zero-copy view of ``tokens``; ragged rows are right-padded with
        ``pad_id`` (default: the task's padding id).

        >>> procgen.dyck(n=4, length=8).to_numpy().shape   # doctest: +SKIP
        (4, 8)
        """
        lengths = self.lengths
        if len(self) and (lengths == lengths[0]).all():
            return self.tokens.reshape(len(self), int(lengths[0]))
        if pad_id is None:
            pad_id = self.pad_id if self.pad_id is not None else 0
        width = int(lengths.max()) if len(self) else 0
        dtype = np.promote_types(self.tokens.dtype, np.min_scalar_type(pad_id))
        out = np.full((len(self), width), pad_id, dtype=dtype)
        column = np.arange(width)
        mask = column[None, :] < lengths[:, None]
        out[mask] = self.tokens
        return out

    def to_arrow(self):
        """A ``pyarrow.Table`` with ``input_ids: list<uint8|uint16|int32>`` and ``answer_start: int32``.

        The token buffer is shared, not copied; offsets become int32 (``large_list`` above 2**31 tokens).
        """
        import pyarrow as pa

        return pa.Table.from_batches([record_batch(self.tokens, self.offsets, self.answer_start, None, self.row_task,
                                                   None if self.row_task is None else self.task_names)])

    def to_hf(self):
        """A Hugging Face ``datasets.Dataset`` over :meth:`to_arrow` (no copy of the tokens)."""
        import datasets

        info = datasets.DatasetInfo(description=f"procgen {self.task} {self.params} seed={self.seed} "
                                                f"split={self.split}")
        return datasets.Dataset(self.to_arrow(), info=info)

    # --- display -------------------------------------------------------------------------------
    def render(self, i: int) -> str:
        """Row ``i`` with readable token names; ``|`` marks where the answer starts (if > 0)."""
        names = self.vocab
        row = self[i]
        answer_start = int(self.answer_start[self._row_index(i)])
        words = [names[t] if 0 <= t < len(names) else f"<{t}?>" for t in row.tolist()]
        if answer_start > 0:
            words.insert(answer_start, "|")
        if self.row_task is not None:  # mixtures: "[set] 3 17 ..." (disjoint vocabularies name ids "set:17")
            source = self.task_names[self.row_task[self._row_index(i)]]
            words = [w.removeprefix(f"{source}:") for w in words]
            words.insert(0, f"[{source}]")
        return " ".join(words)

    def show(self, n: int = 5) -> None:
        """Print the first ``n`` rows rendered with :meth:`render`."""
        for i in range(min(n, len(self))):
            print(f"[{self.start + i}] {self.render(i)}")

    def validate(self) -> None:
        """Run the task's independent validator; raise ValueError naming the first bad row."""
        bad = _task(self.task).check(self)
        if bad is not None:
            row, reason = bad
            raise ValueError(f"{self.task}: row {self.start + row} is invalid: {reason}: {self.render(row)}")

    def __repr__(self) -> str:
        return (f"Batch(task={self.task!r}, rows={len(self)}, tokens={self.num_tokens}, "
                f"dtype={self.tokens.dtype}, seed={self.seed}, split={self.split!r}, start={self.start})")


def _task(name):
    from procgen.tasks import get_task

    return get_task(name)
