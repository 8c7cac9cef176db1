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
  ``datasets.load_dataset`` read) plus a human card: the licence, links to procgen and to the
  papers with their BibTeX (:data:`PAPERS`), and per config and split the task, every parameter,
  seed, sizes, the ``procgen generate`` command that regenerates the rows exactly, an example row
  and the vocabulary, consecutive ids that count up collapsed into one row (:func:`vocab_table`).

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
import fnmatch
import os
import re
import shlex
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import click

from procgen._files import as_path
from procgen.dataset import DatasetError, iter_batches, read_manifest, validate

DEFAULT_CONFIG = "default"
DEFAULT_FOLDER = "data"  # the Hub's convention for the default config's files
ROW_GROUP_TOKENS = 1 << 20  # tokens per Parquet row group, at most: the writer's memory grows with it
LICENSE = "apache-2.0"  # of a new card when the user names none (procgen's own licence)
PROJECT_URL = "https://pypi.org/project/procgen-data/"
PAPERS_CODE_URL = "https://github.com/zlshinnick/procedural-pretraining"  # the papers' official code
TAGS = ("procedural", "synthetic")
TASK_CATEGORIES = ("text-generation",)
VOCAB_HEAD, VOCAB_TAIL = 24, 6  # a vocabulary with more runs of ids shows its first and last runs only
EXAMPLE_CHARS = 1500  # a longer example row is cut
SPLIT_ORDER = ("train", "validation", "test")
TOKEN_HELP = "run `hf auth login`, or set the HF_TOKEN environment variable, or pass token="

_SPLIT_NAME = re.compile(r"\w+(\.\w+)*", re.ASCII)  # what `datasets` accepts as a split name
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # SPDX-like, lower case as the Hub spells them
_SHARD_NAME = r"-\d{5,}-of-\d{5,}\.parquet"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)
_CARD_BEGIN, _CARD_END = "<!-- procgen:card -->", "<!-- procgen:card-end -->"
_SECTION = re.compile(r"<!-- procgen:begin config=(\S+) split=(\S+) -->\n.*?<!-- procgen:end -->\n", re.S)


class HubError(RuntimeError):
    """The Hub, or the network to it, failed; the message says which step and why, on one line."""


@dataclass(frozen=True)
class Paper:
    """A paper whose procedural data procgen generates, as the card and the docs cite it."""

    arxiv: str
    title: str
    authors: tuple[str, ...]
    year: int
    bibtex: str

    @property
    def url(self) -> str:
        """The paper's arXiv abstract page."""
        return f"https://arxiv.org/abs/{self.arxiv}"

    def markdown(self) -> str:
        """One Markdown line: authors, title in italics, linked arXiv id, year."""
        return f"{', '.join(self.authors)}. *{self.title}*. [arXiv:{self.arxiv}]({self.url}), {self.year}."


