"""Push a procgen dataset to the Hugging Face Hub: Parquet shards plus a dataset card (DESIGN §4).

>>> procgen.push("data/dyck", "me/dyck-k4")                                  # doctest: +SKIP
>>> procgen.push("data/dyck-val", "me/dyck-k4", split="validation")          # doctest: +SKIP
>>> procgen.push("data/shuffle", "me/dyck-k4", config_name="shuffle")        # doctest: +SKIP
>>> procgen.push("data/dyck", "me/dyck-k4", license="cc-by-4.0")              # doctest: +SKIP
>>> datasets.load_dataset("me/dyck-k4", "shuffle", split="train")            # doctest: +SKIP

One push is one commit holding:

* ``data/<split>-0000k-of-0000N.parquet`` (default config) or ``<config>/<split>-...parquet``:
  the Arrow shards converted to zstd Parquet, one file per shard, streamed record batch by record
  batch with bounded row groups (memory stays at a few row groups whatever the dataset size);
* ``README.md``: YAML ``license`` / ``configs:`` / ``dataset_info`` (what the Hub and
  ``datasets.load_dataset`` read) plus a human card: the licence, the papers' citation, and per
  config and split the task, every parameter, seed, sizes, the ``procgen generate`` command that
  regenerates the rows exactly, an example row and the vocabulary (:mod:`procgen.hub_card`).

A repo holds several configs (tasks) and splits: the existing card is downloaded and merged (the
same config+split is replaced, every other entry and any hand-written text is kept) and the stale
Parquet files of that config+split are deleted in the same commit.

Order of work, so that failures are cheap and leave nothing behind: check the arguments, find the
token, validate the whole local dataset (nothing is sent before it passes), then create the repo,
read its card and file list at the head commit, convert in a temporary directory, and commit with
``parent_commit`` = that head (a concurrent push fails instead of silently dropping the other
card entries). The temporary directory is removed whatever happens; the local dataset is only read.
The token goes to ``huggingface_hub.HfApi`` only: it is never printed, logged or written to disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from procgen._checks import check_count
from procgen._files import as_path
from procgen.dataset import DatasetError, read_manifest, validate
from procgen.hub_card import (  # noqa: F401  (PAPERS, PAPERS_CODE_URL, vocab_table: docs/ read them from here)
    DEFAULT_CONFIG, PAPERS, PAPERS_CODE_URL, Paper, build_card, card_features, check_features, parse_card, vocab_runs,
    vocab_table)

DEFAULT_FOLDER = "data"  # the Hub's convention for the default config's files
ROW_GROUP_TOKENS = 1 << 20  # tokens per Parquet row group, at most: the writer's memory grows with it
TOKEN_HELP = "run `hf auth login`, or set the HF_TOKEN environment variable, or pass token="

_SPLIT_NAME = re.compile(r"\w+(\.\w+)*", re.ASCII)  # what `datasets` accepts as a split name
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # SPDX-like, lower case as the Hub spells them
_SHARD_NAME = r"-\d{5,}-of-\d{5,}\.parquet"


class HubError(RuntimeError):
    """The Hub, or the network to it, failed; the message says which step and why, on one line."""


@dataclass(frozen=True)
class ParquetShard:
    """One converted shard: local file, path in the repo, and its sizes."""

    path: str
    path_in_repo: str
    num_rows: int
    num_tokens: int
    num_bytes: int  # Arrow in-memory bytes (what `datasets` reports as a split's num_bytes)
    size: int  # Parquet bytes on disk


# =============================================================================================
# push
# =============================================================================================

def push(path, repo_id: str, private: bool = False, token: str | None = None, config_name: str | None = None,
         split: str | None = None, endpoint: str | None = None, commit_message: str | None = None,
         progress: bool = True, license: str | None = None) -> str:
    """Upload the dataset at ``path`` to the Hub dataset repo ``repo_id``; return the commit URL.

    Parameters
    ----------
    path : str or path
        A finished procgen dataset (``procgen.write`` / ``procgen generate``). It is validated in
        full first; an invalid one raises :class:`procgen.dataset.DatasetError` before any upload.
    repo_id : str
        ``"namespace/name"`` (or ``"name"`` for your own namespace); created if missing.
    private : bool, default False
        Create the repo private (an existing repo keeps its visibility).
    token : str, optional
        Hub token; default: ``HF_TOKEN`` or the token saved by ``hf auth login``.
    config_name : str, optional
        The ``datasets`` config (subset) to push into; default ``"default"`` (files under
        ``data/``). Use one config per task or parameter set: ``load_dataset(repo, config_name)``.
    split : str, optional
        Split name on the Hub; default: the split the dataset was generated for.
    endpoint : str, optional
        Hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.
    commit_message : str, optional
        Default: ``"procgen push: <task> (<rows> rows) to <config>/<split>"``.
    progress : bool, default True
        Progress bars for validation, conversion and upload.
    license : str, optional
        The licence of the data on the card (YAML ``license``), an SPDX-like identifier as the Hub
        spells them: ``"apache-2.0"``, ``"mit"``, ``"cc-by-4.0"``, ``"cc0-1.0"``, ``"other"``...
        (upper case is lowered: ``"Apache-2.0"`` is ``"apache-2.0"``). Default: the licence the
        repo's card already states, else ``"apache-2.0"``.

    Raises
    ------
    ValueError
        Bad arguments, no token, or a split whose columns differ from its config's other splits.
    DatasetError
        The local dataset is incomplete or invalid.
    HubError
        The Hub answered an error or the connection failed (one line: the step, the status or
        the network error). Nothing is left on disk.

    Example
    -------
    >>> push("data/dyck", "me/dyck-k4", config_name="k4")   # doctest: +SKIP
    'https://huggingface.co/datasets/me/dyck-k4/commit/3f1c...'
    """
    path = as_path(path, "path", "a procgen dataset folder")
    repo_id = _check_repo_id(repo_id)
    config = _check_config_name(config_name)
    license = _check_license(license)
    manifest = read_manifest(path)
    split = _check_split(manifest["split"] if split is None else split)
    token = _resolve_token(token)
    validate(path, progress=progress)

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from procgen._version import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="procgen", library_version=__version__)
    folder = _folder(config)
    workdir = tempfile.mkdtemp(prefix="procgen-push-")
    try:
        with _hub_progress_bars(progress):
            repo_id, head, remote, old_card = _remote_state(api, repo_id, private, workdir)
            schema = _arrow_schema(path, manifest)
            meta, body = parse_card(old_card)
            check_features(meta, config, split, card_features(schema))  # before the (long) conversion
            shards = to_parquet(path, os.path.join(workdir, "upload"), split=split, folder=folder,
                                progress=progress)
            card = build_card(meta, body, repo_id, config, split, folder, manifest, schema, shards, remote, path,
                              license)
            new_paths = {shard.path_in_repo for shard in shards}
            stale = sorted(p for p in remote if re.fullmatch(re.escape(f"{folder}/{split}") + _SHARD_NAME, p)
                           and p not in new_paths)
            operations = [CommitOperationAdd(s.path_in_repo, s.path) for s in shards]
            operations += [CommitOperationAdd("README.md", card.encode("utf-8"))]
            operations += [CommitOperationDelete(p) for p in stale]
            message = commit_message or (f"procgen push: {manifest['task']} ({manifest['num_rows']:,} rows) to "
                                         f"{config}/{split}")
            commit = _step("uploading", lambda: api.create_commit(
                repo_id, operations, commit_message=message, repo_type="dataset", parent_commit=head))
        return commit.commit_url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remote_state(api, repo_id: str, private: bool, workdir: str) -> tuple[str, str, dict[str, int], str]:
    """Create the repo if needed; return (full repo id, head commit, {file: size} at head, README text)."""
    from huggingface_hub.hf_api import RepoFile

    repo_id = _step("creating the repo", lambda: api.create_repo(
        repo_id, repo_type="dataset", private=private, exist_ok=True)).repo_id
    head = _step("reading the repo", lambda: api.dataset_info(repo_id).sha)
    remote = _step("listing the repo", lambda: {
        entry.path: entry.size for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=head,
                                                               recursive=True)
        if isinstance(entry, RepoFile)})
    if "README.md" not in remote:
        return repo_id, head, remote, ""
    readme = _step("downloading README.md", lambda: api.hf_hub_download(
        repo_id, "README.md", repo_type="dataset", revision=head, cache_dir=os.path.join(workdir, "cache")))
    with open(readme, encoding="utf-8") as file:
        return repo_id, head, remote, file.read()


def _check_repo_id(repo_id) -> str:
    if not isinstance(repo_id, str) or not re.fullmatch(r"([\w.-]+/)?[\w.-]+", repo_id, re.ASCII) or ".." in repo_id \
            or repo_id.endswith(".git") or len(repo_id.split("/")[-1]) > 96:
        raise ValueError(f"repo_id must be 'namespace/name' or 'name' (letters, digits, '-', '_', '.'; the name "
                         f"at most 96 characters); got {repo_id!r}")
    return repo_id


def _check_config_name(config_name) -> str:
    if config_name is None:
        return DEFAULT_CONFIG
    if not isinstance(config_name, str) or not _CONFIG_NAME.fullmatch(config_name):
        raise ValueError(f"config_name must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or "
                         f"digit; got {config_name!r}")
    if config_name == DEFAULT_FOLDER:
        raise ValueError(f"config_name {DEFAULT_FOLDER!r} is reserved (it is the default config's folder); got "
                         f"{config_name!r}")
    return config_name


def _check_license(license) -> str | None:
    if license is None:
        return None
    if isinstance(license, str) and _LICENSE.fullmatch(license.strip().lower()):
        return license.strip().lower()
    raise ValueError(f"license must be an SPDX-like licence identifier such as 'apache-2.0', 'mit', 'cc-by-4.0' or "
                     f"'other' (letters, digits, '.', '-', '+'; at most 64 characters); got {license!r}")


def _check_split(split) -> str:
    if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split):
        raise ValueError(f"split must be a name like 'train', 'validation' or 'test' (letters, digits, '_'); "
                         f"got {split!r}")
    return split


def _folder(config: str) -> str:
    return DEFAULT_FOLDER if config == DEFAULT_CONFIG else config


def _resolve_token(token) -> str:
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("token must be a non-empty string or None (None: HF_TOKEN or the saved login)")
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if token is None:
        raise ValueError(f"no Hugging Face token found: {TOKEN_HELP}")
    return token


def _step(what: str, call):
    """Run one Hub call; turn any failure of the client into a one-line HubError."""
    try:
        return call()
    except Exception as err:  # anything the client raises here is a Hub or network failure
        raise HubError(f"push failed while {what}: {_describe(err)}") from err


def _describe(err: BaseException) -> str:
    """The most telling cause in an exception chain, on one line (never includes headers/tokens)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    chain = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    for cause in chain:
        if isinstance(cause, HfHubHTTPError) and getattr(cause, "response", None) is not None:
            response = cause.response
            hint = {401: " (the Hub rejected the token: " + TOKEN_HELP + ")",
                    403: " (this token may not write to that repo)",
                    412: " (the repo changed during the push: run it again)"}.get(response.status_code, "")
            detail = cause.server_message or response.reason_phrase
            request = response.request
            text = f"HTTP {response.status_code} on {request.method} {request.url.path}: {detail}{hint}"
            return " ".join(text.split())
    for cause in chain:
        if isinstance(cause, OfflineModeIsEnabled):
            return "huggingface_hub is in offline mode (HF_HUB_OFFLINE=1)"
    for cause in chain:
        if type(cause).__module__.split(".")[0].startswith("httpx"):  # network errors (httpx / httpx2)
            return " ".join(f"{type(cause).__name__}: {cause}{_where(cause)}".split())
    innermost = chain[-1]
    return " ".join(f"{type(innermost).__name__}: {innermost}".split())


