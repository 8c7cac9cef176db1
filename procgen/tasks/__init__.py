"""Task registry and the Task protocol.

A task family lives in one module. The module defines ``TASKS``: a list of :class:`Task` objects,
each bundling

* ``params``: the :class:`Param` specs (type, default, allowed range, help) — the single source of
  truth for argument checking, CLI flags and generated docs;
* ``resolve``: cross-parameter checks and derived values (e.g. ``min_length``/``max_length``);
  idempotent (resolving resolved parameters changes nothing);
* ``kernel``: ``kernel(base_key, start, count, params, dtype) -> (tokens, offsets, answer_start)``,
  generating rows ``start .. start+count-1`` (row ``i`` depends only on the key and ``i``);
* ``validator``: ``validator(tokens, offsets, answer_start, params) -> None | (row, reason)``,
  an independent re-implementation of the task's rules;
* ``vocab``: ``vocab(params) -> list[str]``, printable names for ids ``0 .. vocab_size-1``;
* optionally ``expected_row_length``: ``(params) -> mean tokens per row`` when a closed form exists
  (sizing a dataset in tokens; otherwise the mean is measured on a sample);
* its documentation: ``finding`` (the paper result it serves), ``differences`` (sections of
  docs/differences.md) and ``example_params`` (for docs examples and benchmarks), from which
  ``docs/gen_pages.py`` writes the task's page.

A built-in task is one line in ``_MODULES`` below. Other tasks join with :func:`register` (a module
name or a ``.py`` path) or, from an installed package, an entry point in the group
``procgen.tasks`` whose value names the module; ``docs/adding-a-task.md`` says what a task must
do. Task modules are imported lazily so that ``import procgen`` (which imports this registry) stays
fast and compiles nothing; shared helpers for task modules live in ``procgen.tasks._common``.
Import from this package (``from procgen.tasks import get_task``): the attribute ``procgen.tasks``
is the public listing function (it returns :func:`listing`), not this package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


class _Modules(dict):
    """Task name -> module. Asking for a name it lacks first loads the entry points (once), so that
    ``name in _MODULES`` also knows the tasks of installed plugins."""

    def __contains__(self, name) -> bool:
        if not super().__contains__(name):
            _load_entry_points()
        return super().__contains__(name)


# task name -> module that defines it (one line per built-in task; register() adds the others)
_MODULES: dict[str, str] = _Modules({
    "dyck": "procgen.tasks.dyck",
    "dyck_shuffle": "procgen.tasks.dyck",
    "identity": "procgen.tasks.sequence",
    "ww": "procgen.tasks.ww",
    "reverse": "procgen.tasks.sequence",
    "sort": "procgen.tasks.sequence",
    "set": "procgen.tasks.sequence",
    "union": "procgen.tasks.sequence",
    "intersect": "procgen.tasks.setops",
    "difference": "procgen.tasks.setops",
    "count": "procgen.tasks.setops",
    "search": "procgen.tasks.setops",
    "duplicate": "procgen.tasks.setops",
    "replace": "procgen.tasks.setops",
    "delete": "procgen.tasks.sequence",
    "khop": "procgen.tasks.khop",
    "stack": "procgen.tasks.stack",
    "queue": "procgen.tasks.queue",
    "eca": "procgen.tasks.eca",
    "haystack": "procgen.tasks.diagnostics",
    "addition": "procgen.tasks.diagnostics",
    "reversed_addition": "procgen.tasks.diagnostics",
    "multiplication": "procgen.tasks.diagnostics",
    "nca": "procgen.tasks.nca",
    "mix": "procgen.tasks.mixture",
    "ngram": "procgen.tasks.ngram",
})

ENTRY_POINT_GROUP = "procgen.tasks"  # a package's entry points here name modules that define TASKS
# Names no task parameter may take: task parameters are passed as keywords (or CLI flags) next to
# these arguments of procgen.generate / write / stream / to_iterable_dataset / rows_for_tokens, the
# per-task shortcuts, procgen.train's ProcgenIterableDataset and `procgen generate`.
# tests/test_add_task.py checks the list against those signatures.
RESERVED_PARAMS = frozenset({
    "task", "n", "rows", "tokens", "seed", "split", "start", "stop", "out", "shards", "workers",
    "shard_index", "overwrite", "progress", "quiet", "help", "params", "dtype", "batch_rows", "num_shards",
    "batch_size", "block_size", "repeat", "pack", "eos_id", "shuffle_tokens", "scoring", "rank", "world_size",
})
_registered: dict[str, list[str]] = {}  # register()'s module name or file path -> the task names it added
_entry_points_loaded = False
SCORINGS = ("reference", "all")  # which answer positions count: the official harness's, or every one


@dataclass(frozen=True)
class Param:
    """Specification of one task parameter.

    ``low``/``high`` are inclusive bounds unless ``low_open``/``high_open`` (every ``int`` parameter
    has a ``high``, checked here before a value can reach a numba kernel); ``nullable`` allows
    ``None``; ``choices`` restricts to a fixed set; ``multiple`` also accepts a non-empty list of
    values (each checked), e.g. several ECA rules.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    nullable: bool = False
    multiple: bool = False

    def allowed(self) -> str:
        """Human description of the allowed values, e.g. ``an integer >= 1``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                    dict: "a mapping (YAML/JSON)"}[self.kind]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {_fmt(self.low)}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {_fmt(self.high)}")
            if len(bounds) == 2 and not self.low_open and not self.high_open:
                text += f" in [{_fmt(self.low)}, {_fmt(self.high)}]"
            elif bounds:
                text += " " + " and ".join(bounds)
        if self.multiple:
            text += " (or a list of such values)"
        if self.nullable:
            text += " or None"
        return text

    def check(self, value, task: str = "") -> Any:
        """Return ``value`` coerced to this parameter's type, or raise ValueError naming it."""
        if value is None:
            if self.nullable:
                return None
            self._fail(value, task)
        if self.multiple and isinstance(value, (list, tuple)):
            if not value:
                self._fail(value, task)
            values = tuple(self._check_one(v, task) for v in value)
            return values[0] if len(values) == 1 else values
        return self._check_one(value, task)

    def _check_one(self, value, task):
        kind = self.kind
        if kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                self._fail(value, task)
            value = bool(value)
        elif kind is int:
            if isinstance(value, (bool, np.bool_)):
                self._fail(value, task)
            if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
                value = int(value)
            if not isinstance(value, (int, np.integer)):
                self._fail(value, task)
            value = int(value)
        elif kind is float:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                self._fail(value, task)
            value = float(value)
            if not math.isfinite(value):
                self._fail(value, task)
        elif kind is str:
            if not isinstance(value, str):
                self._fail(value, task)
        elif kind is dict:
            if not isinstance(value, dict):
                self._fail(value, task)
            return value
        if self.choices is not None and value not in self.choices:
            self._fail(value, task)
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            self._fail(value, task)
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            self._fail(value, task)
        return value

    def _fail(self, value, task):
        where = f"{task}: " if task else ""
        raise ValueError(f"{where}{self.name} must be {self.allowed()}; got {value!r}")


