"""Export a procgen dataset for other trainers: a nanoGPT ``.bin`` token file, Parquet, or JSON lines.

``bin`` is nanoGPT's convention (``data/<name>/prepare.py`` writes it, ``train.py`` reads it with
``np.memmap(path, dtype=np.uint16, mode="r")``): the tokens of row 0, row 1, ... back to back in
one raw file, with no separator between rows. The default dtype is therefore ``uint16`` (``uint32``
when the vocabulary has more than 65536 ids). Beside it go:

* ``meta.pkl`` (in the same folder, as nanoGPT's ``shakespeare_char/prepare.py`` writes it): a
  pickled ``{"vocab_size": int, "itos": {id: name}, "stoi": {name: id}}`` built from the task's
  printable token names; nanoGPT's ``train.py`` takes the model's vocabulary size from it;
* ``<out>.offsets.npy`` (int64, ``num_rows + 1``) and ``<out>.answer_start.npy`` (int32), so row
  boundaries and answer starts survive: row ``i`` is ``tokens[offsets[i]:offsets[i+1]]``;
* ``<out>.json``: a header (dtype, counts, file names, the source dataset's task/params/seed).

``parquet`` writes the Hub layout, ``<out>/data/<split>-0000k-of-0000N.parquet`` (zstd, one file
per shard, the Hub export's row groups), which ``datasets.load_dataset("parquet", data_dir=out)``
loads; columns ``input_ids: list<uint8|uint16|int32>`` and ``answer_start: int32`` (and a
mixture's ``task``). Exporting another split into the same ``out`` adds that split.

``jsonl`` writes one row per line, as ids or as readable token names.

Every file is written under a temporary name and renamed when complete; missing parent folders of
``out`` are created; OS errors name ``out`` (or the file beside it), never a temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import shutil

import numpy as np

from procgen._checks import check_choice
from procgen._files import as_path, atomic_open, writer_id
from procgen.dataset import iter_batches, read_manifest

FORMATS = ("bin", "parquet", "jsonl")
TOKEN_STYLES = ("ids", "names")
BIN_DTYPES = ("uint8", "uint16", "uint32", "int32")
META_NAME = "meta.pkl"  # the file nanoGPT's train.py looks for in its data folder
_TEMP_MARK = ".tmp-"  # part of every temporary name (procgen._files.atomic_open and the Parquet folder)
_OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # write errors that carry no file name


def export(path, out, format: str = "bin", dtype: str | None = None, tokens: str = "ids") -> dict:
    """Write the dataset at ``path`` to ``out`` in another trainer's format; return a summary.

    Parameters
    ----------
    path : str or path
        A finished procgen dataset (``procgen.write`` / ``procgen generate``).
    out : str or path
        ``bin``: the token file to write, e.g. ``data/dyck/train.bin`` (``meta.pkl``,
        ``<out>.json``, ``<out>.offsets.npy`` and ``<out>.answer_start.npy`` go beside it);
        ``parquet``: the folder to write (``<out>/data/<split>-0000k-of-0000N.parquet``);
        ``jsonl``: the ``.jsonl`` file to write. Missing parent folders are created.
    format : {"bin", "parquet", "jsonl"}, default "bin"
    dtype : {"uint8", "uint16", "uint32", "int32"} or None, default None
        ``bin`` only: token dtype on disk. None means ``uint16`` (what nanoGPT reads), or
        ``uint32`` when the vocabulary has more than 65536 ids. A dtype too small for the
        vocabulary is refused.
    tokens : {"ids", "names"}, default "ids"
        ``jsonl`` only: write ids (``input_ids``) or printable names (``tokens``).

    Returns
    -------
    dict
        ``bin``: the header also saved as ``<out>.json``; ``parquet``: ``format``, ``num_rows``,
        ``num_tokens``, ``files`` (paths relative to ``out``); ``jsonl``: ``format``,
        ``num_rows``, ``tokens``.

    Raises
    ------
    ValueError
        A bad ``format``, ``dtype`` or ``tokens``, an option given for a format that ignores
        it, a ``path`` or ``out`` that is not a path (None, a number), or an ``out`` of the
        wrong kind (a folder for ``bin``/``jsonl``, a file for ``parquet``, or a folder where a
        file beside it goes: ``meta.pkl``, ``<out>.json``...). Checked before anything is written.
    procgen.DatasetError
        ``path`` is not a finished procgen dataset.
    OSError
        Writing failed (permission denied, disk full...); the message names ``out``.

    Example
    -------
    >>> export("data/dyck", "nanogpt/dyck/train.bin")                          # doctest: +SKIP
    >>> np.memmap("nanogpt/dyck/train.bin", dtype=np.uint16, mode="r")[:8]     # doctest: +SKIP
    >>> export("data/dyck", "pq/dyck", format="parquet")                       # doctest: +SKIP
    >>> datasets.load_dataset("parquet", data_dir="pq/dyck")["train"]          # doctest: +SKIP
    """
    check_choice(format, "format", FORMATS)
    check_choice(tokens, "tokens", TOKEN_STYLES)
    if dtype is not None and format != "bin":
        raise ValueError(f"dtype applies to format 'bin' only; got dtype={dtype!r} with format={format!r}")
    if tokens != "ids" and format != "jsonl":
        raise ValueError(f"tokens applies to format 'jsonl' only; got tokens={tokens!r} with format={format!r}")
    if format == "bin":
        dtype = check_bin_dtype(dtype)
    path = as_path(path, "path", "a procgen dataset folder")
    out = _check_out(out, format, path)
    manifest = read_manifest(path)
    _check_targets(out, format, manifest["split"])
    if format == "bin":
        return _export_bin(path, out, manifest, dtype)
    if format == "parquet":
        return _export_parquet(path, out, manifest)
    return _export_jsonl(path, out, manifest, tokens)


def check_bin_dtype(dtype: str | None) -> str | None:
    """Return ``dtype`` if it is None or one of :data:`BIN_DTYPES`, else raise ValueError.

    >>> check_bin_dtype("uint16")
    'uint16'
    """
    return dtype if dtype is None else check_choice(dtype, "dtype", BIN_DTYPES)


def bin_dtype(vocab_size: int, dtype: str | None = None) -> np.dtype:
    """The token dtype of a ``bin`` export: ``dtype``, or by default what nanoGPT reads.

    ``uint16`` unless the ids do not fit (more than 65536 of them), then ``uint32``. An explicit
    ``dtype`` too small for ``vocab_size`` raises ValueError.

    >>> bin_dtype(102), bin_dtype(70_000), bin_dtype(9, "uint8")
    (dtype('uint16'), dtype('uint32'), dtype('uint8'))
    """
    if dtype is None:
        return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    dtype = np.dtype(check_bin_dtype(dtype))
    limit = int(np.iinfo(dtype).max) + 1
    if vocab_size > limit:
        raise ValueError(f"dtype {dtype.name} holds ids below {limit}, but the vocabulary has {vocab_size} ids; "
                         f"use uint32 (or leave dtype unset)")
    return dtype


def nanogpt_meta(manifest: dict) -> dict:
    """nanoGPT's ``meta.pkl`` content for a dataset: ``vocab_size``, ``itos`` and ``stoi``.

    ``itos`` maps every id ``0 .. vocab_size-1`` to the task's printable token name and ``stoi``
    is its inverse (a name that occurs twice gets ``#<id>`` appended, so the two stay inverse).

    >>> nanogpt_meta({"vocab_size": 3, "vocab": ["0", "1", "<sep>"]})["stoi"]
    {'0': 0, '1': 1, '<sep>': 2}
    """
    vocab_size = int(manifest["vocab_size"])
    names = list(manifest.get("vocab") or [])
    names += [str(i) for i in range(len(names), vocab_size)]
    itos, seen = {}, set()
    for i, name in enumerate(names[:vocab_size]):
        name = str(name)
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        itos[i] = name
    return {"vocab_size": vocab_size, "itos": itos, "stoi": {name: i for i, name in itos.items()}}


# --- output paths and errors --------------------------------------------------------------------

def _check_out(out, format: str, path: str) -> str:
    """``out`` as a string, refused (ValueError) if it has the wrong kind for ``format``."""
    out = as_path(out, "out", "the file or folder to write")
    if not out.strip():
        raise ValueError(f"out must be a non-empty path; got {out!r}")
    if format == "parquet":
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"out={out!r} is a file; format 'parquet' writes a folder (data/<split>-*.parquet "
                             f"inside it): give a folder path")
        if os.path.realpath(out) == os.path.realpath(path):
            raise ValueError(f"out={out!r} is the dataset folder itself; give another folder")
    elif os.path.isdir(out) or out.endswith(("/", os.sep)):
        example = os.path.join(out, "train.bin" if format == "bin" else "train.jsonl")
        raise ValueError(f"out={out!r} is a folder; format {format!r} writes a file: give a file path such as "
                         f"{example!r}")
    return out


def _check_targets(out: str, format: str, split: str) -> None:
    """Refuse (ValueError, naming ``out``) a folder where the export writes a file, or the reverse.

    Checked before anything is written, so that the error names the user's path rather than a
    temporary file that could not be renamed over a folder.
    """
    if format == "parquet":
        from procgen.hub import DEFAULT_FOLDER

        data = os.path.join(out, DEFAULT_FOLDER)
        if os.path.exists(data) and not os.path.isdir(data):
            raise ValueError(f"out={out!r}: {data!r} is a file; format 'parquet' writes the folder {data!r}: "
                             f"move the file away or give another out")
        if os.path.isdir(data):
            pattern = _shard_pattern(split)
            for name in sorted(os.listdir(data)):
                shard = os.path.join(data, name)
                if pattern.fullmatch(name) and os.path.isdir(shard):
                    raise ValueError(f"out={out!r}: {shard!r} is a folder; format 'parquet' writes (or replaces) "
                                     f"a file of that name: move the folder away or give another out")
        return
    beside = []  # out itself was checked by _check_out
    if format == "bin":
        beside = [out + ".offsets.npy", out + ".answer_start.npy", out + ".json",
                  os.path.join(os.path.dirname(out), META_NAME)]
    for file in beside:
        if os.path.isdir(file):
            raise ValueError(f"out={out!r}: {file!r} is a folder; format {format!r} writes that file beside out: "
                             f"move the folder away or give another out")


def _shard_pattern(split: str) -> re.Pattern:
    """Names of the Parquet files of ``split`` (``train-00000-of-00003.parquet``)."""
    return re.compile(re.escape(split) + r"-\d{5,}-of-\d{5,}\.parquet")


def _make_folder(folder: str, out: str) -> None:
    """``os.makedirs(folder)`` for ``out``; a file in the way is reported against ``out``."""
    if not folder:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(errno.ENOTDIR, "cannot create the folder of this path (a parent is a file)",
                                 out) from None


def _about(err: OSError, path: str, temp: str) -> OSError:
    """``err`` reported against ``path`` if it names a temporary path (one starting with ``temp``).

    Disk-full errors name no file at all; they are reported against ``path`` too.
    """
    named = [os.fspath(name) for name in (err.filename, err.filename2) if name is not None]
    ours = any(name.startswith(temp) for name in named) or (not named and err.errno in _OUT_OF_SPACE)
    if err.errno is None or not ours:
        return err
    return OSError(err.errno, err.strerror, path)  # OSError(errno, ...) builds the matching subclass


@contextlib.contextmanager
def _written(path: str, mode: str = "wb"):
    """:func:`procgen._files.atomic_open`, with OS errors about its temp file reported against ``path``."""
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}{_TEMP_MARK}")  # atomic_open's temp names start so
    try:
        with atomic_open(path, mode) as file:
            yield file
    except OSError as err:
        raised = _about(err, path, temp)
        if raised is err:
            raise
        raise raised from None


# --- formats ------------------------------------------------------------------------------------

def _export_bin(path, out, manifest, dtype) -> dict:
    dtype = bin_dtype(manifest["vocab_size"], dtype)
    folder = os.path.dirname(out)
    _make_folder(folder, out)
    offsets = np.zeros(manifest["num_rows"] + 1, np.int64)
    answer_start = np.zeros(manifest["num_rows"], np.int32)
    with _written(out, "wb") as sink:
        for batch in iter_batches(path):
            rows = slice(batch.start, batch.start + len(batch))
            offsets[rows.start + 1:rows.stop + 1] = offsets[rows.start] + batch.offsets[1:]
            answer_start[rows] = batch.answer_start
            sink.write(batch.tokens.astype(dtype, copy=False).tobytes())
    with _written(out + ".offsets.npy", "wb") as sink:
        np.save(sink, offsets)
    with _written(out + ".answer_start.npy", "wb") as sink:
        np.save(sink, answer_start)
    with _written(os.path.join(folder, META_NAME), "wb") as sink:
        pickle.dump(nanogpt_meta(manifest), sink)
    header = {
        "format": "procgen-bin",
        "dtype": dtype.name,
        "num_tokens": int(offsets[-1]),
        "num_rows": manifest["num_rows"],
        "vocab_size": manifest["vocab_size"],
        "pad_id": manifest.get("pad_id"),
        "tokens_file": os.path.basename(out),
        "offsets_file": os.path.basename(out) + ".offsets.npy",
        "answer_start_file": os.path.basename(out) + ".answer_start.npy",
        "meta_file": META_NAME,
        "source": {k: manifest[k] for k in ("task", "params", "seed", "split", "command") if k in manifest},
    }
    with _written(out + ".json", "w") as sink:
        json.dump(header, sink, indent=2)
    return header


def _export_parquet(path, out, manifest) -> dict:
    from procgen.hub import DEFAULT_FOLDER, ROW_GROUP_TOKENS, to_parquet

    _make_folder(out, out)
    temp = os.path.join(out, f".procgen-export{_TEMP_MARK}{writer_id()}")
    try:
        # converted in a hidden folder inside out, then renamed into place (same file system)
        shards = to_parquet(path, temp, folder=DEFAULT_FOLDER, row_group_tokens=ROW_GROUP_TOKENS)
        os.makedirs(os.path.join(out, DEFAULT_FOLDER), exist_ok=True)
        for shard in shards:
            os.replace(shard.path, os.path.join(out, shard.path_in_repo))
        _remove_stale_shards(os.path.join(out, DEFAULT_FOLDER), manifest["split"],
                             {os.path.basename(shard.path_in_repo) for shard in shards})
    except OSError as err:
        raised = _about(err, out, temp)
        if raised is err:
            raise
        raise raised from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return {"format": "parquet", "num_rows": manifest["num_rows"], "num_tokens": manifest["num_tokens"],
            "files": [shard.path_in_repo for shard in shards]}


def _remove_stale_shards(folder: str, split: str, keep: set) -> None:
    """Delete ``<split>-*-of-*.parquet`` files left by an earlier export with another shard count."""
    pattern = _shard_pattern(split)
    for name in os.listdir(folder):
        if pattern.fullmatch(name) and name not in keep:
            os.remove(os.path.join(folder, name))


def _export_jsonl(path, out, manifest, tokens) -> dict:
    names = manifest.get("vocab") if tokens == "names" else None
    if tokens == "names" and not names:
        raise ValueError(f"the dataset at {path!r} records no vocabulary; use tokens='ids'")
    _make_folder(os.path.dirname(out), out)
    with _written(out, "w") as sink:
        for batch in iter_batches(path):
            for i in range(len(batch)):
                row = batch[i].tolist()
                record = {"tokens": [names[t] for t in row]} if names else {"input_ids": row}
                record["answer_start"] = int(batch.answer_start[i])
                sink.write(json.dumps(record, separators=(",", ":")) + "\n")
    return {"format": "jsonl", "num_rows": manifest["num_rows"], "tokens": tokens}
