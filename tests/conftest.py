"""Shared pytest fixtures, and helpers the test modules import (``from conftest import ...``)."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import procgen
from procgen.tasks import get_task

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:  # helper modules next to the tests (hub_server.py), whatever the import mode
    sys.path.insert(0, _TESTS)


@pytest.fixture
def hub_server(tmp_path_factory, monkeypatch):
    """A local Hugging Face Hub on 127.0.0.1 (tests/hub_server.py), fresh for each test.

    The in-process ``huggingface_hub`` client is made usable against it (xet off, offline mode off,
    no proxy); pass ``endpoint=hub_server.url`` and ``token=hub_server.token`` to it, and use
    ``hub_server.load_dataset(...)`` to run ``datasets.load_dataset`` in a clean subprocess (see
    the module docstring for why).
    """
    from hub_server import HubServer

    server = HubServer(tmp_path_factory.mktemp("hub")).start()
    server.patch_client(monkeypatch)
    yield server
    server.stop()


def run_cli(*args):
    """Run ``procgen ARGS`` in-process; the result keeps stdout and stderr apart (``.stdout``, ``.stderr``).

    Test modules import it (``from conftest import run_cli``); arguments may be paths or numbers.
    """
    from click.testing import CliRunner

    from procgen.cli import cli

    try:  # click < 8.2 mixes stderr into stdout unless told not to
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args])


# --- helpers the task test modules share (``from conftest import ...``) ----------------------------

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# n, seed and start of a generated batch, for the property tests over random valid parameters
BATCH_ARGS = (st.integers(1, 60), st.integers(0, 2 ** 40), st.integers(0, 10 ** 6))


def load_reference(name):
    """The plain-Python reference module ``benchmarks/<name>.py`` (its ``REFERENCE`` maps a task to
    ``(function, params)``)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw_lengths(draw, low, high):
    """Either ``length`` or ``min_length <= max_length``, drawn from ``low..high``."""
    if draw(st.booleans()):
        return {"length": draw(st.integers(low, high))}
    a, b = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
    return {"min_length": a, "max_length": b}


def length_bounds(params):
    """(min, max) row length that unresolved ``params`` ask for (the default length is 64)."""
    return (params.get("min_length") or params.get("length", 64),
            params.get("max_length") or params.get("length", 64))


def rows_and_starts(batch):
    """(row as a list, answer_start) of every row of ``batch``."""
    return [(batch[i].tolist(), int(batch.answer_start[i])) for i in range(len(batch))]


def strip_eos(row, vocab, eos):
    """``row`` as a list without its end token (id vocab+2), after checking it is there when ``eos``."""
    row = list(row)
    if eos:
        assert row[-1] == vocab + 2
        row = row[:-1]
    return row


def rows_to_arrays(rows, answer_starts, dtype=np.int64):
    """Rows (lists of ids) as the (tokens, offsets, answer_start) arrays a validator reads."""
    tokens = np.array([t for row in rows for t in row], dtype)
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    return tokens, offsets, np.array(answer_starts, np.int32)


def check_generated(task, params, n, seed, start):
    """Generate ``task`` rows and check what holds for every task: ``n`` rows that validate, no longer
    than ``max_row_length`` and with ids inside the vocabulary. Returns the batch."""
    batch = procgen.generate(task, n=n, seed=seed, start=start, **params)
    assert len(batch) == n
    assert batch.validate() is None
    assert batch.lengths.max() <= get_task(task).max_row_length(batch.params)
    assert int(batch.tokens.max()) < get_task(task).vocab_size(batch.params)
    return batch


def check_defaults(task, n, answer_start):
    """The default parameters (V = 100): answers start at ``answer_start``, uint8 tokens, SEP = 100 and
    PAD = 101 named in the vocabulary, PAD never stored. Returns the batch."""
    batch = procgen.generate(task, n=n)
    assert (batch.answer_start == answer_start).all() and batch.tokens.dtype == np.uint8
    assert batch.pad_id == 101 and batch.vocab[100] == "<sep>" and batch.vocab[101] == "<pad>"
    assert not (batch.tokens == 101).any()  # PAD is never stored
    return batch