# The BibTeX of 2601.21725 is the official repository's (README, "Citation"); 2505.22308's is built
# from its arXiv listing (title, authors in order, identifier, year), in the same style.
PAPERS = (
    Paper("2601.21725", "Procedural Pretraining: Warming Up Language Models with Abstract Data",
          ("Liangze Jiang", "Zachary Shinnick", "Anton van den Hengel", "Hemanth Saratchandran", "Damien Teney"),
          2026,
          "@article{jiang2025proceduralpretraining,\n"
          "  title={Procedural Pretraining: Warming Up Language Models with Abstract Data},\n"
          "  author={Jiang, Liangze and Shinnick, Zachary and van den Hengel, Anton and Saratchandran, Hemanth "
          "and Teney, Damien},\n"
          "  journal={arXiv preprint arXiv:2601.21725},\n"
          "  year={2026},\n"
          "}"),
    Paper("2505.22308", "Transformers Pretrained on Procedural Data Contain Modular Structures for Algorithmic "
          "Reasoning",
          ("Zachary Shinnick", "Liangze Jiang", "Hemanth Saratchandran", "Anton van den Hengel", "Damien Teney"),
          2025,
          "@article{shinnick2025transformers,\n"
          "  title={Transformers Pretrained on Procedural Data Contain Modular Structures for Algorithmic "
          "Reasoning},\n"
          "  author={Shinnick, Zachary and Jiang, Liangze and Saratchandran, Hemanth and van den Hengel, Anton "
          "and Teney, Damien},\n"
          "  journal={arXiv preprint arXiv:2505.22308},\n"
          "  year={2025},\n"
          "}"),
)


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

    from procgen import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="procgen", library_version=__version__)
    folder = _folder(config)
    workdir = tempfile.mkdtemp(prefix="procgen-push-")
    try:
        with _hub_progress_bars(progress):
            repo_id, head, remote, old_card = _remote_state(api, repo_id, private, workdir)
            schema = _arrow_schema(path, manifest)
            meta, body = _split_card(old_card)
            _check_features(meta, config, split, _features(schema))  # before the (long) conversion
            shards = to_parquet(path, os.path.join(workdir, "upload"), split=split, folder=folder,
                                progress=progress)
            card = _card(meta, body, repo_id, config, split, folder, manifest, schema, shards, remote, path,
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

    from procgen.api import check_count

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


# =============================================================================================
# dataset card
# =============================================================================================

def _features(schema) -> list[dict]:
    """``dataset_info.features`` in the card's YAML form (``list: uint8``, ``dtype: int32``)."""
    import pyarrow as pa

    def dtype(arrow_type) -> str:
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return "string"
        return str(arrow_type)

    features = []
    for field in schema:
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            features.append({"name": field.name, "list": dtype(field.type.value_type)})
        else:
            features.append({"name": field.name, "dtype": dtype(field.type)})
    return features


def _split_card(text: str) -> tuple[dict, str]:
    """(YAML metadata, Markdown body) of a README; a card without front matter has empty metadata."""
    import yaml

    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError as err:
        raise ValueError(f"the repo's README.md has invalid YAML metadata ({' '.join(str(err).split())}); fix or "
                         f"remove it, then push again") from None
    if not isinstance(meta, dict):
        raise ValueError("the repo's README.md metadata is not a YAML mapping; fix or remove it, then push again")
    return meta, text[match.end():]


def _config_infos(meta: dict) -> list[dict]:
    infos = meta.get("dataset_info") or []
    infos = [infos] if isinstance(infos, dict) else list(infos)
    return [dict(info, config_name=info.get("config_name", DEFAULT_CONFIG)) for info in infos
            if isinstance(info, dict)]


def _check_features(meta: dict, config: str, split: str, features: list[dict]) -> None:
    """A config has one schema: refuse a split whose columns differ from the config's other splits."""
    for info in _config_infos(meta):
        others = [s.get("name") for s in info.get("splits") or [] if s.get("name") != split]
        if info["config_name"] == config and others and info.get("features") not in (None, features):
            raise ValueError(f"config {config!r} already holds split(s) {', '.join(map(str, others))} with features "
                             f"{info['features']}; this dataset has {features}: push it with another config_name")


def _card(meta, body, repo_id, config, split, folder, manifest, schema, shards, remote, path, license=None) -> str:
    import yaml

    meta = _merged_metadata(meta, repo_id, config, split, folder, _features(schema), shards, remote, license)
    section = _section(config, split, manifest, shards, path, repo_id)
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{text}---\n{_merged_body(body, meta, repo_id, config, split, section)}"


def _merged_metadata(meta, repo_id, config, split, folder, features, shards, remote, license=None) -> dict:
    meta = dict(meta)
    if license is not None:
        meta["license"] = license
    meta.setdefault("license", LICENSE)
    for key, values in (("tags", TAGS), ("task_categories", TASK_CATEGORIES)):
        existing = meta.get(key) or []
        existing = [existing] if isinstance(existing, str) else list(existing)
        meta[key] = existing + [v for v in values if v not in existing]

    # configs: replace this config's entry for this split, keep every other entry
    configs = [dict(c) for c in meta.get("configs") or [] if isinstance(c, dict)]
    entry = next((c for c in configs if c.get("config_name", DEFAULT_CONFIG) == config), None)
    if entry is None:
        entry = {"config_name": config, "data_files": []}
        configs.append(entry)
    files = entry.get("data_files") or []
    if isinstance(files, (str, dict)):
        files = [files]
    files = [f if isinstance(f, dict) else {"split": "train", "path": f} for f in files]
    files = [f for f in files if f.get("split") != split] + [{"split": split, "path": f"{folder}/{split}-*.parquet"}]
    entry["data_files"] = sorted(files, key=lambda f: _split_key(f.get("split", "")))
    meta["configs"] = configs

    # dataset_info: this config's features and split sizes; download_size from the files it will hold
    infos = _config_infos(meta)
    info = next((i for i in infos if i["config_name"] == config), None)
    if info is None:
        info = {"config_name": config}
        infos.append(info)
    splits = [s for s in info.get("splits") or [] if isinstance(s, dict) and s.get("name") != split]
    splits.append({"name": split, "num_bytes": sum(s.num_bytes for s in shards),
                   "num_examples": sum(s.num_rows for s in shards)})
    splits.sort(key=lambda s: _split_key(s["name"]))
    download_size = sum(s.size for s in shards)
    for other in entry["data_files"]:
        if other.get("split") != split:
            download_size += sum(size for p, size in remote.items() if fnmatch.fnmatchcase(p, str(other.get("path"))))
    info.update(features=features, splits=splits, download_size=download_size,
                dataset_size=sum(s.get("num_bytes") or 0 for s in splits))
    order = [c.get("config_name", DEFAULT_CONFIG) for c in configs]
    infos.sort(key=lambda i: order.index(i["config_name"]) if i["config_name"] in order else len(order))
    meta["dataset_info"] = infos[0] if len(infos) == 1 else infos
    meta["size_categories"] = [_size_category(max(sum(s.get("num_examples") or 0 for s in i.get("splits") or [])
                                                  for i in infos))]
    return meta


def _split_key(name: str):
    return (SPLIT_ORDER.index(name), "") if name in SPLIT_ORDER else (len(SPLIT_ORDER), name)


def _size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a number of rows."""
    bounds = [(10 ** 3, "n<1K"), (10 ** 4, "1K<n<10K"), (10 ** 5, "10K<n<100K"), (10 ** 6, "100K<n<1M"),
              (10 ** 7, "1M<n<10M"), (10 ** 8, "10M<n<100M"), (10 ** 9, "100M<n<1B"), (10 ** 10, "1B<n<10B"),
              (10 ** 11, "10B<n<100B"), (10 ** 12, "100B<n<1T")]
    return next((label for bound, label in bounds if rows < bound), "n>1T")


def _merged_body(body: str, meta: dict, repo_id: str, config: str, split: str, section: str) -> str:
    """Regenerate procgen's part of the card (header, one section per config/split, citation), keep the rest."""
    start, end = body.find(_CARD_BEGIN), body.find(_CARD_END)
    if start >= 0 and end > start:
        before, ours, after = body[:start], body[start:end], body[end + len(_CARD_END):]
    else:  # a card written by hand (or none): keep it above procgen's part
        before, ours, after = body, "", ""
    sections = {(m.group(1), m.group(2)): m.group(0) for m in _SECTION.finditer(ours)}
    sections[(config, split)] = section
    order = [(c.get("config_name", DEFAULT_CONFIG), f.get("split")) for c in meta["configs"]
             for f in c.get("data_files") or []]
    keys = sorted(sections, key=lambda k: order.index(k) if k in order else len(order))
    part = (f"{_CARD_BEGIN}\n{_header(meta, repo_id)}\n" + "\n".join(sections[k] for k in keys) + "\n"
            + _citation() + _CARD_END)
    before = before.rstrip("\n") + "\n\n" if before.strip() else ""
    tail = after if after.strip() else "\n"
    return f"{before}{part}{tail}"


def _header(meta: dict, repo_id: str) -> str:
    infos = {i["config_name"]: i for i in _config_infos(meta)}
    rows = []
    for config in meta["configs"]:
        name = config.get("config_name", DEFAULT_CONFIG)
        for split in (infos.get(name) or {}).get("splits") or []:
            rows.append(f"| `{name}` | `{split.get('name')}` | {split.get('num_examples', 0):,} |")
    first = meta["configs"][0]
    first_split = (first.get("data_files") or [{}])[0].get("split", "train")
    return "\n".join([
        f"# {repo_id.split('/')[-1]}",
        "",
        f"Procedurally generated pretraining data, made with [procgen]({PROJECT_URL}): the procedural "
        f"pretraining tasks of {' and '.join(f'[arXiv:{p.arxiv}]({p.url})' for p in PAPERS)} (see Citation below; "
        f"the papers' official code: [{PAPERS_CODE_URL.removeprefix('https://')}]({PAPERS_CODE_URL})). "
        "Row `i` of a split is a pure function of (task, parameters, seed, split, `i`): the command under each "
        "section regenerates it exactly, and different splits never share a random stream.",
        "",
        f"License: `{meta['license']}` (the `license` field of this card's metadata).",
        "",
        "Columns: `input_ids` (token ids) and `answer_start`: the loss is on the tokens at positions "
        "`>= answer_start` (0 for language-modelling tasks). For a Hugging Face causal LM, use "
        "`labels = input_ids` with positions `< answer_start` set to -100.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{repo_id}", "{first.get("config_name", DEFAULT_CONFIG)}", split="{first_split}")',
        "```",
        "",
        "| config | split | rows |",
        "|---|---|---|",
        *rows,
        "",
    ])


