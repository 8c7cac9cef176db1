"""The registered task ``mix``: a weighted mixture of tasks (``procgen.mix`` builds one in memory).

A mixture is described by a *spec*::

    {"tasks": {"set": {"weight": 0.5, "vocab_size": 100}, "union": {"weight": 0.5}},
     "vocab": "auto"}          # or "shared" / "disjoint"

(``procgen generate mix --spec spec.yaml`` reads the same mapping from YAML or JSON.)

* **Weights are token shares.** Each task's expected row length (measured on a fixed sample of
  its own stream) turns token weights into row shares; those are rounded to whole rows per
  period of ``period`` rows (default 10 000) and spread evenly over the period by smooth weighted
  round-robin. The schedule is a pure function of the spec and the row index, so row ``m``'s task,
  and its position in that task's stream, are known without generating earlier rows: mixtures obey
  the same seeding contract as single tasks (independent of n, shards and workers).
* **Rows.** The ``j``-th row of task ``t`` in the mixture is row ``j`` of ``t``'s own stream, keyed
  from the mixture's key and ``t``'s name (so every mixture row is a valid row of its task, and
  tasks never share a stream).
* **Vocabulary.** ``shared``: the tasks' id -> name tables agree wherever they overlap (e.g. SET and
  UNION at the same V), so ids are kept. ``disjoint``: task ``t``'s ids are shifted by an offset so
  the ranges never overlap; names become ``"set:17"``. ``auto`` picks shared when possible.
* A ``task`` column (Arrow dictionary) names each row's task; validation dispatches every row to
  its task's validator and checks the column against the schedule.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from procgen._checks import check_int
from procgen._rng import base_key, derive_key
from procgen.tasks import Param, Task, get_task

VOCAB_MODES = ("auto", "shared", "disjoint")
DEFAULT_PERIOD = 10_000
_LENGTH_SAMPLE_ROWS = 4096  # rows of each task's own stream used to estimate its mean row length


# --- spec resolution ------------------------------------------------------------------------------

def _resolve(params: dict) -> dict:
    spec = params["spec"]
    if not isinstance(spec, dict) or not isinstance(spec.get("tasks"), dict) or not spec["tasks"]:
        raise ValueError("mix: spec must be a mapping with a non-empty 'tasks' mapping, e.g. "
                         "{'tasks': {'set': {'weight': 0.5}, 'union': {'weight': 0.5}}}")
    unknown = sorted(set(spec) - {"tasks", "vocab", "period", "resolved"})
    if unknown:
        raise ValueError(f"mix: unknown spec key {unknown[0]!r}; allowed: tasks, vocab, period")
    mode = spec.get("vocab", "auto")
    if mode not in VOCAB_MODES:
        raise ValueError(f"mix: vocab must be one of {', '.join(VOCAB_MODES)}; got {mode!r}")
    period = spec.get("period", DEFAULT_PERIOD)
    period = check_int(period, "mix: period", 1, 1_000_000)
    if len(spec["tasks"]) > 127:
        raise ValueError(f"mix: at most 127 tasks per mixture; got {len(spec['tasks'])}")

    names, weights, task_params = [], [], []
    for name, entry in spec["tasks"].items():
        if name == "mix":
            raise ValueError("mix: a mixture cannot contain the task 'mix'")
        if entry is not None and not isinstance(entry, dict):
            raise ValueError(f"mix: the entry of task {name!r} under 'tasks' must be a mapping "
                             f"{{weight: w, param: value...}} (e.g. {{{name!r}: {{'weight': 0.5}}}}); got {entry!r}")
        entry = dict(entry or {})
        weight = entry.pop("weight", None)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise ValueError(f"mix: weight of {name!r} must be a number > 0; got {weight!r}")
        resolved = get_task(name).resolve_params(entry)  # ValueError names the task and parameter
        names.append(name)
        weights.append(float(weight))
        task_params.append(_jsonable(resolved))

    total = sum(weights)
    shares = [w / total for w in weights]
    mean_tokens = [_mean_row_tokens(name, json.dumps(p, sort_keys=True)) for name, p in zip(names, task_params)]
    row_weights = [share / length for share, length in zip(shares, mean_tokens)]
    rows_per_period = _apportion([w / sum(row_weights) for w in row_weights], period)
    for name, count in zip(names, rows_per_period):
        if count == 0:
            raise ValueError(f"mix: weight of {name!r} is too small to get one row per period of {period} rows; "
                             f"raise it or set a larger 'period'")

    vocabs = [get_task(name).vocab(_task_params(name, p)) for name, p in zip(names, task_params)]
    shared = _shared_vocab(vocabs)
    if mode == "shared" and shared is None:
        raise ValueError(f"mix: vocab='shared' needs tasks whose id -> name tables agree; {', '.join(names)} "
                         f"disagree (use vocab='disjoint' or 'auto')")
    mode = "shared" if mode == "auto" and shared is not None else ("disjoint" if mode == "auto" else mode)
    if mode == "shared":
        id_offsets = [0] * len(names)
        vocab = list(shared)
        pads = {get_task(name).pad_id(_task_params(name, p)) for name, p in zip(names, task_params)}
        pad_id = pads.pop() if len(pads) == 1 and None not in pads else None
    else:
        id_offsets = list(np.cumsum([0] + [len(v) for v in vocabs[:-1]]).tolist())
        vocab = [f"{name}:{token}" for name, v in zip(names, vocabs) for token in v]
        pad_id = None
    if pad_id is None:
        pad_id = len(vocab)
        vocab.append("<pad>")

    resolved = {  # tasks in input form, so resolving a resolved spec again is a no-op
        "tasks": {name: {"weight": share, **p} for name, share, p in zip(names, shares, task_params)},
        "vocab": mode,
        "period": period,
        "resolved": {"names": names, "rows_per_period": rows_per_period, "mean_row_tokens": mean_tokens,
                     "id_offsets": id_offsets, "vocab": vocab, "pad_id": pad_id},
    }
    return {"spec": resolved}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _task_params(name: str, params: dict) -> dict:
    """A component's params as its task expects them (JSON turned tuples into lists)."""
    return get_task(name).resolve_params(params)


