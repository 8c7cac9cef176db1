"""The `procgen` command line: parsing task parameters from their specs, one-line errors, the
generate -> validate -> info -> show round trip, corrupted datasets, lazy subcommands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_cli

import procgen
from procgen.cli import LazyGroup, ProcgenGroup, cli


def assert_one_line_error(result, code: int, *needles: str):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("procgen: error: "), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def recorded_write(monkeypatch):
    """Replace procgen.dataset.write by a recorder, to check what the CLI parsed."""
    import procgen.dataset

    calls = []

    def fake_write(task, out, n, **kwargs):
        calls.append({"task": task, "out": out, "n": n, **kwargs})
        return {}

    monkeypatch.setattr(procgen.dataset, "write", fake_write)
    return calls


# --- list / help / version ----------------------------------------------------------------------

def test_list_shows_tasks_parameters_defaults_and_ranges():
    result = run_cli("list")
    assert result.exit_code == 0, result.stderr
    blocks = {block.split(":", 1)[0]: block for block in result.stdout.split("\n\n")}
    assert {"dyck", "dyck_shuffle"} <= set(blocks)
    for flag in ("--k", "--length", "--min-length", "--max-length", "--p-open", "--max-depth"):
        assert flag in blocks["dyck"] and flag in blocks["dyck_shuffle"]
    assert "--closed" in blocks["dyck_shuffle"] and "--closed" not in blocks["dyck"]
    shuffle_depth = next(line for line in blocks["dyck_shuffle"].splitlines() if "--max-depth" in line)
    dyck_depth = next(line for line in blocks["dyck"].splitlines() if "--max-depth" in line)
    assert "default 16" in shuffle_depth and "default none" in dyck_depth
    assert "a number > 0 and < 1" in blocks["dyck"]  # the allowed range of p_open


def test_list_json_is_the_whole_registry():
    from procgen.tasks import available_tasks, get_task

    result = run_cli("list", "--json")
    assert result.exit_code == 0, result.stderr
    listing = json.loads(result.stdout)
    assert list(listing) == available_tasks()
    for name, entry in listing.items():
        task = get_task(name)
        assert entry["summary"] == task.summary
        assert list(entry["params"]) == [p.name for p in task.params]
        for spec in task.params:
            param = entry["params"][spec.name]
            assert param["type"] == spec.kind.__name__ and param["allowed"] == spec.allowed()
            assert param["default"] == (list(spec.default) if isinstance(spec.default, tuple) else spec.default)
    k = listing["dyck"]["params"]["k"]
    assert (k["flag"], k["default"], k["low"], k["low_open"]) == ("--k", 4, 1, False)
    p_open = listing["dyck"]["params"]["p_open"]
    assert (p_open["type"], p_open["low"], p_open["high"], p_open["low_open"]) == ("float", 0, 1, True)


def _help_commands():
    """Every command line whose --help a user can ask for: root, subcommands, tasks, train's."""
    commands = [[]] + [[name] for name in cli.list_commands(None)]
    commands += [["generate", name] for name in procgen.tasks()]
    try:
        from procgen.cli.train import train
    except ImportError:
        pass
    else:
        commands += [["train", name] for name in train.list_commands(None)]
    return commands


def test_no_help_shows_raw_rst():
    for command in _help_commands():
        result = run_cli(*command, "--help")
        if command == ["bench"] and result.exit_code == 2:  # no source checkout: nothing to show
            continue
        assert result.exit_code == 0, (command, result.stderr)
        text = result.stdout
        assert "``" not in text, (command, text)
        assert not any(line.rstrip().endswith("::") for line in text.splitlines()), (command, text)
        assert ":class:" not in text and ":func:" not in text, (command, text)


