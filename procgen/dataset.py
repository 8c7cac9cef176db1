"""Sharded datasets on disk: :func:`write`, :func:`load`, :func:`validate`, :func:`info`.

Layout of a finished dataset directory (exactly what ``datasets.Dataset.save_to_disk`` writes, so
``datasets.load_from_disk(out)`` opens it memory-mapped, plus our manifest)::

    data-00000-of-00016.arrow ...  Arrow IPC *stream*, uncompressed, one record batch per chunk of
                                   rows; input_ids: list<uint8|uint16|int32>, answer_start: int32
    dataset_info.json, state.json  what ``datasets.load_from_disk`` reads
    procgen.json                   our manifest (task, params, seed, split, per-shard row ranges,
                                   token counts and sha256, vocab, the command that regenerates it)

The manifest is written last: a directory without it is incomplete by definition, and
:func:`load` / :func:`validate` / :func:`info` reject it. While a write is in progress
``out/.procgen/`` holds the configuration and one record per finished shard; re-running the same
write keeps every finished shard whose sha256 still matches and generates only the missing ones.
A write holds ``out/.procgen.lock`` (flock, the file names its pid) from start to end, so a second
writer on the same directory fails at once instead of deleting the first one's files.

Shard ``j`` of ``S`` holds global rows ``[j*n//S, (j+1)*n//S)``, and row ``i`` is row ``i`` of
``procgen.generate(task, n, seed, split, **params)`` whatever the shard or worker count.
Readers that want procgen's own :class:`~procgen.batch.Batch` views (Hub export, training data
loaders) use :func:`iter_batches`.
"""

from __future__ import annotations

import os

from procgen import _shards
from procgen._checks import check_count
from procgen._files import as_path
from procgen._layout import FORMAT_VERSION, LOCK_NAME, MANIFEST_NAME, DatasetError, locked
from procgen._manifest import read_manifest, task_params
from procgen._read import rebatch, row_range_batches
from procgen._verify import check_files, check_info, check_state, regenerated_rows, sample_rows, validate_shard
from procgen.tasks import get_task