def _where(err) -> str:
    """`` (METHOD scheme://host/path)`` of the request a network error happened on, if known."""
    try:
        request = err.request  # httpx raises RuntimeError when the error carries no request
    except (AttributeError, RuntimeError):
        return ""
    return f" ({request.method} {request.url.scheme}://{request.url.host}:{request.url.port}{request.url.path})"


@contextlib.contextmanager
def _hub_progress_bars(enabled: bool):
    """huggingface_hub's upload bars follow ``progress`` (its switch is global: restore it after)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    switch_off = not enabled and not are_progress_bars_disabled()
    if switch_off:
        disable_progress_bars()
    try:
        yield
    finally:
        if switch_off:
            enable_progress_bars()


# =============================================================================================
# Parquet conversion
# =============================================================================================

def to_parquet(path, out, split: str | None = None, folder: str = DEFAULT_FOLDER, workers: int | None = None,
               progress: bool = False, row_group_tokens: int = ROW_GROUP_TOKENS) -> list[ParquetShard]:
    """Convert the Arrow shards of the dataset at ``path`` to zstd Parquet files under ``out``.

    Shard ``k`` of ``N`` becomes ``out/<folder>/<split>-0000k-of-0000N.parquet`` with the same
    columns (``input_ids: list<uint8|uint16|int32>``, ``answer_start: int32``, and a mixture's
    ``task`` column). Shards are read record batch by record batch (buffered reads, no memory map)
    and written in row groups of at most ``row_group_tokens`` tokens, so memory stays near
    ``workers x row_group_tokens`` tokens whatever the dataset size.

    Parameters
    ----------
    path : str or path
        A finished procgen dataset.
    out : str or path
        Output directory (created).
    split : str, optional
        File name prefix; default: the dataset's split.
    folder : str, default "data"
        Sub-folder of ``out`` (a named config uses its name).
    workers : int, optional
        Shards converted in parallel threads; default: one per core, at most one per shard.
    progress : bool, default False
        Show a progress bar.
    row_group_tokens : int
        Largest row group, in tokens (a single longer row still gets its own row group).

    Example
    -------
    >>> [s.path_in_repo for s in to_parquet("data/dyck", "/tmp/pq")]   # doctest: +SKIP
    ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet']
    """
    from tqdm.auto import tqdm

    path, out = os.fspath(path), os.fspath(out)
    manifest = read_manifest(path)
    split = _check_split(manifest["split"] if split is None else split)
    row_group_tokens = check_count(row_group_tokens, "row_group_tokens")
    entries = manifest["shards"]
    total = len(entries)
    workers = min(total, check_count(workers, "workers") if workers is not None else os.cpu_count() or 1)
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    jobs = [(os.path.join(path, entry["filename"]), f"{folder}/{split}-{k:05d}-of-{total:05d}.parquet")
            for k, entry in enumerate(entries)]
    with tqdm(total=manifest["num_tokens"], unit=" tokens", unit_scale=True, desc="parquet",
              disable=not progress) as bar:
        def convert(job):
            source, path_in_repo = job
            return _convert_shard(source, os.path.join(out, path_in_repo), path_in_repo, row_group_tokens,
                                  bar.update)

        if workers == 1:
            shards = [convert(job) for job in jobs]
        else:  # pyarrow encodes and compresses without the GIL: threads scale across cores
            with ThreadPoolExecutor(workers, thread_name_prefix="procgen-parquet") as pool:
                shards = list(pool.map(convert, jobs))
    for k, (shard, entry) in enumerate(zip(shards, entries)):
        if (shard.num_rows, shard.num_tokens) != (entry["num_rows"], entry["num_tokens"]):
            raise DatasetError(f"{path!r}: shard {k} ({entry['filename']}) holds {shard.num_rows} rows / "
                               f"{shard.num_tokens} tokens, the manifest says {entry['num_rows']} / "
                               f"{entry['num_tokens']} (changed on disk?)", path, shard=k, reason="count mismatch")
    return shards


def _convert_shard(source: str, target: str, path_in_repo: str, row_group_tokens: int, on_tokens) -> ParquetShard:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tokens = num_bytes = 0
    with pa.OSFile(source, "rb") as file:  # buffered reads: a memory map would count the whole shard in RSS
        reader = pa.ipc.open_stream(file)
        ids = reader.schema.get_field_index("input_ids")
        # dictionary encoding (on by default) shrinks small vocabularies and speeds zstd up;
        # statistics only where they help readers (answer_start), not per token
        with pq.ParquetWriter(target, reader.schema, compression="zstd",
                              write_statistics=[n for n in reader.schema.names if n != "input_ids"]) as writer:
            for batch in reader:
                for piece in _row_groups(batch, ids, row_group_tokens):
                    writer.write_batch(piece)  # one call = one row group
                    piece_tokens = _token_count(piece.column(ids))
                    rows, tokens, num_bytes = rows + piece.num_rows, tokens + piece_tokens, num_bytes + piece.nbytes
                    on_tokens(piece_tokens)
    return ParquetShard(target, path_in_repo, rows, tokens, num_bytes, os.path.getsize(target))


def _token_count(list_array) -> int:
    offsets = list_array.offsets
    return int(offsets[len(offsets) - 1].as_py() - offsets[0].as_py()) if len(list_array) else 0


def _row_groups(batch, ids: int, row_group_tokens: int):
    """Slices (zero-copy) of ``batch`` holding at most ``row_group_tokens`` tokens each."""
    import numpy as np

    offsets = batch.column(ids).offsets.to_numpy()
    start = 0
    while start < batch.num_rows:
        # largest stop with offsets[stop] - offsets[start] <= budget; at least one row
        stop = int(np.searchsorted(offsets, offsets[start] + row_group_tokens, side="right")) - 1
        stop = min(batch.num_rows, max(stop, start + 1))
        yield batch.slice(start, stop - start)
        start = stop


def _arrow_schema(path: str, manifest: dict):
    import pyarrow as pa

    with pa.OSFile(os.path.join(path, manifest["shards"][0]["filename"]), "rb") as file:
        return pa.ipc.open_stream(file).schema
