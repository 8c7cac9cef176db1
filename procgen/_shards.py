"""Running a write: plan it, resume it from finished-shard records, drive the worker pool, finalise it.

:func:`plan` checks every argument of :func:`procgen.dataset.write` before any work and returns a
:class:`WritePlan`; :func:`run` makes ``out`` ready (resume, refuse or clear), writes the missing
shards in this process and helper processes (:mod:`procgen._workers`), and writes the manifest
once every shard exists. Shard ``j`` of ``S`` holds global rows ``[j*n//S, (j+1)*n//S)``, made by
:func:`procgen.api.generate` chunk by chunk, so row ``i`` on disk is row ``i`` in memory whatever
the shard or worker count. While a write is in progress ``out/.procgen/`` holds its config and one
record per finished shard (name, rows, tokens, size, sha256).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from procgen import _workers
from procgen._arrow import arrow_schema, record_batch
from procgen._checks import check_int, check_seed, check_split
from procgen._files import atomic_open
from procgen._layout import (CONFIG_NAME, FORMAT_VERSION, INFO_NAME, LOCK_NAME, MANIFEST_NAME, MAX_SHARD_TOKENS,
                             MAX_SHARDS, MAX_TOKENS, STATE_DIR, STATE_NAME, fsync_dir, read_json, record_path,
                             remove_ours, remove_state_dir, remove_temps, shard_filename, shard_intact, size_matches,
                             write_json_atomic)
from procgen._manifest import (build, command, dataset_info, dataset_state, fingerprint, jsonish,
                               manifest_fingerprint)
from procgen._sink import ShardSink, direct_io_enabled
from procgen.api import generate, rows_for_tokens
from procgen.tasks import get_task

# Tokens per record batch: bounds the memory of a writer (a few chunks) whatever n is.
CHUNK_TOKENS = 1 << 22
# Work (tokens) below which an extra helper process cannot pay for its start-up (about 1 s).
SPAWN_TOKENS = 1 << 27
# Default shard size: at most about this many tokens per shard.
SHARD_TOKENS = 1 << 28
SHARDS_PER_WORKER = 4  # the fewest shards per worker of a default multi-worker write that starts helpers
MAX_WORKERS = 1024  # processes writing one dataset
# Chunks a writer may have waiting for its I/O thread: a queue of 3 rather than 1 absorbs the jitter of
# page-cache writes (dyck, 1e9 tokens, one worker: 269 -> 325 M tok/s; with sha256 on a thread of its own, 346)
_QUEUED_CHUNKS = 3
# Shards of at least this many bytes (an upper bound: rows x longest row) are written with O_DIRECT
# where the file system allows (see procgen._sink); smaller ones are likely read back soon, from the page cache.
DIRECT_MIN_BYTES = 64 << 20


@dataclass(frozen=True)
class WritePlan:
    """A checked write: plain data, handed (pickled) to every helper process."""

    out: str  # the dataset directory
    task: str
    params: dict  # resolved: every parameter of the task
    seed: int
    split: str
    num_rows: int
    num_shards: int
    dtype: str  # numpy dtype name of the token ids
    row_tokens: int  # the longest row, in tokens
    chunk_rows: int  # rows per record batch
    fingerprint: str  # of config(): tells a resume from a different dataset
    command: str  # the `procgen generate` line that regenerates the dataset

    def config(self) -> dict:
        """What determines the dataset's content (what :func:`procgen._manifest.fingerprint` hashes)."""
        return {"format_version": FORMAT_VERSION, "task": self.task, "params": self.params, "seed": self.seed,
                "split": self.split, "num_rows": self.num_rows, "num_shards": self.num_shards}

    def shard_rows(self, shard: int) -> tuple[int, int]:
        """Global rows ``[start, end)`` of ``shard``."""
        return shard * self.num_rows // self.num_shards, (shard + 1) * self.num_rows // self.num_shards


