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

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import socket
import threading
import time

import numpy as np

from procgen import _workers
from procgen._files import as_path, atomic_open
from procgen._rng import base_key, check_seed, check_split
from procgen.api import check_count, rows_for_tokens
from procgen.batch import Batch
from procgen.tasks import dtype_for_vocab, get_task

FORMAT_VERSION = 2  # bump when a stream or the on-disk layout changes on purpose
MANIFEST_NAME = "procgen.json"
_STATE_DIR = ".procgen"  # in-progress state: config.json + shard-XXXXX.json records
_CONFIG_NAME = "config.json"
_INFO_NAME = "dataset_info.json"
_STATE_NAME = "state.json"
# Tokens per record batch: bounds the memory of a writer (a few chunks) whatever n is.
_CHUNK_TOKENS = 1 << 22
# Work (tokens) below which an extra helper process cannot pay for its start-up (about 1 s).
_SPAWN_TOKENS = 1 << 27
# Default shard size: at most about this many tokens per shard.
_SHARD_TOKENS = 1 << 28
# int32 list offsets: a shard must stay below 2**31 tokens.
_MAX_SHARD_TOKENS = (1 << 31) - 1
# The most shards a dataset may have (5-digit shard names; a rerun checks one record per shard), so
# a dataset holds at most _MAX_SHARDS * _MAX_SHARD_TOKENS (about 2.1e14) tokens.
_MAX_SHARDS = 100_000
_MAX_TOKENS = _MAX_SHARDS * _MAX_SHARD_TOKENS
_MAX_WORKERS = 1024  # processes writing one dataset
# Held (flock) by every write for its whole duration: exclusive, or shared by shard_index jobs.
# Removed when the last holder finishes; one left by a killed writer holds no lock and is reused.
LOCK_NAME = ".procgen.lock"
_SHARD_FILE = re.compile(r"data-\d{5,}-of-\d{5,}\.arrow")
_OUR_FILE = re.compile(rf"{_SHARD_FILE.pattern}|{re.escape(_INFO_NAME)}|{re.escape(_STATE_NAME)}|"
                       rf"{re.escape(MANIFEST_NAME)}")
_OUR_TEMP = re.compile(rf"\.({_OUR_FILE.pattern})\.tmp-.+")


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


class DatasetError(Exception):
    """A dataset on disk is incomplete, damaged or holds an invalid row.

    Attributes
    ----------
    path : str or None
        The dataset directory.
    shard : int or None
        Index of the shard at fault, if one is.
    row : int or None
        Global index of the first invalid row, if the fault is a row.
    reason : str or None
        Short description (``"incomplete"``, ``"sha256 mismatch"``, the validator's reason ...).
    shards_done : list[int] or None
        For an incomplete dataset: the shards already written.
    """

    def __init__(self, message: str, path=None, shard=None, row=None, reason=None, shards_done=None):
        super().__init__(message)
        self.path = path
        self.shard = shard
        self.row = row
        self.reason = reason
        self.shards_done = shards_done


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
    if (n is None) == (tokens is None):
        raise ValueError(f"pass exactly one of n (rows) and tokens; got {'both' if n is not None else 'neither'}")
    if tokens is not None:
        tokens = _check_range(tokens, "tokens", 1, _MAX_TOKENS,
                              f"a dataset holds at most {_MAX_SHARDS} shards of < 2**31 tokens")
        n = rows_for_tokens(task, tokens, seed=seed, split=split, **params)
    plan = _plan(task, out, n, shards, workers, seed, split, shard_index, overwrite, progress, params, tokens)
    out = plan["out"]
    try:
        with _locked(out, shared=shard_index is not None) as lock:
            try:
                return _run(plan, workers, shard_index, overwrite, progress, () if lock is None else (lock,))
            except KeyboardInterrupt:
                raise WriteInterrupted(out, _finished(plan)) from None
    except BlockingIOError:  # another writer holds out: its own message
        raise
    except OSError as err:
        raise _reworded(err, out) from None


def _check_range(value, name: str, minimum: int, maximum: int, why: str) -> int:
    """``value`` as an int in ``[minimum, maximum]``, as :func:`check_count`; above, the error says ``why``."""
    if _above(value, maximum):
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}] ({why}); got {value!r}")
    return check_count(value, name, minimum=minimum, maximum=maximum)


