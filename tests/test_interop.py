"""Hugging Face ``datasets`` / PyTorch interop: every public object pickles and hashes (so
``from_generator`` and ``.map`` cache), and ``to_iterable_dataset`` shards over workers and ranks."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import procgen
from procgen.tasks import get_task, task_names

datasets = pytest.importorskip("datasets")
from datasets.fingerprint import Hasher  # noqa: E402


# --- procgen.tasks is a plain function, the registry a subpackage ---------------------------------

def test_tasks_attribute_stays_the_listing_function_after_registry_imports():
    import importlib

    import procgen.tasks  # noqa: F401  (binds nothing new: the subpackage was imported by procgen)
    from procgen.tasks import get_task as imported  # noqa: F401

    importlib.import_module("procgen.tasks.stack")
    assert callable(procgen.tasks) and procgen.tasks.__module__ == "procgen"
    assert "dyck" in procgen.tasks()
    assert type(sys.modules["procgen.tasks"]).__name__ == "module"  # no callable-module trick
    with pytest.raises(AttributeError):
        procgen.tasks.get_task  # noqa: B018  (the registry is reached by import, never via the attribute)


# --- pickle round trips ---------------------------------------------------------------------------

def test_batches_pickle_and_keep_working():
    batch = procgen.generate("sort", 20, seed=3, length=5, vocab_size=10, min_length=2)
    batch.vocab  # noqa: B018  (a cached vocabulary is not part of the pickled state)
    again = pickle.loads(pickle.dumps(batch))
    for name in ("tokens", "offsets", "answer_start"):
        np.testing.assert_array_equal(getattr(again, name), getattr(batch, name))
    assert (again.task, again.params, again.seed, again.split, again.start) == \
        (batch.task, batch.params, batch.seed, batch.split, batch.start)
    assert again.render(0) == batch.render(0)
    again.validate()
    mixed = procgen.mix({"set": 0.5, "union": 0.5}, tokens=2000, seed=0)
    assert pickle.loads(pickle.dumps(mixed)).task_names == mixed.task_names


@pytest.mark.parametrize("name", task_names())
def test_registered_tasks_pickle_as_the_registry_entry(name):
    task = get_task(name)
    assert pickle.loads(pickle.dumps(task)) is task
    for param in task.params:
        assert pickle.loads(pickle.dumps(param)) == param


def test_public_functions_and_errors_pickle():
    for name in [*procgen.__all__, "dyck", "sort"]:
        if name.startswith("__"):
            continue
        obj = getattr(procgen, name)
        assert pickle.loads(pickle.dumps(obj)) is obj, name
    assert pickle.loads(pickle.dumps(procgen)) is procgen
    error = procgen.DatasetError("bad row", path="d", shard=1, row=7, reason="why")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.shard, again.row, again.reason) == ("bad row", 1, 7, "why")


# --- datasets fingerprints ------------------------------------------------------------------------

def test_datasets_hasher_hashes_public_objects_stably():
    batch = procgen.generate("dyck", 5, k=2, length=4)
    objects = [procgen, procgen.generate, procgen.tasks, procgen.dyck, procgen.Batch, batch,
               *(get_task(name) for name in task_names())]
    first = [Hasher.hash(obj) for obj in objects]
    batch.vocab  # noqa: B018  (caches the vocabulary)
    procgen.to_iterable_dataset  # noqa: B018  (a lazy attribute more in procgen's namespace)
    assert [Hasher.hash(obj) for obj in objects] == first


# The script runs in a fresh interpreter (procgen's lazy state grows during the run, which is what
# broke fingerprints), twice against one cache: every generator must run once in all.
CACHE_SCRIPT = textwrap.dedent("""
    import json, sys
    import datasets, procgen
    cache, log = sys.argv[1], sys.argv[2]
    datasets.disable_progress_bars()

    def rows(log):
        with open(log, "a") as file:
            file.write("generated\\n")
        batch = procgen.generate("dyck", 30, seed=1, k=2, length=8)
        for i in range(len(batch)):
            yield {"input_ids": batch[i].tolist()}

    def add_answer_start(row):
        return {"first": procgen.dyck(n=1, k=2, length=8, start=0)[0].tolist()[0] + len(row["input_ids"])}

    one = datasets.Dataset.from_generator(rows, cache_dir=cache, gen_kwargs={"log": log})
    two = datasets.Dataset.from_generator(rows, cache_dir=cache, gen_kwargs={"log": log})
    mapped = [one.map(add_answer_start), one.map(add_answer_start)]
    print(json.dumps({"fingerprints": [one._fingerprint, two._fingerprint],
                      "map_fingerprints": [m._fingerprint for m in mapped],
                      "map_files": [m.cache_files[0]["filename"] for m in mapped],
                      "first": mapped[0][0]["first"]}))