def test_overwrite_error_names_the_flag_in_the_cli_and_the_argument_in_python(tmp_path):
    out = tmp_path / "d"
    procgen.write("dyck", out, n=10, progress=False, length=4)
    with pytest.raises(ValueError, match=r"pass overwrite=True") as raised:
        procgen.write("dyck", out, n=11, progress=False, length=4)
    assert "--overwrite" not in str(raised.value)
    line = assert_one_line_error(run_cli("generate", "dyck", "-n", "11", "--length", "4", "--out", out), 2,
                                 "already holds a different procgen dataset", "pass --overwrite")
    assert "overwrite=True" not in line
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    line = assert_one_line_error(run_cli("generate", "dyck", "-n", "5", "--out", tmp_path / "other"), 2,
                                 "not empty", "--overwrite")
    assert "overwrite=True" not in line
    line = assert_one_line_error(run_cli("generate", "dyck", "-n", "11", "--length", "4", "--out", out, "--shards", "2",
                                     "--shard-index", "0", "--overwrite"), 2,
                                 "--overwrite cannot be combined with --shard-index")
    assert "overwrite=True" not in line
    assert run_cli("generate", "dyck", "-n", "11", "--length", "4", "--out", out, "--overwrite", "-q").exit_code == 0


def test_generate_task_help_lists_task_parameters():
    result = run_cli("generate", "dyck", "--help")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for option in ("-n, --rows", "--out", "--shards", "--workers", "--seed", "--split", "--max-depth", "--p-open",
                   "--min-length"):
        assert option in text
    assert "dyck parameters:" in text
    task_section = text.split("dyck parameters:")[1]
    assert "--p-open" in task_section and "--workers" not in task_section
    assert "[default: 0.5]" in " ".join(task_section.split())


def test_generate_help_lists_tasks_and_version():
    result = run_cli("generate", "--help")
    assert result.exit_code == 0 and "dyck_shuffle" in result.stdout
    version = run_cli("--version")
    assert version.exit_code == 0 and procgen.__version__ in version.stdout
    bare = run_cli()
    assert bare.exit_code == 0 and "generate" in bare.stdout and bare.stderr == ""


def test_splits_match_the_seeding_contract():
    from procgen._rng import SPLITS

    split = next(p for p in cli.get_command(None, "generate").get_command(None, "dyck").params if p.name == "split")
    assert tuple(split.type.choices) == SPLITS


# --- parameter parsing --------------------------------------------------------------------------

@pytest.mark.parametrize("task, args, expected", [
    ("dyck", [], {}),  # defaults are left to the library
    ("dyck", ["--max-depth", "3"], {"max_depth": 3}),
    ("dyck", ["--max-depth", "none"], {"max_depth": None}),
    ("dyck", ["--p-open", "0.3", "--k", "2", "--length", "1e2"], {"p_open": 0.3, "k": 2, "length": 100}),
    ("dyck_shuffle", ["--max-depth", "None"], {"max_depth": None}),  # differs from the default 16
    ("dyck_shuffle", ["--closed"], {"closed": True}),
    ("dyck_shuffle", ["--closed", "--k", "3"], {"closed": True, "k": 3}),
    ("dyck_shuffle", ["--no-closed"], {"closed": False}),
    ("dyck_shuffle", ["--closed", "false"], {"closed": False}),
    ("dyck_shuffle", ["--closed", "TRUE"], {"closed": True}),
])
def test_task_parameters_are_parsed_from_their_specs(recorded_write, tmp_path, task, args, expected):
    result = run_cli("generate", task, "-n", "10", "--out", tmp_path / "d", "--quiet", *args)
    assert result.exit_code == 0, result.stderr
    (call,) = recorded_write
    params = {k: v for k, v in call.items()
              if k not in ("task", "out", "n", "tokens", "shards", "workers", "seed", "split", "shard_index",
                           "overwrite", "progress")}
    assert params == expected
    assert all(type(params[k]) is type(v) for k, v in expected.items())  # 100 is an int, not 100.0


