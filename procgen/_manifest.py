"""What a dataset's JSON files say: the manifest (built, read back and checked), ``datasets``' two files,
the fingerprint and the command that regenerates the dataset.

Everything read from a dataset directory is untrusted input: an edited procgen.json gives one
DatasetError line naming the file and the field, never a TypeError or numba typing error from
deep inside, and never a file read from outside the directory (shard names must be the plain
names the writer gives).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex

from procgen._version import __version__
from procgen._arrow import features
from procgen._checks import check_seed, check_split
from procgen._files import as_path
from procgen._layout import (CONFIG_NAME, FORMAT_VERSION, MANIFEST_NAME, RECORD_FILE, STATE_DIR, DatasetError,
                             listdir, read_json, record_path, shard_filename)
from procgen.tasks import dtype_for_vocab, get_task

# What determines a dataset's content: hashed into its fingerprint, compared before a resume.
CONTENT_KEYS = ("format_version", "task", "params", "seed", "split", "num_rows", "num_shards")
_DTYPES = ("uint8", "uint16", "int32")  # what procgen.tasks.dtype_for_vocab can choose
_SHARD_FIELDS = ("filename", "row_start", "row_end", "num_rows", "num_tokens", "num_bytes", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def fingerprint(config: dict) -> str:
    """Hash of what determines the dataset's content (tuples and lists hash alike, as in JSON)."""
    text = json.dumps({key: config[key] for key in CONTENT_KEYS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_fingerprint(manifest: dict) -> str | None:
    """The fingerprint of the write that made ``manifest`` (None for a manifest lacking a field)."""
    try:
        return fingerprint({**manifest, "num_shards": len(manifest["shards"])})
    except (KeyError, TypeError):
        return None


def command(task, out, n, shards, seed, split, params) -> str:
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


def jsonish(value):
    """A parameter value as JSON stores it (a tuple is a list)."""
    return list(value) if isinstance(value, tuple) else value


def task_params(manifest: dict) -> dict:
    """A manifest's params as the task takes them (JSON lists back to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}


# --- the files a write finishes with -----------------------------------------------------------

def build(plan, shards: list[dict]) -> dict:
    """The manifest of a finished write: ``plan`` (a :class:`procgen._shards.WritePlan`) and its shard entries."""
    spec = get_task(plan.task)
    params = plan.params
    return {
        "format_version": FORMAT_VERSION,
        "procgen_version": __version__,
        "task": plan.task,
        "params": {k: jsonish(v) for k, v in params.items()},
        "seed": plan.seed,
        "split": plan.split,
        "num_rows": plan.num_rows,
        "num_tokens": sum(s["num_tokens"] for s in shards),
        "dtype": plan.dtype,
        "vocab_size": spec.vocab_size(params),
        "max_row_length": int(spec.max_row_length(params)),  # every row fits: a model's context length
        "pad_id": spec.pad_id(params),
        "lm_style": spec.is_lm_style(params),
        "vocab": spec.vocab(params),
        **({"row_tasks": spec.row_task_names(params)} if spec.row_task_names else {}),
        "shards": shards,
        "command": plan.command,
    }


def dataset_info(task: str, params: dict, seed: int, split: str, dtype: str, command: str) -> dict:
    """dataset_info.json as ``datasets.Dataset.save_to_disk`` writes it (keys sorted)."""
    description = (f"procgen {task} rows ({json.dumps(params)}), seed={seed}, split={split}. "
                   f"Regenerate with: {command}")
    with_task = get_task(task).row_task_names is not None
    return {"citation": "", "description": description, "features": features(dtype, with_task), "homepage": "",
            "license": ""}


def dataset_state(shards: list[dict], split: str, fingerprint: str) -> dict:
    """state.json with the 7 keys ``datasets.load_from_disk`` reads."""
    return {"_data_files": [{"filename": s["filename"]} for s in shards], "_fingerprint": fingerprint[:16],
            "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
            "_split": split}


# --- reading the manifest back -------------------------------------------------------------------

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
    manifest = read_json(manifest_path)
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
    regenerate = command(manifest["task"], path, manifest["num_rows"], len(manifest["shards"]), manifest["seed"],
                         manifest["split"], manifest["params"])
    return {**manifest, "command": regenerate}


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
        raise bad("params", f"must be a JSON object of {spec.name}'s parameters; got {short(params)}")
    try:
        resolved = spec.resolve_params(params)
    except (ValueError, TypeError, LookupError, AttributeError) as err:  # mixture specs are nested mappings
        raise bad("params", f"are not valid: {' '.join(str(err).split())}") from None
    found = difference(params, as_json(resolved), "params")
    if found is not None:
        where, stored, expected = found
        raise bad(where, f"is {stored}; {spec.name}'s parameter specs resolve it to {expected}")
    for field, check in (("seed", check_seed), ("split", check_split)):
        try:
            check(manifest[field])
        except ValueError as err:  # "seed must be ...; got ..."
            raise DatasetError(f"{path!r}: {MANIFEST_NAME}: {err}", path, reason="bad manifest") from None
    for field, minimum in (("num_rows", 1), ("num_tokens", 0)):
        if not is_int(manifest[field], minimum):
            raise bad(field, f"must be an integer >= {minimum}; got {short(manifest[field])}")
    vocab = spec.vocab(resolved)
    vocab_size = len(vocab) if spec.size is None else spec.vocab_size(resolved)  # one vocab build, not three
    dtype, task_dtype = manifest["dtype"], dtype_for_vocab(vocab_size).name
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise bad("dtype", f"must be one of {', '.join(_DTYPES)}; got {short(dtype)}")
    if dtype != task_dtype:
        raise bad("dtype", f"is {dtype!r}, but {spec.name} with these params stores ids as {task_dtype!r}")
    derived = {"vocab_size": vocab_size, "max_row_length": int(spec.max_row_length(resolved)),
               "pad_id": spec.pad_id(resolved), "lm_style": spec.is_lm_style(resolved), "vocab": vocab}
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
        found = difference(manifest[field], as_json(value), field)
        if found is not None:
            where, stored, expected = found
            raise bad(where, f"is {stored}; {spec.name} with these params gives {expected}")
    if not isinstance(manifest.get("procgen_version", ""), str):
        raise bad("procgen_version", f"must be a string; got {short(manifest['procgen_version'])}")
    _check_shard_entries(manifest, bad)


def _check_shard_entries(manifest: dict, bad) -> None:
    """The shard records are plain, named as the writer names them, and hold rows ``[0, num_rows)`` in order."""
    shards = manifest["shards"]
    if not isinstance(shards, list) or not shards:
        raise bad("shards", f"must be a non-empty list of shard records; got {short(shards)}")
    row = 0
    for shard, entry in enumerate(shards):
        where = f"shards[{shard}]"
        if not isinstance(entry, dict):
            raise bad(where, f"must be a JSON object with {', '.join(_SHARD_FIELDS)}; got {short(entry)}")
        missing = [key for key in _SHARD_FIELDS if key not in entry]
        if missing:
            raise bad(f"{where}.{missing[0]}", "is missing")
        name = shard_filename(shard, len(shards))
        if entry["filename"] != name:  # also keeps every read inside the directory: no separator, no ..
            raise bad(f"{where}.filename", f"must be {name!r} (shard {shard} of {len(shards)}, a plain file name in "
                                           f"the dataset directory); got {short(entry['filename'])}")
        for key, minimum in (("row_start", 0), ("row_end", 1), ("num_rows", 1), ("num_tokens", 0), ("num_bytes", 0)):
            if not is_int(entry[key], minimum):
                raise bad(f"{where}.{key}", f"must be an integer >= {minimum}; got {short(entry[key])}")
        if entry["row_start"] != row:
            raise bad(f"{where}.row_start", f"is {entry['row_start']}; the shard must start at row {row}, where "
                                            f"the previous one ends")
        if entry["row_end"] != entry["row_start"] + entry["num_rows"]:
            raise bad(f"{where}.row_end", f"is {entry['row_end']}; row_start {entry['row_start']} + num_rows "
                                          f"{entry['num_rows']} is {entry['row_start'] + entry['num_rows']}")
        if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            raise bad(f"{where}.sha256", f"must be 64 lowercase hex digits; got {short(entry['sha256'])}")
        row = entry["row_end"]
    if manifest["num_rows"] != row:
        raise bad("num_rows", f"is {manifest['num_rows']}, but the shards hold rows [0, {row})")


def is_int(value, minimum: int) -> bool:
    """An integer (not a bool, not a float such as 200.0) >= ``minimum``, as the writer stores it."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), so it compares with what was stored."""
    return json.loads(json.dumps(value))


def difference(found, expected, where: str):
    """First place where two JSON values differ: ``(where, found, expected)`` (shortened reprs), or None.

    Floats compare to 1e-12 relative: re-resolving a mixture renormalises its weights, which can
    move them by an ulp. Types must match otherwise (``True`` is not ``1``, ``200.0`` not ``200``).
    """
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in expected:
            if key not in found:
                return f"{where}.{key}", "missing", short(expected[key])
            inner = difference(found[key], expected[key], f"{where}.{key}")
            if inner is not None:
                return inner
        extra = next((key for key in found if key not in expected), None)
        return None if extra is None else (f"{where}.{extra}", short(found[extra]), "absent")
    if isinstance(expected, list) and isinstance(found, list) and len(found) == len(expected):
        for index, (a, b) in enumerate(zip(found, expected)):
            inner = difference(a, b, f"{where}[{index}]")
            if inner is not None:
                return inner
        return None
    if type(found) is float and type(expected) is float and math.isclose(found, expected, rel_tol=1e-12):
        return None
    if type(found) is type(expected) and found == expected:
        return None
    return where, short(found), short(expected)


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error lines stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- an unfinished write ---------------------------------------------------------------------------

def _incomplete(path) -> DatasetError:
    """The error for a directory without a manifest: the shards done, and the command that finishes them."""
    config = read_json(os.path.join(path, STATE_DIR, CONFIG_NAME))
    num_shards = (config or {}).get("num_shards")
    if not is_int(num_shards, 1):
        return DatasetError(f"incomplete dataset at {path!r}: no {MANIFEST_NAME} manifest (not a finished "
                            f"procgen dataset); rerun the same `procgen generate` command to finish it",
                            path, reason="incomplete", shards_done=[])
    done = []
    for name in listdir(os.path.join(path, STATE_DIR)):  # not range(num_shards): it is untrusted, maybe 10**12
        match = RECORD_FILE.fullmatch(name)
        shard = int(match.group(1)) if match else num_shards
        if shard < num_shards and (read_json(record_path(path, shard)) or {}).get("fingerprint") == \
                config.get("fingerprint"):
            done.append(shard)
    done.sort()
    listed = ", ".join(map(str, done[:20])) + (" ..." if len(done) > 20 else "")
    rerun = _rerun_command(path, config)
    return DatasetError(f"incomplete dataset at {path!r}: no {MANIFEST_NAME} manifest yet, {len(done)} of "
                        f"{num_shards} shards done ({listed or 'none'}); rerun the same `procgen generate` "
                        f"command to finish it{': ' + rerun if rerun else ''}",
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
    if not is_int(num_rows, 1):
        return None
    return command(spec.name, path, num_rows, config["num_shards"], seed, split, params)