def _above(value, maximum: int) -> bool:
    """``value`` is a number (not a bool) greater than ``maximum``."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and value > maximum)


def _plan(task, out, n, shards, workers, seed, split, shard_index, overwrite, progress, params, tokens=None) -> dict:
    """Check every argument (before any work) and return the write's plain-data plan.

    Every count is bounded by what can be written (``tokens``, if given, is named in n's error),
    so that no huge value turns into a loop over 1e23 shards.
    """
    spec = get_task(task)
    if not isinstance(out, (str, os.PathLike)) or isinstance(os.fspath(out), bytes) or not os.fspath(out):
        raise ValueError(f"out must be a directory path (str or os.PathLike); got {out!r}")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out must be a directory; {out!r} exists and is not a directory")
    workers = _check_range(workers, "workers", 1, _MAX_WORKERS, "processes writing one dataset")
    seed = check_seed(seed)
    check_split(split)
    for name, flag in (("overwrite", overwrite), ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {flag!r}")
    resolved = spec.resolve_params(params)
    dtype = spec.token_dtype(resolved)
    row_tokens = max(1, int(spec.max_row_length(resolved)))
    if row_tokens > _MAX_SHARD_TOKENS:
        raise ValueError(f"{task}: rows of up to {row_tokens} tokens do not fit a shard (< 2**31 tokens)")
    rows_cap = _MAX_SHARD_TOKENS // row_tokens  # most rows a shard can hold
    n = _check_range(n, "n", 1, _MAX_SHARDS * rows_cap,
                     f"{task} rows of up to {row_tokens} tokens, at most {_MAX_SHARDS} shards of < 2**31 tokens"
                     + (f"; n = the rows for tokens={tokens}" if tokens is not None else ""))
    if shards is None:
        if shard_index is not None:
            raise ValueError("shard_index needs shards: pass the total shard count, e.g. shards=16, shard_index=3")
        # about _SHARD_TOKENS tokens per shard, a multiple of workers so that none idles at the end
        shards = min(n, _MAX_SHARDS, workers * math.ceil(math.ceil(n * row_tokens / _SHARD_TOKENS) / workers))
    else:
        if n <= _MAX_SHARDS and _above(shards, n):
            raise ValueError(f"shards must be an integer in [1, n={n}] (every shard holds at least one row); "
                             f"got {shards!r}")
        shards = _check_range(shards, "shards", 1, min(n, _MAX_SHARDS), "the most shards a dataset may have")
        if math.ceil(n / shards) > rows_cap:
            raise ValueError(f"shards must be >= {math.ceil(n / rows_cap)} for n={n} rows of up to {row_tokens} "
                             f"tokens (a shard holds < 2**31 tokens); got {shards}")
    if shard_index is not None:
        shard_index = _check_range(shard_index, "shard_index", 0, shards - 1, f"shards={shards}")
        if overwrite:
            raise ValueError("overwrite=True cannot be combined with shard_index (parallel jobs would delete "
                             "each other's shards); clear the directory once before starting the jobs")
    config = {"format_version": FORMAT_VERSION, "task": task, "params": resolved, "seed": seed, "split": split,
              "num_rows": n, "num_shards": shards}
    return {**config, "out": out, "dtype": dtype.name, "row_tokens": row_tokens,
            "chunk_rows": max(1, _CHUNK_TOKENS // row_tokens),
            "fingerprint": _fingerprint(config), "command": _command(task, out, n, shards, seed, split, resolved)}


def _fingerprint(config: dict) -> str:
    """Hash of what determines the dataset's content (tuples and lists hash alike, as in JSON)."""
    keys = ("format_version", "task", "params", "seed", "split", "num_rows", "num_shards")
    text = json.dumps({key: config[key] for key in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _command(task, out, n, shards, seed, split, params) -> str:
    """The ``procgen generate`` line that regenerates this dataset.

    A None value is written as ``none`` when the parameter's default is not None (e.g.
    ``--max-depth none`` for dyck_shuffle, whose default is 16) and omitted otherwise.
    """
    defaults = get_task(task).defaults()
    words = ["procgen", "generate", task]
    for name, value in params.items():
        flag = name.replace("_", "-")
        if value is None:
            if defaults.get(name) is not None:
                words += [f"--{flag}", "none"]
            continue
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, (tuple, list)):
            words += [f"--{flag}", ",".join(str(v) for v in value)]
        elif isinstance(value, dict):  # inline JSON; "resolved" holds derived values (mixtures) recomputed from the rest
            words += [f"--{flag}", json.dumps({k: v for k, v in value.items() if k != "resolved"}, sort_keys=True)]
        else:
            words += [f"--{flag}", str(value)]
    words += ["-n", str(n), "--out", out, "--shards", str(shards), "--seed", str(seed), "--split", split]
    return shlex.join(words)


def _run(plan, workers, shard_index, overwrite, progress, keep_fds=()) -> dict:
    out, num_shards = plan["out"], plan["num_shards"]
    finished = _prepare_out(plan, overwrite)
    if finished is not None:
        return finished
    wanted = range(num_shards) if shard_index is None else [shard_index]
    _remove_temps(out, None if shard_index is None else _shard_filename(shard_index, num_shards))
    records = _read_records(out, plan)
    todo = []
    for shard in wanted:
        record = records.get(shard)
        if record is None or not _shard_intact(out, record):
            todo.append(shard)
            with contextlib.suppress(FileNotFoundError):
                os.remove(_record_path(out, shard))
    if todo:
        _generate(plan, todo, workers, progress, keep_fds)
    records = _read_records(out, plan)
    if len(records) == num_shards:
        return _finalise(plan, records)
    manifest = _read_json(os.path.join(out, MANIFEST_NAME))
    if manifest is not None and _manifest_fingerprint(manifest) == plan["fingerprint"]:
        _remove_state_dir(out)  # another job finalised while we wrote a duplicate shard
        return manifest
    written = records.get(shard_index, {})
    return {"complete": False, "out": out, "num_shards": num_shards, "shards_done": sorted(records),
            "shard": {k: v for k, v in written.items() if k != "fingerprint"}}


def _prepare_out(plan, overwrite) -> dict | None:
    """Make ``out`` ready for this plan. Returns the manifest if the dataset is already complete.

    Order matters for concurrent shard jobs: the directory is listed first, then the config is
    read, then the manifest (a finaliser writes the manifest before it removes the config).
    """
    out = plan["out"]
    os.makedirs(out, exist_ok=True)
    entries = [e for e in os.listdir(out) if e not in (_STATE_DIR, LOCK_NAME)]
    on_disk = _read_json(os.path.join(out, _STATE_DIR, _CONFIG_NAME))
    if on_disk is not None:
        if on_disk.get("fingerprint") == plan["fingerprint"]:
            return None  # resume
        _refuse_or_clear(plan, overwrite, on_disk)
    else:
        manifest = _read_json(os.path.join(out, MANIFEST_NAME))
        if manifest is not None:
            if _manifest_fingerprint(manifest) == plan["fingerprint"]:
                if all(_size_matches(out, entry) for entry in manifest["shards"]):
                    _remove_state_dir(out)  # records left by a finaliser killed after its manifest
                    return manifest
                _reopen(plan, manifest)  # a shard went missing or changed size: regenerate it
                return None
            _refuse_or_clear(plan, overwrite, manifest)
        elif entries and not overwrite:
            shown = ", ".join(sorted(entries)[:3]) + (" ..." if len(entries) > 3 else "")
            raise ValueError(f"out={out!r} is not empty and holds no procgen dataset ({shown}); choose an "
                             f"empty directory or pass overwrite=True (deletes only procgen's own files)")
        elif overwrite:
            _remove_ours(out)
    _write_config(plan)
    return None


def _write_config(plan) -> None:
    """Record what is being written (before any shard), so a rerun can tell resume from conflict."""
    keys = ("format_version", "task", "params", "seed", "split", "num_rows", "num_shards", "fingerprint", "command")
    _write_json_atomic(os.path.join(plan["out"], _STATE_DIR, _CONFIG_NAME), {k: plan[k] for k in keys})


def _refuse_or_clear(plan, overwrite, on_disk: dict) -> None:
    """``out`` holds a different dataset: raise ValueError naming the difference, or clear it."""
    if overwrite:
        _remove_ours(plan["out"])
        return
    here = {k: plan[k] for k in ("format_version", "task", "seed", "split", "num_rows", "num_shards")}
    there = {k: on_disk.get(k) for k in here}
    if "shards" in on_disk:  # a manifest
        there["num_shards"] = len(on_disk["shards"])
    difference = next((f"{k}={there[k]!r} on disk, {here[k]!r} requested" for k in here if here[k] != there[k]),
                      None)
    if difference is None:
        params_there = on_disk.get("params") or {}
        names = sorted(set(plan["params"]) | set(params_there))
        difference = next((f"{k}={_jsonish(params_there.get(k))!r} on disk, {_jsonish(plan['params'].get(k))!r} "
                           f"requested" for k in names
                           if _jsonish(params_there.get(k)) != _jsonish(plan["params"].get(k))), "format differs")
    raise ValueError(f"out={plan['out']!r} already holds a different procgen dataset ({difference}); choose "
                     f"another out or pass overwrite=True to replace it")


def _jsonish(value):
    return list(value) if isinstance(value, tuple) else value


def _reopen(plan, manifest) -> None:
    """Turn a damaged complete dataset back into an in-progress one (its shards become records)."""
    out = plan["out"]
    _write_config(plan)
    for shard, entry in enumerate(manifest["shards"]):
        _write_json_atomic(_record_path(out, shard), {"fingerprint": plan["fingerprint"], **entry})
    os.remove(os.path.join(out, MANIFEST_NAME))


def _remove_ours(out) -> None:
    """Delete procgen's own files in ``out`` (shards, json files, temp files, state), nothing else."""
    for entry in os.listdir(out):
        if _OUR_FILE.fullmatch(entry) or _OUR_TEMP.fullmatch(entry):
            os.remove(os.path.join(out, entry))
    shutil.rmtree(os.path.join(out, _STATE_DIR), ignore_errors=True)


def _remove_temps(out, shard_filename: str | None) -> None:
    """Remove temp files left by killed writers: all of them, or only those of one shard."""
    for entry in os.listdir(out):
        match = _OUR_TEMP.fullmatch(entry)
        if match and (shard_filename is None or match.group(1) == shard_filename):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, entry))


