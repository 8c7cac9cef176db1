"""Adding a task takes one module: a toy task written outside procgen, registered with
``procgen.tasks.register``, works in the API, the writer (its worker processes too), the validator,
the CLI, the docs generator and every registry-wide check, with no other edit. Also: what
registration refuses, and entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import procgen
from procgen.tasks import RESERVED_PARAMS, get_task, register, registered, task_names, unregister

registry = importlib.import_module("procgen.tasks")  # the package: the attribute procgen.tasks is the listing

ROOT = Path(__file__).resolve().parent.parent

TOY = '''"""{name}: ``bits`` random bits, SEP, their parity (a task written outside procgen)."""

import numpy as np
from numba import njit

from procgen._rng import below, hi32, next_u64, row_state
from procgen.tasks import Param, Task
from procgen.tasks._common import row_validator

SEP = 2


@njit(cache=True)
def _fill(base, start, bits, out):
    """Rows of ``bits + 2`` tokens: the bits (one next_u64 each, its high 32 bits), SEP, the parity."""
    width = bits + 2
    for r in range(out.shape[0] // width):
        state = row_state(base, start + r)
        parity = 0
        for j in range(bits):
            state, draw = next_u64(state)
            bit = below(hi32(draw), 2)
            out[r * width + j] = bit
            parity ^= bit
        out[r * width + bits] = SEP
        out[r * width + bits + 1] = parity


def _kernel(base, start, count, params, dtype):
    width = params["bits"] + 2
    tokens = np.empty(count * width, dtype)
    _fill(np.uint64(base), start, params["bits"], tokens)
    return tokens, np.arange(count + 1, dtype=np.int64) * width, np.full(count, params["bits"] + 1, np.int32)


@njit(cache=True)
def _check(tokens, offsets, answer_start, bits):
    """Layout, bits 0/1, SEP, the parity recomputed. Returns (first bad row or -1, reason code)."""
    for r in range(offsets.shape[0] - 1):
        first = offsets[r]
        if offsets[r + 1] - first != bits + 2 or answer_start[r] != bits + 1:
            return r, 1
        parity = 0
        for j in range(bits):
            token = np.int64(tokens[first + j])
            if token > 1:
                return r, 2
            parity ^= token
        if tokens[first + bits] != SEP:
            return r, 3
        if tokens[first + bits + 1] != parity:
            return r, 4
    return -1, 0


_REASONS = {{1: "row length or answer_start off the layout", 2: "a bit is not 0 or 1", 3: "SEP missing",
            4: "wrong parity"}}

TASKS = [
    Task(
        name="{name}",
        summary="bits, SEP, their parity",
        params=({params}),
        kernel=_kernel,
        validator=row_validator(_check, _REASONS, lambda params: (params["bits"],)),
        vocab=lambda params: ["0", "1", "<sep>"],
        max_row_length=lambda params: params["bits"] + 2,
        expected_row_length=lambda params: params["bits"] + 2,
        finding="A toy: parity is the classic task a transformer finds hard.",
    ),
]
'''
BITS = 'Param("bits", int, 8, "number of bits per row", low=1, high=1000),'


def toy_source(name="parity_toy", params=BITS) -> str:
    return TOY.format(name=name, params=params)


def _forget(names):
    for name in names:
        procgen.__dict__.pop(name, None)  # the procgen.<name> shortcut, bound on first use


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "parity_toy.py"
    path.write_text(toy_source())
    names = register(path)
    yield names[0]
    _forget(unregister(path))
    assert "parity_toy" not in task_names()


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", ROOT / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the toy task works everywhere --------------------------------------------------------------

def test_registering_returns_the_names_and_is_idempotent(toy, tmp_path):
    assert toy == "parity_toy" and toy in task_names() and toy in registry.available_tasks()
    assert register(registered()[-1]) == [toy]  # again: nothing changes
    assert task_names().count(toy) == 1
    assert register("procgen.tasks.dyck") == ["dyck", "dyck_shuffle"]  # a built-in module: a no-op
    assert "procgen.tasks.dyck" not in registered()


def test_generate_and_the_shortcut(toy):
    batch = procgen.generate(toy, 100, seed=1, bits=5)
    assert batch.tokens.dtype == np.uint8 and len(batch[0]) == 7 and int(batch.answer_start[0]) == 6
    assert batch.validate() is None if hasattr(batch, "validate") else True
    assert get_task(toy).check(batch) is None
    for i in range(len(batch)):
        row = batch[i].tolist()
        assert row[5] == 2 and row[6] == sum(row[:5]) % 2
    assert np.array_equal(procgen.parity_toy(n=100, seed=1, bits=5).tokens, batch.tokens)
    with pytest.raises(ValueError, match="parity_toy: bits must be an integer in \\[1, 1000\\]"):
        procgen.generate(toy, 1, bits=0)


def test_every_registry_wide_check_passes(toy):
    """The parametrised invariants of tests/test_registry.py, run on the toy task."""
    import test_registry

    ran = []
    for name, check in vars(test_registry).items():
        if not name.startswith("test_") or not callable(check):
            continue
        arguments = list(inspect.signature(check).parameters)
        if arguments == ["name"]:
            check(toy)
        elif arguments == ["name", "param"]:
            for param in get_task(toy).params:
                if param.kind is int:
                    check(toy, param)
        else:
            continue
        ran.append(name)
    assert len(ran) >= 8, ran


@pytest.fixture
def helpers_started(monkeypatch):
    """Start helper processes even for small writes; count the helpers sent the registrations."""
    from procgen import _workers

    monkeypatch.setattr(importlib.import_module("procgen._shards"), "SPAWN_TOKENS", 1)
    sent = []
    monkeypatch.setattr(_workers, "registered", lambda: sent.append(registered()) or registered())
    return sent


@pytest.mark.parametrize("workers", [1, 2])
def test_write_with_workers_then_validate(toy, tmp_path, workers, helpers_started):
    out = tmp_path / f"w{workers}"
    manifest = procgen.write(toy, out, n=3000, shards=4, workers=workers, seed=2, progress=False, bits=6)
    assert len(helpers_started) == workers - 1  # each helper registered the toy module before its shards
    assert all(any(module.endswith("parity_toy.py") for module in sent) for sent in helpers_started)
    assert manifest["task"] == toy
    report = procgen.validate(out)
    assert report["rows"] == 3000 if "rows" in report else report
    rows = procgen.load(out)
    expected = procgen.generate(toy, 3000, seed=2, bits=6)
    assert rows[2999]["input_ids"] == expected[2999].tolist()
    assert rows[0]["answer_start"] == 7


def test_written_shards_do_not_depend_on_the_worker_count(toy, tmp_path, helpers_started):
    sums = []
    for workers in (1, 3):
        manifest = procgen.write(toy, tmp_path / str(workers), n=2000, shards=4, workers=workers, progress=False)
        sums.append([shard["sha256"] for shard in manifest["shards"]])
    assert sums[0] == sums[1] and len(helpers_started) == 2


def test_the_cli_lists_and_generates_it(toy, tmp_path):
    from click.testing import CliRunner

    from procgen.cli import cli

    listed = CliRunner().invoke(cli, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "parity_toy: bits, SEP, their parity" in listed.output and "--bits" in listed.output
    done = CliRunner().invoke(cli, ["generate", toy, "-n", "500", "--bits", "4", "--out", str(tmp_path / "d"),
                                    "--quiet"])
    assert done.exit_code == 0, done.output
    assert procgen.load(tmp_path / "d")[499]["input_ids"] == procgen.generate(toy, 500, bits=4)[499].tolist()


def test_the_docs_generator_writes_its_page_and_nav_entry(toy, tmp_path):
    gen = _gen_pages()
    gen.write_pages(tmp_path)
    page = (tmp_path / f"{toy}.md").read_text()
    assert page.startswith(f"# `{toy}`") and "| `bits` | `8` | an integer in [1, 1000] |" in page
    assert "parity is the classic task" in page and "[0] " in page
    assert "No reference code exists" in page  # no differences named: the generic note
    assert f"]({toy}.md)" in (tmp_path / "index.md").read_text()
    config = gen.on_config({"nav": [{"Tasks": ["tasks/index.md", {"Adding a task": "adding-a-task.md"}]}]})
    assert f"tasks/{toy}.md" in config["nav"][0]["Tasks"]


# --- what registration refuses ------------------------------------------------------------------

def _module(tmp_path, file_name, source):
    path = tmp_path / file_name
    path.write_text(source)
    return path


@pytest.mark.parametrize("reserved", ["seed", "n", "workers", "batch_size", "tokens", "split"])
def test_a_parameter_named_like_an_api_keyword_is_refused(tmp_path, reserved):
    path = _module(tmp_path, "bad.py", toy_source("clash_toy", BITS + f' Param("{reserved}", int, 1, "x", low=0, '
                                                               f'high=5),'))
    with pytest.raises(ValueError) as info:
        register(path)
    message = str(info.value)
    assert "\n" not in message
    assert "'clash_toy'" in message and f"parameter {reserved!r} is a reserved name" in message
    assert "reserved: " in message and "batch_size" in message and "workers" in message
    assert "clash_toy" not in task_names() and str(path) not in registered()


def test_a_taken_name_or_a_bad_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="register: task 'dyck' .*: the name is taken \\(by procgen.tasks.dyck\\)"):
        register(_module(tmp_path, "dup.py", toy_source("dyck")))
    with pytest.raises(ValueError, match="must be a Python identifier"):
        register(_module(tmp_path, "dash.py", toy_source("my-toy")))
    with pytest.raises(ValueError, match="must define TASKS"):
        register(_module(tmp_path, "empty.py", "TASKS = []\n"))
    with pytest.raises(ValueError, match="no such file"):
        register(tmp_path / "missing.py")
    assert get_task("dyck").name == "dyck" and "my-toy" not in task_names()


def test_no_built_in_parameter_is_reserved():
    for name in task_names():
        clash = {p.name for p in get_task(name).params} & RESERVED_PARAMS
        assert not clash, (name, clash)


def test_the_reserved_names_cover_the_api_signatures():
    """Every keyword that sits next to **params (or a task's CLI flags) is reserved."""
    from procgen.api import rows_for_tokens, task_function

    functions = [procgen.generate, procgen.write, procgen.stream, procgen.to_iterable_dataset, rows_for_tokens,
                 task_function("dyck")]
    if importlib.util.find_spec("torch") is not None:
        from procgen.train import ProcgenIterableDataset

        functions.append(ProcgenIterableDataset)
    keywords = {name for function in functions for name, p in inspect.signature(function).parameters.items()
                if p.kind is not p.VAR_KEYWORD}
    assert keywords <= RESERVED_PARAMS, sorted(keywords - RESERVED_PARAMS)

    from click.testing import CliRunner

    from procgen.cli import cli

    text = CliRunner().invoke(cli, ["generate", "stack", "--help"]).output
    task_flags = {p.name for p in get_task("stack").params}
    flags = {flag.replace("-", "_") for flag in re.findall(r"--([a-z][a-z-]*)", text)}
    options = {flag for flag in flags if flag not in task_flags and flag.removeprefix("no_") not in task_flags}
    assert options and options <= RESERVED_PARAMS, sorted(options - RESERVED_PARAMS)


# --- entry points ---------------------------------------------------------------------------------

def test_an_entry_point_registers_its_module_on_first_listing(tmp_path, monkeypatch):
    (tmp_path / "plugin_toy_tasks.py").write_text(toy_source("plugin_toy"))
    (tmp_path / "broken_toy_tasks.py").write_text(toy_source("broken_toy", BITS + ' Param("seed", int, 0, "x", '
                                                                                 'low=0, high=1),'))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [importlib.metadata.EntryPoint("plugin", "plugin_toy_tasks", registry.ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("broken", "broken_toy_tasks:TASKS", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [p for p in points if p.group == group])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        with pytest.warns(UserWarning, match="entry point 'broken' .* not registered: .*reserved name"):
            assert procgen.plugin_toy(n=10).num_tokens == 100  # the first lookup of an unknown name loads them
        names = task_names()
        assert "plugin_toy" in names and "broken_toy" not in names
        assert procgen.generate("plugin_toy", 10).num_tokens == 100
        assert "plugin_toy_tasks" in registered()  # so procgen.write's workers register it too
    finally:
        _forget(unregister("plugin_toy_tasks"))
        sys.modules.pop("plugin_toy_tasks", None)
        sys.modules.pop("broken_toy_tasks", None)
    assert "plugin_toy" not in task_names()