# What the API docs show (re-exported names included) and ``import *`` takes.
__all__ = ["write", "WriteInterrupted", "load", "info", "validate", "iter_batches", "read_manifest", "DatasetError",
           "FORMAT_VERSION", "MANIFEST_NAME", "LOCK_NAME"]


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C (a KeyboardInterrupt) stopped :func:`write`; re-running the same call resumes.

    Attributes
    ----------
    out : str
        The dataset directory.
    manifest : dict or None
        The manifest if the dataset was already complete when the interrupt came, else None.
    """

    def __init__(self, out: str, manifest: dict | None):
        state = "complete" if manifest is not None else "incomplete; re-run the same call to resume"
        super().__init__(f"write to {out!r} interrupted; the dataset is {state}")
        self.out = out
        self.manifest = manifest


# =============================================================================================
# writing
# =============================================================================================

def write(task: str, out, n=None, shards=None, workers=1, seed: int = 0, split: str = "train",
          shard_index=None, overwrite: bool = False, progress: bool = True, tokens=None, **params) -> dict:
    """Generate rows ``0 .. n-1`` of a task into a sharded dataset directory ``out``.

    Parameters
    ----------
    task : str
        A registered task name (``procgen.tasks()`` lists them).
    out : str or path
        Target directory (created if needed). If it already holds this same dataset, complete or
        interrupted, the call resumes it: finished shards whose sha256 matches are kept.
    n : int or integral float
        Number of rows (``1e7`` is accepted). Give ``n`` or ``tokens``, not both. At most 100000
        shards of fewer than 2**31 tokens each: ``n <= 100000 * ((2**31 - 1) // longest row)``.
    shards : int, optional
        Number of shards, in ``[1, min(n, 100000)]``. Default: about 2**28 tokens per shard,
        rounded up to a multiple of ``workers`` (at most 100000). Shard ``j`` holds rows
        ``[j*n//shards, (j+1)*n//shards)``.
    workers : int, default 1
        Processes writing shards in parallel, in ``[1, 1024]``: this one plus up to ``workers - 1``
        helper processes (fresh interpreters, never forked, that do not re-import your script, so
        top-level code without an ``if __name__ == "__main__":`` guard works; a write too small to
        repay a helper's ~1 s start-up uses fewer). Results do not depend on it. Ctrl-C stops them
        all (they ignore the terminal's SIGINT, this process stops them), and they exit if this
        process is killed.
    seed : int, default 0
        Non-negative seed.
    split : {"train", "validation", "test"}, default "train"
    shard_index : int, optional
        Write only shard ``shard_index`` of ``shards`` (required), e.g. one job of a Slurm array
        writing into a shared directory. The job that completes the last shard finalises the
        dataset; re-running the command without ``shard_index`` also finalises (and fills gaps).
    overwrite : bool, default False
        Replace a different dataset already in ``out`` (deletes only procgen's own files).
    progress : bool, default True
        Show a progress bar over rows, with the tokens written and tokens/s.
    tokens : int or integral float, optional
        Instead of ``n``: write ``ceil(tokens / mean row length)`` rows, ``tokens`` in
        ``[1, 100000 * (2**31 - 1)]`` (see :func:`procgen.api.rows_for_tokens`; the mean is exact
        when the task states it, else measured on the stream's first rows). Fixed-length rows then hold at least ``tokens``
        tokens; the manifest's ``num_tokens`` is the exact count written.
    **params
        Task parameters (unknown names or out-of-range values raise ValueError).

    Returns
    -------
    dict
        The manifest (the content of ``out/procgen.json``). In ``shard_index`` mode, while other
        shards are still missing: ``{"complete": False, "out", "num_shards", "shards_done", "shard"}``.

    Raises
    ------
    ValueError
        A bad argument (naming it and the allowed range), or ``out`` holding something else.
        Raised before anything is created on disk.
    BlockingIOError
        Another write holds ``out`` (its lock file ``out/.procgen.lock``; the message names that
        process's pid). Shard jobs (``shard_index``) of one dataset share the lock.
    OSError
        Disk full, permission denied ...: one line naming the path. No manifest and no partial
        shard under a final name are left behind; re-running the same call resumes.
    WriteInterrupted
        A KeyboardInterrupt (Ctrl-C); its ``manifest`` is set if the dataset was complete anyway.

    Example
    -------
    >>> manifest = procgen.write("dyck", "data/dyck", n=1e6, shards=4, k=4)   # doctest: +SKIP
    >>> procgen.load("data/dyck")                                              # doctest: +SKIP
    Dataset({features: ['input_ids', 'answer_start'], num_rows: 1000000})
    >>> procgen.write("dyck", "data/dyck-2e8", tokens=2e8)["num_tokens"]      # doctest: +SKIP
    200000000
    """
    plan = _shards.plan(task, out, params, n=n, tokens=tokens, shards=shards, workers=workers, seed=seed,
                        split=split, shard_index=shard_index, overwrite=overwrite, progress=progress)
    try:
        with locked(plan.out, shared=shard_index is not None) as lock:
            try:
                return _shards.run(plan, workers, shard_index, overwrite, progress, () if lock is None else (lock,))
            except KeyboardInterrupt:
                raise WriteInterrupted(plan.out, _shards.finished(plan)) from None
    except BlockingIOError:  # another writer holds out: its own message
        raise
    except OSError as err:
        raise _shards.reworded(err, plan.out) from None


# =============================================================================================
# reading
# =============================================================================================

def info(path) -> dict:
    """Checked manifest of a finished dataset, plus ``path`` and ``num_bytes`` (total shard bytes).

    ``command`` is rebuilt from task, params, seed and split (see :func:`read_manifest`).
    ``vocab_size`` (ids ``0 .. vocab_size-1``) and ``max_row_length`` (no row is longer) size a
    model for the data, e.g. ``GPT2Config(vocab_size=..., n_positions=...)``; for manifests written
    before these fields existed they are computed from the task and its parameters.
    Raises DatasetError for an incomplete dataset, saying which shards are done.

    >>> procgen.info("data/dyck")["num_tokens"]   # doctest: +SKIP
    640000000
    >>> procgen.info("data/dyck")["max_row_length"]   # doctest: +SKIP
    64
    """
    manifest = read_manifest(path)
    if "vocab_size" not in manifest or "max_row_length" not in manifest:  # older manifests
        spec = get_task(manifest["task"])
        params = task_params(manifest)
        manifest = {"vocab_size": spec.vocab_size(params), "max_row_length": int(spec.max_row_length(params)),
                    **manifest}
    return {**manifest, "path": os.path.abspath(os.fspath(path)),
            "num_bytes": sum(s.get("num_bytes", 0) for s in manifest["shards"])}


def load(path):
    """Open a finished dataset as a memory-mapped ``datasets.Dataset`` (never unpickles).

    Fast: no checksum and no row is checked (that is :func:`validate`), but the small files are:
    raises DatasetError if the dataset is incomplete (no manifest), a field of the manifest is bad,
    state.json (the files ``datasets`` opens) or dataset_info.json (their features) disagree with
    the manifest, a shard file is missing, or the shards hold another number of rows.

    >>> ds = procgen.load("data/dyck")   # doctest: +SKIP
    >>> ds.with_format("numpy")[0]["input_ids"].dtype   # doctest: +SKIP
    dtype('uint8')
    """
    import datasets

    path = as_path(path, "path", "a procgen dataset folder")
    manifest = read_manifest(path)
    check_state(path, manifest, ("_data_files", "_split"))
    check_info(path, manifest)
    for shard, entry in enumerate(manifest["shards"]):
        if not os.path.isfile(os.path.join(path, entry["filename"])):
            raise DatasetError(f"shard {shard} ({entry['filename']}) is missing from {path!r}", path, shard=shard,
                               reason="missing shard file")
    ds = datasets.load_from_disk(path, keep_in_memory=False)
    if len(ds) != manifest["num_rows"]:
        raise DatasetError(f"{path!r}: the shard files hold {len(ds)} rows, {MANIFEST_NAME} says "
                           f"{manifest['num_rows']}", path, reason="count mismatch")
    return ds


def iter_batches(path, rows_per_batch=None, start: int = 0, stop=None):
    """Yield the rows of a finished dataset as :class:`procgen.batch.Batch` objects, in order.

    The batches are zero-copy numpy views over the memory-mapped shards (they keep the mapping
    alive while referenced); ``batch.start`` is the global index of its first row. This is how the
    rest of procgen (Hub export, training readers) reads datasets from disk.

    Parameters
    ----------
    path : str or path
        A dataset written by :func:`write`.
    rows_per_batch : int, optional
        Rows per yielded batch (the last may be shorter). Default: one batch per stored record
        batch. A batch that straddles two record batches is copied; others are views.
    start, stop : int, optional
        Global row range ``[start, stop)`` to read (default: all rows), e.g. one DDP rank's slice.

    Example
    -------
    >>> for batch in iter_batches("data/dyck", rows_per_batch=4096):   # doctest: +SKIP
    ...     x = batch.to_numpy()
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    if rows_per_batch is not None:
        rows_per_batch = check_count(rows_per_batch, "rows_per_batch")
    start = check_count(start, "start", minimum=0)
    stop = manifest["num_rows"] if stop is None else check_count(stop, "stop", minimum=0)
    if start > stop or stop > manifest["num_rows"]:
        raise ValueError(f"start, stop must satisfy 0 <= start <= stop <= {manifest['num_rows']}; "
                         f"got start={start}, stop={stop}")
    pieces = row_range_batches(path, manifest, start, stop)
    yield from pieces if rows_per_batch is None else rebatch(pieces, rows_per_batch)


def validate(path, progress: bool = False) -> dict:
    """Check a dataset on disk completely; return a report or raise DatasetError.

    Checks: the manifest exists and every field of it is sound (:func:`read_manifest`); the
    directory holds no other files (but the cache files ``datasets`` writes); dataset_info.json and
    state.json hold what the write put there; every shard file is present with the recorded size
    and sha256; its schema, row and token counts match; every row passes the task's independent
    validator (run per record batch on zero-copy views of the mapped data); and sampled rows (each
    shard's first and last, and a few seeded random ones) equal, byte for byte, the rows
    ``procgen.generate`` makes from the manifest's task, params, seed and split.

    Returns
    -------
    dict
        ``{"path", "task", "rows", "tokens", "shards", "ok": True}``.

    Raises
    ------
    DatasetError
        Naming the shard, the global row index (for a bad row), the reason and the rendered row;
        also available as ``.shard``, ``.row`` and ``.reason``.

    >>> procgen.validate("data/dyck")["ok"]   # doctest: +SKIP
    True
    """
    from tqdm.auto import tqdm

    path = as_path(path, "path", "a procgen dataset folder")
    manifest = read_manifest(path)  # every field checked: shard row ranges are contiguous, names plain
    spec = get_task(manifest["task"])
    check_files(path, manifest)
    check_state(path, manifest, skip=("_fingerprint",))
    check_info(path, manifest)
    sample = regenerated_rows(manifest, task_params(manifest), sample_rows(manifest))
    total_tokens = 0
    with tqdm(total=manifest["num_rows"], unit=" rows", unit_scale=True, desc="validate",
              disable=not progress) as bar:
        for shard in range(len(manifest["shards"])):
            total_tokens += validate_shard(path, manifest, shard, spec, bar.update, sample)
    if total_tokens != manifest["num_tokens"]:
        raise DatasetError(f"{path!r}: shards hold {total_tokens} tokens, manifest says {manifest['num_tokens']}",
                           path, reason="count mismatch")
    # last, as these name no field: the rows regenerate, yet the write recorded another task, params, seed or
    # split (e.g. a max_depth that no row reaches)
    check_state(path, manifest, ("_fingerprint",))
    check_info(path, manifest, description=True)
    return {"path": path, "task": manifest["task"], "rows": manifest["num_rows"], "tokens": total_tokens,
            "shards": len(manifest["shards"]), "ok": True}