def _generate(plan, todo, workers, progress, keep_fds=()) -> None:
    """Write the shards in ``todo``, in this process and up to ``workers - 1`` helper processes.

    Every process (this one included, so no time is lost while the helpers start) claims the next
    unwritten shard until none is left: shards balance dynamically and the result does not depend
    on who wrote what. Helpers are fresh interpreters that import procgen only (see
    :mod:`procgen._workers`): never forked, and they never re-import the caller's ``__main__``.
    """
    rows = sum(end - start for start, end in (_shard_rows(plan, shard) for shard in todo))
    # A helper needs about a second to start (imports, numba cache): one that would find no work
    # left by then only delays the end, so small writes use fewer helpers.
    helpers = min(workers, len(todo)) - 1
    helpers = max(0, min(helpers, rows * plan["row_tokens"] // _SPAWN_TOKENS))
    with _Progress(rows, f"procgen {plan['task']}", progress) as bar:
        _workers.run("procgen.dataset:_write_shard", plan, todo, helpers,
                     lambda shard, report: _write_shard(plan, shard, report), bar.add, keep_fds)


class _Progress:
    """Rows and tokens written so far: a tqdm bar over rows, with tokens and tokens/s beside it.

    ``add(rows, tokens)`` is called after every chunk, by this process's writer and by the threads
    relaying the helpers' chunks. Each call adds exact counts under one lock (nothing is read
    twice), so a finished write shows exactly ``total`` rows: 100%.
    """

    def __init__(self, total: int, desc: str, enabled: bool):
        from tqdm.auto import tqdm

        self.rows = self.tokens = 0
        self._lock = threading.Lock()
        self._began = time.perf_counter()
        self._bar = tqdm(total=total, unit=" rows", unit_scale=True, desc=desc, disable=not enabled,
                         dynamic_ncols=True)

    def add(self, rows: int, tokens: int) -> None:
        with self._lock:
            self.rows += rows
            self.tokens += tokens
            rate = self.tokens / max(time.perf_counter() - self._began, 1e-9)
            size = self._bar.format_sizeof
            self._bar.set_postfix_str(f"{size(self.tokens)} tokens, {size(rate)} tokens/s", refresh=False)
            self._bar.update(rows)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._bar.close()


def _write_shard(plan: dict, shard: int, on_chunk) -> dict:
    """Generate shard ``shard`` chunk by chunk into a temp file, then publish it and its record.

    ``on_chunk(rows, tokens)`` is called after every chunk (progress). This is also the function
    helper processes run (``procgen._workers``), so it takes plain data only.
    """
    import pyarrow as pa

    spec = get_task(plan["task"])
    params, dtype, out = plan["params"], np.dtype(plan["dtype"]), plan["out"]
    task_names = spec.row_task_names(params) if spec.row_task_names else None
    schema = _arrow_schema(dtype, with_task=task_names is not None)
    base = base_key(plan["seed"], plan["task"], plan["split"])
    row_start, row_end = _shard_rows(plan, shard)
    name = _shard_filename(shard, plan["num_shards"])
    final = os.path.join(out, name)
    num_tokens = 0
    with atomic_open(final, "wb") as file:
        sink = _HashingSink(file, final)
        with pa.ipc.new_stream(sink, schema) as writer:
            for lo in range(row_start, row_end, plan["chunk_rows"]):
                count = min(plan["chunk_rows"], row_end - lo)
                tokens, offsets, answer_start = spec.kernel(base, lo, count, params, dtype)
                row_task = spec.row_task(params, lo, count) if task_names is not None else None
                writer.write_batch(_record_batch(tokens, offsets, answer_start, schema, row_task, task_names))
                num_tokens += int(offsets[-1])
                on_chunk(count, int(offsets[-1]))
    _fsync_dir(out)
    entry = {"filename": name, "row_start": row_start, "row_end": row_end, "num_rows": row_end - row_start,
             "num_tokens": num_tokens, "num_bytes": sink.size, "sha256": sink.hexdigest()}
    _write_json_atomic(_record_path(out, shard), {"fingerprint": plan["fingerprint"], **entry})
    return entry


class _HashingSink:
    """Write-only file object for pyarrow that hashes (sha256) and counts what passes through."""

    def __init__(self, file, path):
        self._file, self._path = file, path  # path: named in errors (the shard's final name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        try:
            self._file.write(data)
        except OSError as err:
            if err.filename is None:  # file.write errors carry no path: add it
                raise OSError(err.errno, err.strerror, self._path) from None
            raise
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self.closed = True  # the real file is closed by its owner

    def writable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _record_batch(tokens, offsets, answer_start, schema, row_task=None, task_names=None):
    """One Arrow record batch over a kernel's output (tokens shared, offsets rebased to int32)."""
    import pyarrow as pa

    if offsets[-1] > _MAX_SHARD_TOKENS:
        raise RuntimeError(f"chunk of {offsets[-1]} tokens exceeds int32 offsets")  # max_row_length is wrong
    input_ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(tokens))
    columns = [input_ids, pa.array(answer_start, pa.int32())]
    if row_task is not None:
        columns.append(pa.DictionaryArray.from_arrays(pa.array(row_task, pa.int8()), pa.array(task_names, pa.string())))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _finalise(plan, records) -> dict:
    """All shards exist: write dataset_info.json, state.json, then the manifest; drop the state.

    Idempotent and race-tolerant: every writer produces the same bytes and replaces atomically.
    """
    out = plan["out"]
    shards = [{k: v for k, v in records[j].items() if k != "fingerprint"} for j in range(plan["num_shards"])]
    manifest = _manifest(plan, shards)
    _write_json_atomic(os.path.join(out, _INFO_NAME), _dataset_info(plan), sort_keys=False)
    _write_json_atomic(os.path.join(out, _STATE_NAME), _dataset_state(plan, shards), sort_keys=True)
    _write_json_atomic(os.path.join(out, MANIFEST_NAME), manifest)
    _fsync_dir(out)
    _remove_state_dir(out)
    return manifest


def _manifest(plan, shards) -> dict:
    from procgen import __version__

    spec = get_task(plan["task"])
    params = plan["params"]
    return {
        "format_version": FORMAT_VERSION,
        "procgen_version": __version__,
        "task": plan["task"],
        "params": {k: _jsonish(v) for k, v in params.items()},
        "seed": plan["seed"],
        "split": plan["split"],
        "num_rows": plan["num_rows"],
        "num_tokens": sum(s["num_tokens"] for s in shards),
        "dtype": plan["dtype"],
        "vocab_size": spec.vocab_size(params),
        "max_row_length": int(spec.max_row_length(params)),  # every row fits: a model's context length
        "pad_id": spec.pad_id(params),
        "lm_style": spec.lm_style,
        "vocab": spec.vocab(params),
        **({"row_tasks": spec.row_task_names(params)} if spec.row_task_names else {}),
        "shards": shards,
        "command": plan["command"],
    }


def _manifest_fingerprint(manifest: dict) -> str | None:
    try:
        return _fingerprint({**manifest, "num_shards": len(manifest["shards"])})
    except (KeyError, TypeError):
        return None


def _features(dtype_name: str, with_task: bool = False) -> dict:
    """``datasets`` features (as its JSON) of our columns (+ ``task`` for mixtures)."""
    features = {"input_ids": {"feature": {"dtype": dtype_name, "_type": "Value"}, "_type": "List"},
                "answer_start": {"dtype": "int32", "_type": "Value"}}
    if with_task:
        features["task"] = {"dtype": "string", "_type": "Value"}  # stored as dictionary<int8, string>
    return features


def _arrow_schema(dtype: np.dtype, with_task: bool = False, metadata: bool = True):
    """Shard schema, with the ``huggingface`` metadata ``datasets`` writes (so features load exactly)."""
    import pyarrow as pa

    fields = [pa.field("input_ids", pa.list_(pa.from_numpy_dtype(dtype))), pa.field("answer_start", pa.int32())]
    if with_task:
        fields.append(pa.field("task", pa.dictionary(pa.int8(), pa.string())))
    if not metadata:
        return pa.schema(fields)
    features = _features(dtype.name, with_task)
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})


