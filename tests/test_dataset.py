"""procgen.write / load / validate / info: layout, determinism, resume after SIGKILL, corruption, errors."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import datasets
import numpy as np
import pyarrow as pa
import pytest
from conftest import run_cli

import procgen
from procgen import _files, _layout, _shards, _verify, dataset
from procgen.dataset import DatasetError

DYCK = {"k": 4, "length": 16}


def shard_shas(manifest):
    return [s["sha256"] for s in manifest["shards"]]


def rows_of(path):
    """(tokens, offsets, answer_start) of a dataset read through iter_batches, concatenated."""
    batches = list(dataset.iter_batches(path))
    tokens = np.concatenate([b.tokens for b in batches])
    lengths = np.concatenate([b.lengths for b in batches])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return tokens, offsets, np.concatenate([b.answer_start for b in batches])


def assert_same_rows(path, batch):
    tokens, offsets, answer_start = rows_of(path)
    np.testing.assert_array_equal(tokens, batch.tokens)
    np.testing.assert_array_equal(offsets, batch.offsets)
    np.testing.assert_array_equal(answer_start, batch.answer_start)


def our_files(path):
    return sorted(os.listdir(path))


# --- layout: what datasets reads ----------------------------------------------------------------

def test_load_from_disk_returns_exactly_the_generated_rows(tmp_path):
    out = tmp_path / "dyck"
    params = {"k": 3, "min_length": 4, "max_length": 20}  # ragged rows
    manifest = procgen.write("dyck", out, n=1000, shards=3, seed=5, progress=False, **params)
    expected = procgen.generate("dyck", 1000, seed=5, **params)
    for ds in (datasets.load_from_disk(str(out)), procgen.load(out)):
        assert ds.features["input_ids"] == datasets.List(datasets.Value("uint8"))
        assert ds.features["answer_start"] == datasets.Value("int32")
        assert len(ds) == 1000
        arrow = ds.data.table
        values = arrow.column("input_ids").combine_chunks()
        np.testing.assert_array_equal(values.values.to_numpy(), expected.tokens)
        np.testing.assert_array_equal(np.asarray(values.offsets), expected.offsets)
        np.testing.assert_array_equal(arrow.column("answer_start").to_numpy(), expected.answer_start)
        assert ds[999]["input_ids"] == expected[999].tolist()
        assert all(f["filename"].startswith(str(out)) for f in ds.cache_files)  # memory-mapped from our files
    assert manifest["num_rows"] == 1000 and manifest["num_tokens"] == expected.num_tokens
    assert [(s["row_start"], s["row_end"]) for s in manifest["shards"]] == [(0, 333), (333, 666), (666, 1000)]
    assert manifest == procgen.dataset.read_manifest(out)
    assert procgen.info(out)["num_tokens"] == expected.num_tokens
    assert_same_rows(out, expected)


def test_layout_matches_what_datasets_save_to_disk_writes(tmp_path):
    out = tmp_path / "ours"
    procgen.write("dyck", out, n=50, shards=2, progress=False, **DYCK)
    reference = tmp_path / "reference"
    procgen.generate("dyck", 50, **DYCK).to_hf().save_to_disk(str(reference), num_shards=2)
    assert sorted(p for p in os.listdir(reference)) == sorted(p for p in os.listdir(out) if p != "procgen.json")
    ours_state = json.loads((out / "state.json").read_text())
    their_state = json.loads((reference / "state.json").read_text())
    assert set(ours_state) == set(their_state) and len(ours_state) == 7
    assert ours_state["_data_files"] == their_state["_data_files"]
    ours_info = json.loads((out / "dataset_info.json").read_text())
    their_info = json.loads((reference / "dataset_info.json").read_text())
    assert ours_info["features"] == their_info["features"] and set(ours_info) == set(their_info)
    for name in their_state["_data_files"]:
        with pa.memory_map(str(out / name["filename"])) as a, pa.memory_map(str(reference / name["filename"])) as b:
            ours, theirs = pa.ipc.open_stream(a), pa.ipc.open_stream(b)  # both must be IPC *streams*
            assert ours.schema.equals(theirs.schema, check_metadata=True)
            assert ours.read_all().equals(theirs.read_all())


def test_manifest_fields_and_command(tmp_path):
    manifest = procgen.write("dyck_shuffle", tmp_path / "d", n=20, shards=2, seed=3, split="validation",
                             progress=False, k=2, length=10, closed=True, max_depth=None)
    assert manifest["format_version"] == 4 and manifest["procgen_version"] == procgen.__version__
    assert manifest["task"] == "dyck_shuffle" and manifest["seed"] == 3 and manifest["split"] == "validation"
    assert manifest["params"]["closed"] is True and manifest["params"]["max_depth"] is None
    assert manifest["dtype"] == "uint8" and manifest["vocab_size"] == 5 and manifest["pad_id"] == 4
    assert manifest["vocab"] == ["(", "[", ")", "]", "<pad>"] and manifest["lm_style"] is True
    command = manifest["command"]
    assert command.startswith("procgen generate dyck_shuffle ")
    for flag in ("--closed", "--k 2", "--length 10", "--min-length 10", "--max-length 10", "-n 20", "--shards 2",
                 "--seed 3", "--split validation", f"--out {tmp_path / 'd'}"):
        assert flag in command
    assert "--max-depth none" in command  # None differs from dyck_shuffle's default 16: it must be spelled out
    assert "--max-depth" not in procgen.write("dyck", tmp_path / "f", n=2, progress=False)["command"]  # default None
    assert "--no-closed" in procgen.write("dyck_shuffle", tmp_path / "e", n=2, progress=False)["command"]
    assert datasets.load_from_disk(str(tmp_path / "d")).split == "validation"


# --- determinism ----------------------------------------------------------------------------------

def test_rows_do_not_depend_on_shards_workers_or_n(tmp_path):
    n = 2000
    expected = procgen.generate("dyck", n, seed=1, **DYCK)
    one = procgen.write("dyck", tmp_path / "s1", n=n, shards=1, seed=1, progress=False, **DYCK)
    seven = procgen.write("dyck", tmp_path / "s7", n=n, shards=7, seed=1, progress=False, **DYCK)
    assert len(one["shards"]) == 1 and len(seven["shards"]) == 7
    assert_same_rows(tmp_path / "s1", expected)
    assert_same_rows(tmp_path / "s7", expected)
    again = procgen.write("dyck", tmp_path / "s7b", n=n, shards=7, seed=1, progress=False, **DYCK)
    assert shard_shas(again) == shard_shas(seven)
    small = procgen.write("dyck", tmp_path / "n10", n=10, shards=1, seed=1, progress=False, **DYCK)
    assert small["num_rows"] == 10
    assert_same_rows(tmp_path / "n10", expected[:10])
    other_seed = procgen.write("dyck", tmp_path / "seed2", n=n, shards=7, seed=2, progress=False, **DYCK)
    assert shard_shas(other_seed)[0] != shard_shas(seven)[0]


def test_two_worker_processes_write_the_same_files(tmp_path, monkeypatch):
    n = 3000
    serial = procgen.write("dyck", tmp_path / "w1", n=n, shards=5, workers=1, progress=False, **DYCK)
    out = tmp_path / "w2"
    monkeypatch.setattr(_shards, "SPAWN_TOKENS", 1)  # start a helper even for a small write
    real_write_shard = _shards.write_shard
    written_here = []

    def write_shard_after_the_worker(plan, shard, on_rows):
        """In this process only: hold the first shard until the helper process has finished one."""
        deadline = time.time() + 60
        while not written_here and not any(p.startswith("shard-") for p in os.listdir(out / ".procgen")):
            assert time.time() < deadline, "the helper process wrote no shard within 60 s"
            time.sleep(0.01)
        written_here.append(shard)
        return real_write_shard(plan, shard, on_rows)

    monkeypatch.setattr(_shards, "write_shard", write_shard_after_the_worker)
    parallel = procgen.write("dyck", out, n=n, shards=5, workers=2, progress=False, **DYCK)
    assert 1 <= len(written_here) < 5  # both processes wrote shards
    assert shard_shas(parallel) == shard_shas(serial)
    assert_same_rows(out, procgen.generate("dyck", n, **DYCK))
    assert procgen.validate(out)["ok"]


# A script pasted as top-level code, without `if __name__ == "__main__":`. multiprocessing's spawn
# re-imported it in every worker (which then wrote again, and died with a misleading error).
TOP_LEVEL_SCRIPT = """
import os, sys, time
import procgen
from procgen import _shards

