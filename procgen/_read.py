"""Reading a finished dataset's shards back as :class:`~procgen.batch.Batch` views over the mapped files.

The manifest passed in must come from :func:`procgen._manifest.read_manifest` (its fields checked,
its shard names plain). Batches are zero-copy views of the stored record batches, except where
re-chunking joins two of them (:func:`rebatch`).
"""

from __future__ import annotations

import os

import numpy as np

from procgen._arrow import arrow_schema, row_task_indices
from procgen._layout import DatasetError
from procgen._manifest import task_params
from procgen.batch import Batch


def shard_batches(path, manifest: dict, shard: int):
    """Batches (zero-copy views) of one shard's record batches, checking the schema on the way."""
    import pyarrow as pa

    entry = manifest["shards"][shard]
    file = os.path.join(path, entry["filename"])
    params = task_params(manifest)
    with_task = "row_tasks" in manifest
    expected = arrow_schema(np.dtype(manifest["dtype"]), with_task, metadata=False)
    try:
        source = pa.memory_map(file, "r")
    except FileNotFoundError:
        raise DatasetError(f"shard {shard} ({entry['filename']}) is missing from {path!r}", path, shard=shard,
                           reason="missing shard file") from None
    row = entry["row_start"]
    try:
        reader = pa.ipc.open_stream(source)
        if not reader.schema.remove_metadata().equals(expected):
            found, wanted = (", ".join(f"{f.name}: {f.type}" for f in schema) for schema in (reader.schema, expected))
            raise DatasetError(f"shard {shard} ({entry['filename']}): schema mismatch: columns {found}; expected "
                               f"{wanted}", path, shard=shard, reason="schema mismatch")
        for record in reader:
            ids = record.column(0)
            offsets = np.asarray(ids.offsets)
            tokens = ids.values.to_numpy(zero_copy_only=True)[offsets[0]:offsets[-1]]
            answer_start = record.column(1).to_numpy(zero_copy_only=True)
            row_task = row_task_indices(record.column(2), manifest["row_tasks"]) if with_task else None
            yield Batch(tokens, offsets.astype(np.int64) - offsets[0], answer_start, manifest["task"], params,
                        manifest["seed"], manifest["split"], row, row_task)
            row += len(record)
    except pa.ArrowException as err:
        raise DatasetError(f"shard {shard} ({entry['filename']}) is not a readable Arrow stream near row {row}: "
                           f"{err}", path, shard=shard, reason="unreadable") from None


def row_range_batches(path, manifest: dict, start: int, stop: int):
    """Record batches overlapping global rows ``[start, stop)``, clipped to that range."""
    for shard, entry in enumerate(manifest["shards"]):
        if entry["row_end"] <= start or entry["row_start"] >= stop:
            continue
        for batch in shard_batches(path, manifest, shard):
            lo, hi = max(start, batch.start), min(stop, batch.start + len(batch))
            if lo < hi:
                yield batch if (lo, hi) == (batch.start, batch.start + len(batch)) else \
                    batch[lo - batch.start:hi - batch.start]


def rebatch(pieces, rows_per_batch: int):
    """Consecutive batches re-cut into batches of ``rows_per_batch`` rows (the last may be shorter).

    A batch lying inside one piece is a view of it; one that straddles pieces is a copy (:func:`concat`).
    """
    pending, pending_rows = [], 0
    for piece in pieces:
        used = 0
        while used < len(piece):
            take = min(rows_per_batch - pending_rows, len(piece) - used)
            part = piece[used:used + take]
            used += take
            if pending_rows == 0 and take == rows_per_batch:
                yield part
                continue
            pending.append(part)
            pending_rows += take
            if pending_rows == rows_per_batch:
                yield concat(pending)
                pending, pending_rows = [], 0
    if pending:
        yield concat(pending)


def concat(parts: list[Batch]) -> Batch:
    """Consecutive rows of one dataset as one Batch: tokens, offsets, answer starts and the mixture task column."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row_task = None if first.row_task is None else np.concatenate([p.row_task for p in parts])
    return Batch(np.concatenate([p.tokens for p in parts]), offsets,
                 np.concatenate([p.answer_start for p in parts]), first.task, first.params, first.seed, first.split,
                 first.start, row_task)