def _fmt(x) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Task:
    """One registered task. See the module docstring for the meaning of each callable."""

    name: str
    summary: str
    params: tuple[Param, ...]
    kernel: Callable
    validator: Callable
    vocab: Callable[[dict], list]
    max_row_length: Callable[[dict], int]
    pad_id: Callable[[dict], int | None] = lambda params: None
    resolve: Callable[[dict], dict] = lambda params: params
    # True: answer_start == 0 (loss on every token); or lm_style(params) -> bool when a parameter decides
    lm_style: bool | Callable[[dict], bool] = False
    size: Callable[[dict], int] | None = None  # vocabulary size without building the name list (large V)
    # Multi-task rows (mixtures): row_task(params, start, count) -> int8 index of each row's source task
    # (a pure function of the row index), row_task_names(params) -> the names those indices stand for,
    # and batch_validator(batch) -> None | (row, reason), which sees the whole Batch (start, row_task).
    row_task: Callable[[dict, int, int], np.ndarray] | None = None
    row_task_names: Callable[[dict], list] | None = None
    batch_validator: Callable | None = None
    # The positions the paper's official harness scores (and trains on), when they are not simply
    # "every answer token": reference_span(lengths, answer_start, params) -> (lo, hi), per-row int64
    # arrays; label positions lo .. hi-1 are scored. hi may be length + 1: the official harness pads
    # rows to a fixed width and also scores the prediction of the first pad token after the row.
    reference_span: Callable | None = None
    # expected_row_length(params) -> the mean tokens per row, computed from the parameters (an int or
    # Fraction when every row has the same length or the mean is rational). None: no closed form;
    # mean_row_length() then measures the stream's first rows.
    expected_row_length: Callable[[dict], float] | None = None
    notes: str = ""
    # Documentation (docs/gen_pages.py renders the task's page from these): the paper finding the task
    # serves (Markdown), the "##" sections of docs/differences.md about it, and the parameters of its
    # examples and benchmarks where the defaults cannot generate (e.g. a mixture needs a spec).
    finding: str = ""
    differences: tuple[str, ...] = ()
    example_params: dict = field(default_factory=dict, compare=False)
    param_index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "param_index", {p.name: p for p in self.params})

    def __reduce_ex__(self, protocol):
        # A registered task pickles as a reference to the registry entry (its callables are often
        # lambdas, which pickle cannot store), so Batches, closures and datasets fingerprints that
        # hold a Task pickle and hash the same in every process.
        if self.name in _MODULES and get_task(self.name) is self:
            return get_task, (self.name,)
        return super().__reduce_ex__(protocol)

    def defaults(self) -> dict:
        """Default value of every parameter."""
        return {p.name: p.default for p in self.params}

    def is_lm_style(self, params: dict) -> bool:
        """Whether rows under resolved ``params`` are LM-style (``answer_start == 0``: loss on every token).

        >>> get_task("dyck").is_lm_style(get_task("dyck").resolve_params({}))
        True
        """
        return bool(self.lm_style(params) if callable(self.lm_style) else self.lm_style)

    def resolve_params(self, given: dict | None = None) -> dict:
        """Check ``given`` against the specs and return the full, resolved parameter dict.

        Raises ValueError for an unknown parameter, a wrong type, a value out of range or an
        impossible combination; the message names the parameter and the allowed values.
        """
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.param_index))
        if unknown:
            allowed = ", ".join(self.param_index) or "(none)"
            raise ValueError(f"{self.name}: unknown parameter {unknown[0]!r}; allowed parameters: {allowed}")
        params = {}
        for p in self.params:
            value = given.get(p.name, p.default)
            params[p.name] = p.check(value, self.name)
        return self.resolve(params)

    def check(self, batch) -> tuple[int, str] | None:
        """Validate a :class:`~procgen.batch.Batch` of this task: None, or (first bad row, reason)."""
        if self.batch_validator is not None:
            return self.batch_validator(batch)
        return self.validator(batch.tokens, batch.offsets, batch.answer_start, batch.params)

    def scored_span(self, lengths, answer_start, params: dict, scoring: str = "all"):
        """Per row, the label positions ``lo .. hi-1`` that ``scoring`` scores.

        ``"all"``: every answer token (``answer_start .. length-1``). ``"reference"``: the positions
        the paper's official harness scores (the same as ``"all"`` for tasks it has no probe for).

        >>> import numpy as np
        >>> lo, hi = get_task("sort").scored_span(np.array([9]), np.array([5]), {}, "reference")
        >>> lo.tolist(), hi.tolist()
        ([5], [9])
        """
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(map(repr, SCORINGS))}; got {scoring!r}")
        lengths = np.asarray(lengths, dtype=np.int64)
        answer_start = np.asarray(answer_start, dtype=np.int64)
        if scoring == "reference" and self.reference_span is not None:
            lo, hi = self.reference_span(lengths, answer_start, params)
            return np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        return answer_start.copy(), lengths.copy()

    def mean_row_length(self, params: dict, seed: int = 0, split: str = "train"):
        """Mean tokens per row under resolved ``params``.

        Exact where the task states it (``expected_row_length``: an int or Fraction for fixed-length
        rows and uniform length ranges); otherwise the mean of the first rows of the ``seed`` /
        ``split`` stream (about 2**20 tokens), which is deterministic too.

        >>> task = get_task("dyck")
        >>> task.mean_row_length(task.resolve_params({"min_length": 10, "max_length": 20}))
        Fraction(15, 1)
        """
        if self.expected_row_length is not None:
            return self.expected_row_length(params)
        from procgen._rng import base_key  # loads numba: only when a sample is needed

        rows = max(1, min(1 << 16, (1 << 20) // max(1, self.max_row_length(params))))
        _, offsets, _ = self.kernel(base_key(seed, self.name, split), 0, rows, params, self.token_dtype(params))
        return float(offsets[-1]) / rows

    def vocab_size(self, params: dict) -> int:
        """Model vocabulary size (every id the task can emit, plus padding if it has one)."""
        return self.size(params) if self.size is not None else len(self.vocab(params))

    def token_dtype(self, params: dict) -> np.dtype:
        """Smallest dtype for this task's ids: uint8, uint16, or int32 above 65535."""
        return dtype_for_vocab(self.vocab_size(params))


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """Smallest token dtype that holds ids ``0 .. vocab_size-1``.

    >>> dtype_for_vocab(9), dtype_for_vocab(300), dtype_for_vocab(70000)
    (dtype('uint8'), dtype('uint16'), dtype('int32'))
    """
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def task_names() -> list[str]:
    """Names of all registered tasks, built-in ones first (no built-in task module is imported)."""
    _load_entry_points()
    return list(_MODULES)


def get_task(name) -> Task:
    """Return the registered :class:`Task` called ``name`` (imports its module on first use)."""
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"task must be one of: {', '.join(_MODULES)}; got {name!r}")
    module = importlib.import_module(_MODULES[name])
    for task in module.TASKS:
        if task.name == name:
            return task
    raise LookupError(f"module {_MODULES[name]} does not define task {name!r}")  # registry bug


def task_module(name: str):
    """The module that defines task ``name`` (its docstring describes the task family)."""
    get_task(name)
    return importlib.import_module(_MODULES[name])


def register(module) -> list[str]:
    """Register the tasks of a module that defines ``TASKS``; return their names.

    The tasks then work everywhere a built-in one does: ``procgen.generate``, ``procgen.<name>``,
    ``procgen.write`` (its worker processes register the same modules, in the same order:
    :func:`registered`), ``procgen list``, the docs generator. Registering the same module again
    changes nothing. Raises ValueError, and registers nothing, when a task name is taken or is not
    an identifier, or a parameter name is reserved (``RESERVED_PARAMS``).

    Parameters
    ----------
    module : str or path
        An importable module name (``"mypkg.tasks"``) or the path of a ``.py`` file. Its ``TASKS``
        is a non-empty list of :class:`Task`.

    Example
    -------
    >>> register("procgen.tasks.dyck")   # already built in: nothing changes
    ['dyck', 'dyck_shuffle']
    """
    key, module_name = _module_key(module)
    if key in _registered:
        return list(_registered[key])
    loaded = module_name in sys.modules
    imported = _import_module(key, module_name)
    try:
        tasks = getattr(imported, "TASKS", None)
        if not isinstance(tasks, (list, tuple)) or not tasks or not all(isinstance(t, Task) for t in tasks):
            raise ValueError(f"register: {key} must define TASKS, a non-empty list of procgen.tasks.Task")
        names = [task.name for task in tasks]
        for task in tasks:
            _check_new_task(task, imported.__name__, names)
    except ValueError:
        if not loaded and key != module_name:  # a file: let a corrected version load next time
            sys.modules.pop(module_name, None)
        raise
    if all(_MODULES.get(name) == imported.__name__ for name in names):
        return names  # a built-in module: nothing to add (and nothing for unregister to remove)
    for name in names:
        _MODULES[name] = imported.__name__
    _registered[key] = names
    return list(names)


def unregister(module) -> list[str]:
    """Undo :func:`register` (for tests and notebooks); return the names of the tasks removed.

    Built-in tasks stay. A ``procgen.<name>`` shortcut already looked up stays bound in ``procgen``.
    """
    key, module_name = _module_key(module)
    names = _registered.pop(key, [])
    for name in names:
        if _MODULES.get(name) == module_name:
            del _MODULES[name]
    if key != module_name:
        sys.modules.pop(module_name, None)
    return names


def registered() -> list[str]:
    """The modules (names or file paths) given to :func:`register` so far, in order."""
    return list(_registered)


def _module_key(module) -> tuple[str, str]:
    """``(key, module name)``: a module name is its own key; a file is keyed by its absolute path."""
    text = os.fspath(module) if isinstance(module, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text:
        raise ValueError(f"register: module must be a module name or a .py path; got {module!r}")
    if not text.endswith(".py") and os.sep not in text and "/" not in text:
        return text, text
    path = str(Path(text).resolve())
    return path, f"procgen_task_{Path(path).stem}_{hashlib.sha256(path.encode()).hexdigest()[:12]}"


def _import_module(key: str, module_name: str):
    if key == module_name:
        return importlib.import_module(module_name)
    if module_name in sys.modules:
        return sys.modules[module_name]
    if not os.path.isfile(key):
        raise ValueError(f"register: no such file: {key}")
    spec = importlib.util.spec_from_file_location(module_name, key)
    imported = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = imported  # before running it: numba's cache and pickle look it up by name
    try:
        spec.loader.exec_module(imported)
    except BaseException:
        del sys.modules[module_name]
        raise
    return imported


def _check_new_task(task: Task, module_name: str, names: list) -> None:
    """Raise ValueError (one line) for a task that cannot join the registry."""
    where = f"register: task {task.name!r} of {module_name}"
    if not isinstance(task.name, str) or not task.name.isidentifier():
        raise ValueError(f"{where}: a task name must be a Python identifier (it becomes procgen.<name>)")
    if names.count(task.name) > 1 or _MODULES.get(task.name, module_name) != module_name:
        raise ValueError(f"{where}: the name is taken (by {_MODULES.get(task.name, module_name)})")
    for p in task.params:
        if p.name in RESERVED_PARAMS:
            raise ValueError(f"{where}: parameter {p.name!r} is a reserved name (an argument of procgen.generate, "
                             f"write, stream or train, or a CLI option); reserved: "
                             f"{', '.join(sorted(RESERVED_PARAMS))}")


def _load_entry_points() -> None:
    """Register the modules named by installed packages' ``procgen.tasks`` entry points (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(point.module)
        except Exception as err:  # noqa: BLE001 -- a broken plugin must not break procgen
            warnings.warn(f"procgen: tasks of entry point {point.name!r} ({point.value}) not registered: {err}",
                          stacklevel=3)


def listing() -> dict[str, dict]:
    """Every task's summary and parameters (default, allowed values, help); ``procgen.tasks()``.

    >>> listing()["dyck"]["params"]["k"]["default"]   # doctest: +SKIP
    4
    """
    result = {}
    for name in task_names():
        spec = get_task(name)
        result[name] = {
            "summary": spec.summary,
            "params": {p.name: {"default": p.default, "allowed": p.allowed(), "help": p.help} for p in spec.params},
        }
    return result


def available_tasks() -> list[str]:
    """Names of registered tasks whose module is importable (lets partial checkouts work)."""
    _load_entry_points()
    names = []
    for name, module in _MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        names.append(name)
    return names