def check_large_vocabulary(task, n, length):
    """A vocabulary of 70,000 ids (past uint16): int32 tokens, still valid. Returns the batch."""
    batch = procgen.generate(task, n=n, vocab_size=70_000, length=length)
    assert batch.tokens.dtype == np.int32 and batch.validate() is None
    return batch


def check_determinism_and_start(task, params, seed, other_split, prefix):
    """The seeding contract: the same seed gives the same rows, ``start=5`` the rows 5.. of the same
    stream, and the next seed or ``other_split`` other rows (their first ``prefix`` tokens differ)."""
    def make(n=20, **kwargs):
        return procgen.generate(task, n=n, **params, **kwargs)

    full, again = make(seed=seed), make(seed=seed)
    assert np.array_equal(full.tokens, again.tokens) and np.array_equal(full.offsets, again.offsets)
    window, part = full[5:15], make(n=10, seed=seed, start=5)
    assert np.array_equal(part.tokens, window.tokens)
    assert np.array_equal(part.offsets, window.offsets)
    assert np.array_equal(part.answer_start, window.answer_start)
    assert not np.array_equal(full.tokens[:prefix], make(seed=seed + 1).tokens[:prefix])
    assert not np.array_equal(full.tokens[:prefix], make(seed=seed, split=other_split).tokens[:prefix])


def check_reference_rows_pass_validator(reference, task, answer_offset):
    """300 rows of the plain-Python reference (``benchmarks/<reference>.py``, length 9, V = 6) pass our
    validator; ``answer_start = 9 + answer_offset``."""
    fn, defaults = load_reference(reference).REFERENCE[task]
    params = {**defaults, "length": 9, "vocab_size": 6}
    rows = fn(300, random.Random(1), **params)
    arrays = rows_to_arrays(rows, [9 + answer_offset] * len(rows), np.uint8)
    assert get_task(task).validator(*arrays, get_task(task).resolve_params(params)) is None


def assert_close(sample, expected):
    """The sample mean is within 5 standard errors (estimated from the sample) of ``expected``."""
    sample = np.asarray(sample, np.float64)
    se = sample.std(ddof=1) / np.sqrt(len(sample))
    assert abs(sample.mean() - expected) < 5 * se, (sample.mean(), expected, se)


def two_sample_close(a, b, what=None):
    """The means of two samples agree within 5 standard errors of their difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert abs(a.mean() - b.mean()) < 5 * se, (what, a.mean(), b.mean(), se)


# --- STACK and QUEUE (tests/test_stack.py tests both, tests/test_queue.py what only QUEUE does) -----

OPERATIONS = {  # per task: what adding and removing a token are called, and where the items are held
    "stack": {"add": "push", "remove": "pop", "structure": "stack", "held": "on the stack"},
    "queue": {"add": "enqueue", "remove": "dequeue", "structure": "queue", "held": "in the queue"},
}


def replay(task, row, answer_start, params):
    """Plain-Python replay of one STACK or QUEUE row: checks the process rules (op 0 removes, op t adds
    token t) and the answer (stack top -> bottom, queue front -> back); returns (ops, answer)."""
    add, remove = OPERATIONS[task]["add"], OPERATIONS[task]["remove"]
    vocab = params["vocab_size"]
    length = answer_start - 1
    row = strip_eos(row, vocab, params["eos"])
    assert row[length] == vocab
    ops, answer = row[:length], row[length + 1:]
    split = math.floor(params["split_frac"] * length)
    items = []  # in the order they were added
    for step, op in enumerate(ops):
        forced_remove = len(items) > 1 and (step == length - 1 or len(items) == vocab - 1
                                            or (step >= split and params[f"{remove}_prob_late"] == 1.0))
        if forced_remove:
            assert op == 0, f"forced {remove}"
        elif len(items) <= 1 or (step < split and params[f"{add}_prob_early"] == 1.0):
            assert op != 0, f"forced {add}"
        if op == 0:
            items.pop(-1 if task == "stack" else 0)
        else:
            assert 1 <= op < vocab and op not in items
            items.append(op)
    assert answer == (items[::-1] if task == "stack" else items)
    return ops, answer