def _citation() -> str:
    """The card's last part: the papers, and their BibTeX."""
    return "\n".join([
        "## Citation",
        "",
        "The tasks and the diagnostic probes follow these papers; please cite them if you use this data:",
        "",
        *(f"- {paper.markdown()}" for paper in PAPERS),
        "",
        "```bibtex",
        "\n\n".join(paper.bibtex for paper in PAPERS),
        "```",
        "",
    ])


def _section(config: str, split: str, manifest: dict, shards, path: str, repo_id: str) -> str:
    from procgen.tasks import get_task

    task = get_task(manifest["task"])
    vocab = manifest.get("vocab") or task.vocab(manifest["params"])
    lm = manifest.get("lm_style", task.lm_style)
    pad = manifest.get("pad_id")
    dtype = manifest["dtype"]
    padding = f"; padding id {pad} is never stored" if pad is not None else ""
    lines = [
        f"<!-- procgen:begin config={config} split={split} -->",
        f"## `{config}` / `{split}`: {manifest['task']}",
        "",
        f"{task.summary}.",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{manifest['task']}` |",
        f"| rows | {manifest['num_rows']:,} |",
        f"| tokens | {manifest['num_tokens']:,} |",
        f"| token dtype | `{dtype}` ({len(vocab)} ids{padding}) |",
        f"| seed | {manifest['seed']} |",
        f"| generated split | `{manifest['split']}` |",
        f"| loss on | {'every token (`answer_start` = 0)' if lm else 'the answer: tokens from `answer_start` on'} |",
        f"| procgen | {manifest.get('procgen_version', '?')} (format {manifest.get('format_version', '?')}) |",
        f"| files | {len(shards)} Parquet file{'s' * (len(shards) != 1)}, {sum(s.size for s in shards):,} bytes |",
        "",
        "Parameters:",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| `{name}` | {_code(_value_text(value))} |" for name, value in manifest["params"].items()),
        "",
    ]
    command = _regenerate_command(manifest, repo_id)
    if command:
        lines += ["Regenerate these rows exactly:", "", "```bash", command, "```", ""]
    example = _example(path)
    if example:
        lines += [f"Example (row 0{'' if lm else '; `|` marks where the answer starts'}):", "", "```text", example,
                  "```", ""]
    lines += ["Vocabulary (ids → tokens; a run of ids whose names count up is one row):", "", *vocab_table(vocab),
              "", "<!-- procgen:end -->", ""]
    return "\n".join(lines)