print("top-level code ran", flush=True)
out = sys.argv[1]
_shards.SPAWN_TOKENS = 1  # start a helper even for this small write
real_write_shard = _shards.write_shard

def write_after_the_helper(plan, shard, on_chunk):  # here only: let the helper write a shard first
    deadline = time.time() + 120
    while not any(p.startswith("shard-") for p in os.listdir(os.path.join(out, ".procgen"))):
        if time.time() > deadline:
            sys.exit("the helper process wrote no shard within 120 s")
        time.sleep(0.01)
    return real_write_shard(plan, shard, on_chunk)

_shards.write_shard = write_after_the_helper
manifest = procgen.write("dyck", out, n=3000, shards=4, workers=2, progress=False, k=4, length=16)
print("rows", manifest["num_rows"])
"""


def test_top_level_script_with_workers_needs_no_main_guard(tmp_path):
    script, out = tmp_path / "make_data.py", tmp_path / "out"
    script.write_text(TOP_LEVEL_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("top-level code ran") == 1  # the helper never ran the script
    assert "rows 3000" in done.stdout
    assert procgen.validate(out)["ok"]
    assert_same_rows(out, procgen.generate("dyck", 3000, **DYCK))
    assert not (out / ".procgen").exists()
    assert not [name for name in os.listdir(out) if ".tmp-" in name]


def test_a_failing_helper_stops_the_work_and_raises_its_error_here():
    from procgen import _workers

    done_here, deadline = [], time.time() + 120

    def slowly(item, report):
        assert time.time() < deadline, "the helper's error did not stop this process within 120 s"
        time.sleep(0.01)
        done_here.append(item)

    items = list(range(100_000))
    with pytest.raises(TypeError):  # divmod(payload, item, report): the helper's error, raised here
        _workers.run("builtins:divmod", 1, items, 1, slowly, lambda *counts: None)
    assert len(done_here) < len(items)  # claiming stopped once the helper failed


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_bar_ends_at_100_percent_with_tokens(tmp_path, monkeypatch, capsys, workers):
    monkeypatch.setattr(_shards, "SPAWN_TOKENS", 1)  # with workers=2, a helper relays its chunks too
    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 16 * 64)  # many progress updates per shard
    manifest = procgen.write("dyck", tmp_path / "d", n=3001, shards=7, workers=workers, k=4, length=16)
    final = capsys.readouterr().err.replace("\n", "\r").split("\r")
    final = [line for line in final if line.strip()][-1]
    assert "100%" in final and "3.00k/3.00k" in final, final
    assert "48.0k tokens" in final and "tokens/s" in final, final  # 3001 rows x 16 tokens
    assert manifest["num_tokens"] == 48016


def test_progress_counts_exactly_from_several_threads(capsys):
    import threading

    with _shards.Progress(4000, "x", enabled=True) as progress:
        threads = [threading.Thread(target=lambda: [progress.add(1, 3) for _ in range(1000)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert (progress.rows, progress.tokens) == (4000, 12000)
    assert "100%" in capsys.readouterr().err.split("\r")[-1]


def test_tokens_gives_the_rows_for_at_least_that_many_tokens(tmp_path):
    fixed = procgen.write("dyck", tmp_path / "fixed", tokens=1000, progress=False, k=2, length=64)
    assert (fixed["num_rows"], fixed["num_tokens"]) == (16, 1024)  # ceil(1000 / 64) rows, exact mean
    sort = procgen.write("sort", tmp_path / "sort", tokens=1e4, progress=False, min_length=3, max_length=9)
    assert sort["num_rows"] == 770  # mean row 2 * 6 + 1 = 13 tokens, exact from the params: ceil(1e4 / 13)
    assert sort["num_tokens"] == procgen.validate(tmp_path / "sort")["tokens"]
    stack = procgen.write("stack", tmp_path / "stack", tokens=2e5, progress=False)  # mean measured on a sample
    assert abs(stack["num_tokens"] - 2e5) < 0.02 * 2e5
    assert stack["num_tokens"] == procgen.validate(tmp_path / "stack")["tokens"]
    again = procgen.write("stack", tmp_path / "stack", tokens=2e5, progress=False)  # same rows: a no-op rerun
    assert again == stack


def test_default_shard_count_is_bounded_and_a_multiple_of_workers(monkeypatch):
    plan = _shards.plan("dyck", "unused", {"k": 4}, n=10 ** 9, workers=3)
    assert plan.num_shards % 3 == 0
    assert plan.num_shards * _shards.SHARD_TOKENS >= 64 * 10 ** 9
    assert (64 * 10 ** 9) / plan.num_shards > _shards.SHARD_TOKENS / 2
    assert _shards.plan("dyck", "unused", {}, n=5, workers=8).num_shards == 5


def test_a_large_multi_worker_write_has_several_shards_per_worker():
    """A helper starts about a second after the parent: finer shards let the parent take up the slack.
    One worker, or a write too small to start helpers, keeps the SHARD_TOKENS-sized shards."""
    rows = 10 ** 9 // 64  # 1e9 dyck tokens
    assert _shards.plan("dyck", "unused", {"k": 4}, n=rows, workers=1).num_shards == 4
    two = _shards.plan("dyck", "unused", {"k": 4}, n=rows, workers=2).num_shards
    assert two == 2 * _shards.SHARDS_PER_WORKER == 8
    small = _shards.SPAWN_TOKENS // 64  # one helper's worth of work at most
    assert _shards.plan("dyck", "unused", {"k": 4}, n=small, workers=2).num_shards == 2
    huge = _shards.plan("dyck", "unused", {"k": 4}, n=10 ** 10 // 64, workers=2).num_shards
    assert huge == 38  # 1e10 tokens: the SHARD_TOKENS rule already gives more than 4 per worker


def test_iter_batches_rechunks_and_keeps_global_row_indices(tmp_path, monkeypatch):
    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 16 * 30)  # several record batches per shard
    out = tmp_path / "d"
    procgen.write("dyck", out, n=500, shards=3, progress=False, **DYCK)
    expected = procgen.generate("dyck", 500, **DYCK)
    batches = list(dataset.iter_batches(out, rows_per_batch=64))
    assert [len(b) for b in batches] == [64] * 7 + [52]
    assert [b.start for b in batches] == list(range(0, 500, 64))
    for b in batches:
        np.testing.assert_array_equal(b.to_numpy(), expected[b.start:b.start + len(b)].to_numpy())
    ranged = list(dataset.iter_batches(out, start=101, stop=350))
    assert ranged[0].start == 101 and sum(len(b) for b in ranged) == 249
    np.testing.assert_array_equal(np.concatenate([b.tokens for b in ranged]), expected[101:350].tokens)
    with pytest.raises(ValueError, match="stop"):
        list(dataset.iter_batches(out, start=10, stop=501))


MIX_SPEC = {"tasks": {"set": {"weight": 0.5}, "union": {"weight": 0.5}}}


def test_iter_batches_keeps_the_task_column_across_a_shard_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 16 * 40)  # several record batches per shard
    out = tmp_path / "mix"
    procgen.write("mix", out, n=300, shards=3, progress=False, spec=MIX_SPEC)
    expected = procgen.generate("mix", 300, spec=MIX_SPEC)
    batches = list(dataset.iter_batches(out, rows_per_batch=64))
    assert any(b.start < 100 < b.start + len(b) for b in batches)  # shard 0 holds rows [0, 100)
    assert [b.start for b in batches] == list(range(0, 300, 64))
    for b in batches:
        rows = expected[b.start:b.start + len(b)]
        assert b.task_names == ["set", "union"]
        np.testing.assert_array_equal(b.row_task, rows.row_task)
        np.testing.assert_array_equal(b.tokens, rows.tokens)
        np.testing.assert_array_equal(b.answer_start, rows.answer_start)
        b.validate()  # the mixture validator reads the task column


def to_arrow_before_the_split(b):
    """``Batch.to_arrow`` as batch.py built it before it called procgen._arrow.record_batch."""
    input_ids = pa.ListArray.from_arrays(pa.array(b.offsets.astype(np.int32)), pa.array(b.tokens))
    columns = {"input_ids": input_ids, "answer_start": pa.array(b.answer_start)}
    if b.row_task is not None:
        columns["task"] = pa.DictionaryArray.from_arrays(pa.array(b.row_task, pa.int8()),
                                                         pa.array(b.task_names, pa.string()))
    return pa.table(columns)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: procgen.dyck(n=50, min_length=4, max_length=12, seed=3), id="dyck"),
    pytest.param(lambda: procgen.generate("mix", 80, spec=MIX_SPEC)[7:61], id="mix-slice"),
    pytest.param(lambda: procgen.generate("sort", 20, vocab_size=1000)[5:5], id="empty"),
])
def test_to_arrow_is_unchanged_by_sharing_the_writers_record_batch_builder(make):
    b = make()
    table = b.to_arrow()
    before = to_arrow_before_the_split(b)
    assert table.schema.equals(before.schema, check_metadata=True) and table.equals(before)
    assert table.column("input_ids").chunk(0).values.buffers()[1].address == b.tokens.ctypes.data or not len(b)


def test_shards_hold_the_record_batches_to_arrow_makes(tmp_path):
    out = tmp_path / "mix"
    manifest = procgen.write("mix", out, n=120, shards=2, progress=False, spec=MIX_SPEC)
    expected = procgen.generate("mix", 120, spec=MIX_SPEC)
    for entry in manifest["shards"]:
        stored = pa.ipc.open_stream((out / entry["filename"]).read_bytes()).read_all()
        rows = expected[entry["row_start"]:entry["row_end"]].to_arrow()
        assert stored.replace_schema_metadata(None).equals(rows)


# Digests of a small dyck dataset, from the writer as it was before dataset.py was split into modules
# (rows: tokens + offsets + answer_start of every stored record batch; dataset_info.json + state.json).
# The rows digest is the pre-split one; the files digest changed twice since, with format_version 3
# and 4 (that field only).
GOLDEN_DYCK_FILES = ("36203cab8facc376b47f8b9c8b1f73cd", "27cb418d2634edc08a7cecbeff13e6d6")  # format version 4


def test_golden_rows_and_json_files_on_disk(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 16 * 50)
    out = tmp_path / "dyck"
    procgen.write("dyck", out, n=300, shards=2, seed=5, progress=False, k=4, length=16)
    rows, files = hashlib.sha256(), hashlib.sha256()
    for b in dataset.iter_batches(out):
        rows.update(b.tokens.tobytes() + b.offsets.tobytes() + b.answer_start.tobytes())
    for name in ("dataset_info.json", "state.json"):
        files.update((out / name).read_bytes().replace(str(out).encode(), b"OUT"))
    assert (rows.hexdigest()[:32], files.hexdigest()[:32]) == GOLDEN_DYCK_FILES


# --- resume ----------------------------------------------------------------------------------------

KILL_SCRIPT = """
import sys, time
from procgen import _shards, dataset
_shards.CHUNK_TOKENS = 16 * 200                        # many small record batches ...
real_record_batch = _shards.record_batch
def slow_record_batch(*args):                          # ... each taking a moment, so we can kill midway
    time.sleep(0.02)
    return real_record_batch(*args)
