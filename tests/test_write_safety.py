"""procgen.write / ``procgen generate`` under abuse: huge counts, Ctrl-C, a killed parent, two writers.

The subprocess tests run the real program (the ``procgen`` script, or ``procgen.cli.main()`` slowed
down) and watch its processes through /proc, so they need Linux.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

import procgen
from procgen import _layout, _shards, dataset, streaming

DYCK = {"k": 4, "length": 16}
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches processes through /proc")
LOCK = ".procgen.lock"  # validate and load must not take it for a stray file


def procgen_command():
    return shutil.which("procgen") or str(Path(sys.executable).with_name("procgen"))


# --- every count is bounded by what can be written ------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"n": 1e30}, r"n must be an integer in \[1, \d+\] .*; got 1e\+30", id="n=1e30"),
    pytest.param({"n": 2 ** 63}, r"n must be an integer in \[1, \d+\]", id="n=2**63"),
    pytest.param({"n": None, "tokens": 1e30}, r"tokens must be an integer in \[1, \d+\]", id="tokens=1e30"),
    pytest.param({"n": 10 ** 6, "shards": 100_001}, r"shards must be an integer in \[1, 100000\]",
                 id="shards=100001"),
    pytest.param({"n": 10 ** 6, "shards": 10 ** 30}, r"shards must be an integer in \[1, 100000\]", id="shards=1e30"),
    pytest.param({"workers": 10 ** 30}, r"workers must be an integer in \[1, 1024\]", id="workers=1e30"),
    pytest.param({"workers": 1025}, r"workers must be an integer in \[1, 1024\]", id="workers=1025"),
    pytest.param({"shards": 2, "shard_index": 10 ** 30}, r"shard_index must be an integer in \[0, 1\]",
                 id="shard_index=1e30"),
])
def test_huge_counts_are_refused_at_once_and_create_nothing(tmp_path, kwargs, match):
    out = tmp_path / "never"
    began = time.perf_counter()
    with pytest.raises(ValueError, match=match) as err:
        procgen.write(**{"task": "dyck", "out": out, "n": 10, "progress": False, **kwargs})
    assert time.perf_counter() - began < 30  # a plan, not a loop over 1e23 shards
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_the_largest_writable_n_is_planned_and_one_more_is_refused(tmp_path):
    def plan(n, shards=None, workers=1):
        return _shards.plan("dyck", tmp_path / "never", {"length": 64}, n=n, shards=shards, workers=workers)

    rows_per_shard = ((1 << 31) - 1) // 64
    largest = _layout.MAX_SHARDS * rows_per_shard
    planned = plan(largest, workers=7)  # the default shard count stays within the maximum
    assert planned.num_shards == _layout.MAX_SHARDS
    assert -(-largest // planned.num_shards) <= rows_per_shard  # and every shard fits int32 offsets
    assert plan(largest, shards=_layout.MAX_SHARDS).num_rows == largest
    assert plan(10 ** 9, workers=1024).num_shards <= _layout.MAX_SHARDS
    with pytest.raises(ValueError, match=rf"n must be an integer in \[1, {largest}\] \(.*64 tokens"):
        plan(largest + 1)
    assert not (tmp_path / "never").exists()


def test_generate_with_a_huge_n_exits_2_at_once_with_one_line(tmp_path):
    out = tmp_path / "D"
    done = subprocess.run([procgen_command(), "generate", "dyck", "-n", "1e30", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert re.match(r"procgen: error: n must be an integer in \[1, \d+\]", done.stderr), done.stderr
    assert not out.exists()


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: procgen.stream("dyck", n=2 ** 63), r"n must be an integer >= 1 and <= 2\*\*63 - 1",
                 id="stream-n"),
    pytest.param(lambda: procgen.stream("dyck", start=2 ** 63), r"start must be an integer >= 0 and <= 2\*\*63 - 1",
                 id="stream-start"),
    pytest.param(lambda: procgen.stream("dyck", start=2 ** 62, n=2 ** 62 + 1), r"start \+ n must be <= 2\*\*63 "
                 r"\(row indices are int64\); got start=\d+, n=\d+", id="stream-start+n"),
    pytest.param(lambda: procgen.to_iterable_dataset("dyck", n=1e30), r"n must be an integer >= 1 and <= 2\*\*63 - 1",
                 id="iterable-n"),
    pytest.param(lambda: procgen.to_iterable_dataset("dyck", start=2 ** 63), r"start must be an integer >= 0 and "
                 r"<= 2\*\*63 - 1", id="iterable-start"),
    pytest.param(lambda: procgen.to_iterable_dataset("dyck", start=2 ** 62, n=2 ** 62 + 1), r"start \+ n must be "
                 r"<= 2\*\*63", id="iterable-start+n"),
    pytest.param(lambda: procgen.to_iterable_dataset("dyck", num_shards=10 ** 7), r"num_shards must be an integer "
                 r">= 1 and <= 100000", id="iterable-num_shards"),
])
def test_stream_counts_are_bounded(call, match):
    began = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        call()
    assert time.perf_counter() - began < 30


def test_stream_reaches_the_last_int64_row_index():
    last = 2 ** 63 - 1
    (batch,) = procgen.stream("dyck", start=last - 2, n=3, **DYCK)  # rows last-2, last-1, last
    assert len(batch) == 3 and batch.start == last - 2
    assert procgen.to_iterable_dataset("dyck", num_shards=streaming.MAX_NUM_SHARDS).num_shards == 100_000


# --- processes: helpers of a real `procgen generate` ------------------------------------------------

def children(pid):
    """Pids of the live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) == pid and state != "Z":
                found.append(int(entry))
    return found


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def shard_files(out):
    return sorted(name for name in os.listdir(out) if name.startswith("data-"))