def _dataset_info(plan) -> dict:
    """dataset_info.json as ``datasets.Dataset.save_to_disk`` writes it (keys sorted)."""
    description = (f"procgen {plan['task']} rows ({json.dumps(plan['params'])}), seed={plan['seed']}, "
                   f"split={plan['split']}. Regenerate with: {plan['command']}")
    return {"citation": "", "description": description, "features": _features(plan["dtype"], _has_task_column(plan)),
            "homepage": "",
            "license": ""}


def _dataset_state(plan, shards) -> dict:
    """state.json with the 7 keys ``datasets.load_from_disk`` reads."""
    return {"_data_files": [{"filename": s["filename"]} for s in shards], "_fingerprint": plan["fingerprint"][:16],
            "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
            "_split": plan["split"]}


# --- small file helpers -----------------------------------------------------------------------

def _shard_rows(plan, shard) -> tuple[int, int]:
    n, num_shards = plan["num_rows"], plan["num_shards"]
    return shard * n // num_shards, (shard + 1) * n // num_shards


def _shard_filename(shard: int, num_shards: int) -> str:
    return f"data-{shard:05d}-of-{num_shards:05d}.arrow"


def _record_path(out, shard) -> str:
    return os.path.join(out, _STATE_DIR, f"shard-{shard:05d}.json")


def _read_records(out, plan) -> dict[int, dict]:
    """Finished-shard records of this plan: ``{shard: record}``."""
    records = {}
    for shard in range(plan["num_shards"]):
        record = _read_json(_record_path(out, shard))
        if record is not None and record.get("fingerprint") == plan["fingerprint"]:
            records[shard] = record
    return records


def _size_matches(out, entry) -> bool:
    try:
        return os.stat(os.path.join(out, entry["filename"])).st_size == entry["num_bytes"]
    except FileNotFoundError:
        return False


def _shard_intact(out, record) -> bool:
    return _size_matches(out, record) and _sha256_file(os.path.join(out, record["filename"])) == record["sha256"]


def _sha256_file(path) -> str:
    digest = hashlib.sha256()
    block = bytearray(1 << 23)
    view = memoryview(block)
    with open(path, "rb", buffering=0) as file:
        while size := file.readinto(block):
            digest.update(view[:size])
    return digest.hexdigest()


def _write_json_atomic(path, obj, sort_keys=False) -> None:
    """Write JSON to a temp name, fsync, then ``os.replace`` (readers never see half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_open(path, "w") as file:
        json.dump(obj, file, indent=2, sort_keys=sort_keys)
        file.write("\n")


def _read_json(path) -> dict | None:
    """Parsed JSON object at ``path``; None if the file is missing or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _fsync_dir(path) -> None:
    """Persist directory entries (renames); some filesystems refuse, which is harmless here."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_state_dir(out) -> None:
    # the config first: a removal cut short then leaves records that nothing mistakes for a write in progress
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out, _STATE_DIR, _CONFIG_NAME))
    shutil.rmtree(os.path.join(out, _STATE_DIR), ignore_errors=True)


def _finished(plan) -> dict | None:
    """The manifest if ``out`` holds this plan's dataset complete (its state removed), else None."""
    out = plan["out"]
    manifest = _read_json(os.path.join(out, MANIFEST_NAME))
    if manifest is None or _manifest_fingerprint(manifest) != plan["fingerprint"] or \
            not all(_size_matches(out, entry) for entry in manifest["shards"]):
        return None
    _remove_state_dir(out)
    return manifest


