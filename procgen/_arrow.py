"""Arrow for procgen rows: the column schema, its ``datasets`` features, and the one record-batch builder.

Columns (what a shard stores and what :meth:`procgen.batch.Batch.to_arrow` returns)::

    input_ids     list<uint8|uint16|int32>   the token buffer, shared, with int32 list offsets
    answer_start  int32                       labels start there (0 for LM tasks)
    task          dictionary<int8, string>    mixtures only: the task each row comes from

Every Arrow record batch procgen makes comes from :func:`record_batch`. pyarrow is imported inside
the functions: importing this module (as :mod:`procgen.batch` does) loads nothing heavy.
"""

from __future__ import annotations

import json

import numpy as np

MAX_LIST_TOKENS = (1 << 31) - 1  # int32 list offsets: the most tokens one list array (one shard) holds


def features(dtype_name: str, with_task: bool = False) -> dict:
    """``datasets`` features (as its JSON) of our columns (+ ``task`` for mixtures)."""
    result = {"input_ids": {"feature": {"dtype": dtype_name, "_type": "Value"}, "_type": "List"},
              "answer_start": {"dtype": "int32", "_type": "Value"}}
    if with_task:
        result["task"] = {"dtype": "string", "_type": "Value"}  # stored as dictionary<int8, string>
    return result


def arrow_schema(dtype: np.dtype, with_task: bool = False, metadata: bool = True):
    """Shard schema, with the ``huggingface`` metadata ``datasets`` writes (so features load exactly)."""
    import pyarrow as pa

    fields = [pa.field("input_ids", pa.list_(pa.from_numpy_dtype(dtype))), pa.field("answer_start", pa.int32())]
    if with_task:
        fields.append(pa.field("task", pa.dictionary(pa.int8(), pa.string())))
    if not metadata:
        return pa.schema(fields)
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features(dtype.name,
                                                                                               with_task)}})})


def record_batch(tokens, offsets, answer_start, schema=None, row_task=None, task_names=None):
    """One Arrow record batch over rows stored flat, as in a :class:`~procgen.batch.Batch`; ``tokens`` is shared.

    ``offsets`` (``len + 1`` entries from 0) delimit the rows in ``tokens``; ``row_task`` (mixtures)
    holds int8 indices into ``task_names``. With ``schema`` (a shard's, from :func:`arrow_schema`)
    the batch has that schema and must fit int32 offsets; without, the columns keep their numpy
    types and more than 2**31 - 1 tokens become a ``large_list`` (int64 offsets).
    """
    import pyarrow as pa

    values = pa.array(tokens)
    end = int(offsets[-1])
    if end <= MAX_LIST_TOKENS:
        input_ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    elif schema is None:
        input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), values)
    else:
        raise RuntimeError(f"chunk of {end} tokens exceeds int32 offsets")  # the task's max_row_length is wrong
    columns = [input_ids, pa.array(answer_start, None if schema is None else pa.int32())]
    if row_task is not None:
        columns.append(pa.DictionaryArray.from_arrays(pa.array(row_task, pa.int8()), pa.array(task_names, pa.string())))
    if schema is not None:
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    return pa.RecordBatch.from_arrays(columns, names=["input_ids", "answer_start", "task"][:len(columns)])


def row_task_indices(column, names: list[str]) -> np.ndarray:
    """A stored ``task`` column as int8 indices into ``names`` (a manifest's ``row_tasks``).

    The file's dictionary may list the names in another order: indices are mapped back, so that
    no row is silently relabelled (a name not in ``names`` becomes -1, which validators reject).
    """
    stored = column.dictionary.to_pylist()
    indices = column.indices.to_numpy(zero_copy_only=False)
    if stored == names:
        return indices
    lookup = np.array([names.index(name) if name in names else -1 for name in stored], np.int8)
    return lookup[indices]