_shards.record_batch = slow_record_batch
dataset.write("dyck", sys.argv[1], n=20000, shards=8, progress=False, k=4, length=16)
"""


def test_sigkill_midway_leaves_an_incomplete_dataset_that_a_rerun_completes(tmp_path, monkeypatch):
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)])
    try:
        deadline = time.time() + 60
        records = out / ".procgen"
        while not (records.exists() and any(p.startswith("shard-") for p in os.listdir(records))):
            assert process.poll() is None, "writer exited before its first shard"
            assert time.time() < deadline, "no shard appeared within 60 s"
            time.sleep(0.01)
        time.sleep(0.1)  # let it start the next shard
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "procgen.json").exists()
    with pytest.raises(DatasetError, match="incomplete dataset .* rerun the same `procgen generate` command") as err:
        procgen.validate(out)
    assert err.value.reason == "incomplete" and 1 <= len(err.value.shards_done) < 8
    with pytest.raises(DatasetError, match="incomplete"):
        procgen.load(out)
    with pytest.raises(DatasetError, match=r"\d of 8 shards done"):
        procgen.info(out)

    monkeypatch.setattr(_shards, "CHUNK_TOKENS", 16 * 200)  # the same record batches as the killed run
    kept = {name: os.stat(out / name).st_ino for name in os.listdir(out) if name.startswith("data-")}
    resumed = procgen.write("dyck", out, n=20000, shards=8, progress=False, k=4, length=16)
    assert all(os.stat(out / name).st_ino == inode for name, inode in kept.items())  # finished shards kept
    assert not [p for p in os.listdir(out) if ".tmp-" in p or p == ".procgen"]  # stale temp files removed
    fresh = procgen.write("dyck", tmp_path / "fresh", n=20000, shards=8, progress=False, k=4, length=16)
    assert shard_shas(resumed) == shard_shas(fresh)
    assert procgen.validate(out)["rows"] == 20000
    assert len(procgen.load(out)) == 20000


def test_rewriting_a_complete_dataset_is_a_no_op_and_repairs_a_lost_shard(tmp_path):
    out = tmp_path / "d"
    manifest = procgen.write("dyck", out, n=300, shards=3, progress=False, **DYCK)
    before = {name: os.stat(out / name).st_mtime_ns for name in os.listdir(out)}
    assert procgen.write("dyck", out, n=300, shards=3, progress=False, **DYCK) == manifest
    assert {name: os.stat(out / name).st_mtime_ns for name in os.listdir(out)} == before
    os.remove(out / manifest["shards"][1]["filename"])
    assert procgen.write("dyck", out, n=300, shards=3, progress=False, **DYCK) == manifest
    assert os.stat(out / manifest["shards"][0]["filename"]).st_mtime_ns == before[manifest["shards"][0]["filename"]]
    assert procgen.validate(out)["ok"]


def test_shard_index_jobs_in_any_order_finalise_to_a_normal_write(tmp_path):
    out = tmp_path / "jobs"
    for shard in (3, 0, 2):
        partial = procgen.write("dyck", out, n=400, shards=4, shard_index=shard, progress=False, **DYCK)
        assert partial["complete"] is False and partial["shard"]["filename"] == f"data-0000{shard}-of-00004.arrow"
        assert not (out / "procgen.json").exists()
    with pytest.raises(DatasetError, match="3 of 4 shards done"):
        procgen.load(out)
    manifest = procgen.write("dyck", out, n=400, shards=4, shard_index=1, progress=False, **DYCK)
    assert (out / "procgen.json").exists() and not (out / ".procgen").exists()
    normal = procgen.write("dyck", tmp_path / "normal", n=400, shards=4, progress=False, **DYCK)
    assert shard_shas(manifest) == shard_shas(normal)
    assert {k: v for k, v in manifest.items() if k != "command"} == \
        {k: v for k, v in normal.items() if k != "command"}
    assert procgen.validate(out)["ok"]
    # a late duplicate job, and the plain command, are no-ops on the finished dataset
    assert procgen.write("dyck", out, n=400, shards=4, shard_index=2, progress=False, **DYCK) == manifest
    assert procgen.write("dyck", out, n=400, shards=4, progress=False, **DYCK) == manifest


JOB_SCRIPT = """
import sys, procgen
procgen.write("dyck", sys.argv[1], n=4000, shards=4, shard_index=int(sys.argv[2]), progress=False, k=4, length=16)
"""


def test_concurrent_shard_jobs_finalise_exactly_once_to_a_valid_dataset(tmp_path):
    out = tmp_path / "shared"
    jobs = [subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, str(out), str(shard)]) for shard in (2, 0, 3, 1)]
    assert [job.wait(timeout=120) for job in jobs] == [0, 0, 0, 0]
    assert sorted(os.listdir(out)) == ["data-0000%d-of-00004.arrow" % j for j in range(4)] + \
        ["dataset_info.json", "procgen.json", "state.json"]
    normal = procgen.write("dyck", tmp_path / "normal", n=4000, shards=4, progress=False, **DYCK)
    assert shard_shas(procgen.info(out)) == shard_shas(normal)
    assert procgen.validate(out)["rows"] == 4000


def test_plain_rerun_finalises_after_shard_jobs(tmp_path):
    out = tmp_path / "jobs"
    for shard in (1, 0):
        procgen.write("dyck", out, n=100, shards=3, shard_index=shard, progress=False, **DYCK)
    manifest = procgen.write("dyck", out, n=100, shards=3, progress=False, **DYCK)
    assert manifest["num_rows"] == 100 and procgen.validate(out)["ok"]


# --- validate catches damage ------------------------------------------------------------------------

@pytest.fixture
def written(tmp_path):
    out = tmp_path / "d"
    manifest = procgen.write("dyck", out, n=600, shards=3, progress=False, **DYCK)
    return out, manifest


def test_validate_reports_a_clean_dataset(written):
    out, manifest = written
    report = procgen.validate(out)
    assert report == {"path": str(out), "task": "dyck", "rows": 600, "tokens": 600 * 16, "shards": 3, "ok": True}


def test_validate_catches_a_flipped_byte(written):
    out, manifest = written
    path = out / manifest["shards"][2]["filename"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard 2 .*sha256 mismatch") as err:
        procgen.validate(out)
    assert err.value.shard == 2 and err.value.reason == "sha256 mismatch"


def test_validate_and_load_catch_a_deleted_shard(written):
    out, manifest = written
    os.remove(out / manifest["shards"][0]["filename"])
    with pytest.raises(DatasetError, match="shard 0 .*missing") as err:
        procgen.validate(out)
    assert err.value.shard == 0
    with pytest.raises(DatasetError, match="missing"):
        procgen.load(out)


def test_validator_catches_an_invalid_row_behind_a_patched_checksum(written):
    out, manifest = written
    entry = manifest["shards"][1]
    path = out / entry["filename"]
    reader = pa.ipc.open_stream(path.read_bytes())  # in memory: the file is rewritten in place below
    schema, table = reader.schema, reader.read_all()
    tokens = table.column("input_ids").combine_chunks().values.to_numpy().copy()
    local_row = 17
    tokens[local_row * 16] = 4  # a closing bracket first: unopened
    ids = pa.ListArray.from_arrays(pa.array(np.arange(0, len(tokens) + 1, 16, dtype=np.int32)), pa.array(tokens))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays([ids, table.column("answer_start").combine_chunks()],
                                                      schema=schema))
    entry["sha256"] = _layout.sha256_file(path)
    entry["num_bytes"] = os.path.getsize(path)
    (out / "procgen.json").write_text(json.dumps(manifest))
    global_row = entry["row_start"] + local_row
    with pytest.raises(DatasetError, match=rf"shard 1 .*row {global_row} is invalid: closing bracket") as err:
        procgen.validate(out)
    assert (err.value.row, err.value.shard) == (global_row, 1)
    assert "no open bracket" in err.value.reason
    assert ") " in str(err.value)  # the rendered row


def test_validate_catches_a_shard_with_the_wrong_schema(written):
    out, manifest = written
    entry = manifest["shards"][0]
    path = out / entry["filename"]
    good = procgen.generate("dyck", entry["num_rows"], **DYCK)
    wide = pa.ListArray.from_arrays(pa.array(good.offsets.astype(np.int32)), pa.array(good.tokens.astype(np.uint16)))
    table = pa.table({"input_ids": wide, "answer_start": pa.array(good.answer_start)})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    entry["sha256"], entry["num_bytes"] = _layout.sha256_file(path), os.path.getsize(path)
    (out / "procgen.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"shard 0 .*schema mismatch: columns input_ids: list<item: uint16>") as err:
        procgen.validate(out)
    assert err.value.reason == "schema mismatch" and "\n" not in str(err.value)


def test_validate_catches_counts_that_disagree_with_the_manifest(written):
    out, manifest = written
    manifest["shards"][1]["num_tokens"] += 1
    (out / "procgen.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="shard 1 .*token count mismatch"):
        procgen.validate(out)


def test_read_side_rejects_a_directory_without_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        procgen.info(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="incomplete dataset"):
        procgen.load(tmp_path)


# --- argument errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, r"n must be an integer in \[1, \d+\] \(dyck rows .*; got 0"),
    ({"n": 1.5}, "n must be an integer"),
    ({"shards": 0}, r"shards must be an integer in \[1, 10\] .*; got 0"),
    ({"shards": 11}, r"shards must be an integer in \[1, 10\] \(n=10: every shard holds at least one row\); got 11"),
    ({"workers": 0}, r"workers must be an integer in \[1, 1024\] .*; got 0"),
    ({"shards": 2, "shard_index": 2}, r"shard_index must be an integer in \[0, 1\]"),
    ({"shards": 2, "shard_index": -1}, r"shard_index must be an integer in \[0, 1\] .*; got -1"),
    ({"shard_index": 0}, "shard_index needs shards"),
    ({"shards": 2, "shard_index": 0, "overwrite": True}, "overwrite=True cannot be combined with shard_index"),
    ({"task": "nope"}, "task must be one of"),
    ({"colour": 3}, "unknown parameter 'colour'"),
    ({"k": 0}, "k must be an integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"split": "dev"}, "split must be one of"),
    ({"progress": "yes"}, "progress must be True or False"),
    ({"tokens": 100}, r"exactly one of n \(rows\) and tokens; got both"),
    ({"n": None}, r"exactly one of n \(rows\) and tokens; got neither"),
    ({"n": None, "tokens": 0}, r"tokens must be an integer in \[1, \d+\] .*; got 0"),
    ({"n": None, "tokens": 2.5}, "tokens must be an integer"),
])
def test_bad_arguments_raise_value_error_before_any_work(tmp_path, kwargs, match):
    out = tmp_path / "never"
    call = {"task": "dyck", "out": out, "n": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        procgen.write(**call)
    assert not out.exists()


def test_a_file_as_out_is_rejected(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="out must be a directory"):
        procgen.write("dyck", tmp_path / "f", n=10, progress=False)


def test_a_different_config_in_out_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    procgen.write("dyck", out, n=50, shards=2, progress=False, **DYCK)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"out=.*different procgen dataset \(seed=0 on disk, 1 requested\)"):
        procgen.write("dyck", out, n=50, shards=2, seed=1, progress=False, **DYCK)
    with pytest.raises(ValueError, match=r"out=.*different procgen dataset \(k=4 on disk, 3 requested\)"):
        procgen.write("dyck", out, n=50, shards=2, progress=False, k=3, length=16)
    with pytest.raises(ValueError, match=r"num_shards=2 on disk, 3 requested"):
        procgen.write("dyck", out, n=50, shards=3, progress=False, **DYCK)
    manifest = procgen.write("dyck", out, n=40, shards=3, seed=1, overwrite=True, progress=False, **DYCK)
    assert len(manifest["shards"]) == 3
    assert sorted(p for p in os.listdir(out) if p.startswith("data-")) == [s["filename"] for s in manifest["shards"]]
    assert (out / "notes.txt").read_text() == "mine"  # overwrite deletes only procgen's own files
    with pytest.raises(DatasetError, match="unexpected file 'notes.txt'"):
        procgen.validate(out)  # ... and validate lists what does not belong to the dataset
    (out / "notes.txt").unlink()
    assert procgen.validate(out)["rows"] == 40


def test_an_interrupted_different_config_is_refused(tmp_path):
    out = tmp_path / "d"
    procgen.write("dyck", out, n=60, shards=3, shard_index=0, progress=False, **DYCK)
    with pytest.raises(ValueError, match=r"out=.*different procgen dataset \(num_rows=60 on disk, 61 requested\)"):
        procgen.write("dyck", out, n=61, shards=3, progress=False, **DYCK)


def test_a_non_empty_foreign_directory_is_refused(tmp_path):
    (tmp_path / "paper.pdf").write_text("x")
    with pytest.raises(ValueError, match=r"out=.*is not empty and holds no procgen dataset \(paper.pdf\)"):
        procgen.write("dyck", tmp_path, n=10, progress=False)


# --- disk errors ---------------------------------------------------------------------------------------

class FileOnAFullDisk:
    """A binary file whose writes fail with ENOSPC once it holds 500 bytes (like a real full disk)."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        if self.file.tell() + len(data) > 500:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_disk_full_leaves_no_manifest_and_no_half_shard(tmp_path, monkeypatch):
    out = tmp_path / "full"

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        return FileOnAFullDisk(file) if "data-00001-of-00002" in str(path) else file  # the second shard

    monkeypatch.setattr(_files, "open", open_on_a_full_disk, raising=False)  # every write goes through atomic_open
    with pytest.raises(OSError, match="No space left on device.*rerun the same call to resume") as err:
        procgen.write("dyck", out, n=200, shards=2, progress=False, **DYCK)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(out / "data-00001-of-00002.arrow") and str(out) in str(err.value)
    assert "\n" not in str(err.value)
    files = os.listdir(out)
    assert "procgen.json" not in files and "data-00001-of-00002.arrow" not in files
    assert "data-00000-of-00002.arrow" in files  # the finished shard stays for the rerun
    assert not [p for p in files if ".tmp-" in p]
    monkeypatch.undo()
    assert procgen.write("dyck", out, n=200, shards=2, progress=False, **DYCK)["num_rows"] == 200
    assert procgen.validate(out)["ok"]