def _component(spec: dict, name: str) -> dict:
    """Resolved parameters of component ``name`` of a resolved spec."""
    return _task_params(name, {k: v for k, v in spec["tasks"][name].items() if k != "weight"})


@functools.lru_cache(maxsize=256)
def _mean_row_tokens(name: str, params_json: str) -> float:
    """Mean row length of the first rows of ``name``'s own seed-0 train stream (what generate returns)."""
    task = get_task(name)
    params = task.resolve_params(json.loads(params_json))
    _, offsets, _ = task.kernel(base_key(0, name, "train"), 0, _LENGTH_SAMPLE_ROWS, params, task.token_dtype(params))
    return int(offsets[-1]) / _LENGTH_SAMPLE_ROWS


def _apportion(shares: list[float], total: int) -> list[int]:
    """Integers summing to ``total`` proportional to ``shares`` (largest remainder)."""
    exact = [s * total for s in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda t: (-(exact[t] - counts[t]), t))
    for t in by_remainder[:total - sum(counts)]:
        counts[t] += 1
    return counts


def _shared_vocab(vocabs: list[list[str]]) -> list[str] | None:
    """The longest table if every pair agrees on their common ids, else None."""
    longest = max(vocabs, key=len)
    for v in vocabs:
        if v != longest[:len(v)]:
            return None
    return longest