@contextlib.contextmanager
def _locked(out: str, shared: bool):
    """Hold ``out/.procgen.lock`` (flock) while the body runs; yield its fd, or None if unlockable.

    A write holds it exclusively, shard_index jobs of one dataset share it; a second writer fails
    at once (BlockingIOError naming the holder's pid, which the holder writes into the file). The
    kernel drops a flock when its holder dies, so a file left by ``kill -9`` blocks nobody. The
    last holder removes the file, under the lock; whoever opened the old file meanwhile sees it
    gone after locking and retries on a new one. Where the file cannot be created (a read-only
    directory: no write can succeed there anyway) or the system has no flock, nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    fd = None if fcntl is None else _lock(fcntl, out, shared)
    if fd is None:
        yield None
        return
    try:
        yield fd
    finally:
        _unlock(fcntl, fd, os.path.join(out, LOCK_NAME))


def _lock(fcntl, out: str, shared: bool) -> int | None:
    """Take the lock of :func:`_locked`; return its fd, or None where no lock can be taken."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK_NAME)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None
            raise
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            for _ in range(20):  # the holder writes its pid right after locking
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
                if holder:
                    break
                time.sleep(0.01)
            os.close(fd)
            who = (f"pid {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "")) if holder else "pid unknown"
            raise BlockingIOError(errno.EWOULDBLOCK, f"out={out!r} is being written by another procgen process "
                                  f"({who}); wait for it to finish or stop it, then rerun", path) from None
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None  # a filesystem without flock
            raise
        opened = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            break
        os.close(fd)  # the last holder removed this file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except BaseException:
        _unlock(fcntl, fd, path)
        raise
    return fd


def _unlock(fcntl, fd: int, path: str) -> None:
    """Remove the lock file if no one else holds it (checked by taking it exclusively), then close."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours unless shard jobs share it
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    except OSError:  # another shard job still holds it: the last one removes it
        pass
    finally:
        os.close(fd)


def _reworded(err: OSError, out) -> OSError:
    """One-line OSError (same subclass, e.g. PermissionError) naming the path and what to do."""
    if err.errno is None:
        return err
    hint = "; free some space, then rerun the same call to resume" if err.errno == errno.ENOSPC else ""
    return OSError(err.errno, f"procgen.write could not write the dataset in {out!r}: {err.strerror}{hint}",
                   err.filename if err.filename is not None else out)


# =============================================================================================
# reading
# =============================================================================================

# Everything read from a dataset directory is untrusted input: an edited procgen.json, state.json
# or dataset_info.json gives one DatasetError line naming the file and the field, never a
# TypeError or numba typing error from deep inside, and never a file read from outside the
# directory (shard names must be the plain names the writer gives).

_DTYPES = ("uint8", "uint16", "int32")  # what procgen.tasks.dtype_for_vocab can choose
_SHARD_FIELDS = ("filename", "row_start", "row_end", "num_rows", "num_tokens", "num_bytes", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Written next to our shards by datasets (Dataset.map & co on a dataset opened by load()): not ours, harmless.
_DATASETS_CACHE = re.compile(r"cache-[0-9a-f]+(_\d{5}_of_\d{5})?\.arrow")
_SAMPLE_ROWS = 8  # rows validate regenerates at seeded random indices, besides each shard's first and last
_RECORD_FILE = re.compile(r"shard-(\d{5,})\.json")  # in _STATE_DIR: see _record_path


def read_manifest(path) -> dict:
    """Return the checked ``procgen.json`` of the dataset at ``path``.

    Every field is checked (types, the task registered, params resolved through the task's specs,
    dtype and derived fields equal to the task's, shard records plain and contiguous), and
    ``command`` is rebuilt from task, params, seed and split with ``--out path``: a stored command
    string is never returned.

    Raises DatasetError if the directory does not exist, the manifest is missing (an incomplete
    dataset: the message says which shards are done and the command that finishes it), unreadable,
    or has a bad field (the message names it).

    >>> read_manifest("data/dyck")["num_rows"]   # doctest: +SKIP
    10000000
    """
    path = as_path(path, "path", "a procgen dataset folder")
    if not os.path.isdir(path):
        raise DatasetError(f"no procgen dataset at {path!r}: not a directory", path, reason="missing")
    manifest_path = os.path.join(path, MANIFEST_NAME)
    if not os.path.exists(manifest_path):
        raise _incomplete(path)
    manifest = _read_json(manifest_path)
    if manifest is None:
        raise DatasetError(f"unreadable manifest {manifest_path!r} (not a JSON object)", path, reason="bad manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{manifest_path!r} has format_version {manifest.get('format_version')!r}; this "
                           f"procgen reads format {FORMAT_VERSION}", path, reason="format version")
    missing = [k for k in ("task", "params", "seed", "split", "num_rows", "num_tokens", "dtype", "shards")
               if k not in manifest]
    if missing:
        raise DatasetError(f"manifest {manifest_path!r} lacks {', '.join(missing)}", path, reason="bad manifest")
    _check_manifest(path, manifest)
    command = _command(manifest["task"], path, manifest["num_rows"], len(manifest["shards"]), manifest["seed"],
                       manifest["split"], manifest["params"])
    return {**manifest, "command": command}


def _check_manifest(path, manifest: dict) -> None:
    """Raise DatasetError naming the first field of ``manifest`` that a write could not have produced."""

    def bad(field, problem):
        return DatasetError(f"{path!r}: {MANIFEST_NAME}: {field} {problem}", path, reason="bad manifest")

    try:
        spec = get_task(manifest["task"])
    except ValueError as err:  # "task must be one of: ...; got ..."
        raise DatasetError(f"{path!r}: {MANIFEST_NAME}: {err}", path, reason="bad manifest") from None
    params = manifest["params"]
    if not isinstance(params, dict):
        raise bad("params", f"must be a JSON object of {spec.name}'s parameters; got {_short(params)}")
    try:
        resolved = spec.resolve_params(params)
    except (ValueError, TypeError, LookupError, AttributeError) as err:  # mixture specs are nested mappings
        raise bad("params", f"are not valid: {' '.join(str(err).split())}") from None
    difference = _difference(params, _as_json(resolved), "params")
    if difference is not None:
        where, found, expected = difference
        raise bad(where, f"is {found}; {spec.name}'s parameter specs resolve it to {expected}")
    for field, check in (("seed", check_seed), ("split", check_split)):
        try:
            check(manifest[field])
        except ValueError as err:  # "seed must be ...; got ..."
            raise DatasetError(f"{path!r}: {MANIFEST_NAME}: {err}", path, reason="bad manifest") from None
    for field, minimum in (("num_rows", 1), ("num_tokens", 0)):
        if not _is_int(manifest[field], minimum):
            raise bad(field, f"must be an integer >= {minimum}; got {_short(manifest[field])}")
    vocab = spec.vocab(resolved)
    vocab_size = len(vocab) if spec.size is None else spec.vocab_size(resolved)  # one vocab build, not three
    dtype, task_dtype = manifest["dtype"], dtype_for_vocab(vocab_size).name
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise bad("dtype", f"must be one of {', '.join(_DTYPES)}; got {_short(dtype)}")
    if dtype != task_dtype:
        raise bad("dtype", f"is {dtype!r}, but {spec.name} with these params stores ids as {task_dtype!r}")
    derived = {"vocab_size": vocab_size, "max_row_length": int(spec.max_row_length(resolved)),
               "pad_id": spec.pad_id(resolved), "lm_style": spec.lm_style, "vocab": vocab}
    if spec.row_task_names is not None:
        derived["row_tasks"] = spec.row_task_names(resolved)
        if "row_tasks" not in manifest:
            raise bad("row_tasks", f"is missing (a {spec.name} dataset has a task column)")
    elif "row_tasks" in manifest:
        raise bad("row_tasks", f"is present, but {spec.name} rows have no task column")
    for field, value in derived.items():  # optional (older manifests lack some), but true when present
        if field not in manifest:
            continue
        if field == "vocab" and manifest[field] == list(value):  # names are str: == is exact, and fast for 2**21
            continue
        difference = _difference(manifest[field], _as_json(value), field)
        if difference is not None:
            where, found, expected = difference
            raise bad(where, f"is {found}; {spec.name} with these params gives {expected}")
    if not isinstance(manifest.get("procgen_version", ""), str):
        raise bad("procgen_version", f"must be a string; got {_short(manifest['procgen_version'])}")
    shards = manifest["shards"]
    if not isinstance(shards, list) or not shards:
        raise bad("shards", f"must be a non-empty list of shard records; got {_short(shards)}")
    row = 0
    for shard, entry in enumerate(shards):
        where = f"shards[{shard}]"
        if not isinstance(entry, dict):
            raise bad(where, f"must be a JSON object with {', '.join(_SHARD_FIELDS)}; got {_short(entry)}")
        missing = [key for key in _SHARD_FIELDS if key not in entry]
        if missing:
            raise bad(f"{where}.{missing[0]}", "is missing")
        name = _shard_filename(shard, len(shards))
        if entry["filename"] != name:  # also keeps every read inside the directory: no separator, no ..
            raise bad(f"{where}.filename", f"must be {name!r} (shard {shard} of {len(shards)}, a plain file name in "
                                           f"the dataset directory); got {_short(entry['filename'])}")
        for key, minimum in (("row_start", 0), ("row_end", 1), ("num_rows", 1), ("num_tokens", 0), ("num_bytes", 0)):
            if not _is_int(entry[key], minimum):
                raise bad(f"{where}.{key}", f"must be an integer >= {minimum}; got {_short(entry[key])}")
        if entry["row_start"] != row:
            raise bad(f"{where}.row_start", f"is {entry['row_start']}; the shard must start at row {row}, where "
                                            f"the previous one ends")
        if entry["row_end"] != entry["row_start"] + entry["num_rows"]:
            raise bad(f"{where}.row_end", f"is {entry['row_end']}; row_start {entry['row_start']} + num_rows "
                                          f"{entry['num_rows']} is {entry['row_start'] + entry['num_rows']}")
        if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            raise bad(f"{where}.sha256", f"must be 64 lowercase hex digits; got {_short(entry['sha256'])}")
        row = entry["row_end"]
    if manifest["num_rows"] != row:
        raise bad("num_rows", f"is {manifest['num_rows']}, but the shards hold rows [0, {row})")


def _is_int(value, minimum: int) -> bool:
    """An integer (not a bool, not a float such as 200.0) >= ``minimum``, as the writer stores it."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), so it compares with what was stored."""
    return json.loads(json.dumps(value))


def _difference(found, expected, where: str):
    """First place where two JSON values differ: ``(where, found, expected)`` (shortened reprs), or None.

    Floats compare to 1e-12 relative: re-resolving a mixture renormalises its weights, which can
    move them by an ulp. Types must match otherwise (``True`` is not ``1``, ``200.0`` not ``200``).
    """
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in expected:
            if key not in found:
                return f"{where}.{key}", "missing", _short(expected[key])
            difference = _difference(found[key], expected[key], f"{where}.{key}")
            if difference is not None:
                return difference
        extra = next((key for key in found if key not in expected), None)
        return None if extra is None else (f"{where}.{extra}", _short(found[extra]), "absent")
    if isinstance(expected, list) and isinstance(found, list) and len(found) == len(expected):
        for index, (a, b) in enumerate(zip(found, expected)):
            difference = _difference(a, b, f"{where}[{index}]")
            if difference is not None:
                return difference
        return None
    if type(found) is float and type(expected) is float and math.isclose(found, expected, rel_tol=1e-12):
        return None
    if type(found) is type(expected) and found == expected:
        return None
    return where, _short(found), _short(expected)


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error lines stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _incomplete(path) -> DatasetError:
    config = _read_json(os.path.join(path, _STATE_DIR, _CONFIG_NAME))
    num_shards = (config or {}).get("num_shards")
    if not _is_int(num_shards, 1):
        return DatasetError(f"incomplete dataset at {path!r}: no {MANIFEST_NAME} manifest (not a finished "
                            f"procgen dataset); rerun the same `procgen generate` command to finish it",
                            path, reason="incomplete", shards_done=[])
    done = []
    for name in _listdir(os.path.join(path, _STATE_DIR)):  # not range(num_shards): it is untrusted, maybe 10**12
        match = _RECORD_FILE.fullmatch(name)
        shard = int(match.group(1)) if match else num_shards
        if shard < num_shards and (_read_json(_record_path(path, shard)) or {}).get("fingerprint") == \
                config.get("fingerprint"):
            done.append(shard)
    done.sort()
    listed = ", ".join(map(str, done[:20])) + (" ..." if len(done) > 20 else "")
    command = _rerun_command(path, config)
    return DatasetError(f"incomplete dataset at {path!r}: no {MANIFEST_NAME} manifest yet, {len(done)} of "
                        f"{num_shards} shards done ({listed or 'none'}); rerun the same `procgen generate` "
                        f"command to finish it{': ' + command if command else ''}",
                        path, reason="incomplete", shards_done=done)


def _rerun_command(path, config: dict) -> str | None:
    """The command that finishes an interrupted write, rebuilt from its config (never the stored string)."""
    if not isinstance(config.get("params"), dict):
        return None
    try:
        spec = get_task(config.get("task"))
        params = spec.resolve_params(config["params"])
        seed, split, num_rows = config.get("seed"), config.get("split"), config.get("num_rows")
        check_seed(seed)
        check_split(split)
    except (ValueError, TypeError, LookupError, AttributeError):
        return None
    if not _is_int(num_rows, 1):
        return None
    return _command(spec.name, path, num_rows, config["num_shards"], seed, split, params)


def _listdir(path) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


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
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
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
    _check_state(path, manifest, ("_data_files", "_split"))
    _check_info(path, manifest)
    for shard, entry in enumerate(manifest["shards"]):
        if not os.path.isfile(os.path.join(path, entry["filename"])):
            raise DatasetError(f"shard {shard} ({entry['filename']}) is missing from {path!r}", path, shard=shard,
                               reason="missing shard file")
    ds = datasets.load_from_disk(path, keep_in_memory=False)
    if len(ds) != manifest["num_rows"]:
        raise DatasetError(f"{path!r}: the shard files hold {len(ds)} rows, {MANIFEST_NAME} says "
                           f"{manifest['num_rows']}", path, reason="count mismatch")
    return ds


def _read_checked_json(path, name: str) -> dict:
    """The JSON object in file ``name`` of the dataset, or a one-line DatasetError saying what is wrong."""
    try:
        with open(os.path.join(path, name), encoding="utf-8") as file:
            value = json.load(file)
    except FileNotFoundError:
        raise DatasetError(f"{path!r}: {name} is missing", path, reason=f"bad {name}") from None
    except ValueError as err:  # invalid JSON or UTF-8
        raise DatasetError(f"{path!r}: {name} is not a JSON object: {' '.join(str(err).split())}", path,
                           reason=f"bad {name}") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{path!r}: {name} is not a JSON object (it holds a {type(value).__name__})", path,
                           reason=f"bad {name}")
    return value


def _written_plan(manifest: dict) -> dict:
    """The parts of the write's plan that dataset_info.json and state.json were made from."""
    plan = {key: manifest[key] for key in ("format_version", "task", "params", "seed", "split", "num_rows", "dtype",
                                           "command")}
    plan["num_shards"] = len(manifest["shards"])
    plan["fingerprint"] = _fingerprint(plan)
    return plan


def _check_state(path, manifest: dict, keys=None, skip=()) -> None:
    """state.json must hold what the write put there: ``keys`` of it, or all of it but ``skip`` (and no more).

    ``_data_files`` is what ``datasets.load_from_disk`` opens: it must list the manifest's shards,
    whose names :func:`read_manifest` has checked.
    """
    state = _read_checked_json(path, _STATE_NAME)
    expected = _as_json(_dataset_state(_written_plan(manifest), manifest["shards"]))
    for key in keys or [key for key in expected if key not in skip]:
        if key not in state:
            raise DatasetError(f"{path!r}: {_STATE_NAME}: {key} is missing", path, reason=f"bad {_STATE_NAME}")
        difference = _difference(state[key], expected[key], key)
        if difference is None:
            continue
        if key == "_data_files":
            listed = state[key]
            if isinstance(listed, list):
                listed = [f.get("filename") if isinstance(f, dict) else f for f in listed]
            raise DatasetError(f"{path!r}: {_STATE_NAME}: _data_files lists {_short(listed, 120)}, {MANIFEST_NAME} "
                               f"{_short([e['filename'] for e in manifest['shards']], 120)} (datasets.load_from_disk "
                               f"reads the files state.json lists)", path, reason=f"bad {_STATE_NAME}")
        if key == "_fingerprint":
            raise DatasetError(f"{path!r}: {_STATE_NAME}: _fingerprint {_short(state[key])} differs from the "
                               f"fingerprint of {MANIFEST_NAME}'s task, params, seed, split and row and shard counts "
                               f"({expected[key]!r}): one of them was edited after the write", path,
                               reason=f"bad {_STATE_NAME}")
        where, found, wanted = difference
        raise DatasetError(f"{path!r}: {_STATE_NAME}: {where} is {found}, but {MANIFEST_NAME}'s dataset gives "
                           f"{wanted}", path, reason=f"bad {_STATE_NAME}")
    extra = sorted(set(state) - set(expected)) if keys is None else []
    if extra:
        raise DatasetError(f"{path!r}: {_STATE_NAME}: unexpected key {extra[0]!r} (state.json has exactly the "
                           f"{len(expected)} keys {', '.join(expected)})", path, reason=f"bad {_STATE_NAME}")


def _check_info(path, manifest: dict, description: bool = False) -> None:
    """dataset_info.json must hold what the write put there: its features and other keys, or (``description``)
    its description, whose regenerate command may name another --out (the directory was moved)."""
    found = _read_checked_json(path, _INFO_NAME)
    expected = _as_json(_dataset_info(_written_plan(manifest)))  # its command has --out path
    if description:
        cut = " Regenerate with: "
        text = found.get("description")
        head, _, command = text.partition(cut) if isinstance(text, str) else ("", "", "")
        try:
            words = shlex.split(command)
        except ValueError:  # unbalanced quotes
            words = []
        if "--out" in words[:-1]:
            words[words.index("--out") + 1] = path
        want_head, _, want_command = expected["description"].partition(cut)
        if head != want_head or words != shlex.split(want_command):
            raise DatasetError(f"{path!r}: {_INFO_NAME}: description {_short(text)} does not describe the dataset "
                               f"of {MANIFEST_NAME}: its task, params, seed or split were edited after the write",
                               path, reason=f"bad {_INFO_NAME}")
        return
    found = {key: value for key, value in found.items() if key != "description"}
    expected.pop("description")
    difference = _difference(found, expected, "")
    if difference is not None:
        where, value, wanted = difference
        raise DatasetError(f"{path!r}: {_INFO_NAME}: {where.lstrip('.')} is {value}; {MANIFEST_NAME} (task "
                           f"{manifest['task']}, dtype {manifest['dtype']}) gives {wanted}", path,
                           reason=f"bad {_INFO_NAME}")


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
    pieces = _row_range_batches(path, manifest, start, stop)
    if rows_per_batch is None:
        yield from pieces
        return
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
                yield _concat(pending)
                pending, pending_rows = [], 0
    if pending:
        yield _concat(pending)


def _row_range_batches(path, manifest, start, stop):
    """Record batches overlapping global rows ``[start, stop)``, clipped to that range."""
    for shard, entry in enumerate(manifest["shards"]):
        if entry["row_end"] <= start or entry["row_start"] >= stop:
            continue
        for batch in _shard_batches(path, manifest, shard):
            lo, hi = max(start, batch.start), min(stop, batch.start + len(batch))
            if lo < hi:
                yield batch if (lo, hi) == (batch.start, batch.start + len(batch)) else \
                    batch[lo - batch.start:hi - batch.start]


def _concat(parts: list) -> Batch:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Batch(np.concatenate([p.tokens for p in parts]), offsets,
                 np.concatenate([p.answer_start for p in parts]), first.task, first.params, first.seed, first.split,
                 first.start)


def _shard_batches(path, manifest, shard):
    """Batches (zero-copy views) of one shard's record batches, checking the schema on the way."""
    import pyarrow as pa

    entry = manifest["shards"][shard]
    file = os.path.join(path, entry["filename"])
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
    with_task = "row_tasks" in manifest
    expected = _arrow_schema(np.dtype(manifest["dtype"]), with_task, metadata=False)
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
            row_task = _row_task_column(record, manifest) if with_task else None
            yield Batch(tokens, offsets.astype(np.int64) - offsets[0], answer_start, manifest["task"], params,
                        manifest["seed"], manifest["split"], row, row_task)
            row += len(record)
    except pa.ArrowException as err:
        raise DatasetError(f"shard {shard} ({entry['filename']}) is not a readable Arrow stream near row {row}: "
                           f"{err}", path, shard=shard, reason="unreadable") from None


def _row_task_column(record, manifest) -> np.ndarray:
    """A mixture's ``task`` column as int8 indices into ``manifest["row_tasks"]``."""
    column = record.column(2)
    names = column.dictionary.to_pylist()
    indices = column.indices.to_numpy(zero_copy_only=False)
    if names == manifest["row_tasks"]:
        return indices
    # another dictionary order would silently relabel rows: map names back to the manifest's order
    lookup = np.array([manifest["row_tasks"].index(name) if name in manifest["row_tasks"] else -1 for name in names],
                      np.int8)
    return lookup[indices]


def _has_task_column(plan) -> bool:
    return get_task(plan["task"]).row_task_names is not None


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
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
    _check_files(path, manifest)
    _check_state(path, manifest, skip=("_fingerprint",))
    _check_info(path, manifest)
    sample = _regenerated_rows(manifest, params, _sample_rows(manifest))
    total_tokens = 0
    with tqdm(total=manifest["num_rows"], unit=" rows", unit_scale=True, desc="validate",
              disable=not progress) as bar:
        for shard in range(len(manifest["shards"])):
            total_tokens += _validate_shard(path, manifest, shard, spec, params, bar.update, sample)
    if total_tokens != manifest["num_tokens"]:
        raise DatasetError(f"{path!r}: shards hold {total_tokens} tokens, manifest says {manifest['num_tokens']}",
                           path, reason="count mismatch")
    # last, as these name no field: the rows regenerate, yet the write recorded another task, params, seed or
    # split (e.g. a max_depth that no row reaches)
    _check_state(path, manifest, ("_fingerprint",))
    _check_info(path, manifest, description=True)
    return {"path": path, "task": manifest["task"], "rows": manifest["num_rows"], "tokens": total_tokens,
            "shards": len(manifest["shards"]), "ok": True}


def _check_files(path, manifest: dict) -> None:
    """The directory holds our files only (and ``datasets``' cache files): name any other.

    A lock file left by a killed writer is ours and harmless (it locks nothing): not reported.
    """
    ours = {entry["filename"] for entry in manifest["shards"]} | {_INFO_NAME, _STATE_NAME, MANIFEST_NAME, LOCK_NAME}
    extra = sorted(entry for entry in os.listdir(path) if entry not in ours and not _DATASETS_CACHE.fullmatch(entry))
    if extra:
        shown = ", ".join(map(repr, extra[:5])) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise DatasetError(f"{path!r}: unexpected file{'s' * (len(extra) > 1)} {shown}: not part of the dataset "
                           f"{MANIFEST_NAME} describes (a leftover of another write, a write in progress, or added)",
                           path, reason="unexpected file")


def _sample_rows(manifest: dict) -> set[int]:
    """Rows validate regenerates: each shard's first and last, and a few random ones seeded by the manifest."""
    rows = {entry["row_start"] for entry in manifest["shards"]} | {entry["row_end"] - 1 for entry in manifest["shards"]}
    rng = np.random.default_rng(int(_fingerprint(_written_plan(manifest))[:16], 16))
    return rows | set(rng.integers(0, manifest["num_rows"], _SAMPLE_ROWS).tolist())


def _regenerated_rows(manifest, params, rows) -> dict[int, tuple]:
    """``{row: (tokens, answer_start, row_task)}`` as ``procgen.generate`` makes them from the manifest.

    One call per run of consecutive rows (a shard's last row and the next one's first): a call
    costs more than a row.
    """
    from procgen.api import generate

    rows, fresh = sorted(rows), {}
    while rows:
        count = 1
        while count < len(rows) and rows[count] == rows[0] + count:
            count += 1
        batch = generate(manifest["task"], count, seed=manifest["seed"], split=manifest["split"], start=rows[0],
                         **params)
        for i in range(count):
            fresh[rows[i]] = (batch[i], int(batch.answer_start[i]),
                              None if batch.row_task is None else int(batch.row_task[i]))
        rows = rows[count:]
    return fresh


def _check_regenerated(path, manifest, shard, batch, index, fresh: tuple) -> None:
    """Row ``index`` of ``batch`` must be, byte for byte, ``fresh``: the row the manifest says generates it."""
    row = batch.start + index
    tokens, answer_start, row_task = fresh
    stored = batch[index]
    same = (stored.dtype == tokens.dtype and stored.tobytes() == tokens.tobytes()
            and int(batch.answer_start[index]) == answer_start
            and (batch.row_task is None or int(batch.row_task[index]) == row_task))
    if not same:
        raise DatasetError(f"{path!r}: shard {shard} ({manifest['shards'][shard]['filename']}): row {row} differs "
                           f"from the row {MANIFEST_NAME}'s task, params, seed and split regenerate "
                           f"(procgen.generate({manifest['task']!r}, 1, seed={manifest['seed']}, "
                           f"split={manifest['split']!r}, start={row}, **params)): the manifest does not describe "
                           f"the stored rows", path, shard=shard, row=row, reason="row differs from its regeneration")


def _shard_error(path, manifest, shard, reason, detail="") -> DatasetError:
    where = f"shard {shard} ({manifest['shards'][shard]['filename']})"
    return DatasetError(f"{path!r}: {where}: {reason}{detail}", path, shard=shard, reason=reason)


def _validate_shard(path, manifest, shard, spec, params, on_rows, sample=None) -> int:
    """Check one shard's file (size, sha256, schema, counts, every row, and the rows of ``sample``, which maps
    a row to its regeneration: see :func:`_regenerated_rows`); return its token count."""
    entry = manifest["shards"][shard]
    file = os.path.join(path, entry["filename"])
    if not os.path.isfile(file):
        raise _shard_error(path, manifest, shard, "missing shard file")
    size = os.path.getsize(file)
    if "num_bytes" in entry and size != entry["num_bytes"]:
        raise _shard_error(path, manifest, shard, "size mismatch",
                           f": {size} bytes, the manifest says {entry['num_bytes']}")
    if _sha256_file(file) != entry["sha256"]:
        raise _shard_error(path, manifest, shard, "sha256 mismatch", " (the file changed or is corrupt)")
    rows = tokens = 0
    for batch in _shard_batches(path, manifest, shard):
        bad = spec.check(batch)
        if bad is not None:
            index, reason = bad
            row = batch.start + index
            raise DatasetError(f"{path!r}: shard {shard} ({entry['filename']}): row {row} is invalid: {reason}: "
                               f"{batch.render(index)}",
                               path, shard=shard, row=row, reason=reason)
        for row in sorted(r for r in sample or () if batch.start <= r < batch.start + len(batch)):
            _check_regenerated(path, manifest, shard, batch, row - batch.start, sample[row])
        rows += len(batch)
        tokens += batch.num_tokens
        on_rows(len(batch))
    if rows != entry["num_rows"]:
        raise _shard_error(path, manifest, shard, "row count mismatch",
                           f": {rows} rows, the manifest says {entry['num_rows']}")
    if tokens != entry["num_tokens"]:
        raise _shard_error(path, manifest, shard, "token count mismatch",
                           f": {tokens} tokens, the manifest says {entry['num_tokens']}")
    return tokens