def test_generic_options_reach_write(recorded_write, tmp_path):
    result = run_cli("generate", "dyck", "-n", "1e3", "--out", tmp_path / "d", "--shards", "4", "--workers", "2",
                 "--seed", "7", "--split", "validation", "--shard-index", "1", "--overwrite", "--quiet")
    assert result.exit_code == 0, result.stderr
    (call,) = recorded_write
    assert call["task"] == "dyck" and call["out"] == str(tmp_path / "d")
    assert (call["n"], call["shards"], call["workers"], call["seed"]) == (1000, 4, 2, 7)
    assert type(call["n"]) is int
    assert (call["split"], call["shard_index"], call["overwrite"], call["progress"]) == ("validation", 1, True, False)
    run_cli("generate", "dyck", "-n", "5", "--out", tmp_path / "e")
    assert recorded_write[1]["shards"] is None and recorded_write[1]["progress"] is True
    assert (recorded_write[1]["workers"], recorded_write[1]["seed"], recorded_write[1]["split"]) == (1, 0, "train")


def test_multiple_valued_parameter_takes_a_comma_separated_list(recorded_write, tmp_path):
    from procgen.tasks import available_tasks, get_task

    task = next((name for name in available_tasks() if any(p.multiple for p in get_task(name).params)), None)
    if task is None:
        pytest.skip("no available task has a multi-valued parameter yet")
    spec = next(p for p in get_task(task).params if p.multiple)
    values = [spec.default, spec.default] if not isinstance(spec.default, tuple) else list(spec.default) * 2
    flag = "--" + spec.name.replace("_", "-")
    result = run_cli("generate", task, "-n", "3", "--out", tmp_path / "d", "--quiet", flag,
                 ",".join(str(v) for v in values))
    assert result.exit_code == 0, result.stderr
    assert recorded_write[0][spec.name] == tuple(values)


# --- one-line errors, exit 2 --------------------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["generate", "dyck", "-n", "0"], ["-n", "'0'"]),
    (["generate", "dyck", "-n", "1.5"], ["-n", "1.5"]),
    (["generate", "dyck", "-n", "ten"], ["-n", "ten"]),
    (["generate", "dyck", "-n", "5", "--k", "0"], ["--k", "[1, 1048576]"]),
    (["generate", "dyck", "-n", "5", "--k", "abc"], ["--k", "abc"]),
    (["generate", "dyck", "-n", "5", "--p-open", "1.2"], ["--p-open", "> 0 and < 1"]),
    (["generate", "dyck", "-n", "5", "--max-depth", "0"], ["--max-depth", "[1, 1000000000]"]),
    (["generate", "dyck", "-n", "5", "--k", "none"], ["--k"]),  # k is not nullable
    (["generate", "dyck_shuffle", "-n", "5", "--closed", "maybe"], ["--closed", "true or false"]),
    (["generate", "dyck_shuffle", "-n", "5", "--closed", "--no-closed"], ["--closed", "--no-closed"]),
    (["generate", "nope", "-n", "5"], ["unknown task 'nope'", "dyck"]),
    (["generate", "dyck", "-n", "5", "--foo", "1"], ["--foo"]),
    (["generate", "dyck", "-n", "5", "--split", "dev"], ["--split", "dev"]),
    (["generate", "dyck", "-n", "5", "--workers", "0"], ["--workers"]),
    (["generate", "dyck", "-n", "5", "--seed", "-1"], ["--seed"]),
    (["generate", "dyck", "-n", "5", "--k"], ["--k"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, needles):
    out = tmp_path / "d"
    if args[0] == "generate" and args[1] != "nope":
        args = [*args[:2], "--out", str(out), *args[2:]]
    assert_one_line_error(run_cli(*args), 2, *needles)
    assert not out.exists()


def test_missing_out_exits_2():
    assert_one_line_error(run_cli("generate", "dyck", "-n", "5"), 2, "--out")


@pytest.mark.parametrize("args, needles", [
    (["dyck_shuffle", "-n", "5", "--closed", "--length", "3"], ["closed", "even"]),  # the task's resolve
    (["dyck", "-n", "5", "--shards", "10"], ["shards", "10"]),  # the writer's own check
    (["dyck", "-n", "5", "--min-length", "9", "--max-length", "4"], ["min_length", "max_length"]),
])
def test_library_value_errors_exit_2_before_any_work(tmp_path, args, needles):
    out = tmp_path / "d"
    assert_one_line_error(run_cli("generate", args[0], "--out", out, *args[1:]), 2, *needles)
    assert not out.exists()


def test_interrupt_and_os_errors_are_one_line(monkeypatch, tmp_path):
    import procgen.dataset

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "d"))

    monkeypatch.setattr(procgen.dataset, "write", interrupted)
    assert_one_line_error(run_cli("generate", "dyck", "-n", "5", "--out", tmp_path / "d"), 130, "interrupted")
    monkeypatch.setattr(procgen.dataset, "write", disk_full)
    assert_one_line_error(run_cli("generate", "dyck", "-n", "5", "--out", tmp_path / "d"), 1, "No space left", "d")