def check_limit(value, name: str, low: int, high: int, why: str) -> int:
    """:func:`~procgen._checks.check_int` for a count that may be an integral float (``1e6``), naming ``why``.

    A float is shown as given (``got 1e+30``), not as the 31-digit integer it equals.
    """
    try:
        return check_int(value, name, low, high, why, integral_floats=True)
    except ValueError as err:
        if not isinstance(value, (float, np.floating)):
            raise
        raise ValueError(f"{str(err).rpartition('; got ')[0]}; got {value!r}") from None


def plan(task, out, params: dict, *, n=None, tokens=None, shards=None, workers=1, seed=0, split="train",
         shard_index=None, overwrite=False, progress=True) -> WritePlan:
    """Check every argument of :func:`procgen.dataset.write` (before any work) and return its plan.

    Every count is bounded by what can be written (``tokens``, if given, is named in n's error),
    so that no huge value turns into a loop over 1e23 shards.
    """
    if (n is None) == (tokens is None):
        raise ValueError(f"pass exactly one of n (rows) and tokens; got {'both' if n is not None else 'neither'}")
    if tokens is not None:
        tokens = check_limit(tokens, "tokens", 1, MAX_TOKENS,
                             f"a dataset holds at most {MAX_SHARDS} shards of < 2**31 tokens")
        n = rows_for_tokens(task, tokens, seed=seed, split=split, **params)
    spec = get_task(task)
    if not isinstance(out, (str, os.PathLike)) or isinstance(os.fspath(out), bytes) or not os.fspath(out):
        raise ValueError(f"out must be a directory path (str or os.PathLike); got {out!r}")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out must be a directory; {out!r} exists and is not a directory")
    workers = check_limit(workers, "workers", 1, MAX_WORKERS, "processes writing one dataset")
    seed = check_seed(seed)
    check_split(split)
    for name, flag in (("overwrite", overwrite), ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {flag!r}")
    resolved = spec.resolve_params(params)
    row_tokens = max(1, int(spec.max_row_length(resolved)))
    if row_tokens > MAX_SHARD_TOKENS:
        raise ValueError(f"{task}: rows of up to {row_tokens} tokens do not fit a shard (< 2**31 tokens)")
    rows_cap = MAX_SHARD_TOKENS // row_tokens  # most rows a shard can hold
    n = check_limit(n, "n", 1, MAX_SHARDS * rows_cap,
                    f"{task} rows of up to {row_tokens} tokens, at most {MAX_SHARDS} shards of < 2**31 tokens"
                    + (f"; n = the rows for tokens={tokens}" if tokens is not None else ""))
    if shards is None:
        if shard_index is not None:
            raise ValueError("shard_index needs shards: pass the total shard count, e.g. shards=16, shard_index=3")
        # about SHARD_TOKENS tokens per shard, a multiple of workers so that none idles at the end; with
        # several workers at least SHARDS_PER_WORKER each once the write is large enough to start
        # helpers (they start about a second late: finer shards let the others take up the slack)
        per_worker = math.ceil(math.ceil(n * row_tokens / SHARD_TOKENS) / workers)
        if workers > 1:
            per_worker = max(per_worker, min(SHARDS_PER_WORKER, math.ceil(n * row_tokens / (workers * SPAWN_TOKENS))))
        shards = min(n, MAX_SHARDS, workers * per_worker)
    else:
        why = f"n={n}: every shard holds at least one row" if n <= MAX_SHARDS else "the most shards a dataset may have"
        shards = check_limit(shards, "shards", 1, min(n, MAX_SHARDS), why)
        if math.ceil(n / shards) > rows_cap:
            raise ValueError(f"shards must be >= {math.ceil(n / rows_cap)} for n={n} rows of up to {row_tokens} "
                             f"tokens (a shard holds < 2**31 tokens); got {shards}")
    if shard_index is not None:
        shard_index = check_limit(shard_index, "shard_index", 0, shards - 1, f"shards={shards}")
        if overwrite:
            raise ValueError("overwrite=True cannot be combined with shard_index (parallel jobs would delete "
                             "each other's shards); clear the directory once before starting the jobs")
    config = {"format_version": FORMAT_VERSION, "task": task, "params": resolved, "seed": seed, "split": split,
              "num_rows": n, "num_shards": shards}
    return WritePlan(out=out, task=task, params=resolved, seed=seed, split=split, num_rows=n, num_shards=shards,
                     dtype=spec.token_dtype(resolved).name, row_tokens=row_tokens,
                     chunk_rows=max(1, CHUNK_TOKENS // row_tokens), fingerprint=fingerprint(config),
                     command=command(task, out, n, shards, seed, split, resolved))


# --- resume ------------------------------------------------------------------------------------

def run(plan: WritePlan, workers: int, shard_index, overwrite: bool, progress: bool, keep_fds=()) -> dict:
    """Write the shards ``plan`` still lacks (all, or only ``shard_index``); finalise once all exist.

    Returns the manifest, or, in ``shard_index`` mode while other shards are missing, the
    ``{"complete": False, ...}`` summary :func:`procgen.dataset.write` documents.
    """
    out, num_shards = plan.out, plan.num_shards
    finished = _prepare_out(plan, overwrite)
    if finished is not None:
        return finished
    wanted = range(num_shards) if shard_index is None else [shard_index]
    remove_temps(out, None if shard_index is None else shard_filename(shard_index, num_shards))
    records = _read_records(plan)
    todo = []
    for shard in wanted:
        record = records.get(shard)
        if record is None or not shard_intact(out, record):
            todo.append(shard)
            with contextlib.suppress(FileNotFoundError):
                os.remove(record_path(out, shard))
    if todo:
        _generate(plan, todo, workers, progress, keep_fds)
    records = _read_records(plan)
    if len(records) == num_shards:
        return _finalise(plan, records)
    manifest = read_json(os.path.join(out, MANIFEST_NAME))
    if manifest is not None and manifest_fingerprint(manifest) == plan.fingerprint:
        remove_state_dir(out)  # another job finalised while we wrote a duplicate shard
        return manifest
    written = records.get(shard_index, {})
    return {"complete": False, "out": out, "num_shards": num_shards, "shards_done": sorted(records),
            "shard": {k: v for k, v in written.items() if k != "fingerprint"}}


def _prepare_out(plan: WritePlan, overwrite: bool) -> dict | None:
    """Make ``out`` ready for this plan. Returns the manifest if the dataset is already complete.

    Order matters for concurrent shard jobs: the directory is listed first, then the config is
    read, then the manifest (a finaliser writes the manifest before it removes the config).
    """
    out = plan.out
    os.makedirs(out, exist_ok=True)
    entries = [e for e in os.listdir(out) if e not in (STATE_DIR, LOCK_NAME)]
    on_disk = read_json(os.path.join(out, STATE_DIR, CONFIG_NAME))
    if on_disk is not None:
        if on_disk.get("fingerprint") == plan.fingerprint:
            return None  # resume
        _refuse_or_clear(plan, overwrite, on_disk)
    else:
        manifest = read_json(os.path.join(out, MANIFEST_NAME))
        if manifest is not None:
            if manifest_fingerprint(manifest) == plan.fingerprint:
                if all(size_matches(out, entry) for entry in manifest["shards"]):
                    remove_state_dir(out)  # records left by a finaliser killed after its manifest
                    return manifest
                _reopen(plan, manifest)  # a shard went missing or changed size: regenerate it
                return None
            _refuse_or_clear(plan, overwrite, manifest)
        elif entries and not overwrite:
            shown = ", ".join(sorted(entries)[:3]) + (" ..." if len(entries) > 3 else "")
            raise ValueError(f"out={out!r} is not empty and holds no procgen dataset ({shown}); choose an "
                             f"empty directory or pass overwrite=True (deletes only procgen's own files)")
        elif overwrite:
            remove_ours(out)
    _write_config(plan)
    return None


def _write_config(plan: WritePlan) -> None:
    """Record what is being written (before any shard), so a rerun can tell resume from conflict."""
    write_json_atomic(os.path.join(plan.out, STATE_DIR, CONFIG_NAME),
                      {**plan.config(), "fingerprint": plan.fingerprint, "command": plan.command})


def _refuse_or_clear(plan: WritePlan, overwrite: bool, on_disk: dict) -> None:
    """``out`` holds a different dataset: raise ValueError naming the difference, or clear it."""
    if overwrite:
        remove_ours(plan.out)
        return
    here = {k: v for k, v in plan.config().items() if k != "params"}
    there = {k: on_disk.get(k) for k in here}
    if "shards" in on_disk:  # a manifest
        there["num_shards"] = len(on_disk["shards"])
    difference = next((f"{k}={there[k]!r} on disk, {here[k]!r} requested" for k in here if here[k] != there[k]),
                      None)
    if difference is None:
        params_there = on_disk.get("params") or {}
        names = sorted(set(plan.params) | set(params_there))
        difference = next((f"{k}={jsonish(params_there.get(k))!r} on disk, {jsonish(plan.params.get(k))!r} "
                           f"requested" for k in names
                           if jsonish(params_there.get(k)) != jsonish(plan.params.get(k))), "format differs")
    raise ValueError(f"out={plan.out!r} already holds a different procgen dataset ({difference}); choose "
                     f"another out or pass overwrite=True to replace it")


def _reopen(plan: WritePlan, manifest: dict) -> None:
    """Turn a damaged complete dataset back into an in-progress one (its shards become records)."""
    _write_config(plan)
    for shard, entry in enumerate(manifest["shards"]):
        write_json_atomic(record_path(plan.out, shard), {"fingerprint": plan.fingerprint, **entry})
    os.remove(os.path.join(plan.out, MANIFEST_NAME))


def _read_records(plan: WritePlan) -> dict[int, dict]:
    """Finished-shard records of this plan: ``{shard: record}``."""
    records = {}
    for shard in range(plan.num_shards):
        record = read_json(record_path(plan.out, shard))
        if record is not None and record.get("fingerprint") == plan.fingerprint:
            records[shard] = record
    return records


def finished(plan: WritePlan) -> dict | None:
    """The manifest if ``out`` holds this plan's dataset complete (its state removed), else None."""
    manifest = read_json(os.path.join(plan.out, MANIFEST_NAME))
    if manifest is None or manifest_fingerprint(manifest) != plan.fingerprint or \
            not all(size_matches(plan.out, entry) for entry in manifest["shards"]):
        return None
    remove_state_dir(plan.out)
    return manifest


def reworded(err: OSError, out) -> OSError:
    """One-line OSError (same subclass, e.g. PermissionError) naming the path and what to do."""
    if err.errno is None:
        return err
    hint = "; free some space, then rerun the same call to resume" if err.errno == errno.ENOSPC else ""
    return OSError(err.errno, f"procgen.write could not write the dataset in {out!r}: {err.strerror}{hint}",
                   err.filename if err.filename is not None else out)


# --- writing shards ------------------------------------------------------------------------------

def _generate(plan: WritePlan, todo: list[int], workers: int, progress: bool, keep_fds=()) -> None:
    """Write the shards in ``todo``, in this process and up to ``workers - 1`` helper processes.

    Every process (this one included, so no time is lost while the helpers start) claims the next
    unwritten shard until none is left: shards balance dynamically and the result does not depend
    on who wrote what. Helpers are fresh interpreters that import procgen only (see
    :mod:`procgen._workers`): never forked, and they never re-import the caller's ``__main__``.
    """
    rows = sum(end - start for start, end in map(plan.shard_rows, todo))
    # A helper needs about a second to start (imports, numba cache): one that would find no work
    # left by then only delays the end, so small writes use fewer helpers.
    helpers = min(workers, len(todo)) - 1
    helpers = max(0, min(helpers, rows * plan.row_tokens // SPAWN_TOKENS))
    with Progress(rows, f"procgen {plan.task}", progress) as bar:
        _workers.run("procgen._shards:write_shard", plan, todo, helpers,
                     lambda shard, report: write_shard(plan, shard, report), bar.add, keep_fds)


class Progress:
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


def write_shard(plan: WritePlan, shard: int, on_chunk) -> dict:
    """Generate shard ``shard`` chunk by chunk into a temp file, then publish it and its record.

    Rows come from :func:`procgen.api.generate`, as in memory. ``on_chunk(rows, tokens)`` is called
    after every chunk (progress). This is also the function helper processes run
    (:mod:`procgen._workers`), so it takes plain data only.
    """
    import pyarrow as pa

    spec = get_task(plan.task)
    task_names = spec.row_task_names(plan.params) if spec.row_task_names else None
    schema = arrow_schema(np.dtype(plan.dtype), with_task=task_names is not None)
    row_start, row_end = plan.shard_rows(shard)
    name = shard_filename(shard, plan.num_shards)
    final = os.path.join(plan.out, name)
    num_tokens = 0
    direct = direct_io_enabled() and (row_end - row_start) * plan.row_tokens * np.dtype(plan.dtype).itemsize \
        >= DIRECT_MIN_BYTES
    with atomic_open(final, "wb") as file, ShardSink(file, final, direct) as sink:
        with pa.ipc.new_stream(sink, schema) as writer, ThreadPoolExecutor(1) as io_thread:
            # The kernels release the GIL (nogil), so the next chunks are generated while the I/O thread
            # serialises and writes the earlier ones (the sink hashes on threads of its own): at most
            # _QUEUED_CHUNKS + 2 chunks are held at once.
            def store(rows):
                writer.write_batch(record_batch(rows.tokens, rows.offsets, rows.answer_start, schema, rows.row_task,
                                                task_names))
                return rows

            # (leaving the `with` waits for the I/O thread, then closes the stream, also on an error)
            pending = collections.deque()
            for start in range(row_start, row_end, plan.chunk_rows):
                rows = generate(plan.task, min(plan.chunk_rows, row_end - start), seed=plan.seed, split=plan.split,
                                start=start, **plan.params)
                pending.append(io_thread.submit(store, rows))
                if len(pending) > _QUEUED_CHUNKS:
                    num_tokens += _stored(pending.popleft(), on_chunk)
            while pending:
                num_tokens += _stored(pending.popleft(), on_chunk)
        sink.finish()
    fsync_dir(plan.out)
    entry = {"filename": name, "row_start": row_start, "row_end": row_end, "num_rows": row_end - row_start,
             "num_tokens": num_tokens, "num_bytes": sink.size, "sha256": sink.hexdigest()}
    write_json_atomic(record_path(plan.out, shard), {"fingerprint": plan.fingerprint, **entry})
    return entry


def _stored(future, on_chunk) -> int:
    """Wait for a chunk's write; report it (progress); return its tokens."""
    rows = future.result()
    on_chunk(len(rows), rows.num_tokens)
    return rows.num_tokens


def _finalise(plan: WritePlan, records: dict[int, dict]) -> dict:
    """All shards exist: write dataset_info.json, state.json, then the manifest; drop the state.

    Idempotent and race-tolerant: every writer produces the same bytes and replaces atomically.
    """
    out = plan.out
    shards = [{k: v for k, v in records[j].items() if k != "fingerprint"} for j in range(plan.num_shards)]
    manifest = build(plan, shards)
    info = dataset_info(plan.task, plan.params, plan.seed, plan.split, plan.dtype, plan.command)
    write_json_atomic(os.path.join(out, INFO_NAME), info, sort_keys=False)
    write_json_atomic(os.path.join(out, STATE_NAME), dataset_state(shards, plan.split, plan.fingerprint),
                      sort_keys=True)
    write_json_atomic(os.path.join(out, MANIFEST_NAME), manifest)
    fsync_dir(out)
    remove_state_dir(out)
    return manifest