def test_permission_denied_is_one_clear_line_naming_the_path(tmp_path, monkeypatch):
    out = tmp_path / "locked"

    def open_without_write_permission(path, mode="r", *args, **kwargs):
        if "w" in mode:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(_files, "open", open_without_write_permission, raising=False)  # every write goes through atomic_open
    with pytest.raises(PermissionError, match="procgen.write could not write the dataset in .*Permission denied"):
        procgen.write("dyck", out, n=10, progress=False)
    assert not [p for p in os.listdir(out) if not p.startswith(".procgen")]


def test_read_only_directory_gives_a_clear_permission_error(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user (root?) that can write to a 0o500 directory")
        with pytest.raises(PermissionError, match="procgen.write could not write") as err:
            procgen.write("dyck", out, n=10, progress=False)
        assert str(out) in str(err.value)
        assert os.listdir(out) == []
    finally:
        out.chmod(0o700)


# --- the manifest and the files beside it are untrusted input (issue 13: 8, 11, 12, 13) ----------

def edit_json(path, change):
    """Apply ``change(obj)`` to the JSON file at ``path``: an edit in place, or a :func:`replacing` one."""
    obj = json.loads(path.read_text())
    new = change(obj)
    path.write_text(json.dumps(new if getattr(change, "replaces", False) else obj))


def replacing(change):
    """Mark ``change`` as returning the file's new content (other changes edit in place)."""
    change.replaces = True
    return change


def one_line_error(result, code=1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("procgen: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def set_shard(index, key, value):
    def change(manifest):
        manifest["shards"][index][key] = value
    return change


def set_field(key, value):
    def change(obj):
        obj[key] = value
    return change


def drop_field(key):
    def change(obj):
        del obj[key]
    return change


BAD_MANIFESTS = {  # edit of procgen.json -> the field the one-line error must name
    "params k 'abc'": (lambda m: m["params"].update(k="abc"), "params"),
    "params null": (set_field("params", None), "params"),
    "params a list": (set_field("params", [1, 2]), "params"),
    "params unknown name": (lambda m: m["params"].update(width=3), "params"),
    "params out of range": (lambda m: m["params"].update(k=0), "params"),
    "params missing one": (lambda m: m["params"].pop("p_open"), "params.p_open"),
    "params not resolved": (lambda m: m["params"].update(min_length=None), "params.min_length"),
    "task unknown": (set_field("task", "no_such_task"), "task"),
    "task not a string": (set_field("task", ["dyck"]), "task"),
    "task another real one": (set_field("task", "stack"), "params"),
    "dtype float99": (set_field("dtype", "float99"), "dtype"),
    "dtype not the task's": (set_field("dtype", "uint16"), "dtype"),
    "dtype a number": (set_field("dtype", 8), "dtype"),
    "shards 'abc'": (set_field("shards", "abc"), "shards"),
    "shards [{}]": (set_field("shards", [{}]), "shards[0]"),
    "shards empty": (set_field("shards", []), "shards"),
    "shard not a dict": (lambda m: m["shards"].__setitem__(1, "data-00001-of-00003.arrow"), "shards[1]"),
    "shard rows a string": (set_shard(0, "num_rows", "200"), "shards[0].num_rows"),
    "shard rows a float": (set_shard(0, "num_rows", 200.0), "shards[0].num_rows"),
    "shard tokens a bool": (set_shard(2, "num_tokens", True), "shards[2].num_tokens"),
    "shard bytes negative": (set_shard(1, "num_bytes", -1), "shards[1].num_bytes"),
    "shard sha256 not hex": (set_shard(1, "sha256", "z" * 64), "shards[1].sha256"),
    "shard gap in rows": (set_shard(1, "row_start", 150), "shards[1].row_start"),
    "shard rows past the end": (set_shard(2, "row_end", 700), "shards[2].row_end"),
    "shard filename a number": (set_shard(0, "filename", 7), "shards[0].filename"),
    "seed 'abc'": (set_field("seed", "abc"), "seed"),
    "seed negative": (set_field("seed", -1), "seed"),
    "seed a float": (set_field("seed", 1.5), "seed"),
    "seed a bool": (set_field("seed", True), "seed"),
    "split unknown": (set_field("split", "dev"), "split"),
    "num_rows a string": (set_field("num_rows", "600"), "num_rows"),
    "num_rows disagrees with shards": (set_field("num_rows", 601), "num_rows"),
    "num_tokens negative": (set_field("num_tokens", -5), "num_tokens"),
    "num_tokens missing": (drop_field("num_tokens"), "num_tokens"),
    "vocab_size edited": (set_field("vocab_size", 99), "vocab_size"),
    "max_row_length edited": (set_field("max_row_length", 4), "max_row_length"),
    "pad_id edited": (set_field("pad_id", 0), "pad_id"),
    "lm_style edited": (set_field("lm_style", False), "lm_style"),
    "row_tasks on a single task": (set_field("row_tasks", ["dyck"]), "row_tasks"),
    "procgen_version a list": (set_field("procgen_version", [1]), "procgen_version"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_an_edited_manifest_is_one_line_naming_the_field_everywhere(written, case):
    out, _ = written
    change, field = BAD_MANIFESTS[case]
    edit_json(out / "procgen.json", change)
    for read in (procgen.validate, procgen.load, procgen.info, lambda p: list(dataset.iter_batches(p))):
        with pytest.raises(DatasetError) as err:
            read(out)
        message = str(err.value)
        assert "procgen.json" in message and field in message and "\n" not in message, message
        assert err.value.reason == "bad manifest"
    for command in ("validate", "info", "show"):
        line = one_line_error(run_cli(command, out, *(["-q"] if command == "validate" else [])))
        assert "procgen.json" in line and field in line, line


MISDESCRIBED = {  # edit -> (file edited, words the one-line error from validate must hold)
    "info dtype changed": ("dataset_info.json",
                           lambda i: i["features"]["input_ids"]["feature"].update(dtype="uint16"),
                           ("dataset_info.json", "features")),
    "info column renamed": ("dataset_info.json",
                            lambda i: i["features"].__setitem__("answer", i["features"].pop("answer_start")),
                            ("dataset_info.json", "features")),
    "info a list": ("dataset_info.json", replacing(lambda i: [i]), ("dataset_info.json",)),
    "info description edited": ("dataset_info.json",
                                lambda i: i.update(description=i["description"].replace("seed=0", "seed=1")),
                                ("dataset_info.json", "description")),
    "info regenerate command edited": ("dataset_info.json",
                                       lambda i: i.update(description=i["description"].split("Regenerate")[0]
                                                          + "Regenerate with: rm -rf ~"),
                                       ("dataset_info.json", "description")),
    "info key dropped": ("dataset_info.json", drop_field("license"), ("dataset_info.json", "license")),
    "state key dropped": ("state.json", drop_field("_format_type"), ("state.json", "_format_type")),
    "state split edited": ("state.json", set_field("_split", "test"), ("state.json", "_split")),
    "state shard dropped": ("state.json", lambda s: s["_data_files"].pop(), ("state.json", "_data_files")),
    "state shards reordered": ("state.json", lambda s: s["_data_files"].reverse(), ("state.json", "_data_files")),
    "state fingerprint edited": ("state.json", set_field("_fingerprint", "0" * 16), ("state.json", "_fingerprint")),
    "manifest seed edited": ("procgen.json", set_field("seed", 1), ("procgen.json", "seed", "differs")),
    "manifest split edited": ("procgen.json", set_field("split", "test"), ("state.json", "_split")),
    "manifest p_open edited": ("procgen.json", lambda m: m["params"].update(p_open=0.6),
                               ("procgen.json", "params", "differs")),
    "manifest max_depth edited (rows unchanged)": ("procgen.json", lambda m: m["params"].update(max_depth=9),
                                                   ("state.json", "_fingerprint", "procgen.json")),
    "manifest min_length edited": ("procgen.json", lambda m: m["params"].update(min_length=8),
                                   ("procgen.json", "params", "differs")),
    "manifest vocab edited": ("procgen.json", lambda m: m["vocab"].__setitem__(0, "<"), ("procgen.json", "vocab")),
    "manifest vocab shortened": ("procgen.json", lambda m: m["vocab"].pop(), ("procgen.json", "vocab")),
}


@pytest.mark.parametrize("case", list(MISDESCRIBED))
def test_validate_rejects_a_misdescribed_dataset_in_one_line(written, case):
    out, _ = written
    name, change, words = MISDESCRIBED[case]
    edit_json(out / name, change)
    with pytest.raises(DatasetError) as err:
        procgen.validate(out)
    message = str(err.value)
    assert "\n" not in message and all(word in message for word in words), message
    line = one_line_error(run_cli("validate", out, "-q"))
    assert all(word in line for word in words), line


def test_validate_rejects_invalid_json_in_dataset_info_and_state(written):
    out, _ = written
    for name in ("dataset_info.json", "state.json"):
        original = (out / name).read_text()
        (out / name).write_text(original[:-5])
        for read in (procgen.validate, procgen.load):
            with pytest.raises(DatasetError, match=rf"{name}.*not a JSON object") as err:
                read(out)
            assert "\n" not in str(err.value)
        assert name in one_line_error(run_cli("validate", out, "-q"))
        (out / name).write_text(original)
    assert procgen.validate(out)["ok"]


@pytest.mark.parametrize("extra", ["data-00003-of-00003.arrow", "data-00000-of-00004.arrow", "notes.txt",
                                   ".data-00000-of-00003.arrow.tmp-123", ".procgen"])
def test_validate_lists_unexpected_files(written, extra):
    out, manifest = written
    if extra == ".procgen":
        (out / extra).mkdir()
    else:
        (out / extra).write_bytes((out / manifest["shards"][0]["filename"]).read_bytes())
    with pytest.raises(DatasetError, match=rf"unexpected .*{extra}") as err:
        procgen.validate(out)
    assert "\n" not in str(err.value)
    assert extra in one_line_error(run_cli("validate", out, "-q"))


def test_validate_accepts_cache_files_that_datasets_map_writes(written):
    out, _ = written
    ds = procgen.load(out)
    ds.map(lambda row: {"length": len(row["input_ids"])})  # datasets caches the result next to our shards
    assert [p for p in os.listdir(out) if p.startswith("cache-")]
    assert procgen.validate(out)["ok"]


def test_validate_compares_sampled_rows_with_regenerated_ones_byte_for_byte(written, monkeypatch):
    out, _ = written
    asked = []
    generate = procgen.generate

    def recording_generate(task, n, **kwargs):
        asked.extend(range(kwargs["start"], kwargs["start"] + n))
        return generate(task, n, **kwargs)

    monkeypatch.setattr(_verify, "generate", recording_generate)  # procgen.api.generate, as validate calls it
    assert procgen.validate(out)["ok"]
    assert {0, 199, 200, 399, 400, 599} <= set(asked) and len(set(asked)) > 6  # shard ends + seeded random rows


def test_load_refuses_state_and_manifest_that_disagree_on_shards_or_rows(written):
    out, manifest = written
    edit_json(out / "state.json", lambda s: s["_data_files"].pop())
    with pytest.raises(DatasetError, match="state.json.*_data_files"):
        procgen.load(out)
    edit_json(out / "state.json", lambda s: s["_data_files"].append({"filename": manifest["shards"][2]["filename"]}))
    assert len(procgen.load(out)) == 600

    def one_row_less(m):  # a consistent-looking manifest that describes 599 rows
        m["num_rows"] = 599
        m["shards"][2].update(row_end=599, num_rows=199)

    edit_json(out / "procgen.json", one_row_less)
    with pytest.raises(DatasetError, match="600 rows.*procgen.json.*599"):
        procgen.load(out)


def test_a_clean_mixture_validates_and_regenerates_through_the_registry(tmp_path):
    out = tmp_path / "mix"
    spec = {"tasks": {"set": {"weight": 0.1, "vocab_size": 20, "length": 8},
                      "union": {"weight": 0.2, "vocab_size": 20, "length": 8},
                      "stack": {"weight": 0.3, "length": 8}}}  # shares whose re-resolution moves by an ulp
    procgen.write("mix", out, n=300, shards=2, progress=False, spec=spec)
    assert procgen.validate(out)["ok"] and len(procgen.load(out)) == 300
    edit_json(out / "procgen.json", lambda m: m["params"]["spec"]["resolved"]["rows_per_period"].reverse())
    with pytest.raises(DatasetError, match="procgen.json.*params.spec.resolved.rows_per_period"):
        procgen.validate(out)


def test_mixture_with_an_edited_seed_fails_regeneration(tmp_path):
    out = tmp_path / "mix"
    procgen.write("mix", out, n=100, shards=1, progress=False,
                  spec={"tasks": {"set": {"weight": 0.5, "length": 8}, "union": {"weight": 0.5, "length": 8}}})
    edit_json(out / "procgen.json", set_field("seed", 7))
    with pytest.raises(DatasetError, match="row 0 .*differs.*seed"):
        procgen.validate(out)


@pytest.fixture
def neighbour(tmp_path):
    """Two one-shard datasets side by side: ``d`` (seed 0) and ``other`` (seed 1)."""
    procgen.write("dyck", tmp_path / "d", n=50, shards=1, seed=0, progress=False, **DYCK)
    other = procgen.write("dyck", tmp_path / "other", n=50, shards=1, seed=1, progress=False, **DYCK)
    return tmp_path / "d", other


OUTSIDE = "../other/data-00000-of-00001.arrow"


@pytest.mark.parametrize("name", [OUTSIDE, "/etc/passwd", "sub/data-00000-of-00001.arrow",
                                  "data-00000-of-00001.arrow/../data-00000-of-00001.arrow",
                                  "..\\other\\data-00000-of-00001.arrow", "data-00001-of-00002.arrow",
                                  "data-0-of-1.arrow", "state.json"])
def test_shard_names_in_the_manifest_must_be_plain_expected_names(neighbour, name):
    out, other = neighbour
    entry = other["shards"][0]
    for file in ("procgen.json", "state.json"):  # both files agree on the outside file, its checksum matches
        if file == "procgen.json":
            edit_json(out / file, lambda m: m["shards"][0].update({**entry, "filename": name}))
        else:
            edit_json(out / file, set_field("_data_files", [{"filename": name}]))
    for read in (procgen.validate, procgen.load, procgen.info):
        with pytest.raises(DatasetError, match=r"procgen.json.*shards\[0\]\.filename.*data-00000-of-00001\.arrow"):
            read(out)
    line = one_line_error(run_cli("validate", out, "-q"))
    assert "filename" in line and "checksums match" not in line


def test_shard_names_in_state_json_must_be_the_manifests(neighbour):
    out, _ = neighbour
    edit_json(out / "state.json", set_field("_data_files", [{"filename": OUTSIDE}]))
    for read in (procgen.validate, procgen.load):
        with pytest.raises(DatasetError, match="state.json.*_data_files"):
            read(out)


def test_info_never_prints_a_stored_command(written):
    out, manifest = written
    edit_json(out / "procgen.json", set_field("command", "rm -rf ~"))
    for args in (["info", out], ["info", out, "--json"]):
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "rm -rf" not in result.stdout
    assert "procgen generate dyck " in run_cli("info", out).stdout
    assert procgen.info(out)["command"] == manifest["command"]  # rebuilt: the same words the write stored
    assert "rm -rf" not in dataset.read_manifest(out)["command"]


def test_an_incomplete_dataset_never_prints_a_stored_command(tmp_path):
    out = tmp_path / "d"
    procgen.write("dyck", out, n=40, shards=4, shard_index=1, progress=False, **DYCK)
    edit_json(out / ".procgen" / "config.json", set_field("command", "rm -rf ~"))
    line = one_line_error(run_cli("info", out))
    assert "rm -rf" not in line and "procgen generate dyck " in line and "1 of 4 shards done" in line


@pytest.mark.parametrize("num_shards", ["abc", 10**12, None])
def test_an_incomplete_dataset_with_an_edited_shard_count_is_still_one_line(tmp_path, num_shards):
    out = tmp_path / "d"
    procgen.write("dyck", out, n=40, shards=4, shard_index=1, progress=False, **DYCK)
    edit_json(out / ".procgen" / "config.json", set_field("num_shards", num_shards))
    started = time.perf_counter()
    with pytest.raises(DatasetError, match="incomplete dataset") as err:
        procgen.info(out)
    assert time.perf_counter() - started < 5 and "\n" not in str(err.value)


def test_a_moved_dataset_still_validates_and_loads(written, tmp_path):
    out, _ = written
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    os.rename(out, moved)  # dataset_info.json's description still names the old --out
    assert procgen.validate(moved)["ok"] and len(procgen.load(moved)) == 600
    assert f"--out {moved}" in procgen.info(moved)["command"]


def test_validate_accepts_a_lock_file_left_by_a_killed_writer(written):
    out, _ = written
    (out / dataset.LOCK_NAME).write_text("12345 somehost\n")
    assert procgen.validate(out)["ok"]


def json_paths(value, prefix=()):
    """Every path (tuple of keys / indices) into a JSON value, the value itself included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if key != "vocab":  # 9 names: enough paths elsewhere
            yield from json_paths(child, prefix + (key,))


def test_any_edit_of_one_manifest_field_is_a_dataset_error_or_harmless(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    out = tmp_path_factory.mktemp("fuzz") / "d"
    procgen.write("dyck", out, n=60, shards=2, progress=False, **DYCK)
    original = json.loads((out / "procgen.json").read_text())
    paths = sorted((path for path in json_paths(original) if path), key=repr)
    values = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**64) | st.floats() | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=6)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(paths), value=values | st.just("<delete>"))
    def check(path, value):
        manifest = json.loads(json.dumps(original))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        if value == "<delete>":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        (out / "procgen.json").write_text(json.dumps(manifest))
        for read in (procgen.validate, procgen.load, procgen.info):
            try:
                read(out)
            except DatasetError as err:
                assert "\n" not in str(err)

    check()


@pytest.mark.parametrize("function", ["load", "validate", "info", "push"])
@pytest.mark.parametrize("bad", [None, 5, 2.5])
def test_a_path_that_is_not_a_path_is_one_line_naming_the_parameter(function, bad):
    arguments = (bad, "user/repo") if function == "push" else (bad,)
    with pytest.raises(ValueError, match=r"^path must be a path \(str or os.PathLike\) to a procgen dataset folder"):
        getattr(procgen, function)(*arguments)