""")


def test_from_generator_and_map_cache_across_calls_and_processes(tmp_path):
    script, log, cache = tmp_path / "cache.py", tmp_path / "log.txt", tmp_path / "cache"
    script.write_text(CACHE_SCRIPT)
    reports = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script), str(cache), str(log)], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        assert "couldn't be hashed" not in done.stderr and "random hash" not in done.stderr, done.stderr
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert log.read_text().splitlines() == ["generated"]  # the second call and the second process hit the cache
    assert len({f for report in reports for f in report["fingerprints"]}) == 1
    assert len({f for report in reports for f in report["map_fingerprints"]}) == 1
    assert len({f for report in reports for f in report["map_files"]}) == 1
    assert reports[0]["first"] == procgen.dyck(n=1, k=2, length=8)[0][0] + 8


# --- to_iterable_dataset: shards over DataLoader workers and ranks --------------------------------

def _rows_of(ds) -> list[tuple]:
    return [(tuple(row["input_ids"]), row["answer_start"]) for row in ds]


def test_iterable_dataset_shards_are_row_ranges_in_order():
    ds = procgen.to_iterable_dataset("sort", seed=4, n=103, num_shards=8, length=5, vocab_size=10)
    assert ds.num_shards == 8
    expected = procgen.generate("sort", 103, seed=4, length=5, vocab_size=10)
    assert _rows_of(ds) == [(tuple(row.tolist()), 6) for row in expected]  # one process: generate's order
    assert pickle.loads(pickle.dumps(ds)).num_shards == 8
    assert procgen.to_iterable_dataset("dyck", n=3).num_shards == 64  # more shards than rows: some are empty
    with pytest.raises(ValueError, match="num_shards must be an integer >= 1"):
        procgen.to_iterable_dataset("dyck", n=10, num_shards=0)


def test_endless_iterable_dataset_shards_are_disjoint_blocks():
    from procgen.streaming import _shard_rows

    ds = procgen.to_iterable_dataset("dyck", seed=2, num_shards=4, k=2, length=8)
    block = 4 * 1024 * 1024 // 8
    assert ds.num_shards == 4
    head = [tuple(row["input_ids"]) for row in ds.take(3)]
    expected = procgen.generate("dyck", 3, seed=2, k=2, length=8)
    assert head == [tuple(row.tolist()) for row in expected]
    second_block = next(_shard_rows([(block, 4 * block, block)], "dyck", 2, "train", {"k": 2, "length": 8}))
    assert second_block["input_ids"] == procgen.generate("dyck", 1, seed=2, start=block, k=2, length=8)[0].tolist()


def test_two_ranks_times_two_dataloader_workers_read_every_row_once():
    pytest.importorskip("torch")
    from collections import Counter

    from datasets.distributed import split_dataset_by_node
    from torch.utils.data import DataLoader

    n, params = 301, {"length": 12, "vocab_size": 1000, "min_length": 2}
    ds = procgen.to_iterable_dataset("reverse", seed=5, n=n, num_shards=8, **params)
    seen = []
    for rank in range(2):
        part = split_dataset_by_node(ds, rank=rank, world_size=2)
        assert part.num_shards == 4  # whole shards per rank, not every rank generating everything
        loader = DataLoader(part, batch_size=None, num_workers=2, collate_fn=_as_row)
        seen.append(Counter(loader))
    expected = procgen.generate("reverse", n, seed=5, **params)
    wanted = Counter((tuple(row.tolist()), int(a)) for row, a in zip(expected, expected.answer_start))
    assert len(wanted) == n  # distinct rows, so the counts below pin every row
    assert not seen[0].keys() & seen[1].keys()  # disjoint across ranks ...
    assert seen[0] + seen[1] == wanted  # ... and across workers: each row exactly once, none missing


def _as_row(row) -> tuple:
    return tuple(int(t) for t in row["input_ids"]), int(row["answer_start"])