def vocab_runs(vocab) -> list[tuple[int, int]]:
    """Group consecutive ids into runs ``(first, last)`` whose names count up one by one.

    Names count up when they share a prefix and a suffix around a number that grows by one:
    ``1, 2, ... 99``, ``v1 ... v127``, ``k0 ... k29`` and ``<unused189> ... <unused255>`` are one run
    each. A run of two ids reads better as two single ids, so it is split.

    >>> vocab_runs(["<pad>", "v1", "v2", "v3", "k0", "k1", "<eos>"])
    [(0, 0), (1, 3), (4, 4), (5, 5), (6, 6)]
    """
    runs: list[tuple[int, int]] = []
    previous = None
    for i, token in enumerate(vocab):
        match = re.fullmatch(r"(.*?)(\d+)(\D*)", str(token), re.S)
        key = (match.group(1), int(match.group(2)), match.group(3)) if match else None
        if runs and key and previous and key[0] == previous[0] and key[2] == previous[2] and key[1] == previous[1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
        previous = key
    return [r for first, last in runs for r in ([(first, first), (last, last)] if last == first + 1 else
                                                [(first, last)])]


def vocab_table(vocab, head: int = VOCAB_HEAD, tail: int = VOCAB_TAIL) -> list[str]:
    """A compact Markdown table of a vocabulary (one row per run of :func:`vocab_runs`), then a total line.

    With more than ``head + tail`` runs only the first ``head`` and the last ``tail`` are shown.
    The Hub card and the task pages of the docs (``docs/gen_pages.py``) both use it.

    >>> print("\\n".join(vocab_table(["<pad>", *(f"v{i}" for i in range(1, 128))])))
    | ids | tokens |
    |---:|---|
    | 0 | `<pad>` |
    | 1–127 | `v1` … `v127` |
    <BLANKLINE>
    128 ids in total.
    """
    runs = vocab_runs(vocab)
    truncated = len(runs) > head + tail
    shown = [*runs[:head], None, *runs[len(runs) - tail:]] if truncated else runs
    lines = ["| ids | tokens |", "|---:|---|"]
    for run in shown:
        if run is None:
            left_out = runs[head:len(runs) - tail]
            lines.append(f"| … | ({sum(last - first + 1 for first, last in left_out)} more ids) |")
        elif run[0] == run[1]:
            lines.append(f"| {run[0]} | {_code(vocab[run[0]])} |")
        else:
            lines.append(f"| {run[0]}–{run[1]} | {_code(vocab[run[0]])} … {_code(vocab[run[1]])} |")
    return lines + ["", f"{len(vocab)} ids in total" + ("; some are left out above." if truncated else ".")]


def _value_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _code(text: str) -> str:
    """``text`` as inline code inside a Markdown table cell."""
    text = str(text).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _regenerate_command(manifest: dict, repo_id: str) -> str | None:
    """The manifest's ``procgen generate`` command, with ``--out`` set to the repo name.

    The output directory does not affect the rows; the local path (home directory, user name)
    does not belong on a public card.
    """
    command = manifest.get("command")
    if not command:
        return None
    words = shlex.split(command)
    name = repo_id.split("/")[-1]
    for i, word in enumerate(words):
        if word in ("--out", "-o") and i + 1 < len(words):
            words[i + 1] = name
        elif word.startswith("--out="):
            words[i] = f"--out={name}"
    return shlex.join(words)


def _example(path: str) -> str:
    batch = next(iter_batches(path, rows_per_batch=1), None)
    if batch is None:
        return ""
    text = batch.render(0)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"


# =============================================================================================
# CLI
# =============================================================================================

@click.command("push")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("repo")
@click.option("--private", is_flag=True, help="create the repo private")
@click.option("--config-name", default=None, metavar="NAME",
              help="config (subset) to push into, e.g. one per task [default: default]")
@click.option("--split", default=None, metavar="NAME", help="split name on the Hub [default: the dataset's split]")
@click.option("--token-env", default="HF_TOKEN", show_default=True, metavar="VAR",
              help="environment variable holding the token; if unset, the `hf auth login` token is used")
@click.option("--endpoint", default=None, metavar="URL", help="Hub URL [default: HF_ENDPOINT or huggingface.co]")
@click.option("--message", "-m", default=None, help="commit message")
@click.option("--license", "license_", default=None, metavar="ID",
              help="licence of the data on the card, e.g. apache-2.0, mit, cc-by-4.0 [default: the card's "
                   "licence, else apache-2.0]")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars and no summary line")
def push_command(directory, repo, private, config_name, split, token_env, endpoint, message, license_, quiet):
    """Upload DIRECTORY to the Hub dataset repo REPO as Parquet + a dataset card.

    The dataset is validated first; the card records the task, parameters, seed and the command
    that regenerates the rows. Push more configs (--config-name) and splits (--split) to the same
    repo: the card is merged. Example:

        procgen push data/dyck me/dyck-k4 --config-name k4 --license cc-by-4.0
    """
    from procgen.cli import CommandFailed

    token = os.environ.get(token_env) or None
    if token is None and token_env != "HF_TOKEN":
        raise CommandFailed(f"--token-env {token_env}: that environment variable is not set", exit_code=2)
    try:
        url = push(directory, repo, private=private, token=token, config_name=config_name, split=split,
                   endpoint=endpoint, commit_message=message, progress=not quiet, license=license_)
    except ValueError as err:
        raise CommandFailed(str(err), exit_code=2) from err
    except DatasetError as err:
        raise CommandFailed(f"{directory}: not pushed: {err}", exit_code=1) from err
    except HubError as err:
        raise CommandFailed(str(err), exit_code=1) from err
    if not quiet:
        manifest = read_manifest(directory)
        click.echo(f"pushed {manifest['num_rows']:,} rows ({manifest['num_tokens']:,} tokens) of "
                   f"{manifest['task']} to {repo} (config {config_name or DEFAULT_CONFIG}, split "
                   f"{split or manifest['split']}): {url}")