# --- schedule -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _schedule(rows_per_period: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(pattern, prefix)``: task of each row of a period, and rows of task t before position p.

    Smooth weighted round-robin spreads each task's rows evenly over the period.
    """
    period = sum(rows_per_period)
    counts = np.array(rows_per_period, np.int64)
    credit = np.zeros(len(counts), np.int64)
    pattern = np.empty(period, np.int8)
    for position in range(period):
        credit += counts
        chosen = int(np.argmax(credit))
        credit[chosen] -= period
        pattern[position] = chosen
    prefix = np.zeros((len(counts), period + 1), np.int64)
    for t in range(len(counts)):
        np.cumsum(pattern == t, out=prefix[t, 1:])
    return pattern, prefix


def _rows_before(rows_per_period: tuple, row: int) -> np.ndarray:
    """Rows of each task among mixture rows ``0 .. row-1``."""
    _, prefix = _schedule(rows_per_period)
    period = sum(rows_per_period)
    full, part = divmod(row, period)
    return full * np.array(rows_per_period, np.int64) + prefix[:, part]


def _row_task(params: dict, start: int, count: int) -> np.ndarray:
    rows_per_period = tuple(params["spec"]["resolved"]["rows_per_period"])
    pattern, _ = _schedule(rows_per_period)
    return pattern[(start + np.arange(count, dtype=np.int64)) % len(pattern)]


def _component_key(base: int, name: str) -> int:
    """Key of component ``name``'s stream under the mixture's key (never a standalone task's key)."""
    return derive_key(int(base), "mix-component", name)


# --- kernel and validator -----------------------------------------------------------------------

def _kernel(base, start, count, params, dtype):
    spec = params["spec"]
    info = spec["resolved"]
    rows_per_period = tuple(info["rows_per_period"])
    first = _rows_before(rows_per_period, start)
    row_task = _row_task(params, start, count)

    pool, pool_offsets, pool_answer, part_row = [], [np.zeros(1, np.int64)], [], [0]
    token_base = 0
    for t, name in enumerate(info["names"]):
        n_t = int(np.count_nonzero(row_task == t))
        part_row.append(part_row[-1] + n_t)
        if n_t == 0:
            continue
        task = get_task(name)
        task_params = _component(spec, name)
        tokens, offsets, answer_start = task.kernel(_component_key(base, name), int(first[t]), n_t, task_params,
                                                    task.token_dtype(task_params))
        pool.append(tokens.astype(dtype) + dtype.type(info["id_offsets"][t]) if info["id_offsets"][t] else
                    tokens.astype(dtype, copy=False))
        pool_offsets.append(offsets[1:] + token_base)
        pool_answer.append(answer_start)
        token_base += int(offsets[-1])
    pool = np.concatenate(pool)
    pool_offsets = np.concatenate(pool_offsets)
    pool_answer = np.concatenate(pool_answer).astype(np.int32, copy=False)

    # row r of the output is row (rank of r among its task's rows) of that task's part of the pool
    order = np.argsort(row_task, kind="stable")
    source = np.empty(count, np.int64)
    source[order] = np.arange(count)  # rows are grouped by task in the pool, in row order
    starts = pool_offsets[source]
    lengths = pool_offsets[source + 1] - starts
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return pool[gather], offsets, pool_answer[source]


def _check_batch(batch):
    """Per-row dispatch to each task's validator, plus the task column against the schedule."""
    return _check_rows(batch.tokens, batch.offsets, batch.answer_start, batch.params, batch.start, batch.row_task)


def _check_rows(tokens, offsets, answer_start, params, start=0, row_task=None):
    """``_check_batch`` on arrays: rows ``start ..`` of the mixture, ``row_task`` their task column (or None)."""
    spec = params["spec"]
    info = spec["resolved"]
    offsets = np.asarray(offsets, dtype=np.int64)
    answer_start = np.asarray(answer_start)
    expected = _row_task(params, start, len(offsets) - 1)
    if row_task is not None and not np.array_equal(row_task, expected):
        row = int(np.flatnonzero(row_task != expected)[0])
        return row, "task column does not match the mixture's schedule"
    tokens = np.asarray(tokens).astype(np.int64)
    row_offsets = offsets
    lengths = np.diff(offsets)
    for t, name in enumerate(info["names"]):
        rows = np.flatnonzero(expected == t)
        if len(rows) == 0:
            continue
        task = get_task(name)
        task_params = _component(spec, name)
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths[rows], out=offsets[1:])
        gather = np.repeat(row_offsets[rows] - offsets[:-1], lengths[rows]) + np.arange(offsets[-1])
        ids = tokens[gather] - info["id_offsets"][t]
        size = task.vocab_size(task_params)
        outside = np.flatnonzero((ids < 0) | (ids >= size))
        if len(outside):
            row = int(rows[np.searchsorted(offsets, outside[0], side="right") - 1])
            return row, f"token id outside the id range of task {name!r}"
        found = task.validator(ids.astype(task.token_dtype(task_params)), offsets,
                               np.ascontiguousarray(answer_start[rows]), task_params)
        if found is not None:
            return int(rows[found[0]]), f"{name}: {found[1]}"
    return None


def _validator(tokens, offsets, answer_start, params):
    return _check_rows(tokens, offsets, answer_start, params)


TASKS = [
    Task(
        name="mix",
        summary="weighted mixture of tasks (token weights, deterministic interleaving, a task column)",
        params=(Param("spec", dict, None, "mixture: {tasks: {name: {weight: w, param: value...}}, "
                                          "vocab: auto|shared|disjoint}; a YAML/JSON file or inline"),),
        kernel=_kernel,
        validator=_validator,
        vocab=lambda params: params["spec"]["resolved"]["vocab"],
        max_row_length=lambda params: max(get_task(name).max_row_length(_component(params["spec"], name))
                                          for name in params["spec"]["tasks"]),
        pad_id=lambda params: params["spec"]["resolved"]["pad_id"],
        resolve=_resolve,
        size=lambda params: len(params["spec"]["resolved"]["vocab"]),
        row_task=_row_task,
        row_task_names=lambda params: list(params["spec"]["resolved"]["names"]),
        batch_validator=_check_batch,
        finding="Mixtures of procedural tasks: the warm-up data is usually several tasks at once; each component "
                "is a task that, front-loaded before C4/code/math pretraining, let a model reach the same loss "
                "with 55–86% of the semantic data.",
        example_params={"spec": {"tasks": {"set": {"weight": 0.5}, "union": {"weight": 0.5}}}},
    ),
]