def wait_for(condition, what, process=None, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert process is None or process.poll() is None, f"the writer exited before {what}"
        assert time.time() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.01)


def holds_rows(out) -> bool:
    """Whether a shard of ``out``, finished or still a temp file, holds data."""
    if not out.is_dir():
        return False
    for name in os.listdir(out):
        if name.startswith((".data-", "data-")):
            with contextlib.suppress(FileNotFoundError):  # a temp file renamed meanwhile
                if (out / name).stat().st_size > 0:
                    return True
    return False


# ~2.5e8 tokens: a few seconds with a helper process on a busy machine
BIG = ["dyck", "-n", "4e6", "--length", "64"]


@LINUX
def test_ctrl_c_with_workers_is_one_line_and_a_rerun_completes(tmp_path):
    out = tmp_path / "D"
    command = [procgen_command(), "generate", *BIG, "--shards", "16", "--workers", "2", "--out", str(out)]
    # compile the kernels into numba's cache first: a Ctrl-C that lands inside llvmlite's compile
    # callback is printed by the interpreter ("Exception ignored ..."), out of procgen's reach
    warm = [procgen_command(), "generate", *BIG[:1], "-n", "64", *BIG[3:], "--out", str(tmp_path / "warm"), "-q"]
    subprocess.run(warm, capture_output=True, timeout=600, check=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group, as a terminal makes one
    try:
        # Ctrl-C once rows reach the first shard: the helper is often still importing (where the
        # interrupt printed its traceback). Not as soon as the shard's temp file exists: this process
        # may then still be loading the kernel from numba's cache, and a KeyboardInterrupt raised in
        # one of llvmlite's finalisers is printed and dropped by the interpreter (seen once in CI)
        wait_for(lambda: holds_rows(out), "first rows on disk", process)
        helpers = children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does: the whole group
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert helpers
    wait_for(lambda: not any(alive(pid) for pid in helpers), "end of the helpers", seconds=10)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    last = re.split(r"[\r\n]+", stderr.strip())[-1]
    if process.returncode == 130:
        assert last == "procgen: error: interrupted; re-run the same command to resume", stderr
        assert stdout == ""
        with pytest.raises(dataset.DatasetError, match="incomplete"):
            procgen.validate(out)
    else:  # it had finished: the normal summary
        assert process.returncode == 0 and stdout.startswith("wrote 4,000,000 rows"), (process.returncode, stderr)
    rerun = subprocess.run(command + ["-q"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and rerun.stderr == "", rerun.stderr
    assert procgen.validate(out)["rows"] == 4_000_000


@LINUX
def test_ctrl_c_once_the_summary_is_printed_changes_nothing(tmp_path):
    """A late Ctrl-C landed while the interpreter shut down: exit -2 and no message, or a traceback."""
    for attempt in range(3):
        out = tmp_path / f"D{attempt}"
        process = subprocess.Popen([procgen_command(), "generate", "dyck", "-n", "1000", "--out", str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        summary = process.stdout.readline()
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
        assert summary.startswith("wrote 1,000 rows") and stdout == ""
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "error" not in stderr, stderr
        assert procgen.validate(out)["ok"]


def test_an_interrupt_once_the_manifest_is_written_leaves_a_complete_dataset(tmp_path, monkeypatch):
    out = tmp_path / "D"
    real_remove_state_dir = _shards.remove_state_dir

    def ctrl_c_once(path):
        monkeypatch.setattr(_shards, "remove_state_dir", real_remove_state_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(_shards, "remove_state_dir", ctrl_c_once)  # the finaliser's last step
    with pytest.raises(dataset.WriteInterrupted) as err:
        procgen.write("dyck", out, n=100, shards=2, progress=False, **DYCK)
    assert err.value.manifest == json.loads((out / "procgen.json").read_text())  # complete after all
    assert sorted(os.listdir(out)) == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow",
                                       "dataset_info.json", "procgen.json", "state.json"]
    assert procgen.validate(out)["ok"]

    monkeypatch.setattr(_shards, "remove_state_dir", ctrl_c_once)
    result = run_cli("generate", "dyck", "-n", "100", "--shards", "2", "--k", "4", "--length", "16", "--seed", "1",
                     "--out", tmp_path / "E")
    assert result.exit_code == 0 and result.stdout.startswith("wrote 100 rows"), result.stderr
    assert procgen.validate(tmp_path / "E")["ok"]


def test_an_interrupt_mid_write_is_one_line_and_exit_130(tmp_path, monkeypatch):
    out = tmp_path / "D"
    real_write_shard = _shards.write_shard

    def ctrl_c_in_the_second_shard(plan, shard, on_chunk):
        if shard == 1:
            raise KeyboardInterrupt
        return real_write_shard(plan, shard, on_chunk)

    monkeypatch.setattr(_shards, "write_shard", ctrl_c_in_the_second_shard)
    with pytest.raises(dataset.WriteInterrupted) as err:
        procgen.write("dyck", out, n=100, shards=3, progress=False, **DYCK)
    assert err.value.manifest is None and "re-run the same call to resume" in str(err.value)
    result = run_cli("generate", "dyck", "-n", "100", "--shards", "3", "--k", "4", "--length", "16", "--out", out, "-q")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr == "procgen: error: interrupted; re-run the same command to resume\n"
    monkeypatch.undo()
    assert procgen.write("dyck", out, n=100, shards=3, progress=False, **DYCK)["num_rows"] == 100
    assert procgen.validate(out)["ok"] and LOCK not in os.listdir(out)


# The parent of the helpers, killed by the test. With "fork", something in it forks meanwhile (a
# library, a DataLoader...): the child holds this process's ends of the helpers' pipes, so a helper
# sees no EOF and no EPIPE when its parent dies, and waits forever (or writes on) unless told.
KILLED_PARENT = """
import os, sys, threading, time
import procgen

out, fork = sys.argv[1], sys.argv[2] == "fork"

def fork_once_the_helpers_run():
    while not any(thread.name.startswith("procgen-helper-") for thread in threading.enumerate()):
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    with open(out + ".forked", "w") as file:
        file.write(str(pid))

if fork:
    threading.Thread(target=fork_once_the_helpers_run, daemon=True).start()
procgen.write("dyck", out, n=4e6, length=64, shards=64, workers=2, progress=False)
"""


@LINUX
@pytest.mark.parametrize("fork", [False, True], ids=["plain", "forked-child-holds-the-pipes"])
def test_helpers_stop_when_their_parent_is_killed(tmp_path, fork):
    out = tmp_path / "D"
    forked = tmp_path / "D.forked"
    process = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(out), "fork" if fork else "-"],
                               start_new_session=True)
    helpers, others = [], []
    try:
        # a helper is writing a shard (its temp file carries its pid) and most shards are still to do
        def helper_writing():
            helpers[:] = children(process.pid)
            names = os.listdir(out) if out.is_dir() else []
            return any(name.endswith(f"-{pid}") for pid in helpers for name in names) and \
                (not fork or forked.exists())

        wait_for(helper_writing, "shard from a helper", process)
        if fork:
            others.append(int(forked.read_text()))
            helpers.remove(others[0])
        process.kill()
        process.wait()
        deadline = time.time() + 5
        while any(alive(pid) for pid in helpers) and time.time() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in helpers if alive(pid)]
        assert not survivors, f"helpers {survivors} outlived their killed parent by 5 s"
        before = os.listdir(out)
        time.sleep(1)
        assert os.listdir(out) == before  # nobody writes any more
        assert len(shard_files(out)) < 64
        assert not [name for name in before if ".tmp-" in name and name.endswith(tuple(f"-{p}" for p in helpers))]
    finally:
        for pid in helpers + others:  # only the processes this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()
        wait_for(lambda: not any(alive(pid) for pid in helpers + others), "end of the killed processes")
    assert procgen.write("dyck", out, n=4e6, length=64, shards=64, progress=False)["num_rows"] == 4_000_000
    assert procgen.validate(out)["ok"]


# --- two writers on one directory ---------------------------------------------------------------

# A writer slowed down per record batch (in-process, workers=1), so a second one surely meets it.
SLOW_GENERATE = """
import sys, time
from procgen import _shards, cli
_shards.CHUNK_TOKENS = 16 * 500
real_record_batch = _shards.record_batch
def slow_record_batch(*args):
    time.sleep(0.01)
    return real_record_batch(*args)
_shards.record_batch = slow_record_batch
cli.main()
"""


def slow_writer(out, *extra):
    command = [sys.executable, "-c", SLOW_GENERATE, "generate", "dyck", "-n", "20000", "--length", "16",
               "--shards", "8", "--out", str(out), "-q", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_writer_fails_at_once_naming_the_first(tmp_path, overwrite):
    out = tmp_path / "D"
    if overwrite:  # a different dataset is there: both writers were told to replace it
        procgen.write("dyck", out, n=100, shards=2, seed=5, progress=False, **DYCK)
    flag = ["--overwrite"] if overwrite else []
    first = slow_writer(out, *flag)
    try:
        wait_for(lambda: out.is_dir() and any(name.startswith(".data-") for name in os.listdir(out)),
                 "shard being written", first)
        second = subprocess.run([procgen_command(), "generate", "dyck", "-n", "20000", "--length", "16", "--shards",
                                 "8", "--seed", "1" if overwrite else "0", "--out", str(out), "-q", *flag],
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, f"the first writer exited ({first.returncode}): {first.communicate()}"
        assert second.returncode == 1, second.stderr
        assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        assert f"pid {first.pid}" in second.stderr and LOCK in second.stderr, second.stderr
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    manifest = procgen.info(out)
    assert manifest["seed"] == 0 and manifest["num_rows"] == 20000  # the first writer's dataset
    assert procgen.validate(out)["rows"] == 20000
    assert LOCK not in os.listdir(out)  # released and removed with the write


def test_a_held_lock_refuses_a_write_and_names_the_holder(tmp_path):
    out = tmp_path / "D"
    assert dataset.LOCK_NAME == LOCK
    with _layout.locked(str(out), shared=False):
        lock = out / LOCK
        assert lock.read_text().split()[0] == str(os.getpid())
        with pytest.raises(BlockingIOError, match=rf"pid {os.getpid()}\b.*{re.escape(str(lock))}"):
            procgen.write("dyck", out, n=10, progress=False, **DYCK)
        with pytest.raises(BlockingIOError, match=rf"pid {os.getpid()}\b"):  # shard jobs too
            procgen.write("dyck", out, n=10, shards=2, shard_index=0, progress=False, **DYCK)
    assert not lock.exists()
    assert procgen.write("dyck", out, n=10, progress=False, **DYCK)["num_rows"] == 10


def test_shard_jobs_share_the_lock_and_a_full_write_fails_while_one_runs(tmp_path):
    out = tmp_path / "D"
    with _layout.locked(str(out), shared=True):  # another shard job of the same dataset is running
        partial = procgen.write("dyck", out, n=40, shards=2, shard_index=0, progress=False, **DYCK)
        assert partial["complete"] is False
        with pytest.raises(BlockingIOError, match="pid"):
            procgen.write("dyck", out, n=40, shards=2, progress=False, **DYCK)
    assert procgen.write("dyck", out, n=40, shards=2, progress=False, **DYCK)["num_rows"] == 40
    assert sorted(os.listdir(out)) == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow",
                                       "dataset_info.json", "procgen.json", "state.json"]


def test_a_lock_file_left_by_a_dead_writer_does_not_block(tmp_path):
    out = tmp_path / "D"
    out.mkdir()
    (out / LOCK).write_text("999999 elsewhere\n")  # kill -9 leaves the file; the kernel freed the lock
    assert procgen.write("dyck", out, n=10, progress=False, **DYCK)["num_rows"] == 10
    assert procgen.validate(out)["ok"]
    assert LOCK not in os.listdir(out)