# --- round trip on a real dataset ---------------------------------------------------------------

@pytest.fixture(scope="module")
def dyck_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "dyck"
    result = run_cli("generate", "dyck", "-n", "60", "--out", out, "--shards", "2", "--seed", "3", "--k", "2",
                 "--length", "16", "--max-depth", "6")
    assert result.exit_code == 0, result.stderr
    assert "wrote 60 rows, 960 tokens in 2 shards" in result.stdout and "tokens/s" in result.stdout
    return out


def test_generated_rows_equal_the_in_memory_generator(dyck_dataset):
    from procgen.dataset import iter_batches

    expected = procgen.generate("dyck", 60, seed=3, k=2, length=16, max_depth=6)
    batches = list(iter_batches(dyck_dataset))
    tokens = np.concatenate([b.tokens for b in batches])
    lengths = np.concatenate([b.lengths for b in batches])
    np.testing.assert_array_equal(tokens, expected.tokens)
    np.testing.assert_array_equal(lengths, expected.lengths)


def test_validate_info_show_on_a_good_dataset(dyck_dataset):
    result = run_cli("validate", dyck_dataset, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout and "60 rows" in result.stdout and result.stdout.count("\n") == 1

    info = run_cli("info", dyck_dataset)
    assert info.exit_code == 0, info.stderr
    fields = dict(line.split(":", 1) for line in info.stdout.splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert (fields["task"], fields["rows"], fields["tokens"], fields["shards"]) == ("dyck", "60", "960", "2")
    assert (fields["seed"], fields["split"], fields["dtype"], fields["vocab size"]) == ("3", "train", "uint8", "5")
    assert fields["longest row"].startswith("16 tokens")  # a model's n_positions, read from the dataset
    assert "max_depth=6" in fields["params"] and fields["regenerate"].startswith("procgen generate dyck")

    raw = run_cli("info", dyck_dataset, "--json")
    manifest = json.loads(raw.stdout)
    assert manifest["num_rows"] == 60 and manifest["params"]["k"] == 2

    show = run_cli("show", dyck_dataset, "-n", "3")
    assert show.exit_code == 0, show.stderr
    expected = procgen.generate("dyck", 3, seed=3, k=2, length=16, max_depth=6)
    assert show.stdout.splitlines() == [f"[{i}] {expected.render(i)}" for i in range(3)]
    assert len(run_cli("show", dyck_dataset, "-n", "45").stdout.splitlines()) == 45  # spans both shards


def test_regenerate_command_rebuilds_the_same_dataset(dyck_dataset, tmp_path):
    import shlex

    manifest = json.loads((dyck_dataset / "procgen.json").read_text())
    words = shlex.split(manifest["command"])
    words[words.index("--out") + 1] = str(tmp_path / "again")
    assert words[:2] == ["procgen", "generate"]
    assert run_cli(*words[1:], "--quiet").exit_code == 0
    again = json.loads((tmp_path / "again" / "procgen.json").read_text())
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]


def test_shard_index_writes_one_shard_and_says_what_is_left(tmp_path):
    out = tmp_path / "d"
    result = run_cli("generate", "dyck", "-n", "40", "--out", out, "--shards", "4", "--shard-index", "2", "--length", "8")
    assert result.exit_code == 0, result.stderr
    assert "wrote shard 2 (10 rows, 80 tokens)" in result.stdout and "1 of 4 shards done" in result.stdout
    assert_one_line_error(run_cli("validate", out, "-q"), 1, "incomplete")
    assert run_cli("generate", "dyck", "-n", "40", "--out", out, "--shards", "4", "--length", "8", "-q").exit_code == 0
    assert run_cli("validate", out, "-q").exit_code == 0


def test_tokens_writes_at_least_that_many_and_reports_the_exact_count(tmp_path):
    out = tmp_path / "d"
    result = run_cli("generate", "dyck", "--tokens", "1e3", "--out", out, "--k", "2", "--length", "64")
    assert result.exit_code == 0, result.stderr
    assert "wrote 16 rows, 1,024 tokens (--tokens 1,000) in 1 shard" in result.stdout  # ceil(1000 / 64) rows
    manifest = json.loads((out / "procgen.json").read_text())
    assert manifest["num_tokens"] == 1024 and "-n 16" in manifest["command"]
    bar = result.stderr.replace("\n", "\r").split("\r")
    assert "100%" in [line for line in bar if line.strip()][-1]


@pytest.mark.parametrize("args", [["-n", "5", "--tokens", "100"], []])
def test_rows_and_tokens_exactly_one_is_required(tmp_path, args):
    assert_one_line_error(run_cli("generate", "dyck", "--out", tmp_path / "d", *args), 2, "-n/--rows", "--tokens")
    assert not (tmp_path / "d").exists()


def test_bad_tokens_exit_2(tmp_path):
    assert_one_line_error(run_cli("generate", "dyck", "--tokens", "0", "--out", tmp_path / "d"), 2, "--tokens", ">= 1")


@pytest.fixture
def dataset_copy(dyck_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dyck_dataset, copy)
    return copy


def test_validate_flipped_byte_exits_1(dataset_copy):
    manifest = json.loads((dataset_copy / "procgen.json").read_text())
    shard = dataset_copy / manifest["shards"][1]["filename"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert_one_line_error(run_cli("validate", dataset_copy, "-q"), 1, "shard 1", "sha256")


def test_validate_invalid_row_names_shard_row_reason_and_row(dataset_copy):
    """A row broken behind a matching checksum: the validator itself must find it."""
    manifest_path = dataset_copy / "procgen.json"
    manifest = json.loads(manifest_path.read_text())
    expected = procgen.generate("dyck", 60, seed=3, k=2, length=16, max_depth=6)
    row = 37  # in shard 1 (rows 30..59)
    shard = dataset_copy / manifest["shards"][1]["filename"]
    data = bytearray(shard.read_bytes())
    needle = expected[row].tobytes() + expected[row + 1].tobytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0
    data[at] = 200  # not a dyck-2 id
    shard.write_bytes(bytes(data))
    manifest["shards"][1]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    line = assert_one_line_error(run_cli("validate", dataset_copy, "-q"), 1, "shard 1", f"row {row}", "token id")
    assert expected.render(row).split(" ", 1)[1] in line  # the rendered row, with the bad token shown


def test_incomplete_dataset_exits_1_everywhere(dataset_copy):
    os.remove(dataset_copy / "procgen.json")
    for command in ("validate", "info", "show"):
        assert_one_line_error(run_cli(command, dataset_copy), 1, "incomplete")
    assert_one_line_error(run_cli("info", dataset_copy / "nowhere"), 1, "nowhere")


# --- lazy subcommands and bench -----------------------------------------------------------------

def test_lazy_group_imports_on_demand_and_reports_missing_modules():
    group = ProcgenGroup(name="procgen", lazy={
        "ghost": ("procgen_no_such_module:command", "A command whose module is absent.", "pip install ghost"),
        "tasks": ("procgen.cli.generate:list_command", "Lazily imported listing.", ""),
    })
    assert isinstance(group, LazyGroup)
    runner = CliRunner()
    help_text = runner.invoke(group, ["--help"]).output
    assert "A command whose module is absent." in help_text and "Lazily imported listing." in help_text
    listing = runner.invoke(group, ["tasks"])
    assert listing.exit_code == 0 and "dyck_shuffle" in listing.output
    ghost = runner.invoke(group, ["ghost", "--anything"])
    assert ghost.exit_code == 2
    assert ghost.output.strip() == ("procgen: error: procgen ghost is not available: No module named "
                                    "'procgen_no_such_module' (install it with: pip install ghost)")


def test_train_command_is_lazy():
    try:
        import procgen.cli.train  # noqa: F401
    except ImportError:
        assert_one_line_error(run_cli("train", "--help"), 2, "procgen train is not available")
    else:
        assert run_cli("train", "--help").exit_code == 0


FAKE_BENCHMARKS = """
import json, os, sys
with open("received.json", "w") as file:
    json.dump({"args": sys.argv[1:], "cwd": os.getcwd()}, file)
sys.exit(3)
"""


def fake_checkout(root: Path, project: str = "procgen-data") -> Path:
    """A folder that looks like a procgen checkout: pyproject.toml and a benchmarks package that records its call."""
    (root / "benchmarks").mkdir(parents=True)
    (root / "benchmarks" / "__init__.py").write_text("")
    (root / "benchmarks" / "__main__.py").write_text(FAKE_BENCHMARKS)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{project}"\nversion = "0"\n')
    return root


@pytest.mark.parametrize("folder", ["empty", "other project", "no benchmarks"])
def test_bench_outside_a_checkout_exits_2_saying_where_to_run_it(tmp_path, monkeypatch, folder):
    if folder == "other project":
        fake_checkout(tmp_path, project="something-else")
    elif folder == "no benchmarks":
        fake_checkout(tmp_path)
        shutil.rmtree(tmp_path / "benchmarks")
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    assert_one_line_error(run_cli("bench", "--quick"), 2, "procgen bench runs the benchmarks of a source checkout",
                          "run it from the repository root", "python -m benchmarks")
    assert sys.path == path and not (tmp_path / "received.json").exists()


def test_bench_in_a_checkout_runs_python_m_benchmarks_there_with_every_argument(tmp_path, monkeypatch):
    root = fake_checkout(tmp_path / "checkout")
    monkeypatch.chdir(root)
    path, imported = list(sys.path), "benchmarks" in sys.modules
    result = run_cli("bench", "--tasks", "dyck", "--repeats", "1", "--help")
    assert result.exit_code == 3, result.stderr  # the benchmarks' own exit status
    received = json.loads((root / "received.json").read_text())
    assert received["args"] == ["--tasks", "dyck", "--repeats", "1", "--help"]
    assert Path(received["cwd"]).resolve() == root.resolve()
    assert sys.path == path and ("benchmarks" in sys.modules) == imported  # a subprocess, no sys.path edits


# --- the installed program ----------------------------------------------------------------------

def test_import_and_help_load_no_heavy_modules():
    code = ("import sys; from procgen.cli import cli; cli.main(['--help'], standalone_mode=False); "
            "heavy = [m for m in ('numba', 'pyarrow', 'datasets', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_console_script_lists_tasks():
    script = shutil.which("procgen") or str(Path(sys.executable).with_name("procgen"))
    done = subprocess.run([script, "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dyck_shuffle" in done.stdout and "--max-depth" in done.stdout
    bad = subprocess.run([script, "generate", "dyck", "-n", "0", "--out", "unused"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
